"""The parsed fields of a cron expression, and matching them against local wall times.

Everything here works on naive wall-clock datetimes; time zones and daylight
saving time are handled by taskscheduler.schedule.cron.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from taskscheduler.schedule.cron_days import DayRule
from taskscheduler.schedule.zones import LAST_YEAR

_ONE_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class CronFields:
    """The value sets of the time and month fields, each sorted ascending, and the day rule.

    A 5-field expression has `seconds == (0,)`.
    """

    seconds: tuple[int, ...]
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: DayRule
    months: tuple[int, ...]
    hour_follows_elapsed_time: bool
    """True when the hour field is `*` or a step, so daylight saving time shifts are
    not compensated (a repeated hour fires twice, a skipped hour not at all)."""

    def matches_day(self, day: date) -> bool:
        """Return whether the day fields and the month field accept `day`."""
        return day.month in self.months and self.days.matches_date(day)

    def matches(self, wall_time: datetime) -> bool:
        """Return whether the naive `wall_time` (microseconds ignored) matches every field."""
        return (
            wall_time.second in self.seconds
            and wall_time.minute in self.minutes
            and wall_time.hour in self.hours
            and self.matches_day(wall_time.date())
        )

    def next_wall_time(self, start: datetime, before: datetime | None = None) -> datetime | None:
        """Return the first matching naive wall time at or after `start` (and before `before`).

        `start` must be a whole second. Returns None when nothing matches up to
        `before`, or else up to the end of year LAST_YEAR.
        """
        day: date | None = start.date()
        earliest_time: time | None = start.time()
        last_day = before.date() if before is not None else date.max
        while day is not None and day <= last_day:
            if day.month not in self.months:
                day, earliest_time = self._first_day_of_next_month(day), None
                continue
            if self.days.matches_date(day):
                found = self._first_time_at_or_after(earliest_time)
                if found is not None:
                    wall_time = datetime.combine(day, found)
                    return wall_time if before is None or wall_time < before else None
            day, earliest_time = _following_day(day), None
        return None

    def _first_time_at_or_after(self, earliest: time | None) -> time | None:
        """Return the first matching time of day at or after `earliest` (None: midnight).

        Each loop runs at most twice: when the earliest hour or minute has no
        later match, the next one matches from its start.
        """
        if earliest is None:
            return time(self.hours[0], self.minutes[0], self.seconds[0])
        for hour in self.hours[bisect.bisect_left(self.hours, earliest.hour) :]:
            same_hour = hour == earliest.hour
            minute_floor = earliest.minute if same_hour else 0
            for minute in self.minutes[bisect.bisect_left(self.minutes, minute_floor) :]:
                same_minute = same_hour and minute == earliest.minute
                second_floor = earliest.second if same_minute else 0
                second_index = bisect.bisect_left(self.seconds, second_floor)
                if second_index < len(self.seconds):
                    return time(hour, minute, self.seconds[second_index])
        return None

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
