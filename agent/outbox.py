"""The outbox: finished attempts waiting for the coordinator to accept their report.

Every pending report goes out in one CompleteAttempts call (up to
MAX_REPORTS_PER_CALL reports and MAX_CALL_BYTES per call), and the
coordinator judges each report on its own. A report leaves the outbox when
it is accepted, or when it is rejected for good. FAILED_PRECONDITION means
the lease is stale and another attempt owns the run now. NOT_FOUND means
the run is gone. INVALID_ARGUMENT means retrying cannot fix the report,
unless its field is `workerId`: the coordinator does not know this agent
(yet), and the heartbeat registers it again. Any other failure, an
unreachable coordinator included, is retried with backoff, so a coordinator
that is away loses no result.

A coordinator without CompleteAttempts returns UNIMPLEMENTED. The outbox
then sends one CompleteAttempt per report to that address, with the same
rules, and tries the batched call again only after the client has moved to
another coordinator.
"""

from __future__ import annotations

import asyncio
import random
from collections import OrderedDict
from collections.abc import Callable

import grpc

from taskscheduler.clock import Clock
from taskscheduler.grpc_status import field_of
from taskscheduler.logs import get_logger
from taskscheduler.v1 import types_pb2, workers_pb2

from .attempts import FinishedAttempt, Lease
from .backoff import Backoff, RetryPolicy
from .connection import CoordinatorClient
from .protocol import completion_to_proto

_log = get_logger(__name__)

