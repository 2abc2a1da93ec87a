//! What one instance changes, the others act on at once (run when WEBHOOKD_TEST_POSTGRES_URL
//! names a server): each instance reads webhooks and tokens through caches that the writes of
//! every instance invalidate (README "Scaling out": within 1 s at the most).

use std::time::Duration;

use serde_json::json;
use tonic::Code;
use webhookd::grpc::pb;

use crate::support::*;

/// The documented bound (1 s) with room for a loaded test machine.
const DEADLINE: Duration = Duration::from_secs(10);

fn disable(id: &str) -> pb::UpdateWebhookRequest {
    pb::UpdateWebhookRequest {
        webhook: Some(pb::Webhook {
            id: id.into(),
            is_webhook_enabled: Some(false),
            ..Default::default()
        }),
        update_mask: None,
    }
}

#[tokio::test]
async fn a_webhook_disabled_through_one_instance_stops_being_delivered_by_another() {
    let Some(instances) = TestServer::cluster(2).await else {
        return;
    };
    let (a, b) = (&instances[0], &instances[1]);
    let receiver = Receiver::start().await;
    let token = a.writer("acme").await;
    let (mut via_a, mut via_b) = (a.webhooks().await, b.webhooks().await);
    let hook = create(
        &mut via_a,
        &token,
        pb::Webhook {
            retry_schedule: vec!["20ms".into(); 50],
            ..webhook("flaky", &receiver.url("/hook"))
        },
    )
    .await;

    // B delivers an event emitted through it (B now holds the webhook as it was).
    let statuses = emit_all(&mut via_b, &token, "alert group created", json!({"n": 1})).await;
    assert_eq!(states(&statuses).last(), Some(&"SUCCEEDED"));
    receiver.next().await;

    // The endpoint fails; B keeps retrying an event emitted through it...
    receiver.answer(500);
    let retrying = {
        let (mut client, token) = (via_b.clone(), token.clone());
        tokio::spawn(async move {
            emit_all(&mut client, &token, "alert group created", json!({"n": 2})).await
        })
    };
    receiver.next().await;

    // ...until the webhook is disabled through A: B's next attempt finds it disabled.
    via_a
        .update_webhook(authed(&token, disable(&hook.id)))
        .await
        .unwrap();
    let statuses = tokio::time::timeout(DEADLINE, retrying)
        .await
        .expect("B kept delivering to the disabled webhook")
        .unwrap();
    let last = statuses.last().unwrap();
    assert_eq!(states(std::slice::from_ref(last)), ["FAILED"]);
    assert_eq!(last.error, "webhook is disabled");

    // Events emitted through B soon match nothing.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let statuses = emit_all(&mut via_b, &token, "alert group created", json!({"n": 3})).await;
        if statuses.is_empty() {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "B still matches it");
    }
}

#[tokio::test]
async fn a_token_revoked_through_one_instance_is_refused_by_another() {
    let Some(instances) = TestServer::cluster(2).await else {
        return;
    };
    let (a, b) = (&instances[0], &instances[1]);
    let issued = a
        .admin()
        .await
        .create_api_token(authed(
            ADMIN_TOKEN,
            pb::CreateApiTokenRequest {
                account_id: "acme".into(),
                scopes: vec!["webhooks:read".into()],
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let mut via_b = b.webhooks().await;
    let list = |token: &str| authed(token, pb::ListWebhooksRequest::default());
    via_b.list_webhooks(list(&issued.token)).await.unwrap();

    a.admin()
        .await
        .revoke_api_token(authed(
            ADMIN_TOKEN,
            pb::RevokeApiTokenRequest {
                id: issued.id.clone(),
            },
        ))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        match via_b.list_webhooks(list(&issued.token)).await {
            Err(refused) => {
                assert_eq!(refused.code(), Code::Unauthenticated);
                break;
            }
            Ok(_) => assert!(
                tokio::time::Instant::now() < deadline,
                "B still accepts the revoked token"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
