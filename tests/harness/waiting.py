"""Wait for a condition with a deadline, instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

T = TypeVar("T")


def _timeout_error(message: str, timeout_s: float, last_value: object) -> AssertionError:
    return AssertionError(f"{message}: not met within {timeout_s} s; last value: {last_value!r}")


def wait_until(
    predicate: Callable[[], T],
    timeout_s: float,
    interval_s: float = 0.1,
    message: str = "condition",
) -> T:
    """Call `predicate` every `interval_s` until it returns a truthy value, and return that value.

    An exception from `predicate`, an AssertionError included, counts as
    "not yet". After `timeout_s` this raises AssertionError with `message`
    and the last value or exception seen.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value: Any = predicate()
        except Exception as error:
            value = error
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise _timeout_error(message, timeout_s, value)
        time.sleep(interval_s)


async def wait_until_async(
    predicate: Callable[[], T | Awaitable[T]],
    timeout_s: float,
    interval_s: float = 0.1,
    message: str = "condition",
) -> T:
    """Like `wait_until`, but `predicate` may return an awaitable and the waits do not block."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            value: Any = predicate()
            if inspect.isawaitable(value):
                value = await value
        except Exception as error:
            value = error
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise _timeout_error(message, timeout_s, value)
        await asyncio.sleep(interval_s)
