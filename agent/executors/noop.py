"""The built-in `noop` executor: accepts any payload, does nothing and succeeds.

It exists to measure the scheduler itself, so its path is as short as an
executor's can be: no task, no thread, no subprocess, no payload parsing,
and one shared result object for every attempt.
"""

from __future__ import annotations

from .base import AttemptContext, AttemptOutcome, AttemptResult

NOOP_EXECUTOR = "noop"

_SUCCEEDED = AttemptResult(outcome=AttemptOutcome.SUCCEEDED)


class NoopExecutor:
    """Succeeds at once without a result, whatever the payload.

    It is an InlineExecutor, so the runner calls `execute_inline` and starts
    no task for it; `execute` serves callers that expect any Executor.
    """

    def execute_inline(self, attempt: AttemptContext) -> AttemptResult:
        return _SUCCEEDED

    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        return _SUCCEEDED
