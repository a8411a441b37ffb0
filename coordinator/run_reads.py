"""Reads of a job's run history that the dependency rules need.

Run keys sort by time within a job (see coordinator.ids), so the newest
runs are a descending range read with a small limit.
"""

from __future__ import annotations

from datetime import datetime

from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.dependencies import Completion
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Run, RunStatus

# Newest runs of a dependency read when looking for its newest completed run. A
# dependency whose newest completion is further back counts as not completed.
COMPLETION_LOOKBACK_RUNS = 20


class RunReads:
    def __init__(self, store: etcd.Etcd, keys: KeyLayout) -> None:
        self._store = store
        self._keys = keys

    async def newest_completion(self, job_id: str) -> Completion | None:
        """Return the newest completed run among the job's newest runs, or None."""
        result = await self._store.range_prefix(
            self._keys.runs_of(job_id), limit=COMPLETION_LOOKBACK_RUNS, descending=True
        )
        newest: Completion | None = None
        for kv in result.kvs:
            run = codec.decode_run(kv.key, kv.value, kv.mod_revision)
            if run.status is not RunStatus.COMPLETED or run.completed_at is None:
                continue
            if newest is None or run.completed_at > newest.completed_at:
                newest = Completion(job_id, run.id, run.completed_at)
        return newest

    async def newest_run_at(self, job_id: str) -> datetime | None:
        """Return the scheduled time of the job's newest run, or None if it has none."""
        result = await self._store.range_prefix(
            self._keys.runs_of(job_id), limit=1, descending=True
        )
        if not result.kvs:
            return None
        kv = result.kvs[0]
        return codec.decode_run(kv.key, kv.value, kv.mod_revision).scheduled_at

    async def previous_run_at(self, run: Run) -> datetime | None:
        """Return the scheduled time of the job's run just before `run`, or None."""
        result = await self._store.range(
            self._keys.runs_of(run.job_id),
            self._keys.run(run.id).encode(),
            limit=1,
            descending=True,
        )
        if not result.kvs:
            return None
        kv = result.kvs[0]
        return codec.decode_run(kv.key, kv.value, kv.mod_revision).scheduled_at
