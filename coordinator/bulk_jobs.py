"""Batch create, delete, pause and resume of jobs, with one result per item.

A batch lists 1 to MAX_BATCH_ITEMS items. Each item follows the rules of the
matching single-job call of JobRepository, and an item that breaks them gets
its own error without stopping the others. The items that pass are written
in as few etcd transactions as etcd's limits allow (coordinator.txn_batches).
A batch is not atomic: each transaction commits on its own.

Create: every job is validated as CreateJob validates it, and each write
is create-if-absent. Ids are generated when the batch is written, so a job
cannot depend on another job of the same batch. Such dependants go in a
later request.

Delete, pause, resume: every job is read from etcd, and its write compares
the mod revision read. When a transaction fails, its failure branch reads
each key again: an item whose job changed is retried alone, at most
WRITE_ATTEMPTS times in all, and the unchanged items are retried together.
A delete whose job other jobs depend on is rejected, unless those jobs are
deleted earlier in the same batch: deletes run in waves, dependants first.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from taskscheduler.coordinator import codec, etcd, ids
from taskscheduler.coordinator.codec import JobDraft
from taskscheduler.coordinator.jobs import (
    JobRepository,
    delete_ops,
    dependants_error,
    first_fire_at,
    new_job,
    paused,
    resumed,
)
from taskscheduler.coordinator.model import Job, JobSpec
from taskscheduler.coordinator.txn_batches import (
    ItemWrite,
    TxnLimits,
    WriteOutcome,
    commit_writes,
    probe,
    read_keys,
)
from taskscheduler.coordinator.validation import validate_id, validate_job_spec
from taskscheduler.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    RecordDecodeError,
    SchedulerError,
)
from taskscheduler.grpc_status import status_code_for
from taskscheduler.logs import get_logger

log = get_logger(__name__)

MAX_BATCH_ITEMS = 1000
# Writes of one job before a batch reports it as changing too often, as JobRepository does.
WRITE_ATTEMPTS = 5
# Create transactions fail only when a generated id is taken; each retry draws new ids.
CREATE_ATTEMPTS = 3

SAME_BATCH_NOTE = (
    "Jobs of the same batch cannot be dependencies, because their ids are assigned "
    "when the batch is written; create dependent jobs in a later request"
)

Change = Callable[[Job, datetime], Job]


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The outcome of one batch item: `job` after a create, pause or resume, `error` on failure."""

    index: int
    job_id: str = ""
    job: Job | None = None
    error: SchedulerError | None = None


@dataclass(frozen=True, slots=True)
class _Target:
    """A stored job a batch item acts on, as last read; `job` is None after a keys-only read."""

    index: int
    job_id: str
    revision: int
    job: Job | None = None
    alone: bool = False
    attempts: int = 0


def check_batch_size(count: int, field: str) -> None:
    """Raise InvalidArgumentError on `field` unless it lists 1 to MAX_BATCH_ITEMS items."""
    if count == 0:
        raise InvalidArgumentError(field, f"{field} is empty. List 1 to {MAX_BATCH_ITEMS} items")
    if count > MAX_BATCH_ITEMS:
        raise InvalidArgumentError(
            field,
            f"{field} lists {count} items, more than the maximum of {MAX_BATCH_ITEMS} per "
            f"request. Split the request into requests of at most {MAX_BATCH_ITEMS} items",
        )


