"""Batch create, pause, resume and delete over REST and gRPC, against a real stack."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from harness import DEFAULT_JOB_FIELDS, Stack, wait_until

from taskscheduler.grpc_status import field_of
from taskscheduler.v1 import jobs_pb2, jobs_pb2_grpc, types_pb2

pytestmark = pytest.mark.integration

SAME_BATCH_NOTE = (
    "Jobs of the same batch cannot be dependencies, because their ids are assigned "
    "when the batch is written; create dependent jobs in a later request"
)
TOO_MANY = (
    "{field} lists 1001 items, more than the maximum of 1000 per request. "
    "Split the request into requests of at most 1000 items"
)
REST_PATHS = {
    "create": "/api/jobs/batch",
    "delete": "/api/jobs/batch/delete",
    "pause": "/api/jobs/batch/pause",
    "resume": "/api/jobs/batch/resume",
}


@dataclass(frozen=True)
class Item:
    """One item's result, the same whichever transport carried it; "" for unset values."""

    index: int
    job_id: str
    status: str = ""
    code: str = ""
    message: str = ""
    field: str = ""


@dataclass(frozen=True)
class Rejection:
    """A whole request's error."""

    code: str
    message: str
    field: str


class RestBatches:
    def __init__(self, stack: Stack) -> None:
        self._api = stack.api

    def by_ids(self, operation: str, job_ids: list[str]) -> list[Item]:
        results = self._api.post(REST_PATHS[operation], json={"jobIds": job_ids})
        return [_item_from_json(result) for result in results]

    def reject(self, operation: str, count: int) -> Rejection:
        if operation == "create":
            body: dict[str, Any] = {"jobs": [_job_json(f"too-many-{n}") for n in range(count)]}
        else:
            body = {"jobIds": [f"job-{n}" for n in range(count)]}
        error = self._api.expect_error("POST", REST_PATHS[operation], 400, json=body)
        return Rejection(error["code"], error["message"], error["field"])


class GrpcBatches:
    def __init__(self, stack: Stack) -> None:
        self._channel = grpc.insecure_channel(str(stack.coordinator.address))
        self.stub = jobs_pb2_grpc.JobServiceStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def by_ids(self, operation: str, job_ids: list[str]) -> list[Item]:
        call, request_type = self._id_call(operation)
        response = call(request_type(job_ids=job_ids), timeout=10)
        return [_item_from_proto(result) for result in response.results]

    def reject(self, operation: str, count: int) -> Rejection:
        with pytest.raises(grpc.RpcError) as caught:
            if operation == "create":
                jobs = [_job_proto(f"too-many-{n}") for n in range(count)]
                self.stub.BatchCreateJobs(jobs_pb2.BatchCreateJobsRequest(jobs=jobs), timeout=10)
            else:
                call, request_type = self._id_call(operation)
                call(request_type(job_ids=[f"job-{n}" for n in range(count)]), timeout=10)
        error = caught.value
        return Rejection(error.code().name, error.details(), field_of(error))  # type: ignore[attr-defined]

    def _id_call(self, operation: str) -> tuple[Any, Any]:
        calls = {
            "delete": (self.stub.BatchDeleteJobs, jobs_pb2.BatchDeleteJobsRequest),
            "pause": (self.stub.BatchPauseJobs, jobs_pb2.BatchPauseJobsRequest),
            "resume": (self.stub.BatchResumeJobs, jobs_pb2.BatchResumeJobsRequest),
        }
        return calls[operation]


Batches = RestBatches | GrpcBatches


@pytest.fixture(params=["rest", "grpc"])
def batches(request: pytest.FixtureRequest, stack: Stack) -> Iterator[Batches]:
    if request.param == "rest":
        yield RestBatches(stack)
        return
    client = GrpcBatches(stack)
    yield client
    client.close()


def _job_json(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, **DEFAULT_JOB_FIELDS, **fields}


def _job_proto(name: str, **fields: Any) -> types_pb2.Job:
    job = types_pb2.Job(
        name=name, type=types_pb2.JOB_TYPE_RECURRING, schedule="@every 1h", executor="shell"
    )
    job.payload.update({"command": ["true"]})
    for key, value in fields.items():
        setattr(job, key, value)
    return job


