//! How a delivery reaches the network: directly, or through the operator's egress proxy
//! (`--egress-proxy http://…` or `socks5://…`).
//!
//! [`EgressConnector`] is the TCP layer under the delivery client's TLS. Direct, it is the
//! `HttpConnector` whose resolver is the SSRF guard. Through a proxy, webhookd still resolves
//! the target itself with the same guard and asks the proxy for a checked IP address (HTTP
//! `CONNECT ip:port`, for `http://` targets too, or a SOCKS5 CONNECT with the IP), so the proxy
//! cannot be used to reach what the guard refuses; TLS (SNI) and `Host` above this layer keep
//! the original host name. The CONNECT and SOCKS5 handshakes are hyper-util's. A failure of
//! the proxy path is a [`ProxyFailure`], which the client reports as "egress proxy: …" and
//! the worker does not count against the endpoint. Proxy credentials (Proxy-Authorization,
//! SOCKS5 user/password) never appear in `Display`, `Debug` or errors.
//! Depends on `delivery::ssrf`.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::task::{Context, Poll};

use base64::Engine as _;
use hyper::Uri;
use hyper::header::HeaderValue;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::proxy::{SocksV5, Tunnel};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;
use tokio::net::TcpStream;
use tower::{Service, ServiceExt as _};

use super::ssrf::{GuardedResolver, RefusedTarget, TargetPolicy};

type BoxError = Box<dyn StdError + Send + Sync>;

/// The `--egress-proxy` setting: an HTTP CONNECT or SOCKS5 proxy, with optional credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct EgressProxy {
    protocol: Protocol,
    host: String,
    port: u16,
    credentials: Option<Credentials>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Protocol {
    HttpConnect,
    Socks5,
}

#[derive(Clone, PartialEq, Eq)]
struct Credentials {
    user: String,
    password: String,
}

impl FromStr for EgressProxy {
    type Err = String;

    /// `http://[user:password@]host[:port]` (port 80 by default) or
    /// `socks5://[user:password@]host[:port]` (port 1080); user and password percent-encoded.
    fn from_str(text: &str) -> Result<EgressProxy, String> {
        let (scheme, rest) = text
            .split_once("://")
            .ok_or("expected http://host:port or socks5://host:port")?;
        let (protocol, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "http" => (Protocol::HttpConnect, 80),
            "socks5" => (Protocol::Socks5, 1080),
            "socks5h" => {
                return Err(
                    "socks5h:// lets the proxy resolve names; webhookd resolves and \
                            checks every target itself, so use socks5://"
                        .into(),
                );
            }
            other => {
                return Err(format!(
                    "unsupported proxy scheme \"{other}\" (use http:// or socks5://)"
                ));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err("the proxy URL takes no path, query or fragment".into());
        }
        let (credentials, authority) = match rest.rsplit_once('@') {
            Some((userinfo, authority)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let decode = |part: &str| {
                    percent_decode_str(part)
                        .decode_utf8()
                        .map(|text| text.into_owned())
                        .map_err(|_| "the proxy credentials are not valid UTF-8".to_string())
                };
                let credentials = Credentials {
                    user: decode(user)?,
                    password: decode(password)?,
                };
                (Some(credentials), authority)
            }
            None => (None, rest),
        };
        if authority.is_empty() {
            return Err("the proxy URL has no host".into());
        }
        // Parse the authority as a URI's to get host and port with IPv6 brackets handled.
        let uri: Uri = format!("http://{authority}")
            .parse()
            .map_err(|_| format!("invalid proxy address \"{authority}\""))?;
        let host = uri
            .host()
            .filter(|host| !host.is_empty())
            .ok_or("the proxy URL has no host")?
            .to_string();
        // `Uri::port` drops a port that does not fit in u16; read it from the text.
        let after_host = authority
            .rsplit_once(']')
            .map_or(authority, |(_, rest)| rest);
        let port = match after_host.rsplit_once(':') {
            None => default_port,
            Some((_, port)) => port
                .parse()
                .map_err(|_| format!("invalid proxy port \"{port}\""))?,
        };
        Ok(EgressProxy {
            protocol,
            host,
            port,
            credentials,
        })
    }
}

impl fmt::Display for EgressProxy {
    /// The proxy URL with the credentials masked: `http://****@proxy:3128`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.protocol {
            Protocol::HttpConnect => "http",
            Protocol::Socks5 => "socks5",
        };
        let masked = if self.credentials.is_some() {
            "****@"
        } else {
            ""
        };
        write!(f, "{scheme}://{masked}{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl EgressProxy {
    /// `host:port` of the proxy, for messages.
    fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }

