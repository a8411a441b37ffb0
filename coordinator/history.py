"""Bounded run history: a per-job cap on kept runs and a maximum age.

etcd keeps every revision until compacted and has a size quota, so run
records cannot pile up. Run keys sort by fire time within a job, so both
limits delete a job's oldest keys; runs still queued or running are never
deleted.

Each pass, every `interval_s`, prunes the jobs whose new runs may have
taken them past the cap: the pruner remembers each job's run count from
its last look and adds the runs created since (`LeaderState.new_runs`),
so a job is counted again only once it may hold more than `max_runs`. A
slice of all jobs is checked in turn against the age limit, so that every
job is checked at least once per `age_sweep_s`. A job whose history is
within both limits costs two small reads: the count of its runs and the
key of its oldest run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import RunStatus
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.errors import LostLeadershipError, RecordDecodeError
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# Oldest run records read per job and pass when some may be deleted.
_READ_BATCH = 100
_DELETES_PER_TXN = 100


class HistoryPruner:
    def __init__(
        self,
        *,
        store: etcd.Etcd,
        keys: KeyLayout,
        cache: JobCache,
        state: LeaderState,
        clock: Clock,
        max_runs: int,
        max_age: timedelta,
        fence: Callable[[], etcd.Compare],
        interval_s: float = 30.0,
        age_sweep_s: float = 3600.0,
    ) -> None:
        self._fence = fence
        self._store = store
        self._keys = keys
        self._cache = cache
        self._state = state
        self._clock = clock
        self._max_runs = max_runs
        self._max_age = max_age
        self._interval_s = interval_s
        self._age_sweep_s = age_sweep_s
        self._turn: list[str] = []
        # Per job: its run count at the last look plus the runs created since.
        self._counts: dict[str, int] = {}

    async def run(self) -> None:
        while True:
            await self._clock.sleep(self._interval_s)
            await self.sweep()

    async def sweep(self) -> int:
        """Prune the jobs due this pass; return how many run records were deleted."""
        cutoff = self._clock.now() - self._max_age
        due = self._over_cap() | set(self._next_slice())
        deleted = 0
        for job_id in sorted(due):
            if self._cache.get(job_id) is None:
                self._counts.pop(job_id, None)
                continue
            deleted += await self._prune_job(job_id, cutoff)
        if deleted:
            log.info("run history pruned", deleted=deleted, jobs_checked=len(due))
        return deleted

    def _over_cap(self) -> set[str]:
        """Return the jobs that may hold more runs than the cap; count the others up."""
        due = set()
        for job_id, added in self._state.take_new_runs().items():
            known = self._counts.get(job_id)
            if known is None or known + added > self._max_runs:
                due.add(job_id)
            else:
                self._counts[job_id] = known + added
        return due

    def _next_slice(self) -> list[str]:
        """Return the next jobs of the round over all jobs that checks the age limit."""
        if not self._turn:
            self._turn = [job.id for job in self._cache.all()]
        passes = max(1.0, self._age_sweep_s / self._interval_s)
        size = math.ceil(len(self._cache) / passes)
        taken, self._turn = self._turn[:size], self._turn[size:]
        return taken

    async def _prune_job(self, job_id: str, cutoff: datetime) -> int:
        prefix = self._keys.runs_of(job_id)
        total = (await self._store.range_prefix(prefix, count_only=True)).count
        self._counts[job_id] = total
        excess = max(0, total - self._max_runs)
        if excess == 0 and not await self._oldest_is_before(prefix, cutoff):
            return 0
        # Values are read too: a queued run may wait in etcd only, outside `state.active`.
        oldest = await self._store.range_prefix(prefix, limit=max(excess, _READ_BATCH))
        doomed = []
        for index, kv in enumerate(oldest.kvs):
            run_id = self._keys.run_id_from_key(kv.key)
            if run_id in self._state.active or _is_queued(kv):
                continue
            if index < excess or _fire_time_of(run_id) < cutoff:
                doomed.append(etcd.delete(kv.key))
        for start in range(0, len(doomed), _DELETES_PER_TXN):
            batch = doomed[start : start + _DELETES_PER_TXN]
            result = await self._store.txn([self._fence()], batch)
            if not result.succeeded:
                raise LostLeadershipError("leader fence no longer matches; another replica leads")
        self._counts[job_id] = total - len(doomed)
        return len(doomed)

    async def _oldest_is_before(self, prefix: str, cutoff: datetime) -> bool:
        oldest = await self._store.range_prefix(prefix, limit=1, keys_only=True)
        if not oldest.kvs:
            return False
        return _fire_time_of(self._keys.run_id_from_key(oldest.kvs[0].key)) < cutoff


def _is_queued(kv: etcd.KeyValue) -> bool:
    try:
        return codec.decode_run(kv.key, kv.value, kv.mod_revision).status is RunStatus.QUEUED
    except RecordDecodeError:
        return False


def _fire_time_of(run_id: str) -> datetime:
    """Return the fire time encoded in a run id (epoch milliseconds after the '.')."""
    suffix = run_id.rpartition(".")[2]
    millis = int(suffix.split("-", 1)[0])
    return datetime.fromtimestamp(millis / 1000, tz=UTC)
