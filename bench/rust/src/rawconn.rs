//! The ceiling phase's client side: one HTTP/1.1 keep-alive connection that sends a prepared
//! POST and reads the answer's head with `httparse`, nothing else. The request (head and the
//! bench event) is rendered once per connection and only its fixed-width numbers (the event
//! number in the ids, the send time) are rewritten per request, so the client costs a write
//! and a read per request and the phase measures the receiver, not the client (hyper's
//! client, with its request builder, header map and connection task, cost as much CPU per
//! request as the receiver). webhookd's deliveries are one request per connection at a time
//! too, so the requests are not pipelined.

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::event::event_json;

/// Digits of the event number in the ids (the ceiling sends far fewer than 10^10 requests).
const SEQ_DIGITS: usize = 10;
/// Digits of a unix-ns send time (every time from 2001 to 2286).
const SENT_DIGITS: usize = 19;
/// The numbers the template is rendered with, found again to know where to write.
const SEQ_MARK: u64 = 9_876_543_210;
const SENT_MARK: u64 = 1_234_567_890_123_456_789;

/// A POST of the bench event with the event and delivery id headers, rewritten in place.
pub struct PreparedPost {
    bytes: Vec<u8>,
    seq_at: Vec<usize>,
    sent_at: usize,
}

impl PreparedPost {
    pub fn new(authority: &str, path: &str) -> Self {
        let body = event_json(SEQ_MARK, SENT_MARK);
        let id = format!("C{SEQ_MARK}");
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {authority}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nx-webhookd-event-id: {id}\r\nwebhook-id: {id}\r\n\r\n",
            body.len()
        );
        let bytes = [head.as_bytes(), body.as_bytes()].concat();
        let seq_at = find_all(&bytes, SEQ_MARK.to_string().as_bytes());
        let sent_at = find_all(&bytes, SENT_MARK.to_string().as_bytes());
        assert!(
            seq_at.len() == 5 && sent_at.len() == 1,
            "the event template changed: ids at {seq_at:?}, send time at {sent_at:?}"
        );
        Self {
            bytes,
            seq_at,
            sent_at: sent_at[0],
        }
    }

    /// The request of event `seq` sent at `sent_ns`.
    pub fn render(&mut self, seq: u64, sent_ns: u64) -> &[u8] {
        for &at in &self.seq_at {
            put_digits(&mut self.bytes[at..at + SEQ_DIGITS], seq);
        }
        let at = self.sent_at;
        put_digits(&mut self.bytes[at..at + SENT_DIGITS], sent_ns);
        &self.bytes
    }
}

/// `value` as exactly `dst.len()` decimal digits (zero-padded; higher digits dropped).
fn put_digits(dst: &mut [u8], mut value: u64) {
    for digit in dst.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    memchr::memmem::find_iter(haystack, needle).collect()
}

/// One keep-alive connection.
pub struct RawConn {
    stream: TcpStream,
    answer: Vec<u8>,
}

impl RawConn {
    pub async fn connect(authority: &str) -> Result<Self> {
        let stream = TcpStream::connect(authority)
            .await
            .with_context(|| format!("connect to {authority}"))?;
        stream.set_nodelay(true)?;
        Ok(Self {
            stream,
            answer: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and reads the whole answer; returns its status and whether the
    /// connection stays open.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<(u16, bool)> {
        self.stream.write_all(request).await?;
        self.answer.clear();
        loop {
            if self.stream.read_buf(&mut self.answer).await? == 0 {
                bail!("the server closed the connection before answering");
            }
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut response = httparse::Response::new(&mut headers);
            let httparse::Status::Complete(head) = response.parse(&self.answer)? else {
                continue;
            };
            let status = response.code.unwrap_or(0);
            let (length, keep_alive) = framing(response.headers)?;
            while self.answer.len() < head + length {
                if self.stream.read_buf(&mut self.answer).await? == 0 {
                    bail!("the server closed the connection within an answer");
                }
            }
            if self.answer.len() > head + length {
                bail!("more bytes than the one answer asked for");
            }
            return Ok((status, keep_alive));
        }
    }
}

/// The body length and keep-alive of an answer's headers (a body of unknown length, i.e.
/// chunked, is refused: the receiver always sends its length).
fn framing(headers: &[httparse::Header<'_>]) -> Result<(usize, bool)> {
    let mut length = None;
    let mut keep_alive = true;
    for header in headers {
        if header.name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(header.value).unwrap_or("");
            length = Some(value.trim().parse().map_err(|_| {
                anyhow!("content-length {:?}", String::from_utf8_lossy(header.value))
            })?);
        } else if header.name.eq_ignore_ascii_case("connection") {
            keep_alive = !header.value.eq_ignore_ascii_case(b"close");
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            bail!("an answer without content-length (transfer-encoding)");
        }
    }
    Ok((length.unwrap_or(0), keep_alive))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::sent_ns_in;
    use serde_json::Value;

    #[test]
    fn a_prepared_post_carries_the_event_number_and_send_time_it_was_rendered_with() {
        let mut post = PreparedPost::new("127.0.0.1:9", "/ok/ceiling");
        let bytes = post.render(42, 1_764_633_600_000_000_007).to_vec();
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut request = httparse::Request::new(&mut headers);
        let httparse::Status::Complete(head) = request.parse(&bytes).unwrap() else {
            panic!("a partial request")
        };
        assert_eq!(request.method, Some("POST"));
        assert_eq!(request.path, Some("/ok/ceiling"));
        let header = |name: &str| {
            let h = request.headers.iter().find(|h| h.name == name).unwrap();
            std::str::from_utf8(h.value).unwrap().to_string()
        };
        assert_eq!(header("x-webhookd-event-id"), "C0000000042");
        assert_eq!(header("webhook-id"), "C0000000042");
        let body = &bytes[head..];
        assert_eq!(header("content-length"), body.len().to_string());
        let event: Value = serde_json::from_slice(body).unwrap();
        assert_eq!(event["alert_group"]["id"], "IBENCH0000000042");
        assert_eq!(event["alert_group_id"], "IBENCH0000000042");
        assert_eq!(sent_ns_in(body), Some(1_764_633_600_000_000_007));

        let again = post.render(43, 1_764_633_600_000_000_008);
        let event: Value = serde_json::from_slice(&again[head..]).unwrap();
        assert_eq!(event["alert_group"]["id"], "IBENCH0000000043");
    }

    #[test]
    fn an_answer_is_framed_by_its_content_length() {
        let h = |name, value: &'static [u8]| httparse::Header { name, value };
        assert_eq!(framing(&[h("content-length", b"0")]).unwrap(), (0, true));
        assert_eq!(
            framing(&[h("Content-Length", b" 12 "), h("Connection", b"close")]).unwrap(),
            (12, false)
        );
        assert!(framing(&[h("transfer-encoding", b"chunked")]).is_err());
        assert!(framing(&[h("content-length", b"twelve")]).is_err());
    }
}
