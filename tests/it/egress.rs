//! `--egress-proxy`: deliveries go through an HTTP CONNECT or SOCKS5 proxy (real ones, written
//! here, that record what they were asked for), the proxy is asked for the address the SSRF
//! guard checked (never a name), a refused target never reaches the proxy, a dead proxy is
//! recorded as a proxy failure without tripping the endpoint's breaker, and the proxy's
//! credentials never show.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::breaker_events::health;
use crate::support::*;

/// What a client asked the proxy for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ask {
    /// `ip:port`, `[ip6]:port`, or `name:port` when the client sent a name.
    target: String,
    /// The Proxy-Authorization header, or SOCKS5 `user:password`.
    credentials: Option<String>,
}

#[derive(Clone, Copy)]
enum Kind {
    Connect,
    Socks5,
}

/// A small proxy on 127.0.0.1 that tunnels to whatever it is asked for, recording each ask.
struct TestProxy {
    addr: SocketAddr,
    connections: Arc<Mutex<usize>>,
    asks: Arc<Mutex<Vec<Ask>>>,
}

impl TestProxy {
    async fn start(kind: Kind) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(Mutex::new(0));
        let asks = Arc::new(Mutex::new(Vec::new()));
        let (counted, recorded) = (Arc::clone(&connections), Arc::clone(&asks));
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                *counted.lock().unwrap() += 1;
                let recorded = Arc::clone(&recorded);
                tokio::spawn(async move {
                    let _ = match kind {
                        Kind::Connect => serve_connect(client, recorded).await,
                        Kind::Socks5 => serve_socks5(client, recorded).await,
                    };
                });
            }
        });
        TestProxy {
            addr,
            connections,
            asks,
        }
    }

    fn asks(&self) -> Vec<Ask> {
        self.asks.lock().unwrap().clone()
    }

    fn connections(&self) -> usize {
        *self.connections.lock().unwrap()
    }
}

/// HTTP CONNECT: read the request head, dial the target, answer 200 (or 502) and splice.
async fn serve_connect(mut client: TcpStream, asks: Arc<Mutex<Vec<Ask>>>) -> std::io::Result<()> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        if client.read(&mut byte).await? == 0 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let mut lines = head.lines();
    let request_line = lines.next().unwrap_or_default().to_string();
    let target = match request_line.split(' ').collect::<Vec<_>>().as_slice() {
        ["CONNECT", target, _] => target.to_string(),
        _ => {
            client
                .write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                .await?;
            return Ok(());
        }
    };
    let credentials = lines
        .filter_map(|line| line.split_once(": "))
        .find(|(name, _)| name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|(_, value)| value.to_string());
    asks.lock().unwrap().push(Ask {
        target: target.clone(),
        credentials,
    });
    match TcpStream::connect(target.as_str()).await {
        Ok(mut upstream) => {
            client
                .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
                .await?;
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        }
        Err(_) => {
            client
                .write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n")
                .await?
        }
    }
    Ok(())
}

