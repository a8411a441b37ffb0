"""Parsing of cron expressions and cron macros into CronFields.

Accepted: 5 fields (minute hour day-of-month month day-of-week), or 6 with a
seconds field first, as Quartz, Spring and Dkron read them (second minute
hour day-of-month month day-of-week). The numeric forms of each field are
described in taskscheduler.schedule.cron_items, and `L`, `W`, `#` and `?` of
the day fields in taskscheduler.schedule.cron_day_parse. An expression that
can never fire, such as `0 0 30 2 *`, is rejected.
"""

from __future__ import annotations

from collections.abc import Mapping

from taskscheduler.schedule.cron_day_parse import parse_days_of_month, parse_days_of_week
from taskscheduler.schedule.cron_days import DayRule
from taskscheduler.schedule.cron_fields import CronFields
from taskscheduler.schedule.cron_items import (
    HOUR,
    MINUTE,
    MONTH,
    SECOND,
    parse_numeric_field,
)
from taskscheduler.schedule.invalid import invalid_schedule

MACROS: Mapping[str, str] = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

_FIELD_NAMES = "minute hour day-of-month month day-of-week"
_FIELD_NAMES_WITH_SECONDS = "second " + _FIELD_NAMES
_EXAMPLE = "'0 9 * * *'"
_EXAMPLE_WITH_SECONDS = "'30 0 9 * * *'"

_MONTH_FULL_NAMES = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def parse_cron(expression: str) -> CronFields:
    """Parse a 5- or 6-field cron expression or a macro such as @daily (not @every).

    Raises InvalidArgumentError(field="schedule") naming the bad part and the fix.
    """
    parts = _expand_macro(expression).split()
    _check_field_count(expression, parts)
    if len(parts) == 5:
        parts = ["0", *parts]
    second, minute, hour, day_of_month, month, day_of_week = parts

    days = DayRule(
        days_of_month=parse_days_of_month(expression, day_of_month),
        days_of_week=parse_days_of_week(expression, day_of_week),
    )
    fields = CronFields(
        seconds=parse_numeric_field(expression, SECOND, second),
        minutes=parse_numeric_field(expression, MINUTE, minute),
        hours=parse_numeric_field(expression, HOUR, hour),
        days=days,
        months=parse_numeric_field(expression, MONTH, month),
        hour_follows_elapsed_time=hour.startswith("*") or "/" in hour,
    )
    _check_fires(expression, fields, day_of_month, day_of_week)
    return fields


def _expand_macro(expression: str) -> str:
    if not expression.startswith("@"):
        return expression
    macro, *rest = expression.split(maxsplit=1)
    expanded = MACROS.get(macro.lower())
    if expanded is None:
        raise invalid_schedule(
            expression,
            f"unknown macro {macro!r}; use one of {', '.join(MACROS)}, "
            "or @every with a duration such as @every 90s",
        )
    if rest:
        raise invalid_schedule(
            expression, f"macro {macro!r} takes no arguments; remove {rest[0]!r}"
        )
    return expanded


def _check_field_count(expression: str, parts: list[str]) -> None:
    if len(parts) in (5, 6):
        return
    noun = "field" if len(parts) == 1 else "fields"
    raise invalid_schedule(
        expression,
        f"has {len(parts)} {noun}, but a cron expression has 5 ({_FIELD_NAMES}), "
        f"such as {_EXAMPLE}, or 6 ({_FIELD_NAMES_WITH_SECONDS}), such as {_EXAMPLE_WITH_SECONDS}",
    )


def _check_fires(
    expression: str, fields: CronFields, day_of_month_text: str, day_of_week_text: str
) -> None:
    """Reject day and month fields that no calendar date satisfies.

    Every time field selects at least one value, so only the days can make an
    expression never fire. DayRule.fires_in_month tries every layout a month
    can have, which covers all years.
    """
    if any(fields.days.fires_in_month(month) for month in fields.months):
        return
    listed = _list_months(fields.months)
    if not any(fields.days.month_days_occur_in(month) for month in fields.months):
        raise invalid_schedule(
            expression,
            f"never fires, because day-of-month {day_of_month_text} does not occur in {listed}; "
            f"choose a day that exists in {listed}",
        )
    raise invalid_schedule(
        expression,
        f"never fires, because no day in {listed} matches both day-of-month "
        f"{day_of_month_text} and day-of-week {day_of_week_text}, and a day must match both "
        "when either field starts with '*'; change one of the two fields",
    )


def _list_months(months: tuple[int, ...]) -> str:
    if len(months) == len(_MONTH_FULL_NAMES):
        return "any month"
    names = [_MONTH_FULL_NAMES[month - 1] for month in months]
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " or " + names[-1]
