"""A poll cancelled while its runs are being assigned loses no run and strands none.

An agent that goes away mid-poll (its call deadline passes, or it is killed)
cancels the PollWork call on the coordinator. The assignment goes on to its
end, and the leases of runs no agent received expire, so the retry policy
hands them to another agent. Before, such runs could stay `running` until
the next leader change.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import grpc
import pytest
from harness import AgentHandle, ApiClient, ProcessHandle, wait_until

from taskscheduler.v1 import workers_pb2, workers_pb2_grpc

pytestmark = pytest.mark.integration

JOBS = 60
# Lease TTL short, so that leases of undelivered runs run out quickly.
COORDINATOR_FLAGS = {"lease_ttl_s": 3, "heartbeat_interval_s": 1}
CANCELLING_S = 4.0
ACTIVE = {"queued", "running"}


async def _cancel_polls(address: str, until: float) -> int:
    """Register a worker and cut its polls short until `until`; return how many were cut."""
    worker_id = f"canceller-{uuid.uuid4().hex[:8]}"
    cut = 0
    async with grpc.aio.insecure_channel(address) as channel:
        stub = workers_pb2_grpc.WorkerServiceStub(channel)
        await stub.RegisterWorker(
            workers_pb2.RegisterWorkerRequest(
                worker_id=worker_id, hostname="test", capabilities=["noop"], max_concurrent=500
            ),
            timeout=10,
        )
        request = workers_pb2.PollWorkRequest(
            worker_id=worker_id, max_assignments=500, wait_timeout_ms=1000
        )
        deadlines = [0.002, 0.005, 0.01, 0.02, 0.03]
        while time.monotonic() < until:
            try:
                await stub.PollWork(request, timeout=deadlines[cut % len(deadlines)])
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise
            cut += 1
    return cut


def _active_runs(api: ApiClient, job_ids: list[str]) -> list[dict]:
    return [
        run
        for job_id in job_ids
        for run in api.history(job_id, limit=1000)
        if run["status"] in ACTIVE
    ]


async def test_cancelled_polls_strand_no_run(
    start_coordinator: Callable[..., ProcessHandle],
    start_agent: Callable[..., AgentHandle],
    start_gateway: Callable[..., ProcessHandle],
) -> None:
    coordinator = start_coordinator(**COORDINATOR_FLAGS)
    gateway = start_gateway()
    with ApiClient(gateway.url) as api:
        created = api.post(
            "/api/jobs/batch",
            {
                "jobs": [
                    {
                        "name": f"poll-{index}",
                        "schedule": "@every 1s",
                        "executor": "noop",
                        "retryPolicy": {"maxRetries": 10, "retryDelay": 1},
                    }
                    for index in range(JOBS)
                ]
            },
        )
        job_ids = [item["jobId"] for item in created]
        # The only worker cuts its polls short, so they are cancelled while
        # their runs are being assigned.
        cut = await _cancel_polls(str(coordinator.address), time.monotonic() + CANCELLING_S)
        api.post("/api/jobs/batch/pause", {"jobIds": job_ids})
        # Leases of runs no agent received run out after the 3 s TTL, then
        # their retries run on a real agent.
        await asyncio.to_thread(start_agent, capabilities="noop", max_concurrent=200)
        await asyncio.to_thread(
            wait_until,
            lambda: not _active_runs(api, job_ids),
            timeout_s=30,
            interval_s=0.5,
            message="no run queued or running",
        )
        runs = [run for job_id in job_ids for run in api.history(job_id, limit=1000)]

    assert cut > 20
    assert {run["status"] for run in runs} == {"completed"}
    slots = [(run["jobId"], run["scheduledAt"]) for run in runs]
    assert len(slots) == len(set(slots))
