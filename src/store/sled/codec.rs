//! Value and key encodings of the sled store: values are a version byte followed by JSON,
//! or (`FRAMED`, events and delivery requests) by a JSON head and a raw tail, so a body is
//! never escaped into JSON nor copied out of it; keys are big-endian so range scans are
//! ordered. Values of version 1 written by older versions are read as they are.

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

/// The version of a value made of a JSON head and a raw tail: `FRAMED`, the head's length
/// (u32, big-endian), the head, the tail.
const FRAMED: u8 = 2;

/// A framed value of `head` and `tail`.
pub fn frame<T: Serialize>(head: &T, tail: &[&[u8]]) -> Result<Vec<u8>> {
    let tail_len: usize = tail.iter().map(|t| t.len()).sum();
    let mut out = Vec::with_capacity(5 + 128 + tail_len);
    out.push(FRAMED);
    out.extend_from_slice(&[0; 4]);
    serde_json::to_writer(&mut out, head).map_err(|e| Error::Internal(format!("encode: {e}")))?;
    let head_len = u32::try_from(out.len() - 5)
        .map_err(|_| Error::Internal("encode: head too long".into()))?;
    out[1..5].copy_from_slice(&head_len.to_be_bytes());
    for part in tail {
        out.extend_from_slice(part);
    }
    Ok(out)
}

/// The JSON head and the tail of a framed value; None for a value of version 1.
pub fn unframe(bytes: &[u8]) -> Result<Option<(&[u8], &[u8])>> {
    match bytes.split_first() {
        Some((&FRAMED, rest)) => {
            let corrupt = || Error::Internal("decode: corrupt framed value".into());
            let (len, rest) = rest.split_at_checked(4).ok_or_else(corrupt)?;
            let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
            rest.split_at_checked(len).map(Some).ok_or_else(corrupt)
        }
        _ => Ok(None),
    }
}

/// Decodes a JSON head (of `unframe`).
pub fn decode_head<'de, T: serde::Deserialize<'de>>(head: &'de [u8]) -> Result<T> {
    serde_json::from_slice(head).map_err(|e| Error::Internal(format!("decode: {e}")))
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

/// How an event is stored, framed: everything but its data as the JSON head, the JSON text
/// of its data as the tail (a forward_all delivery's body refers to it instead of a copy).
pub mod event {
    use serde::{Deserialize, Serialize};

    use super::{decode, decode_head, frame, unframe};
    use crate::error::{Error, Result};
    use crate::model::Event;

    #[derive(Serialize)]
    struct HeadRef<'a> {
        id: u64,
        account_id: &'a str,
        event_type: &'a str,
        created_at_ms: i64,
        delivery_ids: &'a [u64],
        #[serde(skip_serializing_if = "std::ops::Not::not")]
        operational: bool,
    }

    /// An event without its data (what retention and redelivery read).
    #[derive(Deserialize)]
    pub struct Head {
        pub id: u64,
        #[serde(default)]
        pub account_id: String,
        pub event_type: String,
        pub created_at_ms: i64,
        pub delivery_ids: Vec<u64>,
        #[serde(default)]
        pub operational: bool,
    }

    fn framed(head: &Head, data: &[u8]) -> Result<Vec<u8>> {
        let head = HeadRef {
            id: head.id,
            account_id: &head.account_id,
            event_type: &head.event_type,
            created_at_ms: head.created_at_ms,
            delivery_ids: &head.delivery_ids,
            operational: head.operational,
        };
        frame(&head, &[data])
    }

    /// The stored value of an event, and where the JSON text of its data starts in it.
    pub fn encode(event: &Event) -> Result<(Vec<u8>, usize)> {
        let data =
            serde_json::to_vec(&event.data).map_err(|e| Error::Internal(format!("encode: {e}")))?;
        let head = HeadRef {
            id: event.id,
            account_id: &event.account_id,
            event_type: &event.event_type,
            created_at_ms: event.created_at_ms,
            delivery_ids: &event.delivery_ids,
            operational: event.operational,
        };
        let value = frame(&head, &[&data])?;
        let at = value.len() - data.len();
        Ok((value, at))
    }

    /// An event from its stored value (framed, or version 1 JSON).
    pub fn decode_event(bytes: &[u8]) -> Result<Event> {
        let Some((head, data)) = unframe(bytes)? else {
            return decode(bytes);
        };
        let head: Head = decode_head(head)?;
        Ok(Event {
            id: head.id,
            account_id: head.account_id,
            event_type: head.event_type,
            data: serde_json::from_slice(data)
                .map_err(|e| Error::Internal(format!("decode: {e}")))?,
            created_at_ms: head.created_at_ms,
            delivery_ids: head.delivery_ids,
            operational: head.operational,
        })
    }

    /// The head of a stored event.
    pub fn head(bytes: &[u8]) -> Result<Head> {
        match unframe(bytes)? {
            Some((head, _)) => decode_head(head),
            None => decode(bytes),
        }
    }

    /// The JSON text of a stored event's data.
    pub fn data(bytes: &[u8]) -> Result<String> {
        match unframe(bytes)? {
            Some((_, data)) => String::from_utf8(data.to_vec())
                .map_err(|_| Error::Internal("decode: event data that is not UTF-8".into())),
            None => Ok(decode_event(bytes)?.data.to_string()),
        }
    }

    /// A stored event with `more` deliveries added to its list (framed; the data kept as it is).
    pub fn with_deliveries(bytes: &[u8], more: impl Iterator<Item = u64>) -> Result<Vec<u8>> {
        match unframe(bytes)? {
            Some((head, data)) => {
                let mut head: Head = decode_head(head)?;
                head.delivery_ids.extend(more);
                framed(&head, data)
            }
            None => {
                let mut event = decode_event(bytes)?;
                event.delivery_ids.extend(more);
                Ok(encode(&event)?.0)
            }
        }
    }
}

