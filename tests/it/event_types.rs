//! An account declares the event types it emits, some with a JSON Schema: through gRPC and
//! REST it creates, reads, lists, changes and deletes them; another account sees none of
//! them; an emit whose data breaks its type's schema is refused naming the failing path (a
//! batch with one such event is refused whole) and nothing is delivered; a change of the
//! schema applies to the next emit, on every instance sharing the database.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;
use webhookd::grpc::pb;
use webhookd::grpc::pb::webhook_service_client::WebhookServiceClient;

use crate::support::*;

type Client = WebhookServiceClient<Channel>;

/// An alert group's id must be a string.
fn alert_schema() -> Value {
    json!({
        "type": "object",
        "required": ["alert_group"],
        "properties": {
            "alert_group": {
                "type": "object",
                "required": ["id"],
                "properties": {"id": {"type": "string"}}
            }
        }
    })
}

fn event_type(name: &str, schema: Option<Value>) -> pb::EventType {
    pb::EventType {
        name: name.into(),
        description: format!("{name}, as the alerting service emits it"),
        json_schema: schema.map(to_struct),
        ..Default::default()
    }
}

/// Declares "alert group created" with `alert_schema()`.
async fn declare_alerts(client: &mut Client, token: &str) -> pb::EventType {
    declare(
        client,
        token,
        event_type("alert group created", Some(alert_schema())),
    )
    .await
    .unwrap()
}

/// A server where acme's webhook "pager" posts to a receiver and "alert group created" is
/// declared with `alert_schema()`.
async fn pager_with_alert_schema() -> (TestServer, Receiver, String, Client) {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    create(
        &mut client,
        &token,
        webhook("pager", &receiver.url("/pager")),
    )
    .await;
    declare_alerts(&mut client, &token).await;
    (server, receiver, token, client)
}

async fn declare(
    client: &mut Client,
    token: &str,
    event_type: pb::EventType,
) -> Result<pb::EventType, tonic::Status> {
    let request = pb::CreateEventTypeRequest {
        event_type: Some(event_type),
    };
    Ok(client
        .create_event_type(authed(token, request))
        .await?
        .into_inner())
}

async fn get(client: &mut Client, token: &str, name: &str) -> Result<pb::EventType, tonic::Status> {
    let request = pb::GetEventTypeRequest { name: name.into() };
    Ok(client
        .get_event_type(authed(token, request))
        .await?
        .into_inner())
}

async fn list(
    client: &mut Client,
    token: &str,
    page_size: i32,
    page_token: &str,
) -> Result<pb::ListEventTypesResponse, tonic::Status> {
    let request = pb::ListEventTypesRequest {
        page_size,
        page_token: page_token.into(),
    };
    Ok(client
        .list_event_types(authed(token, request))
        .await?
        .into_inner())
}

async fn update(
    client: &mut Client,
    token: &str,
    event_type: pb::EventType,
    paths: &[&str],
) -> Result<pb::EventType, tonic::Status> {
    let request = pb::UpdateEventTypeRequest {
        event_type: Some(event_type),
        update_mask: (!paths.is_empty()).then(|| prost_types::FieldMask {
            paths: paths.iter().map(|p| p.to_string()).collect(),
        }),
    };
    Ok(client
        .update_event_type(authed(token, request))
        .await?
        .into_inner())
}

async fn delete(client: &mut Client, token: &str, name: &str) -> Result<(), tonic::Status> {
    let request = pb::DeleteEventTypeRequest { name: name.into() };
    client.delete_event_type(authed(token, request)).await?;
    Ok(())
}

fn emit_request(event_type: &str, data: Value) -> pb::EmitEventRequest {
    pb::EmitEventRequest {
        event_type: event_type.into(),
        data: Some(to_struct(data)),
        ..Default::default()
    }
}

/// Emits one event over gRPC and returns the stream's first message (ACCEPTED), or the error.
async fn emit(
    client: &mut Client,
    token: &str,
    event_type: &str,
    data: Value,
) -> Result<pb::DeliveryStatus, tonic::Status> {
    let request = emit_request(event_type, data);
    let mut stream = client
        .emit_event(authed(token, request))
        .await?
        .into_inner();
    Ok(stream.message().await?.expect("an ACCEPTED message"))
}

