"""Recurring cron schedules, evaluated on the wall clock of an IANA time zone.

Daylight saving time follows two rules, chosen by the hour field (the same in
5-field expressions and in 6-field ones, which start with a seconds field):

- Fixed hours (the hour field is values, ranges or lists, as in `30 2 * * *`):
  every matching local wall time fires once. A wall time that a backward
  transition repeats fires at its first occurrence only. Wall times that a
  forward transition skips fire together at the transition instant, the
  first instant after the gap. So a daily job fires once on every local day.
- Elapsed time (the hour field is `*` or a step, as in `0 * * * *`): the
  schedule fires at every instant whose local wall time matches. A repeated
  wall time fires twice and a skipped one never, so `0 * * * *` fires 23 times
  on a spring-forward day and 25 times on a fall-back day.

Evaluation walks the UTC timeline span by span, where a span is the time
between two offset transitions. Inside a span, wall time and instant map one
to one, so the next matching wall time in the span is the next fire time.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from taskscheduler.schedule.cron_fields import CronFields
from taskscheduler.schedule.zones import (
    LAST_YEAR,
    Transition,
    next_transition,
    previous_transition,
    utc_offset,
)

_ONE_SECOND = timedelta(seconds=1)
# Longer than any change of UTC offset in tz database release 2025b (the largest is
# one day), so a backward transition further back cannot repeat a wall time after `after`.
_LOOKBACK = timedelta(hours=48)
# Instants this early cannot be shifted by a negative UTC offset without leaving
# the range of `datetime`; no schedule needs to fire before it.
_EARLIEST = datetime(2, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A 5- or 6-field cron expression or a macro, evaluated in `zone`."""

    expression: str
    fields: CronFields
    zone: ZoneInfo

    def next_fire_after(self, after: datetime) -> datetime | None:
        """Return the first fire instant strictly after the aware `after`, as aware UTC.

        Returns None when the next fire time would fall after year 9998.
        """
        cursor = max(_to_utc(after), _EARLIEST)
        if cursor.year > LAST_YEAR:
            return None

        # Start in the span that contains `after`, at the first whole second past its wall time.
        offset = utc_offset(self.zone, cursor)
        start = _floor_second(_wall_time(cursor, offset)) + _ONE_SECOND
        start = max(start, self._first_wall_time_after_fall_back(cursor))

        search = _WallTimeSearch(self.fields)
        while True:
            wall_time = search.first_at_or_after(start)
            if wall_time is None:
                return None
            candidate = (wall_time - offset).replace(tzinfo=UTC)
            transition = next_transition(self.zone, cursor, candidate)
            if transition is None:
                return candidate

            # The span ends before the candidate, so continue in the next span.
            if self._fires_for_gap(transition):
                return transition.at
            cursor, offset = transition.at, transition.offset_after
            start = self._first_wall_time_of_span(transition)

    def _fires_for_gap(self, transition: Transition) -> bool:
        """Return whether a fixed-hour schedule matches a wall time skipped by `transition`."""
        if self.fields.hour_follows_elapsed_time:
            return False
        if transition.offset_after <= transition.offset_before:
            return False
        gap_start = _ceil_second(_wall_time(transition.at, transition.offset_before))
        gap_end = _wall_time(transition.at, transition.offset_after)
        skipped = self.fields.next_wall_time(gap_start, before=gap_end)
        return skipped is not None

    def _first_wall_time_of_span(self, transition: Transition) -> datetime:
        """Return the earliest wall time that may fire in the span that starts at `transition`.

        Fixed-hour schedules skip the wall times that a backward transition
        repeats, because those fired in the previous span.
        """
        start = _ceil_second(_wall_time(transition.at, transition.offset_after))
        if self._skips_repeated_wall_times(transition):
            start = _ceil_second(_wall_time(transition.at, transition.offset_before))
        return start

    def _first_wall_time_after_fall_back(self, instant: datetime) -> datetime:
        """Return the wall time before which a fixed-hour schedule must not fire at `instant`.

        After a recent backward transition, wall times up to the old offset's
        last wall time have already fired. Otherwise returns datetime.min.
        """
        transition = previous_transition(self.zone, instant - _LOOKBACK, instant)
        if transition is None or not self._skips_repeated_wall_times(transition):
            return datetime.min
        return _ceil_second(_wall_time(transition.at, transition.offset_before))

    def _skips_repeated_wall_times(self, transition: Transition) -> bool:
        return (
            not self.fields.hour_follows_elapsed_time
            and transition.offset_after < transition.offset_before
        )


class _WallTimeSearch:
    """Finds the next matching wall time, reusing the last result while it still applies.

    A schedule that fires once in years passes many offset transitions before
    its next fire time, and each span would otherwise search the calendar again.
    """

    def __init__(self, fields: CronFields) -> None:
        self._fields = fields
        self._searched_from: datetime | None = None
        self._found: datetime | None = None

    def first_at_or_after(self, start: datetime) -> datetime | None:
        # Nothing matches in [searched_from, found), so `found` is also the first match
        # at or after any `start` in that interval.
        searched_from, found = self._searched_from, self._found
        if searched_from is not None and found is not None and searched_from <= start <= found:
            return found
        self._searched_from = start
        self._found = self._fields.next_wall_time(start)
        return self._found


def _to_utc(instant: datetime) -> datetime:
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(f"expected an aware datetime, got naive {instant.isoformat()}")
    return instant.astimezone(UTC)


def _wall_time(instant: datetime, offset: timedelta) -> datetime:
    """Return the naive local wall time of the aware UTC `instant` at `offset`."""
    return (instant + offset).replace(tzinfo=None)


def _floor_second(wall_time: datetime) -> datetime:
    return wall_time.replace(microsecond=0)


def _ceil_second(wall_time: datetime) -> datetime:
    floored = _floor_second(wall_time)
    return floored if floored == wall_time else floored + _ONE_SECOND
