"""Ending a queued run as cancelled, with its job's status, for the leader.

Used for runs no agent holds: a queued run cancelled by a client, by a
concurrency policy or a job delete, and a run that waited for its
dependencies. The run and, when it changes, its job's status are written in
one fenced transaction.
"""

from __future__ import annotations

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.decisions import job_status_after_run
from taskscheduler.coordinator.evolve import evolve
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Job, Run, RunStatus
from taskscheduler.coordinator.runstore import JobChangedError, RunStore
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.stats import Stats
from taskscheduler.logs import get_logger

log = get_logger(__name__)

_ATTEMPTS = 3


class QueuedRunCanceller:
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

    async def cancel(self, run: Run, reason: str) -> Run:
        """Record the queued run as cancelled with `reason`; return it as written."""
        now = self._clock.now()
        cancelled = evolve(run, status=RunStatus.CANCELLED, completed_at=now, error=reason)
        # Out of the ready queue first, so that no poll assigns it during the write.
        was_ready = run.id in self._state.ready
        self._state.ready.remove(run.id)
        try:
            revision = await self._write(cancelled)
        except BaseException:
            if was_ready and run.id in self._state.active:
                self._state.queue(self._state.active[run.id])
            raise
        self._state.untrack(run.id)
        cancelled = evolve(cancelled, revision=revision)
        self._stats.record_finish(cancelled, now)
        log.info("queued run cancelled", job_id=run.job_id, run_id=run.id, reason=reason)
        return cancelled

    async def _write(self, cancelled: Run) -> int:
        for _ in range(_ATTEMPTS):
            job = self._cache.get(cancelled.job_id)
            job_after = self._job_after(job, cancelled)
            try:
                revision = await self._runs.settle(
                    cancelled, job_before=job if job_after else None, job_after=job_after
                )
            except JobChangedError:
                await self._refresh_job(cancelled.job_id)
                continue
            if job_after is not None:
                self._cache.apply(evolve(job_after, revision=revision))
            return revision
        log.warning("job kept changing; run cancelled without its job status", run_id=cancelled.id)
        return await self._runs.settle(cancelled, job_before=None, job_after=None)

    def _job_after(self, job: Job | None, ended: Run) -> Job | None:
        if job is None:
            return None
        # A run waiting in etcd only was uncounted before it got here.
        counted = self._state.active_per_job.get(job.id, 0)
        others = max(0, counted - 1 if ended.id in self._state.active else counted)
        status = job_status_after_run(job, ended.status, others)
        return None if status is job.status else evolve(job, status=status)

    async def _refresh_job(self, job_id: str) -> None:
        kv = await self._store.get(self._keys.job(job_id))
        if kv is None:
            self._cache.forget(job_id)
        else:
            self._cache.apply(codec.decode_job(kv.key, kv.value, kv.mod_revision))
