"""Cron fire times around offset transitions, checked against a minute-by-minute enumerator.

The enumerator applies the daylight saving time rules to every UTC minute,
using only zoneinfo. A fixed-hour schedule fires at the first occurrence
(fold 0) of a matching wall time. It also fires at the first minute after a
gap that skipped a matching wall time. A schedule whose hour field is `*` or
a step fires at every minute whose wall time matches. Within a firing minute,
it fires at each second of the seconds field.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskscheduler.schedule import parse_schedule
from taskscheduler.schedule.cron import CronSchedule
from taskscheduler.schedule.cron_fields import CronFields

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
    "*/20 30 2 * * *",
    "10,50 30 1 * * *",
    "*/30 */20 * * * *",
    "59 59 1 * * *",
    "0 30 1,2 * * SUN#1,SUN#2,SUNL",
    "30 2 1W,LW * *",
    "45 1 L,L-1 * 1#1",
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


def enumerate_fires(
    matches_minute: Callable[[datetime], bool],
    seconds: Sequence[int],
    follows_elapsed_time: bool,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
) -> list[datetime]:
    """Return every instant in [start, end) at which the DST rules fire the schedule.

    `matches_minute` returns whether a wall-clock minute matches every field but
    the seconds; it gets the local time, naive for skipped wall times. `seconds`
    lists the seconds field's values. `start` must be a whole UTC minute and the
    zone's offsets whole minutes, as they are for the zones and years these tests use.
    """
    fires = []
    previous_offset = (start - _MINUTE).astimezone(zone).utcoffset()
    instant = start
    while instant < end:
        local = instant.astimezone(zone)
        offset = local.utcoffset()
        assert local.second == 0, f"{zone} has an offset of a fraction of a minute at {instant}"
        gap_matches = False
        if follows_elapsed_time:
            wall_fires = matches_minute(local)
        else:
            if offset > previous_offset:
                gap = _skipped_wall_minutes(local, offset - previous_offset)
                gap_matches = any(matches_minute(wall) for wall in gap)
            wall_fires = local.fold == 0 and matches_minute(local)

        if gap_matches or wall_fires:
            in_minute = {instant} if gap_matches else set()
            if wall_fires:
                in_minute.update(instant + timedelta(seconds=second) for second in seconds)
            fires.extend(sorted(fire for fire in in_minute if fire < end))
        previous_offset = offset
        instant += _MINUTE
    return fires


def _skipped_wall_minutes(local: datetime, jump: timedelta) -> list[datetime]:
    """Return the naive wall minutes that a forward jump of `jump` skipped just before `local`."""
    wall = local.replace(tzinfo=None)
    return [wall - jump + i * _MINUTE for i in range(jump // _MINUTE)]


def enumerate_parsed_fires(
    schedule: CronSchedule, start: datetime, end: datetime
) -> list[datetime]:
    """Enumerate with the parsed fields' own matching; the DST rules are the enumerator's.

    Whether the hour field follows elapsed time is read from the expression text.
    """
    fields: CronFields = schedule.fields
    hour_field = schedule.expression.split()[-4]

    def matches_minute(wall: datetime) -> bool:
        return fields.matches(wall.replace(second=fields.seconds[0]))

    return enumerate_fires(
        matches_minute,
        fields.seconds,
        hour_field.startswith("*") or "/" in hour_field,
        schedule.zone,
        start,
        end,
    )


def chain_fires(schedule: CronSchedule, start: datetime, end: datetime) -> list[datetime]:
    fires = []
    fire = schedule.next_fire_after(start - timedelta(microseconds=1))
    while fire is not None and fire < end:
        fires.append(fire)
        fire = schedule.next_fire_after(fire)
    return fires


def test_enumerator_seconds_in_gap() -> None:
    """Skipped 02:30:xx wall times fire once at the transition; the next day fires each second."""
    zone = ZoneInfo("America/New_York")

    def matches_minute(wall: datetime) -> bool:
        return (wall.hour, wall.minute) == (2, 30)

    fires = enumerate_fires(
        matches_minute,
        (0, 30),
        False,
        zone,
        datetime(2026, 3, 8, 0, 0, tzinfo=UTC),
        datetime(2026, 3, 10, 0, 0, tzinfo=UTC),
    )

    assert fires == [
        datetime(2026, 3, 8, 7, 0, tzinfo=UTC),
        datetime(2026, 3, 9, 6, 30, tzinfo=UTC),
        datetime(2026, 3, 9, 6, 30, 30, tzinfo=UTC),
    ]


@pytest.mark.parametrize(("timezone", "day"), TRANSITION_DAYS)
def test_transition_matches_enumerator(timezone: str, day: str) -> None:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(days=1)
    end = start + timedelta(days=3)

    for expression in EXPRESSIONS:
        schedule = parse_schedule(expression, one_time=False, timezone=timezone)
        assert isinstance(schedule, CronSchedule)
        expected = enumerate_parsed_fires(schedule, start, end)

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
