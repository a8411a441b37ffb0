"""Leadership lifecycle: build the leader's state on election, tear it down on loss.

On election the leader rebuilds its memory from etcd (jobs from the warm
cache, queued runs from the queue keys, runs waiting for dependencies from
the held keys, held leases from the lease keys, each lease getting a full
TTL from now) and starts its loops under
supervision. On loss every loop is cancelled before anything else runs.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.dependency_gate import DependencyGate
from taskscheduler.coordinator.dependency_runs import DependencyTrigger
from taskscheduler.coordinator.dispatch import Dispatcher
from taskscheduler.coordinator.election import Election
from taskscheduler.coordinator.firing import Firer
from taskscheduler.coordinator.history import HistoryPruner
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.leasetable import LeaseTable
from taskscheduler.coordinator.model import Job, Run, RunStatus
from taskscheduler.coordinator.queued_cancel import QueuedRunCanceller
from taskscheduler.coordinator.queueloader import QueueLoader
from taskscheduler.coordinator.readyqueue import ReadyQueues
from taskscheduler.coordinator.runstore import RunStore
from taskscheduler.coordinator.selector import SelectorKey, selector_key
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.stats import Stats
from taskscheduler.coordinator.workers import WorkerRegistry
from taskscheduler.errors import (
    LostLeadershipError,
    NotLeaderError,
    RecordDecodeError,
    StoreUnavailableError,
)
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# A queued run shows why it waits only after this long, so a run about to be
# assigned shows no reason.
WAITING_REASON_AFTER_S = 2.0


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    lease_ttl_s: float
    worker_offline_after_s: float
    history_max_runs: int
    history_max_age: timedelta
    priority_aging_s: float = 300.0
    max_queued_in_memory: int = 10_000
    history_prune_interval_s: float = 30.0
    fire_ahead_ms: int = 500
    hand_ahead_ms: int = 250


@dataclass
class LeaderRuntime:
    state: LeaderState
    firer: Firer
    dispatcher: Dispatcher
    workers: WorkerRegistry
    runs: RunStore
    tasks: list[asyncio.Task[None]]
    gate: DependencyGate


class Engine:
    def __init__(
        self,
        *,
        store: etcd.Etcd,
        keys: KeyLayout,
        cache: JobCache,
        election: Election,
        clock: Clock,
        settings: EngineSettings,
    ) -> None:
        self._store = store
        self._keys = keys
        self._cache = cache
        self._election = election
        self._clock = clock
        self._settings = settings
        self.stats = Stats(started_at=clock.now())
        self.runtime: LeaderRuntime | None = None
        cache.subscribe(self._on_job_changed)

    def leader(self) -> LeaderRuntime:
        """Return the leader's runtime, or raise NotLeaderError naming the leader.

        A replica that is elected but still loading, or that has just lost
        its leadership, names no leader: the caller retries until one serves.
        """
        if self.runtime is None or not self._election.is_leader:
            raise NotLeaderError(self._election.other_leader_address)
        return self.runtime

    def waiting_reason(self, run_id: str) -> str:
        """Return why no online agent can take this queued run; "" on a follower."""
        runtime = self.runtime
        if runtime is None or not self._election.is_leader:
            return ""
        held_reason = runtime.state.held.get(run_id)
        if held_reason is not None:
            return held_reason
        return runtime.state.ready.waiting_reason(run_id, self._clock.now(), WAITING_REASON_AFTER_S)

    async def on_elected(self, fence: int) -> None:
        await self._cache.synced.wait()
        ready = ReadyQueues(
            aging_s=self._settings.priority_aging_s,
            max_per_priority=self._settings.max_queued_in_memory,
        )
        state = LeaderState(
            leases=LeaseTable(self._settings.lease_ttl_s),
            ready=ready,
            selector_of=self._selector_of,
            fire_ahead=timedelta(milliseconds=self._settings.fire_ahead_ms),
        )
        runs = RunStore(self._store, self._keys, self._election.fence_compare)
        workers = WorkerRegistry(
            self._store,
            self._keys,
            self._election.fence_compare,
            self._clock,
            offline_after_s=self._settings.worker_offline_after_s,
        )
        shared = dict(state=state, cache=self._cache, runs=runs, store=self._store)
        loader = QueueLoader(state=state, store=self._store, keys=self._keys, runs=runs)
        canceller = QueuedRunCanceller(
            **shared, keys=self._keys, clock=self._clock, stats=self.stats
        )
        gate = DependencyGate(**shared, keys=self._keys, clock=self._clock, canceller=canceller)
        dependencies = DependencyTrigger(
            **shared, keys=self._keys, clock=self._clock, stats=self.stats, gate=gate
        )
        dispatcher = Dispatcher(
            **shared,
            workers=workers,
            keys=self._keys,
            clock=self._clock,
            stats=self.stats,
            after_run=dependencies.after_run,
            loader=loader,
            canceller=canceller,
            hand_ahead=timedelta(milliseconds=self._settings.hand_ahead_ms),
        )
        firer = Firer(
            **shared,
            keys=self._keys,
            clock=self._clock,
            stats=self.stats,
            cancel_runs=dispatcher.cancel_job_runs,
            hold_run=gate.admit,
        )
        await workers.load()
        await self._rebuild(state, loader)
        await gate.rebuild()
        pruner = HistoryPruner(
            store=self._store,
            keys=self._keys,
            cache=self._cache,
            state=state,
            clock=self._clock,
            max_runs=self._settings.history_max_runs,
            max_age=self._settings.history_max_age,
            fence=self._election.fence_compare,
            interval_s=self._settings.history_prune_interval_s,
        )
        loops: dict[str, Callable[[], Awaitable[None]]] = {
            "firing": firer.run,
            "lease-expiry": dispatcher.expire_leases,
            "worker-liveness": lambda: self._watch_liveness(workers),
            "history-pruning": pruner.run,
            "dependency-recheck": dependencies.recheck_all,
            "dependency-gate": gate.run,
            "queue-upkeep": lambda: loader.upkeep(workers, self._clock),
        }
        tasks = [asyncio.create_task(self._supervise(name, loop)) for name, loop in loops.items()]
        self.runtime = LeaderRuntime(state, firer, dispatcher, workers, runs, tasks, gate)
        log.info(
            "leader state ready",
            fence=fence,
            jobs=len(self._cache),
            active_runs=len(state.active),
            leases=len(state.leases),
        )

    async def on_lost(self) -> None:
        runtime, self.runtime = self.runtime, None
        if runtime is None:
            return
        for task in runtime.tasks:
            task.cancel()
        await asyncio.gather(*runtime.tasks, return_exceptions=True)
        log.info("leader loops stopped")

    async def _rebuild(self, state: LeaderState, loader: QueueLoader) -> None:
        firing_times = {job.id: state.firing_time(job) for job in self._cache.all()}
        state.index.load({job_id: at for job_id, at in firing_times.items() if at is not None})
        state.signal_schedule()
        await loader.rebuild()
        now = self._clock.monotonic()
        async for page in self._store.pages(self._keys.leases):
            for kv in page.kvs:
                run = await self._read_run(kv.key[len(self._keys.leases) :])
                if run is None:
                    continue
                if run.status is not RunStatus.RUNNING or not run.attempts:
                    log.warning(
                        "lease key of a run that is not running; ignoring it",
                        run_id=run.id,
                        status=run.status.value,
                    )
                    continue
                state.track(run)
                worker_id = kv.value.decode()
                state.leases.grant(run.id, worker_id, run.attempt, kv.create_revision, now)

    async def _read_run(self, run_id: str) -> Run | None:
        kv = await self._store.get(self._keys.run(run_id))
        if kv is None:
            log.warning("queue or lease key without a run record", run_id=run_id)
            return None
        try:
            return codec.decode_run(kv.key, kv.value, kv.mod_revision)
        except RecordDecodeError as error:
            log.error("skipping undecodable run record", key=kv.key, reason=error.reason)
            return None

    def _on_job_changed(self, job_id: str, job: Job | None) -> None:
        runtime = self.runtime
        if runtime is None:
            return
        if job is not None:
            runtime.state.reindex(job)
            runtime.gate.recheck_job(job_id)
            return
        runtime.state.index.remove(job_id)
        if job_id not in runtime.state.active_per_job:
            return
        orphans = [run for run in runtime.state.active.values() if run.job_id == job_id]
        for run in orphans:
            runtime.state.untrack(run.id)
            lease = runtime.state.leases.get(run.id)
            if lease is not None:
                runtime.dispatcher.note_revoked(lease)
            runtime.state.leases.release(run.id)
        runtime.state.forget_job(job_id)
        if orphans:
            log.info("job deleted; dropping its queued and running runs", job_id=job_id)
            task = asyncio.create_task(runtime.runs.drop_job_leftovers(orphans))
            runtime.tasks.append(task)

    def _selector_of(self, job_id: str) -> SelectorKey:
        job = self._cache.get(job_id)
        return selector_key(job.spec.selector) if job is not None else ()

    async def _watch_liveness(self, workers: WorkerRegistry) -> None:
        while True:
            await workers.mark_silent_offline()
            await self._clock.sleep(1.0)

    async def _supervise(self, name: str, loop: Callable[[], Awaitable[None]]) -> None:
        """Run a leader loop; restart it after an error, stop it when leadership is lost."""
        while True:
            try:
                await loop()
                return
            except LostLeadershipError as error:
                log.warning("leader loop stopped: leadership lost", loop=name, error=str(error))
                return
            except StoreUnavailableError as error:
                log.warning("leader loop lost etcd; retrying", loop=name, error=str(error))
            except Exception:
                log.exception("leader loop crashed; restarting", loop=name)
            await self._clock.sleep(1.0)
