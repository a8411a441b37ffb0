"""The leader's recording of ended attempts, many reports per etcd transaction.

Agents report how their attempts ended (CompleteAttempt, CompleteAttempts),
and the leader ends attempts itself when a lease expires or a run is
cancelled. Each report is judged on its own: it counts only while its
fencing token is the attempt's current lease in the leader's memory, and
StaleLeaseError rejects it otherwise. The accepted reports of one call are
written in as few fenced transactions as etcd's limits allow
(completion_plan.split_batches). Each transaction compares every lease
key's token and the revision of every job whose status it changes. When one
of those compares fails, nothing in that transaction is written, and its
reports are written again one per transaction, so a stale token rejects
only its own report. Memory follows each commit: leases are released,
retried runs queued again, final runs untracked and their dependants
notified through `after_run`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.completion_plan import (
    AttemptReport,
    HeldLease,
    ended_run,
    job_after_end,
    split_batches,
)
from taskscheduler.coordinator.evolve import evolve
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.leasetable import ActiveLease
from taskscheduler.coordinator.model import RetryPolicy, Run, RunStatus
from taskscheduler.coordinator.runstore import (
    AttemptEnd,
    BatchConflictError,
    JobChange,
    JobChangedError,
    RunStore,
)
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.stats import Stats
from taskscheduler.errors import (
    LostLeadershipError,
    RecordDecodeError,
    SchedulerError,
    StaleLeaseError,
    StoreUnavailableError,
)
from taskscheduler.logs import get_logger

log = get_logger(__name__)

AfterRun = Callable[[Run], Awaitable[None]]

# Writes of one report alone before it fails with JobChangedError, each after
# re-reading a job that changed in between.
_WRITE_ATTEMPTS = 5


@dataclass(frozen=True, slots=True)
class Completion:
    """One report of an attempt's end: the lease it was made under, and what happened."""

    held: HeldLease
    report: AttemptReport


@dataclass(frozen=True, slots=True)
class CompletionResult:
    """The outcome of one report: the run's status after it, or the error that rejected it."""

    run_id: str
    run_status: RunStatus | None = None
    error: SchedulerError | None = None


@dataclass(frozen=True, slots=True)
class _Ending:
    run: Run
    lease: ActiveLease
    report: AttemptReport
    ended: Run


class _Concluding:
    """Per job, the runs whose final end is being written and not yet applied to memory.

    A job's status after a run ends depends on how many of its other runs
    stay active. Runs whose end a concurrent write is recording do not
    count, so two reports of one job written at the same time cannot both
    leave the job `running`.
    """

    def __init__(self) -> None:
        self._per_job: Counter[str] = Counter()

    def count(self, job_id: str) -> int:
        return self._per_job.get(job_id, 0)

    @contextmanager
    def holding(self, runs: Iterable[Run]) -> Iterator[None]:
        job_ids = [run.job_id for run in runs if run.status.is_final]
        self._per_job.update(job_ids)
        try:
            yield
        finally:
            for job_id in job_ids:
                self._per_job[job_id] -= 1
                if self._per_job[job_id] <= 0:
                    del self._per_job[job_id]


