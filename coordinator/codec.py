"""Conversion between the domain dataclasses and protobuf, used at the two edges.

The gRPC servicers convert messages to and from clients here, and the store
encodes and decodes its etcd records here.

Stored record format: one leading schema version byte followed by the
serialized types_pb2 message of the record's kind (Job, Run or Worker).
Run and Worker records are version 1. Job records are version 2: they keep
`next_fire_at` in `next_run`, `last_run_at` in `last_run` and
`last_fire_at` in `last_scheduled_run`. A version 1 Job record kept
`last_fire_at` in `last_run`, and decodes with both set from it.

The etcd mod revision is not stored: decoding takes it from the caller. A
Run's `duration` is derived, so decoding ignores it.

Payloads travel as google.protobuf.Struct, which stores every number as a
double. Decoding turns integral numbers back into int, so {"retryCount": 3}
round-trips as 3. Integers beyond 2**53 lose precision on the way. A run's
handler result travels as google.protobuf.Value under the same rules, and an
unset field means no result.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import DecodeError, Message

from taskscheduler.coordinator.interning import frozen_mapping, shared
from taskscheduler.coordinator.model import (
    DEFAULT_DEPENDENCY_WAIT_S,
    Attempt,
    AttemptOutcome,
    ConcurrencyPolicy,
    Job,
    JobSpec,
    JobStatus,
    JobType,
    MisfirePolicy,
    Priority,
    RetryPolicy,
    Run,
    RunStatus,
    RunTrigger,
    Worker,
    WorkerStatus,
)
from taskscheduler.errors import InvalidArgumentError, RecordDecodeError
from taskscheduler.v1 import types_pb2

SCHEMA_VERSION = 1
# Job records: version 2 added `last_scheduled_run`; version 1 is still read.
JOB_SCHEMA_VERSION = 2
_LEGACY_JOB_SCHEMA_VERSION = 1
# Serialised job specs kept by encode_job, keyed by the spec object's id.
_MAX_SPEC_BYTES = 50_000
_SPEC_BYTES: dict[int, tuple[JobSpec, str, bytes]] = {}

# Doubles represent every integer up to this magnitude exactly.
_MAX_EXACT_INTEGER = 2**53

E = TypeVar("E", bound=enum.Enum)
M = TypeVar("M", bound=Message)


class EnumMap(Generic[E]):
    """A model enum paired with its proto enum. The proto value 0 (UNSPECIFIED) maps to None."""

    def __init__(self, proto_enum: Any, pairs: Mapping[E, int]) -> None:
        self.proto_enum = proto_enum
        self.pairs = MappingProxyType(dict(pairs))
        self._members = {number: member for member, number in pairs.items()}

    def to_proto(self, member: E | None) -> Any:
        """Return the proto number (typed Any: the stubs give each proto enum its own type)."""
        return 0 if member is None else self.pairs[member]

    def from_proto(self, number: int, *, field: str) -> E | None:
        """Return the member for a proto number, or None for 0.

        Raises InvalidArgumentError naming `field` for a number the table lacks,
        which a client on a newer API version may send.
        """
        if number == 0:
            return None
        member = self._members.get(number)
        if member is None:
            choices = ", ".join(str(known.value) for known in self.pairs)
            raise InvalidArgumentError(
                field, f"{field} {number} is not a known value. Use one of: {choices}"
            )
        return member


def _enum_map(model_enum: type[E], proto_enum: Any, prefix: str) -> EnumMap[E]:
    # Members pair up by name, such as Priority.HIGH with PRIORITY_HIGH. A model member
    # without a proto value makes the import fail with ValueError.
    return EnumMap(
        proto_enum, {member: proto_enum.Value(prefix + member.name) for member in model_enum}
    )


PRIORITIES = _enum_map(Priority, types_pb2.Priority, "PRIORITY_")
JOB_TYPES = _enum_map(JobType, types_pb2.JobType, "JOB_TYPE_")
JOB_STATUSES = _enum_map(JobStatus, types_pb2.JobStatus, "JOB_STATUS_")
RUN_STATUSES = _enum_map(RunStatus, types_pb2.RunStatus, "RUN_STATUS_")
RUN_TRIGGERS = _enum_map(RunTrigger, types_pb2.RunTrigger, "RUN_TRIGGER_")
ATTEMPT_OUTCOMES = _enum_map(AttemptOutcome, types_pb2.AttemptOutcome, "ATTEMPT_OUTCOME_")
WORKER_STATUSES = _enum_map(WorkerStatus, types_pb2.WorkerStatus, "WORKER_STATUS_")
MISFIRE_POLICIES = _enum_map(MisfirePolicy, types_pb2.MisfirePolicy, "MISFIRE_POLICY_")
CONCURRENCY_POLICIES = _enum_map(
    ConcurrencyPolicy, types_pb2.ConcurrencyPolicy, "CONCURRENCY_POLICY_"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class JobDraft:
    """A job spec as a client sent it, before validation applies defaults.

    `type` and `priority` are None when the client left them unspecified, and
    `timezone` is "" then.
    """

    name: str = ""
    description: str = ""
    type: JobType | None = None
    schedule: str = ""
    timezone: str = ""
    priority: Priority | None = None
    executor: str = ""
    payload: Mapping[str, Any] = field(default_factory=dict)
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: int = 0
    dependencies: tuple[str, ...] = ()
    misfire_policy: MisfirePolicy | None = None
    catch_up_window_s: int = 0
    concurrency_policy: ConcurrencyPolicy | None = None
    jitter_s: int = 0
    start_at: datetime | None = None
    end_at: datetime | None = None
    selector: Mapping[str, str] = field(default_factory=dict)
    dependency_wait_s: int = 0


# Timestamps

_EPOCH_UTC = datetime(1970, 1, 1, tzinfo=UTC)


def timestamp_to_datetime(timestamp: timestamp_pb2.Timestamp) -> datetime | None:
    """Convert to an aware UTC datetime, or None for an unset timestamp (the epoch).

    Raises ValueError for seconds outside years 1 to 9999.
    """
    seconds, nanos = timestamp.seconds, timestamp.nanos
    if seconds == 0 and nanos == 0:
        return None
    if not 0 <= nanos < 1_000_000_000:
        raise ValueError(f"timestamp nanos {nanos} is out of range 0 to 999999999")
    try:
        # Whole microseconds, rounded toward zero as protobuf's ToDatetime does; the
        # timedelta arithmetic runs in C, which matters on the hot path.
        return _EPOCH_UTC + timedelta(seconds=seconds, microseconds=nanos // 1000)
    except OverflowError:
        raise ValueError(f"timestamp seconds {seconds} is outside years 1 to 9999") from None


def _shared_time(value: datetime | None) -> datetime | None:
    return None if value is None else shared(value)


def datetime_to_timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    """Convert an aware datetime. None stays None, which leaves a message field unset."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value.isoformat()} given, but times must be aware")
    delta = value - _EPOCH_UTC
    return timestamp_pb2.Timestamp(
        seconds=delta.days * 86_400 + delta.seconds, nanos=delta.microseconds * 1000
    )


