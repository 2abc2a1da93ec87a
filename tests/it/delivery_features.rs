//! The delivery engine's production features through the real server: Standard Webhooks
//! signing and rotation, Cloudflare's cf-webhook-auth, destination formatters, several
//! URLs and triggers per webhook, structured filters, 410 Gone, Retry-After, redelivery.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use webhookd::grpc::pb;

use crate::support::*;

/// Verifies a Standard Webhooks signature header against a secret, as a receiver would.
pub fn signature_valid(secret: &str, request: &Received) -> bool {
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap())
        .unwrap();
    let id = request.header("webhook-id").unwrap();
    let timestamp = request.header("webhook-timestamp").unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&request.body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    request
        .header("webhook-signature")
        .unwrap()
        .split(' ')
        .any(|s| s == expected)
}

#[tokio::test]
async fn signed_deliveries_verify_and_a_rotated_secret_keeps_signing() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let secret = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            signing_secret: Some(secret.into()),
            ..webhook("signed", &receiver.url("/hook"))
        },
    )
    .await;
    assert_eq!(hook.signing_secret.as_deref(), Some("****************"));

    emit_all(&mut client, &token, "alert group created", json!({"n": 1})).await;
    let request = receiver.next().await;
    assert!(signature_valid(secret, &request));

    let rotated = client
        .rotate_signing_secret(authed(
            &token,
            pb::RotateSigningSecretRequest {
                webhook_id: hook.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .signing_secret;
    assert!(rotated.starts_with("whsec_") && rotated != secret);
    emit_all(&mut client, &token, "alert group created", json!({"n": 2})).await;
    let request = receiver.next().await;
    assert!(signature_valid(&rotated, &request), "new secret signs");
    assert!(
        signature_valid(secret, &request),
        "old secret still signs for 24 h"
    );
    assert_eq!(
        request
            .header("webhook-signature")
            .unwrap()
            .split(' ')
            .count(),
        2
    );
}

#[tokio::test]
async fn cloudflare_secrets_and_basic_auth_reach_the_receiver_but_not_the_log() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            secret: Some("cf-s3cret".into()),
            username: Some("bob".into()),
            password: Some("hunter2".into()),
            ..webhook("cf", &receiver.url("/hook"))
        },
    )
    .await;
    assert_eq!(hook.secret.as_deref(), Some("****************"));
    emit_all(&mut client, &token, "alert group created", json!({})).await;
    let request = receiver.next().await;
    assert_eq!(request.header("cf-webhook-auth"), Some("cf-s3cret"));
    assert_eq!(
        request.header("authorization"),
        Some("Basic Ym9iOmh1bnRlcjI=")
    );
    let log = responses(&mut client, &token, &hook.id).await;
    let logged = format!("{log:?}");
    assert!(
        !logged.contains("cf-s3cret")
            && !logged.contains("hunter2")
            && !logged.contains("Ym9iOmh1bnRlcjI=")
    );
}

#[tokio::test]
async fn credentials_in_a_url_are_sent_as_basic_auth_and_never_shown() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let with_credentials = receiver.url("/hook").replacen("://", "://bob:hunter2@", 1);
    let hook = create(&mut client, &token, webhook("in-url", &with_credentials)).await;

    // Shown masked over gRPC and REST.
    let masked = receiver
        .url("/hook")
        .replacen("://", "://bob:****************@", 1);
    assert_eq!(hook.url, masked);
    let (_, oncall) = http_json(
        hyper::Method::GET,
        &format!("http://{}/api/v1/webhooks/{}/", server.http_addr, hook.id),
        Some(&format!("Bearer {token}")),
        None,
    )
    .await;
    assert_eq!(oncall["url"], masked.as_str());

    // Sent as basic auth, without the credentials in the request line or Host.
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "SUCCEEDED"]);
    assert!(statuses.iter().all(|s| !s.url.contains("hunter2")));
    let request = receiver.next().await;
    assert_eq!(
        request.header("authorization"),
        Some("Basic Ym9iOmh1bnRlcjI=")
    );
    assert!(!request.header("host").unwrap_or_default().contains('@'));

    // An update that sends the masked URL back keeps the credentials.
    let renamed = pb::UpdateWebhookRequest {
        webhook: Some(pb::Webhook {
            id: hook.id.clone(),
            name: "renamed".into(),
            url: masked.clone(),
            ..Default::default()
        }),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["name".into(), "url".into()],
        }),
    };
    client
        .update_webhook(authed(&token, renamed))
        .await
        .unwrap();
    emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(
        receiver.next().await.header("authorization"),
        Some("Basic Ym9iOmh1bnRlcjI=")
    );

    let log = responses(&mut client, &token, &hook.id).await;
    let logged = format!("{log:?}");
    assert!(!logged.contains("hunter2") && !logged.contains("Ym9iOmh1bnRlcjI="));
    assert_eq!(log[0].url, masked);
}

