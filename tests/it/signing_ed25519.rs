//! Standard Webhooks `v1a` (ed25519) through the real server: a receiver verifies with the
//! webhook's public key alone, using an independent ed25519 implementation
//! (`ed25519-compact`, not the server's `ed25519-dalek`); rotation signs with both keys
//! during the overlap; bad keys are refused naming `signing_secret`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use webhookd::grpc::pb;

use crate::support::*;

/// Whether one `v1a` entry of the request's `webhook-signature` verifies with `public_key`
/// (`whpk_<base64>`) over `{webhook-id}.{webhook-timestamp}.{body}`.
fn verifies(public_key: &str, request: &Received, body: &[u8]) -> bool {
    let raw = STANDARD
        .decode(public_key.strip_prefix("whpk_").expect("a whpk_ key"))
        .unwrap();
    let key = ed25519_compact::PublicKey::from_slice(&raw).unwrap();
    let id = request.header("webhook-id").unwrap();
    let timestamp = request.header("webhook-timestamp").unwrap();
    let mut message = format!("{id}.{timestamp}.").into_bytes();
    message.extend_from_slice(body);
    request
        .header("webhook-signature")
        .unwrap()
        .split(' ')
        .filter_map(|entry| entry.strip_prefix("v1a,"))
        .filter_map(|b64| STANDARD.decode(b64).ok())
        .filter_map(|sig| ed25519_compact::Signature::from_slice(&sig).ok())
        .any(|sig| key.verify(&message, &sig).is_ok())
}

#[tokio::test]
async fn receivers_verify_v1a_signatures_with_the_public_key_and_a_rotated_key_keeps_signing() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            signing_secret: Some("generate-ed25519".into()),
            ..webhook("ed25519", &receiver.url("/hook"))
        },
    )
    .await;
    assert_eq!(hook.signing_secret.as_deref(), Some("****************"));
    let public_key = hook.signing_public_key.clone();
    assert!(public_key.starts_with("whpk_"), "{public_key:?}");

    emit_all(&mut client, &token, "alert group created", json!({"n": 1})).await;
    let request = receiver.next().await;
    let signature = request.header("webhook-signature").unwrap().to_string();
    assert!(signature.starts_with("v1a,"), "{signature}");
    assert!(verifies(&public_key, &request, &request.body));
    assert!(
        !verifies(&public_key, &request, br#"{"n": 2}"#),
        "a tampered body does not verify"
    );

    let rotated = client
        .rotate_signing_secret(authed(
            &token,
            pb::RotateSigningSecretRequest {
                webhook_id: hook.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(rotated.signing_secret.starts_with("whsk_"));
    let new_key = rotated.signing_public_key;
    assert!(new_key.starts_with("whpk_") && new_key != public_key);
    let read = client
        .get_webhook(authed(
            &token,
            pb::GetWebhookRequest {
                id: hook.id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        read.signing_public_key, new_key,
        "reads show the current key"
    );

    emit_all(&mut client, &token, "alert group created", json!({"n": 2})).await;
    let request = receiver.next().await;
    assert!(verifies(&new_key, &request, &request.body), "new key signs");
    assert!(
        verifies(&public_key, &request, &request.body),
        "old key still signs for 24 h"
    );
}

#[tokio::test]
async fn a_given_seed_signs_as_that_key_and_bad_keys_name_signing_secret() {
    let server = TestServer::start().await;
    let receiver = Receiver::start().await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let seed = [42u8; 32];
    let expected = ed25519_compact::KeyPair::from_seed(ed25519_compact::Seed::new(seed)).pk;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            signing_secret: Some(format!("whsk_{}", STANDARD.encode(seed))),
            ..webhook("seeded", &receiver.url("/hook"))
        },
    )
    .await;
    assert_eq!(
        hook.signing_public_key,
        format!("whpk_{}", STANDARD.encode(expected.as_ref()))
    );
    emit_all(&mut client, &token, "alert group created", json!({})).await;
    let request = receiver.next().await;
    assert!(verifies(&hook.signing_public_key, &request, &request.body));

    for bad in [
        format!("whsk_{}", STANDARD.encode([1u8; 31])),
        format!("whsk_{}", STANDARD.encode([1u8; 64])),
        "whsk_not*base64".to_string(),
        "whsk_".to_string(),
        "generate-rsa".to_string(),
    ] {
        let status = client
            .create_webhook(authed(
                &token,
                pb::CreateWebhookRequest {
                    webhook: Some(pb::Webhook {
                        signing_secret: Some(bad.clone()),
                        ..webhook("bad key", &receiver.url("/hook"))
                    }),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{bad}");
        assert_eq!(violated_fields(&status), ["signing_secret"], "{bad}");
        assert!(!status.message().contains("not*base64"), "{status:?}");
    }

    // The public key is output only: an update mask naming it is refused.
    let status = client
        .update_webhook(authed(
            &token,
            pb::UpdateWebhookRequest {
                webhook: Some(hook.clone()),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["signing_public_key".into()],
                }),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["update_mask"]);
}
