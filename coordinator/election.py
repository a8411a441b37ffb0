"""Leader election on one etcd key bound to an etcd lease.

The replica whose create-if-absent transaction puts the leader key leads;
the key's create revision is its fence, which every scheduling write
compares (so a deposed leader's late writes fail in etcd, not in memory).

Leadership counts as lost, and leader work stops at once, when:
- a keep-alive answers TTL 0 (the lease expired; some clients report this
  without an error), or
- the TTL has passed since the last keep-alive that was confirmed,
  whatever the client believes (a paused process or a partition).
The second rule is checked on every `is_leader` read, not only by the loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from taskscheduler.clock import Clock
from taskscheduler.coordinator import etcd
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.errors import LostLeadershipError, StoreUnavailableError
from taskscheduler.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class LeaderInfo:
    coordinator_id: str
    address: str


def encode_leader(info: LeaderInfo) -> bytes:
    return f"{info.coordinator_id} {info.address}".encode()


def decode_leader(value: bytes) -> LeaderInfo:
    coordinator_id, _, address = value.decode(errors="replace").partition(" ")
    return LeaderInfo(coordinator_id, address)


class Election:
    def __init__(
        self,
        store: etcd.Etcd,
        keys: KeyLayout,
        me: LeaderInfo,
        *,
        ttl_s: int,
        clock: Clock,
    ) -> None:
        self._store = store
        self._keys = keys
        self._me = me
        self._ttl_s = ttl_s
        self._clock = clock
        self._fence = 0
        self._lease_id = 0
        self._valid_until = 0.0
        self.leader: LeaderInfo | None = None

    @property
    def is_leader(self) -> bool:
        return self._fence != 0 and self._clock.monotonic() < self._valid_until

    @property
    def fence(self) -> int:
        """Create revision of the leader key while this replica leads, else 0."""
        return self._fence if self.is_leader else 0

    @property
    def leader_address(self) -> str:
        """Return the address of the leader as last seen, or "" when none is known.

        While this replica is elected but not yet serving, or has just lost
        its leadership, that may be its own address; `other_leader_address`
        leaves it out.
        """
        return self.leader.address if self.leader else ""

    @property
    def other_leader_address(self) -> str:
        """Return the leader's address when another replica leads, else ""."""
        leader = self.leader
        if leader is None or leader.coordinator_id == self._me.coordinator_id:
            return ""
        return leader.address

    def fence_compare(self) -> etcd.Compare:
        """Return the compare every leader write carries.

        Raises LostLeadershipError instead once leadership has lapsed, so a
        deposed leader stops writing at once rather than sending writes that
        etcd would reject.
        """
        if not self.is_leader:
            raise LostLeadershipError("leadership lapsed; this coordinator no longer leads")
        return etcd.created_at_revision(self._keys.leader, self._fence)

    async def run(
        self,
        on_elected: Callable[[int], Awaitable[None]],
        on_lost: Callable[[], Awaitable[None]],
    ) -> None:
        """Campaign, lead and follow until cancelled; call the hooks on each change."""
        while True:
            try:
                if await self._campaign():
                    await on_elected(self._fence)
                    await self._hold()
                    log.warning("leadership lost", coordinator_id=self._me.coordinator_id)
                    self._fence = 0
                    await on_lost()
                else:
                    await self._clock.sleep(self._poll_interval_s)
            except StoreUnavailableError as error:
                if self._fence:
                    self._fence = 0
                    await on_lost()
                log.warning("etcd unreachable during election; retrying", error=str(error))
                await self._clock.sleep(self._poll_interval_s)

    async def resign(self) -> None:
        """Give up leadership now (on shutdown) so a follower takes over without waiting."""
        lease_id, self._fence = self._lease_id, 0
        if lease_id:
            try:
                await self._store.revoke_lease(lease_id)
            except StoreUnavailableError as error:
                log.warning("could not revoke the leader lease", error=str(error))

    @property
    def _poll_interval_s(self) -> float:
        return min(1.0, self._ttl_s / 4)

    async def _campaign(self) -> bool:
        current = await self._store.get(self._keys.leader)
        if current is not None:
            self.leader = decode_leader(current.value)
            return False

        granted_at = self._clock.monotonic()
        lease_id = await self._store.grant_lease(self._ttl_s)
        result = await self._store.txn(
            [etcd.absent(self._keys.leader)],
            [etcd.put(self._keys.leader, encode_leader(self._me), lease=lease_id)],
        )
        if not result.succeeded:
            await self._store.revoke_lease(lease_id)
            return False

        self._lease_id = lease_id
        self._fence = result.revision
        self._valid_until = granted_at + self._ttl_s
        self.leader = self._me
        log.info(
            "elected leader",
            coordinator_id=self._me.coordinator_id,
            fence=self._fence,
            ttl_s=self._ttl_s,
        )
        return True

    async def _hold(self) -> None:
        """Keep the lease alive until it is lost; return when it is."""
        while self.is_leader:
            sent_at = self._clock.monotonic()
            try:
                remaining_s = await asyncio.wait_for(
                    self._store.keep_alive_once(self._lease_id),
                    timeout=max(0.1, self._valid_until - sent_at),
                )
            except (StoreUnavailableError, TimeoutError) as error:
                log.warning("leader keep-alive failed", error=str(error) or "timed out")
                await self._clock.sleep(min(0.5, self._ttl_s / 6))
                continue
            if remaining_s <= 0:
                log.warning("leader lease expired in etcd", lease_id=self._lease_id)
                return
            self._valid_until = sent_at + remaining_s
            await self._clock.sleep(self._ttl_s / 3)
