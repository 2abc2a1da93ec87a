"""A thin, typed wrapper around the generated WebhookService stub.

It sends the account token on every call, walks pages for you and turns ``grpc.RpcError`` into
:class:`~webhookd_client.errors.WebhookdError`. The generated stub stays reachable as
``client.stub`` for anything the wrapper does not cover.
"""

from __future__ import annotations

from typing import Any, Iterator, List, Mapping, Optional, Sequence, Tuple, TypeVar

import grpc
from google.protobuf import field_mask_pb2

from ._gen.webhooks.v1 import webhooks_pb2 as pb
from ._gen.webhooks.v1 import webhooks_pb2_grpc as pb_grpc
from .errors import WebhookdError

__all__ = ["WebhookdClient"]

_T = TypeVar("_T")

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

        The event is sent when iteration starts. The first status of each matched webhook
        (DELIVERY_STATE_QUEUED) means the event is durable. Leaving the loop early cancels the
        stream, not the deliveries.
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