#[tokio::test]
async fn destination_formatters_send_the_body_each_service_accepts() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    for kind in [
        "slack", "discord", "gchat", "feishu", "datadog", "opsgenie", "splunk", "generic",
    ] {
        create(
            &mut client,
            &token,
            pb::Webhook {
                destination_type: kind.into(),
                ..webhook(kind, &receiver.url(&format!("/{kind}")))
            },
        )
        .await;
    }
    let event = json!({"alert_group": {"id": "AG1", "title": "Disk full on db-1", "state": "firing", "permalinks": {"web": "https://oncall.example/AG1"}}});
    let statuses = emit_all(&mut client, &token, "alert group created", event.clone()).await;
    assert_eq!(
        states(&statuses)
            .iter()
            .filter(|s| **s == "SUCCEEDED")
            .count(),
        8
    );
    let mut bodies = std::collections::HashMap::new();
    for _ in 0..8 {
        let request = receiver.next().await;
        bodies.insert(
            request.path.trim_start_matches('/').to_string(),
            request.json(),
        );
    }
    assert!(
        bodies["slack"]["text"]
            .as_str()
            .unwrap()
            .contains("Disk full")
    );
    assert!(
        bodies["discord"]["content"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 2000
    );
    assert!(bodies["discord"]["embeds"][0]["title"].is_string());
    assert!(
        bodies["gchat"]["text"]
            .as_str()
            .unwrap()
            .contains("Disk full")
    );
    assert_eq!(bodies["feishu"]["msg_type"], "text");
    assert!(bodies["feishu"]["content"]["text"].is_string());
    assert!(bodies["datadog"]["title"].as_str().unwrap().chars().count() <= 100);
    assert!(bodies["datadog"]["text"].is_string());
    assert!(
        bodies["opsgenie"]["message"]
            .as_str()
            .unwrap()
            .chars()
            .count()
            <= 130
    );
    assert_eq!(bodies["splunk"]["event"]["alert_group"]["id"], "AG1");
    assert_eq!(bodies["generic"]["alert_group"], event["alert_group"]);
}