/// SOCKS5 (RFC 1928/1929): no-auth or user/password, CONNECT only.
async fn serve_socks5(mut client: TcpStream, asks: Arc<Mutex<Vec<Ask>>>) -> std::io::Result<()> {
    let mut greeting = [0u8; 2];
    client.read_exact(&mut greeting).await?;
    let mut methods = vec![0u8; greeting[1] as usize];
    client.read_exact(&mut methods).await?;
    let credentials = if methods.contains(&2) {
        client.write_all(&[5, 2]).await?;
        let mut version_and_length = [0u8; 2];
        client.read_exact(&mut version_and_length).await?;
        let mut user = vec![0u8; version_and_length[1] as usize];
        client.read_exact(&mut user).await?;
        let mut length = [0u8; 1];
        client.read_exact(&mut length).await?;
        let mut password = vec![0u8; length[0] as usize];
        client.read_exact(&mut password).await?;
        client.write_all(&[1, 0]).await?;
        Some(format!(
            "{}:{}",
            String::from_utf8_lossy(&user),
            String::from_utf8_lossy(&password)
        ))
    } else {
        client.write_all(&[5, 0]).await?;
        None
    };
    let mut request = [0u8; 4];
    client.read_exact(&mut request).await?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            std::net::Ipv4Addr::from(ip).to_string()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip).await?;
            format!("[{}]", std::net::Ipv6Addr::from(ip))
        }
        _ => {
            let mut length = [0u8; 1];
            client.read_exact(&mut length).await?;
            let mut name = vec![0u8; length[0] as usize];
            client.read_exact(&mut name).await?;
            String::from_utf8_lossy(&name).into_owned()
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port).await?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    asks.lock().unwrap().push(Ask {
        target: target.clone(),
        credentials,
    });
    match TcpStream::connect(target.as_str()).await {
        Ok(mut upstream) => {
            client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            tokio::io::copy_bidirectional(&mut client, &mut upstream).await?;
        }
        // 5 = connection refused.
        Err(_) => client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?,
    }
    Ok(())
}

fn is_ip_target(target: &str) -> bool {
    target.parse::<SocketAddr>().is_ok()
}

/// A delivery to `localhost:<port>` through `proxy_url` arrives with its original Host; the
/// proxy was asked only for checked IP addresses, with the credentials.
async fn delivers_through(kind: Kind, scheme: &str, expected_credentials: &str) {
    let proxy = TestProxy::start(kind).await;
    let proxy_url = format!("{scheme}://svc%40acme:s3cret@{}", proxy.addr);
    let server =
        TestServer::start_with(|c| c.egress_proxy = Some(proxy_url.parse().unwrap())).await;
    let receiver = Receiver::start().await;
    let port = receiver.addr.port();
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let url = format!("http://localhost:{port}/hook");
    let hook = create(&mut client, &token, webhook("proxied", &url)).await;
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "SUCCEEDED"], "{statuses:?}");
    let received = receiver.next().await;
    assert_eq!(received.path, "/hook");
    assert_eq!(
        received.header("host"),
        Some(format!("localhost:{port}").as_str())
    );
    let asks = proxy.asks();
    assert!(
        asks.iter().all(|ask| is_ip_target(&ask.target)),
        "the proxy was asked for a name: {asks:?}"
    );
    assert!(
        asks.iter()
            .any(|ask| ask.target == format!("127.0.0.1:{port}")),
        "{asks:?}"
    );
    assert!(
        asks.iter()
            .all(|ask| ask.credentials.as_deref() == Some(expected_credentials)),
        "{asks:?}"
    );
    let log = responses(&mut client, &token, &hook.id).await;
    assert_eq!(log[0].status_code, Some(200));
}

#[tokio::test]
async fn deliveries_go_through_an_http_connect_proxy_to_the_checked_address() {
    let basic = base64::engine::general_purpose::STANDARD.encode("svc@acme:s3cret");
    delivers_through(Kind::Connect, "http", &format!("Basic {basic}")).await;
}

#[tokio::test]
async fn deliveries_go_through_a_socks5_proxy_to_the_checked_address() {
    delivers_through(Kind::Socks5, "socks5", "svc@acme:s3cret").await;
}

