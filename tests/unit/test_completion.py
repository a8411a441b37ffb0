"""The leader's recording of attempt reports, against a fake run store and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskscheduler.clock import FakeClock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.completion import Completer, Completion, CompletionResult
from taskscheduler.coordinator.completion_plan import AttemptReport, HeldLease
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.leasetable import LeaseTable
from taskscheduler.coordinator.model import (
    Attempt,
    AttemptOutcome,
    Job,
    JobSpec,
    JobStatus,
    Priority,
    RetryPolicy,
    Run,
    RunStatus,
    RunTrigger,
)
from taskscheduler.coordinator.runstore import (
    AttemptEnd,
    BatchConflictError,
    JobChange,
    JobChangedError,
    RunStore,
)
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.stats import Stats
from taskscheduler.errors import LostLeadershipError, StaleLeaseError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
WORKER = "agent-1"
KEYS = KeyLayout("/t")


class FakeEtcd:
    """Reads of job records, for the re-read after a job changed."""

    def __init__(self) -> None:
        self.jobs: dict[str, Job] = {}

    async def get(self, key: str) -> etcd.KeyValue | None:
        job = self.jobs.get(key.rpartition("/")[2])
        if job is None:
            return None
        return etcd.KeyValue(key, codec.encode_job(job), 1, job.revision, 0)


class FakeRunStore(RunStore):
    """Records the writes; etcd-side conflicts and failures are set per test."""

    def __init__(self) -> None:
        super().__init__(FakeEtcd(), KEYS, fence=lambda: etcd.Compare())  # type: ignore[arg-type]
        self.revision = 1000
        self.batches: list[tuple[list[AttemptEnd], list[JobChange]]] = []
        self.alone: list[tuple[Run, Job | None]] = []
        self.stale_in_etcd: set[str] = set()
        self.jobs_changed: set[str] = set()
        self.lost_after_batches: int | None = None
        self.gate: asyncio.Event | None = None
        self.arrived = asyncio.Event()

    async def finish_many(self, ends: Sequence[AttemptEnd], jobs: Sequence[JobChange]) -> int:
        self.batches.append((list(ends), list(jobs)))
        await self._pass_gate()
        if self.lost_after_batches is not None and len(self.batches) > self.lost_after_batches:
            raise LostLeadershipError("fence moved")
        stale = any(end.run.id in self.stale_in_etcd for end in ends)
        if stale or any(change.before.id in self.jobs_changed for change in jobs):
            raise BatchConflictError(len(ends))
        return self._commit()

    async def finish(
        self, run: Run, fencing_token: int, *, job_before: Job | None, job_after: Job | None
    ) -> int:
        self.alone.append((run, job_after))
        await self._pass_gate()
        if run.id in self.stale_in_etcd:
            raise StaleLeaseError(run.id, run.attempt, fencing_token)
        if job_before is not None and job_after is not None and job_before.id in self.jobs_changed:
            self.jobs_changed.discard(job_before.id)
            raise JobChangedError(job_before.id)
        return self._commit()

    async def _pass_gate(self) -> None:
        self.arrived.set()
        if self.gate is not None:
            await self.gate.wait()

    def _commit(self) -> int:
        self.revision += 1
        return self.revision


@dataclass
class Leader:
    state: LeaderState
    cache: JobCache
    runs: FakeRunStore
    clock: FakeClock
    completer: Completer
    notified: list[Run] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=dict)

    def add_job(self, job_id: str, **changes: Any) -> Job:
        spec = JobSpec(name=job_id, schedule="@every 1h", executor="shell")
        job = Job(
            id=job_id,
            spec=spec,
            status=JobStatus.RUNNING,
            next_fire_at=T0 + timedelta(hours=1),
            created_at=T0,
            updated_at=T0,
            revision=10,
        )
        job = replace(job, **changes)
        self.cache.apply(job)
        self.runs._store.jobs[job_id] = job  # type: ignore[attr-defined]
        return job

    def start_run(self, job_id: str, number: int, worker_id: str = WORKER) -> HeldLease:
        run_id = f"{job_id}.{number:014d}"
        token = 500 + len(self.tokens)
        attempt = Attempt(number=1, worker_id=worker_id, fencing_token=token, started_at=T0)
        run = Run(
            id=run_id,
            job_id=job_id,
            job_name=job_id,
            trigger=RunTrigger.SCHEDULE,
            status=RunStatus.RUNNING,
            priority=Priority.NORMAL,
            executor="shell",
            scheduled_at=T0,
            due_at=T0,
            max_attempts=1,
            attempt=1,
            worker_id=worker_id,
            started_at=T0,
            attempts=(attempt,),
        )
        self.state.track(run)
        self.state.leases.grant(run_id, worker_id, 1, token, self.clock.monotonic())
        self.tokens[run_id] = token
        return HeldLease(run_id, 1, token)


@pytest.fixture
def leader() -> Leader:
    clock = FakeClock(T0)
    state = LeaderState(leases=LeaseTable(30))
    cache = JobCache(None, KEYS)  # type: ignore[arg-type]
    runs = FakeRunStore()
    notified: list[Run] = []

    async def after_run(run: Run) -> None:
        notified.append(run)

    completer = Completer(
        state=state,
        cache=cache,
        runs=runs,
        store=runs._store,
        keys=KEYS,
        clock=clock,
        stats=Stats(started_at=T0),
        after_run=after_run,
    )
    return Leader(state, cache, runs, clock, completer, notified)


def succeeded(held: HeldLease, result: Any = None) -> Completion:
    return Completion(held, AttemptReport(AttemptOutcome.SUCCEEDED, output="ok", result=result))


def statuses(results: list[CompletionResult]) -> list[RunStatus | str]:
    return [
        result.run_status if result.error is None else type(result.error).__name__
        for result in results
    ]


async def test_batch_records_all_in_one_write(leader: Leader) -> None:
    leader.add_job("job-a")
    leader.add_job("job-b")
    first = leader.start_run("job-a", 1)
    second = leader.start_run("job-b", 1)

    results = await leader.completer.complete_many(
        WORKER, [succeeded(first, {"n": 1}), succeeded(second, [1, 2])]
    )

    assert statuses(results) == [RunStatus.COMPLETED, RunStatus.COMPLETED]
    assert [result.run_id for result in results] == [first.run_id, second.run_id]
    assert len(leader.runs.batches) == 1
    ends, changes = leader.runs.batches[0]
    assert [end.run.result for end in ends] == [{"n": 1}, [1, 2]]
    assert [end.fencing_token for end in ends] == [first.fencing_token, second.fencing_token]
    assert sorted(change.after.id for change in changes) == ["job-a", "job-b"]
    assert {change.after.status for change in changes} == {JobStatus.SCHEDULED}
    assert leader.runs.alone == []
    assert leader.state.active == {}
    assert len(leader.state.leases) == 0
    assert [run.id for run in leader.notified] == [first.run_id, second.run_id]
    assert [run.revision for run in leader.notified] == [1001, 1001]
    job_a = leader.cache.get("job-a")
    assert job_a is not None
    assert job_a.status is JobStatus.SCHEDULED
    assert job_a.revision == 1001


async def test_stale_token_rejects_only_its_report(leader: Leader) -> None:
    leader.add_job("job-a")
    first = leader.start_run("job-a", 1)
    stale = leader.start_run("job-a", 2)
    third = leader.start_run("job-a", 3)
    wrong_token = replace(stale, fencing_token=stale.fencing_token - 100)

    results = await leader.completer.complete_many(
        WORKER, [succeeded(first), succeeded(wrong_token), succeeded(third)]
    )

    assert statuses(results) == [RunStatus.COMPLETED, "StaleLeaseError", RunStatus.COMPLETED]
    assert results[1].run_id == stale.run_id
    ends, changes = leader.runs.batches[0]
    assert [end.run.id for end in ends] == [first.run_id, third.run_id]
    # The stale report's run is still active, so the job stays running: no job write.
    assert changes == []
    assert list(leader.state.active) == [stale.run_id]
    assert leader.state.leases.is_current(stale.run_id, 1, stale.fencing_token)


async def test_report_of_other_worker_is_stale(leader: Leader) -> None:
    leader.add_job("job-a")
    held = leader.start_run("job-a", 1, worker_id="agent-2")

    results = await leader.completer.complete_many(WORKER, [succeeded(held)])

    assert statuses(results) == ["StaleLeaseError"]
    assert leader.runs.batches == []
    assert leader.runs.alone == []


async def test_stale_in_etcd_writes_each_alone(leader: Leader) -> None:
    leader.add_job("job-a")
    leader.add_job("job-b")
    first = leader.start_run("job-a", 1)
    stale = leader.start_run("job-b", 1)
    leader.runs.stale_in_etcd.add(stale.run_id)

    results = await leader.completer.complete_many(WORKER, [succeeded(first), succeeded(stale)])

    assert statuses(results) == [RunStatus.COMPLETED, "StaleLeaseError"]
    assert len(leader.runs.batches) == 1
    assert [run.id for run, _ in leader.runs.alone] == [first.run_id, stale.run_id]
    assert leader.state.leases.get(stale.run_id) is None
    assert [run.id for run in leader.notified] == [first.run_id]
    job_a = leader.cache.get("job-a")
    assert job_a is not None
    assert job_a.status is JobStatus.SCHEDULED


async def test_changed_job_is_read_again(leader: Leader) -> None:
    job = leader.add_job("job-a")
    held = leader.start_run("job-a", 1)
    leader.runs.jobs_changed.add("job-a")
    # A client paused the job in etcd; this replica's cache has not seen it yet.
    leader.runs._store.jobs["job-a"] = replace(job, status=JobStatus.PAUSED, revision=11)  # type: ignore[attr-defined]

    status = await leader.completer.conclude(
        leader.state.active[held.run_id],
        leader.state.leases.get(held.run_id),  # type: ignore[arg-type]
        AttemptReport(AttemptOutcome.SUCCEEDED),
    )

    assert status is RunStatus.COMPLETED
    assert [job_after.status if job_after else None for _, job_after in leader.runs.alone] == [
        JobStatus.SCHEDULED,
        None,
    ]
    cached = leader.cache.get("job-a")
    assert cached is not None
    assert cached.status is JobStatus.PAUSED


async def test_job_written_once_per_batch(leader: Leader) -> None:
    leader.add_job("job-a")
    held = [leader.start_run("job-a", number) for number in range(1, 4)]

    await leader.completer.complete_many(WORKER, [succeeded(item) for item in held[:2]])
    await leader.completer.complete_many(WORKER, [succeeded(held[2])])

    ((_, first_changes),) = leader.runs.batches
    assert first_changes == []
    ((_, job_after),) = leader.runs.alone
    assert job_after is not None
    assert job_after.status is JobStatus.SCHEDULED


async def test_job_status_follows_last_report(leader: Leader) -> None:
    leader.add_job("job-a")
    first = leader.start_run("job-a", 1)
    second = leader.start_run("job-a", 2)
    failed = Completion(second, AttemptReport(AttemptOutcome.FAILED, exit_code=2))

    await leader.completer.complete_many(WORKER, [succeeded(first), failed])

    ((_, changes),) = leader.runs.batches
    assert [change.after.status for change in changes] == [JobStatus.FAILED]


async def test_unchanged_job_status_is_not_written(leader: Leader) -> None:
    leader.add_job("job-a", status=JobStatus.SCHEDULED)
    held = leader.start_run("job-a", 1)

    await leader.completer.complete_many(WORKER, [succeeded(held)])

    assert leader.runs.alone[0][1] is None


async def test_retry_queues_run_again(leader: Leader) -> None:
    job = leader.add_job("job-a")
    leader.cache.apply(
        replace(job, spec=replace(job.spec, retry_policy=RetryPolicy(max_retries=1)), revision=11)
    )
    held = leader.start_run("job-a", 1)
    other = leader.start_run("job-a", 2)
    failed = Completion(held, AttemptReport(AttemptOutcome.FAILED, result={"lost": 1}))

    results = await leader.completer.complete_many(WORKER, [failed, succeeded(other)])

    assert statuses(results) == [RunStatus.QUEUED, RunStatus.COMPLETED]
    ((ends, changes),) = leader.runs.batches
    assert ends[0].run.result is None
    assert changes == []
    assert list(leader.state.active) == [held.run_id]
    assert leader.state.active[held.run_id].status is RunStatus.QUEUED
    assert leader.state.leases.get(held.run_id) is None
    assert [run.id for run in leader.notified] == [other.run_id]


async def test_many_reports_split_into_batches(leader: Leader) -> None:
    held = []
    for number in range(100):
        leader.add_job(f"job-{number}")
        held.append(leader.start_run(f"job-{number}", 1))

    results = await leader.completer.complete_many(WORKER, [succeeded(item) for item in held])

    assert statuses(results) == [RunStatus.COMPLETED] * 100
    assert [result.run_id for result in results] == [item.run_id for item in held]
    sizes = [len(ends) for ends, _ in leader.runs.batches]
    assert sum(sizes) == 100
    assert len(sizes) == 3
    for ends, changes in leader.runs.batches:
        assert 2 * len(ends) + len(changes) <= 120
        assert len(changes) == len(ends)
    assert leader.state.active == {}


async def test_lost_leadership_fails_the_rest(leader: Leader) -> None:
    held = []
    for number in range(60):
        leader.add_job(f"job-{number}")
        held.append(leader.start_run(f"job-{number}", 1))
    leader.runs.lost_after_batches = 1

    results = await leader.completer.complete_many(WORKER, [succeeded(item) for item in held])

    first_batch = len(leader.runs.batches[0][0])
    assert statuses(results) == (
        [RunStatus.COMPLETED] * first_batch + ["LostLeadershipError"] * (60 - first_batch)
    )
    assert len(leader.state.active) == 60 - first_batch


async def test_conclude_raises_stale(leader: Leader) -> None:
    leader.add_job("job-a")
    held = leader.start_run("job-a", 1)
    leader.runs.stale_in_etcd.add(held.run_id)

    with pytest.raises(StaleLeaseError):
        await leader.completer.conclude(
            leader.state.active[held.run_id],
            leader.state.leases.get(held.run_id),  # type: ignore[arg-type]
            AttemptReport(AttemptOutcome.LEASE_EXPIRED, error="lease expired"),
        )

    assert leader.state.leases.get(held.run_id) is None


async def test_repeated_run_ids_are_a_caller_error(leader: Leader) -> None:
    leader.add_job("job-a")
    held = leader.start_run("job-a", 1)

    with pytest.raises(ValueError, match="run ids repeat"):
        await leader.completer.complete_many(WORKER, [succeeded(held), succeeded(held)])


async def test_concurrent_reports_leave_job_finished(leader: Leader) -> None:
    leader.add_job("job-a")
    first = leader.start_run("job-a", 1)
    second = leader.start_run("job-a", 2)
    leader.runs.gate = asyncio.Event()

    calls = [
        asyncio.create_task(leader.completer.complete_many(WORKER, [succeeded(held)]))
        for held in (first, second)
    ]
    while len(leader.runs.alone) < 2:
        leader.runs.arrived.clear()
        await leader.runs.arrived.wait()
    leader.runs.gate.set()
    await asyncio.gather(*calls)

    written = [job_after.status for _, job_after in leader.runs.alone if job_after is not None]
    assert written == [JobStatus.SCHEDULED]
    assert leader.state.active == {}
