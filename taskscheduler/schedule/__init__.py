"""Schedule expressions: when a job fires.

`parse_schedule(expression, one_time=..., timezone=...)` returns a Schedule
whose `next_fire_after(after)` gives the next fire instant in UTC, and
`fire_times(schedule, after, count)` lists the next few. Schedules are pure
values: they read no clock, so callers pass the current instant in.

- Cron (recurring jobs): 5 fields, minute hour day-of-month month
  day-of-week, or 6 with a seconds field first. The day fields also take
  `L`, `W`, `#` and `?`. The macros are @yearly, @annually, @monthly,
  @weekly, @daily, @midnight and @hourly. Cron is evaluated on the wall
  clock of the job's IANA time zone, with the daylight saving time rules
  described in taskscheduler.schedule.cron.
- `@every <duration>` (recurring jobs): the fire instants are the Unix epoch
  plus whole multiples of the interval, 1970-01-01T00:00:00Z + k * interval.
  So `@every 2s` fires on even UTC seconds, every replica and every restart
  computes the same slots, and the time zone does not matter.
- An ISO-8601 instant (one-time jobs), such as 2026-12-24T18:00:00Z; without
  an offset it is read in the job's time zone.
"""

from taskscheduler.schedule.parse import Schedule, fire_times, parse_schedule
from taskscheduler.schedule.zones import validate_timezone

__all__ = ["Schedule", "fire_times", "parse_schedule", "validate_timezone"]
