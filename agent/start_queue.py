"""Attempts handed out before they are due, waiting for their start instant.

The coordinator may hand a run to an agent shortly before it is due
(`Assignment.start_at`), so that the assignment's round trip and etcd
write happen before the slot instead of after it. From then on the
attempt holds an execution slot and its lease, which the agent heartbeats,
and it starts at its instant and not before. Attempts due at the same
instant share one timer, so a burst of runs on one slot starts in a single
pass over the burst.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Hashable
from datetime import datetime, timedelta
from typing import Generic, TypeVar

from taskscheduler.clock import Clock
from taskscheduler.logs import get_logger

from .executors.base import AttemptContext

_log = get_logger(__name__)

# The coordinator hands a run out at most --hand-ahead-ms (up to 1000) early.
# A later start_at means the two clocks disagree; the wait is cut to this.
MAX_START_WAIT_S = 1.0

LeaseKey = TypeVar("LeaseKey", bound=Hashable)


class StartQueue(Generic[LeaseKey]):
    """Waiting attempts keyed by their lease, started by `on_due` at their instant."""

    def __init__(self, *, clock: Clock, on_due: Callable[[AttemptContext], None]) -> None:
        self._clock = clock
        self._on_due = on_due
        self._waiting: dict[LeaseKey, AttemptContext] = {}
        self._by_instant: dict[datetime, list[LeaseKey]] = {}
        self._timers: dict[datetime, asyncio.Task[None]] = {}

    def __len__(self) -> int:
        return len(self._waiting)

    def __contains__(self, lease: object) -> bool:
        return lease in self._waiting

    def leases(self) -> list[LeaseKey]:
        return list(self._waiting)

    def is_due(self, start_at: datetime | None) -> bool:
        """Return whether an attempt with this start instant may start now."""
        return start_at is None or start_at <= self._clock.now()

    def add(self, lease: LeaseKey, context: AttemptContext, start_at: datetime) -> None:
        """Hold the attempt until `start_at`, or MAX_START_WAIT_S from now if that is sooner."""
        latest = self._clock.now() + timedelta(seconds=MAX_START_WAIT_S)
        if start_at > latest:
            _log.warning(
                "start instant too far ahead; the agent's and coordinator's clocks may differ",
                run_id=context.run_id,
                attempt=context.attempt,
                start_at=start_at.isoformat(),
                max_wait_s=MAX_START_WAIT_S,
            )
            start_at = latest
        self._waiting[lease] = context
        group = self._by_instant.get(start_at)
        if group is None:
            group = self._by_instant[start_at] = []
            self._timers[start_at] = asyncio.create_task(
                self._start_when_due(start_at), name=f"start at {start_at.isoformat()}"
            )
        group.append(lease)
        _log.debug(
            "attempt waits for its start instant",
            run_id=context.run_id,
            attempt=context.attempt,
            job_id=context.job_id,
            start_at=start_at.isoformat(),
        )

    def discard(self, lease: LeaseKey) -> AttemptContext | None:
        """Forget a waiting attempt without starting it; return it, or None if not waiting."""
        return self._waiting.pop(lease, None)

    async def wait_started(self, timeout_s: float) -> None:
        """Wait until every waiting attempt has been started, at most `timeout_s`.

        The timer of an instant whose attempts were all revoked is not waited for.
        """
        if timeout_s <= 0:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                while self._waiting and self._timers:
                    timers = list(self._timers.values())
                    await asyncio.wait(timers, return_when=asyncio.FIRST_COMPLETED)

    def drop_all(self) -> list[AttemptContext]:
        """Stop every timer and return the attempts that never started."""
        for timer in self._timers.values():
            timer.cancel()
        dropped = list(self._waiting.values())
        self._waiting.clear()
        self._by_instant.clear()
        self._timers.clear()
        return dropped

    async def _start_when_due(self, instant: datetime) -> None:
        # The loop re-reads the wall clock, because a monotonic sleep can end
        # a little before the wall-clock instant.
        while (delay_s := (instant - self._clock.now()).total_seconds()) > 0:
            await self._clock.sleep(delay_s)
        self._timers.pop(instant, None)
        for lease in self._by_instant.pop(instant, ()):
            context = self._waiting.pop(lease, None)
            if context is None:
                continue
            try:
                self._on_due(context)
            except Exception:
                _log.exception(
                    "could not start an attempt at its instant",
                    run_id=context.run_id,
                    attempt=context.attempt,
                    job_id=context.job_id,
                )
