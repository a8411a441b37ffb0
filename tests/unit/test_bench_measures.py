"""The benchmark's pure measures: percentiles, rates, and the lost/doubled slot check."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# `bench` is a folder at the repository root run with `python -m bench`; it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.runs import (
    RunRecord,
    check_slots,
    completed_between,
    expected_slots,
    format_ms,
    lags_ms,
)
from bench.stats import Distribution, percentile, rate_per_s

HUNDRED = [float(value) for value in range(1, 101)]


@pytest.mark.parametrize(
    ("values", "rank", "expected"),
    [
        (HUNDRED, 50, 50.0),
        (HUNDRED, 95, 95.0),
        (HUNDRED, 99, 99.0),
        (HUNDRED, 100, 100.0),
        (HUNDRED, 0, 1.0),
        ([7.0], 99, 7.0),
        ([3.0, 1.0, 2.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([1.0, 2.0, 3.0, 4.0], 51, 3.0),
        ([10.0] * 98 + [500.0, 900.0], 99, 500.0),
    ],
)
def test_percentile_nearest_rank(values: list[float], rank: float, expected: float) -> None:
    assert percentile(values, rank) == expected


@pytest.mark.parametrize(("values", "rank"), [([], 50), ([1.0], -1), ([1.0], 100.5)])
def test_percentile_rejects_bad_input(values: list[float], rank: float) -> None:
    with pytest.raises(ValueError):
        percentile(values, rank)


def test_distribution_of_samples() -> None:
    summary = Distribution.of(list(reversed(HUNDRED)))

    assert summary == Distribution(count=100, p50=50.0, p95=95.0, p99=99.0, max=100.0)


def test_distribution_of_nothing() -> None:
    assert Distribution.of([]) is None


def test_rate_per_s() -> None:
    assert rate_per_s(120_000, 60) == 2000.0
    with pytest.raises(ValueError):
        rate_per_s(1, 0)


@pytest.mark.parametrize(
    ("start_ms", "end_ms", "interval_ms", "expected"),
    [
        (1000, 4000, 1000, [1000, 2000, 3000]),
        (1001, 4000, 1000, [2000, 3000]),
        (999, 3000, 1000, [1000, 2000]),
        (0, 10_000, 5000, [0, 5000]),
        (4000, 4000, 1000, []),
    ],
)
def test_expected_slots(start_ms: int, end_ms: int, interval_ms: int, expected: list[int]) -> None:
    assert expected_slots(start_ms, end_ms, interval_ms) == expected


def run(
    scheduled_ms: int,
    status: str = "completed",
    job_id: str = "job-a",
    started_ms: int | None = None,
    completed_ms: int | None = None,
) -> RunRecord:
    return RunRecord(
        job_id=job_id,
        run_id=f"{job_id}.{scheduled_ms:014d}",
        status=status,
        scheduled_ms=scheduled_ms,
        started_ms=started_ms,
        completed_ms=completed_ms,
    )


def test_check_slots_all_completed_once() -> None:
    runs = {
        "job-a": [run(1000), run(2000), run(3000)],
        "job-b": [run(1000, job_id="job-b"), run(2000, job_id="job-b"), run(3000, job_id="job-b")],
    }

    check = check_slots(runs, start_ms=1000, end_ms=4000, interval_ms=1000)

    assert check.ok
    assert (check.jobs, check.expected, check.completed) == (2, 6, 6)
    assert (check.missing, check.doubled, check.unfinished, check.off_slot) == (0, 0, 0, 0)
    assert check.examples == ()


def test_check_slots_counts_each_problem() -> None:
    runs = {
        "job-a": [
            run(1000),
            run(2000),
            run(2000),
            run(2000),
            run(4000, status="queued"),
            run(4500),
            # Outside the window: ignored.
            run(500),
            run(6000),
        ]
    }

    check = check_slots(runs, start_ms=1000, end_ms=6000, interval_ms=1000)

    assert not check.ok
    assert check.expected == 5
    assert check.completed == 1
    assert check.missing == 2
    assert check.doubled == 2
    assert check.unfinished == 1
    assert check.off_slot == 1
    assert "job job-a: no run for the slot 1970-01-01T00:00:03.000Z" in check.examples


def test_check_slots_stops_listing_examples_at_five() -> None:
    check = check_slots({"job-a": []}, start_ms=0, end_ms=10_000, interval_ms=1000)

    assert check.missing == 10
    assert len(check.examples) == 5


def test_completed_between_counts_completion_times_in_window() -> None:
    runs = [
        run(1000, completed_ms=999),
        run(1000, completed_ms=1000),
        run(2000, completed_ms=2999),
        run(2000, completed_ms=3000),
        run(2000, status="failed", completed_ms=2500),
        run(2000, status="running"),
    ]

    assert completed_between(runs, 1000, 3000) == 2


def test_lags_ms_of_started_runs_scheduled_in_window() -> None:
    runs = [
        run(1000, started_ms=1012),
        run(2000, started_ms=2250),
        run(2000, status="queued"),
        run(3000, started_ms=3001),
    ]

    assert lags_ms(runs, 1000, 3000) == [12.0, 250.0]


def test_format_ms() -> None:
    assert format_ms(1_796_425_449_007) == "2026-12-04T23:04:09.007Z"