    /// The proxy's address as the URI hyper-util's handshakes carry (used only for messages).
    fn uri(&self) -> Uri {
        format!("http://{}", self.address())
            .parse()
            .expect("host and port were parsed from a URI")
    }

    /// The TCP connection to the proxy (the operator's address: not subject to the guard).
    async fn connect(&self) -> Result<TokioIo<TcpStream>, ProxyFailure> {
        let host = self.host.trim_start_matches('[').trim_end_matches(']');
        let stream = TcpStream::connect((host, self.port))
            .await
            .map_err(|error| {
                ProxyFailure(format!(
                    "cannot reach the proxy at {}: {error}",
                    self.address()
                ))
            })?;
        stream.set_nodelay(true).ok();
        Ok(TokioIo::new(stream))
    }

    /// Asks the proxy, over `stream`, for a tunnel to `target`.
    async fn handshake(
        &self,
        stream: TokioIo<TcpStream>,
        target: SocketAddr,
    ) -> Result<TokioIo<TcpStream>, String> {
        let target_uri: Uri = format!("http://{target}")
            .parse()
            .expect("a socket address is a valid authority");
        // hyper-util's handshakes take a connector; this one hands over the open connection.
        let mut connection = Some(stream);
        let connected = tower::service_fn(move |_: Uri| {
            let connection = connection
                .take()
                .ok_or_else(|| io::Error::other("the proxy connection was already used"));
            async move { connection }
        });
        match (self.protocol, &self.credentials) {
            (Protocol::HttpConnect, credentials) => {
                let mut tunnel = Tunnel::new(self.uri(), connected);
                if let Some(Credentials { user, password }) = credentials {
                    let token = base64::engine::general_purpose::STANDARD
                        .encode(format!("{user}:{password}"));
                    let mut value = HeaderValue::from_str(&format!("Basic {token}"))
                        .map_err(|_| "the proxy credentials cannot be sent in a header")?;
                    value.set_sensitive(true);
                    tunnel = tunnel.with_auth(value);
                }
                tunnel.oneshot(target_uri).await.map_err(|error| {
                    format!(
                        "the proxy at {} refused CONNECT {target} ({})",
                        self.address(),
                        chain(&error)
                    )
                })
            }
            (Protocol::Socks5, credentials) => {
                let mut socks = SocksV5::new(self.uri(), connected);
                if let Some(Credentials { user, password }) = credentials {
                    socks = socks.with_auth(user.clone(), password.clone());
                }
                socks.oneshot(target_uri).await.map_err(|error| {
                    format!(
                        "the SOCKS5 proxy at {} did not connect to {target} ({error})",
                        self.address()
                    )
                })
            }
        }
    }
}

/// "error: source: source", for errors whose `Display` leaves the cause out.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(current) = source {
        text.push_str(": ");
        text.push_str(&current.to_string());
        source = current.source();
    }
    text
}

/// The proxy path failed (proxy unreachable, CONNECT refused, SOCKS5 error); the message
/// names the proxy by address only, never by its credentials.
#[derive(Debug)]
pub struct ProxyFailure(pub String);

impl fmt::Display for ProxyFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for ProxyFailure {}

/// The TCP connector of the delivery client: direct, or through the egress proxy.
#[derive(Clone)]
pub enum EgressConnector {
    Direct(HttpConnector<GuardedResolver>),
    Proxied(Arc<Proxied>),
}

/// The parts of the proxied path.
pub struct Proxied {
    proxy: EgressProxy,
    policy: Arc<TargetPolicy>,
    resolver: GuardedResolver,
}

impl EgressConnector {
    /// A connector refusing what `policy` refuses, through `proxy` when there is one.
    pub fn new(policy: Arc<TargetPolicy>, proxy: Option<EgressProxy>) -> EgressConnector {
        let resolver = GuardedResolver::new(Arc::clone(&policy));
        match proxy {
            None => {
                let mut http = HttpConnector::new_with_resolver(resolver);
                http.enforce_http(false);
                http.set_nodelay(true);
                EgressConnector::Direct(http)
            }
            Some(proxy) => EgressConnector::Proxied(Arc::new(Proxied {
                proxy,
                policy,
                resolver,
            })),
        }
    }
}