fn names(page: &pb::ListEventTypesResponse) -> Vec<&str> {
    page.event_types.iter().map(|t| t.name.as_str()).collect()
}

fn schema_of(event_type: &pb::EventType) -> Option<Value> {
    event_type
        .json_schema
        .clone()
        .map(webhookd::grpc::convert::struct_to_json)
}

#[tokio::test]
async fn an_account_declares_lists_changes_and_deletes_event_types_over_grpc() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;

    let created = declare_alerts(&mut client, &token).await;
    assert_eq!(created.name, "alert group created");
    assert_eq!(schema_of(&created), Some(alert_schema()));
    assert!(created.created_at.is_some() && created.updated_at == created.created_at);
    for name in ["incident.resolved", "incident.created"] {
        declare(&mut client, &token, event_type(name, None))
            .await
            .unwrap();
    }

    // The name is taken now.
    let taken = declare(&mut client, &token, event_type("incident.created", None))
        .await
        .unwrap_err();
    assert_eq!(taken.code(), Code::AlreadyExists, "{taken:?}");

    let fetched = get(&mut client, &token, "alert group created")
        .await
        .unwrap();
    assert_eq!(fetched, created);

    // Name order, in pages.
    let first = list(&mut client, &token, 2, "").await.unwrap();
    assert_eq!(names(&first), ["alert group created", "incident.created"]);
    assert!(!first.next_page_token.is_empty());
    let rest = list(&mut client, &token, 2, &first.next_page_token)
        .await
        .unwrap();
    assert_eq!(names(&rest), ["incident.resolved"]);
    assert!(rest.next_page_token.is_empty());

    // Without a mask the populated fields change; the schema stays.
    let described = pb::EventType {
        description: "a new alert group".into(),
        ..event_type("alert group created", None)
    };
    let changed = update(&mut client, &token, described, &[]).await.unwrap();
    assert_eq!(changed.description, "a new alert group");
    assert_eq!(schema_of(&changed), Some(alert_schema()));
    // A mask naming json_schema with none given removes it.
    let unschema = event_type("alert group created", None);
    let changed = update(&mut client, &token, unschema, &["json_schema"])
        .await
        .unwrap();
    assert_eq!(changed.json_schema, None);
    assert_eq!(changed.description, "a new alert group");
    let unknown = update(
        &mut client,
        &token,
        event_type("incident.created", None),
        &["name"],
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&unknown), ["update_mask"]);

    delete(&mut client, &token, "incident.created")
        .await
        .unwrap();
    let gone = get(&mut client, &token, "incident.created")
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound);
    let twice = delete(&mut client, &token, "incident.created")
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::NotFound);
    let missing = update(
        &mut client,
        &token,
        event_type("never", None),
        &["description"],
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
    let all = list(&mut client, &token, 0, "").await.unwrap();
    assert_eq!(names(&all), ["alert group created", "incident.resolved"]);
}

