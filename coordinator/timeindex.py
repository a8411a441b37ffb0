"""The leader's time index: which job fires next, without scanning all jobs.

A min-heap of (fire time, job id) with lazy deletion: rescheduling or
removing a job only updates the dict, and stale heap entries are skipped
when they surface. Each operation is O(log n).
"""

from __future__ import annotations

import heapq
from datetime import datetime


class TimeIndex:
    def __init__(self) -> None:
        self._heap: list[tuple[datetime, str]] = []
        self._fire_at: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._fire_at)

    def schedule(self, job_id: str, fire_at: datetime) -> None:
        """Set (or move) the job's next fire time."""
        if self._fire_at.get(job_id) == fire_at:
            return
        self._fire_at[job_id] = fire_at
        heapq.heappush(self._heap, (fire_at, job_id))
        self._compact_if_bloated()

    def load(self, entries: dict[str, datetime]) -> None:
        """Replace the whole index with these fire times, in O(n) (a new leader's start)."""
        self._fire_at = dict(entries)
        self._heap = [(fire_at, job_id) for job_id, fire_at in self._fire_at.items()]
        heapq.heapify(self._heap)

    def remove(self, job_id: str) -> None:
        self._fire_at.pop(job_id, None)

    def fire_at(self, job_id: str) -> datetime | None:
        return self._fire_at.get(job_id)

    def next_fire_at(self) -> datetime | None:
        """Return the earliest fire time in the index, or None when it is empty."""
        self._drop_stale_head()
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: datetime, limit: int) -> list[str]:
        """Remove and return up to `limit` job ids whose fire time is at or before `now`."""
        due: list[str] = []
        while len(due) < limit:
            self._drop_stale_head()
            if not self._heap or self._heap[0][0] > now:
                break
            _, job_id = heapq.heappop(self._heap)
            del self._fire_at[job_id]
            due.append(job_id)
        return due

    def _drop_stale_head(self) -> None:
        while self._heap:
            fire_at, job_id = self._heap[0]
            if self._fire_at.get(job_id) == fire_at:
                return
            heapq.heappop(self._heap)

    def _compact_if_bloated(self) -> None:
        # Frequent reschedules leave stale entries behind; rebuild once they dominate.
        if len(self._heap) > 2 * len(self._fire_at) + 1024:
            self._heap = [(fire_at, job_id) for job_id, fire_at in self._fire_at.items()]
            heapq.heapify(self._heap)
