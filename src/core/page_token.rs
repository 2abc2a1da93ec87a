//! Opaque page tokens of the operator listings: the keyset position of the last item
//! returned, bound to the listing's filters and the account, and authenticated with an
//! HMAC so a token cannot be forged, edited or replayed against other filters. The key is
//! derived from the admin token, which every instance of one deployment shares, so any
//! instance continues a listing another one started.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::store::Keyset;

/// Format version of a token.
const VERSION: u8 = 1;

/// Bytes of the HMAC kept in a token.
const TAG_BYTES: usize = 16;

/// Version, filter fingerprint (8), created ms (8), id (8).
const BODY_BYTES: usize = 1 + 8 + 8 + 8;

/// Seals and opens page tokens.
#[derive(Clone)]
pub struct PageTokens {
    key: [u8; 32],
}

impl PageTokens {
    /// Tokens keyed by a secret every instance shares (the admin token's hash).
    pub fn new(secret: &[u8; 32]) -> PageTokens {
        let mut hasher = Sha256::new();
        hasher.update(b"webhookd page tokens v1\0");
        hasher.update(secret);
        PageTokens {
            key: hasher.finalize().into(),
        }
    }

    fn tag(&self, body: &[u8]) -> [u8; TAG_BYTES] {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(body);
        let full = mac.finalize().into_bytes();
        let mut tag = [0u8; TAG_BYTES];
        tag.copy_from_slice(&full[..TAG_BYTES]);
        tag
    }

    /// The token continuing after `position` in the listing described by `filters`.
    pub fn seal(&self, filters: &str, position: Keyset) -> String {
        let mut body = Vec::with_capacity(BODY_BYTES + TAG_BYTES);
        body.push(VERSION);
        body.extend_from_slice(&fingerprint(filters));
        body.extend_from_slice(&position.created_at_ms.to_be_bytes());
        body.extend_from_slice(&position.id.to_be_bytes());
        let tag = self.tag(&body);
        body.extend_from_slice(&tag);
        URL_SAFE_NO_PAD.encode(body)
    }

    /// The position of a token sealed for the same `filters`; None for anything else.
    pub fn open(&self, filters: &str, token: &str) -> Option<Keyset> {
        let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
        if bytes.len() != BODY_BYTES + TAG_BYTES || bytes[0] != VERSION {
            return None;
        }
        let (body, tag) = bytes.split_at(BODY_BYTES);
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(body);
        mac.verify_truncated_left(tag).ok()?;
        if body[1..9] != fingerprint(filters) {
            return None;
        }
        Some(Keyset {
            created_at_ms: i64::from_be_bytes(body[9..17].try_into().ok()?),
            id: u64::from_be_bytes(body[17..25].try_into().ok()?),
        })
    }
}

fn fingerprint(filters: &str) -> [u8; 8] {
    let digest = Sha256::digest(filters.as_bytes());
    let mut out = [0u8; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AT: Keyset = Keyset {
        created_at_ms: 1_700_000_000_123,
        id: 4242,
    };

    #[test]
    fn a_token_opens_with_its_own_filters_only() {
        let tokens = PageTokens::new(&[7; 32]);
        let token = tokens.seal("acme|events|type=resolve", AT);
        assert_eq!(tokens.open("acme|events|type=resolve", &token), Some(AT));
        assert_eq!(tokens.open("acme|events|type=other", &token), None);
        assert_eq!(tokens.open("beta|events|type=resolve", &token), None);
        assert_eq!(
            PageTokens::new(&[8; 32]).open("acme|events|type=resolve", &token),
            None
        );
    }

    #[test]
    fn edited_or_malformed_tokens_do_not_open() {
        let tokens = PageTokens::new(&[7; 32]);
        let token = tokens.seal("f", AT);
        let mut bytes = URL_SAFE_NO_PAD.decode(&token).unwrap();
        bytes[20] ^= 1;
        assert_eq!(tokens.open("f", &URL_SAFE_NO_PAD.encode(&bytes)), None);
        for bad in ["", "not base64!", "AAAA", &token[..token.len() - 2]] {
            assert_eq!(tokens.open("f", bad), None, "{bad:?}");
        }
    }
}
