//! An operator cancels a delivery while its attempt is on the wire. The cancel is final: the
//! late answer is logged (ListResponses shows it) but the delivery stays CANCELLED and is not
//! retried, whatever the receiver said. And for ordering keys the order stays strict: the
//! next delivery of the key waits until the attempt in flight has ended, so the receiver never
//! holds two of one key at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Semaphore, mpsc};
use tonic::transport::Channel;
use webhookd::grpc::pb;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;

use crate::support::*;

type Client = WebhookServiceClient<Channel>;

/// A real HTTP receiver on 127.0.0.1 that holds every request until the test lets one
/// answer (with the status set then), and remembers how many it held at once.
struct HeldReceiver {
    url: String,
    arrivals: Mutex<mpsc::UnboundedReceiver<Value>>,
    answers: Arc<Semaphore>,
    status: Arc<AtomicU16>,
    most_at_once: Arc<AtomicUsize>,
}

impl HeldReceiver {
    async fn start() -> HeldReceiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/held", listener.local_addr().unwrap());
        let (arrived, arrivals) = mpsc::unbounded_channel();
        let answers = Arc::new(Semaphore::new(0));
        let status = Arc::new(AtomicU16::new(200));
        let most_at_once = Arc::new(AtomicUsize::new(0));
        let holding = Arc::new(AtomicUsize::new(0));
        let (a, s, m) = (answers.clone(), status.clone(), most_at_once.clone());
        let app = axum::Router::new().fallback(move |body: Bytes| {
            let (arrived, a, s, m, holding) = (
                arrived.clone(),
                a.clone(),
                s.clone(),
                m.clone(),
                holding.clone(),
            );
            async move {
                let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
                m.fetch_max(now, Ordering::SeqCst);
                let _ = arrived.send(serde_json::from_slice(&body).unwrap_or(Value::Null));
                a.acquire().await.unwrap().forget();
                let code = StatusCode::from_u16(s.load(Ordering::SeqCst)).unwrap();
                holding.fetch_sub(1, Ordering::SeqCst);
                (code, "{}")
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        HeldReceiver {
            url,
            arrivals: Mutex::new(arrivals),
            answers,
            status,
            most_at_once,
        }
    }

    /// The alert group id of the next request to arrive (waiting up to 10 s).
    async fn next(&self) -> String {
        let mut arrivals = self.arrivals.lock().await;
        let body = tokio::time::timeout(Duration::from_secs(10), arrivals.recv())
            .await
            .expect("no request reached the receiver")
            .unwrap();
        body["alert_group"]["id"]
            .as_str()
            .unwrap_or_default()
            .into()
    }

    /// Lets one held request answer `status`.
    fn answer_one(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
        self.answers.add_permits(1);
    }

    /// Asserts that no further request arrives within a grace period longer than the test
    /// servers' millisecond retry schedule.
    async fn assert_quiet(&self) {
        let mut arrivals = self.arrivals.lock().await;
        let late = tokio::time::timeout(Duration::from_millis(300), arrivals.recv()).await;
        assert!(late.is_err(), "unexpected request: {late:?}");
    }
}

async fn get_delivery(client: &mut Client, token: &str, id: &str) -> pb::Delivery {
    client
        .get_delivery(authed(token, pb::GetDeliveryRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

async fn cancel(client: &mut Client, token: &str, id: &str) -> pb::Delivery {
    client
        .cancel_delivery(authed(token, pb::CancelDeliveryRequest { id: id.into() }))
        .await
        .unwrap()
        .into_inner()
}

/// Polls the delivery until its attempt is recorded (its attempt count reaches 1).
async fn attempted(client: &Client, token: &str, id: &str) -> pb::Delivery {
    eventually(|| {
        let mut client = client.clone();
        async move {
            let d = get_delivery(&mut client, token, id).await;
            (d.attempts >= 1).then_some(d)
        }
    })
    .await
}

const CANCELLED: i32 = pb::DeliveryState::Cancelled as i32;

#[tokio::test]
async fn a_delivery_cancelled_mid_attempt_stays_cancelled_whatever_the_receiver_answers() {
    let server = TestServer::start().await;
    let receiver = HeldReceiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(&mut client, &token, webhook("held", &receiver.url)).await;

    for (alert, answer) in [("A1", 503), ("A2", 200)] {
        let id = emit_keyed(&mut client, &token, alert, "").await;
        assert_eq!(receiver.next().await, alert);
        // The attempt is on the wire: the operator cancels, then the receiver answers.
        assert_eq!(cancel(&mut client, &token, &id).await.state, CANCELLED);
        receiver.answer_one(answer);

        let after = attempted(&client, &token, &id).await;
        assert_eq!(
            after.state, CANCELLED,
            "{alert} answered {answer}: {after:?}"
        );
        assert_eq!(after.next_attempt_at, None);
        assert_eq!(after.last_status_code, Some(i32::from(answer)));
    }
    // No retry of the refused one; both late answers are in the log.
    receiver.assert_quiet().await;
    let logged: Vec<Option<i32>> = responses(&mut client, &token, &hook.id)
        .await
        .iter()
        .map(|r| r.status_code)
        .collect();
    assert_eq!(logged, [Some(200), Some(503)]);
    let retrying = client
        .list_deliveries(authed(
            &token,
            pb::ListDeliveriesRequest {
                states: vec![
                    pb::DeliveryState::Retrying as i32,
                    pb::DeliveryState::Succeeded as i32,
                ],
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(retrying.deliveries.is_empty(), "{retrying:?}");
}

#[tokio::test]
async fn cancelling_a_keys_head_in_flight_holds_the_next_until_that_attempt_ends() {
    let server = TestServer::start().await;
    let receiver = HeldReceiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(&mut client, &token, webhook("ordered", &receiver.url)).await;

    let first = emit_keyed(&mut client, &token, "K1", "K").await;
    assert_eq!(receiver.next().await, "K1");
    let second = emit_keyed(&mut client, &token, "K2", "K").await;
    assert_eq!(cancel(&mut client, &token, &first).await.state, CANCELLED);

    // K1's attempt is still on the wire: K2 waits behind it, and the metrics say so.
    let blocked = metric(&scrape(&server).await, "webhookd_ordering_blocked_keys");
    assert_eq!(blocked, 1.0, "K2 was released while K1 was in flight");
    let waiting = get_delivery(&mut client, &token, &second).await;
    assert_eq!(
        (waiting.state, waiting.attempts),
        (pb::DeliveryState::Queued as i32, 0)
    );

    // The attempt ends (the receiver took it): only now K2 goes out, one at a time.
    receiver.answer_one(200);
    assert_eq!(receiver.next().await, "K2");
    receiver.answer_one(200);
    eventually(|| {
        let mut client = client.clone();
        let (token, second) = (token.clone(), second.clone());
        async move {
            let d = get_delivery(&mut client, &token, &second).await;
            (d.state == pb::DeliveryState::Succeeded as i32).then_some(())
        }
    })
    .await;
    assert_eq!(receiver.most_at_once.load(Ordering::SeqCst), 1);
    assert_eq!(
        get_delivery(&mut client, &token, &first).await.state,
        CANCELLED
    );
    let blocked = metric(&scrape(&server).await, "webhookd_ordering_blocked_keys");
    assert_eq!(blocked, 0.0);
}
