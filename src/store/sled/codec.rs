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

/// How a delivery is stored: its immutable request (written once, when the delivery is
/// created) apart from its small mutable state (rewritten at each attempt).
pub mod delivery {
    use serde::{Deserialize, Serialize};

    use super::{decode, encode};
    use crate::error::Result;
    use crate::model::{
        Delivery, DeliveryState, Ordering, RenderError, RenderedRequest, ResponseRecord,
    };

    #[derive(Serialize, Clone, Copy)]
    struct StateRef<'a> {
        event_id: u64,
        webhook_id: u64,
        state: DeliveryState,
        attempts: u32,
        next_attempt_ms: i64,
        last_status_code: Option<u16>,
        last_error: &'a str,
        updated_at_ms: i64,
    }

    #[derive(Deserialize)]
    struct State {
        event_id: u64,
        webhook_id: u64,
        state: DeliveryState,
        attempts: u32,
        next_attempt_ms: i64,
        last_status_code: Option<u16>,
        last_error: String,
        #[serde(default)]
        updated_at_ms: i64,
    }

    #[derive(Serialize)]
    struct RequestRef<'a> {
        url: &'a str,
        request_trigger: &'a str,
        request: &'a Option<RenderedRequest>,
        render_error: &'a Option<RenderError>,
        initial: StateRef<'a>,
        account_id: &'a str,
        created_at_ms: i64,
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        operational: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        ordering: &'a Option<Ordering>,
    }

    #[derive(Deserialize)]
    struct Request {
        url: String,
        request_trigger: String,
        request: Option<RenderedRequest>,
        render_error: Option<RenderError>,
        /// The state the delivery was created in (absent in stores written before it was
        /// kept here, which always have a state record).
        #[serde(default)]
        initial: Option<State>,
        #[serde(default)]
        account_id: String,
        #[serde(default)]
        created_at_ms: i64,
        #[serde(default)]
        operational: bool,
        ordering: Option<Ordering>,
    }

    /// A logged attempt as stored: the body is left out when it is the delivery's request
    /// body (it is stored once, with the request).
    #[derive(Serialize, Deserialize)]
    struct StoredResponse {
        #[serde(flatten)]
        record: ResponseRecord,
        #[serde(default)]
        body_is_request: bool,
    }

    fn state_of(d: &Delivery) -> StateRef<'_> {
        StateRef {
            event_id: d.event_id,
            webhook_id: d.webhook_id,
            state: d.state,
            attempts: d.attempts,
            next_attempt_ms: d.next_attempt_ms,
            last_status_code: d.last_status_code,
            last_error: &d.last_error,
            updated_at_ms: d.updated_at_ms,
        }
    }

    /// The mutable part of a delivery (written by attempts).
    pub fn encode_state(d: &Delivery) -> Result<Vec<u8>> {
        encode(&state_of(d))
    }

    /// The immutable part of a delivery, with the state it is created in: a new delivery
    /// needs no state record until its first attempt.
    pub fn encode_request(d: &Delivery) -> Result<Vec<u8>> {
        encode(&RequestRef {
            url: &d.url,
            request_trigger: &d.request_trigger,
            request: &d.request,
            render_error: &d.render_error,
            initial: state_of(d),
            account_id: &d.account_id,
            created_at_ms: d.created_at_ms,
            operational: d.operational,
            ordering: &d.ordering,
        })
    }

    /// A delivery from its request part and its state record (None before any attempt).
    pub fn decode_delivery(id: u64, state: Option<&[u8]>, request: &[u8]) -> Result<Delivery> {
        let r: Request = decode(request)?;
        let s: State = match (state, r.initial) {
            (Some(state), _) => decode(state)?,
            (None, Some(initial)) => initial,
            (None, None) => {
                return Err(crate::error::Error::Internal(
                    "decode: a delivery without its state".into(),
                ));
            }
        };
        Ok(Delivery {
            id,
            event_id: s.event_id,
            webhook_id: s.webhook_id,
            url: r.url,
            state: s.state,
            attempts: s.attempts,
            next_attempt_ms: s.next_attempt_ms,
            request_trigger: r.request_trigger,
            request: r.request,
            render_error: r.render_error,
            last_status_code: s.last_status_code,
            last_error: s.last_error,
            account_id: r.account_id,
            created_at_ms: r.created_at_ms,
            updated_at_ms: s.updated_at_ms,
            operational: r.operational,
            ordering: r.ordering,
        })
    }

    /// The body a delivery sends, from its stored request part.
    pub fn request_body(request: &[u8]) -> Result<Option<String>> {
        let r: Request = decode(request)?;
        Ok(r.request.and_then(|r| r.body))
    }

    /// A logged attempt of `delivery`, without the body when it is the request's.
    pub fn encode_response(record: &ResponseRecord, delivery: &Delivery) -> Result<Vec<u8>> {
        let body = delivery.request.as_ref().and_then(|r| r.body.as_ref());
        let body_is_request = body.is_some() && record.request_data.as_ref() == body;
        let mut record = record.clone();
        if body_is_request {
            record.request_data = None;
        }
        encode(&StoredResponse {
            record,
            body_is_request,
        })
    }

    /// A logged attempt; `body` fetches the request body when it was left out.
    pub fn decode_response(
        bytes: &[u8],
        body: impl FnOnce(u64) -> Result<Option<String>>,
    ) -> Result<ResponseRecord> {
        let stored: StoredResponse = decode(bytes)?;
        let mut record = stored.record;
        if stored.body_is_request {
            record.request_data = body(record.delivery_id)?;
        }
        Ok(record)
    }
}

