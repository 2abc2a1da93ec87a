"""Python client for webhookd (``webhooks.v1`` over gRPC).

>>> from webhookd_client import WebhookdClient, DeliveryState
>>> client = WebhookdClient("127.0.0.1:50051", token="...")

The generated messages are re-exported here (``Webhook``, ``DeliveryStatus``, ...); the raw
modules are ``webhookd_client.webhooks_pb2``, ``webhooks_pb2_grpc``, ``admin_pb2`` and
``admin_pb2_grpc``.
"""

from ._gen.webhooks.v1 import admin_pb2, admin_pb2_grpc, webhooks_pb2, webhooks_pb2_grpc
from ._gen.webhooks.v1.webhooks_pb2 import (
    ConditionOp,
    DeliveryState,
    DeliveryStatus,
    EmittedEvent,
    FilterCondition,
    FilterGroup,
    FilterOperator,
    Webhook,
    WebhookResponse,
)
from .client import BatchEvent, WebhookdClient
from .errors import (
    AlreadyExistsError,
    FieldViolation,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    ResourceExhaustedError,
    UnauthenticatedError,
    UnavailableError,
    WebhookdError,
)

__version__ = "0.1.0"

__all__ = [
    "WebhookdClient",
    "BatchEvent",
    "WebhookdError",
    "FieldViolation",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "ResourceExhaustedError",
    "UnavailableError",
    "Webhook",
    "WebhookResponse",
    "DeliveryStatus",
    "DeliveryState",
    "EmittedEvent",
    "FilterGroup",
    "FilterCondition",
    "FilterOperator",
    "ConditionOp",
    "webhooks_pb2",
    "webhooks_pb2_grpc",
    "admin_pb2",
    "admin_pb2_grpc",
]
