import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import field_mask_pb2 as _field_mask_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from webhookd_client._gen.webhooks.v1 import event_types_pb2 as _event_types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FilterOperator(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FILTER_OPERATOR_UNSPECIFIED: _ClassVar[FilterOperator]
    FILTER_OPERATOR_AND: _ClassVar[FilterOperator]
    FILTER_OPERATOR_OR: _ClassVar[FilterOperator]

class ConditionOp(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONDITION_OP_UNSPECIFIED: _ClassVar[ConditionOp]
    CONDITION_OP_EQUALS: _ClassVar[ConditionOp]
    CONDITION_OP_NOT_EQUALS: _ClassVar[ConditionOp]
    CONDITION_OP_CONTAINS: _ClassVar[ConditionOp]
    CONDITION_OP_REGEX: _ClassVar[ConditionOp]
    CONDITION_OP_EXISTS: _ClassVar[ConditionOp]
    CONDITION_OP_IN: _ClassVar[ConditionOp]

class DeliveryState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DELIVERY_STATE_UNSPECIFIED: _ClassVar[DeliveryState]
    DELIVERY_STATE_QUEUED: _ClassVar[DeliveryState]
    DELIVERY_STATE_RETRYING: _ClassVar[DeliveryState]
    DELIVERY_STATE_SUCCEEDED: _ClassVar[DeliveryState]
    DELIVERY_STATE_FAILED: _ClassVar[DeliveryState]
    DELIVERY_STATE_SKIPPED: _ClassVar[DeliveryState]
    DELIVERY_STATE_ACCEPTED: _ClassVar[DeliveryState]
    DELIVERY_STATE_CANCELLED: _ClassVar[DeliveryState]
    DELIVERY_STATE_RESYNC: _ClassVar[DeliveryState]

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]
FILTER_OPERATOR_UNSPECIFIED: FilterOperator
FILTER_OPERATOR_AND: FilterOperator
FILTER_OPERATOR_OR: FilterOperator
CONDITION_OP_UNSPECIFIED: ConditionOp
CONDITION_OP_EQUALS: ConditionOp
CONDITION_OP_NOT_EQUALS: ConditionOp
CONDITION_OP_CONTAINS: ConditionOp
CONDITION_OP_REGEX: ConditionOp
CONDITION_OP_EXISTS: ConditionOp
CONDITION_OP_IN: ConditionOp
DELIVERY_STATE_UNSPECIFIED: DeliveryState
DELIVERY_STATE_QUEUED: DeliveryState
DELIVERY_STATE_RETRYING: DeliveryState
DELIVERY_STATE_SUCCEEDED: DeliveryState
DELIVERY_STATE_FAILED: DeliveryState
DELIVERY_STATE_SKIPPED: DeliveryState
DELIVERY_STATE_ACCEPTED: DeliveryState
DELIVERY_STATE_CANCELLED: DeliveryState
DELIVERY_STATE_RESYNC: DeliveryState
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState

class Webhook(_message.Message):
    __slots__ = ("id", "name", "is_webhook_enabled", "team", "data", "username", "password", "authorization_header", "trigger_template", "headers", "url", "forward_all", "http_method", "trigger_type", "integration_filter", "description", "trigger_types", "urls", "filters", "destination_type", "secret", "signing_secret", "retry_schedule", "template_engine", "custom_headers", "created_at", "last_success", "last_failure", "disabled_reason", "max_attempts", "schedule_filter", "signing_public_key", "client_certificate", "client_key", "ca_certificates", "rate_limit_per_second", "rate_limit_burst")
    class CustomHeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    IS_WEBHOOK_ENABLED_FIELD_NUMBER: _ClassVar[int]
    TEAM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    AUTHORIZATION_HEADER_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    FORWARD_ALL_FIELD_NUMBER: _ClassVar[int]
    HTTP_METHOD_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_TYPE_FIELD_NUMBER: _ClassVar[int]
    INTEGRATION_FILTER_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_TYPES_FIELD_NUMBER: _ClassVar[int]
    URLS_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    DESTINATION_TYPE_FIELD_NUMBER: _ClassVar[int]
    SECRET_FIELD_NUMBER: _ClassVar[int]
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    RETRY_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_ENGINE_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_HEADERS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_FILTER_FIELD_NUMBER: _ClassVar[int]
    SIGNING_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    CLIENT_CERTIFICATE_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATES_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_BURST_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    is_webhook_enabled: bool
    team: str
    data: str
    username: str
    password: str
    authorization_header: str
    trigger_template: str
    headers: str
    url: str
    forward_all: bool
    http_method: str
    trigger_type: str
    integration_filter: _containers.RepeatedScalarFieldContainer[str]
    description: str
    trigger_types: _containers.RepeatedScalarFieldContainer[str]
    urls: _containers.RepeatedScalarFieldContainer[str]
    filters: FilterGroup
    destination_type: str
    secret: str
    signing_secret: str
    retry_schedule: _containers.RepeatedScalarFieldContainer[str]
    template_engine: str
    custom_headers: _containers.ScalarMap[str, str]
    created_at: _timestamp_pb2.Timestamp
    last_success: _timestamp_pb2.Timestamp
    last_failure: _timestamp_pb2.Timestamp
    disabled_reason: str
    max_attempts: int
    schedule_filter: _containers.RepeatedScalarFieldContainer[str]
    signing_public_key: str
    client_certificate: str
    client_key: str
    ca_certificates: _containers.RepeatedScalarFieldContainer[str]
    rate_limit_per_second: int
    rate_limit_burst: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., is_webhook_enabled: _Optional[bool] = ..., team: _Optional[str] = ..., data: _Optional[str] = ..., username: _Optional[str] = ..., password: _Optional[str] = ..., authorization_header: _Optional[str] = ..., trigger_template: _Optional[str] = ..., headers: _Optional[str] = ..., url: _Optional[str] = ..., forward_all: _Optional[bool] = ..., http_method: _Optional[str] = ..., trigger_type: _Optional[str] = ..., integration_filter: _Optional[_Iterable[str]] = ..., description: _Optional[str] = ..., trigger_types: _Optional[_Iterable[str]] = ..., urls: _Optional[_Iterable[str]] = ..., filters: _Optional[_Union[FilterGroup, _Mapping]] = ..., destination_type: _Optional[str] = ..., secret: _Optional[str] = ..., signing_secret: _Optional[str] = ..., retry_schedule: _Optional[_Iterable[str]] = ..., template_engine: _Optional[str] = ..., custom_headers: _Optional[_Mapping[str, str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_success: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_failure: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., disabled_reason: _Optional[str] = ..., max_attempts: _Optional[int] = ..., schedule_filter: _Optional[_Iterable[str]] = ..., signing_public_key: _Optional[str] = ..., client_certificate: _Optional[str] = ..., client_key: _Optional[str] = ..., ca_certificates: _Optional[_Iterable[str]] = ..., rate_limit_per_second: _Optional[int] = ..., rate_limit_burst: _Optional[int] = ...) -> None: ...

class FilterGroup(_message.Message):
    __slots__ = ("operator", "conditions", "groups")
    OPERATOR_FIELD_NUMBER: _ClassVar[int]
    CONDITIONS_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    operator: FilterOperator
    conditions: _containers.RepeatedCompositeFieldContainer[FilterCondition]
    groups: _containers.RepeatedCompositeFieldContainer[FilterGroup]
    def __init__(self, operator: _Optional[_Union[FilterOperator, str]] = ..., conditions: _Optional[_Iterable[_Union[FilterCondition, _Mapping]]] = ..., groups: _Optional[_Iterable[_Union[FilterGroup, _Mapping]]] = ...) -> None: ...

class FilterCondition(_message.Message):
    __slots__ = ("field", "op", "value")
    FIELD_FIELD_NUMBER: _ClassVar[int]
    OP_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    field: str
    op: ConditionOp
    value: _struct_pb2.Value
    def __init__(self, field: _Optional[str] = ..., op: _Optional[_Union[ConditionOp, str]] = ..., value: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class CreateWebhookRequest(_message.Message):
    __slots__ = ("webhook",)
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    webhook: Webhook
    def __init__(self, webhook: _Optional[_Union[Webhook, _Mapping]] = ...) -> None: ...

class GetWebhookRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListWebhooksRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListWebhooksResponse(_message.Message):
    __slots__ = ("webhooks", "next_page_token", "total_size")
    WEBHOOKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    webhooks: _containers.RepeatedCompositeFieldContainer[Webhook]
    next_page_token: str
    total_size: int
    def __init__(self, webhooks: _Optional[_Iterable[_Union[Webhook, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., total_size: _Optional[int] = ...) -> None: ...

class UpdateWebhookRequest(_message.Message):
    __slots__ = ("webhook", "update_mask")
    WEBHOOK_FIELD_NUMBER: _ClassVar[int]
    UPDATE_MASK_FIELD_NUMBER: _ClassVar[int]
    webhook: Webhook
    update_mask: _field_mask_pb2.FieldMask
    def __init__(self, webhook: _Optional[_Union[Webhook, _Mapping]] = ..., update_mask: _Optional[_Union[_field_mask_pb2.FieldMask, _Mapping]] = ...) -> None: ...

class DeleteWebhookRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListResponsesRequest(_message.Message):
    __slots__ = ("webhook_id", "page_size", "page_token")
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    webhook_id: str
    page_size: int
    page_token: str
    def __init__(self, webhook_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListResponsesResponse(_message.Message):
    __slots__ = ("responses", "next_page_token")
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[WebhookResponse]
    next_page_token: str
    def __init__(self, responses: _Optional[_Iterable[_Union[WebhookResponse, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class WebhookResponse(_message.Message):
    __slots__ = ("timestamp", "url", "request_trigger", "request_headers", "request_data", "status_code", "content", "event_data", "attempt", "delivery_id", "duration_ms", "error", "event_id")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    REQUEST_TRIGGER_FIELD_NUMBER: _ClassVar[int]
    REQUEST_HEADERS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_DATA_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    EVENT_DATA_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    timestamp: _timestamp_pb2.Timestamp
    url: str
    request_trigger: str
    request_headers: str
    request_data: str
    status_code: int
    content: str
    event_data: str
    attempt: int
    delivery_id: str
    duration_ms: int
    error: str
    event_id: str
    def __init__(self, timestamp: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., url: _Optional[str] = ..., request_trigger: _Optional[str] = ..., request_headers: _Optional[str] = ..., request_data: _Optional[str] = ..., status_code: _Optional[int] = ..., content: _Optional[str] = ..., event_data: _Optional[str] = ..., attempt: _Optional[int] = ..., delivery_id: _Optional[str] = ..., duration_ms: _Optional[int] = ..., error: _Optional[str] = ..., event_id: _Optional[str] = ...) -> None: ...

class EmitEventRequest(_message.Message):
    __slots__ = ("event_type", "data", "idempotency_key", "ordering_key")
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    ORDERING_KEY_FIELD_NUMBER: _ClassVar[int]
    event_type: str
    data: _struct_pb2.Struct
    idempotency_key: str
    ordering_key: str
    def __init__(self, event_type: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., idempotency_key: _Optional[str] = ..., ordering_key: _Optional[str] = ...) -> None: ...

class EmitEventsRequest(_message.Message):
    __slots__ = ("events",)
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[EmitEventRequest]
    def __init__(self, events: _Optional[_Iterable[_Union[EmitEventRequest, _Mapping]]] = ...) -> None: ...

class EmitEventsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[EmittedEvent]
    def __init__(self, results: _Optional[_Iterable[_Union[EmittedEvent, _Mapping]]] = ...) -> None: ...

class EmittedEvent(_message.Message):
    __slots__ = ("event_id", "duplicate", "deliveries")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    duplicate: bool
    deliveries: _containers.RepeatedCompositeFieldContainer[DeliveryStatus]
    def __init__(self, event_id: _Optional[str] = ..., duplicate: _Optional[bool] = ..., deliveries: _Optional[_Iterable[_Union[DeliveryStatus, _Mapping]]] = ...) -> None: ...

class DeliveryStatus(_message.Message):
    __slots__ = ("event_id", "webhook_id", "delivery_id", "state", "attempt", "status_code", "error", "next_attempt_at", "url", "matched_deliveries", "cursor")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    MATCHED_DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    webhook_id: str
    delivery_id: str
    state: DeliveryState
    attempt: int
    status_code: int
    error: str
    next_attempt_at: _timestamp_pb2.Timestamp
    url: str
    matched_deliveries: int
    cursor: str
    def __init__(self, event_id: _Optional[str] = ..., webhook_id: _Optional[str] = ..., delivery_id: _Optional[str] = ..., state: _Optional[_Union[DeliveryState, str]] = ..., attempt: _Optional[int] = ..., status_code: _Optional[int] = ..., error: _Optional[str] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., url: _Optional[str] = ..., matched_deliveries: _Optional[int] = ..., cursor: _Optional[str] = ...) -> None: ...

class WatchDeliveriesRequest(_message.Message):
    __slots__ = ("webhook_id", "states", "cursor")
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    webhook_id: str
    states: _containers.RepeatedScalarFieldContainer[DeliveryState]
    cursor: str
    def __init__(self, webhook_id: _Optional[str] = ..., states: _Optional[_Iterable[_Union[DeliveryState, str]]] = ..., cursor: _Optional[str] = ...) -> None: ...

class RedeliverDeliveryRequest(_message.Message):
    __slots__ = ("delivery_id",)
    DELIVERY_ID_FIELD_NUMBER: _ClassVar[int]
    delivery_id: str
    def __init__(self, delivery_id: _Optional[str] = ...) -> None: ...

class RedeliverFailedRequest(_message.Message):
    __slots__ = ("webhook_id", "since")
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    webhook_id: str
    since: _timestamp_pb2.Timestamp
    def __init__(self, webhook_id: _Optional[str] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RedeliverResponse(_message.Message):
    __slots__ = ("delivery_ids",)
    DELIVERY_IDS_FIELD_NUMBER: _ClassVar[int]
    delivery_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, delivery_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RotateSigningSecretRequest(_message.Message):
    __slots__ = ("webhook_id",)
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    webhook_id: str
    def __init__(self, webhook_id: _Optional[str] = ...) -> None: ...

class RotateSigningSecretResponse(_message.Message):
    __slots__ = ("signing_secret", "signing_public_key")
    SIGNING_SECRET_FIELD_NUMBER: _ClassVar[int]
    SIGNING_PUBLIC_KEY_FIELD_NUMBER: _ClassVar[int]
    signing_secret: str
    signing_public_key: str
    def __init__(self, signing_secret: _Optional[str] = ..., signing_public_key: _Optional[str] = ...) -> None: ...

class GetWebhookHealthRequest(_message.Message):
    __slots__ = ("webhook_id",)
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    webhook_id: str
    def __init__(self, webhook_id: _Optional[str] = ...) -> None: ...

class HealthBucket(_message.Message):
    __slots__ = ("start_time", "succeeded", "failed")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    SUCCEEDED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    succeeded: int
    failed: int
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., succeeded: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...

class WebhookHealth(_message.Message):
    __slots__ = ("webhook_id", "is_webhook_enabled", "disabled_reason", "last_success_at", "last_failure_at", "failing_since", "breaker_state", "pending_count", "last_hour", "last_day", "hourly")
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    IS_WEBHOOK_ENABLED_FIELD_NUMBER: _ClassVar[int]
    DISABLED_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_SUCCESS_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_FAILURE_AT_FIELD_NUMBER: _ClassVar[int]
    FAILING_SINCE_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    LAST_HOUR_FIELD_NUMBER: _ClassVar[int]
    LAST_DAY_FIELD_NUMBER: _ClassVar[int]
    HOURLY_FIELD_NUMBER: _ClassVar[int]
    webhook_id: str
    is_webhook_enabled: bool
    disabled_reason: str
    last_success_at: _timestamp_pb2.Timestamp
    last_failure_at: _timestamp_pb2.Timestamp
    failing_since: _timestamp_pb2.Timestamp
    breaker_state: BreakerState
    pending_count: int
    last_hour: HealthBucket
    last_day: HealthBucket
    hourly: _containers.RepeatedCompositeFieldContainer[HealthBucket]
    def __init__(self, webhook_id: _Optional[str] = ..., is_webhook_enabled: _Optional[bool] = ..., disabled_reason: _Optional[str] = ..., last_success_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_failure_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., failing_since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., breaker_state: _Optional[_Union[BreakerState, str]] = ..., pending_count: _Optional[int] = ..., last_hour: _Optional[_Union[HealthBucket, _Mapping]] = ..., last_day: _Optional[_Union[HealthBucket, _Mapping]] = ..., hourly: _Optional[_Iterable[_Union[HealthBucket, _Mapping]]] = ...) -> None: ...

class Event(_message.Message):
    __slots__ = ("id", "event_type", "data", "created_at", "deliveries")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    id: str
    event_type: str
    data: _struct_pb2.Struct
    created_at: _timestamp_pb2.Timestamp
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    def __init__(self, id: _Optional[str] = ..., event_type: _Optional[str] = ..., data: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ...) -> None: ...

class Delivery(_message.Message):
    __slots__ = ("id", "event_id", "webhook_id", "url", "state", "attempts", "next_attempt_at", "last_status_code", "last_error", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_STATUS_CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    event_id: str
    webhook_id: str
    url: str
    state: DeliveryState
    attempts: int
    next_attempt_at: _timestamp_pb2.Timestamp
    last_status_code: int
    last_error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., event_id: _Optional[str] = ..., webhook_id: _Optional[str] = ..., url: _Optional[str] = ..., state: _Optional[_Union[DeliveryState, str]] = ..., attempts: _Optional[int] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_status_code: _Optional[int] = ..., last_error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetEventRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListEventsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "event_type", "created_after", "created_before")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EVENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    event_type: str
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., event_type: _Optional[str] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[Event]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[Event, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class GetDeliveryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListDeliveriesRequest(_message.Message):
    __slots__ = ("webhook_id", "states", "created_after", "created_before", "page_size", "page_token")
    WEBHOOK_ID_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AFTER_FIELD_NUMBER: _ClassVar[int]
    CREATED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    webhook_id: str
    states: _containers.RepeatedScalarFieldContainer[DeliveryState]
    created_after: _timestamp_pb2.Timestamp
    created_before: _timestamp_pb2.Timestamp
    page_size: int
    page_token: str
    def __init__(self, webhook_id: _Optional[str] = ..., states: _Optional[_Iterable[_Union[DeliveryState, str]]] = ..., created_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., created_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeliveriesResponse(_message.Message):
    __slots__ = ("deliveries", "next_page_token")
    DELIVERIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    deliveries: _containers.RepeatedCompositeFieldContainer[Delivery]
    next_page_token: str
    def __init__(self, deliveries: _Optional[_Iterable[_Union[Delivery, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelDeliveryRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...
