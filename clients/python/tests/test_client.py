"""WebhookdClient against a real webhookd (see conftest.py)."""

from __future__ import annotations

import json

import grpc
import pytest

from webhookd_client import (
    DeliveryState,
    EmittedEvent,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    UnauthenticatedError,
    WebhookdClient,
    WebhookdError,
    webhooks_pb2,
)

TRIGGER = "alert group created"
EVENT = {"alert_group": {"id": "AG1", "title": "Disk full"}}


def test_crud_roundtrip(client: WebhookdClient, receiver) -> None:
    hook = client.create_webhook(name="crud", url=receiver.url, trigger_type=TRIGGER)
    assert hook.id
    assert hook.name == "crud"
    assert hook.url == receiver.url
    # Create defaults (CONTRACT.md).
    assert hook.HasField("is_webhook_enabled") and hook.is_webhook_enabled
    assert hook.HasField("forward_all") and hook.forward_all
    assert hook.http_method == "POST"

    assert client.get_webhook(hook.id) == hook

    updated = client.update_webhook(hook.id, is_webhook_enabled=False, description="paused")
    assert updated.is_webhook_enabled is False
    assert updated.description == "paused"
    assert updated.url == receiver.url, "fields outside the mask keep their values"
    assert client.get_webhook(hook.id).is_webhook_enabled is False

    assert [h.id for h in client.list_webhooks()] == [hook.id]

    client.delete_webhook(hook.id)
    with pytest.raises(NotFoundError):
        client.get_webhook(hook.id)
    assert client.list_webhooks() == []


def test_list_webhooks_walks_every_page(client: WebhookdClient, receiver) -> None:
    ids = [client.create_webhook(name=f"page-{i}", url=receiver.url, trigger_type=TRIGGER).id for i in range(5)]
    assert [h.id for h in client.list_webhooks(page_size=2)] == ids
    first = client.stub.ListWebhooks(webhooks_pb2.ListWebhooksRequest(page_size=2), metadata=client.metadata)
    assert len(first.webhooks) == 2
    assert first.next_page_token
    assert first.total_size == 5


def test_emit_event_streams_delivery_statuses(client: WebhookdClient, receiver) -> None:
    hook = client.create_webhook(name="emit", url=receiver.url, trigger_type=TRIGGER)

    accepted, *statuses = list(client.emit_event(TRIGGER, EVENT))

    assert accepted.state == DeliveryState.DELIVERY_STATE_ACCEPTED
    assert accepted.event_id and accepted.matched_deliveries == 1
    assert statuses, "the stream ended without any delivery status"
    assert statuses[0].state == DeliveryState.DELIVERY_STATE_QUEUED
    assert statuses[0].webhook_id == hook.id
    last = statuses[-1]
    assert last.state == DeliveryState.DELIVERY_STATE_SUCCEEDED, statuses
    assert last.webhook_id == hook.id
    assert last.HasField("status_code") and last.status_code == 200
    assert last.attempt == 1
    assert {s.event_id for s in statuses} == {accepted.event_id}
    assert {s.delivery_id for s in statuses} == {statuses[0].delivery_id}

    (req,) = receiver.wait_for(1)
    assert req.method == "POST" and req.path == "/hook"
    body = json.loads(req.body)
    assert body["alert_group"] == EVENT["alert_group"]

    responses = list(client.list_responses(hook.id))
    assert len(responses) == 1
    assert responses[0].status_code == 200
    assert responses[0].delivery_id == last.delivery_id


def test_emit_event_without_match_tells_the_event_id_and_ends(client: WebhookdClient) -> None:
    (accepted,) = list(client.emit_event("nobody listens to this", EVENT))
    assert accepted.state == DeliveryState.DELIVERY_STATE_ACCEPTED
    assert accepted.event_id and accepted.matched_deliveries == 0


