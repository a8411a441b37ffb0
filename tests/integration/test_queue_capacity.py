"""Many more queued runs than the leader holds in memory: all run once, memory stays bounded.

The run count comes from TASKSCHEDULER_TEST_BULK_RUNS (default 5000, so the suite stays
within its time budget; 20000 passed in 104 s on a 2-core machine).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from harness import AgentHandle, Components, ProcessHandle

from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.model import RunStatus
from taskscheduler.v1 import jobs_pb2, jobs_pb2_grpc, types_pb2

pytestmark = pytest.mark.integration

RUNS = int(os.environ.get("TASKSCHEDULER_TEST_BULK_RUNS", "5000"))
JOBS = 40
IN_MEMORY_BOUND = 500


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


async def _create_jobs(stub: jobs_pb2_grpc.JobServiceStub) -> list[str]:
    job_ids = []
    for number in range(JOBS):
        job = types_pb2.Job(
            name=f"bulk-{number}",
            type=types_pb2.JOB_TYPE_RECURRING,
            schedule="@every 24h",
            executor="shell",
        )
        job.payload.update({"command": ["true"]})
        response = await stub.CreateJob(jobs_pb2.CreateJobRequest(job=job))
        job_ids.append(response.job.id)
    return job_ids


async def _execute_many(stub: jobs_pb2_grpc.JobServiceStub, job_ids: list[str]) -> None:
    in_flight = asyncio.Semaphore(64)

    async def execute(number: int) -> None:
        async with in_flight:
            request = jobs_pb2.ExecuteJobRequest(job_id=job_ids[number % len(job_ids)])
            # Concurrent executes of one job conflict on its record; the
            # coordinator writes nothing then and asks for a retry.
            for _ in range(50):
                try:
                    await stub.ExecuteJob(request)
                    return
                except grpc.aio.AioRpcError as error:
                    if error.code() is not grpc.StatusCode.FAILED_PRECONDITION:
                        raise
            raise AssertionError(f"ExecuteJob {request.job_id} kept conflicting")

    await asyncio.gather(*(execute(number) for number in range(RUNS)))


async def _run_records(store: etcd.Etcd, prefix: str) -> list:  # type: ignore[type-arg]
    runs = []
    async for page in store.pages(f"{prefix}/runs/"):
        runs.extend(codec.decode_run(kv.key, kv.value, kv.mod_revision) for kv in page.kvs)
    return runs


# Measured on the development machine: about 105 s for 20000 runs.
@pytest.mark.timeout(300)
async def test_bulk_runs_beyond_memory_bound(
    start_coordinator: Callable[..., ProcessHandle],
    start_agent: Callable[..., AgentHandle],
    components: Components,
    etcd_prefix: str,
) -> None:
    coordinator = start_coordinator(
        max_queued_in_memory=IN_MEMORY_BOUND, history_max_runs=100_000, lease_ttl_s=10
    )
    rss_start = _rss_kib(coordinator.pid)
    store = etcd.Etcd([components.etcd_endpoint])
    started = time.monotonic()
    try:
        async with grpc.aio.insecure_channel(str(coordinator.address)) as channel:
            stub = jobs_pb2_grpc.JobServiceStub(channel)
            job_ids = await _create_jobs(stub)
            await _execute_many(stub, job_ids)
        created_s = time.monotonic() - started
        queued = (await store.range_prefix(f"{etcd_prefix}/queue/", count_only=True)).count
        rss_peak = _rss_kib(coordinator.pid)

        for _ in range(3):
            start_agent(max_concurrent=50)
        deadline = time.monotonic() + 240
        remaining = queued
        while time.monotonic() < deadline:
            remaining = (
                await store.range_prefix(f"{etcd_prefix}/queue/", count_only=True)
            ).count + (await store.range_prefix(f"{etcd_prefix}/leases/", count_only=True)).count
            rss_peak = max(rss_peak, _rss_kib(coordinator.pid))
            if remaining == 0:
                break
            await asyncio.sleep(0.5)
        finished_s = time.monotonic() - started
        runs = await _run_records(store, etcd_prefix)
    finally:
        await store.close()
    rss_end = _rss_kib(coordinator.pid)

    print(
        f"\n{RUNS} runs: created in {created_s:.1f} s, all finished after {finished_s:.1f} s; "
        f"{queued} were queued at once; coordinator RSS KiB start {rss_start}, "
        f"peak {rss_peak}, end {rss_end}"
    )
    assert remaining == 0
    assert len(runs) == RUNS
    assert len({run.id for run in runs}) == RUNS
    assert {run.status for run in runs} == {RunStatus.COMPLETED}
    assert {len(run.attempts) for run in runs} == {1}
    assert queued > IN_MEMORY_BOUND