/// How a delivery is stored: its immutable request (written once, when the delivery is
/// created) apart from its small mutable state (rewritten at each attempt).
pub mod delivery {
    use serde::{Deserialize, Serialize};

    use super::{decode, decode_head, encode, frame, unframe};
    use crate::error::{Error, Result};
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

    #[cfg(test)]
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

    /// The immutable part of a delivery as versions before framing wrote it.
    #[cfg(test)]
    pub fn encode_request_json(d: &Delivery) -> Result<Vec<u8>> {
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

    /// The rendered request without its body (the body is the framed value's tail).
    #[derive(Serialize)]
    struct RenderedHeadRef<'a> {
        method: &'a str,
        url: &'a str,
        headers: &'a [(String, String)],
        #[serde(skip_serializing_if = "Option::is_none")]
        traceparent: &'a Option<String>,
    }

    #[derive(Deserialize)]
    struct RenderedHead {
        method: String,
        url: String,
        headers: Vec<(String, String)>,
        #[serde(default)]
        traceparent: Option<String>,
    }

    /// The head of a framed request part (`Request` less the body).
    #[derive(Serialize)]
    struct RequestHeadRef<'a> {
        url: &'a str,
        request_trigger: &'a str,
        request: Option<RenderedHeadRef<'a>>,
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
    struct RequestHead {
        url: String,
        request_trigger: String,
        request: Option<RenderedHead>,
        render_error: Option<RenderError>,
        initial: State,
        account_id: String,
        created_at_ms: i64,
        #[serde(default)]
        operational: bool,
        #[serde(default)]
        ordering: Option<Ordering>,
    }

    /// The first byte of a framed request part's tail: what the body is.
    const NO_BODY: u8 = 0;
    /// The rest of the tail is the body.
    const BODY: u8 = 1;
    /// The body is the JSON text of the event's data (a forward_all delivery), stored once
    /// with the event.
    const EVENT_DATA: u8 = 2;

