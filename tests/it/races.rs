//! Concurrent writers never undo each other: a webhook name stays unique however many
//! creates race for it (over gRPC and OnCall REST at once), and a user's updates racing the
//! worker's auto-disable keep both changes. The server runs on a multi-threaded runtime so
//! the writers really run in parallel.

use std::sync::Arc;

use axum::http::{Method, StatusCode};
use futures::future::join_all;
use serde_json::json;
use tokio::sync::Barrier;
use tonic::transport::Channel;
use webhookd::grpc::pb;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;

use crate::support::*;

/// Creates `n` other webhooks in the account, each with a long description: every write's
/// name check then copies them all, which widens the window a lost update would need.
async fn crowd(client: &WebhookServiceClient<Channel>, token: &str, n: usize) {
    let description = "x".repeat(200_000);
    join_all((0..n).map(|i| {
        let (mut client, token) = (client.clone(), token.to_string());
        let description = description.clone();
        async move {
            let other = pb::Webhook {
                trigger_type: "resolve".into(),
                description,
                ..webhook(&format!("other {i}"), "https://example.com/other")
            };
            create(&mut client, &token, other).await
        }
    }))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_concurrent_creates_with_one_name_make_one_webhook() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let client = server.webhooks().await;
    crowd(&client, &token, 100).await;
    // Twenty writers, each on its own connection, released at once.
    let start = Arc::new(Barrier::new(20));
    let mut grpc = Vec::new();
    for i in 0..10 {
        let (mut client, token, start) = (server.webhooks().await, token.clone(), start.clone());
        grpc.push(tokio::spawn(async move {
            let request = pb::CreateWebhookRequest {
                webhook: Some(webhook("shared", &format!("https://example.com/grpc/{i}"))),
            };
            start.wait().await;
            client.create_webhook(authed(&token, request)).await
        }));
    }
    let rest = (0..10).map(|i| {
        let (url, auth, start) = (
            format!("http://{}/api/v1/webhooks/", server.http_addr),
            token.clone(),
            start.clone(),
        );
        tokio::spawn(async move {
            let body = json!({"name": "shared", "url": format!("https://example.com/rest/{i}"), "trigger_type": "escalation"});
            start.wait().await;
            http_json(Method::POST, &url, Some(&auth), Some(body)).await
        })
    });
    let (grpc, rest) = futures::join!(join_all(grpc), join_all(rest.collect::<Vec<_>>()));

    let mut created = 0;
    for result in grpc.into_iter().map(Result::unwrap) {
        match result {
            Ok(_) => created += 1,
            Err(status) => assert_eq!(status.code(), tonic::Code::AlreadyExists, "{status:?}"),
        }
    }
    for (status, body) in rest.into_iter().map(Result::unwrap) {
        match status {
            StatusCode::CREATED => created += 1,
            StatusCode::BAD_REQUEST => assert!(
                body["non_field_errors"][0]
                    .as_str()
                    .is_some_and(|m| m.contains("unique")),
                "{body}"
            ),
            other => panic!("unexpected {other}: {body}"),
        }
    }
    assert_eq!(created, 1);
    let (status, listed) = http_json(
        Method::GET,
        &format!("http://{}/api/v1/webhooks/?name=shared", server.http_addr),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["count"], 1, "{listed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn updates_racing_an_auto_disable_keep_both_changes() {
    let server = TestServer::start().await;
    let gone = Receiver::start().await;
    gone.answer(410);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    crowd(&client, &token, 50).await;

    for round in 0..5 {
        let racing = webhook(&format!("racing {round}"), &gone.url("/gone"));
        let hook = create(&mut client, &token, racing).await;
        let updates = {
            let (mut client, token, id) = (client.clone(), token.clone(), hook.id.clone());
            tokio::spawn(async move {
                for i in 0..40 {
                    let request = pb::UpdateWebhookRequest {
                        webhook: Some(pb::Webhook {
                            id: id.clone(),
                            description: format!("update {i}"),
                            ..Default::default()
                        }),
                        update_mask: None,
                    };
                    client
                        .update_webhook(authed(&token, request))
                        .await
                        .unwrap();
                }
            })
        };
        // The endpoint answers 410 Gone: the worker disables the webhook amid the updates.
        let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
        assert_eq!(states(&statuses), ["QUEUED", "FAILED"]);
        updates.await.unwrap();

        let fetched = client
            .get_webhook(authed(&token, pb::GetWebhookRequest { id: hook.id }))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(fetched.description, "update 39", "round {round}");
        assert_eq!(fetched.is_webhook_enabled, Some(false), "round {round}");
        assert!(
            fetched.disabled_reason.contains("410"),
            "{}",
            fetched.disabled_reason
        );
    }
}
