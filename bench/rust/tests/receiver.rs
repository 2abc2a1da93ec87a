//! The receiver as the load generator and webhookd use it: deliveries to `/ok/<sink>` are
//! counted per sink, an event delivered to two webhooks is one event, a repeated delivery id
//! answered 2xx before is a duplicate (a retry after a 500 is not), the summary's latency comes
//! from the send time in the body, and a check names the events never answered 2xx; the
//! binary's threads, each owning its connections, share one set of sinks, and a sink counts
//! the connections its deliveries came on.

use std::time::Duration;

use bytes::Bytes;
use hyper::StatusCode;
use tokio::net::TcpListener;
use webhookd_bench::conn::Conn;
use webhookd_bench::event::{self, event_json};
use webhookd_bench::receiver::Receiver;
use webhookd_bench::sink::{SinkCheck, SinkSummary};

async fn start() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(Receiver::new(Duration::from_millis(50)).serve(listener));
    addr
}

async fn deliver(
    conn: &mut Conn,
    path: &str,
    event: &str,
    delivery: &str,
    body: String,
) -> StatusCode {
    let headers = [("x-webhookd-event-id", event), ("webhook-id", delivery)];
    conn.post(path, &headers, Bytes::from(body))
        .await
        .unwrap()
        .status
}

async fn summary(conn: &mut Conn, query: &str) -> SinkSummary {
    let reply = conn.get(&format!("/_sink/{query}"), &[]).await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    serde_json::from_slice(&reply.body).unwrap()
}

#[tokio::test]
async fn deliveries_are_counted_per_sink_with_duplicates_and_latency() {
    let addr = start().await;
    let mut conn = Conn::new(&addr);
    let sent = event::unix_ns();
    let body = || event_json(1, sent);
    assert_eq!(
        deliver(&mut conn, "/ok/a", "E1", "D1", body()).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&mut conn, "/ok/a", "E1", "D2", body()).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&mut conn, "/ok/a", "E1", "D1", body()).await,
        StatusCode::OK
    );
    assert_eq!(
        deliver(&mut conn, "/slow/b", "E9", "D9", body()).await,
        StatusCode::OK
    );

    let stats = conn.get("/_stats", &[]).await.unwrap();
    let counts: serde_json::Value = serde_json::from_slice(&stats.body).unwrap();
    assert_eq!(counts, serde_json::json!({"a": 3, "b": 1}));

    let a = summary(&mut conn, "a").await;
    assert_eq!((a.arrivals, a.events, a.duplicates), (3, 1, 1));
    assert_eq!(
        a.connections, 1,
        "all three came on one keep-alive connection"
    );
    assert_eq!(a.latency.n, 1);
    assert!(a.latency.max_ms > 0.0);
    assert_eq!(a.without_sent_time, 0);

    let later = event::unix_ns() + 1;
    let none = summary(&mut conn, &format!("a?from_ns={later}")).await;
    assert_eq!((none.window.arrivals, none.latency.n), (0, 0));
    assert_eq!(none.arrivals, 3, "the totals do not depend on the window");
}

#[tokio::test]
async fn a_sender_without_webhookd_headers_is_identified_by_its_body() {
    let addr = start().await;
    let mut conn = Conn::new(&addr);
    for body in [
        r#"{"event_id":"x1"}"#,
        r#"{"id":"x2"}"#,
        r#"{"event":{"id":"x3"}}"#,
        r#"{"id":"x1"}"#,
        "not json",
    ] {
        let reply = conn
            .post("/ok/other", &[], Bytes::from(body))
            .await
            .unwrap();
        assert_eq!(reply.status, StatusCode::OK);
    }
    let s = summary(&mut conn, "other").await;
    assert_eq!(
        (
            s.arrivals,
            s.events,
            s.without_event_id,
            s.without_sent_time
        ),
        (5, 3, 1, 3)
    );
}

#[tokio::test]
async fn unknown_paths_and_bad_windows_get_clear_errors() {
    let addr = start().await;
    let mut conn = Conn::new(&addr);
    for path in ["/", "/ok/", "/ok//x", "/elsewhere/x", "/_sink/"] {
        let reply = conn.get(path, &[]).await.unwrap();
        assert_eq!(reply.status, StatusCode::NOT_FOUND, "{path}");
    }
    let reply = conn.get("/_sink/a?from_ns=yesterday", &[]).await.unwrap();
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(String::from_utf8_lossy(&reply.body).contains("unix nanoseconds"));
    let huge = Bytes::from(vec![b'x'; 2 << 20]);
    let reply = conn.post("/ok/a", &[], huge).await.unwrap();
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn a_failing_receiver_answers_500_and_counts_only_repeats_of_a_2xx_as_duplicates() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let failing = listener.local_addr().unwrap().to_string();
    tokio::spawn(Receiver::failing(Duration::from_millis(1), 100).serve(listener));
    let mut conn = Conn::new(&failing);
    let body = || event_json(1, event::unix_ns());
    for _ in 0..3 {
        let status = deliver(&mut conn, "/ok/f", "E1", "D1", body()).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    }
    let f = summary(&mut conn, "f").await;
    assert_eq!((f.arrivals, f.failed_answers, f.duplicates), (3, 3, 0));

    // The check names the acknowledged events that never got a 2xx.
    let addr = start().await;
    let mut conn = Conn::new(&addr);
    deliver(&mut conn, "/ok/c", "E1", "D1", body()).await;
    deliver(&mut conn, "/ok/c", "E1", "D1", body()).await;
    let reply = conn
        .post("/_check/c", &[], Bytes::from("E1\nE2\n"))
        .await
        .unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    let check: SinkCheck = serde_json::from_slice(&reply.body).unwrap();
    assert_eq!(
        (check.asked, check.missing, check.delivered_events),
        (2, 1, 1)
    );
    assert_eq!(check.duplicates.len(), 1);
}

#[tokio::test]
async fn the_receiver_binary_spreads_its_connections_over_threads_sharing_the_sinks() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let receiver = Receiver::new(Duration::from_millis(1));
    std::thread::spawn(move || receiver.serve_on_threads(listener, 2));
    let mut conns: Vec<Conn> = (0..4).map(|_| Conn::new(&addr)).collect();
    let sent = event::unix_ns();
    for (n, conn) in conns.iter_mut().enumerate() {
        let event = format!("E{n}");
        let status = deliver(conn, "/ok/t", &event, &event, event_json(n as u64, sent)).await;
        assert_eq!(status, StatusCode::OK);
    }
    let t = summary(&mut conns[0], "t").await;
    assert_eq!((t.arrivals, t.events, t.duplicates), (4, 4, 0));
    assert_eq!(t.connections, 4, "one delivery on each connection");
    assert_eq!(t.latency.n, 4);
}