    /// The immutable part of a delivery, with the state it is created in (a new delivery
    /// needs no state record until its first attempt), framed: the body is the tail, or
    /// left out when it is `event_data`, the JSON text of its event's data.
    pub fn encode_request(d: &Delivery, event_data: Option<&str>) -> Result<Vec<u8>> {
        let body = d.request.as_ref().and_then(|r| r.body.as_deref());
        let head = RequestHeadRef {
            url: &d.url,
            request_trigger: &d.request_trigger,
            request: d.request.as_ref().map(|r| RenderedHeadRef {
                method: &r.method,
                url: &r.url,
                headers: &r.headers,
                traceparent: &r.traceparent,
            }),
            render_error: &d.render_error,
            initial: state_of(d),
            account_id: &d.account_id,
            created_at_ms: d.created_at_ms,
            operational: d.operational,
            ordering: &d.ordering,
        };
        match body {
            None => frame(&head, &[&[NO_BODY]]),
            Some(body) if Some(body) == event_data => frame(&head, &[&[EVENT_DATA]]),
            Some(body) => frame(&head, &[&[BODY], body.as_bytes()]),
        }
    }

    /// The body of a framed request part; `event_data` fetches its event's data text.
    fn framed_body(
        tail: &[u8],
        event_id: u64,
        event_data: impl FnOnce(u64) -> Result<Option<String>>,
    ) -> Result<Option<String>> {
        match tail.split_first() {
            Some((&NO_BODY, _)) => Ok(None),
            Some((&BODY, body)) => String::from_utf8(body.to_vec())
                .map(Some)
                .map_err(|_| Error::Internal("decode: a body that is not UTF-8".into())),
            Some((&EVENT_DATA, _)) => event_data(event_id),
            _ => Err(Error::Internal("decode: corrupt request body".into())),
        }
    }

