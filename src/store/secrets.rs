//! Encryption at rest of webhook secrets (passwords, authorization headers, Cloudflare and
//! signing secrets, custom header values, credentials in target URLs) and of the credentials
//! in a delivery's rendered URL: XChaCha20-Poly1305 with a 32-byte key from the secret key
//! file, which is generated (mode 0600) on the first start. Sealed values read
//! `enc:v1:<base64>`. A delivery's other credentials are never stored: the attempt takes
//! them from the webhook (see `delivery::request`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;
use std::sync::RwLock;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};
use crate::model::{Delivery, Webhook};
use crate::userinfo;

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

/// Sealed values remembered with their clear text at most (then forgotten at once).
const OPENED_CAPACITY: usize = 65_536;

/// Seals and opens secrets with the process's key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
    /// Clear text of sealed values already opened: reads of a webhook (every emit and
    /// attempt) skip the decryption. A sealed value never changes meaning, so this is valid
    /// whoever wrote it.
    opened: RwLock<HashMap<String, String>>,
}

impl SecretBox {
    /// Loads the key from `path`, creating it (mode 0600) when absent.
    pub fn load_or_create(path: &Path) -> Result<SecretBox> {
        let unusable = |e: &dyn std::fmt::Display| {
            Error::Internal(format!(
                "cannot use the secret key file {}: {e}",
                path.display()
            ))
        };
        let key = match std::fs::read_to_string(path) {
            Ok(text) => STANDARD.decode(text.trim()).map_err(|e| unusable(&e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = XChaCha20Poly1305::generate_key(&mut OsRng).to_vec();
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(path).map_err(|e| unusable(&e))?;
                file.write_all(STANDARD.encode(&key).as_bytes())
                    .and_then(|_| file.sync_all())
                    .map_err(|e| unusable(&e))?;
                key
            }
            Err(e) => return Err(unusable(&e)),
        };
        let cipher = XChaCha20Poly1305::new_from_slice(&key)
            .map_err(|_| unusable(&"the key must be 32 bytes, base64-encoded"))?;
        Ok(SecretBox {
            cipher,
            opened: RwLock::default(),
        })
    }

    fn seal(&self, plain: &str) -> String {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let sealed = self
            .cipher
            .encrypt(&nonce, plain.as_bytes())
            .expect("encryption of a bounded buffer cannot fail");
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        format!("{PREFIX}{}", STANDARD.encode(bytes))
    }

    /// Opens `value` in place when it is sealed (a value without the prefix was written
    /// before it was sealed and is kept as it is).
    fn open(&self, value: &mut String) -> Result<()> {
        let Some(encoded) = value.strip_prefix(PREFIX) else {
            return Ok(());
        };
        let known = self.opened.read().unwrap_or_else(|e| e.into_inner());
        if let Some(plain) = known.get(encoded) {
            *value = plain.clone();
            return Ok(());
        }
        drop(known);
        let plain = self.decrypt(encoded)?;
        let mut known = self.opened.write().unwrap_or_else(|e| e.into_inner());
        if known.len() >= OPENED_CAPACITY {
            known.clear();
        }
        known.insert(encoded.to_string(), plain.clone());
        *value = plain;
        Ok(())
    }

    fn decrypt(&self, encoded: &str) -> Result<String> {
        let corrupt =
            || Error::Internal("a stored secret cannot be decrypted with this secret key".into());
        let bytes = STANDARD.decode(encoded).map_err(|_| corrupt())?;
        if bytes.len() < NONCE_LEN {
            return Err(corrupt());
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), sealed)
            .map_err(|_| corrupt())?;
        String::from_utf8(plain).map_err(|_| corrupt())
    }

    /// Whether a URL is stored sealed: when it carries credentials (most URLs do not and
    /// stay readable), or would read as sealed.
    fn seals_url(url: &str) -> bool {
        userinfo::has_credentials(url) || url.starts_with(PREFIX)
    }

    fn seals_delivery(delivery: &Delivery) -> bool {
        let request_url = delivery.request.as_ref().map(|r| r.url.as_str());
        std::iter::once(delivery.url.as_str())
            .chain(request_url)
            .any(Self::seals_url)
    }

    fn seal_url(&self, url: &mut String) {
        if Self::seals_url(url) {
            *url = self.seal(url);
        }
    }

