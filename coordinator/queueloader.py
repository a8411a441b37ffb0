"""Moving queued runs from etcd into the leader's bounded in-memory queues.

Each priority's queue keys sort by due time, so loading reads the next page
of one priority's keys from `state.etcd_only_from`, skips runs already in
memory, and reads their run records in batched transactions. A queue key
whose run record is gone belongs to a deleted job, and the leader deletes it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aetcd import rpc

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.ids import job_id_of
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Priority, Run, RunStatus
from taskscheduler.coordinator.readyqueue import AgentOffer
from taskscheduler.coordinator.runstore import RunStore
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.workers import WorkerRegistry
from taskscheduler.errors import RecordDecodeError
from taskscheduler.logs import get_logger

log = get_logger(__name__)

MAX_PAGE = 500
UPKEEP_INTERVAL_S = 1.0
# Range reads per transaction, under etcd's default limit of 128 operations.
_READS_PER_TXN = 100


class QueueLoader:
    def __init__(
        self, *, state: LeaderState, store: etcd.Etcd, keys: KeyLayout, runs: RunStore
    ) -> None:
        self._state = state
        self._store = store
        self._keys = keys
        self._runs = runs
        self._lock = asyncio.Lock()

    async def rebuild(self) -> None:
        """Count every queued run in etcd, then load each priority up to its bound."""
        for priority in Priority:
            prefix = self._keys.queue_of(priority)
            found = False
            async for page in self._store.pages(prefix):
                for kv in page.kvs:
                    run_id = self._keys.run_id_from_queue_key(kv.key)
                    self._state.active_per_job[job_id_of(run_id)] += 1
                    found = True
            if found:
                self._state.mark_in_etcd(priority, (0, ""))
        await self.refill()

    async def upkeep(self, workers: WorkerRegistry, clock: Clock) -> None:
        """Load runs that fit in memory and record why unroutable runs wait, every second."""
        while True:
            await self.refill()
            offers = [AgentOffer(w.capabilities, w.labels) for w in workers.online()]
            self._state.ready.refresh_waiting_reasons(offers)
            await clock.sleep(UPKEEP_INTERVAL_S)

    async def refill(self) -> None:
        """Load runs for every priority that has room in memory and runs in etcd only."""
        if self._lock.locked():
            return
        async with self._lock:
            for priority in list(self._state.etcd_only_from):
                while self._state.ready.room(priority) > 0:
                    if not await self._load_page(priority):
                        break

    async def _load_page(self, priority: Priority) -> bool:
        """Load one page of the priority's etcd queue; return whether more may follow."""
        position = self._state.etcd_only_from.get(priority)
        if position is None:
            return False
        # Runs spilled during the read may sit inside the range just read.
        self._state.latest_spills.pop(priority, None)
        limit = min(MAX_PAGE, self._state.ready.room(priority))
        start = self._keys.queue_position_key(priority, *position)
        page = await self._store.range(
            start, etcd.prefix_end(self._keys.queue_of(priority)), limit=limit, keys_only=True
        )
        run_ids = [self._keys.run_id_from_queue_key(kv.key) for kv in page.kvs]
        missing = [run_id for run_id in run_ids if run_id not in self._state.active]
        await self._load_runs(page.kvs, missing)
        self._advance(priority, page)
        return page.more

    def _advance(self, priority: Priority, page: etcd.RangeResult) -> None:
        """Move the priority's etcd position past the page, or back to a run spilled meanwhile."""
        candidates = []
        if page.more and page.kvs:
            last = page.kvs[-1].key[len(self._keys.queue_of(priority)) :]
            due_ms, _, run_id = last.partition("/")
            candidates.append((int(due_ms), run_id + "\0"))
        spilled = self._state.latest_spills.pop(priority, None)
        if spilled is not None:
            candidates.append(spilled)
        if candidates:
            self._state.etcd_only_from[priority] = min(candidates)
        else:
            self._state.etcd_only_from.pop(priority, None)

    async def _load_runs(self, queue_kvs: Sequence[etcd.KeyValue], run_ids: list[str]) -> None:
        wanted = set(run_ids)
        queue_key_of = {
            self._keys.run_id_from_queue_key(kv.key): kv.key
            for kv in queue_kvs
            if self._keys.run_id_from_queue_key(kv.key) in wanted
        }
        orphans: list[str] = []
        for start in range(0, len(run_ids), _READS_PER_TXN):
            batch = run_ids[start : start + _READS_PER_TXN]
            reads = [_read(self._keys.run(run_id)) for run_id in batch]
            result = await self._store.txn([], reads)
            for run_id, response in zip(batch, result.responses, strict=True):
                kvs = response.response_range.kvs
                if not kvs:
                    orphans.append(queue_key_of[run_id])
                    continue
                run = self._decode(kvs[0])
                if run is not None and run.status is RunStatus.QUEUED:
                    self._state.load(run)
        if orphans:
            log.info("deleting queue keys of deleted runs", count=len(orphans))
            await self._runs.drop_queue_keys(orphans)
        if run_ids:
            self._state.signal_work()

    def _decode(self, kv: rpc.KeyValue) -> Run | None:
        key = kv.key.decode()
        try:
            return codec.decode_run(key, kv.value, kv.mod_revision)
        except RecordDecodeError as error:
            log.error("skipping undecodable run record", key=key, reason=error.reason)
            return None


def _read(key: str) -> etcd.Op:
    return etcd.Op(request_range=rpc.RangeRequest(key=key.encode()))
