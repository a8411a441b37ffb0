"""build_firing: concurrency policy, jitter, the per-transaction cap and the end of a job."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.coordinator import ids
from taskscheduler.coordinator.decisions import FirePlan, plan_fire
from taskscheduler.coordinator.firing_plan import (
    MAX_RUNS_PER_FIRING,
    SKIPPED_FORBID,
    SKIPPED_REPLACE,
    build_firing,
)
from taskscheduler.coordinator.model import (
    ConcurrencyPolicy,
    Job,
    JobSpec,
    JobStatus,
    MisfirePolicy,
    Priority,
    RetryPolicy,
    RunStatus,
    RunTrigger,
)
from taskscheduler.schedule import parse_schedule

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
NOW = T0 + timedelta(seconds=45)
INTERVAL = timedelta(seconds=10)


def make_job(**spec_changes: object) -> Job:
    spec = JobSpec(
        name="report",
        schedule="@every 10s",
        executor="shell",
        priority=Priority.HIGH,
        retry_policy=RetryPolicy(max_retries=2),
    )
    return Job(
        id="job-1",
        spec=replace(spec, **spec_changes),
        next_fire_at=T0,
        last_fire_at=T0 - INTERVAL,
        created_at=T0 - timedelta(hours=1),
        updated_at=T0 - timedelta(hours=1),
    )


def slots(count: int) -> tuple[datetime, ...]:
    """Return `count` slots 10 s apart, from T0."""
    return tuple(T0 + index * INTERVAL for index in range(count))


def plan_of(count: int) -> FirePlan:
    """Return a plan that fires `count` slots from T0, with the next slot after them."""
    return FirePlan(slots=slots(count), next_fire_at=T0 + count * INTERVAL)


@pytest.mark.parametrize(
    ("policy", "slot_count", "active_runs", "expected_statuses", "expected_errors"),
    [
        # allow: every slot runs beside the active run.
        (ConcurrencyPolicy.ALLOW, 1, 1, ["queued"], [""]),
        (ConcurrencyPolicy.ALLOW, 3, 0, ["queued"] * 3, [""] * 3),
        # forbid with an active run records every slot as skipped.
        (ConcurrencyPolicy.FORBID, 1, 1, ["cancelled"], [SKIPPED_FORBID]),
        (ConcurrencyPolicy.FORBID, 3, 2, ["cancelled"] * 3, [SKIPPED_FORBID] * 3),
        # forbid with nothing active runs the first slot of a catch-up, which the rest overlap.
        (ConcurrencyPolicy.FORBID, 1, 0, ["queued"], [""]),
        (
            ConcurrencyPolicy.FORBID,
            3,
            0,
            ["queued", "cancelled", "cancelled"],
            ["", SKIPPED_FORBID, SKIPPED_FORBID],
        ),
        # replace runs only the newest slot of one pass.
        (ConcurrencyPolicy.REPLACE, 1, 0, ["queued"], [""]),
        (
            ConcurrencyPolicy.REPLACE,
            3,
            0,
            ["cancelled", "cancelled", "queued"],
            [SKIPPED_REPLACE, SKIPPED_REPLACE, ""],
        ),
    ],
)
def test_build_firing_concurrency_policy(
    policy: ConcurrencyPolicy,
    slot_count: int,
    active_runs: int,
    expected_statuses: list[str],
    expected_errors: list[str],
) -> None:
    job = make_job(concurrency_policy=policy)

    firing = build_firing(job, plan_of(slot_count), NOW, active_runs)

    assert [run.status.value for run in firing.runs] == expected_statuses
    assert [run.error for run in firing.runs] == expected_errors
    assert [run.scheduled_at for run in firing.runs] == list(slots(slot_count))
    for run in firing.runs:
        expected_completed_at = NOW if run.status is RunStatus.CANCELLED else None
        assert run.completed_at == expected_completed_at
        assert run.attempt == 0
        assert run.attempts == ()
    assert firing.job_before is job
    assert firing.job_after.last_fire_at == slots(slot_count)[-1]
    assert firing.job_after.next_fire_at == T0 + slot_count * INTERVAL
    assert firing.job_after.status is JobStatus.RUNNING


def test_build_firing_forbid_skips_every_slot_while_active() -> None:
    job = make_job(concurrency_policy=ConcurrencyPolicy.FORBID)

    firing = build_firing(job, plan_of(2), NOW, active_runs=1)

    queued = [run for run in firing.runs if run.status is RunStatus.QUEUED]
    assert queued == []
    assert all(run.error.startswith("skipped:") for run in firing.runs)
    assert all(run.trigger is RunTrigger.SCHEDULE for run in firing.runs)


def test_build_firing_run_fields() -> None:
    job = make_job()

    (run,) = build_firing(job, plan_of(1), NOW, active_runs=0).runs

    assert run.id == ids.scheduled_run_id("job-1", T0)
    assert run.job_id == "job-1"
    assert run.job_name == "report"
    assert run.trigger is RunTrigger.SCHEDULE
    assert run.priority is Priority.HIGH
    assert run.executor == "shell"
    assert run.scheduled_at == T0
    assert run.due_at == T0
    assert run.max_attempts == 3


@pytest.mark.parametrize(
    ("jitter_s", "slot_count", "next_fire_at"),
    [
        (1, 3, T0 + 3 * INTERVAL),
        (5, 3, T0 + 3 * INTERVAL),
        # A jitter longer than the interval is cut short of the next slot.
        (3600, 3, T0 + 3 * INTERVAL),
        (3600, 1, T0 + INTERVAL),
        # The last slot of a job past its end has no next slot to stay short of.
        (7, 2, None),
    ],
)
def test_build_firing_jitter_stays_before_next_slot(
    jitter_s: int, slot_count: int, next_fire_at: datetime | None
) -> None:
    job = make_job(jitter_s=jitter_s)
    plan = FirePlan(slots=slots(slot_count), next_fire_at=next_fire_at)

    firing = build_firing(job, plan, NOW, active_runs=0)

    followers = [*slots(slot_count)[1:], next_fire_at]
    for run, slot, following in zip(firing.runs, slots(slot_count), followers, strict=True):
        assert run.scheduled_at == slot
        assert run.id == ids.scheduled_run_id("job-1", slot)
        assert slot <= run.due_at < slot + timedelta(seconds=jitter_s)
        if following is not None:
            assert run.due_at < following


def test_build_firing_jitter_is_stable() -> None:
    job = make_job(jitter_s=9)

    first = build_firing(job, plan_of(5), NOW, active_runs=0)
    again = build_firing(job, plan_of(5), NOW + timedelta(minutes=3), active_runs=0)

    assert [run.due_at for run in first.runs] == [run.due_at for run in again.runs]
    assert len({run.due_at - run.scheduled_at for run in first.runs}) > 1


def test_build_firing_without_jitter_is_due_at_slot() -> None:
    firing = build_firing(make_job(jitter_s=0), plan_of(4), NOW, active_runs=0)

    assert [run.due_at for run in firing.runs] == list(slots(4))


@pytest.mark.parametrize("slot_count", [MAX_RUNS_PER_FIRING + 1, 45, 1000])
def test_build_firing_caps_runs_per_transaction(slot_count: int) -> None:
    plan = plan_of(slot_count)

    firing = build_firing(make_job(), plan, NOW, active_runs=0)

    assert len(firing.runs) == MAX_RUNS_PER_FIRING
    assert [run.scheduled_at for run in firing.runs] == list(slots(MAX_RUNS_PER_FIRING))
    assert firing.job_after.last_fire_at == slots(MAX_RUNS_PER_FIRING)[-1]
    assert firing.job_after.next_fire_at == plan.slots[MAX_RUNS_PER_FIRING]


def test_build_firing_exactly_at_cap_keeps_plan_next() -> None:
    plan = plan_of(MAX_RUNS_PER_FIRING)

    firing = build_firing(make_job(), plan, NOW, active_runs=0)

    assert len(firing.runs) == MAX_RUNS_PER_FIRING
    assert firing.job_after.next_fire_at == plan.next_fire_at


@pytest.mark.parametrize(
    ("slot_count", "active_runs", "status_before", "expected_status"),
    [
        # Past its end with nothing active, nothing more will run.
        (0, 0, JobStatus.SCHEDULED, JobStatus.COMPLETED),
        # Its last slot is queued, or an earlier run is still active.
        (1, 0, JobStatus.SCHEDULED, JobStatus.RUNNING),
        (0, 1, JobStatus.RUNNING, JobStatus.RUNNING),
        # A paused job stays paused.
        (0, 0, JobStatus.PAUSED, JobStatus.PAUSED),
    ],
)
def test_build_firing_past_end(
    slot_count: int, active_runs: int, status_before: JobStatus, expected_status: JobStatus
) -> None:
    job = replace(make_job(end_at=T0 + timedelta(seconds=5)), status=status_before)
    plan = FirePlan(slots=slots(slot_count), next_fire_at=None)

    firing = build_firing(job, plan, NOW, active_runs)

    assert firing.job_after.status is expected_status
    assert firing.job_after.next_fire_at is None
    assert len(firing.runs) == slot_count


def test_build_firing_past_end_keeps_last_fire() -> None:
    job = make_job(end_at=T0 - timedelta(seconds=1))

    firing = build_firing(job, FirePlan(slots=(), next_fire_at=None), NOW, active_runs=0)

    assert firing.runs == ()
    assert firing.job_after.last_fire_at == T0 - INTERVAL


@pytest.mark.parametrize(
    ("policy", "expected_s", "expected_status"),
    [
        # Down from T0 to T0+45 across endAt (T0+25): slots 0, 10 and 20 are missed
        # within the window, and 30 and 40 are past it.
        (MisfirePolicy.RUN_ONCE, [20], JobStatus.RUNNING),
        (MisfirePolicy.CATCH_UP, [0, 10, 20], JobStatus.RUNNING),
        (MisfirePolicy.SKIP, [], JobStatus.COMPLETED),
    ],
)
def test_firing_after_downtime_across_end(
    policy: MisfirePolicy, expected_s: list[int], expected_status: JobStatus
) -> None:
    job = make_job(misfire_policy=policy, end_at=T0 + timedelta(seconds=25))
    plan = plan_fire(job, parse_schedule("@every 10s", one_time=False), NOW)

    firing = build_firing(job, plan, NOW, active_runs=0)

    expected = [T0 + timedelta(seconds=s) for s in expected_s]
    assert [run.scheduled_at for run in firing.runs] == expected
    assert all(run.status is RunStatus.QUEUED for run in firing.runs)
    assert firing.job_after.next_fire_at is None
    assert firing.job_after.status is expected_status


@pytest.mark.parametrize(
    ("schedule", "dependencies", "held"),
    [("@every 10s", ("job-0",), True), ("@every 10s", (), False)],
)
def test_firing_holds_runs_of_scheduled_jobs_with_dependencies(
    schedule: str, dependencies: tuple[str, ...], held: bool
) -> None:
    job = make_job(schedule=schedule, dependencies=dependencies)

    firing = build_firing(job, plan_of(2), NOW, active_runs=0)

    assert firing.held is held
    assert [run.status.value for run in firing.runs] == ["queued", "queued"]
