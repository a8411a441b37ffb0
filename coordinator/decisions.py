"""Pure scheduling decisions: which slots to fire, and what follows an attempt.

Nothing here touches etcd or the clock; the engine passes `now` in and
applies the result in one fenced transaction.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from taskscheduler.coordinator.model import (
    AttemptOutcome,
    Job,
    JobStatus,
    JobType,
    MisfirePolicy,
    RetryPolicy,
    RunStatus,
)
from taskscheduler.schedule import Schedule

# A slot fired less than this late counts as on time, not missed.
MISFIRE_GRACE = timedelta(seconds=1)
# Missed slots walked one by one before jumping ahead; beyond it, run_once
# and skip look back this far only, so a per-second job after a long outage
# is not walked slot by slot.
MAX_WALKED_SLOTS = 10_000
DENSE_LOOKBACK = timedelta(hours=1)
# At most this many slots are fired in one catch-up.
MAX_CATCH_UP_SLOTS = 1000


@dataclass(frozen=True, slots=True)
class FirePlan:
    """The slots to fire now, oldest first, the job's next fire time, and what was dropped."""

    slots: tuple[datetime, ...]
    next_fire_at: datetime | None
    dropped_slots: int = 0


def plan_fire(job: Job, schedule: Schedule, now: datetime) -> FirePlan:
    """Decide which slots a due job fires, by its misfire policy and its window.

    A slot more than MISFIRE_GRACE old counts as missed: `skip` drops missed
    slots, `run_once` fires only the newest of them, and `catch_up` fires
    each one within the catch-up window, oldest first. On-time slots always
    fire. A one-time job fires its instant however late. Slots after
    `end_at` never fire. The next fire time is the first slot after `now`.
    """
    if job.paused or job.next_fire_at is None or job.next_fire_at > now:
        return FirePlan(slots=(), next_fire_at=job.next_fire_at)
    spec = job.spec
    if spec.type is JobType.ONE_TIME:
        return FirePlan(slots=(job.next_fire_at,), next_fire_at=None)

    catch_up = spec.misfire_policy is MisfirePolicy.CATCH_UP
    lookback = timedelta(seconds=spec.catch_up_window_s) if catch_up else DENSE_LOOKBACK
    due, walked_past = _due_slots(job.next_fire_at, schedule, now, lookback)
    following = schedule.next_fire_after(now)
    if spec.end_at is not None:
        # Before the policy picks, so run_once picks the newest missed slot within the window.
        due = [slot for slot in due if slot <= spec.end_at]
        if following is not None and following > spec.end_at:
            following = None
    fired = _select_slots(due, spec.misfire_policy, now, lookback)
    dropped = walked_past + len(due) - len(fired)
    return FirePlan(slots=tuple(fired), next_fire_at=following, dropped_slots=dropped)


def _due_slots(
    first: datetime, schedule: Schedule, now: datetime, lookback: timedelta
) -> tuple[list[datetime], int]:
    """Return the due slots from `first` to `now` that are worth keeping, and how many
    older ones were passed over.

    Slots are walked one by one up to MAX_WALKED_SLOTS; a longer run of missed
    slots (a dense schedule after a long outage) jumps to the lookback, and
    the count of passed-over slots is then a lower bound.
    """
    due: deque[datetime] = deque(maxlen=MAX_CATCH_UP_SLOTS)
    passed_over = 0
    slot: datetime | None = first
    walked = 0
    while slot is not None and slot <= now:
        if walked == MAX_WALKED_SLOTS:
            passed_over += len(due)
            due.clear()
            slot = schedule.next_fire_after(now - lookback - timedelta(microseconds=1))
            walked += 1
            continue
        if len(due) == due.maxlen:
            passed_over += 1
        due.append(slot)
        slot = schedule.next_fire_after(slot)
        walked += 1
    return list(due), passed_over


def _select_slots(
    due: list[datetime], policy: MisfirePolicy, now: datetime, lookback: timedelta
) -> list[datetime]:
    on_time = [slot for slot in due if now - slot < MISFIRE_GRACE]
    missed = [slot for slot in due if now - slot >= MISFIRE_GRACE]
    if policy is MisfirePolicy.CATCH_UP:
        return [slot for slot in due if slot >= now - lookback]
    if policy is MisfirePolicy.RUN_ONCE and missed and not on_time:
        return missed[-1:]
    return on_time


def jitter_offset(
    job_id: str, slot: datetime, jitter_s: int, following: datetime | None
) -> timedelta:
    """Return the slot's delay, derived from (job, slot) so every replica computes the same.

    The delay is spread evenly below `jitter_s`, or below the gap to the next
    slot when that is shorter, so a long jitter never bunches runs up just
    before the next slot.
    """
    span_s = float(jitter_s)
    if following is not None:
        span_s = min(span_s, (following - slot).total_seconds() - 0.001)
    if span_s <= 0:
        return timedelta(0)
    digest = hashlib.sha256(f"{job_id}@{slot.isoformat()}".encode()).digest()
    return timedelta(seconds=span_s * int.from_bytes(digest[:8], "big") / 2**64)


@dataclass(frozen=True, slots=True)
class AttemptVerdict:
    """The verdict on a run after one of its attempts ends."""

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
        return AttemptVerdict(
            RunStatus.QUEUED, now + timedelta(seconds=policy.delay_after(attempt))
        )
    return AttemptVerdict(_FINAL_STATUS[outcome], None)


def job_status_after_run(job: Job, run_status: RunStatus, other_active_runs: int) -> JobStatus:
    """Return the job's status once one of its runs reaches `run_status`.

    A job that will fire no more (one-time, or recurring past its end) is
    completed or failed by its last run; a recurring job, and one that runs when its
    dependencies complete, goes back to scheduled.
    """
    if job.paused:
        return JobStatus.PAUSED
    if other_active_runs > 0 or not run_status.is_final:
        return JobStatus.RUNNING
    # A one-time job executed by hand before its instant still has that slot to fire.
    finished = job.next_fire_at is None and not job.spec.runs_on_dependencies
    if run_status is RunStatus.COMPLETED:
        return JobStatus.COMPLETED if finished else JobStatus.SCHEDULED
    if run_status is RunStatus.CANCELLED and not finished:
        return JobStatus.SCHEDULED
    return JobStatus.FAILED
