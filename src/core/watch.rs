//! The live tail of an account's deliveries (WatchDeliveries and its SSE twin): every change
//! of a delivery's state, read from the store's change log (`store::change_log`) from a
//! cursor, optionally filtered by webhook and states. The log is the truth; the hub's
//! change counter (this instance's deliveries and emits, and other instances' as their
//! notifications arrive) only wakes a watcher, and a short poll covers what no wake
//! announces (rows a PostgreSQL reader must wait for, another instance's changes).
//!
//! A watcher reads at its own pace and never holds anything the delivery engine waits for:
//! deliveries only append to the log. Between a watcher and its client sits a bounded
//! buffer (`pump`): a client that leaves it full past a stall timeout gets a RESYNC message
//! carrying the cursor of the last change it was sent, and the stream ends; reconnecting
//! from that cursor continues without a gap. A cursor older than the
//! log's retention also yields RESYNC (with the cursor the stream continues from), since
//! changes after it are gone: re-read the current states (ListDeliveries) to catch up.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::{Caller, Service};
use crate::error::{Error, Result};
use crate::model::{DeliveryState, DeliveryUpdate, Scope};
use crate::store::change_log::ChangeCursor;

/// Changes read from the log at once.
const READ_LIMIT: usize = 256;

/// Longest wait for a wake before the log is read anyway.
const POLL: Duration = Duration::from_millis(250);

/// Messages a client may leave unread before it is told to resync.
pub const BUFFER: usize = 256;

/// What to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchRequest {
    /// Only this webhook's deliveries (an id of the caller's account).
    pub webhook_id: Option<String>,
    /// Only changes to these states (OR); empty = every state.
    pub states: Vec<DeliveryState>,
    /// Resume after this cursor (from a previous message); None = from now.
    pub cursor: Option<String>,
    /// The field the cursor came from, named in its error ("cursor", "Last-Event-ID").
    pub cursor_field: &'static str,
}

/// One message of a live tail.
#[derive(Debug, Clone, PartialEq)]
pub enum Watched {
    /// A delivery changed; `cursor` resumes right after it.
    Change {
        /// Cursor of this change.
        cursor: String,
        /// The change.
        update: DeliveryUpdate,
    },
    /// Changes were not sent: resume from `cursor`.
    Resync {
        /// Where to continue from.
        cursor: String,
        /// Why.
        reason: String,
    },
}

impl Watched {
    /// The message's cursor.
    pub fn cursor(&self) -> &str {
        match self {
            Watched::Change { cursor, .. } | Watched::Resync { cursor, .. } => cursor,
        }
    }
}

/// A cursor as the API shows it: 32 hex digits (opaque to clients).
pub fn format_cursor(cursor: ChangeCursor) -> String {
    format!("{:016x}{:016x}", cursor.high, cursor.low)
}

/// A cursor from `format_cursor`.
pub fn parse_cursor(text: &str) -> Option<ChangeCursor> {
    if text.len() != 32 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some(ChangeCursor {
        high: u64::from_str_radix(&text[..16], 16).ok()?,
        low: u64::from_str_radix(&text[16..], 16).ok()?,
    })
}

/// An open live tail.
pub struct Watcher {
    service: Service,
    account_id: String,
    webhook_id: Option<u64>,
    states: Vec<DeliveryState>,
    /// Where the next read of the log starts.
    position: ChangeCursor,
    woken: watch::Receiver<u64>,
    ready: VecDeque<Watched>,
}

impl Service {
    /// Opens a live tail of the caller's deliveries (read scope).
    pub async fn watch(&self, caller: &Caller, request: WatchRequest) -> Result<Watcher> {
        caller.require(Scope::Read)?;
        let cursor = match request.cursor.as_deref().filter(|c| !c.is_empty()) {
            Some(text) => Some(parse_cursor(text).ok_or_else(|| {
                Error::invalid(
                    request.cursor_field,
                    "not a cursor from a WatchDeliveries message",
                )
            })?),
            None => None,
        };
        let webhook_id = match request.webhook_id.as_deref().filter(|id| !id.is_empty()) {
            Some(id) => Some(self.owned_webhook(caller, id).await?.id),
            None => None,
        };
        // Subscribed before the head is read: nothing after it goes unwoken.
        let woken = self.hub.changes();
        let position = match cursor {
            Some(cursor) => cursor,
            None => self.store.change_head().await?,
        };
        Ok(Watcher {
            service: self.clone(),
            account_id: caller.account_id.clone(),
            webhook_id,
            states: request.states,
            position,
            woken,
            ready: VecDeque::new(),
        })
    }
}

