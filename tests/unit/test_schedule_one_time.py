"""One-time schedules: an ISO-8601 instant, read in the job's time zone when it has no offset."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.schedule import parse_schedule

# Each row: expression, time zone, the expected instant (UTC).
INSTANTS = [
    ("2026-12-24T18:00:00Z", "UTC", "2026-12-24T18:00:00Z"),
    ("2026-12-24T18:00:00Z", "America/New_York", "2026-12-24T18:00:00Z"),
    ("2026-12-24T18:00:00+01:00", "America/New_York", "2026-12-24T17:00:00Z"),
    ("2026-12-24T18:00:00", "Europe/Berlin", "2026-12-24T17:00:00Z"),
    ("2026-12-24T18:00:00", "", "2026-12-24T18:00:00Z"),
    ("2026-12-24 18:00", "UTC", "2026-12-24T18:00:00Z"),
    ("2026-12-24T18:00:00.250Z", "UTC", "2026-12-24T18:00:00.250Z"),
    ("  2026-12-24T18:00:00Z ", "UTC", "2026-12-24T18:00:00Z"),
    # In the New York spring-forward gap: the first instant after it, 03:00 EDT.
    ("2026-03-08T02:30:00", "America/New_York", "2026-03-08T07:00:00Z"),
    # Repeated by the New York fall-back: the first occurrence, in EDT.
    ("2026-11-01T01:30:00", "America/New_York", "2026-11-01T05:30:00Z"),
    ("2026-11-01T01:30:00-05:00", "America/New_York", "2026-11-01T06:30:00Z"),
]


@pytest.mark.parametrize(("expression", "timezone", "expected"), INSTANTS)
def test_one_time_instant(expression: str, timezone: str, expected: str) -> None:
    schedule = parse_schedule(expression, one_time=True, timezone=timezone)
    instant = datetime.fromisoformat(expected)

    fire = schedule.next_fire_after(instant - timedelta(microseconds=1))

    assert fire == instant
    assert fire is not None and fire.tzinfo is UTC
    assert schedule.expression == expression.strip()


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        ("2026-12-24T17:59:59Z", "2026-12-24T18:00:00Z"),
        ("2026-12-24T19:59:59+02:00", "2026-12-24T18:00:00Z"),
        ("2026-12-24T18:00:00Z", None),
        ("2026-12-24T20:00:00+02:00", None),
        ("2027-01-01T00:00:00Z", None),
    ],
)
def test_one_time_fires_once(after: str, expected: str | None) -> None:
    schedule = parse_schedule("2026-12-24T18:00:00Z", one_time=True)

    fire = schedule.next_fire_after(datetime.fromisoformat(after))

    assert fire == (datetime.fromisoformat(expected) if expected else None)


def test_one_time_naive_after_rejected() -> None:
    schedule = parse_schedule("2026-12-24T18:00:00Z", one_time=True)

    with pytest.raises(ValueError, match="aware"):
        schedule.next_fire_after(datetime(2026, 1, 1))


def test_one_time_past_instant_parses() -> None:
    schedule = parse_schedule("2001-01-01T00:00:00Z", one_time=True)

    assert schedule.next_fire_after(datetime(2026, 1, 1, tzinfo=UTC)) is None
