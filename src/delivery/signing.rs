//! Standard Webhooks signing (<https://www.standardwebhooks.com/>): the `webhook-signature`
//! value for a delivery, and generation and validation of `whsec_` signing secrets.
//! Pure functions; depends on nothing else in the crate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// Number of random bytes in a generated secret.
const GENERATED_SECRET_BYTES: usize = 24;

/// Accepted decoded key sizes of a user-given secret.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 16..=64;

/// "v1,<base64 HMAC-SHA256(key, "{msg_id}.{timestamp}.{body}")>" where key = base64-decode of the secret after the "whsec_" prefix.
///
/// A secret without the prefix is taken as bare base64, as the Standard Webhooks libraries
/// do. Err when the key is not valid base64; the message never contains the secret.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = decode_key(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|_| "signing secret has an invalid key length".to_string())?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// A new secret "whsec_" + base64(24 random bytes).
pub fn generate_secret() -> String {
    let mut key = [0u8; GENERATED_SECRET_BYTES];
    rand::rng().fill_bytes(&mut key);
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// Validates a user-given secret (must be "whsec_" + valid base64 of 16..=64 bytes); Err(message) otherwise.
pub fn validate_secret(secret: &str) -> Result<(), String> {
    if !secret.starts_with(SECRET_PREFIX) {
        return Err(format!(
            "signing secret must start with \"{SECRET_PREFIX}\""
        ));
    }
    let key = decode_key(secret)?;
    if !SECRET_BYTES.contains(&key.len()) {
        return Err(format!(
            "signing secret must encode {} to {} bytes after \"{SECRET_PREFIX}\", got {}",
            SECRET_BYTES.start(),
            SECRET_BYTES.end(),
            key.len()
        ));
    }
    Ok(())
}

fn decode_key(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .map_err(|_| format!("signing secret must be \"{SECRET_PREFIX}\" followed by base64"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const MSG_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const TIMESTAMP: i64 = 1649367553;
    const BODY: &str = r#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn matches_the_standard_webhooks_test_vector() {
        assert_eq!(
            sign(SECRET, MSG_ID, TIMESTAMP, BODY.as_bytes()).unwrap(),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn signature_depends_on_every_input() {
        let base = sign(SECRET, MSG_ID, TIMESTAMP, BODY.as_bytes()).unwrap();
        assert_ne!(
            base,
            sign(SECRET, "msg_other", TIMESTAMP, BODY.as_bytes()).unwrap()
        );
        assert_ne!(
            base,
            sign(SECRET, MSG_ID, TIMESTAMP + 1, BODY.as_bytes()).unwrap()
        );
        assert_ne!(base, sign(SECRET, MSG_ID, TIMESTAMP, b"{}").unwrap());
        let other = generate_secret();
        assert_ne!(
            base,
            sign(&other, MSG_ID, TIMESTAMP, BODY.as_bytes()).unwrap()
        );
    }

    #[test]
    fn unprefixed_secret_is_bare_base64() {
        let bare = SECRET.strip_prefix(SECRET_PREFIX).unwrap();
        assert_eq!(
            sign(bare, MSG_ID, TIMESTAMP, BODY.as_bytes()),
            sign(SECRET, MSG_ID, TIMESTAMP, BODY.as_bytes())
        );
    }

    #[test]
    fn sign_rejects_invalid_base64_without_echoing_it() {
        let error = sign("whsec_not*base64!", MSG_ID, TIMESTAMP, b"").unwrap_err();
        assert!(!error.contains("not*base64"), "{error}");
    }

    #[test]
    fn generated_secrets_are_valid_and_distinct() {
        let first = generate_secret();
        let second = generate_secret();
        assert_ne!(first, second);
        for secret in [&first, &second] {
            assert!(secret.starts_with(SECRET_PREFIX));
            validate_secret(secret).unwrap();
            let key = STANDARD.decode(&secret[SECRET_PREFIX.len()..]).unwrap();
            assert_eq!(key.len(), GENERATED_SECRET_BYTES);
        }
    }

    #[test]
    fn validates_user_given_secrets() {
        validate_secret(SECRET).unwrap();
        let of_len = |n: usize| format!("{SECRET_PREFIX}{}", STANDARD.encode(vec![7u8; n]));
        validate_secret(&of_len(16)).unwrap();
        validate_secret(&of_len(64)).unwrap();
        assert!(validate_secret(&of_len(15)).unwrap_err().contains("got 15"));
        assert!(validate_secret(&of_len(65)).unwrap_err().contains("got 65"));
        let bare = SECRET.strip_prefix(SECRET_PREFIX).unwrap();
        assert!(
            validate_secret(bare)
                .unwrap_err()
                .contains("must start with")
        );
        assert!(validate_secret("whsec_%%%").unwrap_err().contains("base64"));
        assert!(validate_secret("whsec_").is_err());
        assert!(validate_secret("").is_err());
    }
}
