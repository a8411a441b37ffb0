"""What the leader keeps in memory, all of it rebuildable from etcd.

`active` maps each queued or running run held in memory to its latest
record; `held` names the queued runs among them that wait for their job's
dependencies (not in `ready`), each with the reason shown to clients;
`ready`, `leases` and `index` are the structures that make firing and
assignment O(log n). `work_available` wakes long-polling agents.

A new queued run whose priority already has `ready.max_per_priority` runs
in memory waits in etcd only: it counts in `active_per_job`, and
`etcd_only_from` keeps, per priority, the earliest queue position that may
hold runs not in memory, from where coordinator.queueloader reads them.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskscheduler.coordinator.keys import due_ms_of
from taskscheduler.coordinator.leasetable import LeaseTable
from taskscheduler.coordinator.model import ConcurrencyPolicy, Job, JobType, Priority, Run
from taskscheduler.coordinator.readyqueue import ReadyQueues
from taskscheduler.coordinator.selector import SelectorKey
from taskscheduler.coordinator.timeindex import TimeIndex
from taskscheduler.schedule import Schedule, parse_schedule


@dataclass
class LeaderState:
    leases: LeaseTable
    index: TimeIndex = field(default_factory=TimeIndex)
    ready: ReadyQueues = field(default_factory=ReadyQueues)
    active: dict[str, Run] = field(default_factory=dict)
    active_per_job: Counter[str] = field(default_factory=Counter)
    work_available: asyncio.Event = field(default_factory=asyncio.Event)
    schedule_changed: asyncio.Event = field(default_factory=asyncio.Event)
    selector_of: Callable[[str], SelectorKey] = lambda job_id: ()
    etcd_only_from: dict[Priority, tuple[int, str]] = field(default_factory=dict)
    latest_spills: dict[Priority, tuple[int, str]] = field(default_factory=dict)
    held: dict[str, str] = field(default_factory=dict)
    # How long before its slot a run may be fired (see fires_ahead).
    fire_ahead: timedelta = timedelta(0)
    # Runs created per job since the history pruner last looked.
    new_runs: Counter[str] = field(default_factory=Counter)
    _schedules: dict[tuple[str, str, str], Schedule] = field(default_factory=dict)

    def track(self, run: Run) -> None:
        """Hold a queued or running run; a run seen for the first time counts for its job."""
        if run.id not in self.active:
            self.active_per_job[run.job_id] += 1
        self.active[run.id] = run

    def note_new_run(self, job_id: str) -> None:
        self.new_runs[job_id] += 1

    def take_new_runs(self) -> Counter[str]:
        taken, self.new_runs = self.new_runs, Counter()
        return taken

    def hold(self, run: Run, reason: str) -> None:
        """Hold a queued run out of the ready queues until its dependencies are met."""
        self.note_new_run(run.job_id)
        self.track(run)
        self.held[run.id] = reason

    def release(self, run_id: str) -> None:
        """Move a held run into the ready queues."""
        self.held.pop(run_id, None)
        run = self.active.get(run_id)
        if run is not None:
            self._push(run)
            self.signal_work()

    def untrack(self, run_id: str) -> Run | None:
        self.held.pop(run_id, None)
        run = self.active.pop(run_id, None)
        if run is not None:
            self.active_per_job[run.job_id] -= 1
            if self.active_per_job[run.job_id] <= 0:
                del self.active_per_job[run.job_id]
        self.ready.remove(run_id)
        return run

    def queue(self, run: Run) -> None:
        """Queue a run in memory, or in etcd only when a new run finds its priority full."""
        # A new run also waits in etcd while older runs of its priority do,
        # so runs enter memory in due order.
        new = run.id not in self.active
        if new:
            self.note_new_run(run.job_id)
        if new and (run.priority in self.etcd_only_from or not self.ready.has_room(run.priority)):
            self.active_per_job[run.job_id] += 1
            self.mark_in_etcd(run.priority, _position(run))
            self.signal_work()
            return
        self.track(run)
        self._push(run)
        self.signal_work()

    def load(self, run: Run) -> None:
        """Queue in memory a run read from etcd that `active_per_job` counts already."""
        if run.id in self.active:
            return
        self.active[run.id] = run
        self._push(run)

    def mark_in_etcd(self, priority: Priority, position: tuple[int, str]) -> None:
        """Note that etcd may hold runs of this priority, not in memory, from `position` on."""
        current = self.etcd_only_from.get(priority)
        self.etcd_only_from[priority] = position if current is None else min(current, position)
        latest = self.latest_spills.get(priority)
        self.latest_spills[priority] = position if latest is None else min(latest, position)

    def uncount(self, job_id: str) -> None:
        """Stop counting one of the job's runs that waits in etcd only."""
        self.active_per_job[job_id] -= 1
        if self.active_per_job[job_id] <= 0:
            del self.active_per_job[job_id]

    def forget_job(self, job_id: str) -> None:
        """Stop counting a deleted job's runs, including those in etcd only."""
        self.active_per_job.pop(job_id, None)

    def _push(self, run: Run) -> None:
        selector = self.selector_of(run.job_id)
        self.ready.push(run.id, run.priority, run.executor, run.due_at, selector)

    def signal_work(self) -> None:
        self.work_available.set()
        self.work_available = asyncio.Event()

    def signal_schedule(self) -> None:
        self.schedule_changed.set()

    def schedule_of(self, job: Job) -> Schedule:
        """Return the job's parsed schedule, parsing each distinct expression once."""
        spec = job.spec
        cache_key = (spec.schedule, spec.timezone, spec.type.value)
        schedule = self._schedules.get(cache_key)
        if schedule is None:
            if len(self._schedules) > 100_000:
                self._schedules.clear()
            one_time = spec.type is JobType.ONE_TIME
            schedule = parse_schedule(spec.schedule, one_time=one_time, timezone=spec.timezone)
            self._schedules[cache_key] = schedule
        return schedule

    def reindex(self, job: Job) -> None:
        """Put the job in the time index at its firing time, or take it out."""
        fire_at = self.firing_time(job)
        if fire_at is None:
            self.index.remove(job.id)
        else:
            self.index.schedule(job.id, fire_at)
        self.signal_schedule()

    def firing_time(self, job: Job) -> datetime | None:
        """Return when the leader fires the job's next slot: `fire_ahead` early if it may."""
        if job.paused or job.next_fire_at is None:
            return None
        if self.fires_ahead(job):
            return job.next_fire_at - self.fire_ahead
        return job.next_fire_at

    def fires_ahead(self, job: Job) -> bool:
        """True for a job whose runs may be written before their slot.

        Its run then waits in the ready queue until its due time, so a burst of
        slots at one instant is written beforehand and only handed out at the
        instant. Jobs whose slot depends on what is active at the slot, under
        concurrencyPolicy forbid or replace, or that wait for dependencies, fire
        at the slot itself.
        """
        spec = job.spec
        return (
            self.fire_ahead > timedelta(0)
            and spec.concurrency_policy is ConcurrencyPolicy.ALLOW
            and not spec.waits_for_dependencies
        )


def _position(run: Run) -> tuple[int, str]:
    return (due_ms_of(run.due_at), run.id)
