//! An OnCall user runs the curl examples of OnCall's outgoing webhooks API against webhookd's
//! REST gateway (base URL and token changed) and gets the documented shapes: CRUD, PUT as a
//! partial update, pagination with absolute links, responses, legacy actions, redelivery,
//! and OnCall's error bodies for every bad request.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::*;

/// OnCall's 15 documented keys, and the `preset` and `schedule_filter` it also returns.
const WEBHOOK_KEYS: [&str; 17] = [
    "id",
    "name",
    "is_webhook_enabled",
    "team",
    "data",
    "username",
    "password",
    "authorization_header",
    "trigger_template",
    "headers",
    "url",
    "forward_all",
    "http_method",
    "trigger_type",
    "integration_filter",
    "preset",
    "schedule_filter",
];

const PAGE_KEYS: [&str; 7] = [
    "next",
    "previous",
    "results",
    "page_size",
    "count",
    "current_page_number",
    "total_pages",
];

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}

fn sorted(names: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    names.sort();
    names
}

/// `value` without its `id`.
fn without_id(value: &Value) -> Value {
    let mut value = value.clone();
    value.as_object_mut().unwrap().remove("id");
    value
}

pub async fn call(
    server: &TestServer,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    http_json(
        method,
        &format!("http://{}{path}", server.http_addr),
        token,
        body,
    )
    .await
}

