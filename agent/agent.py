"""The agent's lifecycle: register, then poll, execute, heartbeat and report until stopped.

`Agent.run` registers with the leader (retrying while no coordinator
responds), then supervises three loops: polling for work, heartbeating, and
delivering reports from the outbox. A loop that crashes stops the agent
with AgentCrashedError. `Agent.stop` starts a graceful shutdown: polling stops
at once, running attempts get the grace period while heartbeats continue,
what is left is killed and reported as FAILED, the outbox is flushed
briefly, and the agent deregisters.
"""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
import structlog

import taskscheduler
from taskscheduler.clock import Clock, SystemClock
from taskscheduler.errors import SchedulerError
from taskscheduler.logs import get_logger
from taskscheduler.v1 import workers_pb2

from .attempts import AttemptRunner, Lease
from .backoff import Backoff, RetryPolicy
from .config import AgentConfig
from .connection import CoordinatorClient, CoordinatorUnavailableError
from .executors.base import ExecutorRegistry
from .outbox import Outbox
from .protocol import context_from_proto, lease_from_proto, lease_to_proto, start_at_from_proto

_log = get_logger(__name__)

# Statuses on which registering again cannot help; the agent stops instead.
_FATAL_REGISTER_CODES = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNIMPLEMENTED})
_REGISTER_TIMEOUT_S = 10.0
# A PollWork call may take this long beyond its wait before it counts as lost.
_POLL_MARGIN_S = 5.0


class AgentCrashedError(SchedulerError, RuntimeError):
    """One of the agent's loops failed; the agent stopped."""


