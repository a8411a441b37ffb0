"""pop_ready with a horizon: runs handed out shortly before they are due, and in which order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.coordinator.model import Priority
from taskscheduler.coordinator.readyqueue import ReadyQueues

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

# A queued run: (run id, priority, due time as seconds from NOW).
QueuedRun = tuple[str, Priority, float]


def at(offset_s: float) -> datetime:
    return NOW + timedelta(seconds=offset_s)


def queues_with(runs: list[QueuedRun], aging_s: float = 0) -> ReadyQueues:
    queues = ReadyQueues(aging_s=aging_s)
    for run_id, priority, due_offset_s in runs:
        queues.push(run_id, priority, "noop", at(due_offset_s))
    return queues


@pytest.mark.parametrize(
    ("runs", "horizon_offset_s", "limit", "expected"),
    [
        pytest.param(
            [("later", Priority.CRITICAL, 2.0)], 1.0, 10, [], id="beyond horizon not taken"
        ),
        pytest.param(
            [("soon", Priority.NORMAL, 0.5)], 1.0, 10, ["soon"], id="within horizon taken"
        ),
        pytest.param(
            [("edge", Priority.NORMAL, 1.0)], 1.0, 10, ["edge"], id="due at horizon taken"
        ),
        pytest.param([("soon", Priority.NORMAL, 0.001)], None, 10, [], id="no horizon means now"),
        pytest.param(
            [("soon", Priority.NORMAL, 0.5)], 0.0, 10, [], id="horizon at now takes due only"
        ),
        pytest.param(
            [
                ("critical-ahead", Priority.CRITICAL, 0.2),
                ("low-due", Priority.LOW, -1.0),
                ("normal-due", Priority.NORMAL, 0.0),
            ],
            1.0,
            10,
            ["normal-due", "low-due", "critical-ahead"],
            id="due runs before runs not yet due",
        ),
        pytest.param(
            [
                ("low-ahead", Priority.LOW, 0.1),
                ("high-ahead-late", Priority.HIGH, 0.9),
                ("high-ahead-early", Priority.HIGH, 0.3),
                ("critical-beyond", Priority.CRITICAL, 1.5),
            ],
            1.0,
            10,
            ["high-ahead-early", "high-ahead-late", "low-ahead"],
            id="not yet due by priority then due time",
        ),
        pytest.param(
            [
                ("due", Priority.LOW, -1.0),
                ("ahead-1", Priority.CRITICAL, 0.1),
                ("ahead-2", Priority.CRITICAL, 0.2),
            ],
            1.0,
            2,
            ["due", "ahead-1"],
            id="limit counts both groups",
        ),
        pytest.param(
            [("due", Priority.NORMAL, -1.0), ("ahead", Priority.NORMAL, 0.5)],
            -5.0,
            10,
            ["due"],
            id="horizon before now acts as now",
        ),
        pytest.param(
            [("at-now", Priority.NORMAL, 0.0), ("ahead", Priority.NORMAL, 0.001)],
            -0.001,
            10,
            ["at-now"],
            id="horizon just before now acts as now",
        ),
    ],
)
def test_pop_ready_with_horizon(
    runs: list[QueuedRun], horizon_offset_s: float | None, limit: int, expected: list[str]
) -> None:
    queues = queues_with(runs)
    horizon = None if horizon_offset_s is None else at(horizon_offset_s)

    taken = queues.pop_ready({"noop"}, NOW, limit, horizon=horizon)

    assert taken == expected
    left = sorted(run_id for run_id, _, _ in runs if run_id not in expected)
    assert sorted(run_id for run_id, _, _ in runs if run_id in queues) == left
    assert len(queues) == len(runs) - len(expected)


def test_same_due_time_keeps_queue_order() -> None:
    queues = queues_with(
        [
            ("first", Priority.NORMAL, 0.5),
            ("second", Priority.NORMAL, 0.5),
            ("third", Priority.NORMAL, 0.5),
        ]
    )

    assert queues.pop_ready({"noop"}, NOW, 10, horizon=at(1.0)) == ["first", "second", "third"]


def test_aging_orders_due_runs_under_horizon() -> None:
    # After two aging bounds the low run ranks as high, above the normal run.
    queues = queues_with(
        [
            ("critical-ahead", Priority.CRITICAL, 0.5),
            ("normal-due", Priority.NORMAL, -1.0),
            ("low-aged", Priority.LOW, -130.0),
        ],
        aging_s=60,
    )

    assert queues.pop_ready({"noop"}, NOW, 10, horizon=at(1.0)) == [
        "low-aged",
        "normal-due",
        "critical-ahead",
    ]


def test_horizon_skips_executors_not_offered() -> None:
    queues = ReadyQueues()
    queues.push("shell-ahead", Priority.CRITICAL, "shell", at(0.5))
    queues.push("noop-ahead", Priority.LOW, "noop", at(0.5))

    assert queues.pop_ready({"noop"}, NOW, 10, horizon=at(1.0)) == ["noop-ahead"]
    assert "shell-ahead" in queues


def test_taken_later_once_within_horizon() -> None:
    queues = queues_with([("later", Priority.NORMAL, 2.0)])

    assert queues.pop_ready({"noop"}, NOW, 10, horizon=at(1.0)) == []
    assert queues.pop_ready({"noop"}, at(1.0), 10, horizon=at(2.0)) == ["later"]
    assert len(queues) == 0
