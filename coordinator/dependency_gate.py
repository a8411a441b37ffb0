"""The leader's hold on runs of scheduled jobs that have dependencies.

Such a run fires at its slot like any other, but with a held key instead of
a queue key, and waits outside the ready queues. It is released into them
once every dependency has completed a run after the job's previous run was
scheduled (before its first run, once at all). It ends
`cancelled` when a dependency fails, or when `dependencyWait` seconds pass
after its scheduled time with a dependency still missing.

Checks are queued and done by one loop, so a run is never checked twice at
once: after its fire, after each completion of one of its dependencies,
after each change of its job, once a second while it is past its deadline,
and once for every held run when a leader is elected. A job whose
dependencies were removed releases its held runs. A job whose schedule was
removed cancels them, because it then runs each time its dependencies
complete. A release is a transaction that needs the held key, so a
release and a cancel that race settle the run once.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.dependencies import (
    expired_reason,
    missing_dependencies,
    waiting_reason,
)
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Job, Run, RunStatus
from taskscheduler.coordinator.queued_cancel import QueuedRunCanceller
from taskscheduler.coordinator.run_reads import RunReads
from taskscheduler.coordinator.runstore import RunStore
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.errors import RecordDecodeError
from taskscheduler.logs import get_logger

log = get_logger(__name__)

_DEADLINE_SCAN_S = 1.0
_SETTLE_ATTEMPTS = 3
FIRST_CHECK_REASON = "waiting for dependencies to complete"
SCHEDULE_REMOVED = (
    "cancelled: the job's schedule was removed while this run waited for its dependencies"
)


class DependencyGate:
    def __init__(
        self,
        *,
        state: LeaderState,
        cache: JobCache,
        runs: RunStore,
        store: etcd.Etcd,
        keys: KeyLayout,
        clock: Clock,
        canceller: QueuedRunCanceller,
    ) -> None:
        self._state = state
        self._cache = cache
        self._runs = runs
        self._store = store
        self._keys = keys
        self._clock = clock
        self._reads = RunReads(store, keys)
        self._canceller = canceller
        self._pending: set[str] = set()
        self._wake = asyncio.Event()

    def admit(self, run: Run) -> None:
        """Hold a newly fired run and queue its first check."""
        self._state.hold(run, FIRST_CHECK_REASON)
        self._queue_check(run.id)

    def recheck_job(self, job_id: str) -> None:
        """Queue a check of every held run of the job (a dependency completed, or the job
        changed)."""
        if job_id not in self._state.active_per_job:
            return
        for run_id in self._held_of(job_id):
            self._queue_check(run_id)

    async def cancel_job(self, job_id: str, reason: str) -> list[Run]:
        """Cancel every held run of the job (a dependency failed); return the cancelled runs."""
        cancelled = []
        for run_id in self._held_of(job_id):
            run = await self._cancel(run_id, reason)
            if run is not None:
                cancelled.append(run)
        return cancelled

    async def rebuild(self) -> None:
        """Hold every run that waits in etcd, and queue a check of each (on election)."""
        async for page in self._store.pages(self._keys.held):
            for kv in page.kvs:
                run = await self._read_run(kv.key[len(self._keys.held) :])
                if run is not None and run.status is RunStatus.QUEUED:
                    self.admit(run)

    async def run(self) -> None:
        """Run queued checks, and check runs past their deadline every second, until cancelled."""
        while True:
            self._queue_overdue()
            while self._pending:
                await self._check(self._pending.pop())
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=_DEADLINE_SCAN_S)

    def _queue_check(self, run_id: str) -> None:
        self._pending.add(run_id)
        self._wake.set()

    def _queue_overdue(self) -> None:
        now = self._clock.now()
        for run_id in list(self._state.held):
            run = self._state.active.get(run_id)
            job = self._cache.get(run.job_id) if run is not None else None
            if run is not None and job is not None and now >= _deadline(run, job):
                self._pending.add(run_id)

    def _held_of(self, job_id: str) -> list[str]:
        active = self._state.active
        return [
            run_id
            for run_id in self._state.held
            if run_id in active and active[run_id].job_id == job_id
        ]

    async def _check(self, run_id: str) -> None:
        run = self._state.active.get(run_id)
        if run is None or run_id not in self._state.held:
            return
        job = self._cache.get(run.job_id)
        if job is None:
            return
        if not job.spec.schedule:
            # The job now runs each time its dependencies complete, which starts its own runs.
            await self._cancel(run_id, SCHEDULE_REMOVED)
            return
        since = await self._reads.previous_run_at(run)
        completions = {
            dependency: await self._reads.newest_completion(dependency)
            for dependency in job.spec.dependencies
        }
        missing = missing_dependencies(completions, since)
        deadline = _deadline(run, job)
        if not missing:
            await self._release(run)
        elif self._clock.now() >= deadline:
            await self._cancel(run_id, expired_reason(missing, job.spec.dependency_wait_s))
        else:
            self._state.held[run_id] = waiting_reason(missing, deadline)
            log.debug("run waits for dependencies", run_id=run_id, missing=missing)

    async def _release(self, run: Run) -> None:
        if await self._runs.release_held(run):
            self._state.release(run.id)
            log.info("dependencies met; run queued", job_id=run.job_id, run_id=run.id)
        else:
            self._state.untrack(run.id)

    async def _cancel(self, run_id: str, reason: str) -> Run | None:
        run = self._state.active.get(run_id)
        if run is None or run_id not in self._state.held:
            return None
        return await self._canceller.cancel(run, reason)

    async def _read_run(self, run_id: str) -> Run | None:
        kv = await self._store.get(self._keys.run(run_id))
        if kv is None:
            return None
        try:
            return codec.decode_run(kv.key, kv.value, kv.mod_revision)
        except RecordDecodeError as error:
            log.error("skipping undecodable run record", key=kv.key, reason=error.reason)
            return None


def _deadline(run: Run, job: Job) -> datetime:
    return run.scheduled_at + timedelta(seconds=job.spec.dependency_wait_s)
