//! EmitEvents calls are read before they are decoded: this wrapper around the WebhookService
//! reads an EmitEvents request's body as received (its bytes, up to the largest message the
//! service accepts, counted against the core's bound on batch bytes waiting: beyond it the
//! call is answered RESOURCE_EXHAUSTED with RetryInfo at once), asks the core for the call's
//! share of the decoding bound (`Service::admit_batch`, sized from the body's length), and
//! only then hands the body to tonic to decode, holding the share, and the batch's share of
//! the emit memory that the handler puts in the answer's extensions, until the answer's body
//! is sent. Reading first is what
//! keeps HTTP/2 moving: a stream whose DATA frames are left unread holds the connection's
//! flow-control window, and the granted streams of that connection could then never receive
//! the rest of their requests. A body larger than the limit, or one that breaks off, is handed
//! on as it came, at once, so tonic answers with its usual status. Other RPCs pass through.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use futures::future::BoxFuture;
use http_body_util::{BodyExt as _, BodyStream, StreamBody};
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::Service as TowerService;
use tonic::codegen::http::{Request, Response};
use tonic::server::NamedService;

use super::status::to_status;
use crate::core::Service;
use crate::core::emit_budget::EmitShare;
use crate::core::intake::{Arrival, BatchGrant};
use crate::error::Error;

/// The largest request message the WebhookService decodes (tonic's default, set explicitly).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;

/// gRPC's frame header before each message: a compression flag and a 4-byte length.
const FRAME_HEADER_BYTES: usize = 5;

/// The method whose requests are read first.
const EMIT_EVENTS: &str = "EmitEvents";

/// `inner` (a tonic service) with its EmitEvents requests read before they are decoded.
#[derive(Clone)]
pub struct RawFirst<S> {
    inner: S,
    service: Service,
}

impl<S> RawFirst<S> {
    /// Wraps `inner`; the decoding bound is `service`'s.
    pub fn new(inner: S, service: Service) -> RawFirst<S> {
        RawFirst { inner, service }
    }
}

impl<S: NamedService> NamedService for RawFirst<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> TowerService<Request<Body>> for RawFirst<S>
where
    S: TowerService<Request<Body>, Response = Response<Body>, Error = Infallible>
        + NamedService
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<Body>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|path| path.strip_prefix(S::NAME))
            .and_then(|path| path.strip_prefix('/'));
        if method != Some(EMIT_EVENTS) {
            return Box::pin(self.inner.call(request));
        }
        // The clone that was made ready serves this call (tower's rule for services that
        // are called from a future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let service = self.service.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let mut arrival = service.batch_arrival();
            let (body, whole) = match read_first(body, &mut arrival).await {
                Ok(read) => read,
                Err(refused) => return Ok(to_status(refused).into_http()),
            };
            if !whole {
                // Too large or broken off: tonic says so, as it would have at once.
                drop(arrival);
                return inner.call(Request::from_parts(parts, body)).await;
            }
            let grant = service.admit_batch(arrival).await;
            let mut response = inner.call(Request::from_parts(parts, body)).await?;
            let held = response.extensions_mut().remove::<EmitShare>();
            // The shares are given back once the answer's body has been sent (or dropped).
            Ok(response.map(|answer| {
                Body::new(Holding {
                    answer,
                    _grant: grant,
                    _held: held,
                })
            }))
        })
    }
}

/// An answer's body that holds the call's share until it is sent or dropped, and is the
/// answer's body in every other respect: an error's trailers-only answer (its status in the
/// HEADERS frame, which ends the stream) must stay one, as grpc-go and grpc-python refuse a
/// status whose HEADERS frame is followed by an empty DATA frame.
struct Holding {
    answer: Body,
    _grant: BatchGrant,
    _held: Option<EmitShare>,
}

impl HttpBody for Holding {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        Pin::new(&mut self.get_mut().answer).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.answer.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.answer.size_hint()
    }
}

/// Reads `body` up to one message of the largest size accepted, counting what it reads in
/// `arrival` (refused when the batch bytes waiting would be too many): the body to hand on
/// (what was read, then whatever follows it), and whether it was read whole. What was read is
/// copied into one buffer of the message's size (its frame header says it), so a waiting call
/// holds its own bytes, not the connection's receive buffers its frames were cut from.
async fn read_first(mut body: Body, arrival: &mut Arrival) -> Result<(Body, bool), Error> {
    let limit = MAX_REQUEST_BYTES + FRAME_HEADER_BYTES;
    let mut read = BytesMut::new();
    let mut sized = false;
    let mut others = Vec::new();
    let rest = loop {
        match body.frame().await {
            None => break None,
            Some(Ok(frame)) => match frame.into_data() {
                Ok(data) => {
                    arrival.read(data.len())?;
                    read.extend_from_slice(&data);
                    if !sized && read.len() >= FRAME_HEADER_BYTES {
                        sized = true;
                        let length = u32::from_be_bytes([read[1], read[2], read[3], read[4]]);
                        let whole = (length as usize).saturating_add(FRAME_HEADER_BYTES);
                        read.reserve(whole.min(limit + 1).saturating_sub(read.len()));
                    }
                    if read.len() > limit {
                        break Some(StreamExt::boxed(BodyStream::new(body)));
                    }
                }
                Err(frame) => others.push(Ok(frame)),
            },
            Some(Err(status)) => {
                others.push(Err(status));
                break Some(StreamExt::boxed(futures::stream::empty()));
            }
        }
    };
    let whole = rest.is_none();
    let prefix =
        futures::stream::iter(std::iter::once(Ok(Frame::data(read.freeze()))).chain(others));
    let replay = match rest {
        None => Body::new(StreamBody::new(prefix)),
        Some(rest) => Body::new(StreamBody::new(prefix.chain(rest))),
    };
    Ok((replay, whole))
}
