"""The leader's side of the agent protocol: assign, heartbeat, complete, expire.

An agent long-polls with its free slots; the leader pops that many runs it
can execute, and coordinator.assignment moves them to running under fresh
leases in fenced transactions. Heartbeats extend leases in memory. Completions, agents'
reports and the leader's own ends of attempts alike, are judged and
recorded by coordinator.completion, only under the attempt's current
fencing token. A lease that runs out ends its attempt as `lease-expired`,
and the retry policy decides what follows.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.assignment import Assigned, Assigner
from taskscheduler.coordinator.completion import AfterRun, Completer, Completion, CompletionResult
from taskscheduler.coordinator.completion_plan import AttemptReport, HeldLease
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.leasetable import ActiveLease
from taskscheduler.coordinator.model import (
    AttemptOutcome,
    Run,
    RunStatus,
    Worker,
)
from taskscheduler.coordinator.queued_cancel import QueuedRunCanceller
from taskscheduler.coordinator.queueloader import QueueLoader
from taskscheduler.coordinator.revocations import RevocationBox
from taskscheduler.coordinator.runstore import RunStore
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.stats import Stats
from taskscheduler.coordinator.workers import WorkerRegistry
from taskscheduler.errors import LostLeadershipError, StaleLeaseError, StoreUnavailableError
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# Runs handed out by one poll, in concurrent transactions (coordinator.assignment).
MAX_ASSIGNMENTS_PER_POLL = 400


@dataclass(frozen=True, slots=True)
class Polled:
    assigned: list[Assigned]
    # Leases of the worker that the leader ended while the poll was open.
    revoked: list[HeldLease]


class Dispatcher:
    def __init__(
        self,
        *,
        state: LeaderState,
        cache: JobCache,
        runs: RunStore,
        workers: WorkerRegistry,
        store: etcd.Etcd,
        keys: KeyLayout,
        clock: Clock,
        stats: Stats,
        after_run: AfterRun | None = None,
        loader: QueueLoader | None = None,
        canceller: QueuedRunCanceller,
        hand_ahead: timedelta = timedelta(0),
    ) -> None:
        """`after_run` is awaited with each run that reaches a final status through an attempt.

        `hand_ahead` is how long before its due time a run may go to an agent
        that waits for the due time itself (a poll with `accepts_start_at`).
        """
        self._hand_ahead = hand_ahead
        self._revocations = RevocationBox()
        self._assigner = Assigner(
            state=state, cache=cache, runs=runs, store=store, keys=keys, clock=clock, stats=stats
        )
        self._state = state
        self._cache = cache
        self._runs = runs
        self._workers = workers
        self._store = store
        self._keys = keys
        self._clock = clock
        self._stats = stats
        self._loader = loader
        self._canceller = canceller
        self._completer = Completer(
            state=state,
            cache=cache,
            runs=runs,
            store=store,
            keys=keys,
            clock=clock,
            stats=stats,
            after_run=after_run,
        )

    async def poll(
        self, worker_id: str, max_assignments: int, wait_s: float, *, accepts_start_at: bool = False
    ) -> Polled:
        """Wait up to `wait_s` for runs the worker can execute; never more than it asked for.

        With `accepts_start_at`, runs due within the hand-ahead window are
        handed out too, each with its due time as `start_at`. A lease of the
        worker that the leader ends meanwhile, by cancel or expiry, ends the
        wait and is returned in `revoked`.
        """
        worker = self._workers.get(worker_id)
        assigned = await self._poll(worker, max_assignments, wait_s, accepts_start_at)
        return Polled(assigned, self._revocations.take(worker_id))

    async def _poll(
        self, worker: Worker, max_assignments: int, wait_s: float, accepts_start_at: bool
    ) -> list[Assigned]:
        worker_id = worker.id
        deadline = self._clock.monotonic() + wait_s
        ahead = self._hand_ahead if accepts_start_at else timedelta(0)
        while True:
            if self._revocations.has(worker_id):
                # Ends the poll so that its response carries the revoked leases.
                return []
            held = self._state.leases.count_held_by(worker_id)
            free = min(max_assignments, worker.max_concurrent - held, MAX_ASSIGNMENTS_PER_POLL)
            if free > 0:
                if self._loader is not None:
                    await self._loader.refill()
                now = self._clock.now()
                run_ids = self._state.ready.pop_ready(
                    worker.capabilities, now, free, labels=worker.labels, horizon=now + ahead
                )
                if run_ids:
                    return await self._assigner.assign(worker_id, run_ids, now)
            remaining_s = deadline - self._clock.monotonic()
            if remaining_s <= 0:
                return []
            await self._wait_for_work(remaining_s, ahead)

    async def heartbeat(self, worker_id: str, leases: list[HeldLease]) -> list[HeldLease]:
        """Extend the worker's leases; return the ones it must stop (no longer current)."""
        self._revocations.forget(worker_id)
        now = self._clock.monotonic()
        revoked = [
            lease
            for lease in leases
            if not self._state.leases.extend(
                worker_id, lease.run_id, lease.attempt, lease.fencing_token, now
            )
        ]
        await self._workers.seen(worker_id, running=len(leases) - len(revoked))
        for lease in revoked:
            log.warning(
                "heartbeat names a lease that is not current; revoking",
                worker_id=worker_id,
                run_id=lease.run_id,
                attempt=lease.attempt,
                fencing_token=lease.fencing_token,
            )
        return revoked

    async def complete(self, worker_id: str, held: HeldLease, report: AttemptReport) -> RunStatus:
        """Record one report; raise its error (StaleLeaseError for a stale token) if rejected."""
        (result,) = await self._completer.complete_many(worker_id, [Completion(held, report)])
        if result.error is not None:
            raise result.error
        assert result.run_status is not None
        return result.run_status

    async def complete_many(
        self, worker_id: str, completions: Sequence[Completion]
    ) -> list[CompletionResult]:
        """Record a worker's reports in batched transactions; one result per report, in order."""
        return await self._completer.complete_many(worker_id, completions)

    async def cancel_job_runs(self, job_id: str, reason: str) -> int:
        """Cancel every queued or running run of the job; return how many were cancelled.

        A running attempt ends as cancelled and its lease is released, so the
        agent's next heartbeat revokes it and the agent kills the process.
        """
        runs = [run for run in self._state.active.values() if run.job_id == job_id]
        for listed in runs:
            await self._assigner.settled(listed.id)
            run = self._state.active.get(listed.id)
            if run is None:
                continue
            lease = self._state.leases.get(run.id)
            if lease is None:
                await self._cancel_queued(run, reason)
                continue
            report = AttemptReport(AttemptOutcome.CANCELLED, error=reason)
            with contextlib.suppress(StaleLeaseError):
                await self._conclude(run, lease, report)
        return len(runs) + await self._cancel_etcd_only(job_id, reason)

    async def _cancel_etcd_only(self, job_id: str, reason: str) -> int:
        """Cancel the job's queued runs that wait in etcd only (their priority was full)."""
        cancelled = 0
        async for page in self._store.pages(self._keys.runs_of(job_id)):
            for kv in page.kvs:
                run = codec.decode_run(kv.key, kv.value, kv.mod_revision)
                if run.status is RunStatus.QUEUED and run.id not in self._state.active:
                    self._state.uncount(job_id)
                    await self._cancel_queued(run, reason)
                    cancelled += 1
        return cancelled

    async def cancel_run(self, run_id: str, reason: str, *, stored: Run | None = None) -> bool:
        """Cancel one queued or running run; return False when it is not active.

        `stored` is the run as read from etcd; it lets a queued run that waits
        in etcd only (its priority's memory queue was full) be cancelled.
        """
        await self._assigner.settled(run_id)
        run = self._state.active.get(run_id)
        if run is None and stored is not None and stored.status is RunStatus.QUEUED:
            self._state.uncount(stored.job_id)
            await self._cancel_queued(stored, reason)
            return True
        if run is None:
            return False
        lease = self._state.leases.get(run_id)
        if lease is None:
            await self._cancel_queued(run, reason)
            return True
        report = AttemptReport(AttemptOutcome.CANCELLED, error=reason)
        with contextlib.suppress(StaleLeaseError):
            await self._conclude(run, lease, report)
        log.info("running attempt cancelled", run_id=run_id, attempt=lease.attempt, reason=reason)
        return True

    async def _cancel_queued(self, run: Run, reason: str) -> None:
        await self._canceller.cancel(run, reason)

    async def expire_leases(self) -> None:
        """End every attempt whose lease ran out, until cancelled."""
        while True:
            for lease in self._state.leases.expired(self._clock.monotonic()):
                try:
                    await self._expire(lease)
                except (StoreUnavailableError, LostLeadershipError):
                    raise
                except Exception:
                    # One bad lease must not stop the expiry of all the others.
                    log.exception(
                        "could not end an expired lease; dropping it",
                        run_id=lease.run_id,
                        attempt=lease.attempt,
                        worker_id=lease.worker_id,
                    )
                    self._state.leases.release(lease.run_id)
            await self._clock.sleep(min(1.0, self._state.leases.ttl_s / 4))

    async def _expire(self, lease: ActiveLease) -> None:
        run = self._state.active.get(lease.run_id)
        if run is None:
            self._state.leases.release(lease.run_id)
            return
        log.warning(
            "lease expired",
            run_id=lease.run_id,
            attempt=lease.attempt,
            worker_id=lease.worker_id,
            fencing_token=lease.fencing_token,
        )
        self._stats.count("leases_expired")
        report = AttemptReport(AttemptOutcome.LEASE_EXPIRED, error="lease expired")
        with contextlib.suppress(StaleLeaseError):
            await self._conclude(run, lease, report)

    async def _wait_for_work(self, remaining_s: float, ahead: timedelta) -> None:
        event = self._state.work_available
        wait_s = remaining_s
        next_due = self._state.ready.next_due_at()
        if next_due is not None:
            until_due_s = (next_due - ahead - self._clock.now()).total_seconds()
            wait_s = min(wait_s, max(0.01, until_due_s))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), timeout=wait_s)

    async def _conclude(self, run: Run, lease: ActiveLease, report: AttemptReport) -> RunStatus:
        status = await self._completer.conclude(run, lease, report)
        self.note_revoked(lease)
        return status

    def note_revoked(self, lease: ActiveLease) -> None:
        """Tell the lease's agent with its next poll, or end its open poll, that the lease ended."""
        held = HeldLease(lease.run_id, lease.attempt, lease.fencing_token)
        self._revocations.note(lease.worker_id, held)
        self._state.signal_work()
