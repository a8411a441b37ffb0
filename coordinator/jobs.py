"""Job definitions in etcd: create, read, list, update, pause, resume, delete.

Any replica serves these. Each write is a compare-and-swap on the job
record's mod revision, retried after a fresh read when the leader moved
the job's progress in between; the leader learns of every change through
its watch. Reads of one job go to etcd (linearizable); listings come from
the replica's watched cache.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd, ids
from taskscheduler.coordinator.codec import JobDraft
from taskscheduler.coordinator.dependencies import check_dependency_graph
from taskscheduler.coordinator.interning import shared
from taskscheduler.coordinator.jobcache import CachedGraph, JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Job, JobSpec, JobStatus, JobType, Page, Priority, Run
from taskscheduler.coordinator.validation import apply_update, validate_job_spec
from taskscheduler.errors import FailedPreconditionError, NotFoundError
from taskscheduler.logs import get_logger
from taskscheduler.schedule import parse_schedule

log = get_logger(__name__)

_WRITE_ATTEMPTS = 5
_SCHEDULE_FIELDS = ("schedule", "timezone", "type", "start_at", "end_at")


class JobRepository:
    def __init__(self, store: etcd.Etcd, keys: KeyLayout, cache: JobCache, clock: Clock) -> None:
        self._store = store
        self._keys = keys
        self._cache = cache
        self._clock = clock
        self._graph_lock = asyncio.Lock()

    # The batch operations (coordinator.bulk_jobs) write through the same parts.
    @property
    def store(self) -> etcd.Etcd:
        return self._store

    @property
    def keys(self) -> KeyLayout:
        return self._keys

    @property
    def cache(self) -> JobCache:
        return self._cache

    @property
    def clock(self) -> Clock:
        return self._clock

    async def create(self, draft: JobDraft) -> Job:
        spec = validate_job_spec(draft)
        job_id = ids.new_job_id()
        await self.check_dependency_graph(job_id, spec.dependencies)
        now = self._clock.now()
        job = new_job(job_id, spec, now, first_fire_at(spec, now))
        key = self._keys.job(job.id)
        result = await self._store.txn([etcd.absent(key)], [etcd.put(key, codec.encode_job(job))])
        if not result.succeeded:
            raise FailedPreconditionError(f"job id {job.id!r} collided; retry the request")
        job = dataclasses.replace(job, revision=result.revision)
        self._cache.apply(job)
        log.info("job created", job_id=job.id, name=spec.name, schedule=spec.schedule)
        return job

    async def get(self, job_id: str) -> Job:
        kv = await self._store.get(self._keys.job(job_id))
        if kv is None:
            raise NotFoundError("job", job_id, field="jobId")
        return codec.decode_job(kv.key, kv.value, kv.mod_revision)

    def list(
        self, *, status: JobStatus | None, priority: Priority | None, page: Page
    ) -> tuple[list[Job], int]:
        jobs = self._cache.in_creation_order()
        if status is not None or priority is not None:
            jobs = [
                job
                for job in jobs
                if (status is None or job.status is status)
                and (priority is None or job.spec.priority is priority)
            ]
        return jobs[page.offset : page.offset + page.limit], len(jobs)

    async def update(self, job_id: str, draft: JobDraft, paths: Sequence[str]) -> Job:
        current = await self.get(job_id)
        proposed = validate_job_spec(apply_update(current.spec, draft, paths))

        def change(job: Job) -> Job:
            spec = validate_job_spec(apply_update(job.spec, draft, paths))
            return self._rescheduled(job, spec)

        if not proposed.dependencies:
            job = await self._rewrite(job_id, change)
        else:
            # One graph change at a time on this replica, so two updates sent together
            # cannot each pass the cycle check and close a cycle.
            async with self._graph_lock:
                await self.check_dependency_graph(job_id, proposed.dependencies)
                job = await self._rewrite(job_id, change)
        log.info("job updated", job_id=job_id, fields=list(paths) or "all")
        return job

    async def pause(self, job_id: str) -> Job:
        job = await self._rewrite(job_id, paused)
        log.info("job paused", job_id=job_id)
        return job

    async def resume(self, job_id: str) -> Job:
        def change(job: Job) -> Job:
            return resumed(job, self._clock.now())

        job = await self._rewrite(job_id, change)
        log.info("job resumed", job_id=job_id, next_fire_at=_iso(job.next_fire_at))
        return job

    async def delete(self, job_id: str) -> None:
        """Delete the job with its history and leases, in one transaction.

        Its queue keys stay behind because they have no per-job prefix; the
        leader deletes each one when it finds the run record gone.

        A job that other jobs depend on is kept: FailedPreconditionError names them.
        """
        # NOTE: the check reads this replica's cache, so a dependant created on another
        # replica a moment earlier can slip through; its runs then wait forever.
        dependants = self._cache.dependants_of(job_id)
        if dependants:
            raise dependants_error(job_id, dependants)
        key = self._keys.job(job_id)
        result = await self._store.txn([etcd.exists(key)], delete_ops(self._keys, job_id))
        if not result.succeeded:
            raise NotFoundError("job", job_id, field="jobId")
        self._cache.forget(job_id)
        log.info("job deleted", job_id=job_id)

    async def history(self, job_id: str, page: Page) -> tuple[list[Run], int]:
        """Return one page of the job's runs, newest first, and the number kept."""
        await self.get(job_id)
        prefix = self._keys.runs_of(job_id)
        total = (await self._store.range_prefix(prefix, count_only=True)).count
        result = await self._store.range_prefix(
            prefix, limit=page.offset + page.limit, descending=True
        )
        runs = [
            codec.decode_run(kv.key, kv.value, kv.mod_revision)
            for kv in result.kvs[page.offset : page.offset + page.limit]
        ]
        return runs, total

    async def run(self, job_id: str, run_id: str) -> Run:
        """Return one run of the job; NotFoundError when either is unknown."""
        try:
            owner = ids.job_id_of(run_id)
        except ValueError:
            owner = ""
        if owner != job_id:
            raise NotFoundError("run", run_id, field="runId")
        kv = await self._store.get(self._keys.run(run_id))
        if kv is None:
            raise NotFoundError("run", run_id, field="runId")
        return codec.decode_run(kv.key, kv.value, kv.mod_revision)

    async def run_counts(self, job_id: str) -> Counter[str]:
        counts: Counter[str] = Counter()
        async for page in self._store.pages(self._keys.runs_of(job_id)):
            for kv in page.kvs:
                counts[codec.decode_run(kv.key, kv.value, kv.mod_revision).status.value] += 1
        return counts

    async def check_dependency_graph(self, job_id: str, dependencies: Sequence[str]) -> None:
        """Check the dependencies against every stored job; InvalidArgumentError if they fail.

        The graph comes from this replica's cache, and an id missing there is read from
        etcd before it counts as unknown, in case the cache has not seen it yet. The
        check visits only the jobs reachable from `dependencies`, so its cost does not
        grow with the number of stored jobs.
        """
        if not dependencies:
            return
        graph = CachedGraph(self._cache)
        for dependency in dependencies:
            if dependency in graph or dependency == job_id:
                continue
            kv = await self._store.get(self._keys.job(dependency))
            if kv is not None:
                graph.read_from_etcd[dependency] = codec.decode_job(
                    kv.key, kv.value, kv.mod_revision
                ).spec.dependencies
        # NOTE: two updates sent at once to different replicas can each pass this check
        # and together close a cycle, because the check is not part of the write
        # transaction. The leader then starts no run of a job on that cycle.
        check_dependency_graph(job_id, dependencies, graph)

    async def _rewrite(self, job_id: str, change: Callable[[Job], Job]) -> Job:
        for _ in range(_WRITE_ATTEMPTS):
            job = await self.get(job_id)
            changed = change(job)
            if changed == job:
                return job
            changed = dataclasses.replace(changed, updated_at=self._clock.now())
            key = self._keys.job(job_id)
            result = await self._store.txn(
                [etcd.modified_at_revision(key, job.revision)],
                [etcd.put(key, codec.encode_job(changed))],
            )
            if result.succeeded:
                changed = dataclasses.replace(changed, revision=result.revision)
                self._cache.apply(changed)
                return changed
        raise FailedPreconditionError(
            f"job {job_id!r} kept changing during the update; retry the request"
        )

    def _rescheduled(self, job: Job, spec: JobSpec) -> Job:
        changed = dataclasses.replace(job, spec=spec)
        if all(getattr(spec, name) == getattr(job.spec, name) for name in _SCHEDULE_FIELDS):
            return changed
        next_fire_at = first_fire_at(spec, self._clock.now())
        status = job.status
        if status in (JobStatus.SCHEDULED, JobStatus.COMPLETED, JobStatus.FAILED):
            status = idle_status(spec, next_fire_at)
        return dataclasses.replace(changed, next_fire_at=next_fire_at, status=status)


