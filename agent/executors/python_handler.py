"""Python handlers as executors: a registered callable runs each attempt.

The job's payload (a JSON object) is passed as keyword arguments. A handler
that declares a parameter named `context` also receives a RunContext with
the run's ids and the lease's fencing token, so it can key its side effects
to make them idempotent. For such a handler, a payload key named `context`
fails the attempt. What the handler returns becomes the attempt's result
(see handler_result).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskscheduler.logs import get_logger

from . import threads
from .base import AttemptContext, AttemptOutcome, AttemptResult
from .handler_result import failed_by, succeeded_with
from .threads import DaemonThreadPool

_log = get_logger(__name__)

CONTEXT_PARAMETER = "context"
_NAMED_PARAMETER_KINDS = (
    inspect.Parameter.POSITIONAL_OR_KEYWORD,
    inspect.Parameter.KEYWORD_ONLY,
)
# The agent's frames that call a handler; a handler's traceback starts below them.
_CALLING_MODULES = frozenset(
    {__name__, threads.__name__, "asyncio.futures", "asyncio.tasks", "asyncio.timeouts"}
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RunContext:
    """The attempt a handler call belongs to.

    `fencing_token` grows with every new lease on the run, and runs assigned
    together may share a value, so key idempotent side effects with
    (`run_id`, `fencing_token`).
    """

    run_id: str
    job_id: str
    attempt: int
    fencing_token: int
    # When the run was due (UTC); None when the assignment carried no time.
    scheduled_at: datetime | None


class PythonHandlerExecutor:
    """Runs one handler: coroutine functions on the event loop, plain functions on threads.

    Timeout (the job's `timeout`) and cancellation (lease revoked, agent
    shutting down) cancel a coroutine. A plain function cannot be stopped
    from outside its thread: the attempt ends at once, as timed out or
    cancelled, and the thread keeps running until the function returns,
    with a warning logged. Such a thread still counts against the pool's
    `max_threads`. The pool's threads are daemons, so one that never
    returns does not keep the agent from exiting.
    """

    def __init__(self, name: str, function: Callable[..., Any], *, pool: DaemonThreadPool) -> None:
        self._name = name
        self._function = function
        self._pool = pool
        self._is_coroutine = _is_coroutine_function(function)
        self._takes_context = _takes_context(function)

    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        arguments = self._arguments(attempt)
        if isinstance(arguments, AttemptResult):
            return arguments

        scope = asyncio.timeout(attempt.timeout_s)
        try:
            async with scope:
                if self._is_coroutine:
                    value = await self._function(**arguments)
                else:
                    value = await self._call_in_thread(attempt, arguments)
        except TimeoutError as error:
            if scope.expired():
                return self._timed_out(attempt)
            return failed_by(error, skip_modules=_CALLING_MODULES)
        # A handler that calls sys.exit() fails its attempt, not the agent.
        except (Exception, SystemExit) as error:
            return failed_by(error, skip_modules=_CALLING_MODULES)
        return succeeded_with(value)

    async def aclose(self) -> None:
        self._pool.shutdown()

    def _arguments(self, attempt: AttemptContext) -> dict[str, Any] | AttemptResult:
        arguments = dict(attempt.payload)
        if not self._takes_context:
            return arguments
        if CONTEXT_PARAMETER in arguments:
            return AttemptResult.failed(
                f"invalid payload.{CONTEXT_PARAMETER}: handler {self._name!r} takes a "
                f"{CONTEXT_PARAMETER!r} parameter for the run's ids, so the payload cannot "
                "set it; rename the key"
            )
        arguments[CONTEXT_PARAMETER] = RunContext(
            run_id=attempt.run_id,
            job_id=attempt.job_id,
            attempt=attempt.attempt,
            fencing_token=attempt.fencing_token,
            scheduled_at=attempt.scheduled_at,
        )
        return arguments

    async def _call_in_thread(self, attempt: AttemptContext, arguments: dict[str, Any]) -> Any:
        # The copied context carries the agent's bound log fields into the thread.
        call = functools.partial(contextvars.copy_context().run, self._function, **arguments)
        future = self._pool.submit(call)
        try:
            value = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self._abandon(attempt, future)
            raise
        # A plain function may return a coroutine, as a decorated coroutine function does.
        if inspect.isawaitable(value):
            value = await value
        return value

    def _abandon(self, attempt: AttemptContext, future: Future[Any]) -> None:
        # cancel() succeeds only for a call no thread has started yet.
        if future.cancel() or future.done():
            return
        _log.warning(
            "attempt stopped, but its handler keeps running in a thread until it returns",
            run_id=attempt.run_id,
            attempt=attempt.attempt,
            job_id=attempt.job_id,
            executor=self._name,
        )

    def _timed_out(self, attempt: AttemptContext) -> AttemptResult:
        detail = "" if self._is_coroutine else "; a call already running in a thread goes on"
        return AttemptResult(
            outcome=AttemptOutcome.TIMED_OUT,
            error=f"handler {self._name!r} timed out after {attempt.timeout_s:g} s{detail}",
        )


def _is_coroutine_function(function: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    # An instance of a class whose __call__ is a coroutine function.
    return inspect.iscoroutinefunction(type(function).__call__)


def _takes_context(function: Callable[..., Any]) -> bool:
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):
        # Some built-in callables have no signature; they get no context.
        return False
    parameter = parameters.get(CONTEXT_PARAMETER)
    return parameter is not None and parameter.kind in _NAMED_PARAMETER_KINDS
