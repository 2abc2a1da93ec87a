//! Numbers in requests at the edges of their types get a clear answer, never a panic or a
//! wrapped-around value: OnCall page numbers beyond any listing, protobuf timestamps outside
//! protobuf's range, and retry delays beyond the documented week.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{Method, StatusCode};
use serde_json::json;
use webhookd::grpc::pb;

use crate::support::*;

#[tokio::test]
async fn huge_oncall_page_numbers_answer_the_last_page() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    for i in 0..3 {
        create(
            &mut client,
            &token,
            webhook(&format!("hook {i}"), "https://example.com/x"),
        )
        .await;
    }
    let get = |query: &str| {
        let url = format!("http://{}/api/v1/webhooks/{query}", server.http_addr);
        let token = token.clone();
        async move { http_json(Method::GET, &url, Some(&token), None).await }
    };
    for query in [
        "?page=18446744073709551615",
        "?page=99999999999999999999999999",
        "?perpage=2&page=18446744073709551615",
        "?perpage=18446744073709551615&page=18446744073709551615",
    ] {
        let (status, page) = get(query).await;
        assert_eq!(status, StatusCode::OK, "{query}: {page}");
        assert_eq!(
            page["current_page_number"], page["total_pages"],
            "{query}: {page}"
        );
        assert!(!page["results"].as_array().unwrap().is_empty(), "{query}");
    }
    let (_, page) = get("?perpage=18446744073709551615").await;
    assert_eq!(page["page_size"], 1000);
    assert_eq!(page["count"], 3);
}

#[tokio::test]
async fn timestamps_outside_protobufs_range_are_invalid_arguments() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        webhook("hook", "https://example.com/x"),
    )
    .await;
    for (seconds, nanos) in [
        (i64::MAX, 0),
        (i64::MIN, 0),
        (253_402_300_800, 0),
        (0, -1),
        (0, 1_000_000_000),
    ] {
        let request = pb::RedeliverFailedRequest {
            webhook_id: hook.id.clone(),
            since: Some(prost_types::Timestamp { seconds, nanos }),
        };
        let status = client
            .redeliver_failed(authed(&token, request))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{seconds}");
        assert_eq!(violated_fields(&status), ["since"]);
    }
    let latest = pb::RedeliverFailedRequest {
        webhook_id: hook.id,
        since: Some(prost_types::Timestamp {
            seconds: 253_402_300_799,
            nanos: 999_999_999,
        }),
    };
    assert!(
        client
            .redeliver_failed(authed(&token, latest))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn retry_delays_are_bounded_to_a_week() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    for schedule in [vec!["8d"], vec!["1s", "500000000y"], vec!["1s"; 101]] {
        let request = pb::CreateWebhookRequest {
            webhook: Some(pb::Webhook {
                retry_schedule: schedule.iter().map(|s| s.to_string()).collect(),
                ..webhook("slow", "https://example.com/x")
            }),
        };
        let status = client
            .create_webhook(authed(&token, request))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["retry_schedule"]);
    }

    // A week is accepted, and the retry is due a week from now (not wrapped into the past).
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    create(
        &mut client,
        &token,
        pb::Webhook {
            retry_schedule: vec!["7d".into()],
            ..webhook("weekly", &format!("http://{closed}/x"))
        },
    )
    .await;
    let mut stream = emit_stream(
        &mut client,
        &token,
        "alert group created",
        Some(to_struct(json!({}))),
    )
    .await;
    stream.message().await.unwrap().unwrap(); // ACCEPTED
    stream.message().await.unwrap().unwrap(); // QUEUED
    let retrying = stream.message().await.unwrap().unwrap();
    assert_eq!(states(std::slice::from_ref(&retrying)), ["RETRYING"]);
    let due = UNIX_EPOCH + Duration::from_secs(retrying.next_attempt_at.unwrap().seconds as u64);
    let wait = due.duration_since(SystemTime::now()).unwrap();
    assert!(wait > Duration::from_secs(6 * 24 * 3600), "{wait:?}");
}

#[test]
fn a_global_retry_delay_over_a_week_is_refused_naming_the_flag() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webhookd"))
        .args(["serve", "--retry-schedule", "5s,8d"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--retry-schedule") && stderr.contains("maximum"),
        "{stderr}"
    );
}
