"""Error mapping, without a server: a fake call carrying grpc-status-details-bin."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from webhookd_client import InvalidArgumentError, NotFoundError, WebhookdError


class FakeCall(grpc.RpcError, grpc.Call):
    def __init__(self, code: grpc.StatusCode, details: str, trailers=()):
        self._code, self._details, self._trailers = code, details, tuple(trailers)

    def code(self):
        return self._code

    def details(self):
        return self._details

    def trailing_metadata(self):
        return self._trailers

    def initial_metadata(self):
        return ()

    def is_active(self):
        return False

    def time_remaining(self):
        return None

    def cancel(self):
        return False

    def add_callback(self, callback):
        return False


def test_bad_request_violations_are_decoded() -> None:
    bad = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field="url", description="required"),
            error_details_pb2.BadRequest.FieldViolation(field="name", description="too long"),
        ]
    )
    detail = any_pb2.Any()
    detail.Pack(bad)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message="invalid webhook", details=[detail])
    call = FakeCall(
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid webhook",
        [("grpc-status-details-bin", status.SerializeToString())],
    )

    err = WebhookdError.from_rpc_error(call)

    assert isinstance(err, InvalidArgumentError)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.message == "invalid webhook"
    assert [(v.field, v.description) for v in err.field_violations] == [("url", "required"), ("name", "too long")]
    assert err.violation("url").description == "required"
    assert "url: required" in str(err)


def test_error_without_details() -> None:
    err = WebhookdError.from_rpc_error(FakeCall(grpc.StatusCode.NOT_FOUND, "webhook not found"))
    assert isinstance(err, NotFoundError)
    assert err.field_violations == ()
    assert err.status is None
    assert str(err) == "NOT_FOUND: webhook not found"


def test_unknown_code_maps_to_base_class() -> None:
    err = WebhookdError.from_rpc_error(FakeCall(grpc.StatusCode.INTERNAL, "boom"))
    assert type(err) is WebhookdError
    assert err.code == grpc.StatusCode.INTERNAL


def test_garbage_details_are_ignored() -> None:
    call = FakeCall(grpc.StatusCode.INVALID_ARGUMENT, "bad", [("grpc-status-details-bin", b"\xff\xff\xff")])
    err = WebhookdError.from_rpc_error(call)
    assert isinstance(err, InvalidArgumentError)
    assert err.field_violations == ()
