"""The leader's ready queues: queued runs by priority, then by due time.

One heap per (priority, executor), so an agent is offered only runs it can
execute, highest priority first and oldest due first within a priority,
in O(log n) per run. A run whose retry delay has not passed stays queued
but is not offered until its due time.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

from taskscheduler.coordinator.model import Priority


@dataclass(frozen=True, slots=True, order=True)
class QueueEntry:
    due_at: datetime
    sequence: int
    run_id: str = field(compare=False)
    priority: Priority = field(compare=False)
    executor: str = field(compare=False)


class ReadyQueues:
    def __init__(self) -> None:
        self._heaps: dict[tuple[Priority, str], list[QueueEntry]] = {}
        self._entries: dict[str, QueueEntry] = {}
        self._sequence = itertools.count()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._entries

    def push(self, run_id: str, priority: Priority, executor: str, due_at: datetime) -> None:
        entry = QueueEntry(due_at, next(self._sequence), run_id, priority, executor)
        self._entries[run_id] = entry
        heapq.heappush(self._heaps.setdefault((priority, executor), []), entry)

    def remove(self, run_id: str) -> None:
        self._entries.pop(run_id, None)

    def depth_by_priority(self) -> dict[Priority, int]:
        depth = dict.fromkeys(Priority, 0)
        for entry in self._entries.values():
            depth[entry.priority] += 1
        return depth

    def next_due_at(self) -> datetime | None:
        """Return the earliest due time of any queued run, or None when empty."""
        heads = [self._head(heap) for heap in self._heaps.values()]
        due = [head.due_at for head in heads if head is not None]
        return min(due) if due else None

    def pop_ready(self, capabilities: Collection[str], now: datetime, limit: int) -> list[str]:
        """Remove and return up to `limit` due run ids whose executor is in `capabilities`."""
        taken: list[str] = []
        for priority in sorted(Priority, key=lambda p: p.rank, reverse=True):
            heaps = [
                heap
                for (heap_priority, executor), heap in self._heaps.items()
                if heap_priority is priority and executor in capabilities
            ]
            while len(taken) < limit:
                entry = self._pop_earliest(heaps, now)
                if entry is None:
                    break
                taken.append(entry.run_id)
            if len(taken) >= limit:
                break
        return taken

    def _pop_earliest(self, heaps: list[list[QueueEntry]], now: datetime) -> QueueEntry | None:
        best: list[QueueEntry] | None = None
        for heap in heaps:
            head = self._head(heap)
            if head is not None and head.due_at <= now and (best is None or head < best[0]):
                best = heap
        if best is None:
            return None
        entry = heapq.heappop(best)
        del self._entries[entry.run_id]
        return entry

    def _head(self, heap: list[QueueEntry]) -> QueueEntry | None:
        while heap and self._entries.get(heap[0].run_id) is not heap[0]:
            heapq.heappop(heap)
        return heap[0] if heap else None