class BulkJobs:
    """The batch operations, writing through the parts of a JobRepository."""

    def __init__(self, jobs: JobRepository, limits: TxnLimits | None = None) -> None:
        self._jobs = jobs
        self._store = jobs.store
        self._keys = jobs.keys
        self._cache = jobs.cache
        self._clock = jobs.clock
        self._limits = limits or TxnLimits()

    async def create_many(
        self, drafts: Sequence[JobDraft | InvalidArgumentError]
    ) -> list[ItemResult]:
        """Create the valid drafts; an error in place of a draft becomes that item's result."""
        check_batch_size(len(drafts), "jobs")
        now = self._clock.now()
        results: dict[int, ItemResult] = {}
        planned: dict[int, Job] = {}
        fire_times = _FirstFireTimes(now)
        for index, draft in enumerate(drafts):
            try:
                planned[index] = await self._plan_create(draft, now, fire_times)
            except InvalidArgumentError as error:
                results[index] = ItemResult(index, error=error)
        await self._write_creates(planned, results)
        return _finish("create", len(drafts), results)

    async def pause_many(self, job_ids: Sequence[str]) -> list[ItemResult]:
        return await self._change_many("pause", job_ids, lambda job, _now: paused(job))

    async def resume_many(self, job_ids: Sequence[str]) -> list[ItemResult]:
        return await self._change_many("resume", job_ids, resumed)

    async def delete_many(self, job_ids: Sequence[str]) -> list[ItemResult]:
        """Delete jobs as JobRepository.delete does; a job's dependants in the batch go first."""
        check_batch_size(len(job_ids), "jobIds")
        results: dict[int, ItemResult] = {}
        waiting = await self._read_targets(job_ids, results, keys_only=True)

        # Each wave deletes the jobs nothing depends on any more, which frees the next wave.
        while waiting:
            ready = [target for target in waiting if not self._cache.dependants_of(target.job_id)]
            if not ready:
                break
            waiting = [target for target in waiting if self._cache.dependants_of(target.job_id)]
            await self._write_all(ready, self._delete_write, results)

        for target in waiting:
            error = dependants_error(target.job_id, self._cache.dependants_of(target.job_id))
            results[target.index] = ItemResult(target.index, target.job_id, error=error)
        return _finish("delete", len(job_ids), results)

    # Create

    async def _plan_create(
        self, draft: JobDraft | InvalidArgumentError, now: datetime, fire_times: _FirstFireTimes
    ) -> Job:
        if isinstance(draft, InvalidArgumentError):
            raise draft
        spec = validate_job_spec(draft)
        job_id = ids.new_job_id()
        if spec.dependencies:
            try:
                await self._jobs.check_dependency_graph(job_id, spec.dependencies)
            except InvalidArgumentError as error:
                # A new id has no dependants, so the only failure is an unknown dependency.
                raise InvalidArgumentError(
                    error.field, f"{error.message}. {SAME_BATCH_NOTE}"
                ) from error
        return new_job(job_id, spec, now, fire_times.first(spec))

    async def _write_creates(self, planned: dict[int, Job], results: dict[int, ItemResult]) -> None:
        for _ in range(CREATE_ATTEMPTS):
            if not planned:
                return
            order = list(planned)
            writes = [self._create_write(planned[index]) for index in order]
            outcomes = await commit_writes(self._store, writes, self._limits)
            collided: dict[int, Job] = {}
            for index, outcome in zip(order, outcomes, strict=True):
                job = planned[index]
                if outcome.committed:
                    stored = dataclasses.replace(job, revision=outcome.revision)
                    self._cache.apply(stored)
                    results[index] = ItemResult(index, stored.id, stored)
                elif outcome.error is not None:
                    results[index] = ItemResult(index, job.id, error=outcome.error)
                else:
                    collided[index] = dataclasses.replace(job, id=ids.new_job_id())
            planned = collided
        for index in planned:
            error = FailedPreconditionError("generated job ids kept colliding; retry the request")
            results[index] = ItemResult(index, error=error)

    def _create_write(self, job: Job) -> ItemWrite:
        key = self._keys.job(job.id)
        return ItemWrite(
            compares=(etcd.absent(key),), operations=(etcd.put(key, codec.encode_job(job)),)
        )

    # Pause and resume

    async def _change_many(
        self, operation: str, job_ids: Sequence[str], change: Change
    ) -> list[ItemResult]:
        check_batch_size(len(job_ids), "jobIds")
        results: dict[int, ItemResult] = {}
        targets = await self._read_targets(job_ids, results, keys_only=False)

        def plan(target: _Target, now: datetime) -> tuple[ItemWrite, Job] | ItemResult:
            assert target.job is not None
            changed = change(target.job, now)
            if changed == target.job:
                return ItemResult(target.index, target.job_id, target.job)
            changed = dataclasses.replace(changed, updated_at=now)
            key = self._keys.job(target.job_id)
            write = ItemWrite(
                compares=(etcd.modified_at_revision(key, target.revision),),
                operations=(etcd.put(key, codec.encode_job(changed)),),
                probes=(probe(key),),
                alone=target.alone,
            )
            return write, changed

        await self._write_all(targets, plan, results)
        return _finish(operation, len(job_ids), results)

    def _delete_write(self, target: _Target, _now: datetime) -> tuple[ItemWrite, None]:
        key = self._keys.job(target.job_id)
        write = ItemWrite(
            compares=(etcd.modified_at_revision(key, target.revision),),
            operations=tuple(delete_ops(self._keys, target.job_id)),
            probes=(probe(key, keys_only=True),),
            alone=target.alone,
        )
        return write, None

    # Shared steps

    async def _read_targets(
        self, job_ids: Sequence[str], results: dict[int, ItemResult], *, keys_only: bool
    ) -> list[_Target]:
        """Read the listed jobs; invalid, repeated and unknown ids get their results here."""
        first_index = _first_index_of_each(job_ids, results)

        # Nothing is written yet, so a store failure here fails the whole request.
        keys = [self._keys.job(job_id) for job_id in first_index]
        values = await read_keys(self._store, keys, self._limits, keys_only=keys_only)
        targets = []
        for (job_id, index), kv in zip(first_index.items(), values, strict=True):
            try:
                targets.append(_target_of(index, job_id, kv, keys_only=keys_only))
            except (NotFoundError, RecordDecodeError) as error:
                results[index] = ItemResult(index, job_id, error=error)
        return targets

    async def _write_all(
        self,
        targets: list[_Target],
        plan: Callable[[_Target, datetime], tuple[ItemWrite, Job | None] | ItemResult],
        results: dict[int, ItemResult],
    ) -> None:
        """Write every target's planned change, retrying the ones whose transaction failed."""
        pending = targets
        while pending:
            now = self._clock.now()
            planned: list[tuple[_Target, ItemWrite, Job | None]] = []
            for target in pending:
                step = plan(target, now)
                if isinstance(step, ItemResult):
                    results[target.index] = step
                else:
                    planned.append((target, *step))
            outcomes = await commit_writes(
                self._store, [write for _, write, _ in planned], self._limits
            )
            pending = []
            for (target, _, changed), outcome in zip(planned, outcomes, strict=True):
                retry = self._settle(target, changed, outcome, results)
                if retry is not None:
                    pending.append(retry)

    def _settle(
        self,
        target: _Target,
        changed: Job | None,
        outcome: WriteOutcome,
        results: dict[int, ItemResult],
    ) -> _Target | None:
        """Record a write's result; return the target to retry, re-read, when it must be."""
        index, job_id = target.index, target.job_id
        if outcome.committed:
            stored = None
            if changed is None:
                # The cache's listeners drop a deleted job's runs, as after DeleteJob.
                self._cache.forget(job_id)
            else:
                stored = dataclasses.replace(changed, revision=outcome.revision)
                self._cache.apply(stored)
            results[index] = ItemResult(index, job_id, stored)
            return None
        if outcome.error is not None:
            results[index] = ItemResult(index, job_id, error=outcome.error)
            return None
        kv = outcome.probed[0]
        if kv is not None and kv.mod_revision == target.revision:
            # Another item failed the shared transaction; this one goes again as it was.
            return target
        attempts = target.attempts + 1
        if kv is not None and attempts >= WRITE_ATTEMPTS:
            error = FailedPreconditionError(
                f"job {job_id!r} kept changing during the update; retry the request",
                field="jobId",
            )
            results[index] = ItemResult(index, job_id, error=error)
            return None
        try:
            fresh = _target_of(index, job_id, kv, keys_only=target.job is None)
        except (NotFoundError, RecordDecodeError) as error:
            results[index] = ItemResult(index, job_id, error=error)
            return None
        return dataclasses.replace(fresh, alone=True, attempts=attempts)


