"""Bounded run history: a per-job cap on kept runs and a maximum age.

etcd keeps every revision until compacted and has a size quota, so run
records cannot pile up. The leader sweeps every job on an interval. Run
keys sort by fire time within a job, so both limits are range deletes of a
job's oldest keys; runs still queued or running are never deleted.
"""

from __future__ import annotations

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

    async def run(self) -> None:
        while True:
            await self._clock.sleep(self._interval_s)
            await self.sweep()

    async def sweep(self) -> int:
        """Prune every job's history once; return how many run records were deleted."""
        cutoff = self._clock.now() - self._max_age
        deleted = 0
        for job in self._cache.all():
            deleted += await self._prune_job(job.id, cutoff)
        if deleted:
            log.info("run history pruned", deleted=deleted)
        return deleted

    async def _prune_job(self, job_id: str, cutoff: datetime) -> int:
        prefix = self._keys.runs_of(job_id)
        total = (await self._store.range_prefix(prefix, count_only=True)).count
        excess = max(0, total - self._max_runs)
        # Values are read too: a queued run may wait in etcd only, outside `state.active`.
        oldest = await self._store.range_prefix(prefix, limit=max(excess, 100))
        doomed = []
        for index, kv in enumerate(oldest.kvs):
            run_id = self._keys.run_id_from_key(kv.key)
            if run_id in self._state.active or _is_queued(kv):
                continue
            if index < excess or _fire_time_of(run_id) < cutoff:
                doomed.append(etcd.delete(kv.key))
        for start in range(0, len(doomed), 100):
            result = await self._store.txn([self._fence()], doomed[start : start + 100])
            if not result.succeeded:
                raise LostLeadershipError("leader fence no longer matches; another replica leads")
        return len(doomed)


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
