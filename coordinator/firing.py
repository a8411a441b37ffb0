"""The leader's firing loop: due jobs become queued runs, in batched transactions.

Each pass pops the due jobs from the time index, plans each one with
decisions.plan_fire and firing_plan.build_firing, and commits the batch in
one fenced transaction. A batch that conflicts is retried job by job: a job
changed by a client is re-read and planned again; slots that already have
runs (fired by a previous leader) are left out and the job moves on. A job
with concurrencyPolicy `replace` and active runs is fired alone, after its
active runs are cancelled. The runs of a scheduled job with dependencies go
to coordinator.dependency_gate, which queues them once those are met.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import datetime

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd, ids
from taskscheduler.coordinator.decisions import plan_fire
from taskscheduler.coordinator.evolve import evolve
from taskscheduler.coordinator.firing_plan import (
    build_firing,
    new_run,
    newest_run_at,
    status_when_queued,
)
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import ConcurrencyPolicy, Job, Run, RunStatus, RunTrigger
from taskscheduler.coordinator.runstore import Firing, JobChangedError, RunStore, SlotTakenError
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.stats import Stats
from taskscheduler.errors import NotFoundError, SchedulerError
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# Jobs planned per pass; with MAX_RUNS_PER_FIRING this bounds one transaction.
FIRE_BATCH_SIZE = 40
# Operations (and compares) per transaction, under etcd's default limit of 128.
MAX_OPS_PER_TXN = 120
_IDLE_WAKE_S = 1.0

CancelRuns = Callable[[str, str], Awaitable[int]]
HoldRun = Callable[[Run], None]
REPLACED = "cancelled: a newer slot replaced it (concurrencyPolicy replace)"


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
        cancel_runs: CancelRuns,
        hold_run: HoldRun,
    ) -> None:
        self._hold_run = hold_run
        self._state = state
        self._cache = cache
        self._runs = runs
        self._store = store
        self._keys = keys
        self._clock = clock
        self._stats = stats
        self._cancel_runs = cancel_runs
        # Runs of firing transactions whose outcome is unknown (a timeout), with
        # whether each waits for dependencies. Those that committed are queued.
        self._unsure: deque[tuple[Run, bool]] = deque()

    async def run(self) -> None:
        """Fire due jobs until cancelled."""
        while True:
            if self._unsure:
                await self._recover_unsure()
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
            run = new_run(job, ids.manual_run_id(job.id, now), now, RunTrigger.MANUAL)
            job_after = evolve(
                job, status=status_when_queued(job), last_run_at=newest_run_at(job, now)
            )
            try:
                revision = await self._runs.fire_one(Firing(job, job_after, (run,)))
            except JobChangedError:
                continue
            self._after_commit(Firing(job, job_after, (run,)), revision)
            log.info("manual run queued", job_id=job.id, run_id=run.id)
            return evolve(run, revision=revision)
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
        try:
            await self._fire_each(job_ids, now)
        except BaseException:
            # The jobs left the time index when they were taken; put them back so
            # that they fire once etcd responds again. Jobs that fired are
            # indexed again at their next slot, as before.
            for job_id in job_ids:
                job = self._cache.get(job_id)
                if job is not None:
                    self._state.reindex(job)
            raise

    async def _fire_each(self, job_ids: list[str], now: datetime) -> None:
        batch: list[Firing] = []
        for job_id in job_ids:
            if self._needs_replace(job_id):
                await self._fire_alone(job_id, now)
                continue
            firing = self._plan(job_id, now)
            if firing is None:
                continue
            if batch and _txn_size([*batch, firing]) > MAX_OPS_PER_TXN:
                await self._commit(batch, now)
                batch = []
            batch.append(firing)
        if batch:
            await self._commit(batch, now)

    async def _commit(self, firings: list[Firing], now: datetime) -> None:
        try:
            revision = await self._runs.fire(firings)
        except JobChangedError:
            for firing in firings:
                await self._fire_alone(firing.job_before.id, now)
            return
        except Exception:
            self._unsure.extend(
                (run, firing.held)
                for firing in firings
                for run in firing.runs
                if not run.status.is_final
            )
            raise
        for firing in firings:
            self._after_commit(firing, revision)

    def _needs_replace(self, job_id: str) -> bool:
        job = self._cache.get(job_id)
        return (
            job is not None
            and job.spec.concurrency_policy is ConcurrencyPolicy.REPLACE
            and self._state.active_per_job.get(job_id, 0) > 0
        )

    def _plan(self, job_id: str, now: datetime, job: Job | None = None) -> Firing | None:
        job = job or self._cache.get(job_id)
        if job is None or job.paused:
            return None
        horizon = now + self._state.fire_ahead if self._state.fires_ahead(job) else now
        try:
            schedule = self._state.schedule_of(job)
            plan = plan_fire(job, schedule, horizon)
        except SchedulerError as error:
            log.error("cannot evaluate the job's schedule", job_id=job_id, error=str(error))
            return None
        if plan.dropped_slots:
            # Slots missed while the job was paused are dropped by design. Others
            # were missed because no leader fired them in time.
            changed_since = job.next_fire_at is not None and job.updated_at > job.next_fire_at
            log_dropped = log.info if changed_since else log.warning
            log_dropped(
                "missed slots dropped by the misfire policy",
                job_id=job_id,
                policy=job.spec.misfire_policy.value,
                dropped=plan.dropped_slots,
                fired=len(plan.slots),
            )
        if not plan.slots and plan.next_fire_at == job.next_fire_at:
            self._state.reindex(job)
            return None
        active = self._state.active_per_job.get(job_id, 0)
        return build_firing(job, plan, now, active)

    async def _fire_alone(self, job_id: str, now: datetime) -> None:
        if self._needs_replace(job_id):
            cancelled = await self._cancel_runs(job_id, REPLACED)
            log.info("active runs cancelled for a newer slot", job_id=job_id, cancelled=cancelled)
        for _ in range(5):
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
            except SlotTakenError as taken:
                log.info("slots fired before; moving on", job_id=job_id, run_ids=taken.run_ids)
                fresh = tuple(run for run in firing.runs if run.id not in taken.run_ids)
                firing = evolve(firing, runs=fresh)
                try:
                    revision = await self._runs.fire_one(firing)
                except (JobChangedError, SlotTakenError):
                    continue
            self._after_commit(firing, revision)
            return
        log.warning("job kept changing while firing; retrying on the next pass", job_id=job_id)
        self._state.index.schedule(job_id, now)

    async def _recover_unsure(self) -> None:
        """Queue the runs of unsure firing transactions that committed; forget the others."""
        while self._unsure:
            run, held = self._unsure[0]
            kv = await self._store.get(self._keys.run(run.id))
            self._unsure.popleft()
            if kv is None:
                continue
            stored = codec.decode_run(kv.key, kv.value, kv.mod_revision)
            if stored.status is not RunStatus.QUEUED or stored.id in self._state.active:
                continue
            log.warning(
                "run found written by a firing whose outcome was unknown; queueing it",
                job_id=stored.job_id,
                run_id=stored.id,
            )
            if held:
                self._hold_run(stored)
            else:
                self._state.queue(stored)

    def _after_commit(self, firing: Firing, revision: int) -> None:
        job_after = evolve(firing.job_after, revision=revision)
        self._cache.apply(job_after)
        self._state.reindex(job_after)
        for run in firing.runs:
            run = evolve(run, revision=revision)
            if run.status.is_final:
                log.info("slot skipped", job_id=run.job_id, run_id=run.id, reason=run.error)
                self._state.note_new_run(run.job_id)
                self._stats.record_finish(run, self._clock.now())
                continue
            self._stats.count("runs_fired")
            if firing.held:
                self._hold_run(run)
                log.debug("run waits for dependencies", job_id=run.job_id, run_id=run.id)
                continue
            self._state.queue(run)
            log.debug("run queued", job_id=run.job_id, run_id=run.id, due_at=run.due_at.isoformat())

    async def _read_job(self, job_id: str) -> Job:
        kv = await self._store.get(self._keys.job(job_id))
        if kv is None:
            raise NotFoundError("job", job_id, field="jobId")
        job = codec.decode_job(kv.key, kv.value, kv.mod_revision)
        self._cache.apply(job)
        return job


def _txn_size(firings: list[Firing]) -> int:
    """Return the larger of the operation and compare counts of one fire transaction."""
    runs = sum(len(firing.runs) for firing in firings)
    return 1 + len(firings) + 2 * runs
