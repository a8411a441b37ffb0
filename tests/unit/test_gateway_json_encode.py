"""Protobuf to JSON, and the success and error envelopes."""

from __future__ import annotations

import math

import grpc
import pytest
from google.protobuf import struct_pb2, timestamp_pb2

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.gateway.envelope import (
    HTTP_STATUS_BY_GRPC_CODE,
    error_from_invalid_argument,
    http_status_for,
    success_body,
)
from taskscheduler.gateway.http_rules import bindings_from_files
from taskscheduler.gateway.json_encode import encode_any_message, encode_message
from taskscheduler.v1 import jobs_pb2, monitoring_pb2, types_pb2


def timestamp(text: str) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromJsonString(text)
    return value


def binding_for(method_name: str):
    return next(b for b in bindings_from_files() if b.method.name == method_name)


def test_encode_run_writes_every_field() -> None:
    run = types_pb2.Run(
        id="run-1",
        job_id="job-1",
        status=types_pb2.RUN_STATUS_TIMEOUT,
        trigger=types_pb2.RUN_TRIGGER_SCHEDULE,
        scheduled_at=timestamp("2026-12-04T10:00:00Z"),
        started_at=timestamp("2026-12-04T10:00:01.5Z"),
        attempts=[types_pb2.Attempt(number=1, fencing_token=2**40)],
    )

    assert encode_message(run) == {
        "id": "run-1",
        "jobId": "job-1",
        "jobName": "",
        "trigger": "schedule",
        "status": "timeout",
        "priority": None,
        "scheduledAt": "2026-12-04T10:00:00Z",
        "dueAt": None,
        "attempt": 0,
        "maxAttempts": 0,
        "workerId": "",
        "startedAt": "2026-12-04T10:00:01.500Z",
        "completedAt": None,
        "duration": 0.0,
        "exitCode": 0,
        "output": "",
        "error": "",
        "attempts": [
            {
                "number": 1,
                "workerId": "",
                "fencingToken": 2**40,
                "startedAt": None,
                "completedAt": None,
                "outcome": None,
                "exitCode": 0,
                "error": "",
            }
        ],
        "executor": "",
        "waitingReason": "",
        "result": None,
    }


@pytest.mark.parametrize(
    ("job", "key", "expected"),
    [
        (types_pb2.Job(type=types_pb2.JOB_TYPE_ONE_TIME), "type", "one-time"),
        (types_pb2.Job(priority=types_pb2.PRIORITY_CRITICAL), "priority", "critical"),
        (types_pb2.Job(status=types_pb2.JOB_STATUS_SCHEDULED), "status", "scheduled"),
        (types_pb2.Job(), "type", None),
        (types_pb2.Job(), "retryPolicy", None),
        (types_pb2.Job(), "payload", None),
        (types_pb2.Job(), "dependencies", []),
        (
            types_pb2.Job(retry_policy=types_pb2.RetryPolicy()),
            "retryPolicy",
            {"maxRetries": 0, "retryDelay": 0, "backoffMultiplier": 0.0, "maxRetryDelay": 0},
        ),
        (
            types_pb2.Job(next_run=timestamp("2026-12-04T10:00:00.000001Z")),
            "nextRun",
            "2026-12-04T10:00:00.000001Z",
        ),
        (
            types_pb2.Job(created_at=timestamp("1970-01-01T00:00:00Z")),
            "createdAt",
            "1970-01-01T00:00:00Z",
        ),
    ],
)
def test_encode_job_field(job: types_pb2.Job, key: str, expected: object) -> None:
    assert encode_message(job)[key] == expected


def test_encode_struct_payload_as_plain_json() -> None:
    payload = struct_pb2.Struct()
    payload.update({"command": ["echo", "hi"], "retries": 3, "ratio": 0.5, "on": True, "x": None})

    assert encode_message(types_pb2.Job(payload=payload))["payload"] == {
        "command": ["echo", "hi"],
        "retries": 3,
        "ratio": 0.5,
        "on": True,
        "x": None,
    }


