//! The bench's webhook endpoint: a hyper HTTP/1.1 server (keep-alive, TCP_NODELAY) that
//! answers 200 at once on `/ok/<sink>` and after the slow delay on `/slow/<sink>`, recording
//! every request in its sink (see `sink`), with the number of the connection it came on. The event id is the `X-Webhookd-Event-Id` header,
//! else the JSON body's `event_id`, `id` or `event.id` (so other senders can be measured too);
//! the delivery id is `webhook-id`; the send time is the body's `bench_sent_ns`. With a fail
//! percentage, that share of the deliveries (drawn at random per request) is answered 500.
//!
//! `GET /_stats` -> `{"<sink>": arrivals, ...}`;
//! `GET /_sink/<sink>?from_ns=&to_ns=` -> the sink's `SinkSummary` (window default: all time);
//! `POST /_check/<sink>` with one event id per line -> the sink's `SinkCheck`.

use std::convert::Infallible;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use crate::event::{sent_ns_in, unix_ns};
use crate::sink::{Arrival, Sinks};

/// Largest request body read (larger ones are refused with 413).
const MAX_BODY: usize = 1 << 20;

pub struct Receiver {
    pub sinks: Sinks,
    pub slow_delay: Duration,
    /// Percentage of deliveries answered 500.
    fail_percent: u64,
    /// Draws of the failing answers: a counter, hashed with a random key.
    draws: AtomicU64,
    /// Numbers the connections, so a sink can count those its deliveries came on.
    connections: AtomicU64,
    dice: RandomState,
}

impl Receiver {
    pub fn new(slow_delay: Duration) -> Arc<Self> {
        Self::failing(slow_delay, 0)
    }

    /// A receiver answering `fail_percent`% of the deliveries (at random) with 500.
    pub fn failing(slow_delay: Duration, fail_percent: u8) -> Arc<Self> {
        Arc::new(Self {
            sinks: Sinks::default(),
            slow_delay,
            fail_percent: u64::from(fail_percent.min(100)),
            draws: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            dice: RandomState::new(),
        })
    }

    fn fails(&self) -> bool {
        self.fail_percent > 0
            && self
                .dice
                .hash_one(self.draws.fetch_add(1, Ordering::Relaxed))
                % 100
                < self.fail_percent
    }

