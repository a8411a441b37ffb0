"""Parsing of 5-field cron expressions and cron macros into CronFields.

Accepted: values, ranges (`1-5`), lists (`1,15`), steps (`*/5`, `1-10/2`,
and `5/15` meaning `5-59/15`), three-letter month and weekday names in any
case (`JAN`, `mon-fri`), and 0 or 7 for Sunday. Not accepted yet: a sixth
(seconds) field, `L`, `W`, `#` and `?`. An expression that can never fire,
such as `0 0 30 2 *`, is rejected.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from taskscheduler.schedule.cron_fields import CronFields
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
_EXAMPLE = "'0 9 * * *'"

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
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
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# February counts 29 days because it has them in leap years.
_DAYS_IN_MONTH_MAX = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

_ITEM = re.compile(r"(?P<start>[^-/]+)(?:-(?P<end>[^-/]+))?(?:/(?P<step>[^-/]*))?")
_NUMBER = re.compile(r"[0-9]{1,9}")
_LAST_OR_WEEKDAY = re.compile(r"[0-9]*L|LW|L-[0-9]+|[0-9]+W", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class _FieldSpec:
    name: str
    minimum: int
    maximum: int
    names: Mapping[str, int] = field(default_factory=dict)
    range_note: str = ""


_FIELDS = (
    _FieldSpec("minute", 0, 59),
    _FieldSpec("hour", 0, 23),
    _FieldSpec("day-of-month", 1, 31),
    _FieldSpec("month", 1, 12, {name: i for i, name in enumerate(_MONTH_NAMES, start=1)}),
    _FieldSpec(
        "day-of-week",
        0,
        7,
        {name: i for i, name in enumerate(_DAY_NAMES)},
        range_note=" (0 and 7 are Sunday)",
    ),
)


def parse_cron(expression: str) -> CronFields:
    """Parse a 5-field cron expression or a macro such as @daily (not @every).

    Raises InvalidArgumentError(field="schedule") naming the bad part and the fix.
    """
    parts = _expand_macro(expression).split()
    _check_field_count(expression, parts)
    minutes, hours, days_of_month, months, days_of_week = (
        _parse_field(expression, spec, text) for spec, text in zip(_FIELDS, parts, strict=True)
    )
    fields = CronFields(
        minutes=minutes,
        hours=hours,
        days_of_month=days_of_month,
        months=months,
        days_of_week=tuple(sorted({day % 7 for day in days_of_week})),
        day_of_month_unrestricted=parts[2].startswith("*"),
        day_of_week_unrestricted=parts[4].startswith("*"),
        hour_follows_elapsed_time=parts[1].startswith("*") or "/" in parts[1],
    )
    _check_fires(expression, fields, parts[2])
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
    if len(parts) == 6:
        raise invalid_schedule(
            expression,
            "6-field cron expressions (with a seconds field) are not supported yet; "
            f"use 5 fields ({_FIELD_NAMES}), such as {_EXAMPLE}",
        )
    if len(parts) != 5:
        noun = "field" if len(parts) == 1 else "fields"
        raise invalid_schedule(
            expression,
            f"has {len(parts)} {noun}, but a cron expression has 5 ({_FIELD_NAMES}), "
            f"such as {_EXAMPLE}",
        )


def _parse_field(expression: str, spec: _FieldSpec, text: str) -> tuple[int, ...]:
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(expression, spec, item))
    return tuple(sorted(values))


def _parse_item(expression: str, spec: _FieldSpec, item: str) -> range:
    if item == "":
        raise invalid_schedule(
            expression,
            f"{spec.name} field has an empty list item; separate values with single commas, "
            "such as 1,15",
        )
    _reject_unsupported(expression, spec, item)
    match = _ITEM.fullmatch(item)
    if match is None:
        raise invalid_schedule(
            expression,
            f"{spec.name} item {item!r} is not a value, range or step; "
            "use forms such as 5, 1-5, */15 or 1-10/2",
        )
    start_text, end_text, step_text = match.group("start", "end", "step")
    step = 1 if step_text is None else _parse_step(expression, spec, item, step_text)

    if start_text == "*":
        if end_text is not None:
            raise invalid_schedule(
                expression,
                f"{spec.name} item {item!r} is invalid; write '*' or a range such as 1-5",
            )
        return range(spec.minimum, spec.maximum + 1, step)

    low = _parse_value(expression, spec, start_text)
    if end_text is None:
        # `5/15` is the common shorthand for `5-<maximum>/15`.
        high = spec.maximum if step_text is not None else low
        return range(low, high + 1, step)
    high = _parse_value(expression, spec, end_text)
    if high < low:
        raise invalid_schedule(
            expression,
            f"{spec.name} range {start_text}-{end_text} runs backwards; write it as two ranges, "
            f"{start_text}-{spec.maximum},{spec.minimum}-{end_text}",
        )
    return range(low, high + 1, step)


def _reject_unsupported(expression: str, spec: _FieldSpec, item: str) -> None:
    if "?" in item:
        raise invalid_schedule(
            expression, f"{spec.name} item {item!r}: '?' is not supported; use '*' instead"
        )
    if "#" in item:
        feature = "'#' (nth weekday of the month, as in 5#3)"
    elif _LAST_OR_WEEKDAY.fullmatch(item) and "W" in item.upper():
        feature = "'W' (nearest weekday)"
    elif _LAST_OR_WEEKDAY.fullmatch(item):
        feature = "'L' (last day)"
    else:
        return
    raise invalid_schedule(
        expression,
        f"{spec.name} item {item!r} uses {feature}, which is not supported yet; "
        "list the values explicitly",
    )


def _parse_step(expression: str, spec: _FieldSpec, item: str, text: str) -> int:
    step = int(text) if _NUMBER.fullmatch(text) else 0
    if step < 1:
        raise invalid_schedule(
            expression,
            f"{spec.name} step {text!r} in {item!r} must be a whole number of at least 1, "
            "such as */5",
        )
    return step


def _parse_value(expression: str, spec: _FieldSpec, text: str) -> int:
    if not _NUMBER.fullmatch(text):
        named = spec.names.get(text.lower())
        if named is not None:
            return named
        raise invalid_schedule(expression, _invalid_value_problem(spec, text))
    value = int(text)
    if not spec.minimum <= value <= spec.maximum:
        raise invalid_schedule(
            expression,
            f"{spec.name} {value} is out of range {spec.minimum}-{spec.maximum}{spec.range_note}",
        )
    return value


def _invalid_value_problem(spec: _FieldSpec, text: str) -> str:
    if text.isascii() and text.isdigit():
        return f"{spec.name} {text[:20]} is out of range {spec.minimum}-{spec.maximum}"
    allowed = f"a number {spec.minimum}-{spec.maximum}"
    if spec.names:
        examples = ", ".join(list(spec.names)[:3])
        allowed += f" or a three-letter name such as {examples}"
    return f"{spec.name} value {text!r} is invalid; use {allowed}"


def _check_fires(expression: str, fields: CronFields, day_of_month_text: str) -> None:
    """Reject day-of-month and month fields that no calendar date satisfies.

    Only this combination can make a 5-field expression never fire: a restricted
    day-of-week matches some day of every month, an unrestricted day-of-month
    contains day 1, and each existing date falls on every weekday in some year.
    """
    if fields.day_of_month_unrestricted or not fields.day_of_week_unrestricted:
        return
    for month in fields.months:
        if fields.days_of_month[0] <= _DAYS_IN_MONTH_MAX[month - 1]:
            return
    month_names = [_MONTH_FULL_NAMES[month - 1] for month in fields.months]
    listed = month_names[-1]
    if len(month_names) > 1:
        listed = ", ".join(month_names[:-1]) + " or " + listed
    raise invalid_schedule(
        expression,
        f"never fires, because day-of-month {day_of_month_text} does not occur in {listed}; "
        f"choose a day that exists in {listed}",
    )
