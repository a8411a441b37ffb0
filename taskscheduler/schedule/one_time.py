"""One-time schedules: a single ISO-8601 instant.

An instant with an offset (`2026-12-24T18:00:00Z`, `...+01:00`) is taken as
written. One without an offset is read on the wall clock of the job's time
zone, by the rule of fixed-hour cron schedules. A wall time repeated by a
backward transition means its first occurrence. A wall time skipped by a
forward transition means the first instant after the gap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from taskscheduler.schedule.invalid import invalid_schedule
from taskscheduler.schedule.zones import first_instant_of_wall_time

_DATE_AND_TIME = re.compile(r"[0-9][T ][0-9]")
_REQUIREMENT = "a one-time job needs an ISO-8601 instant such as 2026-12-24T18:00:00Z"


@dataclass(frozen=True, slots=True)
class OneTimeSchedule:
    """Fires once, at `instant` (aware UTC)."""

    expression: str
    instant: datetime

    def next_fire_after(self, after: datetime) -> datetime | None:
        """Return `instant` if it is strictly after the aware `after`, else None."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError(f"expected an aware datetime, got naive {after.isoformat()}")
        return self.instant if self.instant > after else None


def parse_one_time(expression: str, zone: ZoneInfo) -> OneTimeSchedule:
    """Parse an ISO-8601 date and time; raise InvalidArgumentError(field="schedule") otherwise."""
    if _DATE_AND_TIME.search(expression) is None:
        raise invalid_schedule(expression, _REQUIREMENT)
    try:
        parsed = datetime.fromisoformat(expression)
    except ValueError as error:
        # Keep specific reasons such as "hour must be in 0..23", but not the generic one
        # that only repeats the expression.
        reason = str(error)
        if reason.startswith("offset must be a timedelta"):
            reason = "the UTC offset must be between -23:59 and +23:59"
        problem = (
            _REQUIREMENT if reason.startswith("Invalid isoformat") else f"{reason}; {_REQUIREMENT}"
        )
        raise invalid_schedule(expression, problem) from error

    try:
        if parsed.tzinfo is None:
            instant = first_instant_of_wall_time(parsed, zone)
        else:
            instant = parsed.astimezone(UTC)
    except OverflowError as error:
        raise invalid_schedule(
            expression, f"the instant is outside the years 1-9999 in UTC; {_REQUIREMENT}"
        ) from error
    return OneTimeSchedule(expression=expression, instant=instant)