    /// Serves connections from `listener` on the current runtime until the process ends.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) {
        loop {
            let stream = accept(&listener).await;
            tokio::spawn(self.clone().connection(stream));
        }
    }

    /// Serves connections from `listener` until the process ends on `threads` threads of a
    /// single-threaded runtime each, handing the accepted connections out in turn. A thread
    /// owns its connections: no task moves between threads and no thread wakes another, which
    /// a work-stealing runtime does for every request (that is most of what separates a
    /// receiver's ceiling from the kernel's on 2 cores).
    pub fn serve_on_threads(
        self: Arc<Self>,
        listener: std::net::TcpListener,
        threads: usize,
    ) -> std::io::Result<()> {
        listener.set_nonblocking(true)?;
        let mut handoffs = Vec::new();
        for n in 0..threads.max(1) {
            let (handoff, mut accepted) =
                tokio::sync::mpsc::unbounded_channel::<std::net::TcpStream>();
            let runtime = single_threaded()?;
            let receiver = self.clone();
            std::thread::Builder::new()
                .name(format!("receiver-{n}"))
                .spawn(move || {
                    runtime.block_on(async move {
                        while let Some(stream) = accepted.recv().await {
                            match TcpStream::from_std(stream) {
                                Ok(stream) => {
                                    tokio::spawn(receiver.clone().connection(stream));
                                }
                                Err(e) => eprintln!("bench-receiver: a connection: {e}"),
                            }
                        }
                    })
                })?;
            handoffs.push(handoff);
        }
        single_threaded()?.block_on(async move {
            let listener = TcpListener::from_std(listener)?;
            for handoff in handoffs.iter().cycle() {
                let stream = accept(&listener).await.into_std()?;
                if handoff.send(stream).is_err() {
                    return Err(std::io::Error::other("a receiver thread ended"));
                }
            }
            Ok(())
        })
    }

    /// One keep-alive connection, until the client closes it.
    async fn connection(self: Arc<Self>, stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        let connection = self.connections.fetch_add(1, Ordering::Relaxed);
        let service = service_fn(move |req| self.clone().handle(connection, req));
        // A client closing its connection is the normal end, not an error to report.
        let _ = http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service)
            .await;
    }

    async fn handle(
        self: Arc<Self>,
        connection: u64,
        req: Request<Incoming>,
    ) -> Result<Response<Full<Bytes>>, Infallible> {
        let now_ns = unix_ns();
        let (head, body) = req.into_parts();
        let path = head.uri.path().trim_start_matches('/');
        let (first, rest) = path.split_once('/').unwrap_or((path, ""));
        let reply = match first {
            "_stats" if rest.is_empty() => json(&self.sinks.counts()),
            "_sink" if !rest.is_empty() => {
                let query = head.uri.query().unwrap_or("");
                let (from_ns, to_ns) = match (param(query, "from_ns"), param(query, "to_ns")) {
                    (Ok(from), Ok(to)) => (from.unwrap_or(0), to.unwrap_or(u64::MAX)),
                    _ => {
                        return Ok(text(
                            StatusCode::BAD_REQUEST,
                            "from_ns and to_ns are unix nanoseconds\n",
                        ));
                    }
                };
                json(&self.sinks.get(rest).summary(from_ns, to_ns))
            }
            "_check" if !rest.is_empty() => {
                let Ok(ids) = Limited::new(body, 256 << 20).collect().await else {
                    return Ok(text(StatusCode::PAYLOAD_TOO_LARGE, "ids over 256 MiB\n"));
                };
                let ids = ids.to_bytes();
                let lines = ids.split(|b| *b == b'\n').filter(|l| !l.is_empty());
                json(&self.sinks.check(rest, lines))
            }
            "ok" | "slow" if !sink_of(rest).is_empty() => {
                let sink = sink_of(rest);
                let body = match Limited::new(body, MAX_BODY).collect().await {
                    Ok(collected) => collected.to_bytes(),
                    Err(_) => {
                        return Ok(text(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body over 1 MiB or broken\n",
                        ));
                    }
                };
                let header = |name: &str| head.headers.get(name).map(|v| v.as_bytes());
                let fails = self.fails();
                let body_id = match header("x-webhookd-event-id") {
                    Some(_) => None,
                    None => event_id_in(&body),
                };
                self.sinks.record(
                    sink,
                    Arrival {
                        now_ns,
                        event_id: header("x-webhookd-event-id")
                            .or(body_id.as_deref().map(str::as_bytes)),
                        delivery_id: header("webhook-id"),
                        sent_ns: sent_ns_in(&body),
                        connection,
                    },
                    fails,
                );
                if first == "slow" {
                    tokio::time::sleep(self.slow_delay).await;
                }
                if fails {
                    text(StatusCode::INTERNAL_SERVER_ERROR, "failing on purpose\n")
                } else {
                    Response::new(Full::new(Bytes::new()))
                }
            }
            _ => text(StatusCode::NOT_FOUND, "not a bench receiver path\n"),
        };
        Ok(reply)
    }
}

/// The next connection of `listener`, waiting out errors such as running out of file
/// descriptors (the open connections keep being served meanwhile).
async fn accept(listener: &TcpListener) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => return stream,
            Err(e) => {
                eprintln!("bench-receiver: accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

fn single_threaded() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

/// The sink of `/ok/<sink>[/...]`.
fn sink_of(rest: &str) -> &str {
    rest.split('/').next().unwrap_or("")
}

/// `event_id`, `id` or `event.id` of a JSON body.
fn event_id_in(body: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(body).ok()?;
    let id = v
        .get("event_id")
        .or_else(|| v.get("id"))
        .or_else(|| v.get("event")?.get("id"))?;
    id.as_str().map(str::to_string)
}

/// A numeric query parameter: Ok(None) when absent, Err when malformed.
fn param(query: &str, name: &str) -> Result<Option<u64>, ()> {
    match query
        .split('&')
        .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
    {
        None => Ok(None),
        Some(v) => v.parse().map(Some).map_err(|_| ()),
    }
}

fn json(value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).expect("plain data serializes");
    let mut response = Response::new(Full::new(Bytes::from(body)));
    response.headers_mut().insert(
        CONTENT_TYPE,
        "application/json".parse().expect("valid header"),
    );
    response
}

fn text(status: StatusCode, message: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(message.as_bytes())));
    *response.status_mut() = status;
    response
}