# Payloads


def payload_to_struct(payload: Mapping[str, Any]) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    for key, value in payload.items():
        struct.fields[key].CopyFrom(_python_to_value(value))
    return struct


def struct_to_payload(struct: struct_pb2.Struct) -> dict[str, Any]:
    return {key: _value_to_python(value) for key, value in struct.fields.items()}


def result_to_value(result: Any) -> struct_pb2.Value | None:
    """Convert a handler's JSON result; None stays None, which leaves the field unset."""
    return None if result is None else _python_to_value(result)


def value_to_result(value: struct_pb2.Value) -> Any:
    """Convert a google.protobuf.Value to plain JSON data; integral numbers become int."""
    return _value_to_python(value)


def _python_to_value(item: Any) -> struct_pb2.Value:
    value = struct_pb2.Value()
    if item is None:
        value.null_value = struct_pb2.NULL_VALUE
    elif isinstance(item, bool):
        value.bool_value = item
    elif isinstance(item, int | float):
        value.number_value = float(item)
    elif isinstance(item, str):
        value.string_value = item
    elif isinstance(item, Mapping):
        value.struct_value.CopyFrom(payload_to_struct(item))
    elif isinstance(item, list | tuple):
        value.list_value.values.extend(_python_to_value(element) for element in item)
    else:
        raise TypeError(f"payload value of type {type(item).__name__} has no JSON form")
    return value


