//! `webhooks.v1.WebhookService`: authenticates each call from its `authorization`
//! metadata and translates requests onto `core::Service`.

use std::pin::Pin;

use futures::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

use super::convert::{
    accepted_to_pb, emit_request, emitted_to_pb, millis, response_to_pb, status_to_pb,
    webhook_patch, webhook_to_pb,
};
use super::event_types;
use super::operator::{
    deliveries_query, delivery_to_pb, event_to_pb, event_view_to_pb, events_query,
};
use super::pb::webhook_service_server::WebhookService;
use super::status::to_status;
use super::{pb, watch};
use crate::core::Page;
use crate::core::events::EmitRequest;
use crate::core::{Caller, Service};
use crate::error::Error;
use crate::ids::{self, Kind};
use crate::telemetry::TRACEPARENT;

/// The caller's W3C `traceparent` metadata, continued by the emit.
fn traceparent<T>(request: &Request<T>) -> Option<String> {
    request
        .metadata()
        .get(TRACEPARENT)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

/// Default and largest page sizes of list RPCs.
pub const DEFAULT_PAGE_SIZE: usize = 50;
const MAX_PAGE_SIZE: usize = 1000;

/// The WebhookService implementation.
pub struct WebhookApi {
    service: Service,
    shutdown: CancellationToken,
}

impl WebhookApi {
    /// Serves `service`.
    /// Serves `service`; open status streams end at `shutdown` (delivery goes on after restart).
    pub fn new(service: Service, shutdown: CancellationToken) -> WebhookApi {
        WebhookApi { service, shutdown }
    }

    /// The caller of `request` (the future holds no reference to the request).
    fn caller<T>(
        &self,
        request: &Request<T>,
    ) -> impl Future<Output = Result<Caller, Status>> + Send + '_ {
        let authorization = super::authorization(request).map(str::to_string);
        async move {
            self.service
                .authenticate(authorization.as_deref())
                .await
                .map_err(to_status)
        }
    }
}

/// A page request from `page_size`/`page_token` (the token is the last item's key).
fn page(page_size: i32, page_token: &str, kind: Kind) -> Result<Page, Status> {
    if page_size < 0 {
        return Err(to_status(Error::invalid(
            "page_size",
            "must not be negative",
        )));
    }
    let limit = match page_size as usize {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    };
    let after = if page_token.is_empty() {
        None
    } else {
        Some(ids::parse(kind, page_token).ok_or_else(|| {
            to_status(Error::invalid(
                "page_token",
                "not a token from a previous page",
            ))
        })?)
    };
    Ok(Page {
        after,
        offset: 0,
        limit,
    })
}

type StatusStream = Pin<Box<dyn Stream<Item = Result<pb::DeliveryStatus, Status>> + Send>>;

#[tonic::async_trait]
impl WebhookService for WebhookApi {
    async fn create_webhook(
        &self,
        request: Request<pb::CreateWebhookRequest>,
    ) -> Result<Response<pb::Webhook>, Status> {
        let caller = self.caller(&request).await?;
        let webhook = request
            .into_inner()
            .webhook
            .ok_or_else(|| to_status(Error::invalid("webhook", "This field is required.")))?;
        let patch = webhook_patch(webhook, None).map_err(to_status)?;
        let created = self
            .service
            .create_webhook(&caller, patch)
            .await
            .map_err(to_status)?;
        Ok(Response::new(webhook_to_pb(created)))
    }

    async fn get_webhook(
        &self,
        request: Request<pb::GetWebhookRequest>,
    ) -> Result<Response<pb::Webhook>, Status> {
        let caller = self.caller(&request).await?;
        let view = self
            .service
            .get_webhook(&caller, &request.get_ref().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(webhook_to_pb(view)))
    }

