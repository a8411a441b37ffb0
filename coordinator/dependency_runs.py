"""The leader's side of job dependencies: start or cancel dependants when a run ends.

The dispatcher calls `after_run` once a run reaches its final status. For
each job that depends on the run's job (from the job cache's reverse index)
and is not paused:

- completed: the dependant's own newest run and each dependency's newest
  completed run are read from etcd, and `trigger_for` decides. A run starts
  when every dependency completed after the dependant's newest run.
- failed or timeout: a cancelled run naming the failed run is recorded for
  the dependant, and the cancellation spreads to its own dependants.

A dependant with a schedule is handed to coordinator.dependency_gate
instead: a completion queues a check of its waiting runs, and a failure
cancels them (and spreads from there).

Each such run's id is derived from the dependant and the triggering run and
created only if absent, so two completions racing, or a new leader
evaluating again, create it once. On election `recheck_all` evaluates every
dependant, which starts the runs a previous leader decided on but did not
write before it stopped.
"""

from __future__ import annotations

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd, ids
from taskscheduler.coordinator.dependencies import (
    FAILED_STATUSES,
    cancel_reason,
    find_cycle,
    is_dependency_cancel,
    trigger_for,
)
from taskscheduler.coordinator.dependency_gate import DependencyGate
from taskscheduler.coordinator.evolve import evolve
from taskscheduler.coordinator.firing_plan import new_run, newest_run_at, status_when_queued
from taskscheduler.coordinator.jobcache import CachedGraph, JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Job, Run, RunStatus, RunTrigger
from taskscheduler.coordinator.run_reads import RunReads
from taskscheduler.coordinator.runstore import Firing, JobChangedError, RunStore, SlotTakenError
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.stats import Stats
from taskscheduler.logs import get_logger

log = get_logger(__name__)

_WRITE_ATTEMPTS = 5


class DependencyTrigger:
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
        gate: DependencyGate,
    ) -> None:
        self._gate = gate
        self._reads = RunReads(store, keys)
        self._state = state
        self._cache = cache
        self._runs = runs
        self._store = store
        self._keys = keys
        self._clock = clock
        self._stats = stats

    async def after_run(self, run: Run) -> None:
        """Start or cancel the dependants of a run's job once the run is final."""
        await self._spread(run, seen=set())

    async def recheck_all(self) -> None:
        """Evaluate every job that runs on dependencies once."""
        jobs = [job.id for job in self._cache.all() if job.spec.runs_on_dependencies]
        for job_id in jobs:
            await self._evaluate(job_id)
        log.info("dependants rechecked", jobs=len(jobs))

    async def _spread(self, run: Run, seen: set[str]) -> None:
        if run.status is RunStatus.COMPLETED:
            for dependant_id in self._cache.dependants_of(run.job_id):
                job = self._cache.get(dependant_id)
                if job is not None and job.spec.waits_for_dependencies:
                    self._gate.recheck_job(dependant_id)
                else:
                    await self._evaluate(dependant_id)
            return
        if run.status in FAILED_STATUSES:
            reason = cancel_reason(run.job_id, run.id, run.status)
        elif is_dependency_cancel(run):
            reason = run.error
        else:
            return
        await self._spread_failure(run, reason, seen)

    async def _spread_failure(self, run: Run, reason: str, seen: set[str]) -> None:
        """Cancel what waits on the run's job, and on those jobs in turn."""
        for dependant_id in self._cache.dependants_of(run.job_id):
            # A cycle closed by racing updates would otherwise spread forever.
            if dependant_id in seen:
                continue
            seen.add(dependant_id)
            job = self._cache.get(dependant_id)
            if job is not None and job.spec.waits_for_dependencies:
                cancelled = await self._gate.cancel_job(dependant_id, reason)
            else:
                one = await self._cancel_wait(dependant_id, run, reason)
                cancelled = [] if one is None else [one]
            for each in cancelled:
                await self._spread_failure(each, reason, seen)

    async def _evaluate(self, job_id: str) -> None:
        job = self._cache.get(job_id)
        if job is None or job.paused or not job.spec.runs_on_dependencies:
            return
        cycle = find_cycle(job_id, job.spec.dependencies, CachedGraph(self._cache))
        if cycle:
            # Runs on a cycle would start each other forever.
            log.error(
                "job is on a dependency cycle; not started", job_id=job_id, cycle=" -> ".join(cycle)
            )
            return
        completions = {
            dependency: await self._reads.newest_completion(dependency)
            for dependency in job.spec.dependencies
        }
        # Completions from before the dependant existed do not start it.
        last_run_at = await self._reads.newest_run_at(job_id) or job.created_at
        trigger = trigger_for(completions, last_run_at)
        if trigger is None:
            log.debug("dependencies not met yet", job_id=job_id)
            return
        run_id = ids.dependency_run_id(job_id, trigger.completed_at, trigger.run_id)
        run = new_run(job, run_id, trigger.completed_at, RunTrigger.DEPENDENCY)
        if await self._write(job, run) is not None:
            log.info("dependencies met; run queued", job_id=job_id, run_id=run_id)

    async def _cancel_wait(self, job_id: str, failed: Run, reason: str) -> Run | None:
        job = self._cache.get(job_id)
        if job is None or job.paused:
            return None
        at = failed.completed_at or self._clock.now()
        run = new_run(job, ids.dependency_run_id(job_id, at, failed.id), at, RunTrigger.DEPENDENCY)
        run = evolve(run, status=RunStatus.CANCELLED, completed_at=self._clock.now(), error=reason)
        written = await self._write(job, run)
        if written is not None:
            log.info(
                "dependency failed; run cancelled", job_id=job_id, run_id=run.id, reason=reason
            )
        return written

    async def _write(self, job: Job, run: Run) -> Run | None:
        """Create the run if absent, with the job's status; return it, or None if it existed."""
        for _ in range(_WRITE_ATTEMPTS):
            job_after = evolve(job, last_run_at=newest_run_at(job, run.scheduled_at))
            if not run.status.is_final:
                job_after = evolve(job_after, status=status_when_queued(job))
            try:
                revision = await self._runs.fire_one(Firing(job, job_after, (run,)))
            except SlotTakenError:
                log.debug("dependency run exists already", job_id=job.id, run_id=run.id)
                return None
            except JobChangedError:
                fresh = await self._read_job(job.id)
                if fresh is None or fresh.paused:
                    return None
                job = fresh
                continue
            self._cache.apply(evolve(job_after, revision=revision))
            run = evolve(run, revision=revision)
            if run.status.is_final:
                self._state.note_new_run(run.job_id)
                self._stats.record_finish(run, self._clock.now())
            else:
                self._state.queue(run)
                self._stats.count("runs_fired")
            return run
        log.warning("job kept changing; dependency run not written", job_id=job.id, run_id=run.id)
        return None

    async def _read_job(self, job_id: str) -> Job | None:
        kv = await self._store.get(self._keys.job(job_id))
        if kv is None:
            return None
        job = codec.decode_job(kv.key, kv.value, kv.mod_revision)
        self._cache.apply(job)
        return job
