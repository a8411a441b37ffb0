"""Leases the leader ended, waiting to be sent with their agents' next poll.

An agent learns that a lease was revoked from its next heartbeat, up to a
heartbeat interval later. Its polls carry the revocation sooner: the
leader notes the revoked lease for that agent, and the response to the
agent's open poll, or else to its next one, lists the lease. This matters most for an
attempt handed out before its start instant, which then never starts. A
heartbeat lists every revoked lease the agent still holds, so it clears
the agent's notes.
"""

from __future__ import annotations

from taskscheduler.coordinator.completion_plan import HeldLease
from taskscheduler.logs import get_logger

log = get_logger(__name__)

# Notes kept per agent between two heartbeats; more are left to the heartbeat.
MAX_NOTES_PER_AGENT = 10_000


class RevocationBox:
    def __init__(self) -> None:
        self._pending: dict[str, list[HeldLease]] = {}

    def note(self, worker_id: str, lease: HeldLease) -> None:
        """Note a revoked lease for the worker's next poll."""
        notes = self._pending.setdefault(worker_id, [])
        if len(notes) < MAX_NOTES_PER_AGENT:
            notes.append(lease)

    def has(self, worker_id: str) -> bool:
        return worker_id in self._pending

    def take(self, worker_id: str) -> list[HeldLease]:
        """Return and forget the worker's noted leases."""
        return self._pending.pop(worker_id, [])

    def forget(self, worker_id: str) -> None:
        """Drop the worker's notes: call it before a heartbeat lists the revoked leases."""
        self._pending.pop(worker_id, None)
