//! Value and key encodings of the sled store: values are a version byte followed by JSON;
//! keys are big-endian so range scans are ordered.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};

const VERSION: u8 = 1;

/// Encodes a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut out = vec![VERSION];
    serde_json::to_writer(&mut out, value).map_err(|e| Error::Internal(format!("encode: {e}")))?;
    Ok(out)
}

/// Decodes a value written by `encode`.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
    match bytes.split_first() {
        Some((&VERSION, rest)) => {
            serde_json::from_slice(rest).map_err(|e| Error::Internal(format!("decode: {e}")))
        }
        _ => Err(Error::Internal("decode: unknown value version".into())),
    }
}

/// A u64 as an 8-byte big-endian key.
pub fn be(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// Two u64 as a 16-byte big-endian key.
pub fn be2(a: u64, b: u64) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&a.to_be_bytes());
    key[8..].copy_from_slice(&b.to_be_bytes());
    key
}

/// The two u64 of a 16-byte key.
pub fn split2(key: &[u8]) -> Result<(u64, u64)> {
    if key.len() != 16 {
        return Err(Error::Internal("corrupt key".into()));
    }
    let a = u64::from_be_bytes(key[..8].try_into().expect("8 bytes"));
    let b = u64::from_be_bytes(key[8..].try_into().expect("8 bytes"));
    Ok((a, b))
}

/// `account ++ 0x00 ++ suffix`: keys of per-account indexes (account ids never hold 0x00).
pub fn account_key(account_id: &str, suffix: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(account_id.len() + 1 + suffix.len());
    key.extend_from_slice(account_id.as_bytes());
    key.push(0);
    key.extend_from_slice(suffix);
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_and_unknown_versions_are_rejected() {
        let bytes = encode(&vec!["a".to_string()]).unwrap();
        assert_eq!(
            decode::<Vec<String>>(&bytes).unwrap(),
            vec!["a".to_string()]
        );
        assert!(decode::<Vec<String>>(b"\x09[]").is_err());
        assert!(decode::<Vec<String>>(b"").is_err());
    }

    #[test]
    fn two_part_keys_sort_by_their_first_number() {
        assert!(be2(1, u64::MAX) < be2(2, 0));
        assert_eq!(split2(&be2(7, 9)).unwrap(), (7, 9));
        assert!(split2(b"short").is_err());
    }
}
