//! The event the load generator emits: an OnCall "alert group created" `event_data` object of
//! about 1 KB, unique per event, carrying its send time (unix ns) in `bench_sent_ns`. A
//! forward_all webhook delivers the object as it is, so the receiver reads the send time from
//! the body and measures emit->arrival on the same host clock.

use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use memchr::memmem;

/// The trigger the bench's webhooks subscribe to, and the events' `event.type`.
pub const EVENT_TYPE: &str = "alert group created";

const SENT_KEY: &[u8] = b"\"bench_sent_ns\":";

/// Now as unix nanoseconds (the clock the receiver stamps arrivals with).
pub fn unix_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The JSON of event number `seq`, sent at `sent_ns`.
pub fn event_json(seq: u64, sent_ns: u64) -> String {
    let id = format!("IBENCH{seq:010}");
    format!(
        concat!(
            r#"{{"event":{{"type":"{ty}","time":"2026-11-30T12:00:00.000000+00:00"}},"#,
            r#""user":null,"#,
            r#""alert_group":{{"id":"{id}","integration_id":"CBENCHINTEGR","route_id":"RBENCHROUTE1","#,
            r#""alerts_count":1,"state":"firing","created_at":"2026-11-30T12:00:00.000000Z","#,
            r#""resolved_at":null,"acknowledged_at":null,"title":"[firing:1] HighCPUUsage db-1 (node)","#,
            r#""permalinks":{{"slack":null,"telegram":null,"#,
            r#""web":"https://oncall.example.com/a/grafana-oncall-app/alert-groups/{id}"}}}},"#,
            r#""alert_group_id":"{id}","#,
            r#""alert_payload":{{"alerts":[{{"status":"firing","#,
            r#""labels":{{"alertname":"HighCPUUsage","instance":"db-1:9100","job":"node","severity":"critical"}},"#,
            r#""annotations":{{"summary":"CPU usage above 90% for 5 minutes on db-1","#,
            r#""runbook_url":"https://runbooks.example.com/high-cpu"}},"#,
            r#""startsAt":"2026-11-30T11:55:00Z","endsAt":"0001-01-01T00:00:00Z","#,
            r#""fingerprint":"b7f6c2a1d3e4f5a6"}}],"status":"firing","#,
            r#""groupLabels":{{"alertname":"HighCPUUsage"}},"#,
            r#""commonLabels":{{"alertname":"HighCPUUsage","job":"node","severity":"critical"}},"#,
            r#""externalURL":"http://alertmanager.example.com:9093","numFiring":1,"numResolved":0}},"#,
            r#""integration":{{"id":"CBENCHINTEGR","type":"alertmanager","name":"bench - Alertmanager","team":null}},"#,
            r#""notified_users":[],"users_to_be_notified":[],"bench_sent_ns":{sent}}}"#
        ),
        ty = EVENT_TYPE,
        id = id,
        sent = sent_ns,
    )
}

/// The body of `POST /api/v1/events/`: one event, sent now.
pub fn single(seq: u64) -> Bytes {
    Bytes::from(event_json(seq, unix_ns()))
}

/// The body of `POST /api/v1/events/batch/`: events `first..first + n`, all sent now.
pub fn batch(first: u64, n: u64) -> Bytes {
    let sent = unix_ns();
    let mut body = String::with_capacity(n as usize * 1100 + 16);
    body.push_str(r#"{"events":["#);
    for seq in first..first + n {
        if seq != first {
            body.push(',');
        }
        body.push_str(r#"{"data":"#);
        body.push_str(&event_json(seq, sent));
        body.push('}');
    }
    body.push_str("]}");
    Bytes::from(body)
}

/// The send time a delivered body carries, if any (a byte search, not a JSON parse: the
/// receiver does this for every request).
pub fn sent_ns_in(body: &[u8]) -> Option<u64> {
    let at = memmem::find(body, SENT_KEY)? + SENT_KEY.len();
    let digits = body[at..].trim_ascii_start();
    let end = digits
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    std::str::from_utf8(&digits[..end]).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn an_event_is_about_a_kilobyte_of_oncall_event_data() {
        let json = event_json(42, 1_700_000_000_123_456_789);
        assert!((900..=1300).contains(&json.len()), "{} bytes", json.len());
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["event"]["type"], EVENT_TYPE);
        assert_eq!(v["alert_group"]["id"], "IBENCH0000000042");
        assert_eq!(v["alert_group_id"], "IBENCH0000000042");
        assert_eq!(v["bench_sent_ns"], 1_700_000_000_123_456_789u64);
    }

    #[test]
    fn the_send_time_is_found_in_a_delivered_body() {
        let body = event_json(1, 1_700_000_000_000_000_001);
        assert_eq!(sent_ns_in(body.as_bytes()), Some(1_700_000_000_000_000_001));
        assert_eq!(sent_ns_in(br#"{"bench_sent_ns": 17 }"#), Some(17));
        assert_eq!(sent_ns_in(br#"{"id":"x"}"#), None);
        assert_eq!(sent_ns_in(br#"{"bench_sent_ns":"soon"}"#), None);
    }

    #[test]
    fn a_batch_holds_distinct_events_sent_at_one_time() {
        let v: Value = serde_json::from_slice(&batch(10, 50)).unwrap();
        let events = v["events"].as_array().unwrap();
        assert_eq!(events.len(), 50);
        assert_eq!(events[0]["data"]["alert_group"]["id"], "IBENCH0000000010");
        assert_eq!(events[49]["data"]["alert_group"]["id"], "IBENCH0000000059");
        assert_eq!(
            events[0]["data"]["bench_sent_ns"],
            events[49]["data"]["bench_sent_ns"]
        );
    }
}
