//! mTLS through the real server: a webhook's `client_certificate`/`client_key` reach an
//! HTTPS receiver on 127.0.0.1 that requires a client certificate from a private CA, which
//! the webhook trusts through `ca_certificates`; the certificate and key are write-only,
//! masked in reads and never on disk in clear; bad PEM is refused naming the field.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{Mutex, mpsc};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::server::WebPkiClientVerifier;
use tokio_rustls::rustls::{self, RootCertStore, ServerConfig};
use webhookd::grpc::pb;

use crate::support::*;

/// A private CA with a server certificate for 127.0.0.1 and a client certificate.
struct Pki {
    ca: String,
    server_cert: String,
    server_key: String,
    client_cert: String,
    client_key: String,
}

impl Pki {
    fn new() -> Pki {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "webhookd test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let leaf = |names: Vec<String>, cn: &str| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            let cert = params.signed_by(&key, &ca).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["127.0.0.1".into()], "receiver");
        let (client_cert, client_key) = leaf(vec!["webhookd.test".into()], "webhookd");
        Pki {
            ca: ca.pem(),
            server_cert,
            server_key,
            client_cert,
            client_key,
        }
    }
}

/// An HTTPS receiver on 127.0.0.1 that completes a handshake only with a client
/// certificate issued by the CA; it answers 200 and reports each request's path.
struct TlsReceiver {
    url: String,
    paths: Mutex<mpsc::UnboundedReceiver<String>>,
}

impl TlsReceiver {
    async fn start(pki: &Pki) -> TlsReceiver {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(pki.ca.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider.clone())
            .build()
            .unwrap();
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![CertificateDer::from_pem_slice(pki.server_cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(pki.server_key.as_bytes()).unwrap(),
            )
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("https://{}/hook", listener.local_addr().unwrap());
        let (sender, paths) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let (tcp, _) = listener.accept().await.unwrap();
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    // A client without an acceptable certificate fails here.
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service =
                        hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
                            let _ = sender.send(request.uri().path().to_string());
                            async {
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::from(
                                    "ok",
                                ))))
                            }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        TlsReceiver {
            url,
            paths: Mutex::new(paths),
        }
    }

    async fn next(&self) -> String {
        tokio::time::timeout(Duration::from_secs(10), self.paths.lock().await.recv())
            .await
            .expect("no request reached the TLS receiver")
            .unwrap()
    }
}

#[tokio::test]
async fn a_client_certificate_reaches_a_receiver_that_requires_one() {
    let server = TestServer::start().await;
    let pki = Pki::new();
    let receiver = TlsReceiver::start(&pki).await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let hook = create(
        &mut client,
        &token,
        pb::Webhook {
            client_certificate: Some(pki.client_cert.clone()),
            client_key: Some(pki.client_key.clone()),
            ca_certificates: vec![pki.ca.clone()],
            ..webhook("mtls", &receiver.url)
        },
    )
    .await;
    assert_eq!(hook.client_certificate.as_deref(), Some("****************"));
    assert_eq!(hook.client_key.as_deref(), Some("****************"));
    assert_eq!(hook.ca_certificates, vec![pki.ca.clone()]);

    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "SUCCEEDED"]);
    assert_eq!(receiver.next().await, "/hook");

    // Sending the placeholders back (a read-modify-write) keeps the certificate and key.
    client
        .update_webhook(authed(
            &token,
            pb::UpdateWebhookRequest {
                webhook: Some(pb::Webhook {
                    description: "still mTLS".into(),
                    ..hook.clone()
                }),
                update_mask: None,
            },
        ))
        .await
        .unwrap();
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "SUCCEEDED"]);
    assert_eq!(receiver.next().await, "/hook");

    // The key's PEM body is in no file of the data directory.
    let key_line = pki
        .client_key
        .lines()
        .find(|l| !l.starts_with("-----"))
        .unwrap()
        .to_string();
    let mut stack = vec![server.data_dir().to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                assert!(
                    !bytes
                        .windows(key_line.len())
                        .any(|w| w == key_line.as_bytes()),
                    "{} holds the client key in clear",
                    path.display()
                );
            }
        }
    }
}

#[tokio::test]
async fn without_a_client_certificate_the_receiver_refuses_the_delivery() {
    let server = TestServer::start().await;
    let pki = Pki::new();
    let receiver = TlsReceiver::start(&pki).await;
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    // The private CA alone is valid: the server certificate verifies, the handshake still
    // fails for want of a client certificate.
    create(
        &mut client,
        &token,
        pb::Webhook {
            ca_certificates: vec![pki.ca.clone()],
            max_attempts: 1,
            ..webhook("ca only", &receiver.url)
        },
    )
    .await;
    let statuses = emit_all(&mut client, &token, "alert group created", json!({})).await;
    assert_eq!(states(&statuses), ["QUEUED", "FAILED"]);
    let error = &statuses.last().unwrap().error;
    assert!(error.contains("connection error"), "{error}");
}

#[tokio::test]
async fn bad_pem_and_a_certificate_without_its_key_name_the_field() {
    let server = TestServer::start().await;
    let pki = Pki::new();
    let token = server.writer("acme").await;
    let mut client = server.webhooks().await;
    let other_key = KeyPair::generate().unwrap().serialize_pem();
    let cases: [(pb::Webhook, &[&str]); 5] = [
        (
            pb::Webhook {
                ca_certificates: vec!["not a certificate".into()],
                ..webhook("x", "https://example.com")
            },
            &["ca_certificates"],
        ),
        (
            pb::Webhook {
                client_certificate: Some(pki.client_cert.clone()),
                client_key: Some(
                    "-----BEGIN PRIVATE KEY-----\n%%%\n-----END PRIVATE KEY-----\n".into(),
                ),
                ..webhook("x", "https://example.com")
            },
            &["client_key"],
        ),
        (
            pb::Webhook {
                client_certificate: Some(pki.client_cert.clone()),
                ..webhook("x", "https://example.com")
            },
            &["client_key"],
        ),
        (
            pb::Webhook {
                client_key: Some(pki.client_key.clone()),
                ..webhook("x", "https://example.com")
            },
            &["client_certificate"],
        ),
        (
            pb::Webhook {
                client_certificate: Some(pki.client_cert.clone()),
                client_key: Some(other_key.clone()),
                ..webhook("x", "https://example.com")
            },
            &["client_key"],
        ),
    ];
    for (webhook, fields) in cases {
        let status = client
            .create_webhook(authed(
                &token,
                pb::CreateWebhookRequest {
                    webhook: Some(webhook),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");
        assert_eq!(violated_fields(&status), fields, "{status:?}");
        let key_body = other_key.lines().nth(1).unwrap();
        assert!(!status.message().contains(key_body), "{status:?}");
    }
}
