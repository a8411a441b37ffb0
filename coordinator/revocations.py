"""Leases the leader ended, waiting to be sent to their agents' open polls.

An agent learns that a lease was revoked from its next heartbeat, up to a
heartbeat interval later. An agent with a PollWork call open hears it
sooner: the leader notes the revoked lease for that agent and ends the
poll, whose response lists it. This matters most for an attempt handed
out before its start instant, which then never starts. Leases are noted
only for agents with a poll open, so nothing piles up for busy agents;
their heartbeats still carry every revocation.
"""

from __future__ import annotations

from collections import Counter

from taskscheduler.coordinator.completion_plan import HeldLease


class RevocationBox:
    def __init__(self) -> None:
        self._polling: Counter[str] = Counter()
        self._pending: dict[str, list[HeldLease]] = {}

    def poll_opened(self, worker_id: str) -> None:
        self._polling[worker_id] += 1

    def poll_closed(self, worker_id: str) -> None:
        """Forget the worker's notes once its last open poll has ended.

        Call `take` first. A note that no poll carried reaches the agent by heartbeat.
        """
        self._polling[worker_id] -= 1
        if self._polling[worker_id] <= 0:
            del self._polling[worker_id]
            self._pending.pop(worker_id, None)

    def note(self, worker_id: str, lease: HeldLease) -> bool:
        """Note a revoked lease for the worker. Return False when it has no poll open."""
        if worker_id not in self._polling:
            return False
        self._pending.setdefault(worker_id, []).append(lease)
        return True

    def has(self, worker_id: str) -> bool:
        return worker_id in self._pending

    def take(self, worker_id: str) -> list[HeldLease]:
        """Return and forget the worker's noted leases."""
        return self._pending.pop(worker_id, [])
