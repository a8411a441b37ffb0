"""The Schedule interface, parse_schedule that builds every schedule, and fire_times."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Protocol

from taskscheduler.schedule.cron import CronSchedule
from taskscheduler.schedule.cron_parse import parse_cron
from taskscheduler.schedule.interval import parse_every
from taskscheduler.schedule.invalid import invalid_schedule
from taskscheduler.schedule.one_time import parse_one_time
from taskscheduler.schedule.zones import validate_timezone

_ISO_INSTANT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]")


class Schedule(Protocol):
    """When a job fires. Implementations are immutable and pure: no clock, no I/O."""

    @property
    def expression(self) -> str:
        """The schedule as the job defines it, without surrounding whitespace."""
        ...

    def next_fire_after(self, after: datetime) -> datetime | None:
        """Return the first fire instant strictly after the aware `after`, as aware UTC.

        Returns None when the schedule never fires again. Raises ValueError for a naive `after`.
        """
        ...


def parse_schedule(expression: str, *, one_time: bool, timezone: str = "UTC") -> Schedule:
    """Parse a job's schedule, evaluated in the IANA time zone `timezone` ("" means UTC).

    Recurring jobs take a 5- or 6-field cron expression, a macro such as @daily,
    or `@every <duration>`. One-time jobs take an ISO-8601 instant. Raises
    InvalidArgumentError with field "schedule" or "timezone", whose message
    names the bad part and the fix.
    """
    zone = validate_timezone(timezone)
    text = expression.strip()
    if one_time:
        return parse_one_time(text, zone)
    if not text:
        raise invalid_schedule(
            expression,
            "is empty; use a cron expression such as '0 9 * * *', a macro such as @daily, "
            "or @every 90s",
        )
    if text.split(maxsplit=1)[0].lower() == "@every":
        return parse_every(text)
    if _ISO_INSTANT.match(text):
        raise invalid_schedule(
            expression,
            "is an instant, which only a one-time job can use; make the job one-time, "
            "or give a cron expression such as '0 9 * * *'",
        )
    return CronSchedule(expression=text, fields=parse_cron(text), zone=zone)


def fire_times(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    """Return the next `count` fire instants strictly after the aware `after`, ascending.

    Returns fewer when the schedule ends first. Raises ValueError for a naive
    `after` or a negative `count`.
    """
    if after.tzinfo is None or after.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {after.isoformat()}")
    if count < 0:
        raise ValueError(f"count must be at least 0, got {count}")
    fires: list[datetime] = []
    fire = schedule.next_fire_after(after) if count else None
    while fire is not None:
        fires.append(fire)
        if len(fires) == count:
            break
        fire = schedule.next_fire_after(fire)
    return fires
