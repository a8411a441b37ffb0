"""HTTP request to gRPC request: path variables, query parameters, body and update mask."""

from __future__ import annotations

import pytest

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.gateway.http_rules import HttpBinding, bindings_from_files
from taskscheduler.gateway.request_mapping import build_request
from taskscheduler.v1 import jobs_pb2, types_pb2, workers_pb2

BINDINGS = {binding.method.name: binding for binding in bindings_from_files()}


def build(
    method_name: str,
    *,
    path: dict[str, str] | None = None,
    query: list[tuple[str, str]] | None = None,
    body: bytes = b"",
):
    binding: HttpBinding = BINDINGS[method_name]
    return build_request(binding, path_params=path or {}, query=query or [], body=body)


def test_create_job_body_fills_job_field() -> None:
    request = build(
        "CreateJob",
        body=b'{"name": "n", "type": "one-time", "priority": "high", "payload": {"a": [1]}}',
    )

    assert isinstance(request, jobs_pb2.CreateJobRequest)
    assert request.job.name == "n"
    assert request.job.type == types_pb2.JOB_TYPE_ONE_TIME
    assert request.job.priority == types_pb2.PRIORITY_HIGH
    assert list(request.job.payload["a"]) == [1]


def test_create_job_empty_body_sends_empty_job() -> None:
    request = build("CreateJob", body=b"")

    assert request.HasField("job")
    assert request.job.name == ""


def test_path_variable_binds_request_field() -> None:
    request = build("GetJob", path={"job_id": "job-42"})

    assert request.job_id == "job-42"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ([], (0, 0, 0, 0)),
        ([("status", "paused")], (types_pb2.JOB_STATUS_PAUSED, 0, 0, 0)),
        ([("priority", "critical")], (0, types_pb2.PRIORITY_CRITICAL, 0, 0)),
        ([("limit", "10"), ("offset", "20")], (0, 0, 10, 20)),
        ([("status", ""), ("priority", ""), ("limit", ""), ("offset", "")], (0, 0, 0, 0)),
        ([("limit", "+5")], (0, 0, 5, 0)),
    ],
)
def test_list_jobs_query_parameters(query: list[tuple[str, str]], expected: tuple) -> None:
    request = build("ListJobs", query=query)

    assert (request.status, request.priority, request.limit, request.offset) == expected


@pytest.mark.parametrize(
    ("method_name", "query", "field", "message_part"),
    [
        ("ListJobs", [("limit", "ten")], "limit", "limit must be an integer, got string 'ten'"),
        ("ListJobs", [("limit", "1.5")], "limit", "must be an integer"),
        ("ListJobs", [("limit", "99999999999")], "limit", "from -2147483648 to 2147483647"),
        ("ListJobs", [("status", "done")], "status", "one of scheduled, running, completed"),
        ("ListJobs", [("priority", "HIGH")], "priority", "one of low, normal, high, critical"),
        ("ListJobs", [("state", "paused")], "state", "unknown query parameter 'state'"),
        ("ListJobs", [("limit", "1"), ("limit", "2")], "limit", "given more than once"),
        ("ListJobHistory", [("jobId", "x")], "jobId", "it is part of the path"),
        ("ExecuteJob", [("jobId", "x")], "jobId", "it is part of the path"),
        ("Heartbeat", [("leases", "x")], "leases", "send it in the body"),
        ("UpdateJob", [("job", "x")], "job", "send it in the body"),
        ("UpdateJob", [("job.priority", "low")], "job.priority", "send it in the body"),
    ],
)
def test_bad_query_parameter(
    method_name: str, query: list[tuple[str, str]], field: str, message_part: str
) -> None:
    binding = BINDINGS[method_name]
    path = {name: "x1" for name in binding.path_fields}
    body = b'{"priority": "low"}' if method_name == "UpdateJob" else b""

    with pytest.raises(InvalidArgumentError) as caught:
        build(method_name, path=path, query=query, body=body)

    assert caught.value.field == field
    assert message_part in caught.value.message


def test_snake_case_query_parameter_is_accepted() -> None:
    request = build("ListJobHistory", path={"job_id": "j1"}, query=[("limit", "3")])

    assert request.job_id == "j1"
    assert request.limit == 3


def test_execute_body_star_accepts_empty_body() -> None:
    request = build("ExecuteJob", path={"job_id": "j1"}, body=b"")

    assert request == jobs_pb2.ExecuteJobRequest(job_id="j1")


def test_body_star_path_variable_wins_over_body() -> None:
    request = build("Heartbeat", path={"worker_id": "w-path"}, body=b'{"workerId": "w-body"}')

    assert request.worker_id == "w-path"


def test_register_worker_whole_body() -> None:
    request = build(
        "RegisterWorker",
        body=b'{"workerId": "w1", "capabilities": ["shell"], "labels": {"zone": "a"},'
        b' "maxConcurrent": 4}',
    )

    assert request == workers_pb2.RegisterWorkerRequest(
        worker_id="w1", capabilities=["shell"], labels={"zone": "a"}, max_concurrent=4
    )


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        (b'{"priority": "low"}', ["priority"]),
        (b'{"retryPolicy": {"maxRetries": 1}, "timeout": 5}', ["retry_policy", "timeout"]),
        (b'{"next_run": "2026-12-04T10:00:00Z"}', ["next_run"]),
        (b'{"description": null}', ["description"]),
    ],
)
def test_update_mask_derived_from_body_keys(body: bytes, paths: list[str]) -> None:
    request = build("UpdateJob", path={"job_id": "j1"}, body=body)

    assert request.job_id == "j1"
    assert list(request.update_mask.paths) == paths


def test_update_mask_from_query_is_kept() -> None:
    request = build(
        "UpdateJob",
        path={"job_id": "j1"},
        query=[("updateMask", "priority,retryPolicy.maxRetries")],
        body=b'{"priority": "low", "timeout": 9}',
    )

    assert list(request.update_mask.paths) == ["priority", "retry_policy.max_retries"]


def test_update_with_empty_body_is_rejected() -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        build("UpdateJob", path={"job_id": "j1"}, body=b"{}")

    assert caught.value.field == ""
    assert "names no field to update" in caught.value.message


@pytest.mark.parametrize(
    ("method_name", "body", "field"),
    [
        ("CreateJob", b'{"priority": "urgent"}', "priority"),
        ("CreateJob", b'{"payload": 3}', "payload"),
        ("CreateJob", b'{"retryPolicy": {"maxRetries": "3"}}', "retryPolicy.maxRetries"),
        ("CreateJob", b'{"timeout": 1.5}', "timeout"),
        ("CreateJob", b'{"jobs": []}', "jobs"),
        ("CreateJob", b"[]", ""),
        ("CreateJob", b"{", ""),
        ("UpdateJob", b'{"updateMask": "priority"}', "updateMask"),
        ("Heartbeat", b'{"leases": [{"attempt": "1"}]}', "leases[0].attempt"),
        ("RegisterWorker", b'{"labels": {"zone": 1}}', "labels.zone"),
    ],
)
def test_bad_body_names_field(method_name: str, body: bytes, field: str) -> None:
    path = {name: "x1" for name in BINDINGS[method_name].path_fields}

    with pytest.raises(InvalidArgumentError) as caught:
        build(method_name, path=path, body=body)

    assert caught.value.field == field


def test_get_ignores_body() -> None:
    request = build("GetJob", path={"job_id": "j1"}, body=b"not json")

    assert request == jobs_pb2.GetJobRequest(job_id="j1")
