//! A user manages webhooks over gRPC: create with defaults, read back with secrets masked,
//! page through a list, update with field masks, delete, and gets a precise
//! INVALID_ARGUMENT for every bad field.

use prost_types::FieldMask;
use tonic::Code;
use tonic_types::StatusExt;
use webhookd::grpc::pb;

use crate::support::*;

#[tokio::test]
async fn create_applies_oncall_defaults_and_masks_secrets() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let created = create(
        &mut client,
        &token,
        pb::Webhook {
            password: Some("hunter2".into()),
            username: Some("bob".into()),
            authorization_header: Some("Bearer sk-live".into()),
            ..webhook("Demo Webhook", "https://example.com/hook")
        },
    )
    .await;
    assert!(created.id.starts_with('W'));
    assert_eq!(created.is_webhook_enabled, Some(true));
    assert_eq!(created.forward_all, Some(true));
    assert_eq!(created.http_method, "POST");
    assert_eq!(created.trigger_type, "alert group created");
    assert_eq!(created.password.as_deref(), Some("****************"));
    assert_eq!(
        created.authorization_header.as_deref(),
        Some("****************")
    );
    assert_eq!(created.username.as_deref(), Some("bob"));
    assert!(created.created_at.is_some());

    let fetched = client
        .get_webhook(authed(
            &token,
            pb::GetWebhookRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);
    let debug = format!("{fetched:?}");
    assert!(!debug.contains("hunter2") && !debug.contains("sk-live"));
}

