"""evolve: the hot path's copy-with-changes of frozen records."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from taskscheduler.coordinator.evolve import evolve
from taskscheduler.coordinator.model import Priority, Run, RunStatus, RunTrigger

T0 = datetime(2030, 1, 1, tzinfo=UTC)
RUN = Run(
    id="job-1.1",
    job_id="job-1",
    job_name="report",
    trigger=RunTrigger.SCHEDULE,
    status=RunStatus.QUEUED,
    priority=Priority.HIGH,
    executor="noop",
    scheduled_at=T0,
    due_at=T0,
    max_attempts=3,
)


def test_evolve_matches_dataclasses_replace() -> None:
    changed = evolve(RUN, status=RunStatus.RUNNING, attempt=1, worker_id="agent-a")

    assert changed == dataclasses.replace(
        RUN, status=RunStatus.RUNNING, attempt=1, worker_id="agent-a"
    )
    assert RUN.status is RunStatus.QUEUED
    assert evolve(RUN) == RUN
    assert evolve(RUN) is not RUN


def test_evolve_rejects_unknown_field() -> None:
    with pytest.raises(TypeError, match="Run has no field colour"):
        evolve(RUN, colour="red")


def test_evolve_refuses_classes_with_post_init() -> None:
    @dataclasses.dataclass(frozen=True)
    class Checked:
        value: int

        def __post_init__(self) -> None:
            if self.value < 0:
                raise ValueError("negative")

    with pytest.raises(TypeError, match="has __post_init__"):
        evolve(Checked(1), value=-1)