#[tokio::test]
async fn several_urls_and_triggers_per_webhook_and_structured_filters() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let fanout = create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_types: vec!["incident_triggered".into(), "incident_resolved".into()],
            urls: vec![receiver.url("/second")],
            http_method: "PUT".into(),
            description: "pages the on-call".into(),
            ..webhook("fan-out", &receiver.url("/first"))
        },
    )
    .await;
    assert_eq!(fanout.trigger_type, "incident_triggered");
    let condition =
        |field: &str, op: pb::ConditionOp, value: serde_json::Value| pb::FilterCondition {
            field: field.into(),
            op: op as i32,
            value: Some(to_struct(json!({"v": value})).fields.remove("v").unwrap()),
        };
    let filtered = create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_types: vec!["incident_triggered".into()],
            filters: Some(pb::FilterGroup {
                operator: pb::FilterOperator::And as i32,
                conditions: vec![condition(
                    "incident.service",
                    pb::ConditionOp::Equals,
                    json!("payments"),
                )],
                groups: vec![pb::FilterGroup {
                    operator: pb::FilterOperator::Or as i32,
                    conditions: vec![
                        condition(
                            "incident.priority",
                            pb::ConditionOp::In,
                            json!(["P1", "P2"]),
                        ),
                        condition(
                            "incident.title",
                            pb::ConditionOp::Regex,
                            json!("(?i)outage"),
                        ),
                    ],
                    groups: vec![],
                }],
            }),
            ..webhook("payments P1/P2", &receiver.url("/filtered"))
        },
    )
    .await;
    assert_eq!(filtered.filters.as_ref().unwrap().groups.len(), 1);

    let matching =
        json!({"incident": {"service": "payments", "priority": "P3", "title": "Total OUTAGE"}});
    let statuses = emit_all(&mut client, &token, "incident_triggered", matching).await;
    assert_eq!(
        states(&statuses)
            .iter()
            .filter(|s| **s == "SUCCEEDED")
            .count(),
        3,
        "{statuses:?}"
    );
    let mut paths: Vec<String> = Vec::new();
    for _ in 0..3 {
        let request = receiver.next().await;
        if request.path != "/filtered" {
            assert_eq!(request.method, "PUT");
        }
        paths.push(request.path);
    }
    paths.sort();
    assert_eq!(paths, ["/filtered", "/first", "/second"]);
    let log = responses(&mut client, &token, &fanout.id).await;
    assert_eq!(log.len(), 2, "each URL is logged on its own");

    let other = json!({"incident": {"service": "search", "priority": "P1", "title": "x"}});
    let statuses = emit_all(&mut client, &token, "incident_triggered", other).await;
    let skipped: Vec<_> = statuses
        .iter()
        .filter(|s| s.webhook_id == filtered.id)
        .collect();
    assert_eq!(
        states(&skipped.into_iter().cloned().collect::<Vec<_>>()).last(),
        Some(&"SKIPPED")
    );
    for _ in 0..2 {
        receiver.next().await;
    }
    receiver.assert_quiet().await;

    let bad = pb::Webhook {
        filters: Some(pb::FilterGroup {
            conditions: vec![condition("a", pb::ConditionOp::Regex, json!("("))],
            ..Default::default()
        }),
        ..webhook("bad filter", &receiver.url("/x"))
    };
    let error = client
        .create_webhook(authed(
            &token,
            pb::CreateWebhookRequest { webhook: Some(bad) },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn gone_disables_the_webhook_and_retry_after_is_honoured() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(&mut client, &token, webhook("gone", &receiver.url("/hook"))).await;
    receiver.answer(410);
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "FAILED"]);
    let fetched = client
        .get_webhook(authed(
            &token,
            pb::GetWebhookRequest {
                id: hook.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.is_webhook_enabled, Some(false));
    assert!(fetched.disabled_reason.contains("410"));
    // Re-enabling clears the reason.
    let update = pb::UpdateWebhookRequest {
        webhook: Some(pb::Webhook {
            id: hook.id,
            is_webhook_enabled: Some(true),
            ..Default::default()
        }),
        update_mask: None,
    };
    let enabled = client
        .update_webhook(authed(&token, update))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(enabled.disabled_reason, "");
    receiver.next().await;

    // A 429 with Retry-After: 1 waits at least a second although the schedule says 10 ms.
    let limited = Receiver::start().await;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "resolve".into(),
            ..webhook("limited", &limited.url("/hook"))
        },
    )
    .await;
    limited.answer(429);
    limited.retry_after(1);
    let mut stream = emit_stream(&mut client, &token, "resolve", None).await;
    stream.message().await.unwrap().unwrap(); // ACCEPTED
    stream.message().await.unwrap().unwrap(); // QUEUED
    let retrying = stream.message().await.unwrap().unwrap();
    assert_eq!(states(std::slice::from_ref(&retrying)), ["RETRYING"]);
    // The next attempt is due a second after the limited one began, not 10 ms after it.
    let millis = |t: prost_types::Timestamp| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000;
    let log = responses(&mut client, &token, &hook.id).await;
    let attempted = millis(log[0].timestamp.unwrap());
    let due = millis(retrying.next_attempt_at.unwrap());
    assert!(
        due - attempted >= 1000,
        "the next attempt is due {} ms after the 429",
        due - attempted
    );
}

