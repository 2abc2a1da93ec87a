//! Tokens and tenancy: no or bad tokens are UNAUTHENTICATED, scopes limit what a token may
//! do, revoked tokens stop working, and another account's webhooks do not exist for you.

use axum::http::{Method, StatusCode};
use tonic::Code;
use webhookd::grpc::pb;

use crate::support::*;

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let server = TestServer::start().await;
    let mut client = server.webhooks().await;
    let anonymous = client
        .list_webhooks(pb::ListWebhooksRequest::default())
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
    let bogus = client
        .list_webhooks(authed(
            "whk_not-a-token",
            pb::ListWebhooksRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(bogus.code(), Code::Unauthenticated);
    assert!(!bogus.message().contains("whk_not-a-token"));
}

#[tokio::test]
async fn a_read_only_token_reads_but_cannot_write_or_emit() {
    let server = TestServer::start().await;
    let writer = server.writer("acme").await;
    let reader = server.token("acme", &["webhooks:read"]).await;
    let mut client = server.webhooks().await;
    let created = create(&mut client, &writer, webhook("hook", "https://example.com")).await;
    client
        .get_webhook(authed(
            &reader,
            pb::GetWebhookRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap();
    let denied = client
        .create_webhook(authed(
            &reader,
            pb::CreateWebhookRequest {
                webhook: Some(webhook("x", "https://example.com")),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let emit = pb::EmitEventRequest {
        event_type: "alert group created".into(),
        ..Default::default()
    };
    assert_eq!(
        client
            .emit_event(authed(&reader, emit))
            .await
            .unwrap_err()
            .code(),
        Code::PermissionDenied
    );
    let writer_only = server.token("acme", &["webhooks:write"]).await;
    let list = client
        .list_webhooks(authed(&writer_only, pb::ListWebhooksRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(list.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn revoked_tokens_are_refused_from_then_on() {
    let server = TestServer::start().await;
    let mut admin = server.admin().await;
    let issued = admin
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
    assert_eq!(issued.account_id, "acme");
    let mut client = server.webhooks().await;
    client
        .list_webhooks(authed(&issued.token, pb::ListWebhooksRequest::default()))
        .await
        .unwrap();
    admin
        .revoke_api_token(authed(
            ADMIN_TOKEN,
            pb::RevokeApiTokenRequest {
                id: issued.id.clone(),
            },
        ))
        .await
        .unwrap();
    let refused = client
        .list_webhooks(authed(&issued.token, pb::ListWebhooksRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // Revoking over REST works the same way, and unknown ids are 404.
    let token = server.token("acme", &["webhooks:read"]).await;
    let url = format!(
        "http://{}/admin/v1/tokens/{}",
        server.http_addr, "T0000000000000"
    );
    let (status, _) = http_json(
        Method::DELETE,
        &url,
        Some(&format!("Bearer {ADMIN_TOKEN}")),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    client
        .list_webhooks(authed(&token, pb::ListWebhooksRequest::default()))
        .await
        .unwrap();
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_token_and_valid_input() {
    let server = TestServer::start().await;
    let url = format!("http://{}/admin/v1/tokens", server.http_addr);
    let body = serde_json::json!({"account_id": "acme", "scopes": ["webhooks:read"]});
    let (status, error) = http_json(Method::POST, &url, None, Some(body.clone())).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(error["detail"].is_string());
    let account_token = server.writer("acme").await;
    let (status, _) = http_json(Method::POST, &url, Some(&account_token), Some(body)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let admin = format!("Bearer {ADMIN_TOKEN}");
    let (status, error) = http_json(
        Method::POST,
        &url,
        Some(&admin),
        Some(serde_json::json!({"account_id": "", "scopes": ["root"]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        error["account_id"].is_array() && error["scopes"].is_array(),
        "{error}"
    );
    let (status, _, text) =
        http_raw(Method::POST, &url, Some(&admin), Some("{not json"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(text.contains("JSON parse error"), "{text}");
    let (status, error) = http_json(Method::GET, &url, Some(&admin), None).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(error["detail"].is_string());

    // `curl -d '{...}'` labels JSON as a form: the admin API reads it all the same.
    let (status, _, text) = http_raw(
        Method::POST,
        &url,
        Some(&admin),
        Some(r#"{"account_id": "acme", "scopes": ["webhooks:read"]}"#),
        &[("content-type", "application/x-www-form-urlencoded")],
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");

    let mut admin_client = server.admin().await;
    let denied = admin_client
        .create_api_token(authed(
            &account_token,
            pb::CreateApiTokenRequest {
                account_id: "evil".into(),
                scopes: vec!["webhooks:write".into()],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::Unauthenticated);
    let invalid = admin_client
        .create_api_token(authed(
            ADMIN_TOKEN,
            pb::CreateApiTokenRequest {
                account_id: "acme".into(),
                scopes: vec![],
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn another_accounts_webhooks_do_not_exist_for_you() {
    let server = TestServer::start().await;
    let acme = server.writer("acme").await;
    let globex = server.writer("globex").await;
    let mut client = server.webhooks().await;
    let theirs = create(
        &mut client,
        &acme,
        webhook("acme hook", "https://example.com"),
    )
    .await;
    // Same name in another account is fine.
    create(
        &mut client,
        &globex,
        webhook("acme hook", "https://example.com"),
    )
    .await;

    let get = client
        .get_webhook(authed(
            &globex,
            pb::GetWebhookRequest {
                id: theirs.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);
    let update = pb::UpdateWebhookRequest {
        webhook: Some(pb::Webhook {
            id: theirs.id.clone(),
            name: "pwned".into(),
            ..Default::default()
        }),
        update_mask: None,
    };
    assert_eq!(
        client
            .update_webhook(authed(&globex, update))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert_eq!(
        client
            .delete_webhook(authed(
                &globex,
                pb::DeleteWebhookRequest {
                    id: theirs.id.clone()
                }
            ))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let responses = pb::ListResponsesRequest {
        webhook_id: theirs.id.clone(),
        ..Default::default()
    };
    assert_eq!(
        client
            .list_responses(authed(&globex, responses))
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    let listed = client
        .list_webhooks(authed(&globex, pb::ListWebhooksRequest::default()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.total_size, 1);
    assert!(listed.webhooks.iter().all(|w| w.id != theirs.id));
    // acme's webhook is untouched.
    let mine = client
        .get_webhook(authed(&acme, pb::GetWebhookRequest { id: theirs.id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.name, "acme hook");
}

#[tokio::test]
async fn the_admin_token_on_an_account_route_says_it_is_the_admin_token() {
    let server = TestServer::start().await;
    let admin = format!("Bearer {ADMIN_TOKEN}");
    let mut client = server.webhooks().await;
    let grpc = client
        .list_webhooks(authed(ADMIN_TOKEN, pb::ListWebhooksRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(grpc.code(), Code::Unauthenticated);
    assert!(
        grpc.message().contains("this is the admin token"),
        "{grpc:?}"
    );
    assert!(grpc.message().contains("/admin/v1/tokens"), "{grpc:?}");

    let url = |path: &str| format!("http://{}{path}", server.http_addr);
    let (status, body) =
        http_json(Method::GET, &url("/api/v1/webhooks/"), Some(&admin), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("This is the admin token"),
        "{body}"
    );
    let cloudflare = "/client/v4/accounts/acme/alerting/v3/destinations/webhooks";
    let (status, body) = http_json(Method::GET, &url(cloudflare), Some(&admin), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("this is the admin token"),
        "{body}"
    );
    assert!(!body.to_string().contains(ADMIN_TOKEN));
}

#[tokio::test]
async fn a_missing_scope_is_named_in_every_api() {
    let server = TestServer::start().await;
    let reader = server.token("acme", &["webhooks:read"]).await;
    let writer_only = server.token("acme", &["webhooks:write"]).await;
    let mut client = server.webhooks().await;
    let denied = client
        .create_webhook(authed(
            &reader,
            pb::CreateWebhookRequest {
                webhook: Some(webhook("x", "https://example.com")),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    assert!(denied.message().contains("webhooks:write"), "{denied:?}");
    let denied = client
        .list_webhooks(authed(&writer_only, pb::ListWebhooksRequest::default()))
        .await
        .unwrap_err();
    assert!(denied.message().contains("webhooks:read"), "{denied:?}");

    let url = |path: &str| format!("http://{}{path}", server.http_addr);
    let body =
        serde_json::json!({"name": "x", "url": "https://example.com", "trigger_type": "resolve"});
    let (status, answer) = http_json(
        Method::POST,
        &url("/api/v1/webhooks/"),
        Some(&reader),
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        answer["detail"]
            .as_str()
            .unwrap()
            .contains("webhooks:write"),
        "{answer}"
    );
    let cloudflare = "/client/v4/accounts/acme/alerting/v3/destinations/webhooks";
    let (status, answer) = http_json(
        Method::POST,
        &url(cloudflare),
        Some(&format!("Bearer {reader}")),
        Some(serde_json::json!({"name": "x", "url": "https://example.com"})),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("webhooks:write"),
        "{answer}"
    );
}