class _FirstFireTimes:
    """first_fire_at for one instant, computed once per distinct schedule."""

    def __init__(self, now: datetime) -> None:
        self._now = now
        self._known: dict[tuple[object, ...], datetime | None] = {}

    def first(self, spec: JobSpec) -> datetime | None:
        # NOTE: the key lists the spec fields that first_fire_at reads; keep them in step.
        key = (
            spec.schedule,
            spec.timezone,
            spec.type,
            spec.start_at,
            spec.end_at,
            spec.runs_on_dependencies,
        )
        if key not in self._known:
            self._known[key] = first_fire_at(spec, self._now)
        return self._known[key]


def _first_index_of_each(job_ids: Sequence[str], results: dict[int, ItemResult]) -> dict[str, int]:
    """Map each valid id to its first index; invalid and repeated ids get their results."""
    first_index: dict[str, int] = {}
    for index, job_id in enumerate(job_ids):
        try:
            validate_id(job_id, "jobId")
        except InvalidArgumentError as error:
            results[index] = ItemResult(index, job_id, error=error)
            continue
        if job_id in first_index:
            repeated = InvalidArgumentError(
                "jobIds",
                f"job {job_id} is listed more than once, first at index "
                f"{first_index[job_id]}. List each job once",
            )
            results[index] = ItemResult(index, job_id, error=repeated)
            continue
        first_index[job_id] = index
    return first_index


def _target_of(index: int, job_id: str, kv: etcd.KeyValue | None, *, keys_only: bool) -> _Target:
    """Raise NotFoundError for an absent job and RecordDecodeError for a broken record."""
    if kv is None:
        raise NotFoundError("job", job_id, field="jobId")
    job = None if keys_only else codec.decode_job(kv.key, kv.value, kv.mod_revision)
    return _Target(index, job_id, kv.mod_revision, job)


def _finish(operation: str, count: int, results: dict[int, ItemResult]) -> list[ItemResult]:
    ordered = [results[index] for index in range(count)]
    failed = 0
    for result in ordered:
        if result.error is None:
            log.debug(
                "batch item applied", operation=operation, index=result.index, job_id=result.job_id
            )
            continue
        failed += 1
        log.debug(
            "batch item rejected",
            operation=operation,
            index=result.index,
            job_id=result.job_id,
            code=status_code_for(result.error).name,
            error=str(result.error),
        )
    log.info(
        "job batch done", operation=operation, items=count, succeeded=count - failed, failed=failed
    )
    return ordered
