//! SSRF guard: which target addresses a delivery may connect to.
//!
//! [`TargetPolicy::check`] classifies one IP address (IPv4-mapped, IPv4-compatible and NAT64
//! addresses are judged by the IPv4 address they carry). [`GuardedResolver`] is the DNS
//! resolver of the delivery client's `HttpConnector`: it resolves with tokio and keeps only
//! the addresses the policy allows, so the connection goes to exactly the address that was
//! checked (no DNS rebinding between check and connect). Literal IP hosts never reach a
//! resolver; the client checks those itself. Depends on nothing else in the crate.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::client::legacy::connect::dns::Name;

/// Which non-global addresses a delivery may reach anyway.
///
/// Globally routable addresses are always allowed. `allow_private` (the
/// `--allow-private-targets` flag) permits every special-purpose range except those that can
/// never be a TCP peer (unspecified, broadcast, multicast); `allow_cidrs` permits the listed
/// networks, whatever they contain.
#[derive(Debug, Clone, Default)]
pub struct TargetPolicy {
    pub allow_private: bool,
    pub allow_cidrs: Vec<ipnet::IpNet>,
}

impl TargetPolicy {
    /// Ok when `ip` may be contacted: a globally routable address, or allowed by allow_private / allow_cidrs.
    /// Err(reason) e.g. "target address 127.0.0.1 is loopback; refused (start webhookd with --allow-private-targets to permit it)".
    pub fn check(&self, ip: IpAddr) -> Result<(), String> {
        let Some((range, embedded)) = special_range(ip) else {
            return Ok(());
        };
        let listed = |ip: IpAddr| self.allow_cidrs.iter().any(|net| net.contains(&ip));
        if listed(ip) || embedded.is_some_and(|v4| listed(IpAddr::V4(v4))) {
            return Ok(());
        }
        if self.allow_private && !range.never_a_peer() {
            return Ok(());
        }
        let carried = match embedded {
            Some(v4) => format!(" (it carries the IPv4 address {v4})"),
            None => String::new(),
        };
        let hint = if range.never_a_peer() {
            ""
        } else {
            " (start webhookd with --allow-private-targets to permit it)"
        };
        Err(format!(
            "target address {ip} is {}{carried}; refused{hint}",
            range.describe()
        ))
    }
}

/// A special-purpose (not globally routable) address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    Unspecified,
    ThisNetwork,
    Loopback,
    Private,
    SharedCgnat,
    LinkLocal,
    ProtocolAssignment,
    Documentation,
    Relay6to4,
    Benchmarking,
    Reserved,
    Broadcast,
    Multicast,
    UniqueLocal,
    SiteLocal,
    DiscardOnly,
    Nat64Local,
    Teredo,
    SixToFour,
}

impl Range {
    fn describe(self) -> &'static str {
        match self {
            Range::Unspecified => "unspecified",
            Range::ThisNetwork => "in \"this network\" (0.0.0.0/8)",
            Range::Loopback => "loopback",
            Range::Private => "private",
            Range::SharedCgnat => "in the shared carrier-grade NAT range (100.64.0.0/10)",
            Range::LinkLocal => "link-local",
            Range::ProtocolAssignment => "reserved for IETF protocol assignments",
            Range::Documentation => "reserved for documentation",
            Range::Relay6to4 => "a deprecated 6to4 relay anycast address",
            Range::Benchmarking => "reserved for benchmarking",
            Range::Reserved => "reserved",
            Range::Broadcast => "the broadcast address",
            Range::Multicast => "multicast",
            Range::UniqueLocal => "unique-local (fc00::/7)",
            Range::SiteLocal => "site-local (deprecated, fec0::/10)",
            Range::DiscardOnly => "discard-only (100::/64)",
            Range::Nat64Local => "a local-use NAT64 address (64:ff9b:1::/48)",
            Range::Teredo => "a Teredo tunnel address (2001::/32)",
            Range::SixToFour => "a 6to4 tunnel address (2002::/16)",
        }
    }

    /// Addresses no TCP connection can go to, so `allow_private` does not permit them.
    fn never_a_peer(self) -> bool {
        matches!(
            self,
            Range::Unspecified | Range::Broadcast | Range::Multicast
        )
    }
}

