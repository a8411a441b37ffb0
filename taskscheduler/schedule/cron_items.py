"""The numeric forms of cron fields: values, names, ranges, lists and steps.

Accepted in every field: values, ranges (`1-5`), lists (`1,15`), steps (`*/5`,
`1-10/2`, and `5/15` meaning `5-59/15`), and three-letter month and weekday
names in any case (`JAN`, `mon-fri`). The day fields also take `L`, `W`, `#`
and `?`, parsed by taskscheduler.schedule.cron_day_parse; the other fields
reject them here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from taskscheduler.schedule.invalid import invalid_schedule

_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")

_ITEM = re.compile(r"(?P<start>[^-/]+)(?:-(?P<end>[^-/]+))?(?:/(?P<step>[^-/]*))?")
_NUMBER = re.compile(r"[0-9]{1,9}")
_LAST_OR_WEEKDAY = re.compile(r"[0-9]*L|LW|L-[0-9]+|[0-9]+W", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One cron field: its name in messages, its value range and its names."""

    name: str
    minimum: int
    maximum: int
    names: Mapping[str, int] = field(default_factory=dict)
    range_note: str = ""


SECOND = FieldSpec("second", 0, 59)
MINUTE = FieldSpec("minute", 0, 59)
HOUR = FieldSpec("hour", 0, 23)
DAY_OF_MONTH = FieldSpec("day-of-month", 1, 31)
MONTH = FieldSpec("month", 1, 12, {name: i for i, name in enumerate(_MONTH_NAMES, start=1)})
DAY_OF_WEEK = FieldSpec(
    "day-of-week",
    0,
    7,
    {name: i for i, name in enumerate(_DAY_NAMES)},
    range_note=" (0 and 7 are Sunday)",
)


def split_items(expression: str, spec: FieldSpec, text: str) -> list[str]:
    """Split a field at its commas, rejecting empty list items."""
    items = text.split(",")
    if "" in items:
        raise invalid_schedule(
            expression,
            f"{spec.name} field has an empty list item; separate values with single commas, "
            "such as 1,15",
        )
    return items


def parse_numeric_field(expression: str, spec: FieldSpec, text: str) -> tuple[int, ...]:
    """Parse a field without `L`, `W`, `#` or `?` into its sorted values."""
    values: set[int] = set()
    for item in split_items(expression, spec, text):
        _reject_day_syntax(expression, spec, item)
        values.update(parse_numeric_item(expression, spec, item))
    return tuple(sorted(values))


def parse_numeric_item(expression: str, spec: FieldSpec, item: str) -> range:
    """Parse one value, range or step of a list into the values it selects."""
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

    low = parse_value(expression, spec, start_text)
    if end_text is None:
        # `5/15` is the common shorthand for `5-<maximum>/15`.
        high = spec.maximum if step_text is not None else low
        return range(low, high + 1, step)
    high = parse_value(expression, spec, end_text)
    if high < low:
        raise invalid_schedule(
            expression,
            f"{spec.name} range {start_text}-{end_text} runs backwards; write it as two ranges, "
            f"{start_text}-{spec.maximum},{spec.minimum}-{end_text}",
        )
    return range(low, high + 1, step)


def parse_value(expression: str, spec: FieldSpec, text: str) -> int:
    """Parse a number or a name of `spec`, checking its range."""
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


def _reject_day_syntax(expression: str, spec: FieldSpec, item: str) -> None:
    if "?" in item:
        feature, allowed_in = "'?' (no specific value)", "as the whole day-of-month or day-of-week"
    elif "#" in item:
        feature, allowed_in = "'#' (nth weekday)", "in day-of-week"
    elif _LAST_OR_WEEKDAY.fullmatch(item) and "W" in item.upper():
        feature, allowed_in = "'W' (nearest weekday)", "in day-of-month"
    elif _LAST_OR_WEEKDAY.fullmatch(item):
        feature, allowed_in = "'L' (last)", "in day-of-month and day-of-week"
    else:
        return
    raise invalid_schedule(
        expression, f"{spec.name} item {item!r} uses {feature}, which is allowed only {allowed_in}"
    )


def _parse_step(expression: str, spec: FieldSpec, item: str, text: str) -> int:
    step = int(text) if _NUMBER.fullmatch(text) else 0
    if step < 1:
        raise invalid_schedule(
            expression,
            f"{spec.name} step {text!r} in {item!r} must be a whole number of at least 1, "
            "such as */5",
        )
    return step


def _invalid_value_problem(spec: FieldSpec, text: str) -> str:
    if text.isascii() and text.isdigit():
        return f"{spec.name} {text[:20]} is out of range {spec.minimum}-{spec.maximum}"
    allowed = f"a number {spec.minimum}-{spec.maximum}"
    if spec.names:
        examples = ", ".join(list(spec.names)[:3])
        allowed += f" or a three-letter name such as {examples}"
    return f"{spec.name} value {text!r} is invalid; use {allowed}"