    async fn list_webhooks(
        &self,
        request: Request<pb::ListWebhooksRequest>,
    ) -> Result<Response<pb::ListWebhooksResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let page = page(r.page_size, &r.page_token, Kind::Webhook)?;
        let listing = self
            .service
            .list_webhooks(&caller, page, None)
            .await
            .map_err(to_status)?;
        let next_page_token = match listing.items.last() {
            Some(last) if listing.items.len() == page.limit => {
                ids::format(Kind::Webhook, last.webhook.id)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListWebhooksResponse {
            webhooks: listing.items.into_iter().map(webhook_to_pb).collect(),
            next_page_token,
            total_size: listing.total as i32,
        }))
    }

    async fn update_webhook(
        &self,
        request: Request<pb::UpdateWebhookRequest>,
    ) -> Result<Response<pb::Webhook>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let webhook = r
            .webhook
            .ok_or_else(|| to_status(Error::invalid("webhook", "This field is required.")))?;
        let id = webhook.id.clone();
        let paths = r.update_mask.map(|m| m.paths).filter(|p| !p.is_empty());
        let patch = webhook_patch(webhook, paths.as_deref()).map_err(to_status)?;
        let updated = self
            .service
            .update_webhook(&caller, &id, patch)
            .await
            .map_err(to_status)?;
        Ok(Response::new(webhook_to_pb(updated)))
    }

    async fn delete_webhook(
        &self,
        request: Request<pb::DeleteWebhookRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = self.caller(&request).await?;
        self.service
            .delete_webhook(&caller, &request.get_ref().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }

    async fn list_responses(
        &self,
        request: Request<pb::ListResponsesRequest>,
    ) -> Result<Response<pb::ListResponsesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let page = page(r.page_size, &r.page_token, Kind::Delivery)?;
        let listing = self
            .service
            .list_responses(&caller, &r.webhook_id, page)
            .await
            .map_err(to_status)?;
        let next_page_token = match listing.items.last() {
            Some(last) if listing.items.len() == page.limit => {
                ids::format(Kind::Delivery, last.key)
            }
            _ => String::new(),
        };
        Ok(Response::new(pb::ListResponsesResponse {
            responses: listing.items.into_iter().map(response_to_pb).collect(),
            next_page_token,
        }))
    }

    type EmitEventStream = StatusStream;

    async fn emit_event(
        &self,
        request: Request<pb::EmitEventRequest>,
    ) -> Result<Response<Self::EmitEventStream>, Status> {
        let caller = self.caller(&request).await?;
        let traceparent = traceparent(&request);
        let mut emit = emit_request(request.into_inner());
        emit.traceparent = traceparent;
        let mut statuses = self.service.emit(&caller, emit).await.map_err(to_status)?;
        let (sender, receiver) = mpsc::channel(64);
        let shutdown = self.shutdown.clone();
        let service = self.service.clone();
        tokio::spawn(async move {
            service.metrics().open_streams.inc();
            // The event is durable: say so first, with its id, even when nothing matched.
            let accepted = accepted_to_pb(statuses.event_id(), statuses.delivery_ids().len());
            let mut open = sender.send(Ok(accepted)).await.is_ok();
            while open {
                // A caller that left frees its stream at once, not at the next update
                // (which for a dead endpoint may be hours away); delivery goes on.
                let update = tokio::select! {
                    update = statuses.next() => update,
                    _ = sender.closed() => None,
                    _ = shutdown.cancelled() => None,
                };
                let Some(update) = update else { break };
                // A failed send means the caller left; delivery goes on.
                open = sender.send(Ok(status_to_pb(update))).await.is_ok();
            }
            service.metrics().open_streams.dec();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(receiver))))
    }

    async fn emit_events(
        &self,
        request: Request<pb::EmitEventsRequest>,
    ) -> Result<Response<pb::EmitEventsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let traceparent = traceparent(&request);
        let events = request
            .into_inner()
            .events
            .into_iter()
            .map(|event| EmitRequest {
                traceparent: traceparent.clone(),
                ..emit_request(event)
            })
            .collect();
        let emitted = self
            .service
            .emit_batch(&caller, events)
            .await
            .map_err(to_status)?;
        let mut response = Response::new(pb::EmitEventsResponse {
            results: emitted.results.into_iter().map(emitted_to_pb).collect(),
        });
        // The batch's share of the emit memory goes with the answer until it is sent
        // (`raw_first` holds it with the answer's body).
        response.extensions_mut().insert(emitted.held);
        Ok(response)
    }

    async fn redeliver_delivery(
        &self,
        request: Request<pb::RedeliverDeliveryRequest>,
    ) -> Result<Response<pb::RedeliverResponse>, Status> {
        let caller = self.caller(&request).await?;
        let id = self
            .service
            .redeliver(&caller, &request.get_ref().delivery_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RedeliverResponse {
            delivery_ids: vec![ids::format(Kind::Delivery, id)],
        }))
    }

    async fn redeliver_failed(
        &self,
        request: Request<pb::RedeliverFailedRequest>,
    ) -> Result<Response<pb::RedeliverResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let since = match &r.since {
            Some(ts) => millis(ts, "since").map_err(to_status)?,
            None => 0,
        };
        let queued = self
            .service
            .redeliver_failed(&caller, &r.webhook_id, since)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RedeliverResponse {
            delivery_ids: queued
                .into_iter()
                .map(|id| ids::format(Kind::Delivery, id))
                .collect(),
        }))
    }

    async fn get_event(
        &self,
        request: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::Event>, Status> {
        let caller = self.caller(&request).await?;
        let view = self
            .service
            .get_event(&caller, &request.get_ref().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(event_view_to_pb(view)))
    }

    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let (filter, page) = events_query(request.into_inner()).map_err(to_status)?;
        let listing = self
            .service
            .list_events(&caller, filter, page)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListEventsResponse {
            events: listing
                .items
                .into_iter()
                .map(|e| event_to_pb(e, Vec::new()))
                .collect(),
            next_page_token: listing.next_page_token,
        }))
    }

    async fn get_delivery(
        &self,
        request: Request<pb::GetDeliveryRequest>,
    ) -> Result<Response<pb::Delivery>, Status> {
        let caller = self.caller(&request).await?;
        let delivery = self
            .service
            .get_delivery(&caller, &request.get_ref().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(delivery_to_pb(delivery)))
    }

    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> Result<Response<pb::ListDeliveriesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let (filter, page) = deliveries_query(request.into_inner()).map_err(to_status)?;
        let listing = self
            .service
            .list_deliveries(&caller, filter, page)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: listing.items.into_iter().map(delivery_to_pb).collect(),
            next_page_token: listing.next_page_token,
        }))
    }

    async fn cancel_delivery(
        &self,
        request: Request<pb::CancelDeliveryRequest>,
    ) -> Result<Response<pb::Delivery>, Status> {
        let caller = self.caller(&request).await?;
        let delivery = self
            .service
            .cancel_delivery(&caller, &request.get_ref().id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(delivery_to_pb(delivery)))
    }

    type WatchDeliveriesStream = StatusStream;

    async fn watch_deliveries(
        &self,
        request: Request<pb::WatchDeliveriesRequest>,
    ) -> Result<Response<Self::WatchDeliveriesStream>, Status> {
        let caller = self.caller(&request).await?;
        let watch = watch::watch_request(request.into_inner()).map_err(to_status)?;
        let watcher = self
            .service
            .watch(&caller, watch)
            .await
            .map_err(to_status)?;
        let messages = crate::core::watch::pump(watcher, self.shutdown.clone());
        Ok(Response::new(Box::pin(watch::stream(messages))))
    }

    async fn rotate_signing_secret(
        &self,
        request: Request<pb::RotateSigningSecretRequest>,
    ) -> Result<Response<pb::RotateSigningSecretResponse>, Status> {
        let caller = self.caller(&request).await?;
        let rotated = self
            .service
            .rotate_signing_secret(&caller, &request.get_ref().webhook_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(pb::RotateSigningSecretResponse {
            signing_secret: rotated.secret,
            signing_public_key: rotated.public_key.unwrap_or_default(),
        }))
    }

    async fn get_webhook_health(
        &self,
        request: Request<pb::GetWebhookHealthRequest>,
    ) -> Result<Response<pb::WebhookHealth>, Status> {
        let caller = self.caller(&request).await?;
        let health = self
            .service
            .webhook_health(&caller, &request.get_ref().webhook_id)
            .await
            .map_err(to_status)?;
        Ok(Response::new(super::health::to_pb(&health)))
    }

    async fn create_event_type(
        &self,
        request: Request<pb::CreateEventTypeRequest>,
    ) -> Result<Response<pb::EventType>, Status> {
        let caller = self.caller(&request).await?;
        let created = event_types::create(&self.service, &caller, request.into_inner()).await?;
        Ok(Response::new(created))
    }

    async fn get_event_type(
        &self,
        request: Request<pb::GetEventTypeRequest>,
    ) -> Result<Response<pb::EventType>, Status> {
        let caller = self.caller(&request).await?;
        let found = self
            .service
            .get_event_type(&caller, &request.get_ref().name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(event_types::event_type_to_pb(found)))
    }

    async fn list_event_types(
        &self,
        request: Request<pb::ListEventTypesRequest>,
    ) -> Result<Response<pb::ListEventTypesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let page = event_types::list(&self.service, &caller, request.get_ref()).await?;
        Ok(Response::new(page))
    }

    async fn update_event_type(
        &self,
        request: Request<pb::UpdateEventTypeRequest>,
    ) -> Result<Response<pb::EventType>, Status> {
        let caller = self.caller(&request).await?;
        let updated = event_types::update(&self.service, &caller, request.into_inner()).await?;
        Ok(Response::new(updated))
    }

    async fn delete_event_type(
        &self,
        request: Request<pb::DeleteEventTypeRequest>,
    ) -> Result<Response<()>, Status> {
        let caller = self.caller(&request).await?;
        self.service
            .delete_event_type(&caller, &request.get_ref().name)
            .await
            .map_err(to_status)?;
        Ok(Response::new(()))
    }
}