/// The special range `ip` is in (None for a globally routable address), and the IPv4 address
/// it was judged by when it embeds one.
fn special_range(ip: IpAddr) -> Option<(Range, Option<Ipv4Addr>)> {
    match ip {
        IpAddr::V4(v4) => special_v4(v4).map(|range| (range, None)),
        IpAddr::V6(v6) => special_v6(v6),
    }
}

fn special_v4(ip: Ipv4Addr) -> Option<Range> {
    let [a, b, c, _] = ip.octets();
    let range = if ip.is_unspecified() {
        Range::Unspecified
    } else if a == 0 {
        Range::ThisNetwork
    } else if ip.is_loopback() {
        Range::Loopback
    } else if ip.is_private() {
        Range::Private
    } else if a == 100 && (64..128).contains(&b) {
        Range::SharedCgnat
    } else if ip.is_link_local() {
        Range::LinkLocal
    } else if ip.is_documentation() {
        Range::Documentation
    } else if a == 192 && b == 0 && c == 0 {
        Range::ProtocolAssignment
    } else if a == 192 && b == 88 && c == 99 {
        Range::Relay6to4
    } else if a == 198 && (b == 18 || b == 19) {
        Range::Benchmarking
    } else if ip.is_multicast() {
        Range::Multicast
    } else if ip.is_broadcast() {
        Range::Broadcast
    } else if a >= 240 {
        Range::Reserved
    } else {
        return None;
    };
    Some(range)
}

fn special_v6(ip: Ipv6Addr) -> Option<(Range, Option<Ipv4Addr>)> {
    let segments = ip.segments();
    let embedded = || {
        let [.., a, b, c, d] = ip.octets();
        Ipv4Addr::new(a, b, c, d)
    };
    let via = |v4: Ipv4Addr| special_v4(v4).map(|range| (range, Some(v4)));
    let range = if ip.is_unspecified() {
        Range::Unspecified
    } else if ip.is_loopback() {
        Range::Loopback
    } else if let Some(v4) = ip.to_ipv4_mapped() {
        return via(v4);
    } else if segments[..6] == [0; 6] {
        // IPv4-compatible (::a.b.c.d, deprecated): judged as the IPv4 address.
        return via(embedded());
    } else if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        // NAT64 well-known prefix: the gateway connects to the embedded IPv4 address.
        return via(embedded());
    } else if segments[..3] == [0x64, 0xff9b, 1] {
        Range::Nat64Local
    } else if segments[..4] == [0x100, 0, 0, 0] {
        Range::DiscardOnly
    } else if segments[..2] == [0x2001, 0] {
        Range::Teredo
    } else if segments[0] == 0x2001 && segments[1] == 2 && segments[2] == 0 {
        Range::Benchmarking
    } else if segments[0] == 0x2001 && segments[1] == 0xdb8 {
        Range::Documentation
    } else if segments[0] == 0x2001 && segments[1] < 0x200 {
        Range::ProtocolAssignment
    } else if segments[0] == 0x2002 {
        Range::SixToFour
    } else if segments[0] & 0xfff0 == 0x3ff0 {
        // 3fff::/20, RFC 9637.
        Range::Documentation
    } else if segments[0] & 0xfe00 == 0xfc00 {
        Range::UniqueLocal
    } else if segments[0] & 0xffc0 == 0xfe80 {
        Range::LinkLocal
    } else if segments[0] & 0xffc0 == 0xfec0 {
        Range::SiteLocal
    } else if ip.is_multicast() {
        Range::Multicast
    } else if segments[0] & 0xe000 != 0x2000 {
        // Everything outside global unicast 2000::/3 is unassigned or reserved.
        Range::Reserved
    } else {
        return None;
    };
    Some((range, None))
}

/// The `io::Error` payload of a resolution whose every address the policy refused.
#[derive(Debug)]
pub struct RefusedTarget(pub String);

impl std::fmt::Display for RefusedTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RefusedTarget {}

