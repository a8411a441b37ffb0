"""Turn a FirePlan into the records one fire transaction writes.

Pure: given the job, its plan, the time and how many of its runs are
active, it returns the new runs and the job's new progress. It applies the
concurrency policy (under `forbid`, a slot that would overlap an active run
is recorded as a cancelled run; under `replace`, only the newest slot runs),
the per-slot jitter, and a cap on runs per transaction that leaves the rest
of a long catch-up to the next pass.
"""

from __future__ import annotations

from datetime import datetime

from taskscheduler.coordinator import ids
from taskscheduler.coordinator.decisions import FirePlan, jitter_offset
from taskscheduler.coordinator.evolve import evolve
from taskscheduler.coordinator.model import (
    ConcurrencyPolicy,
    Job,
    JobStatus,
    JobType,
    Run,
    RunStatus,
    RunTrigger,
)
from taskscheduler.coordinator.runstore import Firing

# Each run takes two operations and one compare; etcd's default limit is 128 of each.
MAX_RUNS_PER_FIRING = 30

SKIPPED_FORBID = "skipped: the previous run was still active (concurrencyPolicy forbid)"
SKIPPED_REPLACE = "skipped: a newer slot replaced it (concurrencyPolicy replace)"


def build_firing(job: Job, plan: FirePlan, now: datetime, active_runs: int) -> Firing:
    slots = plan.slots[:MAX_RUNS_PER_FIRING]
    next_fire_at = plan.next_fire_at
    if len(plan.slots) > len(slots):
        next_fire_at = plan.slots[len(slots)]

    runs: list[Run] = []
    active = active_runs
    policy = job.spec.concurrency_policy
    for index, slot in enumerate(slots):
        following = slots[index + 1] if index + 1 < len(slots) else next_fire_at
        run = new_run(job, ids.scheduled_run_id(job.id, slot), slot, RunTrigger.SCHEDULE)
        run = evolve(run, due_at=slot + jitter_offset(job.id, slot, job.spec.jitter_s, following))
        skip_reason = _skip_reason(policy, active, index, len(slots))
        if skip_reason:
            run = _skipped(run, skip_reason, now)
        else:
            active += 1
        runs.append(run)

    last_fire_at = slots[-1] if slots else job.last_fire_at
    queued = any(run.status is RunStatus.QUEUED for run in runs)
    job_after = evolve(
        job,
        last_fire_at=last_fire_at,
        last_run_at=newest_run_at(job, last_fire_at),
        next_fire_at=next_fire_at,
        status=_status_after_fire(job, next_fire_at, queued or active_runs > 0),
    )
    return Firing(job, job_after, tuple(runs), held=job.spec.waits_for_dependencies)


def new_run(job: Job, run_id: str, scheduled_at: datetime, trigger: RunTrigger) -> Run:
    return Run(
        id=run_id,
        job_id=job.id,
        job_name=job.spec.name,
        trigger=trigger,
        status=RunStatus.QUEUED,
        priority=job.spec.priority,
        executor=job.spec.executor,
        scheduled_at=scheduled_at,
        due_at=scheduled_at,
        max_attempts=job.spec.retry_policy.max_retries + 1,
    )


def newest_run_at(job: Job, scheduled_at: datetime | None) -> datetime | None:
    """Return the job's `last_run_at` once a run scheduled at `scheduled_at` is written."""
    if scheduled_at is None or (job.last_run_at is not None and job.last_run_at >= scheduled_at):
        return job.last_run_at
    return scheduled_at


def status_when_queued(job: Job) -> JobStatus:
    return JobStatus.PAUSED if job.paused else JobStatus.RUNNING


def _skip_reason(policy: ConcurrencyPolicy, active: int, index: int, count: int) -> str:
    if policy is ConcurrencyPolicy.FORBID and active > 0:
        return SKIPPED_FORBID
    if policy is ConcurrencyPolicy.REPLACE and index < count - 1:
        return SKIPPED_REPLACE
    return ""


def _skipped(run: Run, reason: str, now: datetime) -> Run:
    return evolve(run, status=RunStatus.CANCELLED, completed_at=now, error=reason)


def _status_after_fire(job: Job, next_fire_at: datetime | None, active: bool) -> JobStatus:
    if job.paused:
        return JobStatus.PAUSED
    if active:
        return JobStatus.RUNNING
    if next_fire_at is None and job.spec.type is JobType.RECURRING:
        return JobStatus.COMPLETED
    return job.status