#[tokio::test]
async fn the_reference_examples_round_trip() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let auth = Some(token.as_str());

    let (status, created) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        auth,
        Some(json!({
            "name": "New Webhook",
            "url": "https://example.com",
            "http_method": "POST",
            "trigger_type" : "resolve"
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), sorted(&WEBHOOK_KEYS));
    let expected = json!({
        "name": "New Webhook",
        "is_webhook_enabled": true,
        "team": null,
        "data": null,
        "username": null,
        "password": null,
        "authorization_header": null,
        "trigger_template": null,
        "headers": null,
        "url": "https://example.com",
        "forward_all": true,
        "http_method": "POST",
        "trigger_type": "resolve",
        "integration_filter": null,
        "preset": null,
        "schedule_filter": null
    });
    assert_eq!(without_id(&created), expected);
    let id = created["id"].as_str().unwrap().to_string();

    let (status, fetched) = call(
        &server,
        Method::GET,
        &format!("/api/v1/webhooks/{id}/"),
        auth,
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);

    let (status, listed) = call(&server, Method::GET, "/api/v1/webhooks/", auth, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed,
        json!({
            "next": null,
            "previous": null,
            "results": [created],
            "page_size": 50,
            "count": 1,
            "current_page_number": 1,
            "total_pages": 1
        })
    );

    let (status, updated) = call(
        &server,
        Method::PUT,
        &format!("/api/v1/webhooks/{id}/"),
        auth,
        Some(json!({"is_webhook_enabled": false})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    let mut expected_update = expected.clone();
    expected_update["is_webhook_enabled"] = json!(false);
    assert_eq!(without_id(&updated), expected_update);

    let (status, _, text) = http_raw(
        Method::DELETE,
        &format!("http://{}/api/v1/webhooks/{id}/", server.http_addr),
        auth,
        None,
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(text.is_empty());
    for method in [Method::GET, Method::DELETE] {
        let (status, body) = call(
            &server,
            method,
            &format!("/api/v1/webhooks/{id}/"),
            auth,
            None,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(body, json!({"detail": "Not found."}));
    }
}

#[tokio::test]
async fn the_list_example_masks_the_authorization_header() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let data = "{\"labels\" : {{ alert_payload.commonLabels | tojson()}}}";
    let (status, created) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks",
        Some(&token),
        Some(json!({
            "name": "Demo Webhook",
            "data": data,
            "authorization_header": "Bearer sk-live",
            "url": "https://example.com",
            "forward_all": false,
            "http_method": "POST",
            "trigger_type": "acknowledge",
            "integration_filter": ["CRV8A5MXC751A"],
            "preset": null,
            "some_unknown_field": 42
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let (_, listed) = call(&server, Method::GET, "/api/v1/webhooks", Some(&token), None).await;
    assert_eq!(
        without_id(&listed["results"][0]),
        json!({
            "name": "Demo Webhook",
            "is_webhook_enabled": true,
            "team": null,
            "data": data,
            "username": null,
            "password": null,
            "authorization_header": "****************",
            "trigger_template": null,
            "headers": null,
            "url": "https://example.com",
            "forward_all": false,
            "http_method": "POST",
            "trigger_type": "acknowledge",
            "integration_filter": ["CRV8A5MXC751A"],
            "preset": null,
            "schedule_filter": null
        })
    );
    assert!(!listed.to_string().contains("sk-live"));
}

#[tokio::test]
async fn pages_of_fifty_with_absolute_links_from_the_host() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    for i in 0..51 {
        let (status, body) = call(
            &server,
            Method::POST,
            "/api/v1/webhooks/",
            Some(&token),
            Some(json!({"name": format!("hook {i:02}"), "url": "https://example.com", "trigger_type": "resolve"})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let get = |query: &'static str| {
        let url = format!("http://{}/api/v1/webhooks/{query}", server.http_addr);
        let token = token.clone();
        async move {
            let (status, _, text) = http_raw(
                Method::GET,
                &url,
                Some(&token),
                None,
                &[("host", "oncall.example.com")],
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{text}");
            serde_json::from_str::<Value>(&text).unwrap()
        }
    };
    let first = get("").await;
    assert_eq!(keys(&first), sorted(&PAGE_KEYS));
    assert_eq!(first["count"], 51);
    assert_eq!(first["total_pages"], 2);
    assert_eq!(first["page_size"], 50);
    assert_eq!(first["current_page_number"], 1);
    assert_eq!(first["results"].as_array().unwrap().len(), 50);
    assert_eq!(first["results"][0]["name"], "hook 00");
    assert_eq!(first["previous"], Value::Null);
    assert_eq!(
        first["next"],
        "http://oncall.example.com/api/v1/webhooks/?page=2"
    );

    let second = get("?page=2").await;
    assert_eq!(second["current_page_number"], 2);
    assert_eq!(second["results"].as_array().unwrap().len(), 1);
    assert_eq!(second["results"][0]["name"], "hook 50");
    assert_eq!(second["next"], Value::Null);
    assert_eq!(
        second["previous"],
        "http://oncall.example.com/api/v1/webhooks/"
    );

    // Past the end: the last page; not a number: the first.
    assert_eq!(get("?page=9").await["current_page_number"], 2);
    assert_eq!(get("?page=abc").await["current_page_number"], 1);

    // perpage is kept in the links.
    let small = get("?perpage=20&page=2").await;
    assert_eq!(small["page_size"], 20);
    assert_eq!(small["total_pages"], 3);
    assert_eq!(
        small["next"],
        "http://oncall.example.com/api/v1/webhooks/?perpage=20&page=3"
    );
    assert_eq!(
        small["previous"],
        "http://oncall.example.com/api/v1/webhooks/?perpage=20"
    );

    let named = get("?name=hook%2007").await;
    assert_eq!(named["count"], 1);
    assert_eq!(named["results"][0]["name"], "hook 07");
    let none = get("?name=nothing").await;
    assert_eq!(
        none,
        json!({"next": null, "previous": null, "results": [], "page_size": 50,
               "count": 0, "current_page_number": 1, "total_pages": 1})
    );
}

#[tokio::test]
async fn put_changes_only_the_fields_sent_and_the_placeholder_keeps_a_secret() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    let (_, created) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&token),
        Some(json!({
            "name": "Secretive",
            "url": receiver.url("/hook"),
            "trigger_type": "alert group created",
            "authorization_header": "Bearer s3cret",
            "username": "bob",
            "password": "hunter2",
            "team": "TEAM1",
        })),
    )
    .await;
    let path = format!("/api/v1/webhooks/{}", created["id"].as_str().unwrap());
    let (status, updated) = call(
        &server,
        Method::PUT,
        &path,
        Some(&token),
        Some(json!({
            "name": "Renamed",
            "authorization_header": "****************",
            "password": null,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["name"], "Renamed");
    assert_eq!(updated["authorization_header"], "****************");
    assert_eq!(updated["password"], Value::Null);
    assert_eq!(updated["username"], "bob");
    assert_eq!(updated["team"], "TEAM1");
    assert_eq!(updated["trigger_type"], "alert group created");
    assert_eq!(updated["url"], created["url"]);

    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/events/",
        Some(&token),
        Some(json!({"event": {"type": "alert group created"}})),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let received = receiver.next().await;
    assert_eq!(received.header("authorization"), Some("Bearer s3cret"));
}

#[tokio::test]
async fn bad_requests_get_oncall_error_bodies() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let reader = server.token("acme", &["webhooks:read"]).await;
    let other = server.writer("globex").await;
    let base = format!("http://{}/api/v1/webhooks/", server.http_addr);
    let auth = Some(token.as_str());

    // Malformed JSON.
    let (status, _, text) = http_raw(Method::POST, &base, auth, Some("{\"name\": "), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let body: Value = serde_json::from_str(&text).unwrap();
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("JSON parse error")
    );

    // Every missing required field at once.
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        auth,
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({
            "name": ["This field is required."],
            "url": ["This field is required."],
            "trigger_type": ["This field is required."],
        })
    );

    let valid = json!({"name": "ok", "url": "https://example.com", "trigger_type": "resolve"});
    let with = |field: &str, value: Value| {
        let mut body = valid.clone();
        body[field] = value;
        body
    };
    for (field, value) in [
        ("forward_all", json!("yes")),
        ("is_webhook_enabled", json!(null)),
        ("http_method", json!("FETCH")),
        ("http_method", json!("post")),
        ("trigger_type", json!("nope")),
        ("name", json!("")),
        ("name", json!(null)),
        ("name", json!("x".repeat(101))),
        ("url", json!("")),
        ("url", json!(7)),
        ("data", json!("{{ broken")),
        ("integration_filter", json!("CRV8A5MXC751A")),
        ("schedule_filter", json!("SBM7DV7BKFUYU")),
        ("schedule_filter", json!([7])),
        ("preset", json!("simple_webhook")),
        ("preset", json!(3)),
    ] {
        let (status, body) = call(
            &server,
            Method::POST,
            "/api/v1/webhooks/",
            auth,
            Some(with(field, value.clone())),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{field}={value}: {body}");
        assert!(
            body[field].as_array().is_some_and(|m| !m.is_empty()),
            "{field}={value}: {body}"
        );
    }

    // Names are unique per account, but not across accounts.
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        auth,
        Some(valid.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        auth,
        Some(valid.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"non_field_errors": ["The fields name, organization must make a unique set."]})
    );
    let (status, mine) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&other),
        Some(valid.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let foreign = mine["id"].as_str().unwrap();

    // A bad PUT leaves the object unchanged.
    let (_, listed) = call(&server, Method::GET, "/api/v1/webhooks/", auth, None).await;
    let id = listed["results"][0]["id"].as_str().unwrap().to_string();
    let (status, body) = call(
        &server,
        Method::PUT,
        &format!("/api/v1/webhooks/{id}/"),
        auth,
        Some(json!({"name": "changed", "http_method": "FETCH"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (_, fetched) = call(
        &server,
        Method::GET,
        &format!("/api/v1/webhooks/{id}"),
        auth,
        None,
    )
    .await;
    assert_eq!(fetched["name"], "ok");

    // Unknown, malformed and other accounts' ids: 404 everywhere.
    for id in ["W0000000000ZZ", "not-an-id", foreign] {
        for (method, suffix) in [
            (Method::GET, "/"),
            (Method::PUT, "/"),
            (Method::DELETE, "/"),
            (Method::GET, "/responses/"),
        ] {
            let (status, body) = call(
                &server,
                method.clone(),
                &format!("/api/v1/webhooks/{id}{suffix}"),
                auth,
                Some(json!({"name": "x"})),
            )
            .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{method} {id}{suffix}");
            assert_eq!(body, json!({"detail": "Not found."}));
        }
    }

    // Auth: read-only writing, no token, a bad token.
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&reader),
        Some(valid.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"detail": "You do not have permission to perform this action: this token lacks the webhooks:write scope."})
    );
    let (status, _) = call(
        &server,
        Method::GET,
        "/api/v1/webhooks/",
        Some(&reader),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = call(&server, Method::GET, "/api/v1/webhooks/", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].is_string());
    let (status, body) = call(
        &server,
        Method::GET,
        "/api/v1/webhooks/",
        Some("meowmeowmeow"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["detail"].is_string());
    let bearer = format!("Bearer {token}");
    let (status, _) = call(
        &server,
        Method::GET,
        "/api/v1/webhooks/",
        Some(&bearer),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // Wrong method, huge body.
    let (status, headers, text) = http_raw(Method::PATCH, &base, auth, Some("{}"), &[]).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(serde_json::from_str::<Value>(&text).unwrap()["detail"].is_string());
    let huge = format!("{{\"name\": \"{}\"}}", "x".repeat(2 * 1024 * 1024));
    let (status, headers, text) = http_raw(Method::POST, &base, auth, Some(&huge), &[]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    assert!(serde_json::from_str::<Value>(&text).unwrap()["detail"].is_string());
}

#[tokio::test]
async fn responses_are_listed_newest_first_as_oncall_shows_them() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    let (_, created) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&token),
        Some(json!({
            "name": "Logged",
            "url": receiver.url("/hook"),
            "trigger_type": "acknowledge",
            "forward_all": false,
            "data": "{\"labels\" : {{ alert_payload.commonLabels | tojson()}}}",
            "authorization_header": "Bearer sk-live",
        })),
    )
    .await;
    let id = created["id"].as_str().unwrap();
    let url = format!("/api/v1/webhooks/{id}/responses");
    for n in 1..=2 {
        let event = json!({
            "event": {"type": "acknowledge"},
            "alert_group_id": format!("AG{n}"),
            "alert_payload": {"commonLabels": {"alertname": "InstanceDown", "n": n}},
        });
        let (status, _) = call(
            &server,
            Method::POST,
            "/api/v1/events/",
            Some(&token),
            Some(event),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED);
        receiver.next().await;
        // The log is in the order attempts are recorded: the second event goes out once
        // the first one's attempt is logged.
        eventually(|| {
            let (server, token, url) = (&server, &token, &url);
            async move {
                let (_, page) = call(server, Method::GET, url, Some(token), None).await;
                (page["count"] == n).then_some(())
            }
        })
        .await;
    }
    let page = eventually(|| {
        let (server, token, url) = (&server, &token, &url);
        async move {
            let (status, page) = call(server, Method::GET, url, Some(token), None).await;
            assert_eq!(status, StatusCode::OK);
            (page["count"] == 2).then_some(page)
        }
    })
    .await;
    assert_eq!(keys(&page), sorted(&PAGE_KEYS));
    assert_eq!(page["total_pages"], 1);
    let entries = page["results"].as_array().unwrap();
    for entry in entries {
        assert_eq!(
            keys(entry),
            sorted(&[
                "timestamp",
                "url",
                "request_trigger",
                "request_headers",
                "request_data",
                "status_code",
                "content",
                "event_data"
            ])
        );
        assert_eq!(entry["status_code"], 200);
        assert_eq!(entry["request_trigger"], "");
        assert_eq!(entry["url"], receiver.url("/hook"));
        let ts = entry["timestamp"].as_str().unwrap();
        assert!(
            ts.ends_with('Z') && ts.len() == "2023-08-18T16:38:23.106015Z".len(),
            "{ts}"
        );
        let headers: Value =
            serde_json::from_str(entry["request_headers"].as_str().unwrap()).unwrap();
        assert_eq!(headers["Authorization"], "****************");
        let data: Value = serde_json::from_str(entry["request_data"].as_str().unwrap()).unwrap();
        assert_eq!(data["labels"]["alertname"], "InstanceDown");
        assert!(entry["content"].is_string());
    }
    let event_of =
        |e: &Value| -> Value { serde_json::from_str(e["event_data"].as_str().unwrap()).unwrap() };
    assert_eq!(event_of(&entries[0])["alert_group_id"], "AG2");
    assert_eq!(event_of(&entries[1])["alert_group_id"], "AG1");
    assert_eq!(event_of(&entries[0])["event"]["type"], "acknowledge");
    assert!(!page.to_string().contains("sk-live"));
}

#[tokio::test]
async fn legacy_actions_are_the_same_webhooks_under_old_names() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let (status, action) = call(
        &server,
        Method::POST,
        "/api/v1/actions/",
        Some(&token),
        Some(json!({
            "name": "Old style",
            "url": "https://example.com",
            "trigger_type": "resolve",
            "user": "bob",
            "team_id": null,
            "forward_whole_payload": false,
        })),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{action}");
    assert_eq!(
        keys(&action),
        sorted(&[
            "id",
            "name",
            "is_webhook_enabled",
            "team_id",
            "user",
            "data",
            "password",
            "authorization_header",
            "trigger_template",
            "headers",
            "url",
            "forward_whole_payload",
            "http_method",
            "trigger_type",
            "integration_filter"
        ])
    );
    assert_eq!(action["user"], "bob");
    assert_eq!(action["forward_whole_payload"], false);
    let id = action["id"].as_str().unwrap();
    let (_, webhook) = call(
        &server,
        Method::GET,
        &format!("/api/v1/webhooks/{id}/"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(webhook["username"], "bob");
    assert_eq!(webhook["forward_all"], false);

    let (_, listed) = call(&server, Method::GET, "/api/v1/actions/", Some(&token), None).await;
    assert_eq!(keys(&listed), sorted(&PAGE_KEYS));
    assert_eq!(listed["results"][0], action);

    let (status, body) = call(
        &server,
        Method::PUT,
        &format!("/api/v1/actions/{id}/"),
        Some(&token),
        Some(json!({"forward_whole_payload": "yes"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["forward_whole_payload"].is_array(), "{body}");
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/api/v1/actions/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = call(
        &server,
        Method::GET,
        &format!("/api/v1/webhooks/{id}"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn failed_deliveries_can_be_redelivered_over_rest() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    receiver.answer(500);
    let (_, created) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&token),
        Some(json!({"name": "Flaky", "url": receiver.url("/hook"), "trigger_type": "resolve"})),
    )
    .await;
    let id = created["id"].as_str().unwrap().to_string();
    let (_, emitted) = call(
        &server,
        Method::POST,
        "/api/v1/events/",
        Some(&token),
        Some(json!({"event": {"type": "resolve"}})),
    )
    .await;
    let delivery = emitted["deliveries"][0]["id"].as_str().unwrap().to_string();

    // Every attempt fails: 1 + the three retries of the test schedule.
    eventually(|| {
        let (server, token, id) = (&server, &token, &id);
        async move {
            let (_, page) = call(
                server,
                Method::GET,
                &format!("/api/v1/webhooks/{id}/responses/"),
                Some(token),
                None,
            )
            .await;
            (page["count"] == 4).then_some(())
        }
    })
    .await;
    receiver.answer(200);
    let (status, body) = eventually(|| {
        let (server, token, id) = (&server, &token, &id);
        async move {
            let (status, body) = call(
                server,
                Method::POST,
                &format!("/api/v1/webhooks/{id}/redeliver/"),
                Some(token),
                Some(json!({"since": "2000-01-01T00:00:00Z"})),
            )
            .await;
            (body["delivery_ids"]
                .as_array()
                .is_some_and(|d| d.len() == 1))
            .then_some((status, body))
        }
    })
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/api/v1/deliveries/{delivery}/redeliver/"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["delivery_ids"].as_array().unwrap().len(), 1);

    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/api/v1/webhooks/{id}/redeliver/"),
        Some(&token),
        Some(json!({"since": "yesterday"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["since"].is_array());
    let (status, _) = call(
        &server,
        Method::POST,
        "/api/v1/deliveries/D0000000000ZZ/redeliver/",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Whether `value` conforms to `schema` (resolving `$ref`s in `doc`); objects may carry
/// only the documented properties, so an undocumented field fails too.
fn conforms(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(name) = schema.get("$ref").and_then(Value::as_str) {
        let name = name.trim_start_matches("#/components/schemas/");
        let target = &doc["components"]["schemas"][name];
        assert!(!target.is_null(), "dangling $ref {name}");
        return conforms(doc, target, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(key).and_then(Value::as_array)
            && !options.iter().any(|s| conforms(doc, s, value, at).is_ok())
        {
            return Err(format!("{at}: {value} matches none of {key} {schema}"));
        }
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            conforms(doc, s, value, at)?;
        }
    }
    if let Some(t) = schema.get("type") {
        let types: Vec<&str> = match t {
            Value::String(s) => vec![s.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        if !types
            .iter()
            .any(|t| *t == actual || (*t == "number" && actual == "integer"))
        {
            return Err(format!("{at}: {value} is not of type {t}"));
        }
    }
    if let Value::Object(map) = value {
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            for (key, v) in map {
                let s = props
                    .get(key)
                    .ok_or_else(|| format!("{at}: undocumented property {key}"))?;
                conforms(doc, s, v, &format!("{at}.{key}"))?;
            }
        }
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for r in required.iter().filter_map(Value::as_str) {
                if !map.contains_key(r) {
                    return Err(format!("{at}: missing required {r}"));
                }
            }
        }
        if let Some(extra) = schema.get("additionalProperties").filter(|s| s.is_object()) {
            for (key, v) in map {
                conforms(doc, extra, v, &format!("{at}.{key}"))?;
            }
        }
    }
    if let (Value::Array(items), Some(s)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            conforms(doc, s, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_describes_every_answer() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    let (status, doc) = call(&server, Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let cf = "/client/v4/accounts/{account_id}/alerting/v3/destinations/webhooks";
    for path in [
        "/api/v1/webhooks/",
        "/api/v1/webhooks/{id}/",
        "/api/v1/webhooks/{id}/responses/",
        "/api/v1/webhooks/{id}/redeliver/",
        "/api/v1/deliveries/{id}/redeliver/",
        "/api/v1/actions/",
        "/api/v1/actions/{id}/",
        "/api/v1/events/",
        cf,
        &format!("{cf}/{{webhook_id}}"),
        "/admin/v1/tokens",
        "/admin/v1/tokens/{id}",
        "/healthz",
        "/metrics",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is not documented");
    }
    let metrics = &doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(
        metrics["text/plain; version=0.0.4"].is_object(),
        "/metrics is not documented as Prometheus text: {metrics}"
    );
    let check = |path: &str, method: &str, status: StatusCode, body: &Value| {
        let schema = &doc["paths"][path][method]["responses"][status.as_str()]["content"]["application/json"]
            ["schema"];
        assert!(
            schema.is_object(),
            "{method} {path} {status} is not documented"
        );
        if let Err(e) = conforms(&doc, schema, body, "body") {
            panic!("{method} {path} {status}: {e}\n{body}");
        }
    };

    let auth = Some(token.as_str());
    let (status, created) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        auth,
        Some(
            json!({"name": "Doc", "url": receiver.url("/d"), "trigger_type": "resolve",
                    "authorization_header": "x", "team": "T1"}),
        ),
    )
    .await;
    check("/api/v1/webhooks/", "post", status, &created);
    let id = created["id"].as_str().unwrap().to_string();
    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        auth,
        Some(json!({})),
    )
    .await;
    check("/api/v1/webhooks/", "post", status, &body);
    let (status, body) = call(&server, Method::GET, "/api/v1/webhooks/", auth, None).await;
    check("/api/v1/webhooks/", "get", status, &body);
    let (status, body) = call(&server, Method::GET, "/api/v1/webhooks/", None, None).await;
    check("/api/v1/webhooks/", "get", status, &body);
    let (status, body) = call(
        &server,
        Method::GET,
        &format!("/api/v1/webhooks/{id}/"),
        auth,
        None,
    )
    .await;
    check("/api/v1/webhooks/{id}/", "get", status, &body);
    let (status, body) = call(
        &server,
        Method::GET,
        "/api/v1/webhooks/W0000000000ZZ/",
        auth,
        None,
    )
    .await;
    check("/api/v1/webhooks/{id}/", "get", status, &body);
    let (status, body) = call(&server, Method::GET, "/api/v1/actions/", auth, None).await;
    check("/api/v1/actions/", "get", status, &body);

    let (status, body) = call(
        &server,
        Method::POST,
        "/api/v1/events/",
        auth,
        Some(json!({"event": {"type": "resolve"}})),
    )
    .await;
    check("/api/v1/events/", "post", status, &body);
    receiver.next().await;
    let responses = format!("/api/v1/webhooks/{id}/responses/");
    let page = eventually(|| {
        let (server, responses) = (&server, &responses);
        async move {
            let (_, page) = call(server, Method::GET, responses, auth, None).await;
            (page["count"] == 1).then_some(page)
        }
    })
    .await;
    check(
        "/api/v1/webhooks/{id}/responses/",
        "get",
        StatusCode::OK,
        &page,
    );
    let (status, body) = call(
        &server,
        Method::POST,
        &format!("/api/v1/webhooks/{id}/redeliver/"),
        auth,
        Some(json!({})),
    )
    .await;
    check("/api/v1/webhooks/{id}/redeliver/", "post", status, &body);

    let base = "/client/v4/accounts/acme/alerting/v3/destinations/webhooks";
    let (status, body) = call(
        &server,
        Method::POST,
        base,
        auth,
        Some(json!({"name": "CF", "url": receiver.url("/cf"), "secret": "s"})),
    )
    .await;
    check(cf, "post", status, &body);
    let (status, body) = call(&server, Method::GET, base, auth, None).await;
    check(cf, "get", status, &body);
    let (status, body) = call(&server, Method::GET, &format!("{base}/{id}"), auth, None).await;
    assert!(body["result"]["last_success"].is_string(), "{body}");
    check(&format!("{cf}/{{webhook_id}}"), "get", status, &body);
    let (status, body) = call(&server, Method::GET, &format!("{base}/nope"), auth, None).await;
    check(&format!("{cf}/{{webhook_id}}"), "get", status, &body);
    let (status, body) = call(&server, Method::DELETE, &format!("{base}/{id}"), auth, None).await;
    check(&format!("{cf}/{{webhook_id}}"), "delete", status, &body);

    let admin = format!("Bearer {ADMIN_TOKEN}");
    let tokens = "/admin/v1/tokens";
    let (status, body) = call(
        &server,
        Method::POST,
        tokens,
        Some(&admin),
        Some(json!({"account_id": "acme", "scopes": ["webhooks:read"]})),
    )
    .await;
    check(tokens, "post", status, &body);
    let issued = body["id"].as_str().unwrap().to_string();
    let (status, body) = call(
        &server,
        Method::POST,
        tokens,
        Some(&admin),
        Some(json!({"account_id": "", "scopes": ["nope"]})),
    )
    .await;
    check(tokens, "post", status, &body);
    let (status, body) = call(&server, Method::POST, tokens, auth, Some(json!({}))).await;
    check(tokens, "post", status, &body);
    let (status, body) = call(
        &server,
        Method::DELETE,
        "/admin/v1/tokens/T0000000000ZZ",
        Some(&admin),
        None,
    )
    .await;
    check("/admin/v1/tokens/{id}", "delete", status, &body);
    let (status, _) = call(
        &server,
        Method::DELETE,
        &format!("/admin/v1/tokens/{issued}"),
        Some(&admin),
        None,
    )
    .await;
    assert!(
        doc["paths"]["/admin/v1/tokens/{id}"]["delete"]["responses"][status.as_str()].is_object()
    );
    let (status, body) = call(&server, Method::GET, "/healthz", None, None).await;
    check("/healthz", "get", status, &body);
}

/// The body the official OnCall Go client (the Grafana Terraform provider's) sends on create
/// and update: every field, `preset` and `schedule_filter` included, newer trigger names.
fn go_client_body(name: &str, url: &str, trigger_type: &str, schedules: Value) -> Value {
    json!({
        "name": name,
        "team": null,
        "url": url,
        "trigger_type": trigger_type,
        "http_method": "POST",
        "data": null,
        "username": null,
        "password": null,
        "authorization_header": null,
        "trigger_template": null,
        "headers": null,
        "forward_all": true,
        "integration_filter": null,
        "is_webhook_enabled": true,
        "preset": null,
        "schedule_filter": schedules
    })
}

#[tokio::test]
async fn the_oncall_go_client_body_with_preset_and_schedule_filter_round_trips() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let (status, created) = call(
        &server,
        Method::POST,
        "/api/v1/webhooks/",
        Some(&token),
        Some(go_client_body(
            "Schedules",
            "https://example.com/oncall",
            "on-call changed",
            json!(["SBM7DV7BKFUYU", "S2ND"]),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(keys(&created), sorted(&WEBHOOK_KEYS));
    assert_eq!(created["trigger_type"], "on-call changed");
    assert_eq!(created["schedule_filter"], json!(["SBM7DV7BKFUYU", "S2ND"]));
    assert_eq!(created["preset"], Value::Null);
    let path = format!("/api/v1/webhooks/{}/", created["id"].as_str().unwrap());

    // The update body is the whole object again; null clears the schedule filter.
    let (status, updated) = call(
        &server,
        Method::PUT,
        &path,
        Some(&token),
        Some(go_client_body(
            "Schedules",
            "https://example.com/oncall",
            "escalation step",
            json!(null),
        )),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["trigger_type"], "escalation step");
    assert_eq!(updated["schedule_filter"], Value::Null);

    // gRPC shows the same webhook with the same filter field.
    let (status, _) = call(
        &server,
        Method::PUT,
        &path,
        Some(&token),
        Some(json!({"schedule_filter": ["S3RD"]})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut client = server.webhooks().await;
    let fetched = client
        .get_webhook(authed(
            &token,
            webhookd::grpc::pb::GetWebhookRequest {
                id: created["id"].as_str().unwrap().into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.schedule_filter, ["S3RD"]);
}

#[tokio::test]
async fn on_call_changed_fires_for_the_filtered_schedules_and_escalation_step_is_escalation() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let receiver = Receiver::start().await;
    for (name, trigger, schedules) in [
        ("primary rota", "on-call changed", json!(["SPRIMARY"])),
        ("every rota", "on-call changed", json!(null)),
        ("escalations", "escalation step", json!(null)),
    ] {
        let url = receiver.url(&format!("/{}", name.replace(' ', "-")));
        let (status, body) = call(
            &server,
            Method::POST,
            "/api/v1/webhooks/",
            Some(&token),
            Some(go_client_body(name, &url, trigger, schedules)),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    /// Emits over REST; returns the paths the receiver got, sorted.
    async fn emit(
        server: &TestServer,
        token: &str,
        receiver: &Receiver,
        data: Value,
    ) -> Vec<String> {
        let (status, body) = call(
            server,
            Method::POST,
            "/api/v1/events/",
            Some(token),
            Some(data),
        )
        .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let mut paths: Vec<String> = Vec::new();
        for _ in 0..body["deliveries"].as_array().unwrap().len() {
            paths.push(receiver.next().await.path);
        }
        paths.sort();
        paths
    }

    let primary = json!({"event": {"type": "on-call changed"}, "schedule": {"id": "SPRIMARY"}});
    assert_eq!(
        emit(&server, &token, &receiver, primary).await,
        ["/every-rota", "/primary-rota"]
    );
    let other = json!({"event": {"type": "on-call changed"}, "schedule": {"id": "SOTHER"}});
    assert_eq!(
        emit(&server, &token, &receiver, other).await,
        ["/every-rota"]
    );
    // Both names of the escalation trigger fire the webhook that used either.
    for name in ["escalation", "escalation step"] {
        let escalation = json!({"event": {"type": name}, "alert_group": {"id": "AG1"}});
        assert_eq!(
            emit(&server, &token, &receiver, escalation).await,
            ["/escalations"]
        );
    }
    receiver.assert_quiet().await;
}