def test_encode_maps_as_objects() -> None:
    status = jobs_pb2.GetJobStatusResponse(run_counts={"completed": 4, "failed": 0})

    assert encode_message(status)["runCounts"] == {"completed": 4, "failed": 0}


def test_encode_int64_as_json_number() -> None:
    metrics = monitoring_pb2.Metrics(runs_fired_total=2**62, uptime_seconds=0)

    encoded = encode_message(metrics)

    assert encoded["runsFiredTotal"] == 2**62
    assert encoded["uptimeSeconds"] == 0
    assert encoded["collectedAt"] is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(math.nan, "NaN"), (math.inf, "Infinity"), (-math.inf, "-Infinity"), (1.25, 1.25)],
)
def test_encode_non_finite_double(value: float, expected: object) -> None:
    metrics = monitoring_pb2.Metrics(schedule_lag_p50_ms=value)

    assert encode_message(metrics)["scheduleLagP50Ms"] == expected


def test_encode_timestamp_whole_seconds_has_no_fraction() -> None:
    assert encode_any_message(timestamp("2026-12-04T10:00:00Z")) == "2026-12-04T10:00:00Z"


def test_success_body_uses_response_body_field() -> None:
    response = jobs_pb2.GetJobResponse(job=types_pb2.Job(id="j1"))

    body = success_body(binding_for("GetJob"), response)

    assert body["success"] is True
    assert body["data"]["id"] == "j1"  # type: ignore[index]
    assert "pagination" not in body


def test_success_body_lifts_pagination_to_top_level() -> None:
    response = jobs_pb2.ListJobsResponse(
        jobs=[types_pb2.Job(id="j1"), types_pb2.Job(id="j2")],
        pagination=types_pb2.Pagination(limit=2, offset=0, total=5),
    )

    body = success_body(binding_for("ListJobs"), response)

    assert [job["id"] for job in body["data"]] == ["j1", "j2"]  # type: ignore[union-attr]
    assert body["pagination"] == {"limit": 2, "offset": 0, "total": 5}


def test_success_body_whole_message_without_response_body() -> None:
    response = monitoring_pb2.GetHealthResponse(status="ok", role="leader", etcd_reachable=True)

    body = success_body(binding_for("GetHealth"), response)

    assert body == {
        "success": True,
        "data": {
            "status": "ok",
            "coordinatorId": "",
            "role": "leader",
            "leader": "",
            "etcdReachable": True,
            "problems": [],
            "version": "",
        },
    }


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 400),
        (grpc.StatusCode.OUT_OF_RANGE, 400),
        (grpc.StatusCode.NOT_FOUND, 404),
        (grpc.StatusCode.ALREADY_EXISTS, 409),
        (grpc.StatusCode.FAILED_PRECONDITION, 409),
        (grpc.StatusCode.ABORTED, 409),
        (grpc.StatusCode.UNAVAILABLE, 503),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504),
        (grpc.StatusCode.UNIMPLEMENTED, 501),
        (grpc.StatusCode.UNAUTHENTICATED, 401),
        (grpc.StatusCode.PERMISSION_DENIED, 403),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
        (grpc.StatusCode.INTERNAL, 500),
        (grpc.StatusCode.UNKNOWN, 500),
        (grpc.StatusCode.DATA_LOSS, 500),
        (grpc.StatusCode.CANCELLED, 500),
    ],
)
def test_http_status_for_grpc_code(code: grpc.StatusCode, status: int) -> None:
    assert http_status_for(code) == status


def test_status_table_has_no_success_code() -> None:
    assert grpc.StatusCode.OK not in HTTP_STATUS_BY_GRPC_CODE


def test_error_envelope_field_null_when_empty() -> None:
    named = error_from_invalid_argument(InvalidArgumentError("timeout", "bad timeout"))
    unnamed = error_from_invalid_argument(InvalidArgumentError("", "bad body"))

    assert named.to_json() == {
        "success": False,
        "error": {"code": "INVALID_ARGUMENT", "message": "bad timeout", "field": "timeout"},
    }
    assert unnamed.to_json()["error"]["field"] is None  # type: ignore[index]
    assert named.status == 400
