"""Protobuf conversion and the stored-record encoding of jobs, runs and workers."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any, cast

import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from taskscheduler.coordinator import codec
from taskscheduler.coordinator.model import (
    Attempt,
    AttemptOutcome,
    Job,
    JobSpec,
    JobStatus,
    JobType,
    Priority,
    RetryPolicy,
    Run,
    RunStatus,
    RunTrigger,
    Worker,
    WorkerStatus,
)
from taskscheduler.errors import InvalidArgumentError, RecordDecodeError
from taskscheduler.v1 import options_pb2, types_pb2

CREATED = datetime(2030, 1, 2, 3, 4, 5, 678_000, tzinfo=UTC)
PAYLOAD = {
    "retryCount": 3,
    "ratio": 0.25,
    "negative": -7,
    "enabled": True,
    "missing": None,
    "nested": {"items": [1, 2.5, "x", {"deep": [10, False]}], "empty": {}},
    "command": ["echo", "hi"],
}


def make_job(**overrides: Any) -> Job:
    spec = JobSpec(
        name="daily-report",
        description="Generate daily sales report",
        type=JobType.RECURRING,
        schedule="0 9 * * *",
        timezone="Europe/Berlin",
        priority=Priority.HIGH,
        executor="shell",
        payload=MappingProxyType(dict(PAYLOAD)),
        retry_policy=RetryPolicy(max_retries=3, retry_delay_s=300),
        timeout_s=3600,
    )
    fields: dict[str, Any] = {
        "id": "job-0123456789abcdef",
        "spec": spec,
        "status": JobStatus.SCHEDULED,
        "next_fire_at": CREATED + timedelta(hours=1),
        "last_fire_at": CREATED - timedelta(days=1),
        # A run by hand after the newest slot.
        "last_run_at": CREATED - timedelta(hours=1),
        "created_at": CREATED,
        "updated_at": CREATED + timedelta(minutes=5),
    }
    fields.update(overrides)
    return Job(**fields)


def make_run(**overrides: Any) -> Run:
    attempts = (
        Attempt(
            number=1,
            worker_id="agent-a",
            fencing_token=41,
            started_at=CREATED,
            completed_at=CREATED + timedelta(seconds=2),
            outcome=AttemptOutcome.LEASE_EXPIRED,
            exit_code=0,
            error="lease expired",
        ),
        Attempt(number=2, worker_id="agent-b", fencing_token=42, started_at=CREATED),
    )
    fields: dict[str, Any] = {
        "id": "job-0123456789abcdef.01893456000000",
        "job_id": "job-0123456789abcdef",
        "job_name": "daily-report",
        "trigger": RunTrigger.SCHEDULE,
        "status": RunStatus.RUNNING,
        "priority": Priority.CRITICAL,
        "executor": "http",
        "scheduled_at": CREATED,
        "due_at": CREATED + timedelta(seconds=30),
        "max_attempts": 4,
        "attempt": 2,
        "worker_id": "agent-b",
        "started_at": CREATED,
        "completed_at": None,
        "exit_code": 0,
        "output": "line one\nline two",
        "error": "",
        "attempts": attempts,
    }
    fields.update(overrides)
    return Run(**fields)


def make_worker(**overrides: Any) -> Worker:
    fields: dict[str, Any] = {
        "id": "agent-a",
        "hostname": "host-1.example",
        "capabilities": ("shell", "http", "report.build"),
        "labels": MappingProxyType({"zone": "eu-1", "disk": "ssd"}),
        "max_concurrent": 8,
        "status": WorkerStatus.OFFLINE,
        "running": 3,
        "registered_at": CREATED,
        "last_heartbeat_at": CREATED + timedelta(seconds=10),
        "version": "0.1.0",
    }
    fields.update(overrides)
    return Worker(**fields)


# Stored records


@pytest.mark.parametrize(
    "job",
    [
        make_job(),
        make_job(next_fire_at=None, last_fire_at=None, last_run_at=None, status=JobStatus.PAUSED),
        make_job(
            spec=JobSpec(
                name="once",
                type=JobType.ONE_TIME,
                schedule="2030-01-01T00:00:00Z",
                executor="http",
            ),
            status=JobStatus.COMPLETED,
        ),
    ],
    ids=["full", "no-fire-times", "defaults"],
)
def test_job_record_round_trip(job: Job) -> None:
    decoded = codec.decode_job("/jobs/x", codec.encode_job(job), revision=17)

    assert decoded == dataclasses.replace(job, revision=17)


def test_job_record_keeps_payload_numbers_as_int() -> None:
    decoded = codec.decode_job("/jobs/x", codec.encode_job(make_job()), revision=1)

    assert dict(decoded.spec.payload) == PAYLOAD
    assert type(decoded.spec.payload["retryCount"]) is int
    assert type(decoded.spec.payload["ratio"]) is float
    assert type(decoded.spec.payload["nested"]["items"][0]) is int
    assert type(decoded.spec.payload["nested"]["items"][3]["deep"][1]) is bool


def test_record_starts_with_schema_version() -> None:
    data = codec.encode_job(make_job())

    assert data[0] == 2
    assert types_pb2.Job.FromString(data[1:]).name == "daily-report"


@pytest.mark.parametrize(
    "run",
    [
        make_run(),
        make_run(
            status=RunStatus.QUEUED,
            worker_id="",
            attempt=0,
            started_at=None,
            completed_at=None,
            attempts=(),
            trigger=RunTrigger.MANUAL,
        ),
        make_run(
            status=RunStatus.COMPLETED,
            completed_at=CREATED + timedelta(seconds=90),
            exit_code=3,
            error="exit status 3",
        ),
    ],
    ids=["running-with-attempts", "queued-empty", "completed"],
)
def test_run_record_round_trip(run: Run) -> None:
    decoded = codec.decode_run("/runs/x", codec.encode_run(run), revision=99)

    assert decoded == dataclasses.replace(run, revision=99)
    assert decoded.executor == run.executor


def test_worker_record_round_trip() -> None:
    worker = make_worker()

    decoded = codec.decode_worker("/workers/agent-a", codec.encode_worker(worker), revision=5)

    assert decoded == worker
    assert dict(decoded.labels) == {"zone": "eu-1", "disk": "ssd"}


def test_worker_record_bytes_deterministic() -> None:
    first = make_worker(labels=MappingProxyType({"a": "1", "b": "2"}))
    second = make_worker(labels=MappingProxyType({"b": "2", "a": "1"}))

    assert codec.encode_worker(first) == codec.encode_worker(second)


def _record(message: Any) -> bytes:
    return b"\x01" + message.SerializeToString()


_STAMP = timestamp_pb2.Timestamp(seconds=1_900_000_000)
_GOOD_JOB = types_pb2.Job(
    id="job-1",
    name="n",
    type=types_pb2.JOB_TYPE_RECURRING,
    priority=types_pb2.PRIORITY_LOW,
    status=types_pb2.JOB_STATUS_SCHEDULED,
    created_at=_STAMP,
    updated_at=_STAMP,
)
_GOOD_RUN = types_pb2.Run(
    id="job-1.1",
    job_id="job-1",
    trigger=types_pb2.RUN_TRIGGER_SCHEDULE,
    status=types_pb2.RUN_STATUS_QUEUED,
    priority=types_pb2.PRIORITY_NORMAL,
    scheduled_at=_STAMP,
    due_at=_STAMP,
)
_GOOD_WORKER = types_pb2.Worker(
    id="agent-a",
    status=types_pb2.WORKER_STATUS_ONLINE,
    registered_at=_STAMP,
    last_heartbeat_at=_STAMP,
)


def _changed(message: Any, **changes: Any) -> Any:
    copy = type(message)()
    copy.CopyFrom(message)
    for name, value in changes.items():
        if value is None:
            copy.ClearField(name)
        elif isinstance(value, timestamp_pb2.Timestamp):
            getattr(copy, name).CopyFrom(value)
        elif isinstance(value, list):
            getattr(copy, name).extend(value)
        else:
            setattr(copy, name, value)
    return copy


@pytest.mark.parametrize(
    ("decode", "data", "reason"),
    [
        (codec.decode_job, b"", "the record is empty"),
        (codec.decode_run, b"", "the record is empty"),
        (codec.decode_worker, b"", "the record is empty"),
        (codec.decode_job, b"\x00" + _GOOD_JOB.SerializeToString(), "unknown schema version 0"),
        (codec.decode_job, b"\x03" + _GOOD_JOB.SerializeToString(), "unknown schema version 3"),
        (codec.decode_run, b"\x02" + _GOOD_JOB.SerializeToString(), "unknown schema version 2"),
        (codec.decode_job, b"{", "unknown schema version 123"),
        (codec.decode_job, b"\x01\x0a\x05ab", "invalid Job protobuf"),
        (codec.decode_run, b"\x01\xff\xff\xff", "invalid Run protobuf"),
        (codec.decode_worker, b"\x01\x0a\x02\xc3\x28", "invalid Worker protobuf"),
        (codec.decode_job, _record(_changed(_GOOD_JOB, id="")), "required field id is missing"),
        (
            codec.decode_job,
            _record(_changed(_GOOD_JOB, status=0)),
            "required field status is missing",
        ),
        (codec.decode_job, _record(_changed(_GOOD_JOB, status=42)), "status 42 is not a known"),
        (codec.decode_job, _record(_changed(_GOOD_JOB, type=0)), "required field type is missing"),
        (codec.decode_job, _record(_changed(_GOOD_JOB, priority=9)), "priority 9 is not a known"),
        (
            codec.decode_job,
            _record(_changed(_GOOD_JOB, created_at=None)),
            "required field created_at is missing",
        ),
        (
            codec.decode_job,
            _record(_changed(_GOOD_JOB, next_run=timestamp_pb2.Timestamp(seconds=2**40))),
            "timestamp seconds 1099511627776 is outside years 1 to 9999",
        ),
        (
            codec.decode_run,
            _record(_changed(_GOOD_RUN, job_id="")),
            "required field job_id is missing",
        ),
        (
            codec.decode_run,
            _record(_changed(_GOOD_RUN, due_at=None)),
            "required field due_at is missing",
        ),
        (codec.decode_run, _record(_changed(_GOOD_RUN, trigger=7)), "trigger 7 is not a known"),
        (
            codec.decode_run,
            _record(_changed(_GOOD_RUN, attempts=[types_pb2.Attempt(number=1)])),
            "required field attempts.started_at is missing",
        ),
        (
            codec.decode_run,
            _record(
                _changed(
                    _GOOD_RUN,
                    attempts=[types_pb2.Attempt(started_at=_STAMP, outcome=cast(Any, 77))],
                )
            ),
            "attempts.outcome 77 is not a known",
        ),
        (
            codec.decode_worker,
            _record(_changed(_GOOD_WORKER, status=0)),
            "required field status is missing",
        ),
        (
            codec.decode_worker,
            _record(_changed(_GOOD_WORKER, last_heartbeat_at=None)),
            "required field last_heartbeat_at is missing",
        ),
    ],
)
def test_decode_rejects_bad_record(decode: Any, data: bytes, reason: str) -> None:
    with pytest.raises(RecordDecodeError) as caught:
        decode("/taskscheduler/k", data, 3)

    assert caught.value.key == "/taskscheduler/k"
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("decode", "message"),
    [
        (codec.decode_job, _GOOD_JOB),
        (codec.decode_run, _GOOD_RUN),
        (codec.decode_worker, _GOOD_WORKER),
    ],
)
def test_decode_accepts_minimal_record(decode: Any, message: Any) -> None:
    decoded = decode("/k", _record(message), 3)

    assert decoded.id == message.id


# Messages for clients


def test_job_to_proto_fields() -> None:
    job = make_job()

    message = codec.job_to_proto(job)

    assert message.id == "job-0123456789abcdef"
    assert message.type == types_pb2.JOB_TYPE_RECURRING
    assert message.priority == types_pb2.PRIORITY_HIGH
    assert message.status == types_pb2.JOB_STATUS_SCHEDULED
    assert message.timeout == 3600
    assert message.retry_policy.max_retries == 3
    assert message.retry_policy.retry_delay == 300
    assert message.next_run.ToDatetime(tzinfo=UTC) == job.next_fire_at
    assert message.last_run.ToDatetime(tzinfo=UTC) == job.last_run_at
    assert message.last_scheduled_run.ToDatetime(tzinfo=UTC) == job.last_fire_at
    assert message.payload["retryCount"] == 3.0


def test_version_1_job_record_sets_both_times() -> None:
    # Version 1 records kept the newest slot in `last_run`.
    message = codec.job_to_proto(make_job())
    message.ClearField("last_scheduled_run")
    data = bytes((1,)) + message.SerializeToString()

    decoded = codec.decode_job("/jobs/x", data, revision=3)

    assert decoded.last_fire_at == CREATED - timedelta(hours=1)
    assert decoded.last_run_at == CREATED - timedelta(hours=1)


def test_manual_run_only_job_has_no_slot() -> None:
    job = make_job(last_fire_at=None)

    decoded = codec.decode_job("/jobs/x", codec.encode_job(job), revision=3)

    assert decoded.last_fire_at is None
    assert decoded.last_run_at == CREATED - timedelta(hours=1)


def test_job_to_proto_status_override() -> None:
    message = codec.job_to_proto(make_job(), status=JobStatus.RUNNING)

    assert message.status == types_pb2.JOB_STATUS_RUNNING


def test_job_to_proto_leaves_missing_times_unset() -> None:
    message = codec.job_to_proto(make_job(next_fire_at=None, last_fire_at=None, last_run_at=None))

    assert not message.HasField("next_run")
    assert not message.HasField("last_run")
    assert not message.HasField("last_scheduled_run")


def test_job_spec_from_proto_unspecified_enums() -> None:
    message = types_pb2.Job(name="n", schedule="@hourly", executor="shell")
    message.payload.update({"retryCount": 3, "nested": {"n": [1, 2]}})

    draft = codec.job_spec_from_proto(message)

    assert draft.type is None
    assert draft.priority is None
    assert draft.timezone == ""
    assert draft.payload == {"retryCount": 3, "nested": {"n": [1, 2]}}
    assert type(draft.payload["retryCount"]) is int


def test_job_spec_from_proto_reads_every_field() -> None:
    message = codec.job_to_proto(make_job())

    draft = codec.job_spec_from_proto(message)

    spec = make_job().spec
    assert draft == codec.JobDraft(
        name=spec.name,
        description=spec.description,
        type=spec.type,
        schedule=spec.schedule,
        timezone=spec.timezone,
        priority=spec.priority,
        executor=spec.executor,
        payload=PAYLOAD,
        retry_policy=spec.retry_policy,
        timeout_s=spec.timeout_s,
        dependencies=(),
        misfire_policy=spec.misfire_policy,
        catch_up_window_s=spec.catch_up_window_s,
        concurrency_policy=spec.concurrency_policy,
        # A job without dependencies does not wait for them, so it shows 0.
        dependency_wait_s=0,
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [({"priority": 17}, "priority"), ({"type": 5}, "type")],
)
def test_job_spec_from_proto_unknown_enum(changes: dict[str, Any], field: str) -> None:
    message = types_pb2.Job(name="n", **changes)

    with pytest.raises(InvalidArgumentError) as caught:
        codec.job_spec_from_proto(message)

    assert caught.value.field == field
    assert "is not a known value" in caught.value.message


def test_run_to_proto_duration_and_attempts() -> None:
    run = make_run(completed_at=CREATED + timedelta(seconds=90, milliseconds=500))

    message = codec.run_to_proto(run)

    assert message.duration == 90.5
    assert message.executor == "http"
    assert [attempt.number for attempt in message.attempts] == [1, 2]
    assert message.attempts[0].outcome == types_pb2.ATTEMPT_OUTCOME_LEASE_EXPIRED
    assert message.attempts[1].outcome == types_pb2.ATTEMPT_OUTCOME_UNSPECIFIED
    assert not message.attempts[1].HasField("completed_at")


def test_worker_to_proto_fields() -> None:
    message = codec.worker_to_proto(make_worker())

    assert list(message.capabilities) == ["shell", "http", "report.build"]
    assert dict(message.labels) == {"zone": "eu-1", "disk": "ssd"}
    assert message.status == types_pb2.WORKER_STATUS_OFFLINE
    assert message.max_concurrent == 8


# Enum tables

_ENUM_TABLES = [
    (codec.PRIORITIES, Priority, types_pb2.Priority),
    (codec.JOB_TYPES, JobType, types_pb2.JobType),
    (codec.JOB_STATUSES, JobStatus, types_pb2.JobStatus),
    (codec.RUN_STATUSES, RunStatus, types_pb2.RunStatus),
    (codec.RUN_TRIGGERS, RunTrigger, types_pb2.RunTrigger),
    (codec.ATTEMPT_OUTCOMES, AttemptOutcome, types_pb2.AttemptOutcome),
    (codec.WORKER_STATUSES, WorkerStatus, types_pb2.WorkerStatus),
]


@pytest.mark.parametrize(("table", "model_enum", "proto_enum"), _ENUM_TABLES)
def test_enum_table_complete(table: Any, model_enum: Any, proto_enum: Any) -> None:
    assert table.proto_enum is proto_enum
    assert set(table.pairs) == set(model_enum)
    assert set(table.pairs.values()) == set(proto_enum.values()) - {0}


@pytest.mark.parametrize(("table", "model_enum", "proto_enum"), _ENUM_TABLES)
def test_enum_table_matches_json_spelling(table: Any, model_enum: Any, proto_enum: Any) -> None:
    # The gateway spells a value by its json_value option, else by its lowercased name
    # without the enum's prefix. The model's value must be that same spelling.
    prefix = proto_enum.Name(0).removesuffix("UNSPECIFIED")
    for member, number in table.pairs.items():
        descriptor = proto_enum.DESCRIPTOR.values_by_number[number]
        json_value = descriptor.GetOptions().Extensions[options_pb2.json_value]
        expected = json_value or descriptor.name.removeprefix(prefix).lower()
        assert member.value == expected


@pytest.mark.parametrize(("table", "model_enum", "proto_enum"), _ENUM_TABLES)
def test_enum_table_round_trip(table: Any, model_enum: Any, proto_enum: Any) -> None:
    for member in model_enum:
        assert table.from_proto(table.to_proto(member), field="f") is member
    assert table.from_proto(0, field="f") is None
    assert table.to_proto(None) == 0


# Timestamps and payloads


def test_timestamp_unset_is_none() -> None:
    assert codec.timestamp_to_datetime(timestamp_pb2.Timestamp()) is None


def test_timestamp_round_trip_is_aware_utc() -> None:
    berlin = timezone(timedelta(hours=2))
    value = datetime(2030, 6, 1, 12, 0, 0, 123_456, tzinfo=berlin)

    result = codec.timestamp_to_datetime(codec.datetime_to_timestamp(value))

    assert result == value
    assert result.tzinfo is UTC
    assert result.hour == 10


def test_datetime_to_timestamp_none_and_naive() -> None:
    assert codec.datetime_to_timestamp(None) is None
    with pytest.raises(ValueError, match="naive datetime 2030-01-01T00:00:00 given"):
        codec.datetime_to_timestamp(datetime(2030, 1, 1))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (3, 3),
        (3.0, 3),
        (-0.0, 0),
        (2.5, 2.5),
        (2**53, 2**53),
        (1e300, 1e300),
        (True, True),
        (None, None),
        ("7", "7"),
        ([1, [2.0, {"a": 3}]], [1, [2, {"a": 3}]]),
        ({"a": {"b": {}}}, {"a": {"b": {}}}),
        ((1, 2), [1, 2]),
    ],
)
def test_payload_value_round_trip(value: Any, expected: Any) -> None:
    result = codec.struct_to_payload(codec.payload_to_struct({"k": value}))["k"]

    assert result == expected
    assert type(result) is type(expected)


def test_payload_float_beyond_exact_range_stays_float() -> None:
    struct = struct_pb2.Struct()
    struct.fields["big"].number_value = 2.0**60

    assert type(codec.struct_to_payload(struct)["big"]) is float


def test_payload_nested_mapping_proxy() -> None:
    payload = MappingProxyType({"outer": MappingProxyType({"inner": 1})})

    assert codec.struct_to_payload(codec.payload_to_struct(payload)) == {"outer": {"inner": 1}}


def test_payload_rejects_non_json_value() -> None:
    with pytest.raises(TypeError, match="has no JSON form"):
        codec.payload_to_struct({"when": datetime(2030, 1, 1, tzinfo=UTC)})


def test_encode_job_spec_bytes_cache() -> None:
    job = make_job()
    running = dataclasses.replace(job, status=JobStatus.RUNNING, last_fire_at=CREATED)
    renamed = dataclasses.replace(job, spec=dataclasses.replace(job.spec, name="renamed"))
    other_id = dataclasses.replace(job, id="job-other")

    for expected in (job, running, renamed, other_id, job):
        decoded = codec.decode_job(f"/p/jobs/{expected.id}", codec.encode_job(expected), 7)
        assert decoded == dataclasses.replace(expected, revision=7)
