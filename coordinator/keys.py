"""The etcd key layout, under one configurable prefix (default /taskscheduler).

    {prefix}/leader                  leader key, bound to the leader's etcd lease;
                                     its create revision is the leader fence
    {prefix}/jobs/{job_id}           job record (spec and schedule progress)
    {prefix}/runs/{job_id}/{suffix}  run record; run id = "{job_id}.{suffix}",
                                     so a job's history is one ordered range
    {prefix}/queue/{run_id}          present while the run waits for an agent
    {prefix}/leases/{run_id}         present while an agent holds the current
                                     attempt; its create revision is the fencing token
    {prefix}/workers/{worker_id}     worker registration

The queue and lease keys let a new leader rebuild its in-memory queues and
lease table with two range reads instead of scanning every run.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskscheduler.coordinator.ids import job_id_of


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

    def queued(self, run_id: str) -> str:
        return f"{self.queue}{run_id}"

    def queued_of(self, job_id: str) -> str:
        """Prefix of the queue keys of one job's runs."""
        return f"{self.queue}{job_id}."

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
