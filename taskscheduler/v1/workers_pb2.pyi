import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from taskscheduler.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListWorkersRequest(_message.Message):
    __slots__ = ("limit", "offset")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    limit: int
    offset: int
    def __init__(self, limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ListWorkersResponse(_message.Message):
    __slots__ = ("workers", "pagination")
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    PAGINATION_FIELD_NUMBER: _ClassVar[int]
    workers: _containers.RepeatedCompositeFieldContainer[_types_pb2.Worker]
    pagination: _types_pb2.Pagination
    def __init__(self, workers: _Optional[_Iterable[_Union[_types_pb2.Worker, _Mapping]]] = ..., pagination: _Optional[_Union[_types_pb2.Pagination, _Mapping]] = ...) -> None: ...

class GetWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class GetWorkerResponse(_message.Message):
    __slots__ = ("worker",)
    WORKER_FIELD_NUMBER: _ClassVar[int]
    worker: _types_pb2.Worker
    def __init__(self, worker: _Optional[_Union[_types_pb2.Worker, _Mapping]] = ...) -> None: ...

class RegisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id", "hostname", "capabilities", "labels", "max_concurrent", "version")
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    MAX_CONCURRENT_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    hostname: str
    capabilities: _containers.RepeatedScalarFieldContainer[str]
    labels: _containers.ScalarMap[str, str]
    max_concurrent: int
    version: str
    def __init__(self, worker_id: _Optional[str] = ..., hostname: _Optional[str] = ..., capabilities: _Optional[_Iterable[str]] = ..., labels: _Optional[_Mapping[str, str]] = ..., max_concurrent: _Optional[int] = ..., version: _Optional[str] = ...) -> None: ...

class RegisterWorkerResponse(_message.Message):
    __slots__ = ("worker", "heartbeat_interval_ms", "lease_ttl_ms")
    WORKER_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    worker: _types_pb2.Worker
    heartbeat_interval_ms: int
    lease_ttl_ms: int
    def __init__(self, worker: _Optional[_Union[_types_pb2.Worker, _Mapping]] = ..., heartbeat_interval_ms: _Optional[int] = ..., lease_ttl_ms: _Optional[int] = ...) -> None: ...

class DeregisterWorkerRequest(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class DeregisterWorkerResponse(_message.Message):
    __slots__ = ("worker_id",)
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    def __init__(self, worker_id: _Optional[str] = ...) -> None: ...

class LeaseRef(_message.Message):
    __slots__ = ("run_id", "attempt", "fencing_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    attempt: int
    fencing_token: int
    def __init__(self, run_id: _Optional[str] = ..., attempt: _Optional[int] = ..., fencing_token: _Optional[int] = ...) -> None: ...

class HeartbeatRequest(_message.Message):
    __slots__ = ("worker_id", "leases")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASES_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    leases: _containers.RepeatedCompositeFieldContainer[LeaseRef]
    def __init__(self, worker_id: _Optional[str] = ..., leases: _Optional[_Iterable[_Union[LeaseRef, _Mapping]]] = ...) -> None: ...

class HeartbeatResponse(_message.Message):
    __slots__ = ("revoked", "lease_ttl_ms", "known")
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    revoked: _containers.RepeatedCompositeFieldContainer[LeaseRef]
    lease_ttl_ms: int
    known: bool
    def __init__(self, revoked: _Optional[_Iterable[_Union[LeaseRef, _Mapping]]] = ..., lease_ttl_ms: _Optional[int] = ..., known: _Optional[bool] = ...) -> None: ...

class PollWorkRequest(_message.Message):
    __slots__ = ("worker_id", "max_assignments", "wait_timeout_ms", "accepts_start_at")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    MAX_ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    WAIT_TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_START_AT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    max_assignments: int
    wait_timeout_ms: int
    accepts_start_at: bool
    def __init__(self, worker_id: _Optional[str] = ..., max_assignments: _Optional[int] = ..., wait_timeout_ms: _Optional[int] = ..., accepts_start_at: _Optional[bool] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("run_id", "job_id", "job_name", "attempt", "fencing_token", "executor", "payload", "timeout", "scheduled_at", "lease_ttl_ms", "start_at")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_NAME_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    FENCING_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXECUTOR_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    LEASE_TTL_MS_FIELD_NUMBER: _ClassVar[int]
    START_AT_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    job_id: str
    job_name: str
    attempt: int
    fencing_token: int
    executor: str
    payload: _struct_pb2.Struct
    timeout: int
    scheduled_at: _timestamp_pb2.Timestamp
    lease_ttl_ms: int
    start_at: _timestamp_pb2.Timestamp
    def __init__(self, run_id: _Optional[str] = ..., job_id: _Optional[str] = ..., job_name: _Optional[str] = ..., attempt: _Optional[int] = ..., fencing_token: _Optional[int] = ..., executor: _Optional[str] = ..., payload: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., timeout: _Optional[int] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lease_ttl_ms: _Optional[int] = ..., start_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class PollWorkResponse(_message.Message):
    __slots__ = ("assignments", "revoked")
    ASSIGNMENTS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_FIELD_NUMBER: _ClassVar[int]
    assignments: _containers.RepeatedCompositeFieldContainer[Assignment]
    revoked: _containers.RepeatedCompositeFieldContainer[LeaseRef]
    def __init__(self, assignments: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ..., revoked: _Optional[_Iterable[_Union[LeaseRef, _Mapping]]] = ...) -> None: ...

class CompleteAttemptRequest(_message.Message):
    __slots__ = ("worker_id", "lease", "outcome", "exit_code", "output", "error", "started_at", "completed_at", "result")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    lease: LeaseRef
    outcome: _types_pb2.AttemptOutcome
    exit_code: int
    output: str
    error: str
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    result: _struct_pb2.Value
    def __init__(self, worker_id: _Optional[str] = ..., lease: _Optional[_Union[LeaseRef, _Mapping]] = ..., outcome: _Optional[_Union[_types_pb2.AttemptOutcome, str]] = ..., exit_code: _Optional[int] = ..., output: _Optional[str] = ..., error: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., result: _Optional[_Union[_struct_pb2.Value, _Mapping]] = ...) -> None: ...

class CompleteAttemptResponse(_message.Message):
    __slots__ = ("run_status",)
    RUN_STATUS_FIELD_NUMBER: _ClassVar[int]
    run_status: _types_pb2.RunStatus
    def __init__(self, run_status: _Optional[_Union[_types_pb2.RunStatus, str]] = ...) -> None: ...

class CompleteAttemptsRequest(_message.Message):
    __slots__ = ("worker_id", "reports")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    reports: _containers.RepeatedCompositeFieldContainer[CompleteAttemptRequest]
    def __init__(self, worker_id: _Optional[str] = ..., reports: _Optional[_Iterable[_Union[CompleteAttemptRequest, _Mapping]]] = ...) -> None: ...

class CompleteAttemptResult(_message.Message):
    __slots__ = ("run_id", "run_status", "error_code", "error_message")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    run_status: _types_pb2.RunStatus
    error_code: str
    error_message: str
    def __init__(self, run_id: _Optional[str] = ..., run_status: _Optional[_Union[_types_pb2.RunStatus, str]] = ..., error_code: _Optional[str] = ..., error_message: _Optional[str] = ...) -> None: ...

class CompleteAttemptsResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[CompleteAttemptResult]
    def __init__(self, results: _Optional[_Iterable[_Union[CompleteAttemptResult, _Mapping]]] = ...) -> None: ...