def new_job(job_id: str, spec: JobSpec, now: datetime, next_fire_at: datetime | None) -> Job:
    """Return a job as created at `now`, before it is stored."""
    return Job(
        id=job_id,
        spec=spec,
        status=idle_status(spec, next_fire_at),
        next_fire_at=None if next_fire_at is None else shared(next_fire_at),
        created_at=shared(now),
        updated_at=shared(now),
    )


def paused(job: Job) -> Job:
    return dataclasses.replace(job, status=JobStatus.PAUSED)


def resumed(job: Job, now: datetime) -> Job:
    """Return the job resumed at `now`; a job that is not paused is returned unchanged."""
    if not job.paused:
        return job
    next_fire_at = job.next_fire_at
    if next_fire_at is None and job.last_fire_at is None:
        next_fire_at = first_fire_at(job.spec, now)
    # Otherwise next_fire_at still names the first slot missed while paused,
    # and the leader applies the job's misfire policy to the missed slots.
    status = idle_status(job.spec, next_fire_at)
    return dataclasses.replace(job, status=status, next_fire_at=next_fire_at)


def delete_ops(keys: KeyLayout, job_id: str) -> list[etcd.Op]:
    """Return the operations that delete a job with its history and leases."""
    return [
        etcd.delete(keys.job(job_id)),
        etcd.delete_prefix(keys.runs_of(job_id)),
        etcd.delete_prefix(keys.leases_of(job_id)),
    ]


