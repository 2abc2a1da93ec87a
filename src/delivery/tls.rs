//! A webhook's own TLS settings (mTLS): its client certificate and key, and the private CAs
//! it trusts besides the default roots. Builds the rustls `ClientConfig` a delivery to the
//! webhook uses, validates what a client gives (PEM that parses, a key that matches the
//! certificate), and names each set of settings by a digest so the client can keep one
//! connection pool per set. Depends on the model only.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};
use sha2::{Digest as _, Sha256};

use crate::model::Webhook;

/// The TLS settings of one webhook (PEM texts, as given).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSettings {
    /// Client certificate chain, leaf first.
    pub client_certificate: Option<String>,
    /// Private key of the client certificate.
    pub client_key: Option<String>,
    /// CA certificates trusted besides the default roots.
    pub ca_certificates: Vec<String>,
}

/// A problem with one field of the settings (the message never contains key material).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsProblem {
    pub field: &'static str,
    pub message: String,
}

impl TlsSettings {
    /// The TLS settings of a webhook.
    pub fn of(webhook: &Webhook) -> TlsSettings {
        TlsSettings {
            client_certificate: webhook.client_certificate.clone(),
            client_key: webhook.client_key.clone(),
            ca_certificates: webhook.ca_certificates.clone(),
        }
    }

    /// Whether the settings differ from the defaults (no client certificate, default roots).
    pub fn is_custom(&self) -> bool {
        self.client_certificate.is_some()
            || self.client_key.is_some()
            || !self.ca_certificates.is_empty()
    }

    /// A digest naming these settings (equal settings share one connection pool).
    pub fn digest(&self) -> [u8; 32] {
        let mut hash = Sha256::new();
        for part in [&self.client_certificate, &self.client_key] {
            let text = part.as_deref().unwrap_or("");
            hash.update((text.len() as u64).to_be_bytes());
            hash.update(text.as_bytes());
        }
        for ca in &self.ca_certificates {
            hash.update((ca.len() as u64).to_be_bytes());
            hash.update(ca.as_bytes());
        }
        hash.finalize().into()
    }

    /// The client configuration of these settings (ring, rustls' default protocol
    /// versions), or every problem found, by field.
    pub fn client_config(&self) -> Result<ClientConfig, Vec<TlsProblem>> {
        let mut problems = Vec::new();
        let mut roots = RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        for (i, pem) in self.ca_certificates.iter().enumerate() {
            let added = certificates("ca_certificates", pem).and_then(|certs| {
                certs.into_iter().try_for_each(|cert| {
                    roots.add(cert).map_err(|e| TlsProblem {
                        field: "ca_certificates",
                        message: format!("entry {}: not a usable CA certificate: {e}", i + 1),
                    })
                })
            });
            if let Err(problem) = added {
                problems.push(problem);
            }
        }
        let chain = self
            .client_certificate
            .as_deref()
            .map(|pem| certificates("client_certificate", pem))
            .transpose();
        let key = self
            .client_key
            .as_deref()
            .map(|pem| {
                PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|_| TlsProblem {
                    field: "client_key",
                    message: "must be a PEM private key (PKCS#8, PKCS#1 or SEC1)".into(),
                })
            })
            .transpose();
        let (chain, key) = match (chain, key) {
            (Ok(chain), Ok(key)) => (chain, key),
            (chain, key) => {
                problems.extend(chain.err());
                problems.extend(key.err());
                return Err(problems);
            }
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports rustls' default protocol versions")
            .with_root_certificates(roots);
        let required = |field, other| TlsProblem {
            field,
            message: format!("is required with {other}"),
        };
        let config = match (chain, key) {
            (None, None) => Some(builder.with_no_client_auth()),
            (Some(chain), Some(key)) => match builder.with_client_auth_cert(chain, key) {
                Ok(config) => Some(config),
                Err(e) => {
                    problems.push(TlsProblem {
                        field: "client_key",
                        message: format!("does not fit client_certificate: {e}"),
                    });
                    None
                }
            },
            (Some(_), None) => {
                problems.push(required("client_key", "client_certificate"));
                None
            }
            (None, Some(_)) => {
                problems.push(required("client_certificate", "client_key"));
                None
            }
        };
        match config {
            Some(config) if problems.is_empty() => Ok(config),
            _ => Err(problems),
        }
    }
}

/// Every certificate of a PEM text (at least one).
fn certificates(
    field: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, TlsProblem> {
    let problem = || TlsProblem {
        field,
        message: "must be one or more PEM certificates (-----BEGIN CERTIFICATE-----)".into(),
    };
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| problem())?;
    if certs.is_empty() {
        return Err(problem());
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(settings: &TlsSettings) -> Vec<&'static str> {
        settings
            .client_config()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn defaults_build_and_garbage_names_its_field() {
        assert!(TlsSettings::default().client_config().is_ok());
        let garbage = TlsSettings {
            ca_certificates: vec!["not pem".into()],
            ..TlsSettings::default()
        };
        assert_eq!(fields(&garbage), ["ca_certificates"]);
        let key_only = TlsSettings {
            client_key: Some(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
            ),
            ..TlsSettings::default()
        };
        assert!(!fields(&key_only).is_empty());
    }

    #[test]
    fn equal_settings_share_a_digest() {
        let a = TlsSettings {
            ca_certificates: vec!["x".into()],
            ..TlsSettings::default()
        };
        let b = TlsSettings {
            client_certificate: Some("x".into()),
            ..TlsSettings::default()
        };
        assert_eq!(a.digest(), a.clone().digest());
        assert_ne!(a.digest(), b.digest());
        assert!(!TlsSettings::default().is_custom() && a.is_custom());
    }
}