    /// A delivery from its request part and its state record (None before any attempt);
    /// `event_data` fetches the JSON text of an event's data, for a body stored as that.
    pub fn decode_delivery(
        id: u64,
        state: Option<&[u8]>,
        request: &[u8],
        event_data: impl FnOnce(u64) -> Result<Option<String>>,
    ) -> Result<Delivery> {
        if let Some((head, tail)) = unframe(request)? {
            let r: RequestHead = decode_head(head)?;
            let s: State = match state {
                Some(state) => decode(state)?,
                None => r.initial,
            };
            let request = match r.request {
                Some(h) => Some(RenderedRequest {
                    method: h.method,
                    url: h.url,
                    headers: h.headers,
                    body: framed_body(tail, s.event_id, event_data)?,
                    traceparent: h.traceparent,
                }),
                None => None,
            };
            return Ok(Delivery {
                id,
                event_id: s.event_id,
                webhook_id: s.webhook_id,
                url: r.url,
                state: s.state,
                attempts: s.attempts,
                next_attempt_ms: s.next_attempt_ms,
                request_trigger: r.request_trigger,
                request,
                render_error: r.render_error,
                last_status_code: s.last_status_code,
                last_error: s.last_error,
                account_id: r.account_id,
                created_at_ms: r.created_at_ms,
                updated_at_ms: s.updated_at_ms,
                operational: r.operational,
                ordering: r.ordering,
            });
        }
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

    /// The body a delivery sends, from its stored request part (see `decode_delivery`).
    pub fn request_body(
        request: &[u8],
        event_data: impl FnOnce(u64) -> Result<Option<String>>,
    ) -> Result<Option<String>> {
        if let Some((head, tail)) = unframe(request)? {
            let r: RequestHead = decode_head(head)?;
            if r.request.is_none() {
                return Ok(None);
            }
            return framed_body(tail, r.initial.event_id, event_data);
        }
        let r: Request = decode(request)?;
        Ok(r.request.and_then(|r| r.body))
    }

    /// A logged attempt of `delivery`, without the body when it is the request's.
    pub fn encode_response(record: &ResponseRecord, delivery: &Delivery) -> Result<Vec<u8>> {
        let (record, body_is_request) = match record.without_the_body_of(delivery) {
            Some(without) => (without, true),
            None => (record.clone(), false),
        };
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

    fn no_event(_: u64) -> crate::error::Result<Option<String>> {
        panic!("the event is not read")
    }

    #[test]
    fn a_delivery_round_trips_through_its_two_parts() {
        let d = sample();
        let (state, request) = (encode_state(&d).unwrap(), encode_request(&d, None).unwrap());
        assert_eq!(
            decode_delivery(9, Some(&state), &request, no_event).unwrap(),
            d
        );
        assert!(
            !String::from_utf8_lossy(&state).contains("big"),
            "the state holds no body"
        );
        let body = request_body(&request, no_event).unwrap();
        assert_eq!(body.as_deref(), Some("{\"big\": \"body\"}"));
        assert!(
            request.ends_with(b"{\"big\": \"body\"}"),
            "the body is stored as it is, not escaped into JSON"
        );
    }

    #[test]
    fn a_body_that_is_the_events_data_is_read_from_the_event() {
        let d = sample();
        let body = d.request.as_ref().unwrap().body.clone();
        let request = encode_request(&d, body.as_deref()).unwrap();
        assert!(!String::from_utf8_lossy(&request).contains("big"));
        let from_event = |event_id: u64| {
            assert_eq!(event_id, d.event_id);
            Ok(body.clone())
        };
        assert_eq!(decode_delivery(9, None, &request, from_event).unwrap(), d);
        assert_eq!(request_body(&request, from_event).unwrap(), body);
        // Another body is kept in the delivery.
        let other = encode_request(&d, Some("{}")).unwrap();
        assert_eq!(decode_delivery(9, None, &other, no_event).unwrap(), d);
    }

    #[test]
    fn a_request_part_written_as_json_by_older_versions_still_reads() {
        let d = sample();
        let legacy = encode_request_json(&d).unwrap();
        assert_eq!(legacy[0], 1);
        assert_eq!(decode_delivery(9, None, &legacy, no_event).unwrap(), d);
        assert_eq!(
            request_body(&legacy, no_event).unwrap(),
            d.request.as_ref().unwrap().body
        );
    }

    #[test]
    fn a_new_delivery_reads_its_initial_state_from_its_request() {
        let d = sample();
        let request = encode_request(&d, None).unwrap();
        assert_eq!(decode_delivery(9, None, &request, no_event).unwrap(), d);
        let mut attempted = d.clone();
        attempted.attempts += 1;
        attempted.last_error = "HTTP 502".into();
        let state = encode_state(&attempted).unwrap();
        assert_eq!(
            decode_delivery(9, Some(&state), &request, no_event).unwrap(),
            attempted
        );
        let legacy = format!(
            "\x01{}",
            r#"{"url":"u","request_trigger":"","request":null,"render_error":null}"#
        );
        assert!(decode_delivery(9, None, legacy.as_bytes(), no_event).is_err());
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

#[cfg(test)]
mod event_tests {
    use super::event::*;
    use crate::model::Event;

    fn sample() -> Event {
        Event {
            id: 3,
            account_id: "acme".into(),
            event_type: "alert group created".into(),
            data: serde_json::json!({"alert_group": {"id": "I1", "title": "disk \"full\""}}),
            created_at_ms: 1000,
            delivery_ids: vec![9, 10],
            operational: false,
        }
    }

    #[test]
    fn an_event_keeps_its_data_as_json_text_after_its_head() {
        let e = sample();
        let (value, at) = encode(&e).unwrap();
        assert_eq!(&value[at..], e.data.to_string().as_bytes());
        assert_eq!(decode_event(&value).unwrap(), e);
        assert_eq!(data(&value).unwrap(), e.data.to_string());
        let h = head(&value).unwrap();
        assert_eq!((h.id, h.created_at_ms), (3, 1000));
        assert_eq!(h.delivery_ids, [9, 10]);

        let more = with_deliveries(&value, [11].into_iter()).unwrap();
        let mut expected = e.clone();
        expected.delivery_ids.push(11);
        assert_eq!(decode_event(&more).unwrap(), expected);
        assert!(more.ends_with(&value[at..]), "the data is kept as it is");
    }

    #[test]
    fn an_event_written_as_json_by_older_versions_still_reads() {
        let e = sample();
        let legacy = super::encode(&e).unwrap();
        assert_eq!(decode_event(&legacy).unwrap(), e);
        assert_eq!(data(&legacy).unwrap(), e.data.to_string());
        assert_eq!(head(&legacy).unwrap().delivery_ids, [9, 10]);
        let more = with_deliveries(&legacy, [11].into_iter()).unwrap();
        assert_eq!(decode_event(&more).unwrap().delivery_ids, [9, 10, 11]);
    }
}