#[tokio::test]
async fn failed_deliveries_can_be_redelivered_one_by_one_or_all_since_a_time() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            retry_schedule: vec!["5ms".into()],
            ..webhook("flaky", &receiver.url("/hook"))
        },
    )
    .await;
    let first = emit_all(&mut client, &token, "alert group created", json!({"n": 1})).await;
    emit_all(&mut client, &token, "alert group created", json!({"n": 2})).await;
    assert_eq!(states(&first).last(), Some(&"FAILED"));
    for _ in 0..4 {
        receiver.next().await;
    }
    receiver.answer(200);

    let one = client
        .redeliver_delivery(authed(
            &token,
            pb::RedeliverDeliveryRequest {
                delivery_id: first[0].delivery_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one.delivery_ids.len(), 1);
    assert_ne!(one.delivery_ids[0], first[0].delivery_id);
    assert_eq!(receiver.next().await.json()["n"], 1);

    let since = prost_types::Timestamp {
        seconds: 0,
        nanos: 0,
    };
    let all = client
        .redeliver_failed(authed(
            &token,
            pb::RedeliverFailedRequest {
                webhook_id: hook.id.clone(),
                since: Some(since),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.delivery_ids.len(), 2);
    let mut ns = vec![
        receiver.next().await.json()["n"].as_i64().unwrap(),
        receiver.next().await.json()["n"].as_i64().unwrap(),
    ];
    ns.sort();
    assert_eq!(ns, [1, 2]);

    let other = server.writer("globex").await;
    let error = client
        .redeliver_delivery(authed(
            &other,
            pb::RedeliverDeliveryRequest {
                delivery_id: first[0].delivery_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
    let error = client
        .redeliver_delivery(authed(
            &token,
            pb::RedeliverDeliveryRequest {
                delivery_id: "nope".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::NotFound);
    tokio::time::sleep(Duration::from_millis(0)).await;
}

#[tokio::test]
async fn nothing_stored_holds_any_kind_of_secret_in_clear() {
    // The receiver fails and the retry is an hour away: both deliveries stay pending with
    // their rendered requests stored for the retry.
    let server =
        TestServer::start_with(|c| c.retry_schedule = vec![Duration::from_secs(3600)]).await;
    let receiver = Receiver::start().await;
    receiver.answer(503);
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let secrets = [
        ("url credentials", "urlpass7f3a9c"),
        ("urls credentials", "urlspass7f3a9c"),
        ("a custom header value", "custom7f3a9c"),
        ("authorization_header", "authz7f3a9c"),
        ("password", "passwd7f3a9c"),
        ("the Cloudflare secret", "cfsecret7f3a9c"),
        ("the signing secret", "signingmarker7f3a9c"),
        ("the ed25519 signing key", "ed25519mark7f3a9c"),
    ];
    let with_credentials = |path: &str, credentials: &str| {
        receiver
            .url(path)
            .replacen("http://", &format!("http://{credentials}@"), 1)
    };
    let signing_secret = format!("whsec_{}AAAAAAAAAAAAA", secrets[6].1);
    create(
        &mut client,
        &token,
        pb::Webhook {
            urls: vec![with_credentials(
                "/second",
                &format!("carol:{}", secrets[1].1),
            )],
            custom_headers: [("X-Custom".to_string(), secrets[2].1.to_string())].into(),
            authorization_header: Some(format!("Bearer {}", secrets[3].1)),
            username: Some("bob".into()),
            password: Some(secrets[4].1.into()),
            secret: Some(secrets[5].1.into()),
            signing_secret: Some(signing_secret.clone()),
            ..webhook(
                "every secret",
                &with_credentials("/first", &format!("alice:{}", secrets[0].1)),
            )
        },
    )
    .await;
    // An ed25519 key (`whsk_` + base64 of its 32-byte seed) on a webhook of another trigger.
    create(
        &mut client,
        &token,
        pb::Webhook {
            trigger_type: "acknowledge".into(),
            signing_secret: Some(format!("whsk_{}{}=", secrets[7].1, "A".repeat(26))),
            ..webhook("ed25519 key", &receiver.url("/ed25519"))
        },
    )
    .await;
    let emit = pb::EmitEventRequest {
        event_type: "alert group created".into(),
        data: Some(to_struct(json!({"alert_group": {"id": "I1"}}))),
        ..Default::default()
    };
    let mut stream = client
        .emit_event(authed(&token, emit))
        .await
        .unwrap()
        .into_inner();
    let mut retrying = 0;
    while retrying < 2 {
        let status = tokio::time::timeout(Duration::from_secs(20), stream.message())
            .await
            .expect("stream stalled")
            .unwrap()
            .expect("the stream ended before both deliveries were retrying");
        retrying += usize::from(status.state() == pb::DeliveryState::Retrying);
    }
    // The secrets still work for delivery...
    for _ in 0..2 {
        let request = receiver.next().await;
        assert_eq!(request.header("cf-webhook-auth"), Some(secrets[5].1));
        assert_eq!(request.header("x-custom"), Some(secrets[2].1));
        let authorization = format!("Bearer {}", secrets[3].1);
        assert_eq!(
            request.header("authorization"),
            Some(authorization.as_str())
        );
        assert!(signature_valid(&signing_secret, &request));
    }
    // ...(an emit that matches nothing makes every earlier write durable)...
    assert!(
        emit_all(&mut client, &token, "escalation", json!({}))
            .await
            .is_empty()
    );
    // ...but nothing stored holds one in clear: no file of the data directory, no row of
    // any table on PostgreSQL.
    let key = std::fs::metadata(server.data_dir().join("secret.key")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);
    for (place, bytes) in server.store().contents().await {
        for (kind, secret) in secrets {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{place} holds {kind} in clear"
            );
        }
    }
}

#[tokio::test]
async fn an_allow_list_of_cidrs_admits_exactly_those_private_targets() {
    let server = TestServer::start_with(|c| {
        c.allow_private_targets = false;
        c.allow_cidrs = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        webhook("allowed", &receiver.url("/hook")),
    )
    .await;
    // IPv6 loopback is outside the allowed 127.0.0.0/8 (and stays on this machine regardless).
    let ipv6_loopback = format!("http://[::1]:{}/hook", receiver.addr.port());
    create(
        &mut client,
        &token,
        webhook("still refused", &ipv6_loopback),
    )
    .await;
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    let finals: Vec<_> = statuses
        .iter()
        .filter(|s| s.state != pb::DeliveryState::Queued as i32)
        .cloned()
        .collect();
    let mut outcomes = states(&finals);
    outcomes.sort();
    assert_eq!(outcomes, ["FAILED", "SUCCEEDED"], "{statuses:?}");
    let refused = finals
        .iter()
        .find(|s| s.state == pb::DeliveryState::Failed as i32)
        .unwrap();
    assert!(refused.error.contains("loopback"), "{}", refused.error);
    receiver.next().await;
}

#[tokio::test]
async fn max_attempts_caps_retries_and_long_bodies_are_logged_truncated() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    receiver.answer(500);
    let capped = create(
        &mut client,
        &token,
        pb::Webhook {
            max_attempts: 2,
            ..webhook("capped", &receiver.url("/hook"))
        },
    )
    .await;
    assert_eq!(capped.max_attempts, 2);
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "RETRYING", "FAILED"]);
    client
        .delete_webhook(authed(&token, pb::DeleteWebhookRequest { id: capped.id }))
        .await
        .unwrap();

    // A receiver answering 100 KB: the log keeps the first 20 KiB.
    let big = Receiver::start().await;
    big.answer_body("x".repeat(100 * 1024));
    let hook = create(&mut client, &token, webhook("verbose", &big.url("/hook"))).await;
    emit_all(&mut client, &token, "alert group created", json!({})).await;
    let log = responses(&mut client, &token, &hook.id).await;
    assert_eq!(log[0].content.as_ref().unwrap().len(), 20 * 1024);
}

#[tokio::test]
async fn a_url_repeated_in_urls_is_delivered_once_per_event() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        pb::Webhook {
            // `url` again in `urls`, and a template that renders to the same target.
            urls: vec![
                receiver.url("/same"),
                receiver.url("/{{ alert_group.target }}"),
                receiver.url("/other"),
            ],
            ..webhook("repeats", &receiver.url("/same"))
        },
    )
    .await;

    let statuses = emit_all(
        &mut client,
        &token,
        "alert group created",
        json!({"alert_group": {"target": "same"}}),
    )
    .await;
    let urls: Vec<&str> = statuses
        .iter()
        .filter(|s| states(std::slice::from_ref(s)) == ["QUEUED"])
        .map(|s| s.url.as_str())
        .collect();
    assert_eq!(urls, [receiver.url("/same"), receiver.url("/other")]);
    let mut paths = vec![receiver.next().await.path, receiver.next().await.path];
    paths.sort();
    assert_eq!(paths, ["/other", "/same"]);
    receiver.assert_quiet().await;
}
