"""Errors raised by :class:`webhookd_client.WebhookdClient`.

Every failed call raises a :class:`WebhookdError` (or one of its subclasses, chosen by the gRPC
status code) carrying the code, the message and the ``google.rpc.BadRequest`` field violations
that webhookd puts in the ``grpc-status-details-bin`` trailer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple, Type

import grpc
from google.protobuf import message as _message
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

__all__ = [
    "FieldViolation",
    "WebhookdError",
    "InvalidArgumentError",
    "NotFoundError",
    "AlreadyExistsError",
    "PermissionDeniedError",
    "UnauthenticatedError",
    "ResourceExhaustedError",
    "UnavailableError",
]


@dataclass(frozen=True)
class FieldViolation:
    """One invalid field of a request (``google.rpc.BadRequest.FieldViolation``)."""

    field: str
    """Path of the field, e.g. ``"url"`` or ``"filters.conditions[0].field"``."""
    description: str
    """Why the value is invalid."""
    reason: str = ""


class WebhookdError(Exception):
    """A gRPC call to webhookd failed.

    Attributes:
        code: the gRPC status code, e.g. ``grpc.StatusCode.NOT_FOUND``.
        message: the status message.
        field_violations: the BadRequest field violations (INVALID_ARGUMENT), else empty.
        reason: the ``google.rpc.ErrorInfo`` reason (auth errors), else ``""``.
        status: the decoded ``google.rpc.Status``, when the server sent one.
    """

    code: grpc.StatusCode
    message: str
    field_violations: Tuple[FieldViolation, ...]
    reason: str
    status: Optional[status_pb2.Status]

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        field_violations: Tuple[FieldViolation, ...] = (),
        reason: str = "",
        status: Optional[status_pb2.Status] = None,
    ) -> None:
        text = f"{code.name}: {message}"
        # webhookd's messages usually list the violations already.
        if field_violations and not all(f"{v.field}: {v.description}" in message for v in field_violations):
            text += " (" + "; ".join(f"{v.field}: {v.description}" for v in field_violations) + ")"
        super().__init__(text)
        self.code = code
        self.message = message
        self.field_violations = tuple(field_violations)
        self.reason = reason
        self.status = status

    def violation(self, field: str) -> Optional[FieldViolation]:
        """The violation of ``field``, or None."""
        for v in self.field_violations:
            if v.field == field:
                return v
        return None

    @staticmethod
    def from_rpc_error(err: grpc.RpcError) -> "WebhookdError":
        """Converts a ``grpc.RpcError`` (which is also a ``grpc.Call``) into the matching subclass."""
        code = err.code() if callable(getattr(err, "code", None)) else grpc.StatusCode.UNKNOWN
        message = (err.details() if callable(getattr(err, "details", None)) else None) or ""
        if code is None:
            code = grpc.StatusCode.UNKNOWN
        status: Optional[status_pb2.Status] = None
        try:
            status = rpc_status.from_call(err)  # type: ignore[arg-type]
        except (ValueError, AttributeError, _message.DecodeError):
            status = None
        violations: list[FieldViolation] = []
        reason = ""
        if status is not None:
            message = status.message or message
            for detail in status.details:
                if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest()
                    detail.Unpack(bad)
                    violations.extend(
                        FieldViolation(v.field, v.description, v.reason) for v in bad.field_violations
                    )
                elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    reason = info.reason
        cls = _BY_CODE.get(code, WebhookdError)
        return cls(code, message, tuple(violations), reason, status)


class InvalidArgumentError(WebhookdError):
    """INVALID_ARGUMENT: see ``field_violations``."""


class NotFoundError(WebhookdError):
    """NOT_FOUND: no such webhook in the caller's account."""


class AlreadyExistsError(WebhookdError):
    """ALREADY_EXISTS, e.g. a webhook name already used in the account."""


class PermissionDeniedError(WebhookdError):
    """PERMISSION_DENIED: the token lacks the scope the call needs."""


class UnauthenticatedError(WebhookdError):
    """UNAUTHENTICATED: missing, unknown or revoked token."""


class ResourceExhaustedError(WebhookdError):
    """RESOURCE_EXHAUSTED: a limit was hit."""


class UnavailableError(WebhookdError):
    """UNAVAILABLE: the server cannot be reached."""


_BY_CODE: Dict[grpc.StatusCode, Type[WebhookdError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
}
