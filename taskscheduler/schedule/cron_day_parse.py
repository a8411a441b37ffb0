"""Parsing of the day-of-month and day-of-week fields, with `L`, `W`, `#` and `?`.

Day-of-month items: the numeric forms of taskscheduler.schedule.cron_items,
`L` (last day of the month), `L-3` (3 days before the last, up to L-30),
`15W` (the weekday nearest the 15th in the same month) and `LW` (the last
weekday). Day-of-week items: the numeric forms, `5L` or `FRIL` (the last
Friday of the month) and `1#2` or `MON#2` (the second Monday). Items of
either kind mix in a list, as in `1,15,L` or `MON#1,MON#3`. `?` as the whole
field means the same as `*`. Weekday numbers follow cron, not Quartz: 0 and
7 are Sunday.
"""

from __future__ import annotations

import re
from dataclasses import fields, replace
from typing import TypeVar

from taskscheduler.schedule.cron_days import DaysOfMonth, DaysOfWeek
from taskscheduler.schedule.cron_items import (
    DAY_OF_MONTH,
    DAY_OF_WEEK,
    parse_numeric_item,
    parse_value,
    split_items,
)
from taskscheduler.schedule.invalid import invalid_schedule

_LAST_DAY = re.compile(r"L(?:-(?P<before>[0-9]{1,9}))?", re.IGNORECASE)
_NEAREST_WEEKDAY = re.compile(r"(?P<day>[0-9]{1,9})W", re.IGNORECASE)
_LAST_WEEKDAY_OF_MONTH = re.compile(r"LW", re.IGNORECASE)
_LAST_OF_WEEKDAY = re.compile(r"(?P<weekday>[0-9]{1,9}|[A-Z]{3})L", re.IGNORECASE)
_NTH_WEEKDAY = re.compile(r"(?P<weekday>[0-9]{1,9}|[A-Z]{3})#(?P<n>[0-9]{1,9})", re.IGNORECASE)
_DAYS_BEFORE_LAST_MAX = 30
_OCCURRENCES_MAX = 5

_Field = TypeVar("_Field", DaysOfMonth, DaysOfWeek)


def parse_days_of_month(expression: str, text: str) -> DaysOfMonth:
    """Parse the day-of-month field; raise InvalidArgumentError(field="schedule") if invalid."""
    if text == "?":
        return DaysOfMonth(days=frozenset(range(1, 32)), unrestricted=True)
    items = split_items(expression, DAY_OF_MONTH, text)
    parsed = [_parse_day_of_month_item(expression, item) for item in items]
    return replace(_union(parsed), unrestricted=text.startswith("*"))


def parse_days_of_week(expression: str, text: str) -> DaysOfWeek:
    """Parse the day-of-week field; raise InvalidArgumentError(field="schedule") if invalid."""
    if text == "?":
        return DaysOfWeek(weekdays=frozenset(range(7)), unrestricted=True)
    items = split_items(expression, DAY_OF_WEEK, text)
    parsed = [_parse_day_of_week_item(expression, item) for item in items]
    return replace(_union(parsed), unrestricted=text.startswith("*"))


def _parse_day_of_month_item(expression: str, item: str) -> DaysOfMonth:
    if _LAST_WEEKDAY_OF_MONTH.fullmatch(item):
        return DaysOfMonth(days=frozenset(), last_weekday=True)
    if match := _LAST_DAY.fullmatch(item):
        before = int(match["before"] or 0)
        if before > _DAYS_BEFORE_LAST_MAX:
            raise invalid_schedule(
                expression,
                f"day-of-month item {item!r} is out of range; "
                f"use L-0 to L-{_DAYS_BEFORE_LAST_MAX} (days before the last day)",
            )
        return DaysOfMonth(days=frozenset(), days_before_last=frozenset({before}))
    if match := _NEAREST_WEEKDAY.fullmatch(item):
        target = parse_value(expression, DAY_OF_MONTH, match["day"])
        return DaysOfMonth(days=frozenset(), nearest_weekday_to=frozenset({target}))

    _reject_misplaced_question_mark(expression, "day-of-month", item)
    if "#" in item:
        raise invalid_schedule(
            expression,
            f"day-of-month item {item!r} uses '#' (nth weekday), "
            "which is allowed only in day-of-week",
        )
    if "L" in item.upper() or "W" in item.upper():
        raise invalid_schedule(
            expression,
            f"day-of-month item {item!r} is not supported; 'L' and 'W' work only in the forms "
            "L, L-3, 15W and LW, not in ranges or steps",
        )
    return DaysOfMonth(days=frozenset(parse_numeric_item(expression, DAY_OF_MONTH, item)))


def _parse_day_of_week_item(expression: str, item: str) -> DaysOfWeek:
    if match := _LAST_OF_WEEKDAY.fullmatch(item):
        weekday = parse_value(expression, DAY_OF_WEEK, match["weekday"]) % 7
        return DaysOfWeek(weekdays=frozenset(), last_weekdays=frozenset({weekday}))
    if match := _NTH_WEEKDAY.fullmatch(item):
        weekday = parse_value(expression, DAY_OF_WEEK, match["weekday"]) % 7
        occurrence = int(match["n"])
        if not 1 <= occurrence <= _OCCURRENCES_MAX:
            raise invalid_schedule(
                expression,
                f"day-of-week item {item!r} asks for occurrence {occurrence}, but a month has "
                f"1 to {_OCCURRENCES_MAX} of each weekday; use #1 to #{_OCCURRENCES_MAX}",
            )
        return DaysOfWeek(weekdays=frozenset(), nth_weekdays=frozenset({(weekday, occurrence)}))

    _reject_misplaced_question_mark(expression, "day-of-week", item)
    _reject_unsupported_day_of_week(expression, item)
    weekdays = parse_numeric_item(expression, DAY_OF_WEEK, item)
    return DaysOfWeek(weekdays=frozenset(weekday % 7 for weekday in weekdays))


def _reject_unsupported_day_of_week(expression: str, item: str) -> None:
    # The weekday names contain no L, so any L here is the `L` syntax.
    upper = item.upper()
    if upper == "L":
        raise invalid_schedule(
            expression,
            "day-of-week item 'L' is not supported; write 6 for every Saturday, "
            "or a weekday with L such as 5L for the last Friday of the month",
        )
    if re.fullmatch(r"[0-9]+W|LW", upper):
        raise invalid_schedule(
            expression,
            f"day-of-week item {item!r} uses 'W' (nearest weekday), "
            "which is allowed only in day-of-month",
        )
    if "L" in upper or "#" in upper:
        raise invalid_schedule(
            expression,
            f"day-of-week item {item!r} is not supported; 'L' and '#' apply to one weekday, "
            "as in 5L, FRIL or MON#2, not to ranges or steps; list them instead, "
            "such as MON#1,MON#3",
        )


def _reject_misplaced_question_mark(expression: str, field_name: str, item: str) -> None:
    if "?" in item:
        raise invalid_schedule(
            expression,
            f"{field_name} item {item!r}: '?' (no specific value) must be the whole field; "
            "write ? alone, or list the values",
        )


def _union(parts: list[_Field]) -> _Field:
    """Merge the parsed list items of one field, uniting each set and OR-ing each flag."""
    merged = parts[0]
    for part in parts[1:]:
        changes = {}
        for attribute in fields(part):
            name = attribute.name
            left, right = getattr(merged, name), getattr(part, name)
            changes[name] = left | right
        merged = replace(merged, **changes)
    return merged
