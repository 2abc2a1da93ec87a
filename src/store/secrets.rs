//! Encryption at rest of webhook secrets (passwords, authorization headers, Cloudflare and
//! signing secrets): XChaCha20-Poly1305 with a 32-byte key from the secret key file, which
//! is generated (mode 0600) on the first start. Sealed values read `enc:v1:<base64>`.

use std::io::Write;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use crate::error::{Error, Result};
use crate::model::Webhook;

const PREFIX: &str = "enc:v1:";
const NONCE_LEN: usize = 24;

/// Seals and opens secrets with the process's key.
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
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
        Ok(SecretBox { cipher })
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

    fn open(&self, stored: &str) -> Result<String> {
        let Some(encoded) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_string()); // written before encryption existed
        };
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

    /// A copy of `webhook` with every secret sealed, for storage.
    pub fn seal_webhook(&self, webhook: &Webhook) -> Webhook {
        let mut sealed = webhook.clone();
        for field in [
            &mut sealed.password,
            &mut sealed.authorization_header,
            &mut sealed.secret,
        ] {
            if let Some(v) = field.as_mut() {
                *v = self.seal(v);
            }
        }
        for s in sealed.signing_secrets.iter_mut() {
            s.secret = self.seal(&s.secret);
        }
        sealed
    }

    /// Opens the secrets of a stored webhook.
    pub fn open_webhook(&self, mut webhook: Webhook) -> Result<Webhook> {
        for field in [
            &mut webhook.password,
            &mut webhook.authorization_header,
            &mut webhook.secret,
        ] {
            if let Some(v) = field.as_mut() {
                *v = self.open(v)?;
            }
        }
        for s in webhook.signing_secrets.iter_mut() {
            s.secret = self.open(&s.secret)?;
        }
        Ok(webhook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_round_trip_and_a_wrong_key_cannot_open_them() {
        let dir = tempfile::tempdir().unwrap();
        let a = SecretBox::load_or_create(&dir.path().join("a.key")).unwrap();
        let sealed = a.seal("hunter2");
        assert!(sealed.starts_with(PREFIX) && !sealed.contains("hunter2"));
        assert_ne!(a.seal("hunter2"), sealed, "nonces differ");
        assert_eq!(a.open(&sealed).unwrap(), "hunter2");
        let again = SecretBox::load_or_create(&dir.path().join("a.key")).unwrap();
        assert_eq!(again.open(&sealed).unwrap(), "hunter2");
        let b = SecretBox::load_or_create(&dir.path().join("b.key")).unwrap();
        assert!(b.open(&sealed).is_err());
        assert_eq!(a.open("legacy-plain").unwrap(), "legacy-plain");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("a.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
