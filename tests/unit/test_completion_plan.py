"""Pure decisions on attempt reports: the ended run, its stored result, job status, batches."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from taskscheduler.coordinator.completion_plan import (
    MAX_OUTPUT_CHARS,
    MAX_RESULT_BYTES,
    AttemptReport,
    WriteCost,
    ended_run,
    job_after_end,
    split_batches,
    stored_result,
)
from taskscheduler.coordinator.model import (
    Attempt,
    AttemptOutcome,
    Job,
    JobSpec,
    JobStatus,
    JobType,
    Priority,
    RetryPolicy,
    Run,
    RunStatus,
    RunTrigger,
)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def make_run(**changes: Any) -> Run:
    attempt = Attempt(number=1, worker_id="agent-1", fencing_token=77, started_at=T0)
    run = Run(
        id="job-1.00000000000001",
        job_id="job-1",
        job_name="report",
        trigger=RunTrigger.SCHEDULE,
        status=RunStatus.RUNNING,
        priority=Priority.NORMAL,
        executor="shell",
        scheduled_at=T0,
        due_at=T0,
        max_attempts=3,
        attempt=1,
        worker_id="agent-1",
        started_at=T0,
        attempts=(attempt,),
    )
    return replace(run, **changes)


def make_job(**changes: Any) -> Job:
    spec = JobSpec(name="report", schedule="@every 10s", executor="shell")
    job = Job(
        id="job-1",
        spec=spec,
        status=JobStatus.RUNNING,
        next_fire_at=T0 + timedelta(seconds=10),
        created_at=T0,
        updated_at=T0,
        revision=5,
    )
    return replace(job, **changes)


# ended_run


def test_ended_run_success_keeps_result() -> None:
    finished_at = T0 + timedelta(seconds=3)
    report = AttemptReport(
        AttemptOutcome.SUCCEEDED,
        output="done",
        completed_at=finished_at,
        result={"rows": 3, "ok": True},
    )

    ended = ended_run(make_run(), RetryPolicy(), report, T0 + timedelta(seconds=4))

    assert ended.status is RunStatus.COMPLETED
    assert ended.result == {"rows": 3, "ok": True}
    assert ended.output == "done"
    assert ended.completed_at == finished_at
    assert ended.attempts[-1].outcome is AttemptOutcome.SUCCEEDED
    assert ended.attempts[-1].completed_at == finished_at
    assert ended.attempts[-1].fencing_token == 77


@pytest.mark.parametrize(
    ("reported_start", "recorded_start"),
    [
        # The agent's report replaces the estimate made at assignment.
        (T0 + timedelta(milliseconds=3), T0 + timedelta(milliseconds=3)),
        # A report without a start (the leader's own end of an attempt) keeps it.
        (None, T0),
    ],
)
def test_ended_run_takes_reported_start(
    reported_start: datetime | None, recorded_start: datetime
) -> None:
    report = AttemptReport(AttemptOutcome.SUCCEEDED, started_at=reported_start)

    ended = ended_run(make_run(), RetryPolicy(), report, T0 + timedelta(seconds=1))

    assert ended.started_at == recorded_start
    assert ended.attempts[-1].started_at == recorded_start


def test_unstarted_attempt_start_equals_end() -> None:
    # Handed out ahead: the estimate is the due time, 1 s away, when it is cancelled.
    due = T0 + timedelta(seconds=1)
    attempt = Attempt(number=1, worker_id="agent-1", fencing_token=77, started_at=due)
    run = make_run(due_at=due, started_at=due, attempts=(attempt,))
    report = AttemptReport(AttemptOutcome.CANCELLED, error="cancelled by a user")

    ended = ended_run(run, RetryPolicy(), report, T0)

    assert ended.started_at == T0
    assert ended.attempts[-1].started_at == T0
    assert ended.duration_s == 0


@pytest.mark.parametrize(
    ("outcome", "max_retries", "status"),
    [
        (AttemptOutcome.FAILED, 0, RunStatus.FAILED),
        (AttemptOutcome.FAILED, 2, RunStatus.QUEUED),
        (AttemptOutcome.TIMED_OUT, 0, RunStatus.TIMEOUT),
        (AttemptOutcome.CANCELLED, 2, RunStatus.CANCELLED),
        (AttemptOutcome.LEASE_EXPIRED, 0, RunStatus.FAILED),
    ],
)
def test_ended_run_other_ends_drop_result(
    outcome: AttemptOutcome, max_retries: int, status: RunStatus
) -> None:
    report = AttemptReport(outcome, exit_code=1, error="boom", result={"partial": 1})

    ended = ended_run(make_run(), RetryPolicy(max_retries=max_retries), report, T0)

    assert ended.status is status
    assert ended.result is None
    assert ended.error == "boom"
    assert ended.exit_code == 1


def test_ended_run_retry_moves_due_time() -> None:
    policy = RetryPolicy(max_retries=2, retry_delay_s=30)
    now = T0 + timedelta(seconds=5)

    ended = ended_run(make_run(), policy, AttemptReport(AttemptOutcome.FAILED), now)

    assert ended.status is RunStatus.QUEUED
    assert ended.due_at == now + timedelta(seconds=30)


def test_ended_run_without_job_never_retries() -> None:
    ended = ended_run(make_run(), None, AttemptReport(AttemptOutcome.FAILED), T0)

    assert ended.status is RunStatus.FAILED


def test_ended_run_success_clears_earlier_result() -> None:
    run = make_run(result={"stale": True})

    ended = ended_run(run, None, AttemptReport(AttemptOutcome.SUCCEEDED), T0)

    assert ended.result is None


# stored_result


@pytest.mark.parametrize(
    "result",
    [0, 1.5, "text", True, [1, "a", None], {"nested": {"list": [1, 2]}}, ""],
)
def test_stored_result_keeps_json_values(result: Any) -> None:
    assert stored_result(result, "out") == (result, "out")


def test_stored_result_at_limit_is_kept() -> None:
    # Two quote characters plus the text give exactly the limit.
    result = "x" * (MAX_RESULT_BYTES - 2)

    assert stored_result(result, "")[0] == result


def test_stored_result_over_limit_is_dropped_with_note() -> None:
    result = "x" * (MAX_RESULT_BYTES - 1)
    size = len(json.dumps(result))

    kept, output = stored_result(result, "line 1")

    assert kept is None
    assert output == (
        f"line 1\n[result dropped: its JSON encoding is {size} bytes, "
        f"over the limit of {MAX_RESULT_BYTES} bytes]"
    )


def test_stored_result_counts_utf8_bytes() -> None:
    # Each "é" is two bytes in UTF-8, so this is over the limit in bytes, not in characters.
    result = "é" * (MAX_RESULT_BYTES // 2)

    kept, output = stored_result(result, "")

    assert kept is None
    assert output.startswith("[result dropped: its JSON encoding is")


@pytest.mark.parametrize("number", [float("nan"), float("inf"), float("-inf")])
def test_stored_result_non_finite_is_dropped(number: float) -> None:
    kept, output = stored_result({"score": number}, "")

    assert kept is None
    assert output == "[result dropped: it contains NaN or Infinity, which JSON cannot represent]"


def test_stored_result_note_keeps_output_bounded() -> None:
    output = "y" * MAX_OUTPUT_CHARS

    _, noted = stored_result("z" * MAX_RESULT_BYTES, output)

    assert len(noted) == MAX_OUTPUT_CHARS
    assert noted.endswith("bytes]")
    assert noted.startswith("y")


# job_after_end


@pytest.mark.parametrize(
    ("job_changes", "last_status", "others", "expected"),
    [
        ({}, RunStatus.COMPLETED, 0, JobStatus.SCHEDULED),
        ({}, RunStatus.COMPLETED, 1, None),
        ({}, RunStatus.QUEUED, 0, None),
        ({}, RunStatus.FAILED, 0, JobStatus.FAILED),
        ({"status": JobStatus.PAUSED}, RunStatus.COMPLETED, 0, None),
        ({"status": JobStatus.SCHEDULED}, RunStatus.COMPLETED, 0, None),
        ({"status": JobStatus.SCHEDULED}, RunStatus.COMPLETED, 2, JobStatus.RUNNING),
    ],
)
def test_job_after_end(
    job_changes: dict[str, Any],
    last_status: RunStatus,
    others: int,
    expected: JobStatus | None,
) -> None:
    job = make_job(**job_changes)

    after = job_after_end(job, last_status, others)

    if expected is None:
        assert after is None
    else:
        assert after is not None
        assert after.status is expected
        assert after.revision == job.revision


def test_job_after_end_one_time_job_completes() -> None:
    spec = replace(make_job().spec, type=JobType.ONE_TIME, schedule=T0.isoformat())
    job = make_job(spec=spec, next_fire_at=None)

    after = job_after_end(job, RunStatus.COMPLETED, 0)

    assert after is not None
    assert after.status is JobStatus.COMPLETED


def test_job_after_end_without_job() -> None:
    assert job_after_end(None, RunStatus.COMPLETED, 0) is None


# split_batches


def costs(*job_ids: str, ops: int = 2, size: int = 100) -> list[WriteCost]:
    return [WriteCost(job_id, ops=ops, size_bytes=size) for job_id in job_ids]


def test_split_batches_empty() -> None:
    assert split_batches([], {}) == []


def test_split_batches_one_job_fits_one_batch() -> None:
    # 20 runs of one job: 40 operations plus one job write, 22 compares.
    assert split_batches(costs(*["a"] * 20), {"a": 500}) == [list(range(20))]


def test_split_batches_by_operations() -> None:
    # Each run of its own job takes 2 + 1 operations, so 40 fit in 120.
    items = costs(*[f"job-{n}" for n in range(100)])

    batches = split_batches(items, {}, max_ops=120)

    assert [len(batch) for batch in batches] == [40, 40, 20]
    assert [index for batch in batches for index in batch] == list(range(100))


def test_split_batches_by_compares() -> None:
    # One operation per run would allow 119 runs, but each adds a lease compare.
    items = costs(*["a"] * 200, ops=1)

    batches = split_batches(items, {}, max_ops=120)

    # Compares: the fence, the job and one per run, so 118 runs.
    assert [len(batch) for batch in batches] == [118, 82]


def test_split_batches_by_bytes_counts_each_job_once() -> None:
    items = costs("a", "a", "b", "b", size=300)

    batches = split_batches(items, {"a": 100, "b": 100}, max_ops=120, max_bytes=1000)

    # a, a: 700 bytes; adding b would take 1100, so b starts a new batch.
    assert batches == [[0, 1], [2, 3]]


def test_split_batches_oversized_run_goes_alone() -> None:
    items = [
        WriteCost("a", ops=2, size_bytes=10),
        WriteCost("b", ops=2, size_bytes=5000),
        WriteCost("c", ops=2, size_bytes=10),
    ]

    assert split_batches(items, {}, max_bytes=1000) == [[0], [1], [2]]


@pytest.mark.parametrize("count", [1, 39, 40, 41, 119, 120, 121, 500])
def test_split_batches_stay_within_limits(count: int) -> None:
    items = costs(*[f"job-{n % 7}" for n in range(count)], ops=3, size=20_000)
    job_bytes = {f"job-{n}": 4_000 for n in range(7)}

    batches = split_batches(items, job_bytes, max_ops=120, max_bytes=1024 * 1024)

    assert [index for batch in batches for index in batch] == list(range(count))
    for batch in batches:
        jobs = {items[index].job_id for index in batch}
        ops = sum(items[index].ops for index in batch) + len(jobs)
        compares = 1 + len(batch) + len(jobs)
        size = sum(items[index].size_bytes for index in batch) + 4_000 * len(jobs)
        assert ops <= 120
        assert compares <= 120
        assert size <= 1024 * 1024
