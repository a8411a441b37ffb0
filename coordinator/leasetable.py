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
        self._by_worker: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._leases)

    def get(self, run_id: str) -> ActiveLease | None:
        return self._leases.get(run_id)

    def grant(self, run_id: str, worker_id: str, attempt: int, token: int, now: float) -> None:
        self.release(run_id)
        self._leases[run_id] = ActiveLease(run_id, worker_id, attempt, token, now + self.ttl_s)
        self._by_worker.setdefault(worker_id, set()).add(run_id)

    def release(self, run_id: str) -> ActiveLease | None:
        lease = self._leases.pop(run_id, None)
        if lease is not None:
            held = self._by_worker.get(lease.worker_id)
            if held is not None:
                held.discard(run_id)
                if not held:
                    del self._by_worker[lease.worker_id]
        return lease

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
        return [self._leases[run_id] for run_id in self._by_worker.get(worker_id, ())]

    def count_held_by(self, worker_id: str) -> int:
        return len(self._by_worker.get(worker_id, ()))

    def expired(self, now: float) -> list[ActiveLease]:
        """Return the leases whose deadline has passed, leaving them in the table."""
        return [lease for lease in self._leases.values() if lease.expires_at <= now]

    def next_expiry(self) -> float | None:
        return min((lease.expires_at for lease in self._leases.values()), default=None)
