"""A thin, typed wrapper around the generated WebhookService stub.

It sends the account token on every call, walks pages for you and turns ``grpc.RpcError`` into
:class:`~webhookd_client.errors.WebhookdError`. The generated stub stays reachable as
``client.stub`` for anything the wrapper does not cover.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar, Union

import grpc
from google.protobuf import field_mask_pb2

from ._gen.webhooks.v1 import webhooks_pb2 as pb
from ._gen.webhooks.v1 import webhooks_pb2_grpc as pb_grpc
from .errors import WebhookdError

__all__ = ["WebhookdClient", "BatchEvent"]

_T = TypeVar("_T")

BatchEvent = Union[
    Tuple[str, Optional[Mapping[str, Any]]],
    Tuple[str, Optional[Mapping[str, Any]], Optional[str]],
    Mapping[str, Any],
    pb.EmitEventRequest,
]
"""One event of :meth:`WebhookdClient.emit_events`: ``(event_type, data)``,
``(event_type, data, idempotency_key)``, a dict with the keys ``event_type``, ``data`` and
``idempotency_key`` (the last two optional), or an ``EmitEventRequest``."""

_BATCH_EVENT_KEYS = frozenset({"event_type", "data", "idempotency_key"})

DEFAULT_TIMEOUT = 30.0
"""Seconds allowed for each unary call (EmitEvent streams have no deadline by default)."""


class WebhookdClient:
    """Client of ``webhooks.v1.WebhookService``.

    >>> with WebhookdClient("127.0.0.1:50051", token) as client:
    ...     hook = client.create_webhook(name="ops", url="https://example.com/hook",
    ...                                  trigger_type="alert group created")

    Args:
        target: ``host:port`` of the gRPC listener.
        token: an account token (``webhooks:read`` and/or ``webhooks:write``).
        credentials: TLS channel credentials; plaintext when None.
        timeout: deadline in seconds of each unary call (None = no deadline).
        options: extra channel options, passed to grpc.
    """

    def __init__(
        self,
        target: str,
        token: str,
        *,
        credentials: Optional[grpc.ChannelCredentials] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        options: Optional[Sequence[Tuple[str, Any]]] = None,
    ) -> None:
        if credentials is None:
            self._channel = grpc.insecure_channel(target, options=options)
        else:
            self._channel = grpc.secure_channel(target, credentials, options=options)
        self._metadata = (("authorization", f"Bearer {token}"),)
        self._timeout = timeout
        self.stub = pb_grpc.WebhookServiceStub(self._channel)
        """The generated stub (pass ``metadata=client.metadata`` yourself)."""

    @property
    def metadata(self) -> Tuple[Tuple[str, str], ...]:
        """The call metadata carrying the token."""
        return self._metadata

    def close(self) -> None:
        """Closes the channel."""
        self._channel.close()

    def __enter__(self) -> "WebhookdClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _unary(self, method: Any, request: Any) -> Any:
        try:
            return method(request, metadata=self._metadata, timeout=self._timeout)
        except grpc.RpcError as err:
            raise WebhookdError.from_rpc_error(err) from None

    # --- webhooks -------------------------------------------------------------------------

    def create_webhook(self, **fields: Any) -> pb.Webhook:
        """Creates a webhook from ``Webhook`` fields (``name`` and ``url`` are required)."""
        return self._unary(
            self.stub.CreateWebhook, pb.CreateWebhookRequest(webhook=pb.Webhook(**fields))
        )

    def get_webhook(self, id: str) -> pb.Webhook:
        """Returns one webhook; raises NotFoundError for unknown ids and other accounts' webhooks."""
        return self._unary(self.stub.GetWebhook, pb.GetWebhookRequest(id=id))

    def list_webhooks(self, *, page_size: int = 0) -> List[pb.Webhook]:
        """Returns every webhook of the account, in creation order, fetching all pages."""
        return list(self.iter_webhooks(page_size=page_size))

    def iter_webhooks(self, *, page_size: int = 0) -> Iterator[pb.Webhook]:
        """Yields every webhook of the account, fetching one page at a time."""
        token = ""
        while True:
            page = self._unary(
                self.stub.ListWebhooks, pb.ListWebhooksRequest(page_size=page_size, page_token=token)
            )
            yield from page.webhooks
            token = page.next_page_token
            if not token:
                return

    def update_webhook(self, id: str, **fields: Any) -> pb.Webhook:
        """Sets the given fields (and only those: they form the update mask) of a webhook.

        ``client.update_webhook(hook.id, is_webhook_enabled=False, urls=[])`` disables the webhook
        and clears its extra urls; fields left out keep their values.
        """
        if not fields:
            raise ValueError("update_webhook needs at least one field")
        webhook = pb.Webhook(id=id, **fields)
        mask = field_mask_pb2.FieldMask(paths=sorted(fields))
        return self._unary(
            self.stub.UpdateWebhook, pb.UpdateWebhookRequest(webhook=webhook, update_mask=mask)
        )

    def delete_webhook(self, id: str) -> None:
        """Deletes a webhook and its delivery log."""
        self._unary(self.stub.DeleteWebhook, pb.DeleteWebhookRequest(id=id))

    def list_responses(self, webhook_id: str, *, page_size: int = 0) -> Iterator[pb.WebhookResponse]:
        """Yields every delivery attempt of a webhook, newest first, one page per request."""
        token = ""
        while True:
            page = self._unary(
                self.stub.ListResponses,
                pb.ListResponsesRequest(webhook_id=webhook_id, page_size=page_size, page_token=token),
            )
            yield from page.responses
            token = page.next_page_token
            if not token:
                return

    # --- events ---------------------------------------------------------------------------

    def emit_event(
        self,
        event_type: str,
        data: Optional[Mapping[str, Any]] = None,
        idempotency_key: Optional[str] = None,
        *,
        timeout: Optional[float] = None,
    ) -> Iterator[pb.DeliveryStatus]:
        """Emits an event and yields the DeliveryStatus stream until every delivery is final.

        The event is sent when iteration starts. The first status is always
        DELIVERY_STATE_ACCEPTED: the event is durable, with its ``event_id`` and
        ``matched_deliveries`` (0 when no webhook matched; the stream then ends). Then one
        DELIVERY_STATE_QUEUED (or SKIPPED) per delivery, then one status per attempt. Leaving
        the loop early cancels the stream, not the deliveries.
        """
        request = pb.EmitEventRequest(event_type=event_type, idempotency_key=idempotency_key or "")
        if data is not None:
            request.data.update(dict(data))
        call = self.stub.EmitEvent(request, metadata=self._metadata, timeout=timeout)
        try:
            for status in call:
                yield status
        except grpc.RpcError as err:
            raise WebhookdError.from_rpc_error(err) from None
        finally:
            call.cancel()

    def emit_events(self, events: Iterable[BatchEvent]) -> List[pb.EmittedEvent]:
        """Emits a batch of events (at most 1,000) in one call and returns once all are durable.

        Returns one ``EmittedEvent`` per event, in order: its ``event_id``, ``duplicate`` (the
        idempotency key named an earlier event) and the initial state of each delivery
        (``QUEUED``, or ``SKIPPED``); no statuses follow. An invalid event fails the whole batch
        with InvalidArgumentError, its field violations named ``events[i].field``, and nothing
        is emitted.

        >>> client.emit_events([
        ...     ("alert group created", {"alert_group": {"id": "AG1"}}),
        ...     {"event_type": "alert group resolved", "data": {"alert_group": {"id": "AG1"}},
        ...      "idempotency_key": "AG1-resolved"},
        ... ])
        """
        request = pb.EmitEventsRequest(events=[_batch_event(e) for e in events])
        return list(self._unary(self.stub.EmitEvents, request).results)


def _batch_event(event: BatchEvent) -> pb.EmitEventRequest:
    """One BatchEvent as an EmitEventRequest."""
    if isinstance(event, pb.EmitEventRequest):
        return event
    if isinstance(event, Mapping):
        unknown = set(event) - _BATCH_EVENT_KEYS
        if unknown:
            raise TypeError(f"emit_events: unknown event keys {sorted(unknown)}")
        event_type = event.get("event_type", "")
        data = event.get("data")
        idempotency_key = event.get("idempotency_key")
    elif isinstance(event, tuple) and len(event) in (2, 3):
        event_type, data = event[0], event[1]
        idempotency_key = event[2] if len(event) == 3 else None
    else:
        raise TypeError(
            "emit_events: an event is (event_type, data[, idempotency_key]), a dict or an "
            f"EmitEventRequest, not {event!r}"
        )
    request = pb.EmitEventRequest(event_type=event_type, idempotency_key=idempotency_key or "")
    if data is not None:
        request.data.update(dict(data))
    return request
