"""Validation of a job's scheduling options."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskscheduler.coordinator.codec import JobDraft
from taskscheduler.coordinator.model import ConcurrencyPolicy, JobType, MisfirePolicy
from taskscheduler.coordinator.scheduling_options import (
    DEFAULT_CATCH_UP_WINDOW_S,
    check_scheduling_options,
)
from taskscheduler.errors import InvalidArgumentError

LATER = datetime(2030, 1, 1, tzinfo=UTC)
EARLIER = datetime(2029, 1, 1, tzinfo=UTC)


def test_defaults_applied() -> None:
    options = check_scheduling_options(JobDraft())

    assert options.misfire_policy is MisfirePolicy.RUN_ONCE
    assert options.concurrency_policy is ConcurrencyPolicy.ALLOW
    assert options.catch_up_window_s == DEFAULT_CATCH_UP_WINDOW_S
    assert options.jitter_s == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"catch_up_window_s": -1}, "catchUpWindow"),
        ({"catch_up_window_s": 604801}, "catchUpWindow"),
        ({"jitter_s": -1}, "jitter"),
        ({"jitter_s": 86401}, "jitter"),
        ({"start_at": LATER, "end_at": EARLIER}, "endAt"),
        ({"start_at": LATER, "end_at": LATER}, "endAt"),
    ],
)
def test_bad_option_rejected(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        check_scheduling_options(JobDraft(**changes))  # type: ignore[arg-type]

    assert caught.value.field == field


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"start_at": LATER}, "startAt"),
        ({"end_at": LATER}, "endAt"),
        ({"jitter_s": 5}, "jitter"),
        ({"catch_up_window_s": 60}, "catchUpWindow"),
        ({"misfire_policy": MisfirePolicy.CATCH_UP}, "misfirePolicy"),
        ({"concurrency_policy": ConcurrencyPolicy.FORBID}, "concurrencyPolicy"),
    ],
)
def test_one_time_rejects_recurring_options(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        check_scheduling_options(JobDraft(type=JobType.ONE_TIME, **changes))  # type: ignore[arg-type]

    assert caught.value.field == field
    assert "applies to recurring jobs only" in caught.value.message


def test_one_time_accepts_default_options() -> None:
    draft = JobDraft(
        type=JobType.ONE_TIME,
        misfire_policy=MisfirePolicy.RUN_ONCE,
        concurrency_policy=ConcurrencyPolicy.ALLOW,
        catch_up_window_s=DEFAULT_CATCH_UP_WINDOW_S,
    )

    assert check_scheduling_options(draft).jitter_s == 0
