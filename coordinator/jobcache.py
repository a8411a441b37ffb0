"""Every replica's in-memory copy of all job records, kept fresh by an etcd watch.

It loads the jobs prefix, then watches from the revision after that read.
If the watch start revision was compacted, or the stream breaks, it reloads
from a fresh read instead of hanging. A record that cannot be decoded is
logged and skipped. Listeners hear every change (job, or None when deleted).
It also indexes which jobs depend on each job, so neither a completion nor a
delete scans every job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping, Sequence

from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Job
from taskscheduler.errors import RecordDecodeError, StoreUnavailableError
from taskscheduler.logs import get_logger

log = get_logger(__name__)

JobListener = Callable[[str, Job | None], None]


class JobCache:
    def __init__(self, store: etcd.Etcd, keys: KeyLayout) -> None:
        self._store = store
        self._keys = keys
        self._jobs: dict[str, Job] = {}
        self._listeners: list[JobListener] = []
        self._dependants: dict[str, set[str]] = {}
        # Job ids by (created_at, id), rebuilt only after a job is added or removed.
        self._creation_order: list[str] | None = None
        self.synced = asyncio.Event()

    def __len__(self) -> int:
        return len(self._jobs)

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        return list(self._jobs.values())

    def in_creation_order(self) -> list[Job]:
        """Return every cached job, oldest created first (ties by id)."""
        if self._creation_order is None:
            jobs = sorted(self._jobs.values(), key=lambda job: (job.created_at, job.id))
            self._creation_order = [job.id for job in jobs]
        return [self._jobs[job_id] for job_id in self._creation_order]

    def dependants_of(self, job_id: str) -> list[str]:
        """Return the ids of the cached jobs that list `job_id` in their dependencies, sorted."""
        return sorted(self._dependants.get(job_id, ()))

    def dependency_graph(self) -> dict[str, tuple[str, ...]]:
        """Return every cached job id mapped to its dependencies."""
        return {job_id: job.spec.dependencies for job_id, job in self._jobs.items()}

    def subscribe(self, listener: JobListener) -> None:
        self._listeners.append(listener)

    def apply(self, job: Job) -> None:
        """Record a job this replica just wrote, ahead of its watch event."""
        current = self._jobs.get(job.id)
        if current is None or current.revision < job.revision:
            self._set(job.id, job)

    def forget(self, job_id: str) -> None:
        if job_id in self._jobs:
            self._set(job_id, None)

    async def run(self) -> None:
        """Load and watch until cancelled, reloading after every broken watch.

        Retries back off from 0.5 s to 5 s; only the first failure of a streak
        is logged as a warning.
        """
        delay_s = 0.5
        while True:
            try:
                revision = await self._load()
                self.synced.set()
                delay_s = 0.5
                await self._watch(revision + 1)
            except (StoreUnavailableError, etcd.WatchCompactedError) as error:
                level = log.warning if delay_s == 0.5 else log.debug
                level("job watch interrupted; reloading", error=str(error), retry_in_s=delay_s)
                await asyncio.sleep(delay_s)
                delay_s = min(5.0, delay_s * 2)

    async def _load(self) -> int:
        """Read every job; return the revision of the first page, where the watch resumes."""
        loaded: dict[str, Job] = {}
        first_revision = 0
        async for page in self._store.pages(self._keys.jobs):
            first_revision = first_revision or page.revision
            for kv in page.kvs:
                job = self._decode(kv)
                if job is not None:
                    loaded[job.id] = job
        for job_id in set(self._jobs) - set(loaded):
            self._set(job_id, None)
        for job in loaded.values():
            self.apply(job)
        log.info("job cache loaded", jobs=len(self._jobs), revision=first_revision)
        # Changes made while later pages were read come again through the
        # watch; apply() ignores the ones already seen.
        return first_revision

    async def _watch(self, start_revision: int) -> None:
        async for events in self._store.watch_prefix(self._keys.jobs, start_revision):
            for event in events:
                job_id = event.kv.key[len(self._keys.jobs) :]
                if event.deleted:
                    self.forget(job_id)
                    continue
                current = self._jobs.get(job_id)
                if current is not None and current.revision >= event.kv.mod_revision:
                    # This replica wrote it and applied it already: skip the decoding.
                    continue
                job = self._decode(event.kv)
                if job is not None:
                    self.apply(job)

    def _decode(self, kv: etcd.KeyValue) -> Job | None:
        try:
            return codec.decode_job(kv.key, kv.value, kv.mod_revision)
        except RecordDecodeError as error:
            log.error("skipping undecodable job record", key=kv.key, reason=error.reason)
            return None

    def _set(self, job_id: str, job: Job | None) -> None:
        previous = self._jobs.pop(job_id, None)
        if (previous is None) != (job is None):
            self._creation_order = None
        if previous is not None:
            for dependency in previous.spec.dependencies:
                dependants = self._dependants.get(dependency, set())
                dependants.discard(job_id)
                if not dependants:
                    self._dependants.pop(dependency, None)
        if job is not None:
            self._jobs[job_id] = job
            for dependency in job.spec.dependencies:
                self._dependants.setdefault(dependency, set()).add(job_id)
        for listener in self._listeners:
            listener(job_id, job)


class CachedGraph(Mapping[str, Sequence[str]]):
    """Job id to dependencies, looked up in the job cache on demand instead of copied.

    `read_from_etcd` contains jobs the cache has not seen yet and takes precedence.
    """

    def __init__(self, cache: JobCache) -> None:
        self._cache = cache
        self.read_from_etcd: dict[str, Sequence[str]] = {}

    def __getitem__(self, job_id: str) -> Sequence[str]:
        if job_id in self.read_from_etcd:
            return self.read_from_etcd[job_id]
        job = self._cache.get(job_id)
        if job is None:
            raise KeyError(job_id)
        return job.spec.dependencies

    def __iter__(self) -> Iterator[str]:
        cached = (job.id for job in self._cache.all() if job.id not in self.read_from_etcd)
        yield from self.read_from_etcd
        yield from cached

    def __len__(self) -> int:
        return sum(1 for _ in self)
