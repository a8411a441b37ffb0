"""The leader's firing loop: due jobs become queued runs, in batched transactions.

Each pass pops the due jobs from the time index, plans each one with
decisions.plan_fire, and commits the batch in one fenced transaction. A
batch that conflicts is retried job by job: a job changed by a client is
re-read and planned again; a slot that already has a run (fired by a
previous leader) only moves the job's progress forward.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from datetime import datetime

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd, ids
from taskscheduler.coordinator.decisions import plan_fire
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Job, JobStatus, Run, RunStatus, RunTrigger
from taskscheduler.coordinator.runstore import Firing, JobChangedError, RunStore, SlotTakenError
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.stats import Stats
from taskscheduler.errors import NotFoundError, SchedulerError
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# etcd's default limit is 128 operations per transaction; a firing takes up to 3.
FIRE_BATCH_SIZE = 40
_IDLE_WAKE_S = 1.0


class Firer:
    def __init__(
        self,
        *,
        state: LeaderState,
        cache: JobCache,
        runs: RunStore,
        store: etcd.Etcd,
        keys: KeyLayout,
        clock: Clock,
        stats: Stats,
    ) -> None:
        self._state = state
        self._cache = cache
        self._runs = runs
        self._store = store
        self._keys = keys
        self._clock = clock
        self._stats = stats

    async def run(self) -> None:
        """Fire due jobs until cancelled."""
        while True:
            now = self._clock.now()
            due = self._state.index.pop_due(now, FIRE_BATCH_SIZE)
            if due:
                await self._fire_batch(due, now)
                continue
            await self._wait_for_next_slot(now)

    async def execute_now(self, job_id: str) -> Run:
        """Queue a manual run of the job, paused or not."""
        for _ in range(10):
            job = await self._read_job(job_id)
            now = self._clock.now()
            run = _new_run(job, ids.manual_run_id(job.id, now), now, RunTrigger.MANUAL)
            job_after = dataclasses.replace(job, status=_status_when_queued(job))
            try:
                revision = await self._runs.fire_one(Firing(job, job_after, run))
            except JobChangedError:
                continue
            self._after_commit(job_after, run, revision)
            log.info("manual run queued", job_id=job.id, run_id=run.id)
            return dataclasses.replace(run, revision=revision)
        raise JobChangedError(job_id)

    async def _wait_for_next_slot(self, now: datetime) -> None:
        self._state.schedule_changed.clear()
        next_fire_at = self._state.index.next_fire_at()
        wait_s = _IDLE_WAKE_S
        if next_fire_at is not None:
            wait_s = min(wait_s, max(0.0, (next_fire_at - now).total_seconds()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._state.schedule_changed.wait(), timeout=wait_s)

    async def _fire_batch(self, job_ids: list[str], now: datetime) -> None:
        firings = [f for f in (self._plan(job_id, now) for job_id in job_ids) if f is not None]
        if not firings:
            return
        try:
            revision = await self._runs.fire(firings)
        except JobChangedError:
            for firing in firings:
                await self._fire_alone(firing.job_before.id, now)
            return
        for firing in firings:
            self._after_commit(firing.job_after, firing.run, revision)

    def _plan(self, job_id: str, now: datetime, job: Job | None = None) -> Firing | None:
        job = job or self._cache.get(job_id)
        if job is None or job.paused:
            return None
        try:
            plan = plan_fire(job, self._state.schedule_of(job), now)
        except SchedulerError as error:
            log.error("cannot evaluate the job's schedule", job_id=job_id, error=str(error))
            return None
        if plan.slot is None:
            self._state.reindex(job)
            return None
        if plan.missed_slots:
            log.warning(
                "missed slots coalesced into one run", job_id=job_id, missed=plan.missed_slots
            )
        run = _new_run(job, ids.scheduled_run_id(job.id, plan.slot), plan.slot, RunTrigger.SCHEDULE)
        job_after = dataclasses.replace(
            job,
            last_fire_at=plan.slot,
            next_fire_at=plan.next_fire_at,
            status=_status_when_queued(job),
        )
        return Firing(job, job_after, run)

    async def _fire_alone(self, job_id: str, now: datetime) -> None:
        for _ in range(3):
            try:
                job = await self._read_job(job_id)
            except NotFoundError:
                return
            firing = self._plan(job_id, now, job)
            if firing is None:
                return
            try:
                revision = await self._runs.fire_one(firing)
            except JobChangedError:
                continue
            except SlotTakenError:
                log.info("slot fired before; moving on", job_id=job_id, run_id=firing.run.id)
                firing = dataclasses.replace(firing, run=None)
                revision = await self._runs.fire_one(firing)
            self._after_commit(firing.job_after, firing.run, revision)
            return
        log.warning("job kept changing while firing; retrying on the next pass", job_id=job_id)
        self._state.index.schedule(job_id, now)

    def _after_commit(self, job_after: Job, run: Run | None, revision: int) -> None:
        job_after = dataclasses.replace(job_after, revision=revision)
        self._cache.apply(job_after)
        self._state.reindex(job_after)
        if run is not None:
            self._state.queue(dataclasses.replace(run, revision=revision))
            self._stats.count("runs_fired")
            log.debug("run queued", job_id=run.job_id, run_id=run.id, due_at=run.due_at.isoformat())

    async def _read_job(self, job_id: str) -> Job:
        kv = await self._store.get(self._keys.job(job_id))
        if kv is None:
            raise NotFoundError("job", job_id, field="jobId")
        job = codec.decode_job(kv.key, kv.value, kv.mod_revision)
        self._cache.apply(job)
        return job


def _new_run(job: Job, run_id: str, scheduled_at: datetime, trigger: RunTrigger) -> Run:
    return Run(
        id=run_id,
        job_id=job.id,
        job_name=job.spec.name,
        trigger=trigger,
        status=RunStatus.QUEUED,
        priority=job.spec.priority,
        executor=job.spec.executor,
        scheduled_at=scheduled_at,
        due_at=scheduled_at,
        max_attempts=job.spec.retry_policy.max_retries + 1,
    )


def _status_when_queued(job: Job) -> JobStatus:
    return JobStatus.PAUSED if job.paused else JobStatus.RUNNING
