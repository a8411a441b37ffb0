"""The outbox: finished attempts waiting for the coordinator to accept their report.

A report leaves the outbox only when CompleteAttempt succeeds, or when the
coordinator rejects it for good. FAILED_PRECONDITION means the lease is
stale and another attempt owns the run now, NOT_FOUND means the run is
gone, and INVALID_ARGUMENT means retrying cannot fix the request. Any other
failure, an unreachable coordinator included, is retried with backoff, so a
coordinator that is away loses no result.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable

import grpc
from structlog.typing import FilteringBoundLogger

from taskscheduler.clock import Clock
from taskscheduler.logs import get_logger
from taskscheduler.v1 import types_pb2

from .attempts import FinishedAttempt, Lease
from .backoff import Backoff, RetryPolicy
from .connection import CoordinatorClient
from .protocol import completion_to_proto

_log = get_logger(__name__)

_CALL_TIMEOUT_S = 10.0


class Outbox:
    """Reports finished attempts in the order they finished, one at a time."""

    def __init__(
        self,
        *,
        client: CoordinatorClient,
        worker_id: Callable[[], str],
        retry: RetryPolicy,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        self._client = client
        self._worker_id = worker_id
        self._retry = retry
        self._clock = clock
        self._rng = rng or random.Random()
        self._pending: OrderedDict[Lease, FinishedAttempt] = OrderedDict()
        self._changed = asyncio.Event()

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, finished: FinishedAttempt) -> None:
        self._pending[finished.lease] = finished
        self._changed.set()

    def discard(self, lease: Lease) -> bool:
        """Drop the report under `lease` (its lease was revoked); return whether it was pending."""
        found = self._pending.pop(lease, None) is not None
        self._changed.set()
        return found

    def leases(self) -> list[Lease]:
        """Leases of reports not yet accepted; heartbeats keep them alive until delivery."""
        return list(self._pending)

    async def run(self) -> None:
        """Deliver reports until cancelled."""
        backoff = Backoff(self._retry, self._rng)
        while True:
            if not self._pending:
                self._changed.clear()
                await self._changed.wait()
                continue
            lease, finished = next(iter(self._pending.items()))
            if await self._deliver(finished):
                # A revocation may have discarded it during the call.
                self._pending.pop(lease, None)
                self._changed.set()
                backoff.reset()
            else:
                await self._clock.sleep(backoff.next_delay_s())

    async def wait_empty(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for every report to leave; return whether the outbox is empty."""
        try:
            async with asyncio.timeout(timeout_s):
                while self._pending:
                    self._changed.clear()
                    await self._changed.wait()
        except TimeoutError:
            return False
        return True

    async def _deliver(self, finished: FinishedAttempt) -> bool:
        """Send one report; return True when it is done with (accepted or rejected for good)."""
        lease = finished.lease
        log = _log.bind(
            run_id=lease.run_id,
            attempt=lease.attempt,
            job_id=finished.job_id,
            fencing_token=lease.fencing_token,
        )
        request = completion_to_proto(self._worker_id(), finished)
        try:
            response = await self._client.call(
                "CompleteAttempt", request, timeout_s=_CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            return _handle_rejection(log, error)

        log.debug("attempt reported", run_status=types_pb2.RunStatus.Name(response.run_status))
        return True


def _handle_rejection(log: FilteringBoundLogger, error: grpc.aio.AioRpcError) -> bool:
    code = error.code()
    # A follower without a known leader returns UNAVAILABLE, which the client
    # retries, so FAILED_PRECONDITION here means the lease itself is stale.
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        log.warning("lease is stale; dropping the attempt's result", details=error.details())
        return True
    if code == grpc.StatusCode.NOT_FOUND:
        log.warning("run not found; dropping the attempt's result", details=error.details())
        return True
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        log.error("coordinator rejected the report; dropping it", details=error.details())
        return True
    log.warning("reporting the attempt failed; retrying", code=code.name, details=error.details())
    return False