def dependants_error(job_id: str, dependants: Sequence[str]) -> FailedPreconditionError:
    """Return the error that rejects deleting a job that `dependants` depend on."""
    return FailedPreconditionError(
        f"job {job_id} cannot be deleted because these jobs depend on it: "
        f"{', '.join(dependants)}. Remove it from their dependencies or delete them first",
        field="jobId",
    )


def first_fire_at(spec: JobSpec, now: datetime) -> datetime | None:
    """Return a new or rescheduled job's first fire time.

    A recurring job fires at its first slot after `now` and not before
    `start_at`, or never when that slot is after `end_at`. A one-time job
    fires at its instant, at once if that instant has passed.
    """
    if spec.runs_on_dependencies:
        return None
    one_time = spec.type is JobType.ONE_TIME
    schedule = parse_schedule(spec.schedule, one_time=one_time, timezone=spec.timezone)
    if one_time:
        return schedule.next_fire_after(datetime.min.replace(tzinfo=UTC))
    after = now
    if spec.start_at is not None and spec.start_at > now:
        after = spec.start_at - timedelta(microseconds=1)
    first = schedule.next_fire_after(after)
    if first is not None and spec.end_at is not None and first > spec.end_at:
        return None
    return first


def idle_status(spec: JobSpec, next_fire_at: datetime | None) -> JobStatus:
    """Return the status of a job without active runs.

    A recurring job with no slot left before its `end_at` is completed, and any other job
    (one that runs when its dependencies complete included) is scheduled.
    """
    if spec.type is JobType.RECURRING and next_fire_at is None and not spec.runs_on_dependencies:
        return JobStatus.COMPLETED
    return JobStatus.SCHEDULED


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