    /// A copy of `webhook` with every secret sealed, for storage.
    pub fn seal_webhook(&self, webhook: &Webhook) -> Webhook {
        let mut sealed = webhook.clone();
        for field in [
            &mut sealed.password,
            &mut sealed.authorization_header,
            &mut sealed.secret,
            &mut sealed.client_certificate,
            &mut sealed.client_key,
        ] {
            if let Some(v) = field.as_mut() {
                *v = self.seal(v);
            }
        }
        for s in sealed.signing_secrets.iter_mut() {
            s.secret = self.seal(&s.secret);
        }
        for value in sealed.custom_headers.values_mut() {
            *value = self.seal(value);
        }
        for url in std::iter::once(&mut sealed.url).chain(sealed.urls.iter_mut()) {
            self.seal_url(url);
        }
        sealed
    }

    /// Opens the secrets of a stored webhook.
    pub fn open_webhook(&self, mut webhook: Webhook) -> Result<Webhook> {
        for field in [
            &mut webhook.password,
            &mut webhook.authorization_header,
            &mut webhook.secret,
            &mut webhook.client_certificate,
            &mut webhook.client_key,
        ] {
            if let Some(v) = field.as_mut() {
                self.open(v)?;
            }
        }
        for s in webhook.signing_secrets.iter_mut() {
            self.open(&mut s.secret)?;
        }
        for value in webhook.custom_headers.values_mut() {
            self.open(value)?;
        }
        for url in std::iter::once(&mut webhook.url).chain(webhook.urls.iter_mut()) {
            self.open(url)?;
        }
        Ok(webhook)
    }

    /// `delivery` as stored: the credentials of its rendered URL sealed (borrowed as it is
    /// when it has none, the common case).
    pub fn seal_delivery<'a>(&self, delivery: &'a Delivery) -> Cow<'a, Delivery> {
        if !Self::seals_delivery(delivery) {
            return Cow::Borrowed(delivery);
        }
        let mut delivery = delivery.clone();
        self.seal_url(&mut delivery.url);
        if let Some(request) = delivery.request.as_mut() {
            self.seal_url(&mut request.url);
        }
        Cow::Owned(delivery)
    }

    /// `deliveries` as stored (borrowed as they are when none has credentials in its URL).
    pub fn seal_deliveries<'a>(&self, deliveries: &'a [Delivery]) -> Cow<'a, [Delivery]> {
        if !deliveries.iter().any(Self::seals_delivery) {
            return Cow::Borrowed(deliveries);
        }
        Cow::Owned(
            deliveries
                .iter()
                .map(|d| self.seal_delivery(d).into_owned())
                .collect(),
        )
    }

    /// Opens a stored delivery.
    pub fn open_delivery(&self, mut delivery: Delivery) -> Result<Delivery> {
        self.open(&mut delivery.url)?;
        if let Some(request) = delivery.request.as_mut() {
            self.open(&mut request.url)?;
        }
        Ok(delivery)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::RenderedRequest;

    fn opened(secrets: &SecretBox, sealed: &str) -> Result<String> {
        let mut value = sealed.to_string();
        secrets.open(&mut value)?;
        Ok(value)
    }

    #[test]
    fn secrets_round_trip_and_a_wrong_key_cannot_open_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load_or_create(&dir.path().join("a.key")).unwrap();
        let sealed = a.seal("hunter2");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("hunter2"));
        assert_ne!(a.seal("hunter2"), sealed, "nonces differ");
        assert_eq!(opened(&a, &sealed).unwrap(), "hunter2");
        let again = SecretBox::load_or_create(&dir.path().join("a.key")).unwrap();
        assert_eq!(opened(&again, &sealed).unwrap(), "hunter2");
        let b = SecretBox::load_or_create(&dir.path().join("b.key")).unwrap();
        assert!(opened(&b, &sealed).is_err());
        assert_eq!(opened(&a, "legacy-plain").unwrap(), "legacy-plain");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("a.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn only_urls_with_credentials_are_sealed_and_every_url_opens_as_it_was() {
        let dir = tempfile::tempdir().unwrap();
        let secrets = SecretBox::load_or_create(&dir.path().join("k")).unwrap();
        let rendered = |url: &str| RenderedRequest {
            method: "POST".into(),
            url: url.into(),
            headers: vec![],
            body: None,
            traceparent: None,
        };
        let mut delivery = Delivery {
            request: Some(rendered("https://example.com/hook")),
            ..Delivery::queued(1, 1, 1, "https://example.com/hook".into(), String::new(), 0)
        };
        assert!(matches!(secrets.seal_delivery(&delivery), Cow::Borrowed(_)));
        for url in ["https://bob:hunter2@example.com/hook", "enc:v1:{{ x }}"] {
            delivery.url = url.into();
            delivery.request = Some(rendered(url));
            let sealed = secrets.seal_delivery(&delivery).into_owned();
            assert!(!sealed.url.contains(url) && sealed.url.starts_with(PREFIX));
            assert_eq!(secrets.open_delivery(sealed).unwrap(), delivery);
        }
    }
}
