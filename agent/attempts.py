"""Running attempts: execution slots, cancellation, and handing results on.

The runner starts each assigned attempt as an asyncio task and passes the
FinishedAttempt to `on_finished` when the executor returns. An
InlineExecutor's attempt (`noop`) runs to its end inside `start` instead,
without a task. A finished attempt keeps its slot until the coordinator has
accepted its report (the `unreported` count), so an agent that finishes runs
faster than it can report them stops taking work instead of piling up
reports. A revoked lease cancels its attempt and drops the result; an
attempt still running at shutdown is cancelled and reported as FAILED.
"""

from __future__ import annotations

import asyncio
import enum
import functools
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from taskscheduler.clock import Clock
from taskscheduler.logs import get_logger

from .executors.base import AttemptContext, AttemptOutcome, AttemptResult, ExecutorRegistry
from .start_queue import StartQueue

_log = get_logger(__name__)

SHUTDOWN_ERROR = "agent shut down before the attempt finished"
NOT_STARTED_ERROR = "agent shut down before the attempt's start instant"
# Extra time an executor gets past the attempt's timeout before the runner
# cancels it, for executors that do not enforce the timeout themselves.
DEFAULT_TIMEOUT_MARGIN_S = 30.0


@dataclass(frozen=True, slots=True)
class Lease:
    """An agent's claim on one attempt; a newer fencing token makes older claims stale."""

    run_id: str
    attempt: int
    fencing_token: int

    @classmethod
    def of(cls, context: AttemptContext) -> Lease:
        return cls(context.run_id, context.attempt, context.fencing_token)


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishedAttempt:
    """An attempt's result with its lease and times, waiting to be reported."""

    lease: Lease
    job_id: str
    result: AttemptResult
    started_at: datetime
    completed_at: datetime


class _CancelReason(enum.Enum):
    REVOKED = "revoked"
    SHUTDOWN = "shutdown"


@dataclass(slots=True)
class _RunningAttempt:
    context: AttemptContext
    started_at: datetime
    task: asyncio.Task[AttemptResult] | None = None
    cancel_reason: _CancelReason | None = None


class NoFreeSlotError(RuntimeError):
    """An attempt was started while every execution slot was taken."""