def _item_from_json(result: dict[str, Any]) -> Item:
    error = result["error"] or {}
    return Item(
        index=result["index"],
        job_id=result["jobId"],
        status=(result["job"] or {}).get("status", ""),
        code=error.get("code", ""),
        message=error.get("message", ""),
        field=error.get("field", ""),
    )


def _item_from_proto(result: jobs_pb2.BatchJobResult) -> Item:
    status = ""
    if result.HasField("job"):
        status = types_pb2.JobStatus.Name(result.job.status).removeprefix("JOB_STATUS_").lower()
    return Item(
        index=result.index,
        job_id=result.job_id,
        status=status,
        code=result.error.code,
        message=result.error.message,
        field=result.error.field,
    )


def _job_ids(stack: Stack) -> list[str]:
    jobs = stack.api.get("/api/jobs", limit=1000)
    return sorted(job["id"] for job in jobs)


def _status(stack: Stack, job_id: str) -> str:
    return stack.api.get(f"/api/jobs/{job_id}")["status"]


def _not_found(index: int, job_id: str) -> Item:
    return Item(index, job_id, code="NOT_FOUND", message=f"job {job_id!r} not found", field="jobId")


def _repeated(index: int, job_id: str, first: int) -> Item:
    message = f"job {job_id} is listed more than once, first at index {first}. List each job once"
    return Item(index, job_id, code="INVALID_ARGUMENT", message=message, field="jobIds")


# Create


def test_create_250_with_3_invalid(stack: Stack) -> None:
    now = datetime.now(UTC).isoformat()
    bodies = [
        _job_json(f"bulk-{n}", type="one-time", schedule=now, payload={"command": ["true"]})
        for n in range(250)
    ]
    bodies[100] = {**bodies[100], "name": ""}
    bodies[101] = {**bodies[101], "type": "recurring", "schedule": "61 * * * *"}
    bodies[150] = {**bodies[150], "dependencies": ["job-not-stored"]}

    results = stack.api.post("/api/jobs/batch", json={"jobs": bodies})

    items = [_item_from_json(result) for result in results]
    assert [item.index for item in items] == list(range(250))
    assert items[100] == Item(
        100,
        "",
        code="INVALID_ARGUMENT",
        message="name is required. Give the job a name of 1 to 200 characters",
        field="name",
    )
    assert items[101] == Item(
        101,
        "",
        code="INVALID_ARGUMENT",
        message="schedule '61 * * * *': minute 61 is out of range 0-59",
        field="schedule",
    )
    assert items[150] == Item(
        150,
        "",
        code="INVALID_ARGUMENT",
        message="dependencies name unknown jobs: job-not-stored. Create those jobs first or "
        f"remove their ids. {SAME_BATCH_NOTE}",
        field="dependencies",
    )
    created = [item for n, item in enumerate(items) if n not in (100, 101, 150)]
    for item in created:
        assert item.code == ""
        assert item.job_id.startswith("job-")
        assert item.status == "scheduled"
    created_ids = sorted(item.job_id for item in created)
    assert len(set(created_ids)) == 247
    assert _job_ids(stack) == created_ids
    names = {job["name"] for job in stack.api.get("/api/jobs", limit=1000)}
    assert names == {f"bulk-{n}" for n in range(250) if n not in (100, 101, 150)}

    def completed_total() -> int:
        page = stack.api.http.get("/api/jobs", params={"status": "completed", "limit": 1})
        return page.json()["pagination"]["total"]

    wait_until(lambda: completed_total() == 247, timeout_s=60, message="247 completed jobs")


