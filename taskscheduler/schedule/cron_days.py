"""The day-of-month and day-of-week fields of a cron expression, and which days they select.

Besides plain days, day-of-month takes `L` (the last day of the month),
`L-3` (three days before the last), `15W` (the weekday nearest the 15th,
without leaving the month) and `LW` (the last weekday of the month).
Day-of-week takes `5L` (the last Friday of the month) and `1#2` (the second
Monday). Weekdays are numbered 0 for Sunday through 6 for Saturday.

Whether a day matches depends only on its day number, the length of its
month and its weekday, so matching works on those three numbers. That also
lets the parser check every month layout that a calendar can have.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

_SATURDAY = 6
_SUNDAY = 0
# The lengths each month has, in common and in leap years.
_MONTH_LENGTHS: dict[int, tuple[int, ...]] = {
    1: (31,),
    2: (28, 29),
    3: (31,),
    4: (30,),
    5: (31,),
    6: (30,),
    7: (31,),
    8: (31,),
    9: (30,),
    10: (31,),
    11: (30,),
    12: (31,),
}


@dataclass(frozen=True, slots=True)
class DaysOfMonth:
    """A day-of-month field: the days it selects in a month of a given length."""

    days: frozenset[int]
    days_before_last: frozenset[int] = frozenset()
    """`L` is 0 and `L-3` is 3."""
    nearest_weekday_to: frozenset[int] = frozenset()
    """Days written with `W`: `15W` is 15."""
    last_weekday: bool = False
    """True when the field contains `LW`."""
    unrestricted: bool = False
    """True when the field text starts with `*` or is `?` (see DayRule)."""

    def matches(self, day: int, length: int, weekday: int) -> bool:
        """Return whether day number `day` matches in a month of `length` days.

        `weekday` is the weekday of `day`, 0 for Sunday through 6 for Saturday.
        """
        if day in self.days or length - day in self.days_before_last:
            return True
        if self.last_weekday and day == _nearest_weekday(length, length, day, weekday):
            return True
        return any(
            target <= length and day == _nearest_weekday(target, length, day, weekday)
            for target in self.nearest_weekday_to
        )


@dataclass(frozen=True, slots=True)
class DaysOfWeek:
    """A day-of-week field, with weekdays numbered 0 for Sunday through 6 for Saturday."""

    weekdays: frozenset[int]
    nth_weekdays: frozenset[tuple[int, int]] = frozenset()
    """(weekday, n) pairs: `1#2`, the second Monday of the month, is (1, 2)."""
    last_weekdays: frozenset[int] = frozenset()
    """Weekdays written with `L`: `5L`, the last Friday of the month, is 5."""
    unrestricted: bool = False
    """True when the field text starts with `*` or is `?` (see DayRule)."""

    def matches(self, day: int, length: int, weekday: int) -> bool:
        """Return whether day number `day`, a `weekday`, matches in a month of `length` days."""
        if weekday in self.weekdays:
            return True
        occurrence = (day - 1) // 7 + 1
        if (weekday, occurrence) in self.nth_weekdays:
            return True
        return weekday in self.last_weekdays and day + 7 > length


@dataclass(frozen=True, slots=True)
class DayRule:
    """The two day fields together, combined as Vixie cron does.

    When both fields are restricted, a day matching either fires. When either
    is unrestricted (its text starts with `*`, as in `*` or `*/2`, or is `?`),
    a day must match both, so `0 0 */10 * mon` fires on Mondays that are the
    1st, 11th, 21st or 31st.
    """

    days_of_month: DaysOfMonth
    days_of_week: DaysOfWeek

    def matches(self, day: int, length: int, weekday: int) -> bool:
        """Return whether day number `day`, a `weekday`, fires in a month of `length` days."""
        by_month_day = self.days_of_month.matches(day, length, weekday)
        by_weekday = self.days_of_week.matches(day, length, weekday)
        if self.days_of_month.unrestricted or self.days_of_week.unrestricted:
            return by_month_day and by_weekday
        return by_month_day or by_weekday

    def matches_date(self, day: date) -> bool:
        """Return whether the calendar date `day` fires (the month field is not checked)."""
        return self.matches(day.day, _month_length(day), day.isoweekday() % 7)

    def fires_in_month(self, month: int) -> bool:
        """Return whether some day of `month` fires in some year."""
        return _some_day_in_month(month, self.matches)

    def month_days_occur_in(self, month: int) -> bool:
        """Return whether the day-of-month field alone selects some day of `month` in some year."""
        return _some_day_in_month(month, self.days_of_month.matches)


def _month_length(day: date) -> int:
    # Cheaper than calendar.monthrange, which this runs for every day a search passes.
    if day.month == 2 and calendar.isleap(day.year):
        return 29
    return _MONTH_LENGTHS[day.month][0]


def _some_day_in_month(month: int, matches: Callable[[int, int, int], bool]) -> bool:
    return any(
        matches(day, length, weekday) for day, length, weekday in _possible_days_of_month(month)
    )


def _possible_days_of_month(month: int) -> Iterator[tuple[int, int, int]]:
    """Yield (day, length, weekday) for every layout `month` can have.

    Over the 400-year Gregorian cycle, each month starts on every weekday, in
    common and in leap years alike, so every pair of length and first weekday occurs.
    """
    for length in _MONTH_LENGTHS[month]:
        for first_weekday in range(7):
            for day in range(1, length + 1):
                yield day, length, (first_weekday + day - 1) % 7


def _nearest_weekday(target: int, length: int, day: int, weekday: int) -> int:
    """Return the Monday-to-Friday day nearest day `target`, without leaving the month.

    `weekday` is the weekday of `day`, any day of the same month of `length` days.
    A Saturday moves to the Friday before, a Sunday to the Monday after, except
    that the 1st on a Saturday moves to Monday the 3rd and the last day on a
    Sunday moves to the Friday two days before.
    """
    target_weekday = (weekday + target - day) % 7
    if target_weekday == _SATURDAY:
        return target - 1 if target > 1 else target + 2
    if target_weekday == _SUNDAY:
        return target + 1 if target < length else target - 2
    return target
