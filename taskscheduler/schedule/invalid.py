"""The error raised for a schedule expression that cannot be used."""

from __future__ import annotations

from taskscheduler.errors import InvalidArgumentError

_QUOTED_LENGTH_MAX = 100


def invalid_schedule(expression: str, problem: str) -> InvalidArgumentError:
    """Return an InvalidArgumentError for field "schedule" that quotes the expression.

    `problem` states what is wrong and how to fix it, as in
    "minute 61 is out of range 0-59".
    """
    quoted = expression
    if len(quoted) > _QUOTED_LENGTH_MAX:
        quoted = quoted[:_QUOTED_LENGTH_MAX] + "..."
    return InvalidArgumentError("schedule", f"schedule {quoted!r}: {problem}")