@dataclass(frozen=True, kw_only=True)
class AgentTuning:
    """Timings that are not command-line flags; tests shorten them."""

    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # Used when RegisterWorkerResponse.heartbeat_interval_ms is 0.
    default_heartbeat_interval_s: float = 5.0
    # How long shutdown waits for the outbox to deliver what is left.
    outbox_flush_s: float = 5.0
    deregister_timeout_s: float = 5.0


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        registry: ExecutorRegistry,
        clock: Clock | None = None,
        tuning: AgentTuning | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._config = config
        self._registry = registry
        self._clock = clock or SystemClock()
        self._tuning = tuning or AgentTuning()
        self._rng = rng or random.Random()
        self._client = CoordinatorClient(
            config.coordinators, retry=self._tuning.retry, clock=self._clock, rng=self._rng
        )
        self._worker_id = config.worker_id
        self._heartbeat_interval_s = self._tuning.default_heartbeat_interval_s
        self._stopping = asyncio.Event()
        self._outbox = Outbox(
            client=self._client,
            worker_id=lambda: self._worker_id,
            retry=self._tuning.retry,
            clock=self._clock,
            rng=self._rng,
            on_settled=lambda: self._runner.report_settled(),
        )
        self._runner = AttemptRunner(
            registry=registry,
            max_concurrent=config.max_concurrent,
            clock=self._clock,
            on_finished=self._outbox.put,
            unreported=self._outbox.__len__,
        )

    @property
    def worker_id(self) -> str:
        return self._worker_id

    def stop(self) -> None:
        """Start a graceful shutdown; safe to call more than once and from a signal handler."""
        if not self._stopping.is_set():
            _log.info("agent stopping", worker_id=self._worker_id)
        self._stopping.set()

    async def run(self) -> None:
        """Run until `stop` and its graceful shutdown have finished.

        Raises AgentCrashedError when a loop fails or the coordinator refuses
        the registration.
        """
        structlog.contextvars.bind_contextvars(worker_id=self._worker_id)
        _log.info(
            "agent started",
            coordinators=list(self._config.coordinators),
            capabilities=list(self._config.capabilities),
            max_concurrent=self._config.max_concurrent,
        )
        try:
            if await self._unless_stopped(self._register()):
                await self._serve()
        finally:
            await self._registry.aclose()
            await self._client.close()
        _log.info("agent stopped")

    # Registration

    async def _register(self) -> None:
        """Register with the leader, retrying until it accepts."""
        config = self._config
        request = workers_pb2.RegisterWorkerRequest(
            worker_id=self._worker_id,
            hostname=socket.gethostname(),
            capabilities=list(config.capabilities),
            labels=dict(config.labels),
            max_concurrent=config.max_concurrent,
            version=taskscheduler.__version__,
        )
        backoff = Backoff(self._tuning.retry, self._rng)
        while True:
            try:
                response = await self._client.call(
                    "RegisterWorker", request, timeout_s=_REGISTER_TIMEOUT_S
                )
                break
            except grpc.aio.AioRpcError as error:
                if error.code() in _FATAL_REGISTER_CODES:
                    raise AgentCrashedError(
                        f"coordinator rejected the registration: {error.code().name}: "
                        f"{error.details()}"
                    ) from error
                _log.warning(
                    "registration failed; retrying",
                    code=error.code().name,
                    details=error.details(),
                )
            await self._clock.sleep(backoff.next_delay_s())

        self._worker_id = response.worker.id or self._worker_id
        if response.heartbeat_interval_ms > 0:
            self._heartbeat_interval_s = response.heartbeat_interval_ms / 1000
        _log.info(
            "agent registered",
            worker_id=self._worker_id,
            coordinator=self._client.current_address,
            heartbeat_interval_s=self._heartbeat_interval_s,
            lease_ttl_ms=response.lease_ttl_ms,
        )

    # Supervision and shutdown

    async def _serve(self) -> None:
        # The loops' tasks copy this context, so their log lines carry the registered id.
        structlog.contextvars.bind_contextvars(worker_id=self._worker_id)
        poll = asyncio.create_task(self._poll_loop(), name="poll loop")
        heartbeat = asyncio.create_task(self._heartbeat_loop(), name="heartbeat loop")
        outbox = asyncio.create_task(self._outbox.run(), name="outbox loop")
        loops = [poll, heartbeat, outbox]

        stop_requested = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([*loops, stop_requested], return_when=asyncio.FIRST_COMPLETED)
        if not stop_requested.done():
            stop_requested.cancel()
            await self._abort(loops)

        # Graceful shutdown: stop pulling, drain with a deadline, report, leave.
        # NOTE: cancelling an in-flight PollWork can lose assignments the
        # coordinator already made; their leases expire and the runs are retried.
        await _cancel(poll)
        await self._runner.drain(self._config.shutdown_grace_s)
        await _cancel(heartbeat)
        await self._flush_outbox()
        await _cancel(outbox)
        await self._deregister()
        _raise_if_crashed(loops)

    async def _abort(self, loops: list[asyncio.Task[None]]) -> None:
        """Stop everything after a loop ended on its own, then raise AgentCrashedError."""
        for loop_task in loops:
            if loop_task.done() and not loop_task.cancelled():
                error = loop_task.exception()
                _log.error(
                    "agent loop failed; stopping the agent",
                    loop=loop_task.get_name(),
                    error=repr(error) if error else "returned unexpectedly",
                    exc_info=error,
                )
        for loop_task in loops:
            await _cancel(loop_task)
        await self._runner.drain(0)
        raise AgentCrashedError("an agent loop failed; see the error logged before this")

    async def _flush_outbox(self) -> None:
        if await self._outbox.wait_empty(self._tuning.outbox_flush_s):
            return
        for lease in self._outbox.leases():
            _log.error(
                "attempt result not delivered before shutdown; the lease will expire",
                run_id=lease.run_id,
                attempt=lease.attempt,
                fencing_token=lease.fencing_token,
            )

    async def _deregister(self) -> None:
        timeout_s = self._tuning.deregister_timeout_s
        request = workers_pb2.DeregisterWorkerRequest(worker_id=self._worker_id)
        try:
            await self._client.call(
                "DeregisterWorker", request, timeout_s=timeout_s, give_up_after_s=timeout_s
            )
        except (grpc.aio.AioRpcError, CoordinatorUnavailableError) as error:
            _log.warning(
                "deregistration failed; the coordinator will time this agent out", error=str(error)
            )
            return
        _log.info("agent deregistered")

    async def _unless_stopped(self, work: Coroutine[Any, Any, None]) -> bool:
        """Run `work` unless `stop` comes first; return whether it completed."""
        work_task = asyncio.create_task(work)
        stop_requested = asyncio.create_task(self._stopping.wait())
        await asyncio.wait([work_task, stop_requested], return_when=asyncio.FIRST_COMPLETED)
        await _cancel(stop_requested)
        if work_task.done():
            work_task.result()
            return True
        await _cancel(work_task)
        return False

    # The loops

    async def _poll_loop(self) -> None:
        wait_ms = int(self._config.poll_wait_s * 1000)
        backoff = Backoff(self._tuning.retry, self._rng)
        while True:
            free_slots = await self._runner.wait_for_free_slots()
            request = workers_pb2.PollWorkRequest(
                worker_id=self._worker_id,
                max_assignments=free_slots,
                wait_timeout_ms=wait_ms,
                accepts_start_at=True,
            )
            try:
                response = await self._client.call(
                    "PollWork", request, timeout_s=self._config.poll_wait_s + _POLL_MARGIN_S
                )
            except grpc.aio.AioRpcError as error:
                _log.warning(
                    "polling for work failed; retrying",
                    code=error.code().name,
                    details=error.details(),
                )
                await self._clock.sleep(backoff.next_delay_s())
                continue
            backoff.reset()
            for revoked in response.revoked:
                self._revoke(lease_from_proto(revoked))
            self._start_assignments(response.assignments)

    def _start_assignments(self, assignments: Iterable[workers_pb2.Assignment]) -> None:
        for assignment in assignments:
            if self._runner.free_slots <= 0:
                # The coordinator must never send more than requested; the extra
                # run's lease expires and the coordinator assigns it again.
                _log.error(
                    "coordinator assigned more runs than requested; not starting this one",
                    run_id=assignment.run_id,
                    attempt=assignment.attempt,
                    job_id=assignment.job_id,
                )
                continue
            self._runner.start(
                context_from_proto(assignment), start_at=start_at_from_proto(assignment)
            )

    async def _heartbeat_loop(self) -> None:
        # Beats are spaced from start to start, so a slow call does not stretch the interval.
        next_beat_at = self._clock.monotonic() + self._heartbeat_interval_s
        while True:
            await self._clock.sleep(next_beat_at - self._clock.monotonic())
            next_beat_at = self._clock.monotonic() + self._heartbeat_interval_s
            await self._heartbeat()

    async def _heartbeat(self) -> None:
        leases = [*self._runner.leases(), *self._outbox.leases()]
        request = workers_pb2.HeartbeatRequest(
            worker_id=self._worker_id, leases=[lease_to_proto(lease) for lease in leases]
        )
        interval_s = self._heartbeat_interval_s
        try:
            response = await self._client.call(
                "Heartbeat", request, timeout_s=interval_s, give_up_after_s=interval_s
            )
        except CoordinatorUnavailableError as error:
            _log.warning("heartbeat failed; retrying at the next interval", error=str(error))
            return
        except grpc.aio.AioRpcError as error:
            _log.warning(
                "heartbeat rejected; retrying at the next interval",
                code=error.code().name,
                details=error.details(),
            )
            if error.code() == grpc.StatusCode.NOT_FOUND:
                # The coordinator lost this worker's registration.
                await self._register()
            return

        for revoked in response.revoked:
            self._revoke(lease_from_proto(revoked))
        if not response.known:
            _log.warning("coordinator does not know this agent; registering again")
            await self._register()

    def _revoke(self, lease: Lease) -> None:
        log = _log.bind(
            run_id=lease.run_id, attempt=lease.attempt, fencing_token=lease.fencing_token
        )
        if self._runner.revoke(lease):
            log.warning("lease revoked; stopping the attempt")
        elif self._outbox.discard(lease):
            log.warning("lease revoked; dropping the attempt's unreported result")
        else:
            log.debug("revoked lease is not held by this agent")


async def _cancel(task: asyncio.Task[Any]) -> None:
    """Cancel `task` and wait for it to end; a failure stays on the task for inspection."""
    task.cancel()
    await asyncio.wait([task])


def _raise_if_crashed(loops: list[asyncio.Task[None]]) -> None:
    for loop_task in loops:
        if loop_task.cancelled():
            continue
        error = loop_task.exception()
        if error is not None:
            _log.error(
                "agent loop failed during shutdown",
                loop=loop_task.get_name(),
                error=repr(error),
                exc_info=error,
            )
            raise AgentCrashedError(f"{loop_task.get_name()} failed: {error!r}") from error
