"""Moving queued runs to running under fresh leases, for one agent's poll.

The runs of one poll are written in concurrent fenced transactions of up
to RUNS_PER_ASSIGN_TXN runs. The fencing token of a chunk is its
transaction's revision, which is also the create revision of each new
lease key. A transaction whose outcome is unknown (a timeout) puts its
runs back in the queue. If it did commit, their next assignment finds the
lease keys, and the runs are tracked as the earlier transaction left them.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from datetime import datetime

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.evolve import evolve
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Attempt, Job, Run, RunStatus
from taskscheduler.coordinator.runstore import AlreadyLeasedError, RunStore
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.stats import Stats
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# Each assigned run takes three operations; stay under etcd's default of 128.
RUNS_PER_ASSIGN_TXN = 40


@dataclass(frozen=True, slots=True)
class Assigned:
    run: Run
    job: Job | None
    fencing_token: int
    # The run's due time when it was handed out before it; None when it was due.
    start_at: datetime | None = None


class Assigner:
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
    ) -> None:
        self._state = state
        self._cache = cache
        self._runs = runs
        self._store = store
        self._keys = keys
        self._clock = clock
        self._stats = stats
        # Runs whose assignment transaction is in flight, with its end.
        self._in_flight: dict[str, asyncio.Event] = {}

    async def settled(self, run_id: str) -> None:
        """Wait until no assignment of the run is in flight, so that a cancel reads its outcome."""
        done = self._in_flight.get(run_id)
        if done is not None:
            await done.wait()

    async def assign(self, worker_id: str, run_ids: list[str], now: datetime) -> list[Assigned]:
        """Assign the runs; a poll cancelled meanwhile (its agent went away) does not stop it.

        Stopping it could leave a committed assignment unrecorded in memory.
        Runs assigned for a poll that ended without a response keep their leases,
        which run out because no agent holds them, and the retry policy decides.
        """
        work = asyncio.ensure_future(self._assign(worker_id, run_ids, now))
        try:
            return await asyncio.shield(work)
        except asyncio.CancelledError:
            work.add_done_callback(functools.partial(_log_unsent, worker_id))
            raise

    async def _assign(self, worker_id: str, run_ids: list[str], now: datetime) -> list[Assigned]:
        """Assign the runs in chunks of one transaction each, committed concurrently.

        A chunk whose transaction fails goes back to the queue; the call raises
        only when no chunk was assigned.
        """
        started = [self._started(self._state.active[run_id], worker_id, now) for run_id in run_ids]
        chunks = [
            started[start : start + RUNS_PER_ASSIGN_TXN]
            for start in range(0, len(started), RUNS_PER_ASSIGN_TXN)
        ]
        done = asyncio.Event()
        for run_id in run_ids:
            self._in_flight[run_id] = done
        try:
            outcomes = await asyncio.gather(
                *(self._assign_chunk(worker_id, chunk, now) for chunk in chunks),
                return_exceptions=True,
            )
        finally:
            for run_id in run_ids:
                if self._in_flight.get(run_id) is done:
                    del self._in_flight[run_id]
            done.set()
        assigned = [item for outcome in outcomes if isinstance(outcome, list) for item in outcome]
        errors = [outcome for outcome in outcomes if isinstance(outcome, BaseException)]
        if errors and not assigned:
            raise errors[0]
        for error in errors:
            log.warning("assignment transaction failed; runs queued again", error=str(error))
        return assigned

    async def _assign_chunk(
        self, worker_id: str, started: list[Run], now: datetime
    ) -> list[Assigned]:
        try:
            token = await self._runs.assign(started)
        except AlreadyLeasedError:
            await self._recover_leased(started)
            return []
        except BaseException:
            # The transaction may still have committed. If it did, the next
            # assignment of these runs finds their lease keys and recovers them.
            for run in started:
                self._requeue(run.id)
            raise
        assigned: list[Assigned] = []
        for run in started:
            tokened = evolve(run.attempts[-1], fencing_token=token)
            run = evolve(run, attempts=(*run.attempts[:-1], tokened), revision=token)
            self._state.track(run)
            self._state.leases.grant(run.id, worker_id, run.attempt, token, self._clock.monotonic())
            self._stats.record_start(run.due_at, now)
            start_at = run.due_at if run.due_at > now else None
            assigned.append(Assigned(run, self._cache.get(run.job_id), token, start_at))
            log.debug(
                "attempt assigned",
                run_id=run.id,
                job_id=run.job_id,
                attempt=run.attempt,
                worker_id=worker_id,
                fencing_token=token,
            )
        return assigned

    async def _recover_leased(self, started: list[Run]) -> None:
        """Take back the runs of a chunk whose transaction failed a compare.

        A lease key that exists means an earlier assignment committed. A run
        record that is gone or ended means its job was deleted, or the run
        cancelled, meanwhile.
        """
        for run in started:
            lease = await self._runs.read_lease(run.id)
            kv = await self._store.get(self._keys.run(run.id))
            stored = None if kv is None else codec.decode_run(kv.key, kv.value, kv.mod_revision)
            if lease is not None and stored is not None and stored.status is RunStatus.RUNNING:
                self._keep_lease(stored, *lease)
                continue
            if lease is not None:
                log.error("lease key of a run that is not running; deleting it", run_id=run.id)
                await self._runs.drop_keys([etcd.delete(self._keys.lease(run.id))])
            if stored is not None and stored.status is RunStatus.QUEUED:
                self._requeue(run.id)
            else:
                log.info("run ended or deleted during its assignment", run_id=run.id)
                self._state.untrack(run.id)

    def _keep_lease(self, stored: Run, worker_id: str, token: int) -> None:
        # Its agent may never have heard of it; then the lease runs out.
        self._state.track(stored)
        now = self._clock.monotonic()
        self._state.leases.grant(stored.id, worker_id, stored.attempt, token, now)
        log.warning(
            "run found assigned by an earlier transaction; keeping its lease",
            run_id=stored.id,
            attempt=stored.attempt,
            worker_id=worker_id,
            fencing_token=token,
        )

    def _requeue(self, run_id: str) -> None:
        run = self._state.active.get(run_id)
        if run is not None:
            self._state.queue(run)

    def _started(self, run: Run, worker_id: str, now: datetime) -> Run:
        # A run handed out before it is due starts on the agent at its due time.
        # The agent's report replaces this estimate when the attempt ends.
        start = max(now, run.due_at)
        number = run.attempt + 1
        attempt = Attempt(number=number, worker_id=worker_id, fencing_token=0, started_at=start)
        return evolve(
            run,
            status=RunStatus.RUNNING,
            attempt=number,
            worker_id=worker_id,
            started_at=start,
            completed_at=None,
            attempts=(*run.attempts, attempt),
        )


def _log_unsent(worker_id: str, work: asyncio.Future[list[Assigned]]) -> None:
    """Log the end of an assignment whose poll was cancelled before its response was sent."""
    if work.cancelled():
        return
    error = work.exception()
    if error is not None:
        log.warning("assignment for a cancelled poll failed", worker_id=worker_id, error=str(error))
        return
    log.warning(
        "poll cancelled before its assignment was sent; the leases will expire",
        worker_id=worker_id,
        runs=len(work.result()),
    )
