"""Cron fire times around offset transitions, checked against a minute-by-minute enumerator.

The enumerator applies the daylight saving time rules to every UTC minute,
using only zoneinfo. A fixed-hour schedule fires at the first occurrence
(fold 0) of a matching wall time. It also fires at the first minute after a
gap that skipped a matching wall time. A schedule whose hour field is `*` or
a step fires at every minute whose wall time matches.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskscheduler.schedule import parse_schedule
from taskscheduler.schedule.cron import CronSchedule

_MINUTE = timedelta(minutes=1)

EXPRESSIONS = [
    "30 2 * * *",
    "30 1 * * *",
    "0 * * * *",
    "*/15 * * * *",
    "15,45 1-3 * * *",
    "* 2 * * *",
    "0 0 * * *",
    "0 */2 * * *",
    "*/7 0-3 * * *",
    "59 23 * * *",
    "30 0,1 * * sun",
]

# Zones and UTC days on which their offset changes.
TRANSITION_DAYS = [
    ("America/New_York", "2026-03-08"),
    ("America/New_York", "2026-11-01"),
    ("Europe/London", "2026-03-29"),
    ("Europe/London", "2026-10-25"),
    ("Australia/Lord_Howe", "2026-04-04"),
    ("Australia/Lord_Howe", "2026-10-03"),
    ("America/Santiago", "2026-04-05"),
    ("America/Santiago", "2026-09-06"),
    ("Pacific/Apia", "2011-09-24"),
    ("Pacific/Apia", "2011-12-30"),
    ("America/Havana", "2026-03-08"),
    ("America/Havana", "2026-11-01"),
    ("Antarctica/Troll", "2026-03-29"),
    ("Antarctica/Troll", "2026-10-25"),
]


def _follows_elapsed_time(expression: str) -> bool:
    hour_field = expression.split()[1]
    return hour_field.startswith("*") or "/" in hour_field


def enumerate_fires(
    matches: Callable[[datetime], bool],
    follows_elapsed_time: bool,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[datetime]:
    """Return every UTC minute in [start, end) at which the DST rules fire the schedule."""
    fires = []
    previous_wall = (start - _MINUTE).astimezone(zone).replace(tzinfo=None)
    instant = start
    while instant < end:
        local = instant.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if follows_elapsed_time:
            fires_now = matches(wall)
        else:
            skipped = previous_wall + _MINUTE
            gap_matches = False
            while skipped < wall:
                gap_matches = gap_matches or matches(skipped)
                skipped += _MINUTE
            fires_now = gap_matches or (matches(wall) and local.fold == 0)
        if fires_now:
            fires.append(instant)
        previous_wall = wall
        instant += _MINUTE
    return fires


def chain_fires(schedule: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    fires = []
    fire = schedule.next_fire_after(start - timedelta(microseconds=1))
    while fire is not None and fire < end:
        fires.append(fire)
        fire = schedule.next_fire_after(fire)
    return fires


@pytest.mark.parametrize(("timezone", "day"), TRANSITION_DAYS)
def test_transition_matches_enumerator(timezone: str, day: str) -> None:
    zone = ZoneInfo(timezone)
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(days=1)
    end = start + timedelta(days=3)

    for expression in EXPRESSIONS:
        schedule = parse_schedule(expression, one_time=False, timezone=timezone)
        assert isinstance(schedule, CronSchedule)
        expected = enumerate_fires(
            schedule.fields.matches, _follows_elapsed_time(expression), zone, start, end
        )

        assert chain_fires(schedule, start, end) == expected, expression


@pytest.mark.parametrize(
    ("timezone", "after", "expected"),
    [
        # One minute into the repeated hour (01:01 EST): 01:30 already fired in EDT.
        ("America/New_York", "2026-11-01T06:01Z", "2026-11-02T06:30Z"),
        # In the repeated hour but before 01:30 EDT: it still fires then.
        ("America/New_York", "2026-11-01T05:10Z", "2026-11-01T05:30Z"),
        # After 01:30 EDT, during EDT: the repeat at 01:30 EST does not fire.
        ("America/New_York", "2026-11-01T05:45Z", "2026-11-02T06:30Z"),
    ],
)
def test_fixed_hour_after_inside_repeat(timezone: str, after: str, expected: str) -> None:
    schedule = parse_schedule("30 1 * * *", one_time=False, timezone=timezone)

    fire = schedule.next_fire_after(datetime.fromisoformat(after))

    assert fire == datetime.fromisoformat(expected)


def test_fixed_hour_gap_fires_once() -> None:
    """All of 02:00-02:59 fall in the New York gap and fire together once, at 03:00 EDT."""
    schedule = parse_schedule("* 2 * * *", one_time=False, timezone="America/New_York")
    after = datetime(2026, 3, 8, 6, 0, tzinfo=UTC)

    first = schedule.next_fire_after(after)
    assert first is not None
    second = schedule.next_fire_after(first)

    assert first == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)
    assert second == datetime(2026, 3, 9, 6, 0, tzinfo=UTC)