impl Watcher {
    /// Where the tail stands: the cursor the first message will follow.
    pub fn position(&self) -> String {
        format_cursor(self.position)
    }

    fn wanted(&self, update: &DeliveryUpdate) -> bool {
        self.webhook_id.is_none_or(|id| id == update.webhook_id)
            && (self.states.is_empty() || self.states.contains(&update.state))
    }

    /// The next message; waits until there is one.
    pub async fn next(&mut self) -> Result<Watched> {
        loop {
            if let Some(message) = self.ready.pop_front() {
                return Ok(message);
            }
            // Seen before reading: a change committed from now on wakes the wait below.
            self.woken.borrow_and_update();
            let store = &self.service.store;
            let page = store
                .read_changes(&self.account_id, self.position, READ_LIMIT)
                .await?;
            if page.expired {
                self.position = store.change_head().await?;
                return Ok(Watched::Resync {
                    cursor: format_cursor(self.position),
                    reason: "the cursor is older than the change log keeps; changes after it \
                             were pruned: re-read the current states, then continue from here"
                        .into(),
                });
            }
            let progressed = page.next != self.position || !page.changes.is_empty();
            self.position = page.next;
            for change in page.changes {
                if self.wanted(&change.update) {
                    self.ready.push_back(Watched::Change {
                        cursor: format_cursor(change.cursor),
                        update: change.update,
                    });
                }
            }
            if !progressed {
                tokio::select! {
                    _ = self.woken.changed() => {}
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
    }
}

/// Runs `watcher` into a bounded channel until the receiver is dropped, `shutdown`, or a
/// store error (sent last). The watcher waits while its client reads (catching up from an
/// old cursor is just reading on); a client that leaves `BUFFER` messages unread for the
/// configured stall timeout gets, in the slot kept for it, a RESYNC with the cursor of the
/// last change sent, and the tail ends.
pub fn pump(mut watcher: Watcher, shutdown: CancellationToken) -> mpsc::Receiver<Result<Watched>> {
    let (sender, receiver) = mpsc::channel(BUFFER + 1);
    let metrics = std::sync::Arc::clone(&watcher.service.metrics);
    let stall = watcher.service.config.watch_stall_timeout;
    tokio::spawn(async move {
        metrics.watch_streams.inc();
        let mut last = watcher.position();
        loop {
            let message = tokio::select! {
                message = watcher.next() => message,
                _ = sender.closed() => break,
                _ = shutdown.cancelled() => break,
            };
            let message = match message {
                Ok(message) => message,
                Err(e) => {
                    let _ = sender.try_send(Err(e));
                    break;
                }
            };
            if matches!(message, Watched::Resync { .. }) {
                metrics.watch_resyncs.inc();
            }
            // Two free slots: one for this message, one always left for a RESYNC.
            let room = tokio::select! {
                room = tokio::time::timeout(stall, sender.reserve_many(2)) => room,
                _ = shutdown.cancelled() => break,
            };
            match room {
                Ok(Ok(mut permits)) => {
                    last = message.cursor().to_string();
                    if let Some(permit) = permits.next() {
                        permit.send(Ok(message));
                    }
                }
                Ok(Err(_)) => break,
                Err(_) => {
                    metrics.watch_resyncs.inc();
                    let _ = sender.try_send(Ok(Watched::Resync {
                        cursor: last,
                        reason: format!(
                            "the client left {BUFFER} messages unread for {}; reconnect \
                             from this cursor to continue",
                            humantime::format_duration(stall)
                        ),
                    }));
                    break;
                }
            }
        }
        metrics.watch_streams.dec();
    });
    receiver
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_anything_else_is_refused() {
        for cursor in [
            ChangeCursor::START,
            ChangeCursor { high: 0, low: 42 },
            ChangeCursor {
                high: u64::MAX,
                low: u64::MAX,
            },
        ] {
            let text = format_cursor(cursor);
            assert_eq!(text.len(), 32);
            assert_eq!(parse_cursor(&text), Some(cursor));
        }
        let upper = format_cursor(ChangeCursor { high: 10, low: 11 }).to_uppercase();
        assert_eq!(
            parse_cursor(&upper),
            Some(ChangeCursor { high: 10, low: 11 })
        );
        for bad in [
            "",
            "0",
            &"0".repeat(31),
            &"0".repeat(33),
            &"z".repeat(32),
            "+0000000000000000000000000000001",
        ] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }
}
