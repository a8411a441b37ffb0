"""gRPC calls from the gateway to the coordinator replicas, with failover.

One grpc.aio channel is kept per address. A call goes to the address that
last responded (the first configured one at the start). When an address
cannot be connected to, the next ones are tried: each address once, then
after a short backoff each once more, all within `failover_budget_s`.

Which failures are retried depends on whether the call may have reached a
coordinator:
- connect failures are retried for every call, because nothing was sent;
- UNAVAILABLE after the connection was up is retried only for reads (GET),
  because a write may have been applied before the connection broke, and
  the coordinator's writes are idempotent per request only in places;
- FAILED_PRECONDITION from a follower with an `x-leader-address` trailer is
  retried once at that address, because the follower applied nothing; when
  that address cannot be connected to (the named leader just died), the call
  is retried like a leaderless one;
- a follower's UNAVAILABLE with the `x-not-leader` trailer (no leader is
  elected yet) is retried every half second until `election_wait_s` runs
  out, writes included, because nothing was applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import grpc
import grpc.aio
from google.protobuf.message import Message

from taskscheduler.errors import SchedulerError
from taskscheduler.gateway.http_rules import HttpBinding
from taskscheduler.grpc_status import is_not_leader, leader_address_of
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# Reconnect attempts on a failed channel are at most this far apart, so a
# coordinator that comes back is used again within about a second.
_CHANNEL_OPTIONS = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
    # Find a coordinator that stopped answering within about 5 s, as agents do.
    ("grpc.keepalive_time_ms", 3000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.ping_timeout_ms", 2000),
)


class CoordinatorUnreachableError(SchedulerError, ConnectionError):
    """No coordinator address could be connected to within the failover budget."""

    def __init__(self, addresses: Sequence[str]) -> None:
        listed = ", ".join(addresses)
        super().__init__(
            f"no coordinator reachable at {listed}; check that a coordinator is running "
            "and that --coordinators lists its address"
        )
        self.addresses = tuple(addresses)


class _NamedLeaderUnreachableError(Exception):
    """The leader a follower named could not be connected to; nothing was applied."""

    def __init__(self, leader: str) -> None:
        super().__init__(f"leader {leader} named by a follower is unreachable")
        self.leader = leader


@dataclass(frozen=True, kw_only=True)
class FailoverPolicy:
    """Time limits of one gateway call."""

    # Deadline of one RPC once its channel is connected.
    call_deadline_s: float = 10.0
    # How long to wait for one address to connect.
    connect_timeout_s: float = 1.0
    # Pause between the first round over the addresses and the second.
    backoff_s: float = 0.25
    # All connect attempts of one call, both rounds, end within this time.
    failover_budget_s: float = 4.5
    # How long a call waits for an election to finish (a few election TTLs).
    election_wait_s: float = 12.0

    def __post_init__(self) -> None:
        for name in ("call_deadline_s", "connect_timeout_s", "failover_budget_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.backoff_s < 0:
            raise ValueError(f"backoff_s must not be negative, got {self.backoff_s}")


class CoordinatorClient:
    """Calls RPCs described by HttpBindings on the coordinator replicas."""

    def __init__(self, addresses: Sequence[str], policy: FailoverPolicy | None = None) -> None:
        if not addresses:
            raise ValueError("at least one coordinator address is required")
        self._addresses = list(addresses)
        self._policy = policy or FailoverPolicy()
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._preferred = 0
        # Addresses whose last connect failed, so each outage is logged once.
        self._unreachable: set[str] = set()

    @property
    def addresses(self) -> tuple[str, ...]:
        return tuple(self._addresses)

    async def call(self, binding: HttpBinding, request: Message) -> Message:
        """Send one request and return the response, waiting out a leader election.

        Raises grpc.aio.AioRpcError with the coordinator's status, or
        CoordinatorUnreachableError when no address could be connected to.
        """
        loop = asyncio.get_running_loop()
        election_ends = loop.time() + self._policy.election_wait_s
        while True:
            try:
                return await self._call_once(binding, request)
            except grpc.aio.AioRpcError as err:
                # A not-leader rejection applied nothing, so any call may be sent
                # again: a leaderless cluster, or a named leader that has itself
                # stepped down or is still starting.
                if not is_not_leader(err) or loop.time() >= election_ends:
                    raise
                log.info("no leader serving yet; retrying", rpc=binding.full_method)
            except _NamedLeaderUnreachableError as err:
                # A follower still names a leader that died; it learns of the new
                # one within an election TTL, so wait like for a leaderless cluster.
                if loop.time() >= election_ends:
                    raise CoordinatorUnreachableError([err.leader]) from None
                log.info("named leader unreachable; retrying", leader=err.leader)
            await asyncio.sleep(0.5)

    async def _call_once(self, binding: HttpBinding, request: Message) -> Message:
        loop = asyncio.get_running_loop()
        budget_ends = loop.time() + self._policy.failover_budget_s
        last_error: grpc.aio.AioRpcError | None = None

        for patient in (False, True):
            if patient:
                await asyncio.sleep(self._policy.backoff_s)
            for index in self._rotation():
                address = self._addresses[index]
                if not await self._connect(address, patient=patient, budget_ends=budget_ends):
                    continue
                try:
                    response = await self._invoke(address, binding, request)
                except grpc.aio.AioRpcError as err:
                    if not (binding.is_read and err.code() == grpc.StatusCode.UNAVAILABLE):
                        return await self._raise_or_follow_leader(address, binding, request, err)
                    log.warning(
                        "coordinator unavailable; trying the next one",
                        address=address,
                        rpc=binding.full_method,
                        details=err.details(),
                    )
                    last_error = err
                    continue
                self._preferred = index
                return response

        if last_error is not None:
            raise last_error
        raise CoordinatorUnreachableError(self._addresses)

    async def close(self) -> None:
        """Close every channel; calls still running fail with CANCELLED."""
        channels = list(self._channels.values())
        self._channels.clear()
        for channel in channels:
            await channel.close()

    def _rotation(self) -> list[int]:
        count = len(self._addresses)
        return [(self._preferred + offset) % count for offset in range(count)]

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = grpc.aio.insecure_channel(address, options=_CHANNEL_OPTIONS)
            self._channels[address] = channel
        return channel

    async def _connect(self, address: str, *, patient: bool, budget_ends: float) -> bool:
        """Wait until the channel to `address` is ready; False when it failed or timed out.

        An impatient check gives up as soon as the channel reports a failed
        connect. A patient one waits through the channel's reconnect backoff,
        so a coordinator that has just come back is found.
        """
        channel = self._channel(address)
        loop = asyncio.get_running_loop()
        wait_ends = min(loop.time() + self._policy.connect_timeout_s, budget_ends)
        state = channel.get_state(try_to_connect=True)
        while state != grpc.ChannelConnectivity.READY:
            if state == grpc.ChannelConnectivity.TRANSIENT_FAILURE and not patient:
                break
            remaining = wait_ends - loop.time()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(channel.wait_for_state_change(state), remaining)
            except TimeoutError:
                break
            state = channel.get_state(try_to_connect=True)

        if state != grpc.ChannelConnectivity.READY:
            if address not in self._unreachable:
                self._unreachable.add(address)
                log.warning("cannot connect to coordinator", address=address, state=state.name)
            return False
        if address in self._unreachable:
            self._unreachable.discard(address)
            log.info("coordinator reachable again", address=address)
        return True

    async def _invoke(self, address: str, binding: HttpBinding, request: Message) -> Message:
        rpc = self._channel(address).unary_unary(
            binding.full_method,
            request_serializer=type(request).SerializeToString,
            response_deserializer=binding.response_class.FromString,
        )
        return await rpc(request, timeout=self._policy.call_deadline_s)

    async def _raise_or_follow_leader(
        self, address: str, binding: HttpBinding, request: Message, error: grpc.aio.AioRpcError
    ) -> Message:
        """Retry once at the leader a follower named; otherwise raise `error`."""
        leader = leader_address_of(error)
        if error.code() != grpc.StatusCode.FAILED_PRECONDITION or not leader or leader == address:
            raise error

        log.info("coordinator is a follower; calling the leader", follower=address, leader=leader)
        loop = asyncio.get_running_loop()
        budget_ends = loop.time() + self._policy.connect_timeout_s
        if not await self._connect(leader, patient=True, budget_ends=budget_ends):
            raise _NamedLeaderUnreachableError(leader)
        response = await self._invoke(leader, binding, request)
        if leader in self._addresses:
            self._preferred = self._addresses.index(leader)
        return response
