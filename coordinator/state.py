"""What the leader keeps in memory, all of it rebuildable from etcd.

`active` maps each queued or running run to its latest record; `ready`,
`leases` and `index` are the structures that make firing and assignment
O(log n). `work_available` wakes long-polling agents.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from taskscheduler.coordinator.leasetable import LeaseTable
from taskscheduler.coordinator.model import Job, JobType, Run
from taskscheduler.coordinator.readyqueue import ReadyQueues
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
    _schedules: dict[tuple[str, str, str], Schedule] = field(default_factory=dict)

    def track(self, run: Run) -> None:
        """Hold a queued or running run; a run seen for the first time counts for its job."""
        if run.id not in self.active:
            self.active_per_job[run.job_id] += 1
        self.active[run.id] = run

    def untrack(self, run_id: str) -> Run | None:
        run = self.active.pop(run_id, None)
        if run is not None:
            self.active_per_job[run.job_id] -= 1
            if self.active_per_job[run.job_id] <= 0:
                del self.active_per_job[run.job_id]
        self.ready.remove(run_id)
        return run

    def queue(self, run: Run) -> None:
        self.track(run)
        self.ready.push(run.id, run.priority, run.executor, run.due_at)
        self.signal_work()

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
        """Put the job in the time index at its next fire time, or take it out."""
        if job.paused or job.next_fire_at is None:
            self.index.remove(job.id)
        else:
            self.index.schedule(job.id, job.next_fire_at)
        self.signal_schedule()
