"""Pure scheduling decisions: which slots to fire, and what follows an attempt.

Nothing here touches etcd or the clock; the engine passes `now` in and
applies the result in one fenced transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from taskscheduler.coordinator.model import (
    AttemptOutcome,
    Job,
    JobStatus,
    JobType,
    RetryPolicy,
    RunStatus,
)
from taskscheduler.schedule import Schedule

# A job that missed more slots than this (a long outage of a per-second
# schedule) is not walked slot by slot; its newest walked slot stands for all.
MAX_MISSED_SLOTS_WALKED = 1000


@dataclass(frozen=True, slots=True)
class FirePlan:
    """The slot to fire now (None when nothing is due) and the job's next fire time."""

    slot: datetime | None
    next_fire_at: datetime | None
    missed_slots: int = 0


def plan_fire(job: Job, schedule: Schedule, now: datetime) -> FirePlan:
    """Decide what a due job fires.

    Missed slots are coalesced: after an outage, the newest missed slot gets
    one run and the older ones are skipped (`missed_slots` counts them). The
    next fire time is the first slot after `now`.
    """
    if job.next_fire_at is None or job.next_fire_at > now or job.paused:
        return FirePlan(slot=None, next_fire_at=job.next_fire_at)

    slot = job.next_fire_at
    walked = 0
    following = schedule.next_fire_after(slot)
    while following is not None and following <= now and walked < MAX_MISSED_SLOTS_WALKED:
        slot = following
        walked += 1
        following = schedule.next_fire_after(slot)
    if following is not None and following <= now:
        following = schedule.next_fire_after(now)
    return FirePlan(slot=slot, next_fire_at=following, missed_slots=walked)


@dataclass(frozen=True, slots=True)
class AttemptVerdict:
    """What happens to a run after one attempt ends."""

    run_status: RunStatus
    retry_at: datetime | None


_FINAL_STATUS = {
    AttemptOutcome.SUCCEEDED: RunStatus.COMPLETED,
    AttemptOutcome.FAILED: RunStatus.FAILED,
    AttemptOutcome.TIMED_OUT: RunStatus.TIMEOUT,
    AttemptOutcome.LEASE_EXPIRED: RunStatus.FAILED,
    AttemptOutcome.CANCELLED: RunStatus.CANCELLED,
}


def judge_attempt(
    outcome: AttemptOutcome, attempt: int, policy: RetryPolicy, now: datetime
) -> AttemptVerdict:
    """Decide whether a run is finished or gets another attempt.

    Failures, timeouts and lost leases are retried while attempts remain;
    success and cancellation are final.
    """
    retryable = outcome in (
        AttemptOutcome.FAILED,
        AttemptOutcome.TIMED_OUT,
        AttemptOutcome.LEASE_EXPIRED,
    )
    if retryable and attempt <= policy.max_retries:
        return AttemptVerdict(RunStatus.QUEUED, now + timedelta(seconds=policy.retry_delay_s))
    return AttemptVerdict(_FINAL_STATUS[outcome], None)


def job_status_after_run(job: Job, run_status: RunStatus, other_active_runs: int) -> JobStatus:
    """Return the job's status once one of its runs reaches `run_status`."""
    if job.paused:
        return JobStatus.PAUSED
    if other_active_runs > 0 or not run_status.is_final:
        return JobStatus.RUNNING
    if run_status is RunStatus.COMPLETED:
        return JobStatus.COMPLETED if job.spec.type is JobType.ONE_TIME else JobStatus.SCHEDULED
    if run_status is RunStatus.CANCELLED and job.spec.type is JobType.RECURRING:
        return JobStatus.SCHEDULED
    return JobStatus.FAILED
