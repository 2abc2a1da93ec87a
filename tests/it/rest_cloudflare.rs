//! A Cloudflare user manages notification webhooks through webhookd's Cloudflare dialect:
//! the envelope on success and failure, `{id}` results, `type` inference, the secret that is
//! never returned but sent as `cf-webhook-auth`, account isolation, and one store shared
//! with the OnCall dialect and gRPC.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use webhookd::grpc::pb;

use crate::rest_oncall::call;
use crate::support::*;

fn webhooks(account: &str) -> String {
    format!("/client/v4/accounts/{account}/alerting/v3/destinations/webhooks")
}

fn assert_success(body: &Value) {
    assert_eq!(body["success"], true, "{body}");
    assert_eq!(body["errors"], json!([]), "{body}");
    assert_eq!(body["messages"], json!([]), "{body}");
}

/// A failure envelope whose errors all carry an integer code and a message.
fn assert_failure(body: &Value) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["result"], Value::Null, "{body}");
    assert_eq!(body["messages"], json!([]), "{body}");
    let errors = body["errors"].as_array().expect("errors");
    assert!(!errors.is_empty(), "{body}");
    for e in errors {
        assert!(e["code"].is_u64() && e["message"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn create_get_list_update_delete_in_the_envelope() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let bearer = format!("Bearer {token}");
    let auth = Some(bearer.as_str());
    let base = webhooks("acme");

    let (status, created) = call(
        &server,
        Method::POST,
        &base,
        auth,
        Some(json!({"name": "Slack Webhook", "url": "https://hooks.slack.com/services/Ds3fdBFbV/456464Gdd", "secret": "s3cr3t"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_success(&created);
    let result = created["result"].as_object().unwrap();
    assert_eq!(result.keys().collect::<Vec<_>>(), ["id"]);
    let id = created["result"]["id"].as_str().unwrap().to_string();

    let (status, fetched) = call(&server, Method::GET, &format!("{base}/{id}"), auth, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_success(&fetched);
    let result = &fetched["result"];
    let allowed = [
        "id",
        "created_at",
        "last_failure",
        "last_success",
        "name",
        "type",
        "url",
    ];
    assert!(
        result
            .as_object()
            .unwrap()
            .keys()
            .all(|k| allowed.contains(&k.as_str())),
        "{result}"
    );
    assert_eq!(result["id"], id.as_str());
    assert_eq!(result["name"], "Slack Webhook");
    assert_eq!(result["type"], "slack");
    assert_eq!(
        result["url"],
        "https://hooks.slack.com/services/Ds3fdBFbV/456464Gdd"
    );
    assert!(humantime::parse_rfc3339(result["created_at"].as_str().unwrap()).is_ok());
    assert!(!fetched.to_string().contains("s3cr3t"));

    let (status, listed) = call(&server, Method::GET, &base, auth, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_success(&listed);
    assert_eq!(listed["result"], json!([fetched["result"]]));

    let (status, updated) = call(
        &server,
        Method::PUT,
        &format!("{base}/{id}"),
        auth,
        Some(json!({"name": "Renamed", "url": "https://example.com/hook", "type": "generic"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_success(&updated);
    assert_eq!(updated["result"], json!({"id": id}));
    let (_, fetched) = call(&server, Method::GET, &format!("{base}/{id}"), auth, None).await;
    assert_eq!(fetched["result"]["name"], "Renamed");
    assert_eq!(fetched["result"]["type"], "generic");

    let (status, deleted) =
        call(&server, Method::DELETE, &format!("{base}/{id}"), auth, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_success(&deleted);
    let (status, body) = call(&server, Method::GET, &format!("{base}/{id}"), auth, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&body);
}

#[tokio::test]
async fn type_is_taken_as_given_or_inferred() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let base = webhooks("acme");
    for (body, expected) in [
        (
            json!({"name": "a", "url": "https://example.com/x"}),
            "generic",
        ),
        (
            json!({"name": "b", "url": "https://example.com/x", "type": "discord"}),
            "discord",
        ),
        (
            json!({"name": "c", "url": "https://chat.googleapis.com/v1/spaces/x"}),
            "gchat",
        ),
    ] {
        let (status, created) = call(&server, Method::POST, &base, Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{created}");
        let id = created["result"]["id"].as_str().unwrap();
        let (_, fetched) = call(
            &server,
            Method::GET,
            &format!("{base}/{id}"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(fetched["result"]["type"], expected);
    }
    let (status, body) = call(
        &server,
        Method::POST,
        &base,
        Some(&token),
        Some(json!({"name": "d", "url": "https://example.com", "type": "pager"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_failure(&body);
}

#[tokio::test]
async fn every_bad_request_gets_a_failure_envelope() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let reader = server.token("acme", &["webhooks:read"]).await;
    let other = server.writer("globex").await;
    let base = webhooks("acme");
    let auth = Some(token.as_str());
    let http = |path: &str| format!("http://{}{path}", server.http_addr);

    let (status, _, text) =
        http_raw(Method::POST, &http(&base), auth, Some("{not json"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_failure(&serde_json::from_str(&text).unwrap());

    let (status, body) = call(&server, Method::POST, &base, auth, Some(json!({}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_failure(&body);
    assert_eq!(body["errors"].as_array().unwrap().len(), 2, "{body}");

    for bad in [
        json!({"name": "x", "url": "https://example.com", "colour": "blue"}),
        json!({"name": 5, "url": "https://example.com"}),
        json!({"name": "x", "url": "ftp://example.com"}),
        json!(["not", "an", "object"]),
    ] {
        let (status, body) = call(&server, Method::POST, &base, auth, Some(bad.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert_failure(&body);
    }

    let (_, created) = call(
        &server,
        Method::POST,
        &webhooks("globex"),
        Some(&other),
        Some(json!({"name": "theirs", "url": "https://example.com"})),
    )
    .await;
    let foreign = created["result"]["id"].as_str().unwrap();
    for id in ["W0000000000ZZ", "garbage", foreign] {
        for method in [Method::GET, Method::PUT, Method::DELETE] {
            let (status, body) = call(
                &server,
                method.clone(),
                &format!("{base}/{id}"),
                auth,
                Some(json!({"name": "x", "url": "https://example.com"})),
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {id}");
            assert_failure(&body);
        }
    }

    // The path's account must be the token's: never another account's data.
    let (status, body) = call(&server, Method::GET, &webhooks("globex"), auth, None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_failure(&body);
    assert!(!body.to_string().contains("theirs"));
    // The error says which account the token belongs to.
    let message = body["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("this token belongs to account \"acme\", not \"globex\""),
        "{message}"
    );
    let (status, body) = call(
        &server,
        Method::GET,
        &format!("{}/{foreign}", webhooks("globex")),
        auth,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_failure(&body);

    let (status, body) = call(&server, Method::GET, &base, None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_failure(&body);
    let (status, body) = call(&server, Method::GET, &base, Some("Bearer nope"), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_failure(&body);
    let (status, body) = call(
        &server,
        Method::POST,
        &base,
        Some(&reader),
        Some(json!({"name": "x", "url": "https://example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_failure(&body);

    let (status, headers, text) =
        http_raw(Method::PATCH, &http(&base), auth, Some("{}"), &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert_failure(&serde_json::from_str(&text).unwrap());

    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (status, _, text) = http_raw(Method::POST, &http(&base), auth, Some(&huge), &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_failure(&serde_json::from_str(&text).unwrap());

    let (status, body) = call(
        &server,
        Method::GET,
        "/client/v4/accounts/acme/nothing-here",
        auth,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&body);
}

#[tokio::test]
async fn one_store_behind_cloudflare_oncall_and_grpc() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let base = webhooks("acme");
    let (_, created) = call(
        &server,
        Method::POST,
        &base,
        Some(&token),
        Some(
            json!({"name": "From Cloudflare", "url": "https://example.com/cf", "secret": "s3cr3t"}),
        ),
    )
    .await;
    let id = created["result"]["id"].as_str().unwrap().to_string();

    let (_, listed) = call(
        &server,
        Method::GET,
        "/api/v1/webhooks/",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(listed["count"], 1);
    let oncall = &listed["results"][0];
    assert_eq!(oncall["id"], id.as_str());
    assert_eq!(oncall["name"], "From Cloudflare");
    assert_eq!(oncall["url"], "https://example.com/cf");
    assert_eq!(oncall["trigger_type"], Value::Null);
    assert!(!listed.to_string().contains("s3cr3t"));

    let mut client = server.webhooks().await;
    let grpc = client
        .list_webhooks(authed(
            &token,
            pb::ListWebhooksRequest {
                page_size: 10,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(grpc.webhooks.len(), 1);
    assert_eq!(grpc.webhooks[0].id, id);
    assert_eq!(grpc.webhooks[0].name, "From Cloudflare");

    // Created with OnCall: listed by Cloudflare.
    let (_, made) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&token),
        Some(json!({"name": "From OnCall", "url": "https://example.com/oc", "trigger_type": "resolve"})),
    )
    .await;
    let (_, cf_list) = call(&server, Method::GET, &base, Some(&token), None).await;
    let names: Vec<&str> = cf_list["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["From Cloudflare", "From OnCall"]);

    // Deleted with OnCall: gone for Cloudflare.
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/webhooks/{id}/"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = call(
        &server,
        Method::GET,
        &format!("{base}/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_failure(&body);
    let oc_id = made["id"].as_str().unwrap();
    let (status, fetched) = call(
        &server,
        Method::GET,
        &format!("{base}/{oc_id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched["result"]["type"], "generic");
}

#[tokio::test]
async fn the_secret_goes_out_as_cf_webhook_auth_and_last_success_is_recorded() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    let base = webhooks("acme");
    let (status, created) = call(
        &server,
        Method::POST,
        &base,
        Some(&token),
        Some(json!({"name": "Signed", "url": receiver.url("/cf"), "secret": "s3cr3t"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["result"]["id"].as_str().unwrap().to_string();

    // No trigger types: any event type fires it.
    let (status, emitted) = call(
        &server,
        Method::POST,
        "/api/v1/events/",
        Some(&token),
        Some(json!({"event": {"type": "silence"}, "alert_group_id": "AG1"})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{emitted}");
    assert_eq!(emitted["deliveries"][0]["webhook_id"], id.as_str());
    let received = receiver.next().await;
    assert_eq!(received.path, "/cf");
    assert_eq!(received.header("cf-webhook-auth"), Some("s3cr3t"));

    let fetched = eventually(|| {
        let (server, token, path) = (&server, &token, format!("{base}/{id}"));
        async move {
            let (_, fetched) = call(server, Method::GET, &path, Some(token), None).await;
            fetched["result"]["last_success"]
                .is_string()
                .then_some(fetched)
        }
    })
    .await;
    assert!(humantime::parse_rfc3339(fetched["result"]["last_success"].as_str().unwrap()).is_ok());
    assert!(!fetched.to_string().contains("s3cr3t"));
}

#[tokio::test]
async fn an_update_from_cloudflare_go_with_an_empty_secret_keeps_the_stored_secret() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    let base = webhooks("acme");
    let (status, created) = call(
        &server,
        Method::POST,
        &base,
        Some(&token),
        Some(json!({"name": "Signed", "url": receiver.url("/cf"), "secret": "s3cr3t"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let path = format!("{base}/{}", created["result"]["id"].as_str().unwrap());

    // cloudflare-go's update body: every field, `secret` empty when it is not being changed.
    // Absent and null keep the secret too.
    for body in [
        json!({"name": "Renamed", "url": receiver.url("/cf"), "secret": "", "type": "generic"}),
        json!({"name": "Renamed", "url": receiver.url("/cf"), "secret": null}),
        json!({"name": "Renamed", "url": receiver.url("/cf")}),
    ] {
        let (status, updated) = call(&server, Method::PUT, &path, Some(&token), Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{updated}");
        assert_success(&updated);

        let (status, _) = call(
            &server,
            Method::POST,
            "/api/v1/events/",
            Some(&token),
            Some(json!({"event": {"type": "resolve"}})),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        assert_eq!(
            receiver.next().await.header("cf-webhook-auth"),
            Some("s3cr3t")
        );
    }

    // A new secret replaces it.
    let (status, _) = call(
        &server,
        Method::PUT,
        &path,
        Some(&token),
        Some(json!({"name": "Renamed", "url": receiver.url("/cf"), "secret": "n3w"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    call(
        &server,
        Method::POST,
        "/api/v1/events/",
        Some(&token),
        Some(json!({"event": {"type": "resolve"}})),
    )
    .await;
    assert_eq!(receiver.next().await.header("cf-webhook-auth"), Some("n3w"));
}