#[tokio::test]
async fn listing_pages_through_every_webhook_in_creation_order() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(
            create(
                &mut client,
                &token,
                webhook(&format!("hook {i}"), "https://example.com"),
            )
            .await
            .id,
        );
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    let mut pages = 0;
    loop {
        let page = client
            .list_webhooks(authed(
                &token,
                pb::ListWebhooksRequest {
                    page_size: 3,
                    page_token: page_token.clone(),
                },
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(page.total_size, 7);
        pages += 1;
        seen.extend(page.webhooks.into_iter().map(|w| w.id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);

    let bad = client
        .list_webhooks(authed(
            &token,
            pb::ListWebhooksRequest {
                page_size: 3,
                page_token: "garbage".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn update_changes_only_the_masked_fields_and_keeps_secrets() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let created = create(
        &mut client,
        &token,
        pb::Webhook {
            password: Some("hunter2".into()),
            username: Some("bob".into()),
            ..webhook("Original", "https://example.com")
        },
    )
    .await;

    // Only `name` is in the mask: the url sent along is ignored.
    let update = pb::UpdateWebhookRequest {
        webhook: Some(pb::Webhook {
            id: created.id.clone(),
            name: "Renamed".into(),
            url: "https://ignored.example".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["name".into()],
        }),
    };
    let updated = client
        .update_webhook(authed(&token, update))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.url, "https://example.com");
    assert_eq!(updated.password.as_deref(), Some("****************"));

    // Without a mask, the populated fields change; false counts because the field is optional.
    let update = pb::UpdateWebhookRequest {
        webhook: Some(pb::Webhook {
            id: created.id.clone(),
            is_webhook_enabled: Some(false),
            password: Some("****************".into()),
            ..Default::default()
        }),
        update_mask: None,
    };
    let updated = client
        .update_webhook(authed(&token, update))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.is_webhook_enabled, Some(false));
    assert_eq!(updated.name, "Renamed");
    assert_eq!(updated.password.as_deref(), Some("****************"));

    // "*" replaces everything: the password is cleared because none was sent.
    let update = pb::UpdateWebhookRequest {
        webhook: Some(pb::Webhook {
            id: created.id.clone(),
            ..webhook("Replaced", "https://other.example")
        }),
        update_mask: Some(FieldMask {
            paths: vec!["*".into()],
        }),
    };
    let replaced = client
        .update_webhook(authed(&token, update))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(replaced.name, "Replaced");
    assert_eq!(replaced.password, None);
    assert_eq!(replaced.is_webhook_enabled, Some(true));

    // Unknown and output-only paths are refused.
    for path in ["no_such_field", "created_at"] {
        let update = pb::UpdateWebhookRequest {
            webhook: Some(pb::Webhook {
                id: created.id.clone(),
                ..Default::default()
            }),
            update_mask: Some(FieldMask {
                paths: vec![path.into()],
            }),
        };
        let error = client
            .update_webhook(authed(&token, update))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{path}");
        assert_eq!(violated_fields(&error), vec!["update_mask"]);
    }

    // An invalid update leaves the webhook unchanged.
    let update = pb::UpdateWebhookRequest {
        webhook: Some(pb::Webhook {
            id: created.id.clone(),
            http_method: "BREW".into(),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["http_method".into()],
        }),
    };
    assert_eq!(
        client
            .update_webhook(authed(&token, update))
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );
    let fetched = client
        .get_webhook(authed(
            &token,
            pb::GetWebhookRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.http_method, "POST");
}

#[tokio::test]
async fn delete_removes_the_webhook_for_good() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let created = create(
        &mut client,
        &token,
        webhook("Doomed", "https://example.com"),
    )
    .await;
    client
        .delete_webhook(authed(
            &token,
            pb::DeleteWebhookRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap();
    let get = client
        .get_webhook(authed(
            &token,
            pb::GetWebhookRequest {
                id: created.id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);
    assert!(get.get_error_details().resource_info().is_some());
    let again = client
        .delete_webhook(authed(&token, pb::DeleteWebhookRequest { id: created.id }))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::NotFound);
    let malformed = client
        .get_webhook(authed(
            &token,
            pb::GetWebhookRequest {
                id: "../../etc".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::NotFound);
}

#[tokio::test]
async fn every_invalid_field_is_reported_as_a_bad_request_violation() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let cases: Vec<(pb::Webhook, &[&str])> = vec![
        (pb::Webhook::default(), &["name", "url"]),
        (
            pb::Webhook {
                url: "https://example.com".into(),
                ..Default::default()
            },
            &["name"],
        ),
        (
            pb::Webhook {
                name: "x".into(),
                ..Default::default()
            },
            &["url"],
        ),
        (webhook("x", "ftp://example.com"), &["url"]),
        (webhook("x", "not a url"), &["url"]),
        (webhook(&"n".repeat(101), "https://example.com"), &["name"]),
        (
            pb::Webhook {
                http_method: "BREW".into(),
                ..webhook("x", "https://example.com")
            },
            &["http_method"],
        ),
        (
            pb::Webhook {
                trigger_type: "sometimes".into(),
                ..webhook("x", "https://example.com")
            },
            &["trigger_type"],
        ),
        (
            pb::Webhook {
                data: Some("{{ broken ".into()),
                ..webhook("x", "https://example.com")
            },
            &["data"],
        ),
        (
            pb::Webhook {
                headers: Some("{% if %}".into()),
                ..webhook("x", "https://example.com")
            },
            &["headers"],
        ),
        (
            pb::Webhook {
                trigger_template: Some("{{ a | }}".into()),
                ..webhook("x", "https://example.com")
            },
            &["trigger_template"],
        ),
        (
            pb::Webhook {
                template_engine: "mustache".into(),
                ..webhook("x", "https://example.com")
            },
            &["template_engine"],
        ),
        (
            pb::Webhook {
                signing_secret: Some("not-a-secret".into()),
                ..webhook("x", "https://example.com")
            },
            &["signing_secret"],
        ),
        (
            pb::Webhook {
                retry_schedule: vec!["soon".into()],
                ..webhook("x", "https://example.com")
            },
            &["retry_schedule"],
        ),
        (
            pb::Webhook {
                destination_type: "pager".into(),
                ..webhook("x", "https://example.com")
            },
            &["destination_type"],
        ),
    ];
    for (bad, fields) in cases {
        let error = client
            .create_webhook(authed(
                &token,
                pb::CreateWebhookRequest {
                    webhook: Some(bad.clone()),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(
            violated_fields(&error),
            fields.iter().map(|f| f.to_string()).collect::<Vec<_>>(),
            "{bad:?}"
        );
    }
    let missing = client
        .create_webhook(authed(&token, pb::CreateWebhookRequest { webhook: None }))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&missing), vec!["webhook"]);

    // Undefined variables are not a validation error (they are a render-time matter).
    create(
        &mut client,
        &token,
        pb::Webhook {
            data: Some("{{ nothing.here }}".into()),
            ..webhook("lenient", "https://example.com")
        },
    )
    .await;
    // Names are unique within an account.
    let duplicate = client
        .create_webhook(authed(
            &token,
            pb::CreateWebhookRequest {
                webhook: Some(webhook("lenient", "https://example.com")),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(duplicate.code(), Code::AlreadyExists);
}

#[tokio::test]
async fn the_remaining_rpcs_refuse_unknown_ids_and_bad_tokens() {
    let server = TestServer::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let rotate = client
        .rotate_signing_secret(authed(
            &token,
            pb::RotateSigningSecretRequest {
                webhook_id: "W-nope".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(rotate.code(), Code::NotFound);
    let redeliver = client
        .redeliver_failed(authed(
            &token,
            pb::RedeliverFailedRequest {
                webhook_id: String::new(),
                since: None,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(redeliver.code(), Code::NotFound);
    let page = client
        .list_responses(authed(
            &token,
            pb::ListResponsesRequest {
                webhook_id: "W0000000000000".into(),
                page_size: -1,
                page_token: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(page.code(), Code::InvalidArgument);
    let created = create(&mut client, &token, webhook("x", "https://example.com")).await;
    let bad_token = client
        .list_responses(authed(
            &token,
            pb::ListResponsesRequest {
                webhook_id: created.id,
                page_size: 10,
                page_token: "not-a-token".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&bad_token), vec!["page_token"]);
    let anonymous = client
        .rotate_signing_secret(pb::RotateSigningSecretRequest {
            webhook_id: "W0000000000000".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

/// The names of the messages a reflection answer's file descriptors define (package included).
fn messages_of(response: tonic_reflection::pb::v1::ServerReflectionResponse) -> Vec<String> {
    use prost::Message;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let Some(MessageResponse::FileDescriptorResponse(files)) = response.message_response else {
        panic!("not a file descriptor answer: {response:?}")
    };
    files
        .file_descriptor_proto
        .iter()
        .map(|bytes| prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap())
        .flat_map(|file| {
            let package = file.package().to_string();
            file.message_type
                .into_iter()
                .map(move |m| format!("{package}.{}", m.name()))
        })
        .collect()
}

#[tokio::test]
async fn reflection_describes_the_error_details_a_bad_request_carries() {
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    let server = TestServer::start().await;
    let mut reflection = server.reflection().await;
    // What grpcurl does on an error: look up each detail's type by its full name.
    for symbol in [
        "google.rpc.BadRequest",
        "google.rpc.ResourceInfo",
        "google.rpc.ErrorInfo",
    ] {
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(MessageRequest::FileContainingSymbol(symbol.into())),
        };
        let mut answers = reflection
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        let answer = answers.message().await.unwrap().unwrap();
        let messages = messages_of(answer);
        assert!(
            messages.contains(&symbol.to_string()),
            "{symbol}: {messages:?}"
        );
    }
}
