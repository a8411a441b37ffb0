"""The gateway app over HTTP, against fake coordinator services served by grpc.aio on loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
import httpx
import pytest
import structlog
from google.protobuf import struct_pb2, timestamp_pb2
from google.protobuf.message import Message

from taskscheduler import errors
from taskscheduler.gateway.app import MAX_BODY_BYTES, create_app
from taskscheduler.gateway.coordinator_client import CoordinatorClient, FailoverPolicy
from taskscheduler.gateway.http_rules import HttpBinding
from taskscheduler.grpc_status import status_code_for, trailers_for
from taskscheduler.v1 import (
    jobs_pb2,
    jobs_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
    types_pb2,
    workers_pb2,
    workers_pb2_grpc,
)

FAST_POLICY = FailoverPolicy(
    call_deadline_s=5.0, connect_timeout_s=0.3, backoff_s=0.05, failover_budget_s=1.0
)
TOTAL_JOBS = 5


def at(text: str) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromJsonString(text)
    return value


async def abort_with(context: grpc.aio.ServicerContext, error: Exception) -> None:
    """Fail the RPC the way the coordinator does: status from the table, field in trailers."""
    code = status_code_for(error)
    context.set_trailing_metadata(trailers_for(error, code))
    await context.abort(code, str(error))


@dataclass
class Received:
    requests: list[Message] = field(default_factory=list)


class FakeJobService(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    async def CreateJob(self, request, context):
        self.received.requests.append(request)
        job = types_pb2.Job()
        job.CopyFrom(request.job)
        job.id = "job-1"
        job.status = types_pb2.JOB_STATUS_SCHEDULED
        job.created_at.CopyFrom(at("2026-12-04T10:00:00Z"))
        return jobs_pb2.CreateJobResponse(job=job)

    async def ListJobs(self, request, context):
        self.received.requests.append(request)
        end = min(request.offset + request.limit, TOTAL_JOBS)
        jobs = [types_pb2.Job(id=f"job-{i}") for i in range(request.offset, end)]
        pagination = types_pb2.Pagination(
            limit=request.limit, offset=request.offset, total=TOTAL_JOBS
        )
        return jobs_pb2.ListJobsResponse(jobs=jobs, pagination=pagination)

    async def GetJob(self, request, context):
        self.received.requests.append(request)
        if request.job_id == "missing":
            await abort_with(context, errors.NotFoundError("job", request.job_id, field="jobId"))
        return jobs_pb2.GetJobResponse(job=types_pb2.Job(id=request.job_id))

    async def UpdateJob(self, request, context):
        self.received.requests.append(request)
        if request.job.schedule == "every tuesday":
            await abort_with(
                context,
                errors.InvalidArgumentError(
                    "schedule", "schedule 'every tuesday' is not a cron expression"
                ),
            )
        return jobs_pb2.UpdateJobResponse(job=types_pb2.Job(id=request.job_id))

    async def GetJobStatus(self, request, context):
        self.received.requests.append(request)
        latest = types_pb2.Run(id="run-9", status=types_pb2.RUN_STATUS_FAILED, exit_code=0)
        return jobs_pb2.GetJobStatusResponse(
            job_id=request.job_id,
            status=types_pb2.JOB_STATUS_FAILED,
            latest_run=latest,
            run_counts={"failed": 1},
        )


class FakeWorkerService(workers_pb2_grpc.WorkerServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    async def ListWorkers(self, request, context):
        self.received.requests.append(request)
        worker = types_pb2.Worker(id="w-1", status=types_pb2.WORKER_STATUS_ONLINE)
        pagination = types_pb2.Pagination(limit=50, offset=0, total=1)
        return workers_pb2.ListWorkersResponse(workers=[worker], pagination=pagination)


class FakeMonitoringService(monitoring_pb2_grpc.MonitoringServiceServicer):
    def __init__(self, received: Received) -> None:
        self.received = received

    async def GetHealth(self, request, context):
        self.received.requests.append(request)
        return monitoring_pb2.GetHealthResponse(status="ok", role="leader", etcd_reachable=True)


@pytest.fixture
async def coordinator() -> AsyncIterator[tuple[Received, str]]:
    received = Received()
    server = grpc.aio.server()
    jobs_pb2_grpc.add_JobServiceServicer_to_server(FakeJobService(received), server)
    workers_pb2_grpc.add_WorkerServiceServicer_to_server(FakeWorkerService(received), server)
    monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server(
        FakeMonitoringService(received), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield received, f"127.0.0.1:{port}"
    await server.stop(None)


@pytest.fixture
async def http(coordinator: tuple[Received, str]) -> AsyncIterator[httpx.AsyncClient]:
    client = CoordinatorClient([coordinator[1]], FAST_POLICY)
    transport = httpx.ASGITransport(app=create_app(client))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as session:
        yield session
    await client.close()


@pytest.fixture
def received(coordinator: tuple[Received, str]) -> list[Message]:
    return coordinator[0].requests


def unused_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CREATE_BODY = {
    "name": "report",
    "type": "one-time",
    "schedule": "2026-12-05T09:00:00+01:00",
    "priority": "high",
    "executor": "shell",
    "payload": {"command": ["python3", "report.py"], "retries": 2},
    "retryPolicy": {"maxRetries": 3, "retryDelay": 300},
    "timeout": 3600,
}


async def test_create_job_round_trip(http: httpx.AsyncClient, received: list[Message]) -> None:
    response = await http.post("/api/jobs", json=CREATE_BODY)

    assert response.status_code == 200
    body = response.json()
    assert body["success"] is True
    job = body["data"]
    assert job["id"] == "job-1"
    assert job["type"] == "one-time"
    assert job["priority"] == "high"
    assert job["status"] == "scheduled"
    assert job["payload"] == {"command": ["python3", "report.py"], "retries": 2}
    assert job["retryPolicy"] == {
        "maxRetries": 3,
        "retryDelay": 300,
        "backoffMultiplier": 0.0,
        "maxRetryDelay": 0,
    }
    assert job["createdAt"] == "2026-12-04T10:00:00Z"
    assert job["nextRun"] is None
    assert job["dependencies"] == []

    [request] = received
    assert isinstance(request, jobs_pb2.CreateJobRequest)
    assert request.job.priority == types_pb2.PRIORITY_HIGH
    assert request.job.type == types_pb2.JOB_TYPE_ONE_TIME
    expected_payload = struct_pb2.Struct()
    expected_payload.update({"command": ["python3", "report.py"], "retries": 2})
    assert request.job.payload == expected_payload
    assert request.job.retry_policy == types_pb2.RetryPolicy(max_retries=3, retry_delay=300)
    assert request.job.timeout == 3600


async def test_list_jobs_with_pagination(http: httpx.AsyncClient, received: list[Message]) -> None:
    response = await http.get("/api/jobs", params={"limit": 2, "offset": 2, "status": "scheduled"})

    assert response.status_code == 200
    body = response.json()
    assert [job["id"] for job in body["data"]] == ["job-2", "job-3"]
    assert body["pagination"] == {"limit": 2, "offset": 2, "total": TOTAL_JOBS}
    assert received == [
        jobs_pb2.ListJobsRequest(limit=2, offset=2, status=types_pb2.JOB_STATUS_SCHEDULED)
    ]


async def test_update_with_invalid_argument_field(
    http: httpx.AsyncClient, received: list[Message]
) -> None:
    response = await http.put("/api/jobs/job-1", json={"schedule": "every tuesday"})

    assert response.status_code == 400
    assert response.json() == {
        "success": False,
        "error": {
            "code": "INVALID_ARGUMENT",
            "message": "schedule 'every tuesday' is not a cron expression",
            "field": "schedule",
        },
    }
    [request] = received
    assert request.job_id == "job-1"
    assert list(request.update_mask.paths) == ["schedule"]


async def test_partial_update_sends_mask_of_body_keys(
    http: httpx.AsyncClient, received: list[Message]
) -> None:
    response = await http.put("/api/jobs/job-1", json={"priority": "low"})

    assert response.status_code == 200
    [request] = received
    assert list(request.update_mask.paths) == ["priority"]
    assert request.job.priority == types_pb2.PRIORITY_LOW


async def test_not_found_maps_to_404(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/jobs/missing")

    assert response.status_code == 404
    assert response.json()["error"] == {
        "code": "NOT_FOUND",
        "message": "job 'missing' not found",
        "field": "jobId",
    }


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        ("POST", "/api/jobs", b'{"priority": "urgent"}', "priority"),
        ("POST", "/api/jobs", b'{"payload": "echo"}', "payload"),
        ("POST", "/api/jobs", b'{"retryPolicy": {"maxRetries": "3"}}', "retryPolicy.maxRetries"),
        ("POST", "/api/jobs", b'{"timeout": 1.5}', "timeout"),
        ("POST", "/api/jobs", b'{"colour": "red"}', "colour"),
        ("POST", "/api/jobs", b'{"name": "a",', None),
        ("POST", "/api/jobs", b"[]", None),
        ("GET", "/api/jobs?limit=many", b"", "limit"),
        ("GET", "/api/jobs?priority=urgent", b"", "priority"),
        ("PUT", "/api/jobs/job-1", b"{}", None),
    ],
)
async def test_rejected_input_never_reaches_coordinator(
    http: httpx.AsyncClient,
    received: list[Message],
    method: str,
    path: str,
    body: bytes,
    field: str | None,
) -> None:
    response = await http.request(method, path, content=body)

    assert response.status_code == 400
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "INVALID_ARGUMENT"
    assert response.json()["error"]["field"] == field
    assert received == []


async def test_whole_response_and_map_fields(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/jobs/job-7/status")

    data = response.json()["data"]
    assert response.status_code == 200
    assert data["jobId"] == "job-7"
    assert data["status"] == "failed"
    assert data["nextRun"] is None
    assert data["latestRun"]["exitCode"] == 0
    assert data["latestRun"]["status"] == "failed"
    assert data["runCounts"] == {"failed": 1}


async def test_health_and_workers(http: httpx.AsyncClient) -> None:
    health = await http.get("/health")
    workers = await http.get("/api/workers")

    assert health.status_code == 200
    assert health.json()["data"]["status"] == "ok"
    assert health.json()["data"]["etcdReachable"] is True
    assert workers.json()["data"][0]["status"] == "online"
    assert workers.json()["pagination"] == {"limit": 50, "offset": 0, "total": 1}


async def test_unimplemented_rpc_maps_to_501(http: httpx.AsyncClient) -> None:
    response = await http.get("/api/monitoring/metrics")

    assert response.status_code == 501
    assert response.json()["error"]["code"] == "UNIMPLEMENTED"


@pytest.mark.parametrize("path", ["/api/nothing", "/api/jobs/", "/api/jobs/%2F"])
async def test_unknown_path_is_404_envelope(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)

    assert response.status_code == 404
    assert response.json()["success"] is False
    assert response.json()["error"]["code"] == "NOT_FOUND"
    assert response.json()["error"]["field"] is None


async def test_wrong_method_is_405_envelope(http: httpx.AsyncClient) -> None:
    response = await http.patch("/api/jobs/job-1")

    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}


async def test_dashboard_and_openapi_served(http: httpx.AsyncClient) -> None:
    page = await http.get("/")
    document = await http.get("/openapi.json")

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/api/monitoring/dashboard" in page.text
    assert "/api/jobs" in page.text
    assert document.status_code == 200
    assert "/api/jobs/{jobId}" in document.json()["paths"]


async def test_coordinator_down_is_503() -> None:
    client = CoordinatorClient([f"127.0.0.1:{unused_port()}"], FAST_POLICY)
    transport = httpx.ASGITransport(app=create_app(client))
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as session:
        health = await session.get("/health")
        create = await session.post("/api/jobs", json=CREATE_BODY)
    await client.close()

    assert health.status_code == 503
    assert health.json()["success"] is False
    assert health.json()["error"]["code"] == "UNAVAILABLE"
    assert "no coordinator reachable" in health.json()["error"]["message"]
    assert create.status_code == 503


class BrokenClient:
    async def call(self, binding: HttpBinding, request: Message) -> Message:
        raise RuntimeError("bug in the gateway")


async def test_gateway_bug_is_500_envelope_and_logged() -> None:
    transport = httpx.ASGITransport(app=create_app(BrokenClient()))
    with structlog.testing.capture_logs() as logged:
        async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as session:
            response = await session.get("/health")

    assert response.status_code == 500
    assert response.json() == {
        "success": False,
        "error": {"code": "INTERNAL", "message": "internal gateway error", "field": None},
    }
    failures = [entry for entry in logged if entry["log_level"] == "error"]
    assert failures[0]["event"] == "gateway failed to serve a request"
    assert failures[0]["exc_info"] is True
    assert failures[1]["status"] == 500
    assert failures[1]["path"] == "/health"


async def test_oversized_body_is_413_envelope(
    http: httpx.AsyncClient, received: list[Message]
) -> None:
    response = await http.post("/api/jobs", content=b" " * (MAX_BODY_BYTES + 1))

    assert response.status_code == 413
    assert response.json()["success"] is False
    assert response.json()["error"]["message"] == (
        f"request body is larger than {MAX_BODY_BYTES} bytes; send a smaller payload"
    )
    assert received == []
