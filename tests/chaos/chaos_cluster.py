"""Helpers for the chaos tests: a replicated cluster, its leader, its etcd records, its logs.

The tests are async so that a TCP proxy and etcd clients can run beside
them. Starting a process blocks until it is ready, so it goes through
`asyncio.to_thread`. Processes log JSON here, which `log_events` parses,
so timings come from the processes' own UTC timestamps.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import aetcd
import grpc
from google.protobuf import struct_pb2
from harness import AgentHandle, Components, ProcessHandle

from taskscheduler.coordinator import codec
from taskscheduler.coordinator.ids import scheduled_run_id
from taskscheduler.coordinator.model import Job, Run, RunStatus, RunTrigger
from taskscheduler.v1 import (
    jobs_pb2,
    jobs_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
    types_pb2,
)

# Structured logs make the timestamps and ids of every line machine-readable.
JSON_LOGS = {"log_format": "json"}
# Enough slots that three agents keep up with a few dozen short runs a second.
AGENT_MAX_CONCURRENT = 8


@dataclass
class Cluster:
    """Coordinators and agents on one etcd prefix, and an etcd client to inspect it."""

    components: Components
    etcd: aetcd.Client
    coordinators: list[ProcessHandle]
    agents: list[AgentHandle] = field(default_factory=list)

    @property
    def prefix(self) -> str:
        return self.components.prefix

    def coordinator_at(self, address: str) -> ProcessHandle:
        for handle in self.coordinators:
            if handle.address == address:
                return handle
        raise LookupError(f"no coordinator of this test listens on {address!r}")

    def agent_named(self, worker_id: str) -> AgentHandle:
        for handle in self.agents:
            if handle.worker_id == worker_id:
                return handle
        raise LookupError(f"no agent of this test has worker id {worker_id!r}")


async def start_cluster(
    components: Components,
    etcd: aetcd.Client,
    *,
    coordinators: int = 3,
    agents: int = 3,
    **coordinator_flags: object,
) -> Cluster:
    """Start the coordinators, then the agents (JSON logs, fast test timings)."""
    cluster = Cluster(components=components, etcd=etcd, coordinators=[])
    for _ in range(coordinators):
        handle = await asyncio.to_thread(
            components.start_coordinator, **JSON_LOGS, **coordinator_flags
        )
        cluster.coordinators.append(handle)
    for _ in range(agents):
        cluster.agents.append(await start_agent(cluster))
    return cluster


async def start_agent(cluster: Cluster, **flags: object) -> AgentHandle:
    flags = {"max_concurrent": AGENT_MAX_CONCURRENT, **JSON_LOGS, **flags}
    return await asyncio.to_thread(cluster.components.start_agent, **flags)


# The leader


@dataclass(frozen=True)
class LeaderRecord:
    """The leader key as stored: who leads, and its create revision (the leader's fence)."""

    coordinator_id: str
    address: str
    fence: int


async def read_leader(cluster: Cluster) -> LeaderRecord | None:
    kv = await cluster.etcd.get(f"{cluster.prefix}/leader".encode())
    if kv is None:
        return None
    coordinator_id, _, address = kv.value.decode().partition(" ")
    return LeaderRecord(coordinator_id, address, kv.create_revision)


async def wait_for_leader(
    cluster: Cluster, *, other_than: str = "", timeout_s: float = 20.0
) -> LeaderRecord:
    """Wait until a leader key names a coordinator at an address other than `other_than`."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        leader = await read_leader(cluster)
        if leader is not None and leader.address != other_than:
            return leader
        if asyncio.get_running_loop().time() >= deadline:
            raise AssertionError(
                f"no leader other than {other_than!r} within {timeout_s} s; leader key: {leader}"
            )
        await asyncio.sleep(0.05)


async def get_health(address: str, timeout_s: float = 6.0) -> monitoring_pb2.GetHealthResponse:
    """Call MonitoringService.GetHealth on one coordinator."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = monitoring_pb2_grpc.MonitoringServiceStub(channel)
        return await stub.GetHealth(monitoring_pb2.GetHealthRequest(), timeout=timeout_s)


async def etcd_revision(cluster: Cluster) -> int:
    """Return etcd's current revision, read from the header of a range response."""
    result = await cluster.etcd.get_prefix(f"{cluster.prefix}/leader".encode())
    return int(result.header.revision)


# Jobs


def one_time_job(
    name: str,
    at: datetime,
    command: Sequence[str],
    *,
    max_retries: int = 0,
    retry_delay_s: int = 0,
) -> types_pb2.Job:
    return _job(
        name,
        types_pb2.JOB_TYPE_ONE_TIME,
        at.astimezone(UTC).isoformat(),
        command,
        types_pb2.RetryPolicy(max_retries=max_retries, retry_delay=retry_delay_s),
    )


def recurring_job(name: str, schedule: str, command: Sequence[str]) -> types_pb2.Job:
    return _job(name, types_pb2.JOB_TYPE_RECURRING, schedule, command, None)


def _job(
    name: str,
    job_type: int,
    schedule: str,
    command: Sequence[str],
    retry_policy: types_pb2.RetryPolicy | None,
) -> types_pb2.Job:
    payload = struct_pb2.Struct()
    payload.update({"command": list(command)})
    job = types_pb2.Job(
        name=name, type=job_type, schedule=schedule, executor="shell", payload=payload
    )
    if retry_policy is not None:
        job.retry_policy.CopyFrom(retry_policy)
    return job


async def create_jobs(
    addresses: Sequence[str], jobs: Sequence[types_pb2.Job], *, concurrency: int = 16
) -> list[str]:
    """Create the jobs over gRPC, spread over the coordinators; return their ids in order."""
    channels = [grpc.aio.insecure_channel(address) for address in addresses]
    stubs = [jobs_pb2_grpc.JobServiceStub(channel) for channel in channels]
    limit = asyncio.Semaphore(concurrency)

    async def create(index: int, job: types_pb2.Job) -> str:
        async with limit:
            stub = stubs[index % len(stubs)]
            response = await stub.CreateJob(jobs_pb2.CreateJobRequest(job=job), timeout=10)
            return str(response.job.id)

    try:
        return list(await asyncio.gather(*(create(i, job) for i, job in enumerate(jobs))))
    finally:
        for channel in channels:
            await channel.close()


# Records in etcd


async def read_runs(cluster: Cluster) -> list[Run]:
    """Return every run record under the cluster's prefix."""
    result = await cluster.etcd.get_prefix(f"{cluster.prefix}/runs/".encode())
    return [codec.decode_run(kv.key.decode(), kv.value, kv.mod_revision) for kv in result]


async def read_jobs(cluster: Cluster) -> dict[str, Job]:
    """Return every job record under the cluster's prefix, by job id."""
    result = await cluster.etcd.get_prefix(f"{cluster.prefix}/jobs/".encode())
    jobs = [codec.decode_job(kv.key.decode(), kv.value, kv.mod_revision) for kv in result]
    return {job.id: job for job in jobs}


def runs_by_job(runs: Iterable[Run]) -> dict[str, list[Run]]:
    grouped: dict[str, list[Run]] = {}
    for run in runs:
        grouped.setdefault(run.job_id, []).append(run)
    return grouped


async def each_completed_since(cluster: Cluster, job_ids: Iterable[str], since: datetime) -> bool:
    """Return whether every job has a completed run scheduled after `since`."""
    grouped = runs_by_job(await read_runs(cluster))
    return all(
        any(run.status is RunStatus.COMPLETED and run.scheduled_at > since for run in runs)
        for runs in (grouped.get(job_id, []) for job_id in job_ids)
    )


def shared_slots(runs: Iterable[Run]) -> list[tuple[str, datetime]]:
    """Return the (job id, scheduled time) slots that more than one run claims."""
    counts = Counter((run.job_id, run.scheduled_at) for run in runs)
    return sorted(slot for slot, count in counts.items() if count > 1)


def misnamed_runs(runs: Iterable[Run]) -> list[str]:
    """Return scheduled runs whose id is not the one derived from (job id, scheduled time)."""
    return [
        run.id
        for run in runs
        if run.trigger is RunTrigger.SCHEDULE
        and run.id != scheduled_run_id(run.job_id, run.scheduled_at)
    ]


# Logs


def log_events(handle: ProcessHandle, event: str | None = None) -> list[dict[str, Any]]:
    """Return the JSON log lines of a process (every start of it), optionally one event only.

    Each returned dict has `at`, the line's timestamp as an aware datetime.
    Lines that are not JSON objects (the harness's header, stray stderr) are skipped.
    """
    events = []
    for line in handle.logs().splitlines():
        # The substring test skips most lines before the costlier JSON parse.
        if not line.startswith("{") or (event is not None and event not in line):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if event is not None and record.get("event") != event:
            continue
        record["at"] = datetime.fromisoformat(record["timestamp"])
        events.append(record)
    return events


def events_after(
    handle: ProcessHandle, event: str, after: datetime, **fields: object
) -> list[dict[str, Any]]:
    """Return the process's `event` lines logged after `after` whose fields match `fields`."""
    return [
        record
        for record in log_events(handle, event)
        if record["at"] > after and all(record.get(k) == v for k, v in fields.items())
    ]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def sleep_until(moment: datetime) -> None:
    """Sleep until the wall-clock `moment`; a test uses it to place a fault on a timeline."""
    delay_s = (moment - utc_now()).total_seconds()
    if delay_s > 0:
        await asyncio.sleep(delay_s)