def test_create_over_grpc(stack: Stack) -> None:
    client = GrpcBatches(stack)
    jobs = [
        _job_proto("first"),
        _job_proto("unknown-priority", priority=99),
        _job_proto("bad-timezone", timezone="Mars/Olympus"),
        _job_proto("last", priority=types_pb2.PRIORITY_HIGH),
    ]
    try:
        response = client.stub.BatchCreateJobs(
            jobs_pb2.BatchCreateJobsRequest(jobs=jobs), timeout=10
        )
    finally:
        client.close()

    results = list(response.results)
    assert [result.index for result in results] == [0, 1, 2, 3]
    assert [result.error.code for result in results] == [
        "",
        "INVALID_ARGUMENT",
        "INVALID_ARGUMENT",
        "",
    ]
    assert [result.error.field for result in results] == ["", "priority", "timezone", ""]
    assert [result.job.name for result in results] == ["first", "", "", "last"]
    assert results[3].job.priority == types_pb2.PRIORITY_HIGH
    assert _job_ids(stack) == sorted([results[0].job_id, results[3].job_id])
    assert stack.api.get(f"/api/jobs/{results[3].job_id}")["priority"] == "high"


# Pause, resume, delete


def test_pause_resume_unknown_and_repeated(stack: Stack, batches: Batches) -> None:
    first = stack.api.create_job()["id"]
    second = stack.api.create_job()["id"]
    unknown = f"job-{uuid.uuid4().hex[:16]}"
    ids = [first, unknown, second, first]

    paused = batches.by_ids("pause", ids)

    assert paused == [
        Item(0, first, status="paused"),
        _not_found(1, unknown),
        Item(2, second, status="paused"),
        _repeated(3, first, 0),
    ]
    assert _status(stack, first) == "paused"
    assert _status(stack, second) == "paused"

    resumed = batches.by_ids("resume", [second, second, unknown])

    assert resumed == [
        Item(0, second, status="scheduled"),
        _repeated(1, second, 0),
        _not_found(2, unknown),
    ]
    assert _status(stack, first) == "paused"
    assert _status(stack, second) == "scheduled"


def test_delete_unknown_and_repeated(stack: Stack, batches: Batches) -> None:
    kept = stack.api.create_job()["id"]
    doomed = [stack.api.create_job()["id"] for _ in range(3)]
    unknown = f"job-{uuid.uuid4().hex[:16]}"
    ids = [doomed[0], unknown, doomed[1], doomed[0], doomed[2]]

    results = batches.by_ids("delete", ids)

    assert results == [
        Item(0, doomed[0]),
        _not_found(1, unknown),
        Item(2, doomed[1]),
        _repeated(3, doomed[0], 0),
        Item(4, doomed[2]),
    ]
    assert _job_ids(stack) == [kept]
    for job_id in doomed:
        stack.api.expect_error("GET", f"/api/jobs/{job_id}", 404)


def test_delete_with_dependants_rejected(stack: Stack, batches: Batches) -> None:
    upstream = stack.api.create_job()["id"]
    dependant = stack.api.create_job(schedule="", dependencies=[upstream])["id"]
    other = stack.api.create_job()["id"]

    results = batches.by_ids("delete", [upstream, other])

    assert results == [
        Item(
            0,
            upstream,
            code="FAILED_PRECONDITION",
            message=f"job {upstream} cannot be deleted because these jobs depend on it: "
            f"{dependant}. Remove it from their dependencies or delete them first",
            field="jobId",
        ),
        Item(1, other),
    ]
    assert _job_ids(stack) == sorted([upstream, dependant])

    # With its dependant in the same batch, the dependant goes first and both are deleted.
    assert batches.by_ids("delete", [upstream, dependant]) == [
        Item(0, upstream),
        Item(1, dependant),
    ]
    assert _job_ids(stack) == []


@pytest.mark.parametrize(
    ("operation", "field"),
    [("create", "jobs"), ("pause", "jobIds"), ("delete", "jobIds")],
)
def test_over_1000_items_rejected(
    stack: Stack, batches: Batches, operation: str, field: str
) -> None:
    existing = stack.api.create_job()["id"]

    rejection = batches.reject(operation, 1001)

    assert rejection == Rejection("INVALID_ARGUMENT", TOO_MANY.format(field=field), field)
    assert _job_ids(stack) == [existing]
    assert _status(stack, existing) == "scheduled"


@pytest.mark.parametrize(("operation", "field"), [("create", "jobs"), ("resume", "jobIds")])
def test_empty_batch_rejected(batches: Batches, operation: str, field: str) -> None:
    rejection = batches.reject(operation, 0)

    assert rejection == Rejection(
        "INVALID_ARGUMENT", f"{field} is empty. List 1 to 1000 items", field
    )