#[tokio::test]
async fn the_rest_catalog_speaks_proto3_json_with_oncall_errors_and_shares_the_store() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let base = format!("http://{}/api/v1/event_types/", server.http_addr);
    let one = |name: &str| format!("{base}{}/", name.replace(' ', "%20"));

    let (status, created) = http_json(
        Method::POST,
        &base,
        Some(&token),
        Some(
            json!({"name": "alert group created", "description": "new alert group",
                    "json_schema": alert_schema()}),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["name"], "alert group created");
    assert_eq!(created["json_schema"], alert_schema());
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));

    let (status, again) = http_json(
        Method::POST,
        &base,
        Some(&token),
        Some(json!({"name": "alert group created"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        again["name"][0]
            .as_str()
            .unwrap()
            .contains("already exists"),
        "{again}"
    );

    // gRPC sees what REST made.
    let mut client = server.webhooks().await;
    let seen = get(&mut client, &token, "alert group created")
        .await
        .unwrap();
    assert_eq!(seen.description, "new alert group");

    let (status, fetched) =
        http_json(Method::GET, &one("alert group created"), Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(fetched, created);

    // PUT changes the fields sent; null removes the schema.
    let (status, changed) = http_json(
        Method::PUT,
        &one("alert group created"),
        Some(&token),
        Some(json!({"json_schema": null})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["json_schema"], Value::Null);
    assert_eq!(changed["description"], "new alert group");
    let (status, renamed) = http_json(
        Method::PATCH,
        &one("alert group created"),
        Some(&token),
        Some(json!({"name": "another"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(renamed["name"].is_array(), "{renamed}");

    let (status, page) = http_json(
        Method::GET,
        &format!("{base}?page_size=10"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["event_types"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_page_token"], "");

    let (status, _) = http_json(
        Method::DELETE,
        &one("alert group created"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) =
        http_json(Method::GET, &one("alert group created"), Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["detail"], "Not found.");
    let (status, _) = http_json(
        Method::DELETE,
        &one("alert group created"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // The OpenAPI document describes the catalog.
    let (_, doc) = http_json(
        Method::GET,
        &format!("http://{}/api/openapi.json", server.http_addr),
        None,
        None,
    )
    .await;
    assert!(doc["paths"]["/api/v1/event_types/{name}/"]["put"].is_object());
}

#[tokio::test]
async fn another_account_neither_sees_nor_is_checked_by_a_catalog() {
    let server = TestServer::start().await;
    let (a, b) = (server.writer("acme").await, server.writer("globex").await);
    let mut client = server.webhooks().await;
    declare_alerts(&mut client, &a).await;

    let hidden = get(&mut client, &b, "alert group created")
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    assert!(
        list(&mut client, &b, 0, "")
            .await
            .unwrap()
            .event_types
            .is_empty()
    );
    let change = update(
        &mut client,
        &b,
        event_type("alert group created", None),
        &["*"],
    )
    .await
    .unwrap_err();
    assert_eq!(change.code(), Code::NotFound);
    let removal = delete(&mut client, &b, "alert group created")
        .await
        .unwrap_err();
    assert_eq!(removal.code(), Code::NotFound);
    let rest = http_json(
        Method::GET,
        &format!(
            "http://{}/api/v1/event_types/alert%20group%20created/",
            server.http_addr
        ),
        Some(&b),
        None,
    )
    .await;
    assert_eq!(rest.0, StatusCode::NOT_FOUND);

    // B's emits of the same name are not A's business; B may declare the name too.
    let accepted = emit(
        &mut client,
        &b,
        "alert group created",
        json!({"alert_group": {"id": 7}}),
    )
    .await
    .unwrap();
    assert!(!accepted.event_id.is_empty());
    declare(&mut client, &b, event_type("alert group created", None))
        .await
        .unwrap();
    // A's schema is still A's.
    let kept = get(&mut client, &a, "alert group created").await.unwrap();
    assert_eq!(schema_of(&kept), Some(alert_schema()));

    // A read-only token reads the catalog but cannot change it.
    let reader = server.token("acme", &["webhooks:read"]).await;
    assert!(
        get(&mut client, &reader, "alert group created")
            .await
            .is_ok()
    );
    let denied = declare(&mut client, &reader, event_type("x", None))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let nobody = declare(&mut client, "not-a-token", event_type("x", None))
        .await
        .unwrap_err();
    assert_eq!(nobody.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn an_emit_whose_data_breaks_its_schema_is_refused_naming_the_path_and_delivers_nothing() {
    let (server, receiver, token, mut client) = pager_with_alert_schema().await;

    // Valid data passes and is delivered.
    let valid = json!({"alert_group": {"id": "AG1"}});
    emit(&mut client, &token, "alert group created", valid)
        .await
        .unwrap();
    assert_eq!(receiver.next().await.json()["alert_group"]["id"], "AG1");

    // A number where the schema wants a string, and a missing id: both name the path.
    for data in [
        json!({"alert_group": {"id": 7}}),
        json!({"alert_group": {}}),
    ] {
        let refused = emit(&mut client, &token, "alert group created", data)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
        assert_eq!(violated_fields(&refused), ["data.alert_group.id"]);
    }

    // Over REST: 400 with the path as the field.
    let (status, body) = http_json(
        Method::POST,
        &format!("http://{}/api/v1/events/", server.http_addr),
        Some(&token),
        Some(json!({"event": {"type": "alert group created"}, "alert_group": {"id": 7}})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["data.alert_group.id"][0].is_string(), "{body}");

    // Types without a schema, and types not in the catalog, take any data.
    declare(&mut client, &token, event_type("resolve", None))
        .await
        .unwrap();
    for name in ["resolve", "acknowledge"] {
        emit(&mut client, &token, name, json!({"alert_group": {"id": 7}}))
            .await
            .unwrap();
    }
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn a_batch_with_one_event_that_breaks_its_schema_is_refused_whole() {
    let (server, receiver, token, mut client) = pager_with_alert_schema().await;

    let events = vec![
        emit_request("alert group created", json!({"alert_group": {"id": "AG1"}})),
        emit_request(
            "alert group created",
            json!({"alert_group": {"id": ["AG2"]}}),
        ),
    ];
    let request = authed(&token, pb::EmitEventsRequest { events });
    let refused = client.emit_events(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&refused), ["events[1].data.alert_group.id"]);

    let (status, body) = http_json(
        Method::POST,
        &format!("http://{}/api/v1/events/batch/", server.http_addr),
        Some(&token),
        Some(json!({"events": [
            {"data": {"event": {"type": "alert group created"}}},
            {"data": {"event": {"type": "alert group created"}, "alert_group": {"id": "AG3"}}},
        ]})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body["events[0].data.alert_group"][0].is_string(), "{body}");
    // Nothing of either batch was emitted.
    receiver.assert_quiet().await;
}

#[tokio::test]
async fn a_schema_change_applies_to_the_next_emit() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let numeric_id = json!({"alert_group": {"id": 7}});
    // Cached with no catalog, then declared: the next emit is checked.
    emit(
        &mut client,
        &token,
        "alert group created",
        numeric_id.clone(),
    )
    .await
    .unwrap();
    declare_alerts(&mut client, &token).await;
    let refused = emit(
        &mut client,
        &token,
        "alert group created",
        numeric_id.clone(),
    )
    .await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);

    // A schema that wants a number.
    let mut wants_number = alert_schema();
    wants_number["properties"]["alert_group"]["properties"]["id"] = json!({"type": "integer"});
    let changed = event_type("alert group created", Some(wants_number));
    update(&mut client, &token, changed, &["json_schema"])
        .await
        .unwrap();
    emit(
        &mut client,
        &token,
        "alert group created",
        numeric_id.clone(),
    )
    .await
    .unwrap();
    let text_id = json!({"alert_group": {"id": "AG1"}});
    let refused = emit(&mut client, &token, "alert group created", text_id.clone()).await;
    assert_eq!(refused.unwrap_err().code(), Code::InvalidArgument);

    delete(&mut client, &token, "alert group created")
        .await
        .unwrap();
    emit(&mut client, &token, "alert group created", text_id)
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_catalog_requests_get_clear_field_errors() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;

    let huge = json!({"description": "x".repeat(70 * 1024)});
    let schemas = [
        json!({"type": "no-such-type"}),
        json!({"$ref": "https://schemas.example.com/alert.json"}),
        json!({"properties": {"id": {"pattern": "(unclosed"}}}),
        huge,
    ];
    for schema in schemas {
        let refused = declare(&mut client, &token, event_type("x", Some(schema.clone())))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{schema}");
        assert_eq!(violated_fields(&refused), ["json_schema"], "{schema}");
    }
    let long = "x".repeat(257);
    for name in ["", "   ", "a/b", "line\nbreak", " padded", long.as_str()] {
        let refused = declare(&mut client, &token, event_type(name, None))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{name:?}");
        assert_eq!(violated_fields(&refused), ["name"], "{name:?}");
    }
    let description = pb::EventType {
        description: "d".repeat(1001),
        ..event_type("x", None)
    };
    let refused = declare(&mut client, &token, description).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["description"]);
    let empty = client
        .create_event_type(authed(
            &token,
            pb::CreateEventTypeRequest { event_type: None },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&empty), ["event_type"]);
    let bad_token = list(&mut client, &token, 0, "not a token")
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_token), ["page_token"]);
    let negative = list(&mut client, &token, -1, "").await.unwrap_err();
    assert_eq!(violated_fields(&negative), ["page_size"]);
    // An invalid schema in an update changes nothing.
    declare(
        &mut client,
        &token,
        event_type("kept", Some(alert_schema())),
    )
    .await
    .unwrap();
    let broken = event_type("kept", Some(json!({"minimum": "ten"})));
    let refused = update(&mut client, &token, broken, &[]).await.unwrap_err();
    assert_eq!(violated_fields(&refused), ["json_schema"]);
    let kept = get(&mut client, &token, "kept").await.unwrap();
    assert_eq!(schema_of(&kept), Some(alert_schema()));

    // REST: wrong JSON types, a body that is not an object, a boolean schema.
    let base = format!("http://{}/api/v1/event_types/", server.http_addr);
    for (body, field) in [
        (json!({"name": 7}), "name"),
        (json!({"name": "y", "description": null}), "description"),
        (json!({"name": "y", "json_schema": true}), "json_schema"),
        (json!({"name": "y", "json_schema": "{}"}), "json_schema"),
        (json!({"description": "no name"}), "name"),
        (json!([1, 2]), "non_field_errors"),
    ] {
        let (status, answer) =
            http_json(Method::POST, &base, Some(&token), Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert!(answer[field][0].is_string(), "{body}: {answer}");
    }
    let (status, _, text) =
        http_raw(Method::POST, &base, Some(&token), Some("{not json"), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{text}");
    let (status, answer) = http_json(
        Method::GET,
        &format!("{base}?page_size=lots"),
        Some(&token),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(answer["page_size"][0].is_string(), "{answer}");
}

#[tokio::test]
async fn an_account_has_at_most_a_thousand_event_types() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let client = server.webhooks().await;
    let creates = (0..1000).map(|i| {
        let mut client = client.clone();
        let token = token.clone();
        async move {
            // A thousand at once may find the store busy: retry when it says (RetryInfo).
            loop {
                let declared = declare(
                    &mut client,
                    &token,
                    event_type(&format!("type {i:04}"), None),
                )
                .await;
                match declared {
                    Ok(_) => break,
                    Err(status) => tokio::time::sleep(busy_retry_delay(&status)).await,
                }
            }
        }
    });
    futures::future::join_all(creates).await;
    let mut client = client.clone();
    let over = declare(&mut client, &token, event_type("one too many", None))
        .await
        .unwrap_err();
    assert_eq!(over.code(), Code::ResourceExhausted, "{over:?}");
    let (status, body) = http_json(
        Method::POST,
        &format!("http://{}/api/v1/event_types/", server.http_addr),
        Some(&token),
        Some(json!({"name": "one too many"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["non_field_errors"][0]
            .as_str()
            .unwrap()
            .contains("1000"),
        "{body}"
    );
    // Another account is not bound by acme's catalog.
    let other = server.writer("globex").await;
    declare(&mut client, &other, event_type("one too many", None))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_schema_declared_on_one_instance_checks_emits_on_another() {
    let Some(servers) = TestServer::cluster(2).await else {
        return; // needs PostgreSQL (scripts/with-postgres)
    };
    let token = servers[0].writer("acme").await;
    let (mut a, mut b) = (servers[0].webhooks().await, servers[1].webhooks().await);
    let numeric_id = json!({"alert_group": {"id": 7}});
    // B has cached acme's (empty) catalog.
    emit(&mut b, &token, "alert group created", numeric_id.clone())
        .await
        .unwrap();
    declare_alerts(&mut a, &token).await;
    eventually(|| {
        let (mut b, token, data) = (b.clone(), token.clone(), numeric_id.clone());
        async move {
            let refused = emit(&mut b, &token, "alert group created", data)
                .await
                .err()?;
            assert_eq!(violated_fields(&refused), ["data.alert_group.id"]);
            Some(())
        }
    })
    .await;
    // And a removal on A lets B's emits through again.
    delete(&mut a, &token, "alert group created").await.unwrap();
    eventually(|| {
        let (mut b, token, data) = (b.clone(), token.clone(), numeric_id.clone());
        async move { emit(&mut b, &token, "alert group created", data).await.ok() }
    })
    .await;
}