def _value_to_python(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_payload(value.struct_value)
    if kind == "list_value":
        return [_value_to_python(element) for element in value.list_value.values]
    if kind == "number_value":
        return _restore_integer(value.number_value)
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def _restore_integer(number: float) -> int | float:
    if math.isfinite(number) and number.is_integer() and abs(number) <= _MAX_EXACT_INTEGER:
        return int(number)
    return number


# Messages for clients


def job_to_proto(job: Job, *, status: JobStatus | None = None) -> types_pb2.Job:
    """Build the API message. `status`, when given, replaces the stored status."""
    message = _spec_to_proto(job.id, job.spec)
    message.MergeFrom(_progress_to_proto(job, job.status if status is None else status))
    return message


def _progress_to_proto(job: Job, status: JobStatus) -> types_pb2.Job:
    """Build a message with only what the coordinator keeps for a job: status and times."""
    return types_pb2.Job(
        status=JOB_STATUSES.to_proto(status),
        next_run=datetime_to_timestamp(job.next_fire_at),
        last_run=datetime_to_timestamp(job.last_run_at),
        last_scheduled_run=datetime_to_timestamp(job.last_fire_at),
        created_at=datetime_to_timestamp(job.created_at),
        updated_at=datetime_to_timestamp(job.updated_at),
    )


def _spec_to_proto(job_id: str, spec: JobSpec) -> types_pb2.Job:
    """Build a message with the job's id and the fields its client defines."""
    return types_pb2.Job(
        id=job_id,
        name=spec.name,
        description=spec.description,
        type=JOB_TYPES.to_proto(spec.type),
        schedule=spec.schedule,
        timezone=spec.timezone,
        priority=PRIORITIES.to_proto(spec.priority),
        executor=spec.executor,
        payload=payload_to_struct(spec.payload),
        retry_policy=types_pb2.RetryPolicy(
            max_retries=spec.retry_policy.max_retries,
            retry_delay=spec.retry_policy.retry_delay_s,
            backoff_multiplier=spec.retry_policy.backoff_multiplier,
            max_retry_delay=spec.retry_policy.max_retry_delay_s,
        ),
        timeout=spec.timeout_s,
        dependencies=spec.dependencies,
        misfire_policy=MISFIRE_POLICIES.to_proto(spec.misfire_policy),
        catch_up_window=spec.catch_up_window_s,
        concurrency_policy=CONCURRENCY_POLICIES.to_proto(spec.concurrency_policy),
        jitter=spec.jitter_s,
        start_at=datetime_to_timestamp(spec.start_at),
        end_at=datetime_to_timestamp(spec.end_at),
        selector=dict(spec.selector),
        # Only a job with a schedule and dependencies waits; the others show 0.
        dependency_wait=spec.dependency_wait_s if spec.waits_for_dependencies else 0,
    )


def job_spec_from_proto(message: types_pb2.Job) -> JobDraft:
    """Read the spec fields a client set, ignoring the output-only fields.

    Raises InvalidArgumentError for an enum number this API version lacks.
    """
    return JobDraft(
        name=message.name,
        description=message.description,
        type=JOB_TYPES.from_proto(message.type, field="type"),
        schedule=message.schedule,
        timezone=message.timezone,
        priority=PRIORITIES.from_proto(message.priority, field="priority"),
        executor=message.executor,
        payload=struct_to_payload(message.payload),
        retry_policy=RetryPolicy(
            max_retries=message.retry_policy.max_retries,
            retry_delay_s=message.retry_policy.retry_delay,
            backoff_multiplier=message.retry_policy.backoff_multiplier or 1.0,
            max_retry_delay_s=message.retry_policy.max_retry_delay,
        ),
        timeout_s=message.timeout,
        dependencies=tuple(message.dependencies),
        misfire_policy=MISFIRE_POLICIES.from_proto(message.misfire_policy, field="misfirePolicy"),
        catch_up_window_s=message.catch_up_window,
        concurrency_policy=CONCURRENCY_POLICIES.from_proto(
            message.concurrency_policy, field="concurrencyPolicy"
        ),
        jitter_s=message.jitter,
        start_at=timestamp_to_datetime(message.start_at),
        end_at=timestamp_to_datetime(message.end_at),
        selector=dict(message.selector),
        dependency_wait_s=message.dependency_wait,
    )


def run_to_proto(run: Run) -> types_pb2.Run:
    return types_pb2.Run(
        id=run.id,
        job_id=run.job_id,
        job_name=run.job_name,
        trigger=RUN_TRIGGERS.to_proto(run.trigger),
        status=RUN_STATUSES.to_proto(run.status),
        priority=PRIORITIES.to_proto(run.priority),
        scheduled_at=datetime_to_timestamp(run.scheduled_at),
        due_at=datetime_to_timestamp(run.due_at),
        attempt=run.attempt,
        max_attempts=run.max_attempts,
        worker_id=run.worker_id,
        started_at=datetime_to_timestamp(run.started_at),
        completed_at=datetime_to_timestamp(run.completed_at),
        duration=run.duration_s,
        exit_code=run.exit_code,
        output=run.output,
        error=run.error,
        attempts=[_attempt_to_proto(attempt) for attempt in run.attempts],
        executor=run.executor,
        result=result_to_value(run.result),
    )


def _attempt_to_proto(attempt: Attempt) -> types_pb2.Attempt:
    return types_pb2.Attempt(
        number=attempt.number,
        worker_id=attempt.worker_id,
        fencing_token=attempt.fencing_token,
        started_at=datetime_to_timestamp(attempt.started_at),
        completed_at=datetime_to_timestamp(attempt.completed_at),
        outcome=ATTEMPT_OUTCOMES.to_proto(attempt.outcome),
        exit_code=attempt.exit_code,
        error=attempt.error,
    )


def worker_to_proto(worker: Worker) -> types_pb2.Worker:
    return types_pb2.Worker(
        id=worker.id,
        hostname=worker.hostname,
        capabilities=worker.capabilities,
        labels=dict(worker.labels),
        max_concurrent=worker.max_concurrent,
        status=WORKER_STATUSES.to_proto(worker.status),
        running=worker.running,
        registered_at=datetime_to_timestamp(worker.registered_at),
        last_heartbeat_at=datetime_to_timestamp(worker.last_heartbeat_at),
        version=worker.version,
    )


# Stored records


def encode_job(job: Job) -> bytes:
    """Encode a job record: its spec's bytes, kept between writes, then its progress.

    Serialised protobuf messages concatenate into their merge, and a job is
    written on every fire while its spec rarely changes, so only the small
    progress part is serialised each time.
    """
    progress = _progress_to_proto(job, job.status).SerializeToString(deterministic=True)
    return bytes((JOB_SCHEMA_VERSION,)) + _spec_bytes(job) + progress


def _spec_bytes(job: Job) -> bytes:
    kept = _SPEC_BYTES.get(id(job.spec))
    # The entry keeps a reference to the spec, so its id cannot be reused while the entry lives.
    if kept is not None and kept[0] is job.spec and kept[1] == job.id:
        return kept[2]
    data = _spec_to_proto(job.id, job.spec).SerializeToString(deterministic=True)
    if len(_SPEC_BYTES) >= _MAX_SPEC_BYTES:
        _SPEC_BYTES.clear()
    _SPEC_BYTES[id(job.spec)] = (job.spec, job.id, data)
    return data


def encode_run(run: Run) -> bytes:
    return _encode(run_to_proto(run))


def encode_worker(worker: Worker) -> bytes:
    return _encode(worker_to_proto(worker))


def decode_job(key: str, data: bytes, revision: int) -> Job:
    """Decode a Job record read at etcd mod revision `revision`.

    Bad data raises RecordDecodeError and no other exception.
    """
    message = _parse(
        key, data, types_pb2.Job(), versions=(JOB_SCHEMA_VERSION, _LEGACY_JOB_SCHEMA_VERSION)
    )
    with _decoding(key):
        draft = job_spec_from_proto(message)
        spec = JobSpec(
            name=draft.name,
            description=draft.description,
            type=_required(draft.type, "type"),
            schedule=shared(draft.schedule),
            timezone=shared(draft.timezone),
            priority=_required(draft.priority, "priority"),
            executor=shared(draft.executor),
            payload=frozen_mapping(draft.payload),
            retry_policy=shared(draft.retry_policy),
            timeout_s=draft.timeout_s,
            dependencies=draft.dependencies,
            misfire_policy=draft.misfire_policy or MisfirePolicy.RUN_ONCE,
            catch_up_window_s=shared(draft.catch_up_window_s),
            concurrency_policy=draft.concurrency_policy or ConcurrencyPolicy.ALLOW,
            jitter_s=draft.jitter_s,
            start_at=draft.start_at,
            end_at=draft.end_at,
            selector=frozen_mapping(draft.selector),
            dependency_wait_s=shared(draft.dependency_wait_s or DEFAULT_DEPENDENCY_WAIT_S),
        )
        last_slot = message.last_scheduled_run
        if data[0] == _LEGACY_JOB_SCHEMA_VERSION:
            last_slot = message.last_run
        return Job(
            id=_required(message.id or None, "id"),
            spec=spec,
            status=_required_enum(JOB_STATUSES, message.status, "status"),
            next_fire_at=_shared_time(timestamp_to_datetime(message.next_run)),
            last_fire_at=_shared_time(timestamp_to_datetime(last_slot)),
            last_run_at=_shared_time(timestamp_to_datetime(message.last_run)),
            created_at=shared(_required_time(message.created_at, "created_at")),
            updated_at=shared(_required_time(message.updated_at, "updated_at")),
            revision=revision,
        )


def decode_run(key: str, data: bytes, revision: int) -> Run:
    """Decode a Run record read at etcd mod revision `revision`.

    Bad data raises RecordDecodeError and no other exception.
    """
    message = _parse(key, data, types_pb2.Run())
    with _decoding(key):
        return Run(
            id=_required(message.id or None, "id"),
            job_id=_required(message.job_id or None, "job_id"),
            job_name=message.job_name,
            trigger=_required_enum(RUN_TRIGGERS, message.trigger, "trigger"),
            status=_required_enum(RUN_STATUSES, message.status, "status"),
            priority=_required_enum(PRIORITIES, message.priority, "priority"),
            executor=message.executor,
            scheduled_at=_required_time(message.scheduled_at, "scheduled_at"),
            due_at=_required_time(message.due_at, "due_at"),
            max_attempts=message.max_attempts,
            attempt=message.attempt,
            worker_id=message.worker_id,
            started_at=timestamp_to_datetime(message.started_at),
            completed_at=timestamp_to_datetime(message.completed_at),
            exit_code=message.exit_code,
            output=message.output,
            error=message.error,
            attempts=tuple(_attempt_from_proto(attempt) for attempt in message.attempts),
            result=value_to_result(message.result) if message.HasField("result") else None,
            revision=revision,
        )


def _attempt_from_proto(message: types_pb2.Attempt) -> Attempt:
    return Attempt(
        number=message.number,
        worker_id=message.worker_id,
        fencing_token=message.fencing_token,
        started_at=_required_time(message.started_at, "attempts.started_at"),
        completed_at=timestamp_to_datetime(message.completed_at),
        outcome=ATTEMPT_OUTCOMES.from_proto(message.outcome, field="attempts.outcome"),
        exit_code=message.exit_code,
        error=message.error,
    )


def decode_worker(key: str, data: bytes, revision: int) -> Worker:
    """Decode a Worker record. Bad data raises RecordDecodeError and no other exception.

    Worker has no revision attribute, so `revision` is accepted for symmetry
    with the other decoders and dropped.
    """
    message = _parse(key, data, types_pb2.Worker())
    with _decoding(key):
        return Worker(
            id=_required(message.id or None, "id"),
            hostname=message.hostname,
            capabilities=tuple(message.capabilities),
            labels=MappingProxyType(dict(message.labels)),
            max_concurrent=message.max_concurrent,
            status=_required_enum(WORKER_STATUSES, message.status, "status"),
            running=message.running,
            registered_at=_required_time(message.registered_at, "registered_at"),
            last_heartbeat_at=_required_time(message.last_heartbeat_at, "last_heartbeat_at"),
            version=message.version,
        )


def _encode(message: Message) -> bytes:
    # Deterministic so that equal records (map fields included) give equal bytes.
    return bytes((SCHEMA_VERSION,)) + message.SerializeToString(deterministic=True)


def _parse(key: str, data: bytes, message: M, versions: tuple[int, ...] = (SCHEMA_VERSION,)) -> M:
    if not data:
        raise RecordDecodeError(key, "the record is empty")
    if data[0] not in versions:
        readable = " and ".join(str(version) for version in sorted(versions))
        raise RecordDecodeError(
            key,
            f"unknown schema version {data[0]}. This coordinator reads version "
            f"{readable}, so a newer release may have written the record",
        )
    try:
        message.ParseFromString(bytes(data[1:]))
    except DecodeError as error:
        kind = message.DESCRIPTOR.name
        raise RecordDecodeError(key, f"invalid {kind} protobuf: {error}") from error
    return message


@contextmanager
def _decoding(key: str) -> Iterator[None]:
    """Turn any ValueError raised while converting a parsed record into RecordDecodeError."""
    try:
        yield
    except RecordDecodeError:
        raise
    except (ValueError, OverflowError) as error:
        raise RecordDecodeError(key, str(error)) from error


V = TypeVar("V")


def _required(value: V | None, field: str) -> V:
    if value is None:
        raise ValueError(f"required field {field} is missing")
    return value


def _required_enum(table: EnumMap[E], number: int, field: str) -> E:
    return _required(table.from_proto(number, field=field), field)


def _required_time(timestamp: timestamp_pb2.Timestamp, field: str) -> datetime:
    return _required(timestamp_to_datetime(timestamp), field)
