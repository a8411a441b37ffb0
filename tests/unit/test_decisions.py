"""Pure scheduling decisions: what a due job fires, and what follows an attempt."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.coordinator.decisions import (
    jitter_offset,
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
    MisfirePolicy,
    RetryPolicy,
    RunStatus,
)
from taskscheduler.schedule import parse_schedule

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_job(**changes: object) -> Job:
    spec = JobSpec(name="report", schedule="@every 10s", executor="shell")
    job = Job(id="job-1", spec=spec, next_fire_at=T0, created_at=T0, updated_at=T0)
    return replace(job, **changes)


EVERY_10S = parse_schedule("@every 10s", one_time=False)


def test_plan_fire_not_due() -> None:
    plan = plan_fire(make_job(), EVERY_10S, T0 - timedelta(seconds=1))

    assert plan.slots == ()
    assert plan.next_fire_at == T0


def test_plan_fire_on_time() -> None:
    plan = plan_fire(make_job(), EVERY_10S, T0 + timedelta(milliseconds=300))

    assert plan.slots == (T0,)
    assert plan.next_fire_at == T0 + timedelta(seconds=10)
    assert plan.dropped_slots == 0


def slots_after(seconds: list[int]) -> tuple[datetime, ...]:
    return tuple(T0 + timedelta(seconds=s) for s in seconds)


@pytest.mark.parametrize(
    ("policy", "now_s", "window_s", "expected_s", "dropped"),
    [
        # Down from T0 to T0+45: slots 0, 10, 20, 30, 40 were missed.
        (MisfirePolicy.SKIP, 45, 3600, [], 5),
        (MisfirePolicy.RUN_ONCE, 45, 3600, [40], 4),
        (MisfirePolicy.CATCH_UP, 45, 3600, [0, 10, 20, 30, 40], 0),
        (MisfirePolicy.CATCH_UP, 45, 25, [20, 30, 40], 2),
        # Back just in time for slot 40: it is on time, the others are missed.
        (MisfirePolicy.SKIP, 40.5, 3600, [40], 4),
        (MisfirePolicy.RUN_ONCE, 40.5, 3600, [40], 4),
    ],
)
def test_plan_fire_misfire_policy(
    policy: MisfirePolicy, now_s: float, window_s: int, expected_s: list[int], dropped: int
) -> None:
    job = make_job()
    job = replace(job, spec=replace(job.spec, misfire_policy=policy, catch_up_window_s=window_s))
    now = T0 + timedelta(seconds=now_s)

    plan = plan_fire(job, EVERY_10S, now)

    assert plan.slots == slots_after(expected_s)
    assert plan.next_fire_at == T0 + timedelta(seconds=50)
    assert plan.dropped_slots == dropped


def test_plan_fire_long_outage_looks_back_an_hour() -> None:
    now = T0 + timedelta(days=2)

    plan = plan_fire(make_job(), parse_schedule("@every 1s", one_time=False), now)

    assert plan.slots == (now,)
    assert plan.next_fire_at == now + timedelta(seconds=1)
    assert plan.dropped_slots > 0


def test_plan_fire_sparse_schedule_after_outage() -> None:
    daily = parse_schedule("0 12 * * *", one_time=False)
    now = T0 + timedelta(days=3, hours=1)

    plan = plan_fire(make_job(), daily, now)

    assert plan.slots == (T0 + timedelta(days=3),)
    assert plan.dropped_slots == 3


def test_plan_fire_stops_at_end() -> None:
    job = make_job()
    job = replace(job, spec=replace(job.spec, end_at=T0 + timedelta(seconds=5)))

    plan = plan_fire(job, EVERY_10S, T0)

    assert plan.slots == (T0,)
    assert plan.next_fire_at is None


def test_plan_fire_paused_job() -> None:
    job = make_job(status=JobStatus.PAUSED)
    plan = plan_fire(job, EVERY_10S, T0)

    assert plan.slots == ()


def test_plan_fire_one_time_job_fires_late() -> None:
    schedule = parse_schedule("2026-03-01T12:00:00Z", one_time=True)
    job = make_job()
    job = replace(
        job, spec=replace(job.spec, type=JobType.ONE_TIME, misfire_policy=MisfirePolicy.SKIP)
    )

    plan = plan_fire(job, schedule, T0 + timedelta(minutes=5))

    assert plan.slots == (T0,)
    assert plan.next_fire_at is None


@pytest.mark.parametrize("jitter_s", [1, 30, 3600])
def test_jitter_offset_is_stable_and_bounded(jitter_s: int) -> None:
    following = T0 + timedelta(seconds=10)

    first = jitter_offset("job-1", T0, jitter_s, following)
    again = jitter_offset("job-1", T0, jitter_s, following)

    assert first == again
    assert timedelta(0) <= first < timedelta(seconds=min(jitter_s, 10))


def test_jitter_offset_differs_per_slot() -> None:
    offsets = {jitter_offset("job-1", T0 + timedelta(hours=h), 600, None) for h in range(20)}

    assert len(offsets) > 10
    assert jitter_offset("job-1", T0, 0, None) == timedelta(0)


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
    if job_type is JobType.ONE_TIME:
        # Its instant has fired, so it has no next fire time.
        job = replace(job, next_fire_at=None)

    assert job_status_after_run(job, run_status, others) is expected


@pytest.mark.parametrize("run_status", [RunStatus.COMPLETED, RunStatus.CANCELLED])
def test_early_manual_run_stays_scheduled(
    run_status: RunStatus,
) -> None:
    job = make_job(status=JobStatus.RUNNING)
    job = replace(job, spec=replace(job.spec, type=JobType.ONE_TIME))

    assert job.next_fire_at is not None
    assert job_status_after_run(job, run_status, 0) is JobStatus.SCHEDULED


def test_jitter_longer_than_gap_spreads_evenly() -> None:
    gap = timedelta(seconds=2)
    offsets = [jitter_offset("job-1", T0 + gap * n, 30, T0 + gap * (n + 1)) for n in range(400)]

    assert all(timedelta(0) <= offset < gap for offset in offsets)
    late = [offset for offset in offsets if offset > gap - timedelta(milliseconds=100)]
    assert len(late) < 40
    early = [offset for offset in offsets if offset < gap / 2]
    assert 150 < len(early) < 250
