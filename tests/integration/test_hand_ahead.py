"""Runs handed to agents before they are due start at their due time, never earlier.

A real agent runs `@every 1s` noop jobs, and every run it reports started
at or after its scheduled time. Two hand-written workers show the
protocol: a poll without `accepts_start_at` gets only runs already due,
and a poll with it gets runs up to --hand-ahead-ms early, each with
`start_at` set.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from harness import AgentHandle, ApiClient, ProcessHandle, wait_until

from taskscheduler.v1 import workers_pb2, workers_pb2_grpc

pytestmark = pytest.mark.integration

# Both windows at their maximum, so that runs are queued and handed out up
# to a second before they are due.
WIDEST_AHEAD_FLAGS = {"hand_ahead_ms": 1000, "fire_ahead_ms": 1000}
MAX_HAND_AHEAD = timedelta(milliseconds=1000)
# The machine is shared, so the lag bound is loose. A run started on time lags
# by milliseconds.
MAX_LAG = timedelta(seconds=1)
POLL_WAIT_MS = 1000
RPC_TIMEOUT_S = 10.0


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _create_noop_jobs(api: ApiClient, count: int, **fields: object) -> list[str]:
    jobs = [
        api.create_job(schedule="@every 1s", executor="noop", payload={}, **fields)
        for _ in range(count)
    ]
    return [job["id"] for job in jobs]


def _all_runs_if_completed(api: ApiClient, job_ids: list[str], at_least: int) -> list[dict]:
    """Return every run of the jobs once each job has `at_least` completed runs, else []."""
    runs: list[dict] = []
    for job_id in job_ids:
        history = api.history(job_id, limit=1000)
        if sum(run["status"] == "completed" for run in history) < at_least:
            return []
        runs += history
    return runs


@pytest.mark.parametrize("flags", [{}, WIDEST_AHEAD_FLAGS], ids=["default", "widest"])
def test_agent_never_starts_runs_early(
    start_coordinator: Callable[..., ProcessHandle],
    start_agent: Callable[..., AgentHandle],
    start_gateway: Callable[..., ProcessHandle],
    flags: dict[str, int],
) -> None:
    start_coordinator(**flags)
    agent = start_agent(capabilities="noop", max_concurrent=8)
    gateway = start_gateway()
    with ApiClient(gateway.url) as api:
        job_ids = _create_noop_jobs(api, 3)
        runs = wait_until(
            lambda: _all_runs_if_completed(api, job_ids, at_least=4),
            timeout_s=15,
            interval_s=0.5,
            message="four completed runs of each job",
        )

    completed = [run for run in runs if run["status"] == "completed"]
    assert len(completed) >= 12
    assert [run["id"] for run in runs if run["status"] == "failed"] == []
    for run in completed:
        scheduled_at = _at(run["scheduledAt"])
        started_at = _at(run["startedAt"])
        (attempt,) = run["attempts"]
        assert run["workerId"] == agent.worker_id, run["id"]
        assert started_at >= scheduled_at, run["id"]
        assert started_at - scheduled_at < MAX_LAG, run["id"]
        assert _at(attempt["startedAt"]) >= scheduled_at, run["id"]
        assert _at(attempt["startedAt"]) - scheduled_at < MAX_LAG, run["id"]


@dataclass(frozen=True, slots=True)
class Received:
    """One assignment and the wall-clock time its PollWork response arrived."""

    assignment: workers_pb2.Assignment
    received_at: datetime

    @property
    def scheduled_at(self) -> datetime:
        return self.assignment.scheduled_at.ToDatetime(tzinfo=UTC)

    @property
    def start_at(self) -> datetime | None:
        if not self.assignment.HasField("start_at"):
            return None
        return self.assignment.start_at.ToDatetime(tzinfo=UTC)


class ProtocolWorker:
    """A worker that speaks the agent protocol by hand and executes nothing.

    It heartbeats the leases it was handed, so they stay current while the
    test collects assignments, and never reports an attempt.
    """

    def __init__(
        self, stub: workers_pb2_grpc.WorkerServiceStub, *, label: str, accepts_start_at: bool
    ) -> None:
        self._stub = stub
        self.worker_id = f"protocol-{label}-{uuid.uuid4().hex[:8]}"
        self.label = label
        self._accepts_start_at = accepts_start_at
        self.received: list[Received] = []

    async def register(self) -> None:
        await self._stub.RegisterWorker(
            workers_pb2.RegisterWorkerRequest(
                worker_id=self.worker_id,
                hostname="test",
                capabilities=["noop"],
                labels={"client": self.label},
                max_concurrent=100,
            ),
            timeout=RPC_TIMEOUT_S,
        )

    async def collect_until(
        self, done: Callable[[list[Received]], bool], timeout_s: float, description: str
    ) -> list[Received]:
        """Poll and heartbeat until `done(received)` is true, for at most `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while not done(self.received):
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"{description}: not met within {timeout_s} s; received {self._summary()}"
                )
            await self._heartbeat()
            await self._poll()
        return self.received

    async def _poll(self) -> None:
        response = await self._stub.PollWork(
            workers_pb2.PollWorkRequest(
                worker_id=self.worker_id,
                max_assignments=10,
                wait_timeout_ms=POLL_WAIT_MS,
                accepts_start_at=self._accepts_start_at,
            ),
            timeout=RPC_TIMEOUT_S,
        )
        received_at = datetime.now(UTC)
        self.received += [Received(assignment, received_at) for assignment in response.assignments]

    async def _heartbeat(self) -> None:
        leases = [
            workers_pb2.LeaseRef(
                run_id=item.assignment.run_id,
                attempt=item.assignment.attempt,
                fencing_token=item.assignment.fencing_token,
            )
            for item in self.received
        ]
        await self._stub.Heartbeat(
            workers_pb2.HeartbeatRequest(worker_id=self.worker_id, leases=leases),
            timeout=RPC_TIMEOUT_S,
        )

    def _summary(self) -> list[tuple[str, str, str | None, str]]:
        return [
            (
                item.assignment.run_id,
                item.scheduled_at.isoformat(),
                None if item.start_at is None else item.start_at.isoformat(),
                item.received_at.isoformat(),
            )
            for item in self.received
        ]


async def _collect(
    coordinator: ProcessHandle,
    api: ApiClient,
    *,
    accepts_start_at: bool,
    done: Callable[[list[Received]], bool],
    description: str,
) -> tuple[list[Received], list[str]]:
    """Register a protocol worker, give it two jobs of its own, and collect its assignments."""
    label = "ahead" if accepts_start_at else "plain"
    async with grpc.aio.insecure_channel(str(coordinator.address)) as channel:
        worker = ProtocolWorker(
            workers_pb2_grpc.WorkerServiceStub(channel),
            label=label,
            accepts_start_at=accepts_start_at,
        )
        await worker.register()
        job_ids = _create_noop_jobs(api, 2, selector={"client": label})
        received = await worker.collect_until(done, timeout_s=10, description=description)
    return received, job_ids


async def test_poll_without_start_at_never_early(
    start_coordinator: Callable[..., ProcessHandle],
    start_gateway: Callable[..., ProcessHandle],
) -> None:
    coordinator = start_coordinator(**WIDEST_AHEAD_FLAGS)
    gateway = start_gateway()
    with ApiClient(gateway.url) as api:
        received, job_ids = await _collect(
            coordinator,
            api,
            accepts_start_at=False,
            done=lambda got: len(got) >= 6,
            description="six assignments",
        )

    assert {item.assignment.job_id for item in received} == set(job_ids)
    for item in received:
        run_id = item.assignment.run_id
        assert item.start_at is None, run_id
        assert item.scheduled_at <= item.received_at, run_id


def _handed_ahead(received: list[Received]) -> bool:
    return any(item.start_at is not None and item.start_at > item.received_at for item in received)


async def test_poll_with_start_at_gets_runs_ahead(
    start_coordinator: Callable[..., ProcessHandle],
    start_gateway: Callable[..., ProcessHandle],
) -> None:
    coordinator = start_coordinator(**WIDEST_AHEAD_FLAGS)
    gateway = start_gateway()
    with ApiClient(gateway.url) as api:
        received, job_ids = await _collect(
            coordinator,
            api,
            accepts_start_at=True,
            done=lambda got: len(got) >= 4 and _handed_ahead(got),
            description="four assignments, one handed out before its start instant",
        )

    assert {item.assignment.job_id for item in received} <= set(job_ids)
    assert _handed_ahead(received)
    for item in received:
        run_id = item.assignment.run_id
        if item.scheduled_at > item.received_at:
            assert item.start_at is not None, run_id
        if item.start_at is not None:
            assert item.start_at == item.scheduled_at, run_id
            assert item.start_at - item.received_at <= MAX_HAND_AHEAD, run_id


@pytest.mark.parametrize("action", ["cancel", "delete"])
def test_cancel_while_waiting_never_starts(
    start_coordinator: Callable[..., ProcessHandle],
    start_agent: Callable[..., AgentHandle],
    start_gateway: Callable[..., ProcessHandle],
    tmp_path: Path,
    action: str,
) -> None:
    # Heartbeats 10 s apart, so that only the agent's open poll can carry the
    # revoked lease before the slot.
    start_coordinator(**WIDEST_AHEAD_FLAGS, heartbeat_interval_s=10, lease_ttl_s=25)
    start_agent(capabilities="shell", max_concurrent=4)
    gateway = start_gateway()
    marker = tmp_path / "started"
    due = datetime.now(UTC) + timedelta(seconds=3)
    with ApiClient(gateway.url) as api:
        job = api.create_job(
            type="one-time",
            schedule=due.isoformat(),
            executor="shell",
            payload={"command": ["touch", str(marker)]},
        )
        # Handed out up to a second early, the run is running while it waits.
        waiting = wait_until(
            lambda: [run for run in api.history(job["id"]) if run["status"] == "running"],
            timeout_s=10,
            interval_s=0.05,
            message="the run handed out before its slot",
        )[0]
        assert datetime.now(UTC) < _at(waiting["scheduledAt"])
        if action == "cancel":
            cancelled = api.post(f"/api/jobs/{job['id']}/runs/{waiting['id']}/cancel")
            assert cancelled["status"] == "cancelled"
        else:
            api.delete(f"/api/jobs/{job['id']}")
        assert datetime.now(UTC) < _at(waiting["scheduledAt"])
        # Well past the slot: had it started, the command would have run by now.
        wait_until(
            lambda: datetime.now(UTC) > due + timedelta(seconds=2),
            timeout_s=10,
            message="two seconds past the slot",
        )
        if action == "cancel":
            (run,) = api.history(job["id"])
            assert run["status"] == "cancelled"

    assert not marker.exists()
