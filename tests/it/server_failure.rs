//! A webhookd whose gRPC or HTTP server stops working ends at once with an error naming it
//! (and `main` turns that into one error line and a non-zero exit), instead of running on
//! half deaf until the next SIGTERM. The listener is broken for real: the test keeps a
//! second handle on the listening socket and shuts it down. Runs on the backend the suite
//! selects (sled, or PostgreSQL under scripts/with-postgres).

use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::support::*;

/// A listener on 127.0.0.1:0 for the server, and a second handle on the same socket.
fn listener() -> (tokio::net::TcpListener, std::net::TcpListener, SocketAddr) {
    let std = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std.set_nonblocking(true).unwrap();
    let handle = std.try_clone().unwrap();
    let addr = std.local_addr().unwrap();
    (
        tokio::net::TcpListener::from_std(std).unwrap(),
        handle,
        addr,
    )
}

/// Starts webhookd, breaks the listener `break_grpc` chooses once the server answers, and
/// returns the error `run` ended with, and the other server's address.
async fn break_a_listener(break_grpc: bool) -> (String, SocketAddr) {
    let store = TestStore::new().await;
    let (grpc, grpc_handle, grpc_addr) = listener();
    let (http, http_handle, http_addr) = listener();
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(webhookd::run(store.config(), grpc, http, shutdown.clone()));
    let _stop = shutdown.drop_guard();
    TestServer::token_via(http_addr).await;
    connect_webhooks(grpc_addr).await;

    let (broken, other) = if break_grpc {
        (grpc_handle, http_addr)
    } else {
        (http_handle, grpc_addr)
    };
    socket2::SockRef::from(&broken)
        .shutdown(Shutdown::Both)
        .unwrap();
    let ended = tokio::time::timeout(Duration::from_secs(10), running)
        .await
        .expect("webhookd kept running with a broken listener")
        .unwrap();
    (
        ended
            .expect_err("webhookd ended without an error")
            .to_string(),
        other,
    )
}

#[tokio::test]
async fn a_broken_grpc_listener_ends_webhookd_with_an_error() {
    let (error, http_addr) = break_a_listener(true).await;
    assert!(
        error.contains("gRPC server") && error.contains("stopped accepting"),
        "{error}"
    );
    // The other server went down with it.
    assert!(TcpStream::connect(http_addr).await.is_err());
}

#[tokio::test]
async fn a_broken_http_listener_ends_webhookd_with_an_error() {
    let (error, grpc_addr) = break_a_listener(false).await;
    assert!(
        error.contains("HTTP server") && error.contains("stopped accepting"),
        "{error}"
    );
    assert!(TcpStream::connect(grpc_addr).await.is_err());
}
