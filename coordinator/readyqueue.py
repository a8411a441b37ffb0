"""The leader's ready queues: queued runs by effective priority, then by due time.

One heap per (priority, executor, selector), each ordered by due time, so
an agent is offered only runs it can execute on its labels. A run's
effective priority is its stored priority raised one level per
`aging_s` it has waited past its due time, up to critical (aging_s 0
turns aging off). Within a heap the head has waited longest, so it also
has the highest effective priority: comparing heap heads is enough to find
the next run, in O(heaps) per run handed out. A run whose retry delay has
not passed, or which was fired ahead of its slot, stays queued and is
offered only from its due time, or from shortly before it to an agent
that waits for the due time itself (the `horizon` of `pop_ready`).

Each priority keeps at most `max_per_priority` runs that an online agent can
take in memory, and the leader keeps the rest in etcd only (see
coordinator.queueloader). Runs on a route no online agent can take (see
`refresh_waiting_reasons`) do not count against that bound, so they cannot
keep runs that an agent could take waiting in etcd; they count against a
hard bound of UNROUTABLE_FACTOR times as many.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from taskscheduler.coordinator.model import Priority
from taskscheduler.coordinator.selector import SelectorKey, describe, labels_match

_MAX_RANK = max(priority.rank for priority in Priority)
# Runs in memory per priority, routable or not, at most this many times the bound.
UNROUTABLE_FACTOR = 4


def effective_rank(priority: Priority, due_at: datetime, now: datetime, aging_s: float) -> int:
    """Return the priority rank a run has after waiting since `due_at`, one level per aging_s."""
    if aging_s <= 0:
        return priority.rank
    waited_s = (now - due_at).total_seconds()
    if waited_s < aging_s:
        return priority.rank
    return min(_MAX_RANK, priority.rank + int(waited_s // aging_s))


@dataclass(frozen=True, slots=True, order=True)
class QueueEntry:
    due_at: datetime
    sequence: int
    run_id: str = field(compare=False)
    priority: Priority = field(compare=False)
    executor: str = field(compare=False)
    selector: SelectorKey = field(compare=False, default=())


# A queued run's route: the executor and the agent labels it needs.
Route = tuple[str, SelectorKey]


@dataclass(frozen=True, slots=True)
class AgentOffer:
    """The executors and labels of one online agent, which decide the runs it can take."""

    capabilities: Collection[str]
    labels: Mapping[str, str]


class ReadyQueues:
    def __init__(self, *, aging_s: float = 0.0, max_per_priority: int = 10_000) -> None:
        self.aging_s = aging_s
        self.max_per_priority = max_per_priority
        self._heaps: dict[tuple[Priority, str, SelectorKey], list[QueueEntry]] = {}
        self._entries: dict[str, QueueEntry] = {}
        self._counts: dict[Priority, int] = dict.fromkeys(Priority, 0)
        self._route_counts: dict[tuple[Priority, str, SelectorKey], int] = {}
        self._sequence = itertools.count()
        self._unroutable: dict[Route, str] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, run_id: object) -> bool:
        return run_id in self._entries

    def push(
        self,
        run_id: str,
        priority: Priority,
        executor: str,
        due_at: datetime,
        selector: SelectorKey = (),
    ) -> None:
        self.remove(run_id)
        entry = QueueEntry(due_at, next(self._sequence), run_id, priority, executor, selector)
        self._entries[run_id] = entry
        self._counts[priority] += 1
        key = (priority, executor, selector)
        self._route_counts[key] = self._route_counts.get(key, 0) + 1
        heapq.heappush(self._heaps.setdefault((priority, executor, selector), []), entry)

    def remove(self, run_id: str) -> None:
        entry = self._entries.pop(run_id, None)
        if entry is not None:
            self._counts[entry.priority] -= 1
            key = (entry.priority, entry.executor, entry.selector)
            self._route_counts[key] -= 1
            if not self._route_counts[key]:
                del self._route_counts[key]

    def has_room(self, priority: Priority) -> bool:
        return self.room(priority) > 0

    def room(self, priority: Priority) -> int:
        """Return how many more runs of this priority memory takes."""
        count = self._counts[priority]
        unroutable = sum(
            self._route_counts.get((priority, executor, selector), 0)
            for executor, selector in self._unroutable
        )
        routable_room = self.max_per_priority - (count - unroutable)
        hard_room = UNROUTABLE_FACTOR * self.max_per_priority - count
        return max(0, min(routable_room, hard_room))

    def depth_by_priority(self) -> dict[Priority, int]:
        """Return the queued runs in memory per priority; runs waiting in etcd only are not
        counted (the monitoring service counts those from etcd)."""
        return dict(self._counts)

    def next_due_at(self) -> datetime | None:
        """Return the earliest due time of any queued run, or None when empty."""
        heads = [self._head(heap) for heap in self._heaps.values()]
        due = [head.due_at for head in heads if head is not None]
        return min(due) if due else None

    def pop_ready(
        self,
        capabilities: Collection[str],
        now: datetime,
        limit: int,
        labels: Mapping[str, str] | None = None,
        horizon: datetime | None = None,
    ) -> list[str]:
        """Remove and return up to `limit` run ids this agent can take, best first.

        A run is taken when it is due by `horizon` (default `now`). Runs due
        by `now` come first; among them, and then among the runs not yet
        due, best is the highest effective priority, then the earliest due
        time, then the earliest queued.
        """
        labels = labels or {}
        heaps = [
            heap
            for (_, executor, selector), heap in self._heaps.items()
            if executor in capabilities and labels_match(selector, labels)
        ]
        taken: list[str] = []
        horizon = now if horizon is None or horizon < now else horizon
        while len(taken) < limit:
            entry = self._pop_best(heaps, now, horizon)
            if entry is None:
                break
            taken.append(entry.run_id)
        return taken

    def refresh_waiting_reasons(self, agents: Iterable[AgentOffer]) -> None:
        """Record, per route, why no online agent can take the runs queued on it."""
        agents = list(agents)
        routes = {(executor, selector) for (_, executor, selector) in self._heaps}
        reasons: dict[Route, str] = {}
        for route in routes:
            reason = route_blocker(route, agents)
            if reason:
                reasons[route] = reason
        self._unroutable = reasons
        self._drop_empty_heaps()

    def waiting_reason(self, run_id: str, now: datetime, min_wait_s: float) -> str:
        """Return why no online agent can take this queued run, or "" when one can."""
        entry = self._entries.get(run_id)
        if entry is None or (now - entry.due_at).total_seconds() < min_wait_s:
            return ""
        return self._unroutable.get((entry.executor, entry.selector), "")

    def _pop_best(
        self, heaps: list[list[QueueEntry]], now: datetime, horizon: datetime
    ) -> QueueEntry | None:
        best: list[QueueEntry] | None = None
        best_order: tuple[bool, int, datetime, int] | None = None
        for heap in heaps:
            head = self._head(heap)
            if head is None or head.due_at > horizon:
                continue
            rank = effective_rank(head.priority, head.due_at, now, self.aging_s)
            order = (head.due_at > now, -rank, head.due_at, head.sequence)
            if best_order is None or order < best_order:
                best, best_order = heap, order
        if best is None:
            return None
        entry = heapq.heappop(best)
        self.remove(entry.run_id)
        return entry

    def _head(self, heap: list[QueueEntry]) -> QueueEntry | None:
        while heap and self._entries.get(heap[0].run_id) is not heap[0]:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def _drop_empty_heaps(self) -> None:
        empty = [key for key, heap in self._heaps.items() if self._head(heap) is None]
        for key in empty:
            del self._heaps[key]


def route_blocker(route: Route, agents: Collection[AgentOffer]) -> str:
    """Return why none of `agents` can take runs on `route`, or "" when one can."""
    executor, selector = route
    offering = [agent for agent in agents if executor in agent.capabilities]
    if not offering:
        return f"no online agent offers executor {executor!r}"
    if not any(labels_match(selector, agent.labels) for agent in offering):
        return f"no online agent offering executor {executor!r} has labels {describe(selector)}"
    return ""
