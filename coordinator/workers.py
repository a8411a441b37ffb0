"""The leader's worker registry: registrations in etcd, liveness in memory.

A worker is online while it heartbeats; after `offline_after_s` of silence
it is marked offline in etcd, and its leases run out on their own so its
runs are retried elsewhere. Heartbeat times are kept in memory only, to
keep etcd writes off the heartbeat path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Worker, WorkerStatus
from taskscheduler.errors import LostLeadershipError, NotFoundError, RecordDecodeError
from taskscheduler.logs import get_logger

log = get_logger(__name__)


class WorkerRegistry:
    def __init__(
        self,
        store: etcd.Etcd,
        keys: KeyLayout,
        fence: Callable[[], etcd.Compare],
        clock: Clock,
        *,
        offline_after_s: float,
    ) -> None:
        self._store = store
        self._keys = keys
        self._fence = fence
        self._clock = clock
        self._offline_after_s = offline_after_s
        self._workers: dict[str, Worker] = {}
        self._last_seen: dict[str, float] = {}

    def get(self, worker_id: str) -> Worker:
        worker = self._workers.get(worker_id)
        if worker is None:
            raise NotFoundError("worker", worker_id, field="workerId")
        return worker

    def known(self, worker_id: str) -> bool:
        return worker_id in self._workers

    def online(self) -> list[Worker]:
        return [w for w in self._workers.values() if w.status is WorkerStatus.ONLINE]

    def overlay(self, worker: Worker) -> Worker:
        """Return a stored worker record with the leader's fresher liveness, if it has any."""
        live = self._workers.get(worker.id)
        return live if live is not None else worker

    async def load(self) -> None:
        """Read every registration; each worker gets a full offline window from now."""
        now = self._clock.monotonic()
        async for page in self._store.pages(self._keys.workers):
            for kv in page.kvs:
                try:
                    worker = codec.decode_worker(kv.key, kv.value, kv.mod_revision)
                except RecordDecodeError as error:
                    log.error("skipping undecodable worker record", key=kv.key, reason=error.reason)
                    continue
                self._workers[worker.id] = worker
                self._last_seen[worker.id] = now
        log.info("worker registry loaded", workers=len(self._workers))

    async def register(self, worker: Worker) -> Worker:
        existing = self._workers.get(worker.id)
        if existing is not None:
            worker = dataclasses.replace(worker, registered_at=existing.registered_at)
        await self._persist(worker)
        self._last_seen[worker.id] = self._clock.monotonic()
        log.info(
            "worker registered",
            worker_id=worker.id,
            capabilities=list(worker.capabilities),
            max_concurrent=worker.max_concurrent,
        )
        return worker

    async def deregister(self, worker_id: str) -> None:
        self.get(worker_id)
        result = await self._store.txn([self._fence()], [etcd.delete(self._keys.worker(worker_id))])
        if not result.succeeded:
            raise LostLeadershipError("leader fence no longer matches; another replica leads")
        self._workers.pop(worker_id, None)
        self._last_seen.pop(worker_id, None)
        log.info("worker deregistered", worker_id=worker_id)

    async def seen(self, worker_id: str, running: int) -> None:
        """Record a heartbeat; a worker that was offline comes back online."""
        worker = self.get(worker_id)
        self._last_seen[worker_id] = self._clock.monotonic()
        updated = dataclasses.replace(worker, last_heartbeat_at=self._clock.now(), running=running)
        if worker.status is WorkerStatus.OFFLINE:
            updated = dataclasses.replace(updated, status=WorkerStatus.ONLINE)
            await self._persist(updated)
            log.info("worker back online", worker_id=worker_id)
        self._workers[worker_id] = updated

    async def mark_silent_offline(self) -> list[str]:
        """Mark workers offline whose last heartbeat is older than the offline window."""
        cutoff = self._clock.monotonic() - self._offline_after_s
        silent = [
            worker
            for worker in self._workers.values()
            if worker.status is WorkerStatus.ONLINE and self._last_seen.get(worker.id, 0) < cutoff
        ]
        for worker in silent:
            await self._persist(dataclasses.replace(worker, status=WorkerStatus.OFFLINE))
            log.warning("worker offline: heartbeats missed", worker_id=worker.id)
        return [worker.id for worker in silent]

    async def _persist(self, worker: Worker) -> None:
        put = etcd.put(self._keys.worker(worker.id), codec.encode_worker(worker))
        result = await self._store.txn([self._fence()], [put])
        if not result.succeeded:
            raise LostLeadershipError("leader fence no longer matches; another replica leads")
        self._workers[worker.id] = worker
