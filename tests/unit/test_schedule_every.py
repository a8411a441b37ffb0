"""`@every` schedules: epoch-aligned slots, whatever the time zone or restart."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskscheduler.schedule import parse_schedule
from taskscheduler.schedule.interval import IntervalSchedule


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# Each row: expression, `after`, the expected next fire times (UTC).
EVERY_CASES = [
    ("@every 2s", "2026-01-01T00:00:01Z", ["2026-01-01T00:00:02Z", "2026-01-01T00:00:04Z"]),
    # `after` on a slot: the next slot, strictly after.
    ("@every 2s", "2026-01-01T00:00:02Z", ["2026-01-01T00:00:04Z"]),
    ("@every 2s", "2026-01-01T00:00:01.999999Z", ["2026-01-01T00:00:02Z"]),
    # 2026-01-01T00:00Z is 1767225600 s after the epoch, a multiple of 5400.
    ("@every 1h30m", "2026-01-01T00:00Z", ["2026-01-01T01:30Z", "2026-01-01T03:00Z"]),
    ("@every 1h30m", "2026-01-01T00:10Z", ["2026-01-01T01:30Z"]),
    ("@every 90m", "2026-01-01T00:10Z", ["2026-01-01T01:30Z"]),
    ("@every 1.5h", "2026-01-01T00:10Z", ["2026-01-01T01:30Z"]),
    # 1767225600 mod 11 = 8, so the slots around 2026-01-01T00:00Z are at :03, :14, :25.
    (
        "@every 11s",
        "2026-01-01T00:00Z",
        ["2026-01-01T00:00:03Z", "2026-01-01T00:00:14Z", "2026-01-01T00:00:25Z"],
    ),
    ("@every 24h", "2026-06-15T13:00+02:00", ["2026-06-16T00:00Z"]),
    ("@every 1s", "1969-12-31T23:59:59.5Z", ["1970-01-01T00:00Z"]),
    ("@every 1h", "1969-12-31T22:30Z", ["1969-12-31T23:00Z", "1970-01-01T00:00Z"]),
]


@pytest.mark.parametrize(("expression", "after", "expected"), EVERY_CASES)
def test_every_fire_times(expression: str, after: str, expected: list[str]) -> None:
    schedule = parse_schedule(expression, one_time=False, timezone="America/New_York")
    fires = []
    instant = _utc(after)
    for _ in expected:
        fire = schedule.next_fire_after(instant)
        assert fire is not None
        fires.append(fire)
        instant = fire

    assert fires == [_utc(text) for text in expected]
    assert all(fire.tzinfo is UTC for fire in fires)


@pytest.mark.parametrize(
    ("expression", "interval_s"),
    [
        ("@every 90s", 90),
        ("@every 1h30m", 5400),
        ("@every 1m30s", 90),
        ("@every 2h0m0s", 7200),
        ("@every 1.5m", 90),
    ],
)
def test_every_interval(expression: str, interval_s: int) -> None:
    schedule = parse_schedule(expression, one_time=False)

    assert isinstance(schedule, IntervalSchedule)
    assert schedule.interval_s == interval_s


@pytest.mark.parametrize(
    "timezone", ["UTC", "Asia/Kolkata", "Australia/Lord_Howe", "America/New_York"]
)
def test_every_ignores_timezone(timezone: str) -> None:
    """Slots are the same in every zone and for every fresh parse (a restart or another replica)."""
    after = datetime(2026, 3, 8, 6, 59, 59, tzinfo=UTC)
    reference = parse_schedule("@every 7m", one_time=False, timezone="UTC")
    schedule = parse_schedule("@every 7m", one_time=False, timezone=timezone)

    assert schedule.next_fire_after(after) == reference.next_fire_after(after)


def test_every_overflow_returns_none() -> None:
    schedule = parse_schedule("@every 1h", one_time=False)

    assert schedule.next_fire_after(datetime(9999, 12, 31, 23, 30, tzinfo=UTC)) is None


def test_every_naive_after_rejected() -> None:
    schedule = parse_schedule("@every 1h", one_time=False)

    with pytest.raises(ValueError, match="aware"):
        schedule.next_fire_after(datetime(2026, 1, 1))
