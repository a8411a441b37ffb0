"""The parsed fields of a 5-field cron expression, and matching them against local wall times.

Everything here works on naive wall-clock datetimes; time zones and daylight
saving time are handled by taskscheduler.schedule.cron.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from taskscheduler.schedule.zones import LAST_YEAR

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CronFields:
    """The value sets of the five cron fields, each sorted ascending.

    `days_of_week` uses 0 for Sunday through 6 for Saturday (a 7 in the
    expression is stored as 0). A day field whose text starts with `*`
    (`*` itself or a step such as `*/2`) counts as unrestricted, as in Vixie
    cron: when both day fields are restricted a day matching either fires,
    otherwise a day must match both.
    """

    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days_of_month: tuple[int, ...]
    months: tuple[int, ...]
    days_of_week: tuple[int, ...]
    day_of_month_unrestricted: bool
    day_of_week_unrestricted: bool
    hour_follows_elapsed_time: bool
    """True when the hour field is `*` or a step, so daylight saving time shifts are
    not compensated (a repeated hour fires twice, a skipped hour not at all)."""

    def matches_day(self, day: date) -> bool:
        """Return whether the day fields and the month field accept `day`."""
        if day.month not in self.months:
            return False
        day_of_month_matches = day.day in self.days_of_month
        day_of_week_matches = day.isoweekday() % 7 in self.days_of_week
        if self.day_of_month_unrestricted or self.day_of_week_unrestricted:
            return day_of_month_matches and day_of_week_matches
        return day_of_month_matches or day_of_week_matches

    def matches(self, wall_time: datetime) -> bool:
        """Return whether the naive `wall_time` (seconds ignored) matches all five fields."""
        return (
            wall_time.minute in self.minutes
            and wall_time.hour in self.hours
            and self.matches_day(wall_time.date())
        )

    def next_wall_time(self, start: datetime) -> datetime | None:
        """Return the first matching naive wall time at or after `start`.

        `start` must be a whole minute. Returns None when nothing matches up to
        the end of year LAST_YEAR.
        """
        day: date | None = start.date()
        earliest_time: time | None = start.time()
        while day is not None:
            if day.month not in self.months:
                day, earliest_time = self._first_day_of_next_month(day), None
                continue
            if self.matches_day(day):
                found = self._first_time_at_or_after(earliest_time)
                if found is not None:
                    return datetime.combine(day, found)
            day, earliest_time = _following_day(day), None
        return None

    def _first_time_at_or_after(self, earliest: time | None) -> time | None:
        """Return the first matching time of day at or after `earliest` (None: midnight)."""
        if earliest is None:
            return time(self.hours[0], self.minutes[0])
        hour_index = bisect.bisect_left(self.hours, earliest.hour)
        if hour_index == len(self.hours):
            return None
        hour = self.hours[hour_index]
        if hour == earliest.hour:
            minute_index = bisect.bisect_left(self.minutes, earliest.minute)
            if minute_index < len(self.minutes):
                return time(hour, self.minutes[minute_index])
            hour_index += 1
            if hour_index == len(self.hours):
                return None
            hour = self.hours[hour_index]
        return time(hour, self.minutes[0])

    def _first_day_of_next_month(self, day: date) -> date | None:
        """Return the first day of the next month in `months` after the month of `day`."""
        month_index = bisect.bisect_right(self.months, day.month)
        if month_index < len(self.months):
            return date(day.year, self.months[month_index], 1)
        if day.year >= LAST_YEAR:
            return None
        return date(day.year + 1, self.months[0], 1)


def _following_day(day: date) -> date | None:
    if day.year >= LAST_YEAR and day.month == 12 and day.day == 31:
        return None
    return day + _ONE_DAY
