"""`@every <duration>` schedules: fixed intervals aligned to the Unix epoch.

The fire instants of `@every D` are 1970-01-01T00:00:00Z + k * D for every
integer k. So `@every 2s` fires on even UTC seconds and `@every 1h30m` at
00:00, 01:30, 03:00 ... UTC on 1970-01-01 and every 90 minutes after. The
slots depend on nothing but the interval: they are the same on every
replica, after any restart and in every time zone.

A duration is written as in Go: one or more numbers, each followed by a
unit h, m or s (`90s`, `1h30m`, `1.5h`), each unit at most once. It must
total a whole number of seconds, at least 1s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from fractions import Fraction

from taskscheduler.schedule.invalid import invalid_schedule

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIT_SECONDS = {"h": 3600, "m": 60, "s": 1}
_PART = re.compile(r"([0-9]*\.?[0-9]*)([^0-9.]*)")
# The first slot after the epoch must fit in `datetime`.
_INTERVAL_MAX_S = int((datetime(9999, 1, 1, tzinfo=UTC) - EPOCH).total_seconds())
_EXAMPLES = "such as 90s, 5m or 1h30m"


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    """Fires every `interval_s` seconds, on the instants EPOCH + k * interval_s."""

    expression: str
    interval_s: int

    def next_fire_after(self, after: datetime) -> datetime | None:
        """Return the first slot strictly after the aware `after`, or None past year 9999."""
        if after.tzinfo is None or after.utcoffset() is None:
            raise ValueError(f"expected an aware datetime, got naive {after.isoformat()}")
        interval_us = self.interval_s * 1_000_000
        elapsed_us = (after.astimezone(UTC) - EPOCH) // timedelta(microseconds=1)
        slot = elapsed_us // interval_us + 1
        try:
            return EPOCH + timedelta(microseconds=slot * interval_us)
        except OverflowError:
            return None


def parse_every(expression: str) -> IntervalSchedule:
    """Parse `@every <duration>`; raise InvalidArgumentError(field="schedule") if invalid."""
    keyword, *rest = expression.split(maxsplit=1)
    if keyword.lower() != "@every":
        raise invalid_schedule(expression, f"unknown macro {keyword!r}; use @every <duration>")
    if not rest:
        raise invalid_schedule(expression, f"@every needs a duration, {_EXAMPLES}")
    interval_s = _parse_duration_s(expression, rest[0].strip())
    return IntervalSchedule(expression=expression, interval_s=interval_s)


def _parse_duration_s(expression: str, text: str) -> int:
    if text.startswith("-"):
        raise invalid_schedule(
            expression, f"@every duration {text!r} must be positive, {_EXAMPLES}"
        )
    total = Fraction(0)
    units_seen: set[str] = set()
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        assert match is not None, "the pattern matches the empty string"
        number, unit = match.groups()
        _check_part(expression, text, number, unit)
        if unit in units_seen:
            raise invalid_schedule(
                expression,
                f"@every duration {text!r} gives unit {unit!r} more than once; "
                "write each unit once, such as 2h or 1h30m",
            )
        units_seen.add(unit)
        total += Fraction(number) * _UNIT_SECONDS[unit]
        position = match.end()
    return _check_total(expression, text, total)


def _check_part(expression: str, text: str, number: str, unit: str) -> None:
    if number in ("", "."):
        raise invalid_schedule(
            expression, f"@every duration {text!r} is not a duration; write one {_EXAMPLES}"
        )
    if unit == "":
        raise invalid_schedule(
            expression, f"@every duration {text!r} is missing a unit after {number}; use h, m or s"
        )
    if unit not in _UNIT_SECONDS:
        raise invalid_schedule(
            expression,
            f"@every duration {text!r} uses unit {unit!r}, which is not supported; "
            f"use h, m or s, {_EXAMPLES}",
        )


def _check_total(expression: str, text: str, total: Fraction) -> int:
    if total < 1:
        raise invalid_schedule(
            expression, f"@every duration {text!r} is shorter than the minimum 1s"
        )
    if total.denominator != 1:
        raise invalid_schedule(
            expression, f"@every duration {text!r} is not a whole number of seconds; round it"
        )
    if total > _INTERVAL_MAX_S:
        raise invalid_schedule(
            expression, f"@every duration {text!r} is too long; use at most {_INTERVAL_MAX_S}s"
        )
    return int(total)