/// DNS resolver for `HttpConnector` that drops the addresses [`TargetPolicy`] refuses.
///
/// When every resolved address is refused the error is an `io::Error` of kind
/// `PermissionDenied` wrapping [`RefusedTarget`], whose message is the reason from `check()`.
#[derive(Clone)]
pub struct GuardedResolver {
    policy: Arc<TargetPolicy>,
}

impl GuardedResolver {
    pub fn new(policy: Arc<TargetPolicy>) -> Self {
        GuardedResolver { policy }
    }
}

impl tower::Service<Name> for GuardedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let policy = Arc::clone(&self.policy);
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((name.as_str(), 0)).await?;
            filter_addrs(&policy, name.as_str(), resolved)
        })
    }
}

/// Keeps the allowed addresses; fails with the first refusal reason when none is left.
fn filter_addrs(
    policy: &TargetPolicy,
    host: &str,
    resolved: impl Iterator<Item = SocketAddr>,
) -> std::io::Result<std::vec::IntoIter<SocketAddr>> {
    let mut allowed = Vec::new();
    let mut refusal = None;
    for addr in resolved {
        match policy.check(addr.ip()) {
            Ok(()) => allowed.push(addr),
            Err(reason) => {
                refusal.get_or_insert(reason);
            }
        }
    }
    if allowed.is_empty() {
        let error = match refusal {
            Some(reason) => {
                std::io::Error::new(std::io::ErrorKind::PermissionDenied, RefusedTarget(reason))
            }
            None => std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("{host} resolved to no address"),
            ),
        };
        return Err(error);
    }
    Ok(allowed.into_iter())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use tower::ServiceExt;

    #[test]
    fn classifies_addresses() {
        use Range::*;
        let global = [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.216.34",
            "100.63.255.255",
            "100.128.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.1",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "2a00:1450:4001::1",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ];
        let refused: &[(&str, Range)] = &[
            // IPv4 special ranges.
            ("0.0.0.0", Unspecified),
            ("0.1.2.3", ThisNetwork),
            ("127.0.0.1", Loopback),
            ("127.255.255.254", Loopback),
            ("10.0.0.1", Private),
            ("172.16.0.1", Private),
            ("172.31.255.255", Private),
            ("192.168.1.1", Private),
            ("100.64.0.1", SharedCgnat),
            ("100.127.255.255", SharedCgnat),
            ("169.254.169.254", LinkLocal),
            ("192.0.0.8", ProtocolAssignment),
            ("192.0.2.1", Documentation),
            ("198.51.100.7", Documentation),
            ("203.0.113.9", Documentation),
            ("192.88.99.1", Relay6to4),
            ("198.18.0.1", Benchmarking),
            ("198.19.255.255", Benchmarking),
            ("224.0.0.1", Multicast),
            ("239.255.255.250", Multicast),
            ("240.0.0.1", Reserved),
            ("255.255.255.254", Reserved),
            ("255.255.255.255", Broadcast),
            // IPv6 special ranges.
            ("::", Unspecified),
            ("::1", Loopback),
            ("fe80::1", LinkLocal),
            ("febf::1", LinkLocal),
            ("fec0::1", SiteLocal),
            ("fc00::1", UniqueLocal),
            ("fd12:3456::1", UniqueLocal),
            ("ff02::1", Multicast),
            ("100::1", DiscardOnly),
            ("64:ff9b:1::1", Nat64Local),
            ("2001::1", Teredo),
            ("2001:2::1", Benchmarking),
            ("2001:db8::1", Documentation),
            ("3fff::1", Documentation),
            ("2001:10::1", ProtocolAssignment),
            ("2002:7f00:1::1", SixToFour),
            ("4000::1", Reserved),
            ("1::1", Reserved),
            // Embedded IPv4 addresses are judged as IPv4.
            ("::ffff:127.0.0.1", Loopback),
            ("::ffff:10.1.2.3", Private),
            ("::ffff:169.254.169.254", LinkLocal),
            ("::127.0.0.1", Loopback),
            ("::10.0.0.1", Private),
            ("::0.0.0.2", ThisNetwork),
            ("64:ff9b::7f00:1", Loopback),
            ("64:ff9b::a9fe:a9fe", LinkLocal),
            ("64:ff9b::c0a8:101", Private),
        ];
        for text in global {
            let ip = IpAddr::from_str(text).unwrap();
            assert_eq!(special_range(ip), None, "{text}");
            assert_eq!(TargetPolicy::default().check(ip), Ok(()), "{text}");
        }
        for (text, expected) in refused {
            let ip = IpAddr::from_str(text).unwrap();
            let got = special_range(ip).map(|(range, _)| range);
            assert_eq!(got, Some(*expected), "{text}");
            let reason = TargetPolicy::default().check(ip).unwrap_err();
            assert!(reason.contains(expected.describe()), "{text}: {reason}");
        }
    }

    #[test]
    fn refusal_message_says_why_and_how() {
        let policy = TargetPolicy::default();
        assert_eq!(
            policy.check("127.0.0.1".parse().unwrap()).unwrap_err(),
            "target address 127.0.0.1 is loopback; refused \
             (start webhookd with --allow-private-targets to permit it)"
        );
        let mapped = policy
            .check("::ffff:10.0.0.1".parse().unwrap())
            .unwrap_err();
        assert!(mapped.starts_with("target address ::ffff:10.0.0.1 is private"));
        assert!(mapped.contains("carries the IPv4 address 10.0.0.1"));
        let multicast = policy.check("224.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(multicast, "target address 224.0.0.1 is multicast; refused");
    }

    #[test]
    fn allow_private_permits_private_but_not_impossible_peers() {
        let policy = TargetPolicy {
            allow_private: true,
            allow_cidrs: Vec::new(),
        };
        for ok in [
            "127.0.0.1",
            "10.1.1.1",
            "::1",
            "fd00::1",
            "::ffff:192.168.0.1",
        ] {
            assert!(policy.check(ok.parse().unwrap()).is_ok(), "{ok}");
        }
        for refused in ["0.0.0.0", "::", "255.255.255.255", "224.0.0.1", "ff02::1"] {
            assert!(policy.check(refused.parse().unwrap()).is_err(), "{refused}");
        }
    }

    #[test]
    fn allow_cidrs_permits_listed_networks_only() {
        let policy = TargetPolicy {
            allow_private: false,
            allow_cidrs: vec!["10.20.0.0/16".parse().unwrap(), "fd00::/8".parse().unwrap()],
        };
        assert!(policy.check("10.20.3.4".parse().unwrap()).is_ok());
        assert!(policy.check("::ffff:10.20.3.4".parse().unwrap()).is_ok());
        assert!(policy.check("fd00::5".parse().unwrap()).is_ok());
        assert!(policy.check("10.21.0.1".parse().unwrap()).is_err());
        assert!(policy.check("127.0.0.1".parse().unwrap()).is_err());
    }

    #[test]
    fn filter_keeps_allowed_addresses_only() {
        let policy = TargetPolicy::default();
        let addrs: Vec<SocketAddr> = vec![
            "127.0.0.1:0".parse().unwrap(),
            "8.8.8.8:0".parse().unwrap(),
            "[::1]:0".parse().unwrap(),
        ];
        let kept: Vec<_> = filter_addrs(&policy, "mixed", addrs.into_iter())
            .unwrap()
            .collect();
        assert_eq!(kept, vec!["8.8.8.8:0".parse::<SocketAddr>().unwrap()]);
    }

    #[tokio::test]
    async fn resolver_refuses_localhost_with_the_reason() {
        let resolver = GuardedResolver::new(Arc::new(TargetPolicy::default()));
        let name = Name::from_str("localhost").unwrap();
        let error = resolver.oneshot(name).await.unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::PermissionDenied);
        let message = error.to_string();
        assert!(message.contains("is loopback; refused"), "{message}");
        assert!(error.get_ref().unwrap().is::<RefusedTarget>());
    }

    #[tokio::test]
    async fn resolver_allows_localhost_when_private_targets_are_allowed() {
        let policy = TargetPolicy {
            allow_private: true,
            allow_cidrs: Vec::new(),
        };
        let resolver = GuardedResolver::new(Arc::new(policy));
        let addrs: Vec<_> = resolver
            .oneshot(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|addr| addr.ip().is_loopback()));
    }
}