def test_emit_event_is_idempotent(client: WebhookdClient, receiver) -> None:
    client.create_webhook(name="idem", url=receiver.url, trigger_type=TRIGGER)
    first = list(client.emit_event(TRIGGER, EVENT, idempotency_key="k-1"))
    again = list(client.emit_event(TRIGGER, EVENT, idempotency_key="k-1"))
    assert first and again
    assert again[0].event_id == first[0].event_id
    receiver.wait_for(1)
    assert len(receiver.requests) == 1


def test_emit_events_returns_one_result_per_event_in_order(client: WebhookdClient, receiver) -> None:
    hook = client.create_webhook(name="batch", url=receiver.url, trigger_type=TRIGGER)
    events = [
        (TRIGGER, {"alert_group": {"id": "AG0"}}),
        (TRIGGER, {"alert_group": {"id": "AG1"}}, "batch-k-1"),
        {"event_type": TRIGGER, "data": {"alert_group": {"id": "AG2"}}, "idempotency_key": "batch-k-2"},
    ]

    results = client.emit_events(events)

    assert len(results) == 3
    assert all(isinstance(r, EmittedEvent) for r in results)
    assert len({r.event_id for r in results}) == 3
    for r in results:
        assert r.event_id and not r.duplicate
        (d,) = r.deliveries
        assert d.state == DeliveryState.DELIVERY_STATE_QUEUED
        assert d.webhook_id == hook.id
        assert d.event_id == r.event_id
        assert d.delivery_id and d.attempt == 0

    # In request order: the delivery of result i (webhook-id header) carries event i.
    requests = receiver.wait_for(3)
    sent = {
        {k.lower(): v for k, v in req.headers.items()}["webhook-id"]: json.loads(req.body)["alert_group"]["id"]
        for req in requests
    }
    assert [sent[r.deliveries[0].delivery_id] for r in results] == ["AG0", "AG1", "AG2"]

    again = client.emit_events(events[1:])
    assert [r.event_id for r in again] == [r.event_id for r in results[1:]]
    assert all(r.duplicate for r in again)


def test_emit_events_invalid_event_fails_the_batch(client: WebhookdClient, receiver) -> None:
    client.create_webhook(name="batch-bad", url=receiver.url, trigger_type=TRIGGER)
    with pytest.raises(InvalidArgumentError) as info:
        client.emit_events([(TRIGGER, EVENT), ("", EVENT), (TRIGGER, EVENT)])
    err = info.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert err.violation("events[1].event_type") is not None, err.field_violations
    assert err.violation("events[1].event_type").description
    # Nothing was emitted: the next event is the only one delivered.
    statuses = list(client.emit_event(TRIGGER, EVENT))
    assert statuses[-1].state == DeliveryState.DELIVERY_STATE_SUCCEEDED
    assert len(receiver.wait_for(1)) == 1


def test_list_responses_pages(client: WebhookdClient, receiver) -> None:
    hook = client.create_webhook(name="pages", url=receiver.url, trigger_type=TRIGGER)
    for i in range(3):
        statuses = list(client.emit_event(TRIGGER, {"alert_group": {"id": f"AG{i}"}}))
        assert statuses[-1].state == DeliveryState.DELIVERY_STATE_SUCCEEDED
    responses = list(client.list_responses(hook.id, page_size=2))
    assert len(responses) == 3
    assert all(r.status_code == 200 for r in responses)
    # Newest first.
    stamps = [r.timestamp.ToDatetime() for r in responses]
    assert stamps == sorted(stamps, reverse=True)
    assert json.loads(responses[0].event_data)["alert_group"]["id"] == "AG2"


def test_missing_url_is_invalid_argument_with_field_violation(client: WebhookdClient) -> None:
    with pytest.raises(InvalidArgumentError) as info:
        client.create_webhook(name="no-url", trigger_type=TRIGGER)
    err = info.value
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(err, WebhookdError)
    assert err.violation("url") is not None, err.field_violations
    assert err.violation("url").description


