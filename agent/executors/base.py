"""The executor contract: what an attempt gets, what it returns, and the registry by name.

An executor is any object with `async def execute(self, attempt: AttemptContext)
-> AttemptResult`. It enforces `attempt.timeout_s` itself and returns a
TIMED_OUT result when it runs out. When the agent cancels the coroutine (lease
revoked, agent shutting down), the executor stops what it started and lets
CancelledError propagate. A bad payload is a FAILED result, never an exception.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from taskscheduler.errors import AlreadyExistsError, InvalidArgumentError

# The coordinator's rule for a job's `executor` field: 1 to 64 characters.
EXECUTOR_NAME = re.compile(r"^[a-z][a-z0-9_.-]{0,63}$")


class AttemptOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timeout"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptContext:
    """The executor's input: one attempt of one run."""

    run_id: str
    job_id: str
    job_name: str
    attempt: int
    fencing_token: int
    executor: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    # None means no limit.
    timeout_s: float | None = None
    scheduled_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AttemptResult:
    """The end of an attempt: outcome, exit code, output (at most the last 64 KiB, UTF-8), error.

    `result` is the JSON data a Python handler returned (dicts, lists, str,
    int, float, bool, None), or None when the attempt has no result.
    """

    outcome: AttemptOutcome
    exit_code: int = 0
    output: str = ""
    error: str = ""
    result: Any = None

    @classmethod
    def failed(cls, error: str, *, exit_code: int = 0, output: str = "") -> AttemptResult:
        return cls(outcome=AttemptOutcome.FAILED, exit_code=exit_code, output=output, error=error)

    @classmethod
    def invalid_payload(cls, error: InvalidArgumentError) -> AttemptResult:
        return cls.failed(f"invalid {error.field}: {error.message}")


class Executor(Protocol):
    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        """Run the attempt to its end, its timeout, or cancellation."""
        ...


class InlineExecutor(Protocol):
    """An executor whose attempts end without waiting for anything, such as `noop`.

    The runner calls `execute_inline`, when an executor has it, in place of
    starting a task, so such an attempt takes no execution slot, has no
    timeout and cannot be cancelled.
    """

    def execute_inline(self, attempt: AttemptContext) -> AttemptResult: ...


class ExecutorRegistry:
    """Executors by the name a job's `executor` field uses, such as `shell`, `http` or `noop`.

    A Python handler is registered the same way, wrapped in a PythonHandlerExecutor.
    """

    def __init__(self) -> None:
        self._executors: dict[str, Executor] = {}

    def register(self, name: str, executor: Executor) -> None:
        """Add `executor` under `name`; a taken or malformed name raises."""
        if not EXECUTOR_NAME.match(name):
            raise InvalidArgumentError(
                "executor",
                f"executor name {name!r} is invalid; use 1-64 lowercase letters, digits, "
                "'_', '.' or '-', starting with a letter",
            )
        if name in self._executors:
            raise AlreadyExistsError("executor", name, field="executor")
        self._executors[name] = executor

    def get(self, name: str) -> Executor | None:
        return self._executors.get(name)

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._executors))

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    async def aclose(self) -> None:
        """Close every executor that owns resources (it has an `aclose` coroutine method)."""
        for executor in self._executors.values():
            close = getattr(executor, "aclose", None)
            if close is not None:
                await close()
