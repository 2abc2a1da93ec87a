//! A graceful stop (SIGTERM) of the built binary: it ends within its drain period even while
//! producers emit and clients hold requests open, loses nothing it acknowledged, and (on the
//! embedded store) leaves a store the next start opens without replaying its journal.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use webhookd::grpc::pb;

use crate::process::Process;
use crate::support::*;

/// The drain period (`server::DRAIN`, 20 s), the store's close and the runtime's last second,
/// with room for a loaded machine.
const STOPS_WITHIN: Duration = Duration::from_secs(40);

/// What the embedded store logs when it opens a store closed cleanly.
const CLEAN_OPEN: &str = "the store was closed cleanly";

/// Emits "alert group created" events AG<producer>-<n> until webhookd stops answering;
/// each one it acknowledged is added to `acknowledged`.
async fn produce(
    mut client: pb::webhook_service_client::WebhookServiceClient<tonic::transport::Channel>,
    token: String,
    producer: usize,
    acknowledged: Arc<Mutex<HashSet<String>>>,
) {
    for n in 0.. {
        let id = format!("AG{producer}-{n}");
        let request = pb::EmitEventRequest {
            event_type: "alert group created".into(),
            data: Some(to_struct(serde_json::json!({"alert_group": {"id": id}}))),
            ..Default::default()
        };
        let Ok(stream) = client.emit_event(authed(&token, request)).await else {
            return;
        };
        // The ACCEPTED message is the acknowledgement; the rest of the stream is not waited for.
        match stream.into_inner().message().await {
            Ok(Some(accepted)) if states(std::slice::from_ref(&accepted)) == ["ACCEPTED"] => {
                acknowledged.lock().unwrap().insert(id);
            }
            _ => return,
        }
    }
}

#[tokio::test]
async fn sigterm_under_load_exits_and_every_acknowledged_event_is_delivered_after_the_restart() {
    let store = TestStore::new().await;
    let receiver = Receiver::start().await;
    // Slow answers: attempts are in flight when the stop comes.
    receiver.delay(Duration::from_millis(200));
    let first = Process::start(&store, &["--delivery-concurrency", "4"]).await;
    first.ready().await;
    let token = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    create(&mut client, &token, webhook("stop", &receiver.url("/hook"))).await;

    let acknowledged = Arc::new(Mutex::new(HashSet::new()));
    let mut producers = Vec::new();
    for producer in 0..4 {
        let client = connect_webhooks(first.grpc).await;
        producers.push(tokio::spawn(produce(
            client,
            token.clone(),
            producer,
            Arc::clone(&acknowledged),
        )));
    }
    eventually(|| async { (acknowledged.lock().unwrap().len() >= 200).then_some(()) }).await;

    first.ask_to_stop();
    let (status, logs) = first.exited(STOPS_WITHIN).await;
    assert!(status.success(), "exit: {status:?}\n{logs}");
    for producer in producers {
        producer.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();

    receiver.delay(Duration::ZERO);
    let second = Process::start(&store, &[]).await;
    second.ready().await;
    let mut delivered = HashSet::new();
    while !acknowledged.is_subset(&delivered) {
        let request = receiver.next().await;
        delivered.insert(
            request.json()["alert_group"]["id"]
                .as_str()
                .unwrap()
                .to_string(),
        );
    }
    assert!(delivered.is_superset(&acknowledged));
    let (status, logs) = second.terminate();
    assert!(status.success(), "exit: {status:?}");
    if store.postgres_url.is_none() {
        assert!(logs.contains(CLEAN_OPEN), "{logs}");
    }
}

#[tokio::test]
async fn clients_holding_requests_open_do_not_hold_the_stop() {
    let store = TestStore::new().await;
    let receiver = Receiver::start().await;
    // Every attempt takes longer than the drain period (and times out only after it), and
    // a failed one would be retried only after ten minutes: the event's status stream stays
    // open all that time.
    receiver.delay(Duration::from_secs(600));
    let args = [
        "--allow-private-targets",
        "--request-timeout",
        "60s",
        "--retry-schedule",
        "10m",
        "--retry-jitter",
        "false",
    ];
    let first = Process::spawn(&store, &args, Some(ADMIN_TOKEN)).await;
    first.ready().await;
    let token = TestServer::token_via(first.http).await;
    let mut client = connect_webhooks(first.grpc).await;
    create(&mut client, &token, webhook("held", &receiver.url("/hook"))).await;
    let mut held_streams = Vec::new();
    for i in 0..8 {
        let data = to_struct(serde_json::json!({"alert_group": {"id": format!("AG{i}")}}));
        let mut stream = emit_stream(&mut client, &token, "alert group created", Some(data)).await;
        let accepted = stream.message().await.unwrap().unwrap();
        assert_eq!(states(&[accepted]), ["ACCEPTED"]);
        held_streams.push(stream);
    }
    receiver.next().await;
    // And a REST request whose headers never end.
    let mut half_sent = tokio::net::TcpStream::connect(first.http).await.unwrap();
    half_sent
        .write_all(b"POST /api/v1/events HTTP/1.1\r\nHost: webhookd\r\n")
        .await
        .unwrap();

    first.ask_to_stop();
    let (status, logs) = first.exited(STOPS_WITHIN).await;
    assert!(status.success(), "exit: {status:?}\n{logs}");
    assert!(
        logs.contains("still busy at the end of the drain period"),
        "{logs}"
    );
    drop(held_streams);

    // The events whose attempts were cut were acknowledged: the next start delivers them.
    receiver.take_arrived().await;
    receiver.delay(Duration::ZERO);
    let second = Process::start(&store, &[]).await;
    second.ready().await;
    let mut delivered = HashSet::new();
    while delivered.len() < 8 {
        let request = receiver.next().await;
        if let Some(id) = request.json()["alert_group"]["id"].as_str() {
            delivered.insert(id.to_string());
        }
    }
    assert!(second.terminate().0.success());
}