#[tokio::test]
async fn a_target_the_guard_refuses_is_refused_without_asking_the_proxy() {
    for kind in [Kind::Connect, Kind::Socks5] {
        let proxy = TestProxy::start(kind).await;
        let scheme = match kind {
            Kind::Connect => "http",
            Kind::Socks5 => "socks5",
        };
        let proxy_url = format!("{scheme}://{}", proxy.addr);
        let server = TestServer::start_with(|c| {
            c.allow_private_targets = false;
            c.egress_proxy = Some(proxy_url.parse().unwrap());
        })
        .await;
        let receiver = Receiver::start().await;
        let port = receiver.addr.port();
        let token = server.writer("acme").await;
        let mut client = server.webhooks().await;
        for url in [
            format!("http://127.0.0.1:{port}/hook"),
            format!("http://localhost:{port}/hook"),
        ] {
            create(&mut client, &token, webhook(&url, &url)).await;
        }
        let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
        let finals: Vec<_> = statuses.iter().filter(|s| s.attempt > 0).collect();
        assert_eq!(finals.len(), 2, "{statuses:?}");
        for status in finals {
            assert_eq!(states(std::slice::from_ref(status)), ["FAILED"]);
            assert!(
                status.error.starts_with("refused target: ") && status.error.contains("loopback"),
                "{}",
                status.error
            );
        }
        assert_eq!(
            proxy.connections(),
            0,
            "the proxy was asked: {:?}",
            proxy.asks()
        );
        receiver.assert_quiet().await;
    }
}

#[tokio::test]
async fn a_dead_proxy_is_a_proxy_failure_that_neither_opens_the_breaker_nor_disables_the_webhook() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = closed.local_addr().unwrap();
    drop(closed);
    let server = TestServer::start_with(|c| {
        c.egress_proxy = Some(format!("http://svc:s3cret@{dead}").parse().unwrap());
        // Blamed on the endpoint, one failure would open its breaker for a minute and any
        // run of failures would disable the webhook.
        c.breaker_threshold = 1;
        c.breaker_cooldown = Duration::from_secs(60);
        c.auto_disable_after = Duration::from_millis(1);
    })
    .await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        webhook("behind", &receiver.url("/hook")),
    )
    .await;
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    // Every attempt of the schedule ran (none deferred by the breaker) and failed on the proxy.
    assert_eq!(
        states(&statuses),
        ["QUEUED", "RETRYING", "RETRYING", "RETRYING", "FAILED"]
    );
    let expected = format!("egress proxy: cannot reach the proxy at {dead}");
    for status in &statuses[1..] {
        assert!(status.error.starts_with(&expected), "{}", status.error);
        assert!(!status.error.contains("s3cret"), "{}", status.error);
    }
    let log = responses(&mut client, &token, &hook.id).await;
    assert_eq!(log.len(), 4);
    assert!(
        log.iter()
            .all(|r| r.status_code.is_none() && r.error.starts_with(&expected))
    );
    let (status, _, metrics) = http_raw(
        Method::GET,
        &format!("http://{}/metrics", server.http_addr),
        None,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let deferred = metrics
        .lines()
        .find(|line| line.starts_with("webhookd_deliveries_deferred_total "))
        .unwrap();
    assert_eq!(deferred, "webhookd_deliveries_deferred_total 0");
    // The webhook is still enabled, with no failure run and a closed breaker.
    let health = health(&server, &token, &hook.id).await;
    assert_eq!(health["is_webhook_enabled"], true, "{health}");
    assert_eq!(health["failing_since"], Value::Null, "{health}");
    assert_eq!(health["breaker_state"], "CLOSED", "{health}");
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn a_proxy_that_refuses_the_connect_is_named_in_the_error() {
    let proxy = TestProxy::start(Kind::Connect).await;
    let server = TestServer::start_with(|c| {
        c.egress_proxy = Some(format!("http://{}", proxy.addr).parse().unwrap());
        c.retry_schedule = Vec::new();
    })
    .await;
    // Nothing listens on the target port: the test proxy answers 502 to the CONNECT.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = closed.local_addr().unwrap();
    drop(closed);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        webhook("gone", &format!("http://{target}/")),
    )
    .await;
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "FAILED"]);
    let expected = format!(
        "egress proxy: the proxy at {} refused CONNECT {target}",
        proxy.addr
    );
    assert!(
        statuses[1].error.starts_with(&expected),
        "{}",
        statuses[1].error
    );
    assert_eq!(proxy.asks().len(), 1);
}
