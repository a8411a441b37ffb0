"""The etcd key layout, under one configurable prefix (default /taskscheduler).

    {prefix}/leader                  leader key, bound to the leader's etcd lease;
                                     its create revision is the leader fence
    {prefix}/jobs/{job_id}           job record (spec and schedule progress)
    {prefix}/runs/{job_id}/{suffix}  run record; run id = "{job_id}.{suffix}",
                                     so a job's history is one ordered range
    {prefix}/queue/{rank}/{due_ms}/{run_id}
                                     present while the run waits for an agent;
                                     rank is the run's priority rank (0 low to
                                     3 critical) and due_ms its due time in epoch
                                     ms, 14 digits, so each priority is one range
                                     in due order
    {prefix}/held/{run_id}           present while a scheduled run waits for its
                                     job's dependencies, instead of a queue key
    {prefix}/leases/{run_id}         present while an agent holds the current
                                     attempt; its create revision is the fencing token
    {prefix}/workers/{worker_id}     worker registration

The queue and lease keys let a new leader rebuild its in-memory queues and
lease table with range reads instead of scanning every run. Queue keys have
no per-job prefix: deleting a job leaves its queued runs' queue keys, and
the leader deletes each one when it finds the run record gone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from taskscheduler.coordinator.ids import job_id_of
from taskscheduler.coordinator.model import Priority, Run


def due_ms_of(due_at: datetime) -> int:
    """Return a due time as the epoch milliseconds of its queue key (0 for earlier times)."""
    return max(0, int(due_at.timestamp() * 1000))


@dataclass(frozen=True, slots=True)
class KeyLayout:
    prefix: str = "/taskscheduler"

    def __post_init__(self) -> None:
        if not self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(f"key prefix {self.prefix!r} must start with '/' and not end with '/'")

    @property
    def leader(self) -> str:
        return f"{self.prefix}/leader"

    @property
    def jobs(self) -> str:
        return f"{self.prefix}/jobs/"

    def job(self, job_id: str) -> str:
        return f"{self.jobs}{job_id}"

    @property
    def runs(self) -> str:
        return f"{self.prefix}/runs/"

    def runs_of(self, job_id: str) -> str:
        return f"{self.runs}{job_id}/"

    def run(self, run_id: str) -> str:
        job_id = job_id_of(run_id)
        return f"{self.runs_of(job_id)}{run_id[len(job_id) + 1 :]}"

    @property
    def queue(self) -> str:
        return f"{self.prefix}/queue/"

    def queued(self, run: Run) -> str:
        """Return the run's queue key; it depends on the run's priority and due time."""
        return self.queue_position_key(run.priority, due_ms_of(run.due_at), run.id)

    def queue_position_key(self, priority: Priority, due_ms: int, run_id: str) -> str:
        return f"{self.queue_of(priority)}{due_ms:014d}/{run_id}"

    def queue_of(self, priority: Priority) -> str:
        """Prefix of the queue keys of one priority, which sort by due time."""
        return f"{self.queue}{priority.rank}/"

    def run_id_from_queue_key(self, key: str) -> str:
        return key[len(self.queue) :].split("/", 2)[2]

    @property
    def held(self) -> str:
        return f"{self.prefix}/held/"

    def held_run(self, run_id: str) -> str:
        """Return the key that marks a queued run as waiting for its job's dependencies."""
        return f"{self.held}{run_id}"

    @property
    def leases(self) -> str:
        return f"{self.prefix}/leases/"

    def lease(self, run_id: str) -> str:
        return f"{self.leases}{run_id}"

    def leases_of(self, job_id: str) -> str:
        return f"{self.leases}{job_id}."

    @property
    def workers(self) -> str:
        return f"{self.prefix}/workers/"

    def worker(self, worker_id: str) -> str:
        return f"{self.workers}{worker_id}"

    def run_id_from_key(self, key: str) -> str:
        """Return the run id of a run record key."""
        job_id, _, suffix = key[len(self.runs) :].partition("/")
        return f"{job_id}.{suffix}"
