"""Pure scheduling decisions: what a due job fires, and what follows an attempt."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.coordinator.decisions import (
    MAX_MISSED_SLOTS_WALKED,
    job_status_after_run,
    judge_attempt,
    plan_fire,
)
from taskscheduler.coordinator.model import (
    AttemptOutcome,
    Job,
    JobSpec,
    JobStatus,
    JobType,
    RetryPolicy,
    RunStatus,
)
from taskscheduler.schedule import parse_schedule

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_job(**changes: object) -> Job:
    spec = JobSpec(name="report", schedule="@every 10s", executor="shell")
    job = Job(id="job-1", spec=spec, next_fire_at=T0, created_at=T0, updated_at=T0)
    return replace(job, **changes)


def test_plan_fire_not_due() -> None:
    job = make_job()
    plan = plan_fire(job, parse_schedule("@every 10s", one_time=False), T0 - timedelta(seconds=1))

    assert plan.slot is None
    assert plan.next_fire_at == T0


def test_plan_fire_on_time() -> None:
    plan = plan_fire(make_job(), parse_schedule("@every 10s", one_time=False), T0)

    assert plan.slot == T0
    assert plan.next_fire_at == T0 + timedelta(seconds=10)
    assert plan.missed_slots == 0


def test_plan_fire_coalesces_missed_slots() -> None:
    now = T0 + timedelta(seconds=45)
    plan = plan_fire(make_job(), parse_schedule("@every 10s", one_time=False), now)

    assert plan.slot == T0 + timedelta(seconds=40)
    assert plan.next_fire_at == T0 + timedelta(seconds=50)
    assert plan.missed_slots == 4


def test_plan_fire_long_outage_is_bounded() -> None:
    now = T0 + timedelta(days=2)
    plan = plan_fire(make_job(), parse_schedule("@every 1s", one_time=False), now)

    assert plan.missed_slots == MAX_MISSED_SLOTS_WALKED
    assert plan.next_fire_at == now + timedelta(seconds=1)


def test_plan_fire_paused_job() -> None:
    plan = plan_fire(
        make_job(status=JobStatus.PAUSED), parse_schedule("@every 10s", one_time=False), T0
    )

    assert plan.slot is None


def test_plan_fire_one_time_job() -> None:
    schedule = parse_schedule("2026-03-01T12:00:00Z", one_time=True)
    plan = plan_fire(make_job(), schedule, T0 + timedelta(minutes=5))

    assert plan.slot == T0
    assert plan.next_fire_at is None


@pytest.mark.parametrize(
    ("outcome", "attempt", "max_retries", "status", "retried"),
    [
        (AttemptOutcome.SUCCEEDED, 1, 3, RunStatus.COMPLETED, False),
        (AttemptOutcome.FAILED, 1, 0, RunStatus.FAILED, False),
        (AttemptOutcome.FAILED, 1, 2, RunStatus.QUEUED, True),
        (AttemptOutcome.FAILED, 2, 2, RunStatus.QUEUED, True),
        (AttemptOutcome.FAILED, 3, 2, RunStatus.FAILED, False),
        (AttemptOutcome.TIMED_OUT, 1, 0, RunStatus.TIMEOUT, False),
        (AttemptOutcome.TIMED_OUT, 1, 1, RunStatus.QUEUED, True),
        (AttemptOutcome.LEASE_EXPIRED, 1, 1, RunStatus.QUEUED, True),
        (AttemptOutcome.LEASE_EXPIRED, 2, 1, RunStatus.FAILED, False),
        (AttemptOutcome.CANCELLED, 1, 5, RunStatus.CANCELLED, False),
    ],
)
def test_judge_attempt(
    outcome: AttemptOutcome, attempt: int, max_retries: int, status: RunStatus, retried: bool
) -> None:
    policy = RetryPolicy(max_retries=max_retries, retry_delay_s=30)

    verdict = judge_attempt(outcome, attempt, policy, T0)

    assert verdict.run_status is status
    assert verdict.retry_at == (T0 + timedelta(seconds=30) if retried else None)


@pytest.mark.parametrize(
    ("job_type", "job_status", "run_status", "others", "expected"),
    [
        (JobType.ONE_TIME, JobStatus.RUNNING, RunStatus.COMPLETED, 0, JobStatus.COMPLETED),
        (JobType.ONE_TIME, JobStatus.RUNNING, RunStatus.FAILED, 0, JobStatus.FAILED),
        (JobType.ONE_TIME, JobStatus.RUNNING, RunStatus.TIMEOUT, 0, JobStatus.FAILED),
        (JobType.RECURRING, JobStatus.RUNNING, RunStatus.COMPLETED, 0, JobStatus.SCHEDULED),
        (JobType.RECURRING, JobStatus.RUNNING, RunStatus.FAILED, 0, JobStatus.FAILED),
        (JobType.RECURRING, JobStatus.RUNNING, RunStatus.CANCELLED, 0, JobStatus.SCHEDULED),
        (JobType.RECURRING, JobStatus.RUNNING, RunStatus.COMPLETED, 1, JobStatus.RUNNING),
        (JobType.RECURRING, JobStatus.RUNNING, RunStatus.QUEUED, 0, JobStatus.RUNNING),
        (JobType.RECURRING, JobStatus.PAUSED, RunStatus.COMPLETED, 0, JobStatus.PAUSED),
    ],
)
def test_job_status_after_run(
    job_type: JobType,
    job_status: JobStatus,
    run_status: RunStatus,
    others: int,
    expected: JobStatus,
) -> None:
    job = make_job(status=job_status)
    job = replace(job, spec=replace(job.spec, type=job_type))

    assert job_status_after_run(job, run_status, others) is expected