class Completer:
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
        after_run: AfterRun | None = None,
    ) -> None:
        """`after_run` is awaited with each run that reaches a final status through an attempt."""
        self._state = state
        self._cache = cache
        self._runs = runs
        self._store = store
        self._keys = keys
        self._clock = clock
        self._stats = stats
        self._after_run = after_run
        self._concluding = _Concluding()

    async def complete_many(
        self, worker_id: str, completions: Sequence[Completion]
    ) -> list[CompletionResult]:
        """Judge and record one worker's reports; return one result per report, in order.

        A report whose lease is not the attempt's current one, in memory or
        in etcd, gets StaleLeaseError. A report of a job that kept changing
        during its write gets JobChangedError, and one whose job record
        cannot be decoded gets RecordDecodeError. When the leader loses its
        fence or etcd fails, every report not yet written gets that error
        (LostLeadershipError or StoreUnavailableError) and reports written
        before keep their status. The run ids must be distinct.
        """
        run_ids = [completion.held.run_id for completion in completions]
        if len(set(run_ids)) != len(run_ids):
            raise ValueError("each run may be reported once per call; run ids repeat")
        results: list[CompletionResult] = []
        endings: list[_Ending] = []
        for completion in completions:
            try:
                endings.append(self._accept(worker_id, completion))
            except StaleLeaseError as error:
                results.append(CompletionResult(completion.held.run_id, error=error))
                continue
            results.append(CompletionResult(completion.held.run_id))
        written = iter(await self._write_all(endings))
        return [next(written) if result.error is None else result for result in results]

    async def conclude(self, run: Run, lease: ActiveLease, report: AttemptReport) -> RunStatus:
        """End the attempt under `lease` as the leader decided, on lease expiry or cancel.

        Raises StaleLeaseError when the lease ended meanwhile, and the
        errors `complete_many` names.
        """
        (result,) = await self._write_all([self._ending(run, lease, report)])
        if result.error is not None:
            raise result.error
        assert result.run_status is not None
        return result.run_status

    def _accept(self, worker_id: str, completion: Completion) -> _Ending:
        held = completion.held
        lease = self._state.leases.get(held.run_id)
        run = self._state.active.get(held.run_id)
        current = self._state.leases.is_current(held.run_id, held.attempt, held.fencing_token)
        if lease is None or run is None or not current or lease.worker_id != worker_id:
            log.warning(
                "report rejected: the lease is not current",
                run_id=held.run_id,
                attempt=held.attempt,
                worker_id=worker_id,
                fencing_token=held.fencing_token,
            )
            raise StaleLeaseError(held.run_id, held.attempt, held.fencing_token)
        return self._ending(run, lease, completion.report)

    def _ending(self, run: Run, lease: ActiveLease, report: AttemptReport) -> _Ending:
        ended = ended_run(run, self._policy_of(run.job_id), report, self._clock.now())
        return _Ending(run, lease, report, ended)

    def _policy_of(self, job_id: str) -> RetryPolicy | None:
        job = self._cache.get(job_id)
        return job.spec.retry_policy if job is not None else None

    async def _write_all(self, endings: list[_Ending]) -> list[CompletionResult]:
        results: list[CompletionResult] = []
        for batch in self._batches(endings):
            try:
                await self._write_batch(batch, results)
            except (LostLeadershipError, StoreUnavailableError) as error:
                log.warning(
                    "attempt ends not recorded",
                    reports=len(endings) - len(results),
                    error=str(error),
                )
                results.extend(
                    CompletionResult(ending.run.id, error=error)
                    for ending in endings[len(results) :]
                )
                break
        return results

    def _batches(self, endings: list[_Ending]) -> list[list[_Ending]]:
        if len(endings) <= 1:
            # One end is written alone anyway, so its size needs no measuring.
            return [endings] if endings else []
        costs = [self._runs.end_cost(ending.ended) for ending in endings]
        job_bytes: dict[str, int] = {}
        for job_id in {cost.job_id for cost in costs}:
            job = self._cache.get(job_id)
            job_bytes[job_id] = self._runs.job_write_bytes(job) if job is not None else 0
        return [[endings[i] for i in batch] for batch in split_batches(costs, job_bytes)]

    async def _write_batch(self, batch: list[_Ending], results: list[CompletionResult]) -> None:
        """Write the batch and append its results; alone, one by one, if it conflicts."""
        if len(batch) > 1:
            written = await self._write_together(batch)
            if written is not None:
                results.extend(written)
                return
        for ending in batch:
            results.append(await self._write_alone(ending))

    async def _write_together(self, batch: list[_Ending]) -> list[CompletionResult] | None:
        """Write the batch in one transaction; return None when a lease or job conflicted."""
        with self._concluding.holding(ending.ended for ending in batch):
            changes = self._job_changes(batch)
            ends = [AttemptEnd(ending.ended, ending.lease.fencing_token) for ending in batch]
            try:
                revision = await self._runs.finish_many(ends, changes)
            except BatchConflictError:
                log.debug("batched attempt ends conflicted; writing each alone", size=len(batch))
                return None
            for change in changes:
                self._cache.apply(evolve(change.after, revision=revision))
            ended = [evolve(ending.ended, revision=revision) for ending in batch]
            for run, ending in zip(ended, batch, strict=True):
                self._apply(run, ending.lease)
        for run in ended:
            if run.status.is_final:
                await self._notify_after_run(run)
        log.debug("attempt ends recorded", reports=len(batch), jobs_written=len(changes))
        return [CompletionResult(run.id, run.status) for run in ended]

    def _job_changes(self, batch: list[_Ending]) -> list[JobChange]:
        """Return the status writes of the batch's jobs, decided by each job's last report."""
        last_status = {ending.run.job_id: ending.ended.status for ending in batch}
        changes = []
        for job_id, status in last_status.items():
            job = self._cache.get(job_id)
            after = job_after_end(job, status, self._others_active(job_id))
            if job is not None and after is not None:
                changes.append(JobChange(job, after))
        return changes

    def _others_active(self, job_id: str) -> int:
        """Return the job's active runs that no write in progress is ending."""
        return max(0, self._state.active_per_job.get(job_id, 0) - self._concluding.count(job_id))

    async def _write_alone(self, ending: _Ending) -> CompletionResult:
        run_id = ending.run.id
        try:
            ended = await self._finish_alone(ending)
        except StaleLeaseError as error:
            self._state.leases.release(run_id)
            log.warning(
                "attempt end not recorded: the lease is no longer current",
                run_id=run_id,
                job_id=ending.run.job_id,
                attempt=ending.lease.attempt,
                worker_id=ending.lease.worker_id,
                fencing_token=ending.lease.fencing_token,
            )
            return CompletionResult(run_id, error=error)
        except (JobChangedError, RecordDecodeError) as error:
            log.warning("attempt end not recorded", run_id=run_id, error=str(error))
            return CompletionResult(run_id, error=error)
        if ended.status.is_final:
            await self._notify_after_run(ended)
        return CompletionResult(run_id, ended.status)

    async def _finish_alone(self, ending: _Ending) -> Run:
        run, lease = ending.run, ending.lease
        for _ in range(_WRITE_ATTEMPTS):
            job = self._cache.get(run.job_id)
            ended = ended_run(run, self._policy_of(run.job_id), ending.report, self._clock.now())
            with self._concluding.holding([ended]):
                job_after = job_after_end(job, ended.status, self._others_active(run.job_id))
                try:
                    revision = await self._runs.finish(
                        ended, lease.fencing_token, job_before=job, job_after=job_after
                    )
                except JobChangedError:
                    pass
                else:
                    ended = evolve(ended, revision=revision)
                    if job_after is not None:
                        self._cache.apply(evolve(job_after, revision=revision))
                    self._apply(ended, lease)
                    return ended
            await self._refresh_job(run.job_id)
        raise JobChangedError(run.job_id)

    def _apply(self, ended: Run, lease: ActiveLease) -> None:
        """Bring memory in line with a recorded attempt end."""
        self._state.leases.release(ended.id)
        bound = log.bind(
            run_id=ended.id, job_id=ended.job_id, attempt=ended.attempt, worker_id=lease.worker_id
        )
        if ended.status is RunStatus.QUEUED:
            self._state.queue(ended)
            self._stats.count("attempts_retried")
            bound.warning(
                "attempt failed; retry queued",
                outcome=ended.attempts[-1].outcome,
                retry_at=ended.due_at.isoformat(),
            )
            return
        self._state.untrack(ended.id)
        self._stats.record_finish(ended, self._clock.now())
        # At thousands of runs a minute a line per success is noise; other ends stay visible.
        if ended.status is RunStatus.COMPLETED:
            bound.debug("run finished", status=ended.status.value)
        else:
            bound.info("run finished", status=ended.status.value)

    async def _notify_after_run(self, ended: Run) -> None:
        if self._after_run is None:
            return
        try:
            await self._after_run(ended)
        except SchedulerError as error:
            # NOTE: the run stays recorded, but its dependants are evaluated again only
            # when a leader is next elected (DependencyTrigger.recheck_all).
            log.warning(
                "dependants of a finished run not evaluated",
                run_id=ended.id,
                job_id=ended.job_id,
                error=str(error),
            )

    async def _refresh_job(self, job_id: str) -> None:
        kv = await self._store.get(self._keys.job(job_id))
        if kv is None:
            self._cache.forget(job_id)
            return
        self._cache.apply(codec.decode_job(kv.key, kv.value, kv.mod_revision))
