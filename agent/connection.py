"""The agent's gRPC client for the coordinators' WorkerService.

It stores every coordinator address and keeps calling the current one. On
UNAVAILABLE or DEADLINE_EXCEEDED it moves to the next address and retries
after an exponential backoff. A follower rejects agent calls with
FAILED_PRECONDITION and the leader's address in the `x-leader-address`
trailer; the client then moves to that address and retries. Every other
status is raised to the caller as grpc.aio.AioRpcError.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import grpc
from google.protobuf.message import Message

from taskscheduler.clock import Clock
from taskscheduler.errors import SchedulerError
from taskscheduler.grpc_status import leader_address_of
from taskscheduler.logs import get_logger
from taskscheduler.v1 import workers_pb2_grpc

from .backoff import Backoff, RetryPolicy

_log = get_logger(__name__)

_MOVE_ON_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

# gRPC's own reconnect backoff grows to 120 s by default; a coordinator that
# comes back should be found within a few seconds instead.
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 5000),
    # Pings find a coordinator that stopped answering (frozen, or cut off) in
    # about 5 s, failing the calls open on it so the agent moves on, instead of
    # each call waiting out its own deadline. The coordinator's server allows them.
    ("grpc.keepalive_time_ms", 3000),
    ("grpc.keepalive_timeout_ms", 2000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    # grpcio 1.85 enforces this ping deadline, not keepalive_timeout_ms (measured:
    # without it, a call to a SIGSTOPped server waited out its whole deadline).
    ("grpc.http2.ping_timeout_ms", 2000),
)

# Once a follower has redirected a call, the cluster is up and electing (or has
# just elected) a leader. Retries of that call then wait at most this long, so
# the agent reaches a new leader within this delay of its election, instead of
# after a backoff that grew during the election (up to RetryPolicy.max_s).
_MAX_DELAY_AFTER_REDIRECT_S = 0.5


class CoordinatorUnavailableError(SchedulerError, ConnectionError):
    """No coordinator responded to a call before the caller's retry budget ran out."""

    def __init__(self, method: str, waited_s: float, cause: grpc.aio.AioRpcError) -> None:
        super().__init__(
            f"{method} failed on every coordinator for {waited_s:.1f} s; "
            f"last status {cause.code().name}: {cause.details()}"
        )
        self.method = method
        self.cause = cause


def _next_delay_s(backoff: Backoff, redirected: bool) -> float:
    delay_s = backoff.next_delay_s()
    return min(delay_s, _MAX_DELAY_AFTER_REDIRECT_S) if redirected else delay_s


class CoordinatorClient:
    """Calls WorkerService on the current coordinator, moving between addresses as needed.

    Safe to share between the agent's loops: when two calls fail on the same
    address, only the first moves on, so no address is skipped.
    """

    def __init__(
        self,
        addresses: Sequence[str],
        *,
        retry: RetryPolicy,
        clock: Clock,
        rng: random.Random | None = None,
    ) -> None:
        if not addresses:
            raise ValueError("at least one coordinator address is required")
        self._addresses = list(addresses)
        self._current = self._addresses[0]
        self._retry = retry
        self._clock = clock
        self._rng = rng or random.Random()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, workers_pb2_grpc.WorkerServiceStub] = {}

    @property
    def current_address(self) -> str:
        return self._current

    async def call(
        self,
        method: str,
        request: Message,
        *,
        timeout_s: float,
        give_up_after_s: float | None = None,
    ) -> Any:
        """Call WorkerService `method` until a coordinator responds.

        `timeout_s` bounds each try. Moves between addresses and backs off as
        described in the module docstring. Raises CoordinatorUnavailableError once
        `give_up_after_s` has passed (None: retry forever) and
        grpc.aio.AioRpcError for any status that retrying cannot fix.
        """
        backoff = Backoff(self._retry, self._rng)
        started = self._clock.monotonic()
        redirected = False
        while True:
            address = self._current
            try:
                return await self._invoke(address, method, request, timeout_s)
            except grpc.aio.AioRpcError as error:
                last_error = error
                leader = self._leader_to_follow(error)
                if leader:
                    self._follow_leader(leader, address, method)
                    # Retry a first redirect at once; repeated redirects mean an
                    # election is under way, so they back off.
                    delay_s = _next_delay_s(backoff, redirected) if redirected else 0.0
                    redirected = True
                elif error.code() in _MOVE_ON_CODES:
                    delay_s = _next_delay_s(backoff, redirected)
                    self._move_on(address, method, error, backoff.retries, delay_s)
                else:
                    raise

            waited_s = self._clock.monotonic() - started
            if give_up_after_s is not None and waited_s + delay_s > give_up_after_s:
                raise CoordinatorUnavailableError(method, waited_s, last_error) from last_error
            await self._clock.sleep(delay_s)

    async def _invoke(self, address: str, method: str, request: Message, timeout_s: float) -> Any:
        return await getattr(self._stub(address), method)(request, timeout=timeout_s)

    def _stub(self, address: str) -> workers_pb2_grpc.WorkerServiceStub:
        # One stub per channel: building one creates a callable for every method.
        stub = self._stubs.get(address)
        if stub is None:
            channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            self._channels[address] = channel
            stub = workers_pb2_grpc.WorkerServiceStub(channel)
            self._stubs[address] = stub
        return stub

    @staticmethod
    def _leader_to_follow(error: grpc.aio.AioRpcError) -> str:
        if error.code() != grpc.StatusCode.FAILED_PRECONDITION:
            return ""
        return leader_address_of(error)

    def _follow_leader(self, leader: str, follower: str, method: str) -> None:
        if leader not in self._addresses:
            self._addresses.append(leader)
        self._current = leader
        _log.info(
            "coordinator is a follower; moving to the leader",
            method=method,
            follower=follower,
            leader=leader,
        )

    def _move_on(
        self,
        failed: str,
        method: str,
        error: grpc.aio.AioRpcError,
        retries: int,
        delay_s: float,
    ) -> None:
        if self._current == failed:
            index = self._addresses.index(failed)
            self._current = self._addresses[(index + 1) % len(self._addresses)]
        _log.warning(
            "coordinator call failed; retrying",
            method=method,
            address=failed,
            next_address=self._current,
            code=error.code().name,
            details=error.details(),
            retries=retries,
            delay_s=round(delay_s, 3),
        )

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
