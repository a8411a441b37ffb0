import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from taskscheduler.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class GetDashboardRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetDashboardResponse(_message.Message):
    __slots__ = ("dashboard",)
    DASHBOARD_FIELD_NUMBER: _ClassVar[int]
    dashboard: Dashboard
    def __init__(self, dashboard: _Optional[_Union[Dashboard, _Mapping]] = ...) -> None: ...

class Dashboard(_message.Message):
    __slots__ = ("total_jobs", "jobs_by_status", "jobs_by_priority", "workers_online", "workers_offline", "queue_depth", "running_runs", "recent_runs", "runs_last_hour", "leader")
    class JobsByStatusEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class JobsByPriorityEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class QueueDepthEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class RunsLastHourEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TOTAL_JOBS_FIELD_NUMBER: _ClassVar[int]
    JOBS_BY_STATUS_FIELD_NUMBER: _ClassVar[int]
    JOBS_BY_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    WORKERS_ONLINE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_OFFLINE_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_RUNS_FIELD_NUMBER: _ClassVar[int]
    RECENT_RUNS_FIELD_NUMBER: _ClassVar[int]
    RUNS_LAST_HOUR_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    total_jobs: int
    jobs_by_status: _containers.ScalarMap[str, int]
    jobs_by_priority: _containers.ScalarMap[str, int]
    workers_online: int
    workers_offline: int
    queue_depth: _containers.ScalarMap[str, int]
    running_runs: int
    recent_runs: _containers.RepeatedCompositeFieldContainer[_types_pb2.Run]
    runs_last_hour: _containers.ScalarMap[str, int]
    leader: str
    def __init__(self, total_jobs: _Optional[int] = ..., jobs_by_status: _Optional[_Mapping[str, int]] = ..., jobs_by_priority: _Optional[_Mapping[str, int]] = ..., workers_online: _Optional[int] = ..., workers_offline: _Optional[int] = ..., queue_depth: _Optional[_Mapping[str, int]] = ..., running_runs: _Optional[int] = ..., recent_runs: _Optional[_Iterable[_Union[_types_pb2.Run, _Mapping]]] = ..., runs_last_hour: _Optional[_Mapping[str, int]] = ..., leader: _Optional[str] = ...) -> None: ...

class GetMetricsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetMetricsResponse(_message.Message):
    __slots__ = ("metrics",)
    METRICS_FIELD_NUMBER: _ClassVar[int]
    metrics: Metrics
    def __init__(self, metrics: _Optional[_Union[Metrics, _Mapping]] = ...) -> None: ...

class Metrics(_message.Message):
    __slots__ = ("collected_at", "uptime_seconds", "runs_fired_total", "runs_completed_total", "runs_failed_total", "runs_timed_out_total", "attempts_retried_total", "leases_expired_total", "queue_depth", "running_runs", "workers_online", "schedule_lag_p50_ms", "schedule_lag_p95_ms", "schedule_lag_p99_ms", "run_duration_avg_ms", "is_leader")
    COLLECTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUNS_FIRED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RUNS_COMPLETED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RUNS_FAILED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    RUNS_TIMED_OUT_TOTAL_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_RETRIED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    LEASES_EXPIRED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    QUEUE_DEPTH_FIELD_NUMBER: _ClassVar[int]
    RUNNING_RUNS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_ONLINE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_LAG_P50_MS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_LAG_P95_MS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULE_LAG_P99_MS_FIELD_NUMBER: _ClassVar[int]
    RUN_DURATION_AVG_MS_FIELD_NUMBER: _ClassVar[int]
    IS_LEADER_FIELD_NUMBER: _ClassVar[int]
    collected_at: _timestamp_pb2.Timestamp
    uptime_seconds: int
    runs_fired_total: int
    runs_completed_total: int
    runs_failed_total: int
    runs_timed_out_total: int
    attempts_retried_total: int
    leases_expired_total: int
    queue_depth: int
    running_runs: int
    workers_online: int
    schedule_lag_p50_ms: float
    schedule_lag_p95_ms: float
    schedule_lag_p99_ms: float
    run_duration_avg_ms: float
    is_leader: bool
    def __init__(self, collected_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., uptime_seconds: _Optional[int] = ..., runs_fired_total: _Optional[int] = ..., runs_completed_total: _Optional[int] = ..., runs_failed_total: _Optional[int] = ..., runs_timed_out_total: _Optional[int] = ..., attempts_retried_total: _Optional[int] = ..., leases_expired_total: _Optional[int] = ..., queue_depth: _Optional[int] = ..., running_runs: _Optional[int] = ..., workers_online: _Optional[int] = ..., schedule_lag_p50_ms: _Optional[float] = ..., schedule_lag_p95_ms: _Optional[float] = ..., schedule_lag_p99_ms: _Optional[float] = ..., run_duration_avg_ms: _Optional[float] = ..., is_leader: _Optional[bool] = ...) -> None: ...

class GetHealthRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class GetHealthResponse(_message.Message):
    __slots__ = ("status", "coordinator_id", "role", "leader", "etcd_reachable", "problems", "version")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    COORDINATOR_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    LEADER_FIELD_NUMBER: _ClassVar[int]
    ETCD_REACHABLE_FIELD_NUMBER: _ClassVar[int]
    PROBLEMS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    status: str
    coordinator_id: str
    role: str
    leader: str
    etcd_reachable: bool
    problems: _containers.RepeatedScalarFieldContainer[str]
    version: str
    def __init__(self, status: _Optional[str] = ..., coordinator_id: _Optional[str] = ..., role: _Optional[str] = ..., leader: _Optional[str] = ..., etcd_reachable: _Optional[bool] = ..., problems: _Optional[_Iterable[str]] = ..., version: _Optional[str] = ...) -> None: ...