#[cfg(test)]
mod delivery_tests {
    use super::delivery::*;
    use crate::model::{Delivery, DeliveryState, RenderedRequest, ResponseRecord};

    fn sample() -> Delivery {
        Delivery {
            id: 9,
            event_id: 1,
            webhook_id: 2,
            url: "http://x/hook".into(),
            state: DeliveryState::Retrying,
            attempts: 2,
            next_attempt_ms: 1234,
            request_trigger: "True".into(),
            request: Some(RenderedRequest {
                method: "POST".into(),
                url: "http://x/hook".into(),
                headers: vec![("X-A".into(), "1".into())],
                body: Some("{\"big\": \"body\"}".into()),
                traceparent: None,
            }),
            render_error: None,
            last_status_code: Some(503),
            last_error: "HTTP 503".into(),
            account_id: "acme".into(),
            created_at_ms: 1000,
            updated_at_ms: 1200,
            operational: false,
            ordering: None,
        }
    }

    #[test]
    fn a_delivery_round_trips_through_its_two_parts() {
        let d = sample();
        let (state, request) = (encode_state(&d).unwrap(), encode_request(&d).unwrap());
        assert_eq!(decode_delivery(9, Some(&state), &request).unwrap(), d);
        assert!(
            !String::from_utf8_lossy(&state).contains("big"),
            "the state holds no body"
        );
    }

    #[test]
    fn a_new_delivery_reads_its_initial_state_from_its_request() {
        let d = sample();
        let request = encode_request(&d).unwrap();
        assert_eq!(decode_delivery(9, None, &request).unwrap(), d);
        let mut attempted = d.clone();
        attempted.attempts += 1;
        attempted.last_error = "HTTP 502".into();
        let state = encode_state(&attempted).unwrap();
        assert_eq!(
            decode_delivery(9, Some(&state), &request).unwrap(),
            attempted
        );
        let legacy = format!(
            "\x01{}",
            r#"{"url":"u","request_trigger":"","request":null,"render_error":null}"#
        );
        assert!(decode_delivery(9, None, legacy.as_bytes()).is_err());
    }

    #[test]
    fn a_logged_body_equal_to_the_request_is_stored_once() {
        let d = sample();
        let mut record = ResponseRecord {
            timestamp_ms: 1,
            url: d.url.clone(),
            request_trigger: String::new(),
            request_headers: Some("{}".into()),
            request_data: d.request.as_ref().unwrap().body.clone(),
            status_code: Some(200),
            content: Some("ok".into()),
            event_id: 1,
            attempt: 1,
            delivery_id: 9,
            duration_ms: 3,
            error: String::new(),
        };
        let stored = encode_response(&record, &d).unwrap();
        assert!(!String::from_utf8_lossy(&stored).contains("big"));
        let body = d.request.as_ref().unwrap().body.clone();
        assert_eq!(
            decode_response(&stored, |_| Ok(body.clone())).unwrap(),
            record
        );
        // A different body (a template error text) is kept as it is.
        record.request_data = Some("Data - Template Warning: x".into());
        let stored = encode_response(&record, &d).unwrap();
        assert_eq!(
            decode_response(&stored, |_| panic!("not needed")).unwrap(),
            record
        );
    }
}