class AttemptRunner:
    """Holds at most `max_concurrent` attempts at once, running or waiting to be reported.

    `unreported` returns how many finished attempts still wait for the
    coordinator to accept their reports. The owner of those reports (the
    outbox) calls `report_settled` each time one leaves.
    """

    def __init__(
        self,
        *,
        registry: ExecutorRegistry,
        max_concurrent: int,
        clock: Clock,
        on_finished: Callable[[FinishedAttempt], None],
        unreported: Callable[[], int] = lambda: 0,
        timeout_margin_s: float = DEFAULT_TIMEOUT_MARGIN_S,
    ) -> None:
        self._registry = registry
        self._timeout_margin_s = timeout_margin_s
        self._max_concurrent = max_concurrent
        self._clock = clock
        self._on_finished = on_finished
        self._unreported = unreported
        self._running: dict[Lease, _RunningAttempt] = {}
        self._waiting: StartQueue[Lease] = StartQueue(clock=clock, on_due=self._begin)
        self._slot_freed = asyncio.Event()

    @property
    def free_slots(self) -> int:
        return self._max_concurrent - len(self._running) - len(self._waiting) - self._unreported()

    def report_settled(self) -> None:
        """Free the slot of a finished attempt whose report was accepted or dropped."""
        self._slot_freed.set()

    def leases(self) -> list[Lease]:
        """Return the leases of the attempts running or waiting for their start instant."""
        return [*self._running, *self._waiting.leases()]

    async def wait_for_free_slots(self) -> int:
        """Wait until at least one slot is free and return how many are."""
        while self.free_slots <= 0:
            self._slot_freed.clear()
            await self._slot_freed.wait()
        return self.free_slots

    def start(self, context: AttemptContext, start_at: datetime | None = None) -> None:
        """Start executing the attempt, at `start_at` when that is still ahead.

        Raises NoFreeSlotError when every slot is taken. A waiting attempt
        takes its slot from now on.
        """
        if self.free_slots <= 0:
            raise NoFreeSlotError(
                f"no free slot for run {context.run_id} attempt {context.attempt}; "
                f"{self._max_concurrent} attempts are running"
            )
        lease = Lease.of(context)
        if lease in self._running or lease in self._waiting:
            _log.warning(
                "attempt already running; ignoring the repeated assignment",
                run_id=context.run_id,
                attempt=context.attempt,
                fencing_token=context.fencing_token,
            )
            return
        if start_at is not None and not self._waiting.is_due(start_at):
            self._waiting.add(lease, context, start_at)
            return
        self._begin(context)

    def _begin(self, context: AttemptContext) -> None:
        lease = Lease.of(context)
        # getattr, because isinstance() against a Protocol costs tens of microseconds.
        execute_inline = getattr(self._registry.get(context.executor), "execute_inline", None)
        if execute_inline is not None:
            self._execute_inline(lease, context, execute_inline)
            return
        running = _RunningAttempt(context=context, started_at=self._clock.now())
        self._running[lease] = running
        running.task = asyncio.create_task(
            self._call_executor(context), name=f"attempt-{context.run_id}-{context.attempt}"
        )
        running.task.add_done_callback(functools.partial(self._task_done, lease, running))
        # debug, like every per-run line of a success: at thousands of runs per
        # second, info lines would cost more than the runs.
        _log.debug(
            "attempt started",
            run_id=context.run_id,
            attempt=context.attempt,
            job_id=context.job_id,
            executor=context.executor,
        )

    def _execute_inline(
        self,
        lease: Lease,
        context: AttemptContext,
        execute_inline: Callable[[AttemptContext], AttemptResult],
    ) -> None:
        # No task, no timeout and no slot: the attempt ends before this returns.
        started_at = self._clock.now()
        try:
            result = execute_inline(context)
        except Exception as error:
            _log.exception("executor raised", run_id=context.run_id, attempt=context.attempt)
            result = AttemptResult.failed(f"executor {context.executor!r} raised {error!r}")
        self._finish(lease, context, started_at, result)

    def revoke(self, lease: Lease) -> bool:
        """Cancel the attempt under `lease` and drop its result; return whether it was running.

        An attempt still waiting for its start instant never starts.
        """
        waiting = self._waiting.discard(lease)
        if waiting is not None:
            self._slot_freed.set()
            self._finish(lease, waiting, self._clock.now(), None)
            return True
        running = self._running.get(lease)
        if running is None or running.task is None:
            return False
        running.cancel_reason = _CancelReason.REVOKED
        running.task.cancel()
        return True

    async def drain(self, grace_s: float) -> None:
        """Let running attempts finish within `grace_s`, then cancel the rest as FAILED.

        Attempts waiting for their start instant start at it when it comes
        within `grace_s`; the others are reported FAILED without starting.
        """
        deadline = self._clock.monotonic() + grace_s
        await self._waiting.wait_started(grace_s)
        for context in self._waiting.drop_all():
            self._slot_freed.set()
            now = self._clock.now()
            self._finish(Lease.of(context), context, now, AttemptResult.failed(NOT_STARTED_ERROR))
        tasks = [r.task for r in self._running.values() if r.task is not None]
        remaining_s = max(0.0, deadline - self._clock.monotonic())
        if tasks:
            _log.info(
                "waiting for running attempts", running=len(tasks), grace_s=round(remaining_s, 1)
            )
            await asyncio.wait(tasks, timeout=remaining_s)

        leftovers = list(self._running.values())
        for running in leftovers:
            # A revoked attempt still stopping keeps its reason, so its result stays dropped.
            if running.cancel_reason is None:
                running.cancel_reason = _CancelReason.SHUTDOWN
            if running.task is not None:
                running.task.cancel()
        remaining = [r.task for r in leftovers if r.task is not None]
        if remaining:
            _log.warning("stopping attempts still running at shutdown", running=len(remaining))
            await asyncio.wait(remaining)

    def _task_done(
        self, lease: Lease, running: _RunningAttempt, task: asyncio.Task[AttemptResult]
    ) -> None:
        # A done callback rather than a `finally`, because a task cancelled before
        # its first step never enters its coroutine, and its slot must be freed too.
        del self._running[lease]
        self._slot_freed.set()
        if not task.cancelled():
            result: AttemptResult | None = task.result()
        elif running.cancel_reason is _CancelReason.REVOKED:
            result = None
        else:
            result = AttemptResult.failed(SHUTDOWN_ERROR)
        self._finish(lease, running.context, running.started_at, result)

    async def _call_executor(self, context: AttemptContext) -> AttemptResult:
        """Run the executor, turning any exception other than cancellation into a FAILED result."""
        executor = self._registry.get(context.executor)
        if executor is None:
            return AttemptResult.failed(
                f"executor {context.executor!r} is not available on this agent; "
                f"it has: {', '.join(self._registry.names())}"
            )
        limit_s = None if context.timeout_s is None else context.timeout_s + self._timeout_margin_s
        scope = asyncio.timeout(limit_s)
        try:
            async with scope:
                return await executor.execute(context)
        except Exception as error:
            if isinstance(error, TimeoutError) and scope.expired():
                return AttemptResult(
                    outcome=AttemptOutcome.TIMED_OUT,
                    error=f"executor {context.executor!r} did not stop at its "
                    f"{context.timeout_s:g} s timeout and was cancelled",
                )
            # A broken executor fails its attempt, never the agent.
            _log.exception("executor raised", run_id=context.run_id, attempt=context.attempt)
            return AttemptResult.failed(f"executor {context.executor!r} raised {error!r}")

    def _finish(
        self,
        lease: Lease,
        context: AttemptContext,
        started_at: datetime,
        result: AttemptResult | None,
    ) -> None:
        if result is None:
            _log.warning(
                "lease revoked; attempt stopped and its result dropped",
                run_id=context.run_id,
                attempt=context.attempt,
                job_id=context.job_id,
                fencing_token=context.fencing_token,
            )
            return
        log_finished = _log.debug if result.outcome is AttemptOutcome.SUCCEEDED else _log.info
        log_finished(
            "attempt finished",
            run_id=context.run_id,
            attempt=context.attempt,
            job_id=context.job_id,
            outcome=result.outcome.value,
            exit_code=result.exit_code,
            error=result.error or None,
        )
        self._on_finished(
            FinishedAttempt(
                lease=lease,
                job_id=context.job_id,
                result=result,
                started_at=started_at,
                completed_at=self._clock.now(),
            )
        )
