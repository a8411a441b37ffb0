"""Backoff delays for the agent's retries."""

from __future__ import annotations

import random

import pytest

from taskscheduler.agent.backoff import Backoff, RetryPolicy
from taskscheduler.errors import InvalidArgumentError


def test_backoff_doubles_up_to_cap() -> None:
    backoff = Backoff(RetryPolicy(initial_s=0.1, max_s=1.0, jitter=0.0))

    delays = [round(backoff.next_delay_s(), 6) for _ in range(7)]

    assert delays == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]


def test_backoff_jitter_stays_in_range() -> None:
    backoff = Backoff(RetryPolicy(initial_s=1.0, max_s=1.0, jitter=0.5), random.Random(3))

    delays = [backoff.next_delay_s() for _ in range(200)]

    assert min(delays) >= 0.5
    assert max(delays) <= 1.0
    assert len(set(delays)) > 100


def test_backoff_reset_starts_over() -> None:
    backoff = Backoff(RetryPolicy(initial_s=0.1, max_s=5.0, jitter=0.0))
    for _ in range(5):
        backoff.next_delay_s()

    backoff.reset()

    assert backoff.next_delay_s() == pytest.approx(0.1)


def test_backoff_survives_many_retries() -> None:
    backoff = Backoff(RetryPolicy(initial_s=0.1, max_s=5.0, jitter=0.0))
    for _ in range(5000):
        backoff.next_delay_s()

    assert backoff.next_delay_s() == pytest.approx(5.0)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"initial_s": 0}, "initialS"),
        ({"initial_s": 2.0, "max_s": 1.0}, "maxS"),
        ({"multiplier": 0.5}, "multiplier"),
        ({"jitter": 1.5}, "jitter"),
    ],
)
def test_retry_policy_rejects_bad_values(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        RetryPolicy(**kwargs)

    assert raised.value.field == field