_CALL_TIMEOUT_S = 10.0
MAX_REPORTS_PER_CALL = 256
# Well under gRPC's default 4 MiB limit on a received message. A report
# carries at most 64 KiB of output and 64 KiB of result, so one always fits.
MAX_CALL_BYTES = 1024 * 1024
# Whole-call rejections of CompleteAttempts that one bad report may cause.
# The reports then go one per call, so that each gets its own verdict.
_SEND_ONE_BY_ONE_CODES = frozenset(
    {
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)

_RUN_STATUS_NAMES = {number: name for name, number in types_pb2.RunStatus.items()}

# The field of an INVALID_ARGUMENT that rejects the reporting agent, not a report.
_WORKER_ID_FIELD = "workerId"

_Report = tuple[FinishedAttempt, workers_pb2.CompleteAttemptRequest]


class Outbox:
    """Reports finished attempts in the order they finished, in batches.

    `on_settled` is called each time a report leaves: accepted, dropped or discarded.
    """

    def __init__(
        self,
        *,
        client: CoordinatorClient,
        worker_id: Callable[[], str],
        retry: RetryPolicy,
        clock: Clock,
        rng: random.Random | None = None,
        on_settled: Callable[[], None] = lambda: None,
    ) -> None:
        self._client = client
        self._on_settled = on_settled
        self._worker_id = worker_id
        self._retry = retry
        self._clock = clock
        self._rng = rng or random.Random()
        self._pending: OrderedDict[Lease, FinishedAttempt] = OrderedDict()
        self._changed = asyncio.Event()
        # The coordinator address that returned UNIMPLEMENTED for CompleteAttempts.
        self._unbatched_address = ""

    def __len__(self) -> int:
        return len(self._pending)

    def put(self, finished: FinishedAttempt) -> None:
        self._pending[finished.lease] = finished
        self._changed.set()

    def discard(self, lease: Lease) -> bool:
        """Drop the report under `lease` (its lease was revoked); return whether it was pending."""
        found = self._pending.pop(lease, None) is not None
        self._changed.set()
        if found:
            self._on_settled()
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
            reports = self._next_reports()
            if not reports:
                continue
            if await self._deliver(reports):
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

    def _next_reports(self) -> list[_Report]:
        """Convert the oldest pending reports that fit in one call."""
        worker_id = self._worker_id()
        reports: list[_Report] = []
        unencodable: list[tuple[FinishedAttempt, Exception]] = []
        total_bytes = 0
        for finished in self._pending.values():
            try:
                request = completion_to_proto(worker_id, finished)
            except (ValueError, TypeError) as error:
                unencodable.append((finished, error))
                continue
            total_bytes += request.ByteSize()
            if reports and total_bytes > MAX_CALL_BYTES:
                break
            reports.append((finished, request))
            if len(reports) == MAX_REPORTS_PER_CALL:
                break
        for finished, error in unencodable:
            self._drop_unencodable(finished, error)
        return reports

    async def _deliver(self, reports: list[_Report]) -> bool:
        """Send `reports`; return whether any of them is done with (accepted or dropped)."""
        if self._client.current_address != self._unbatched_address:
            delivered = await self._deliver_batch(reports)
            if delivered is not None:
                return delivered
        return await self._deliver_one_by_one(reports)

    async def _deliver_batch(self, reports: list[_Report]) -> bool | None:
        """Send one CompleteAttempts call; None when the reports should go one per call instead."""
        request = workers_pb2.CompleteAttemptsRequest(
            worker_id=self._worker_id(), reports=[report for _, report in reports]
        )
        try:
            response = await self._client.call(
                "CompleteAttempts", request, timeout_s=_CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            return self._batch_rejected(error, len(reports))

        results = response.results
        if len(results) != len(reports):
            _log.warning(
                "coordinator returned a different number of results than reports sent; "
                "retrying the reports without a result",
                reports=len(reports),
                results=len(results),
            )
        accepted = settled = 0
        for (finished, _), result in zip(reports, results, strict=False):
            if not result.error_code:
                accepted += 1
            else:
                code = grpc.StatusCode.__members__.get(result.error_code, grpc.StatusCode.UNKNOWN)
                if not _judge_rejection(finished, code, result.error_message):
                    continue
            self._remove(finished.lease)
            settled += 1
        # One line per call, not per report: at thousands of runs per second
        # even a filtered-out call per report adds up.
        _log.debug("attempts reported", reports=len(reports), accepted=accepted)
        return settled > 0

    def _batch_rejected(self, error: grpc.aio.AioRpcError, report_count: int) -> bool | None:
        code = error.code()
        if _rejects_worker(error):
            _log.warning(
                "coordinator does not know this agent; retrying the reports after it "
                "registers again",
                details=error.details(),
                reports=report_count,
            )
            return False
        if code == grpc.StatusCode.UNIMPLEMENTED:
            self._unbatched_address = self._client.current_address
            _log.info(
                "coordinator has no CompleteAttempts; reporting one attempt per call",
                address=self._unbatched_address,
            )
            return None
        if code in _SEND_ONE_BY_ONE_CODES:
            _log.warning(
                "coordinator rejected a batch of reports; sending them one per call",
                code=code.name,
                details=error.details(),
                reports=report_count,
            )
            return None
        _log.warning(
            "reporting attempts failed; retrying",
            code=code.name,
            details=error.details(),
            reports=report_count,
        )
        return False

    async def _deliver_one_by_one(self, reports: list[_Report]) -> bool:
        """Send one CompleteAttempt per report, in order, until one must be retried."""
        progressed = False
        for finished, request in reports:
            # A revocation may have discarded it during an earlier call.
            if finished.lease not in self._pending:
                continue
            try:
                response = await self._client.call(
                    "CompleteAttempt", request, timeout_s=_CALL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as error:
                if _rejects_worker(error):
                    _log.warning(
                        "coordinator does not know this agent; retrying the report after it "
                        "registers again",
                        run_id=finished.lease.run_id,
                        attempt=finished.lease.attempt,
                        details=error.details(),
                    )
                    return progressed
                if not _judge_rejection(finished, error.code(), error.details() or ""):
                    return progressed
            else:
                _log_accepted(finished, response.run_status)
            self._remove(finished.lease)
            progressed = True
        return progressed

    def _drop_unencodable(self, finished: FinishedAttempt, error: Exception) -> None:
        # Retrying cannot fix it, and keeping it would block every later report.
        lease = finished.lease
        _log.error(
            "attempt report cannot be encoded; dropping it, so the lease will expire",
            run_id=lease.run_id,
            attempt=lease.attempt,
            job_id=finished.job_id,
            error=str(error),
        )
        self._remove(lease)

    def _remove(self, lease: Lease) -> None:
        # A revocation may have discarded it during the call.
        if self._pending.pop(lease, None) is not None:
            self._on_settled()
        self._changed.set()


def _rejects_worker(error: grpc.aio.AioRpcError) -> bool:
    return error.code() == grpc.StatusCode.INVALID_ARGUMENT and field_of(error) == _WORKER_ID_FIELD


def _log_accepted(finished: FinishedAttempt, run_status: int) -> None:
    lease = finished.lease
    _log.debug(
        "attempt reported",
        run_id=lease.run_id,
        attempt=lease.attempt,
        job_id=finished.job_id,
        run_status=_RUN_STATUS_NAMES.get(run_status, str(run_status)),
    )


def _judge_rejection(finished: FinishedAttempt, code: grpc.StatusCode, details: str) -> bool:
    """Log a rejected report; return True when it is done with, False when it must be retried."""
    lease = finished.lease
    log = _log.bind(
        run_id=lease.run_id,
        attempt=lease.attempt,
        job_id=finished.job_id,
        fencing_token=lease.fencing_token,
    )
    # A follower without a known leader returns UNAVAILABLE, which the client
    # retries, so FAILED_PRECONDITION here means the lease itself is stale.
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        log.warning("lease is stale; dropping the attempt's result", details=details)
        return True
    if code == grpc.StatusCode.NOT_FOUND:
        log.warning("run not found; dropping the attempt's result", details=details)
        return True
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        log.error("coordinator rejected the report; dropping it", details=details)
        return True
    log.warning("reporting the attempt failed; retrying", code=code.name, details=details)
    return False
