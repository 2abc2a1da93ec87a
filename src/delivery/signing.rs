//! Standard Webhooks signing (<https://www.standardwebhooks.com/>): the `webhook-signature`
//! value for a delivery, and generation and validation of signing secrets: symmetric `v1`
//! (`whsec_`, HMAC-SHA256) and asymmetric `v1a` (`whsk_` = base64 of an ed25519 seed; the
//! receiver verifies with the `whpk_` public key). Pure functions; depends on nothing else
//! in the crate.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, Mac};
use rand::RngCore as _;
use sha2::Sha256;

/// The prefix of every symmetric (`v1`) signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The prefix of an ed25519 (`v1a`) signing secret: base64 of the 32-byte seed.
pub const ED25519_SECRET_PREFIX: &str = "whsk_";

/// The prefix of an ed25519 public key: base64 of its 32 bytes.
pub const ED25519_PUBLIC_PREFIX: &str = "whpk_";

/// Value of `signing_secret` that asks for a new `v1` secret.
pub const GENERATE: &str = "generate";

/// Value of `signing_secret` that asks for a new ed25519 (`v1a`) key.
pub const GENERATE_ED25519: &str = "generate-ed25519";

/// Number of random bytes in a generated secret.
const GENERATED_SECRET_BYTES: usize = 24;

/// Accepted decoded key sizes of a user-given secret.
const SECRET_BYTES: std::ops::RangeInclusive<usize> = 16..=64;

/// One `webhook-signature` entry for `"{msg_id}.{timestamp}.{body}"`: `v1a,<base64
/// ed25519 signature>` for a `whsk_` secret, else `v1,<base64 HMAC-SHA256>` keyed with the
/// base64-decode of the secret after the "whsec_" prefix.
///
/// A secret without a prefix is taken as bare base64 `v1`, as the Standard Webhooks
/// libraries do. Err when the key is invalid; the message never contains the secret.
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    if secret.starts_with(ED25519_SECRET_PREFIX) {
        let key = ed25519_key(secret)?;
        let mut message = format!("{msg_id}.{timestamp}.").into_bytes();
        message.extend_from_slice(body);
        return Ok(format!(
            "v1a,{}",
            STANDARD.encode(key.sign(&message).to_bytes())
        ));
    }
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

/// A new ed25519 secret "whsk_" + base64(32-byte seed from the OS CSPRNG).
pub fn generate_ed25519() -> String {
    let mut seed = [0u8; ed25519_dalek::SECRET_KEY_LENGTH];
    rand::rng().fill_bytes(&mut seed);
    format!("{ED25519_SECRET_PREFIX}{}", STANDARD.encode(seed))
}

/// A new secret of the same kind as `current` (ed25519 for a `whsk_` one, else `v1`).
pub fn generate_like(current: Option<&str>) -> String {
    match current {
        Some(s) if s.starts_with(ED25519_SECRET_PREFIX) => generate_ed25519(),
        _ => generate_secret(),
    }
}

/// The secret a client's `signing_secret` asks for: a generated one for `"generate"` /
/// `"generate-ed25519"`, else the given one once valid.
pub fn given_or_generated(given: &str) -> Result<String, String> {
    match given {
        GENERATE => Ok(generate_secret()),
        GENERATE_ED25519 => Ok(generate_ed25519()),
        _ => validate_secret(given).map(|()| given.to_string()),
    }
}

/// `whpk_<base64 public key>` of a `whsk_` secret; None for a `v1` (or invalid) secret.
pub fn public_key(secret: &str) -> Option<String> {
    if !secret.starts_with(ED25519_SECRET_PREFIX) {
        return None;
    }
    let key = ed25519_key(secret).ok()?;
    Some(format!(
        "{ED25519_PUBLIC_PREFIX}{}",
        STANDARD.encode(key.verifying_key().as_bytes())
    ))
}

/// The ed25519 key of a `whsk_` secret; the message never contains the secret.
fn ed25519_key(secret: &str) -> Result<SigningKey, String> {
    let encoded = secret.strip_prefix(ED25519_SECRET_PREFIX).unwrap_or(secret);
    let seed = STANDARD.decode(encoded).map_err(|_| {
        format!("an ed25519 signing secret must be \"{ED25519_SECRET_PREFIX}\" followed by base64")
    })?;
    let seed: [u8; ed25519_dalek::SECRET_KEY_LENGTH] = seed.as_slice().try_into().map_err(|_| {
        format!(
            "an ed25519 signing secret must encode the 32-byte seed after \"{ED25519_SECRET_PREFIX}\", got {} bytes",
            seed.len()
        )
    })?;
    Ok(SigningKey::from_bytes(&seed))
}

/// Validates a user-given secret: "whsec_" + valid base64 of 16..=64 bytes, or "whsk_" +
/// base64 of a 32-byte ed25519 seed; Err(message) otherwise.
pub fn validate_secret(secret: &str) -> Result<(), String> {
    if secret.starts_with(ED25519_SECRET_PREFIX) {
        return ed25519_key(secret).map(|_| ());
    }
    if !secret.starts_with(SECRET_PREFIX) {
        return Err(format!(
            "signing secret must start with \"{SECRET_PREFIX}\" (or \"{ED25519_SECRET_PREFIX}\" for ed25519)"
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

    #[test]
    fn ed25519_secrets_sign_v1a_and_show_their_public_key() {
        let secret = format!("{ED25519_SECRET_PREFIX}{}", STANDARD.encode([7u8; 32]));
        validate_secret(&secret).unwrap();
        let signature = sign(&secret, MSG_ID, TIMESTAMP, BODY.as_bytes()).unwrap();
        let raw = STANDARD
            .decode(signature.strip_prefix("v1a,").unwrap())
            .unwrap();
        let public = public_key(&secret).unwrap();
        let public = STANDARD
            .decode(public.strip_prefix(ED25519_PUBLIC_PREFIX).unwrap())
            .unwrap();
        let key = ed25519_dalek::VerifyingKey::from_bytes(&public.try_into().unwrap()).unwrap();
        let message = format!("{MSG_ID}.{TIMESTAMP}.{BODY}");
        key.verify_strict(
            message.as_bytes(),
            &ed25519_dalek::Signature::from_slice(&raw).unwrap(),
        )
        .unwrap();
        assert_eq!(public_key(SECRET), None);
    }

    #[test]
    fn generate_keywords_and_rotation_keep_the_kind_of_key() {
        let ed = given_or_generated(GENERATE_ED25519).unwrap();
        assert!(ed.starts_with(ED25519_SECRET_PREFIX));
        validate_secret(&ed).unwrap();
        assert!(
            given_or_generated(GENERATE)
                .unwrap()
                .starts_with(SECRET_PREFIX)
        );
        assert!(generate_like(Some(&ed)).starts_with(ED25519_SECRET_PREFIX));
        assert!(generate_like(Some(SECRET)).starts_with(SECRET_PREFIX));
        assert!(generate_like(None).starts_with(SECRET_PREFIX));
    }

    #[test]
    fn bad_ed25519_secrets_are_refused_without_echoing_them() {
        let short = format!("{ED25519_SECRET_PREFIX}{}", STANDARD.encode([7u8; 31]));
        assert!(
            validate_secret(&short)
                .unwrap_err()
                .contains("got 31 bytes")
        );
        let error = validate_secret("whsk_not*base64!").unwrap_err();
        assert!(
            error.contains("base64") && !error.contains("not*base64"),
            "{error}"
        );
        assert!(validate_secret("whsk_").is_err());
    }
}