impl Proxied {
    /// The checked addresses of the target `dst`: a literal IP checked by the policy, or the
    /// name resolved by the guard (only allowed addresses remain).
    async fn targets(&self, dst: &Uri) -> Result<Vec<SocketAddr>, BoxError> {
        let host = dst
            .host()
            .filter(|host| !host.is_empty())
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "the url has no host"))?;
        let port = dst
            .port_u16()
            .unwrap_or(if dst.scheme_str() == Some("https") {
                443
            } else {
                80
            });
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = literal.parse::<IpAddr>() {
            self.policy.check(ip).map_err(|reason| {
                io::Error::new(io::ErrorKind::PermissionDenied, RefusedTarget(reason))
            })?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = Name::from_str(literal)?;
        let resolved = self.resolver.clone().oneshot(name).await?;
        Ok(resolved
            .map(|addr| SocketAddr::new(addr.ip(), port))
            .collect())
    }

    /// A tunnel to the first checked address the proxy connects to.
    async fn connect(&self, dst: Uri) -> Result<TokioIo<TcpStream>, BoxError> {
        let mut refusal = None;
        for target in self.targets(&dst).await? {
            let stream = self.proxy.connect().await?;
            match self.proxy.handshake(stream, target).await {
                Ok(tunnel) => return Ok(tunnel),
                Err(reason) => refusal = Some(reason),
            }
        }
        let reason = refusal.unwrap_or_else(|| "no address to ask the proxy for".into());
        Err(ProxyFailure(reason).into())
    }
}

impl Service<Uri> for EgressConnector {
    type Response = TokioIo<TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        match self {
            EgressConnector::Direct(http) => http.poll_ready(cx).map_err(Into::into),
            EgressConnector::Proxied(_) => Poll::Ready(Ok(())),
        }
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        match self {
            EgressConnector::Direct(http) => {
                let connecting = http.call(dst);
                Box::pin(async move { connecting.await.map_err(Into::into) })
            }
            EgressConnector::Proxied(proxied) => {
                let proxied = Arc::clone(proxied);
                Box::pin(async move { proxied.connect(dst).await })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_urls() {
        let proxy: EgressProxy = "http://proxy.internal:3128".parse().unwrap();
        assert_eq!(proxy.protocol, Protocol::HttpConnect);
        assert_eq!(proxy.address(), "proxy.internal:3128");
        assert!(proxy.credentials.is_none());
        let proxy: EgressProxy = "socks5://10.0.0.1".parse().unwrap();
        assert_eq!(proxy.protocol, Protocol::Socks5);
        assert_eq!(proxy.address(), "10.0.0.1:1080");
        let proxy: EgressProxy = "HTTP://[::1]:8080/".parse().unwrap();
        assert_eq!(proxy.address(), "[::1]:8080");
        assert_eq!(
            "http://proxy".parse::<EgressProxy>().unwrap().address(),
            "proxy:80"
        );
    }

    #[test]
    fn decodes_credentials_and_never_shows_them() {
        let proxy: EgressProxy = "socks5://svc%40acme:p%3Ass@proxy:1080".parse().unwrap();
        let credentials = proxy.credentials.clone().unwrap();
        assert_eq!(credentials.user, "svc@acme");
        assert_eq!(credentials.password, "p:ss");
        assert_eq!(proxy.to_string(), "socks5://****@proxy:1080");
        assert_eq!(format!("{proxy:?}"), "socks5://****@proxy:1080");
    }

    #[test]
    fn refuses_bad_proxy_urls() {
        for (text, expected) in [
            ("proxy:3128", "expected http://host:port"),
            ("https://proxy:3128", "unsupported proxy scheme \"https\""),
            ("socks5h://proxy", "use socks5://"),
            ("http://proxy:3128/path", "no path"),
            ("http://proxy:99999", "invalid proxy port"),
            ("http://pro xy:1", "invalid proxy address"),
            ("http://", "no host"),
            ("http://user:secret@", "no host"),
        ] {
            let error = text.parse::<EgressProxy>().unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
            assert!(!error.contains("secret"), "{text}: {error}");
        }
    }
}
