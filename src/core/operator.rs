//! The operator API's use cases: an event with its deliveries, listings of the account's
//! events and deliveries (filters, newest first, keyset page tokens that stay consistent
//! while events are emitted), a delivery, and cancellation. Tenancy as everywhere: another
//! account's event, delivery or webhook does not exist for the caller. Transports parse
//! their own shapes into the filters here and translate the results.

use super::page_token::PageTokens;
use super::{Caller, Service};
use crate::error::{Error, FieldViolation, Result};
use crate::ids::{self, Kind};
use crate::model::{Delivery, DeliveryState, DeliveryUpdate, Event, Scope, now_ms};
use crate::store::{Cancelled, DeliveryQuery, EventQuery, Keyset};

/// Page size of a listing when none is asked for.
pub const DEFAULT_PAGE_SIZE: i64 = 50;

/// Largest page size of a listing.
pub const MAX_PAGE_SIZE: i64 = 1000;

/// An event with every one of its deliveries, as they are now.
#[derive(Debug, Clone)]
pub struct EventView {
    /// The event.
    pub event: Event,
    /// Its deliveries, in creation order (matched targets, then redeliveries).
    pub deliveries: Vec<Delivery>,
}

/// Which page of a listing: a size (0 = the default) and the previous page's token.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    /// Items per page; 0 = `DEFAULT_PAGE_SIZE`, at most `MAX_PAGE_SIZE`.
    pub size: i64,
    /// `next_page_token` of the previous page; empty for the first.
    pub token: String,
}

/// One page of a listing.
#[derive(Debug, Clone)]
pub struct Listing<T> {
    /// The items, newest first.
    pub items: Vec<T>,
    /// Token of the next page; empty on the last.
    pub next_page_token: String,
}

/// Filters of ListEvents.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only this type (None or empty = every type).
    pub event_type: Option<String>,
    /// Created at or after (ms).
    pub created_after_ms: Option<i64>,
    /// Created before (ms).
    pub created_before_ms: Option<i64>,
}

/// Filters of ListDeliveries.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only this webhook's (an API id).
    pub webhook_id: Option<String>,
    /// Only these states (OR); empty = every state.
    pub states: Vec<DeliveryState>,
    /// Created at or after (ms).
    pub created_after_ms: Option<i64>,
    /// Created before (ms).
    pub created_before_ms: Option<i64>,
}

/// Checks a time range and a page size; the violations, by field.
fn check_bounds(after: Option<i64>, before: Option<i64>, size: i64) -> Vec<FieldViolation> {
    let mut violations = Vec::new();
    if let (Some(after), Some(before)) = (after, before)
        && after >= before
    {
        violations.push(FieldViolation::new(
            "created_before",
            "must be later than created_after",
        ));
    }
    if !(0..=MAX_PAGE_SIZE).contains(&size) {
        violations.push(FieldViolation::new(
            "page_size",
            format!("must be between 0 and {MAX_PAGE_SIZE} (0 = {DEFAULT_PAGE_SIZE})"),
        ));
    }
    violations
}

fn bad_token() -> FieldViolation {
    FieldViolation::new(
        "page_token",
        "not a token of a previous page of this listing (same filters)",
    )
}

/// One page of a listing as asked: where it starts and how many items, under the filters
/// its page tokens are bound to.
struct Paging {
    tokens: PageTokens,
    filters: String,
    after: Option<Keyset>,
    limit: usize,
}

impl Paging {
    /// Checks the time range and the page size and opens the page token (bound to
    /// `filters`); every violation at once.
    fn open(
        tokens: PageTokens,
        filters: String,
        range: (Option<i64>, Option<i64>),
        page: &PageRequest,
    ) -> Result<Paging> {
        let mut violations = check_bounds(range.0, range.1, page.size);
        let after = match page.token.as_str() {
            "" => None,
            token => {
                let opened = tokens.open(&filters, token);
                if opened.is_none() {
                    violations.push(bad_token());
                }
                opened
            }
        };
        if !violations.is_empty() {
            return Err(Error::InvalidArgument(violations));
        }
        let limit = match page.size {
            0 => DEFAULT_PAGE_SIZE as usize,
            n => n as usize,
        };
        Ok(Paging {
            tokens,
            filters,
            after,
            limit,
        })
    }

    /// The page of `items` read from `after` with `limit`, and the next page's token
    /// (empty when the page was not full).
    fn listing<T>(&self, items: Vec<T>, position: impl Fn(&T) -> Keyset) -> Listing<T> {
        let next_page_token = match items.last() {
            Some(last) if items.len() == self.limit => {
                self.tokens.seal(&self.filters, position(last))
            }
            _ => String::new(),
        };
        Listing {
            items,
            next_page_token,
        }
    }
}

impl Service {
    fn page_tokens(&self) -> PageTokens {
        PageTokens::new(&self.admin_token_hash)
    }

    /// An event of the caller's account with its deliveries.
    pub async fn get_event(&self, caller: &Caller, id: &str) -> Result<EventView> {
        caller.require(Scope::Read)?;
        let event = self.owned_event(caller, id).await?;
        let mut deliveries = Vec::with_capacity(event.delivery_ids.len());
        for delivery_id in &event.delivery_ids {
            if let Some(delivery) = self.store.get_delivery(*delivery_id).await? {
                deliveries.push(delivery);
            }
        }
        Ok(EventView { event, deliveries })
    }

