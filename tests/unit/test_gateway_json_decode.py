"""JSON to protobuf: good inputs, and bad ones with the exact field they name."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.gateway.enum_values import json_value_of, spelling_of
from taskscheduler.gateway.json_decode import decode_into, parse_json_body
from taskscheduler.v1 import types_pb2, workers_pb2


def decode_job(data: object) -> types_pb2.Job:
    job = types_pb2.Job()
    decode_into(data, job)
    return job


def test_decode_full_create_job_body() -> None:
    job = decode_job(
        {
            "name": "daily-report",
            "description": "Generate daily sales report",
            "type": "recurring",
            "schedule": "0 9 * * *",
            "timezone": "Europe/Berlin",
            "priority": "high",
            "executor": "shell",
            "payload": {"command": ["python3", "report.py"], "env": {"A": "1"}, "n": 2},
            "retryPolicy": {"maxRetries": 3, "retryDelay": 300},
            "timeout": 3600,
            "dependencies": ["job-a", "job-b"],
        }
    )

    assert job.name == "daily-report"
    assert job.description == "Generate daily sales report"
    assert job.type == types_pb2.JOB_TYPE_RECURRING
    assert job.schedule == "0 9 * * *"
    assert job.timezone == "Europe/Berlin"
    assert job.priority == types_pb2.PRIORITY_HIGH
    assert job.executor == "shell"
    assert list(job.payload["command"]) == ["python3", "report.py"]
    assert job.payload["env"]["A"] == "1"
    assert job.payload["n"] == 2
    assert job.retry_policy.max_retries == 3
    assert job.retry_policy.retry_delay == 300
    assert job.timeout == 3600
    assert list(job.dependencies) == ["job-a", "job-b"]


def test_decode_accepts_snake_case_names() -> None:
    job = decode_job({"retry_policy": {"max_retries": 2}, "next_run": "2026-12-04T10:00:00Z"})

    assert job.retry_policy.max_retries == 2
    assert job.next_run.seconds == int(datetime(2026, 12, 4, 10, tzinfo=UTC).timestamp())


@pytest.mark.parametrize(
    ("data", "field_name", "expected"),
    [
        ({"type": "one-time"}, "type", types_pb2.JOB_TYPE_ONE_TIME),
        ({"type": "recurring"}, "type", types_pb2.JOB_TYPE_RECURRING),
        ({"priority": "low"}, "priority", types_pb2.PRIORITY_LOW),
        ({"priority": "critical"}, "priority", types_pb2.PRIORITY_CRITICAL),
        ({"status": "paused"}, "status", types_pb2.JOB_STATUS_PAUSED),
        ({"priority": None}, "priority", types_pb2.PRIORITY_UNSPECIFIED),
        ({"timeout": 0}, "timeout", 0),
        ({"timeout": 2**31 - 1}, "timeout", 2**31 - 1),
        ({"timeout": None}, "timeout", 0),
        ({"name": ""}, "name", ""),
    ],
)
def test_decode_scalar_values(data: dict, field_name: str, expected: object) -> None:
    assert getattr(decode_job(data), field_name) == expected


def test_decode_timestamp_with_offset_is_stored_in_utc() -> None:
    job = decode_job({"nextRun": "2026-12-04T11:00:00.250+01:00"})

    assert job.next_run.seconds == int(datetime(2026, 12, 4, 10, tzinfo=UTC).timestamp())
    assert job.next_run.nanos == 250_000_000


def test_decode_empty_object_sets_message_present() -> None:
    job = decode_job({"retryPolicy": {}})

    assert job.HasField("retry_policy")
    assert job.retry_policy.max_retries == 0


def test_decode_null_message_leaves_it_unset() -> None:
    assert not decode_job({"retryPolicy": None}).HasField("retry_policy")


def test_decode_map_and_repeated_message() -> None:
    request = workers_pb2.RegisterWorkerRequest()
    decode_into({"labels": {"zone": "a"}, "capabilities": ["shell", "http"]}, request)
    heartbeat = workers_pb2.HeartbeatRequest()
    decode_into({"leases": [{"runId": "r1", "attempt": 2, "fencingToken": 2**40}]}, heartbeat)

    assert dict(request.labels) == {"zone": "a"}
    assert list(request.capabilities) == ["shell", "http"]
    assert heartbeat.leases[0].run_id == "r1"
    assert heartbeat.leases[0].attempt == 2
    assert heartbeat.leases[0].fencing_token == 2**40


@pytest.mark.parametrize(
    ("data", "field", "message_part"),
    [
        ({"priority": "urgent"}, "priority", "one of low, normal, high, critical"),
        ({"priority": 3}, "priority", "got number 3"),
        ({"priority": "PRIORITY_HIGH"}, "priority", "one of low, normal, high, critical"),
        ({"type": "one_time"}, "type", "one of one-time, recurring"),
        ({"payload": "echo hi"}, "payload", "must be a JSON object, got string"),
        ({"payload": ["echo"]}, "payload", "must be a JSON object, got an array"),
        ({"retryPolicy": {"maxRetries": "3"}}, "retryPolicy.maxRetries", "an integer"),
        ({"retryPolicy": {"maxRetries": 1.5}}, "retryPolicy.maxRetries", "got number 1.5"),
        ({"retryPolicy": {"maxRetries": 3.0}}, "retryPolicy.maxRetries", "got number 3.0"),
        ({"retryPolicy": {"maxRetries": True}}, "retryPolicy.maxRetries", "got boolean true"),
        ({"retryPolicy": {"maxTries": 3}}, "retryPolicy.maxTries", "unknown field 'maxTries'"),
        ({"retryPolicy": 3}, "retryPolicy", "must be a JSON object"),
        ({"timeout": "3600"}, "timeout", "must be an integer, got string '3600'"),
        ({"timeout": 2**31}, "timeout", "from -2147483648 to 2147483647"),
        ({"name": 5}, "name", "must be a string, got number 5"),
        ({"name": ["a"]}, "name", "must be a string, got an array"),
        ({"dependencies": "job-a"}, "dependencies", "must be a JSON array"),
        ({"dependencies": ["a", 7]}, "dependencies[1]", "must be a string"),
        ({"dependencies": [None]}, "dependencies[0]", "must not be null"),
        ({"nextRun": "tomorrow"}, "nextRun", "an RFC 3339 timestamp"),
        ({"nextRun": "2026-12-04T10:00:00"}, "nextRun", "an RFC 3339 timestamp"),
        ({"nextRun": 1796378400}, "nextRun", "an RFC 3339 timestamp"),
        ({"schedul": "@hourly"}, "schedul", "unknown field 'schedul' in the request body"),
        ({"name": "a", "NAME": "b"}, "NAME", "unknown field"),
        ({"retryPolicy": {}, "retry_policy": {}}, "retry_policy", "given twice"),
    ],
)
def test_decode_rejects_bad_input(data: dict, field: str, message_part: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        decode_job(data)

    assert caught.value.field == field
    assert message_part in caught.value.message


def test_decode_unknown_key_lists_known_fields() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        decode_job({"retryPolicy": {"delay": 1}})

    assert caught.value.message == (
        "unknown field 'delay' in retryPolicy; known fields: maxRetries, retryDelay, "
        "backoffMultiplier, maxRetryDelay"
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "request body must be a JSON object, got an array"),
        ("job", "request body must be a JSON object, got string 'job'"),
        (None, "request body must be a JSON object, got null"),
    ],
)
def test_decode_rejects_body_that_is_not_an_object(data: object, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        decode_job(data)

    assert caught.value.field == ""
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", {}),
        (b"  \n", {}),
        (b'{"a": 1}', {"a": 1}),
        (b"[1]", [1]),
        ('{"name": "r\u00e9sum\u00e9"}'.encode(), {"name": "r\u00e9sum\u00e9"}),
    ],
)
def test_parse_json_body_good(raw: bytes, expected: object) -> None:
    assert parse_json_body(raw) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"name": ', "request body is not valid JSON: Expecting value at line 1, column 10"),
        (
            b'{"name": "a"\n "b": 1}',
            "request body is not valid JSON: Expecting ',' delimiter at line 2, column 2",
        ),
        (b'{"n": NaN}', "request body is not valid JSON: NaN is not a JSON number"),
        (b"\xff\xfe", "request body is not valid JSON: invalid UTF-8 at byte 0"),
    ],
)
def test_parse_json_body_malformed(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        parse_json_body(raw)

    assert caught.value.field == ""
    assert caught.value.message == message


@pytest.mark.parametrize(
    ("enum", "number", "json_value"),
    [
        (types_pb2.JobType, types_pb2.JOB_TYPE_ONE_TIME, "one-time"),
        (types_pb2.JobType, types_pb2.JOB_TYPE_RECURRING, "recurring"),
        (types_pb2.Priority, types_pb2.PRIORITY_HIGH, "high"),
        (types_pb2.RunStatus, types_pb2.RUN_STATUS_TIMEOUT, "timeout"),
        (types_pb2.RunTrigger, types_pb2.RUN_TRIGGER_MANUAL, "manual"),
        (types_pb2.AttemptOutcome, types_pb2.ATTEMPT_OUTCOME_TIMED_OUT, "timeout"),
        (types_pb2.AttemptOutcome, types_pb2.ATTEMPT_OUTCOME_LEASE_EXPIRED, "lease-expired"),
        (types_pb2.WorkerStatus, types_pb2.WORKER_STATUS_OFFLINE, "offline"),
        (types_pb2.Priority, types_pb2.PRIORITY_UNSPECIFIED, None),
        (types_pb2.JobStatus, types_pb2.JOB_STATUS_UNSPECIFIED, None),
    ],
)
def test_enum_json_value_both_ways(enum: object, number: int, json_value: str | None) -> None:
    descriptor = enum.DESCRIPTOR  # type: ignore[attr-defined]
    spelling = spelling_of(descriptor)

    assert json_value_of(descriptor.values_by_number[number]) == json_value
    assert spelling.value_by_number[number] == json_value
    if json_value is not None:
        assert spelling.number_by_value[json_value] == number


def test_enum_allowed_values_exclude_unspecified() -> None:
    assert spelling_of(types_pb2.RunStatus.DESCRIPTOR).allowed == [
        "queued",
        "running",
        "completed",
        "failed",
        "timeout",
        "cancelled",
    ]
