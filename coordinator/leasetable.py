"""The leader's table of live leases and their deadlines.

Heartbeats extend deadlines in memory only: the fencing token, which is
what makes a stale agent harmless, lives in etcd (the lease key's create
revision). A new leader gives every lease it finds a full TTL from its own
takeover, so a failover never expires a lease early.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class ActiveLease:
    run_id: str
    worker_id: str
    attempt: int
    fencing_token: int
    expires_at: float  # on the monotonic clock


class LeaseTable:
    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._leases: dict[str, ActiveLease] = {}

    def __len__(self) -> int:
        return len(self._leases)

    def get(self, run_id: str) -> ActiveLease | None:
        return self._leases.get(run_id)

    def grant(self, run_id: str, worker_id: str, attempt: int, token: int, now: float) -> None:
        self._leases[run_id] = ActiveLease(run_id, worker_id, attempt, token, now + self.ttl_s)

    def release(self, run_id: str) -> ActiveLease | None:
        return self._leases.pop(run_id, None)

    def is_current(self, run_id: str, attempt: int, token: int) -> bool:
        lease = self._leases.get(run_id)
        return lease is not None and lease.attempt == attempt and lease.fencing_token == token

    def extend(self, worker_id: str, run_id: str, attempt: int, token: int, now: float) -> bool:
        """Extend a lease the worker still holds; return False when it is not current."""
        lease = self._leases.get(run_id)
        if lease is None or lease.worker_id != worker_id:
            return False
        if not self.is_current(run_id, attempt, token):
            return False
        lease.expires_at = now + self.ttl_s
        return True

    def held_by(self, worker_id: str) -> list[ActiveLease]:
        return [lease for lease in self._leases.values() if lease.worker_id == worker_id]

    def expired(self, now: float) -> list[ActiveLease]:
        """Return the leases whose deadline has passed, leaving them in the table."""
        return [lease for lease in self._leases.values() if lease.expires_at <= now]

    def next_expiry(self) -> float | None:
        return min((lease.expires_at for lease in self._leases.values()), default=None)