def test_other_accounts_webhook_is_not_found(new_client, receiver) -> None:
    mine, theirs = new_client(), new_client()
    hook = theirs.create_webhook(name="theirs", url=receiver.url, trigger_type=TRIGGER)
    with pytest.raises(NotFoundError) as info:
        mine.get_webhook(hook.id)
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    with pytest.raises(NotFoundError):
        mine.update_webhook(hook.id, name="stolen")
    with pytest.raises(NotFoundError):
        mine.delete_webhook(hook.id)
    with pytest.raises(NotFoundError):
        list(mine.list_responses(hook.id))
    assert mine.list_webhooks() == []
    assert theirs.get_webhook(hook.id).name == "theirs"


def test_bad_token_is_unauthenticated(server) -> None:
    with WebhookdClient(server.grpc_addr, "not-a-token") as c:
        with pytest.raises(UnauthenticatedError) as info:
            c.list_webhooks()
    assert info.value.code == grpc.StatusCode.UNAUTHENTICATED


def test_read_scope_cannot_write(new_client, receiver) -> None:
    reader = new_client(scopes=["webhooks:read"])
    assert reader.list_webhooks() == []
    with pytest.raises(PermissionDeniedError):
        reader.create_webhook(name="nope", url=receiver.url, trigger_type=TRIGGER)


def test_watch_deliveries_resumes_from_the_last_cursor_and_health_counts_the_attempt(
    client: WebhookdClient, receiver
) -> None:
    hook = client.create_webhook(name="tail", url=receiver.url, trigger_type=TRIGGER)
    pb = webhooks_pb2
    tail = client.stub.WatchDeliveries(pb.WatchDeliveriesRequest(webhook_id=hook.id), metadata=client.metadata)
    tail.initial_metadata()  # the server answered: the tail follows changes from now on
    list(client.emit_event(TRIGGER, EVENT))
    queued, succeeded = next(tail), next(tail)
    tail.cancel()
    assert [DeliveryState.Name(s.state) for s in (queued, succeeded)] == [
        "DELIVERY_STATE_QUEUED",
        "DELIVERY_STATE_SUCCEEDED",
    ]
    assert queued.delivery_id == succeeded.delivery_id and queued.cursor != succeeded.cursor

    # Reconnecting with the cursor of QUEUED brings what came after it, nothing before.
    resumed = client.stub.WatchDeliveries(
        pb.WatchDeliveriesRequest(webhook_id=hook.id, cursor=queued.cursor), metadata=client.metadata
    )
    again = next(resumed)
    resumed.cancel()
    assert (again.delivery_id, again.state, again.cursor) == (
        succeeded.delivery_id,
        succeeded.state,
        succeeded.cursor,
    )

    health = client.stub.GetWebhookHealth(pb.GetWebhookHealthRequest(webhook_id=hook.id), metadata=client.metadata)
    assert health.breaker_state == pb.BREAKER_STATE_CLOSED
    assert health.HasField("last_success_at") and not health.HasField("failing_since")
    assert (health.last_day.succeeded, health.last_day.failed) == (1, 0)
    assert len(health.hourly) == 24 and health.hourly[-1] == health.last_hour


def test_watch_deliveries_and_health_refuse_bad_input(client: WebhookdClient) -> None:
    pb = webhooks_pb2
    with pytest.raises(grpc.RpcError) as raised:
        next(client.stub.WatchDeliveries(pb.WatchDeliveriesRequest(cursor="nope"), metadata=client.metadata))
    err = WebhookdError.from_rpc_error(raised.value)
    assert isinstance(err, InvalidArgumentError)
    assert [v.field for v in err.field_violations] == ["cursor"]
    with pytest.raises(grpc.RpcError) as raised:
        client.stub.GetWebhookHealth(pb.GetWebhookHealthRequest(webhook_id="W0000000000000"), metadata=client.metadata)
    assert isinstance(WebhookdError.from_rpc_error(raised.value), NotFoundError)