    /// The caller's events, newest first.
    pub async fn list_events(
        &self,
        caller: &Caller,
        filter: EventFilter,
        page: PageRequest,
    ) -> Result<Listing<Event>> {
        caller.require(Scope::Read)?;
        let event_type = filter.event_type.filter(|t| !t.is_empty());
        let filters = format!(
            "{}\0events\0{:?}\0{:?}\0{:?}",
            caller.account_id, event_type, filter.created_after_ms, filter.created_before_ms
        );
        let range = (filter.created_after_ms, filter.created_before_ms);
        let paging = Paging::open(self.page_tokens(), filters, range, &page)?;
        let events = self
            .store
            .list_events(&EventQuery {
                account_id: &caller.account_id,
                event_type: event_type.as_deref(),
                created_after_ms: filter.created_after_ms,
                created_before_ms: filter.created_before_ms,
                after: paging.after,
                limit: paging.limit,
            })
            .await?;
        Ok(paging.listing(events, |e| Keyset {
            created_at_ms: e.created_at_ms,
            id: e.id,
        }))
    }

    /// A delivery of the caller's account.
    pub async fn get_delivery(&self, caller: &Caller, id: &str) -> Result<Delivery> {
        caller.require(Scope::Read)?;
        self.owned_delivery(caller, id).await
    }

    /// The caller's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        caller: &Caller,
        filter: DeliveryFilter,
        page: PageRequest,
    ) -> Result<Listing<Delivery>> {
        caller.require(Scope::Read)?;
        let webhook_id = match filter.webhook_id.as_deref().filter(|w| !w.is_empty()) {
            Some(id) => Some(self.owned_webhook(caller, id).await?.id),
            None => None,
        };
        let mut states = filter.states;
        states.sort_by_key(|s| s.as_str());
        states.dedup();
        let filters = format!(
            "{}\0deliveries\0{:?}\0{:?}\0{:?}\0{:?}",
            caller.account_id,
            webhook_id,
            states,
            filter.created_after_ms,
            filter.created_before_ms
        );
        let range = (filter.created_after_ms, filter.created_before_ms);
        let paging = Paging::open(self.page_tokens(), filters, range, &page)?;
        let deliveries = self
            .store
            .list_deliveries(&DeliveryQuery {
                account_id: &caller.account_id,
                webhook_id,
                states: &states,
                created_after_ms: filter.created_after_ms,
                created_before_ms: filter.created_before_ms,
                after: paging.after,
                limit: paging.limit,
            })
            .await?;
        Ok(paging.listing(deliveries, |d| Keyset {
            created_at_ms: d.created_at_ms,
            id: d.id,
        }))
    }

    /// Cancels a QUEUED or RETRYING delivery of the caller's account; a cancelled one is
    /// returned as it is; another final one is FAILED_PRECONDITION.
    pub async fn cancel_delivery(&self, caller: &Caller, id: &str) -> Result<Delivery> {
        caller.require(Scope::Write)?;
        let delivery = self.owned_delivery(caller, id).await?;
        match self.store.cancel_delivery(delivery.id, now_ms()).await? {
            Cancelled::Now(cancelled) => {
                self.hub.publish(DeliveryUpdate::of(&cancelled));
                self.schedule_next_in_order(&cancelled).await?;
                Ok(cancelled)
            }
            Cancelled::AlreadyFinal(d) if d.state == DeliveryState::Cancelled => Ok(d),
            Cancelled::AlreadyFinal(d) => Err(Error::FailedPrecondition(format!(
                "delivery {id} is {} (final); only QUEUED or RETRYING deliveries can be cancelled",
                d.state.as_str()
            ))),
            Cancelled::Missing => Err(delivery_not_found(id)),
        }
    }

    /// An event of the caller's account, by API id.
    async fn owned_event(&self, caller: &Caller, id: &str) -> Result<Event> {
        let not_found = || Error::NotFound {
            kind: "event",
            id: id.to_string(),
        };
        let n = ids::parse(Kind::Event, id).ok_or_else(not_found)?;
        match self.store.get_event(n).await? {
            Some(event) if event.account_id == caller.account_id => Ok(event),
            _ => Err(not_found()),
        }
    }

    /// A delivery of the caller's account, by API id (one stored before deliveries named
    /// their account is the account of its event).
    async fn owned_delivery(&self, caller: &Caller, id: &str) -> Result<Delivery> {
        let n = ids::parse(Kind::Delivery, id).ok_or_else(|| delivery_not_found(id))?;
        let delivery = self
            .store
            .get_delivery(n)
            .await?
            .ok_or_else(|| delivery_not_found(id))?;
        let owner = if delivery.account_id.is_empty() {
            self.store
                .get_event(delivery.event_id)
                .await?
                .map(|e| e.account_id)
        } else {
            Some(delivery.account_id.clone())
        };
        if owner.as_deref() == Some(caller.account_id.as_str()) {
            Ok(delivery)
        } else {
            Err(delivery_not_found(id))
        }
    }
}

fn delivery_not_found(id: &str) -> Error {
    Error::NotFound {
        kind: "delivery",
        id: id.to_string(),
    }
}
