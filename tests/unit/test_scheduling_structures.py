"""The leader's in-memory structures: time index, ready queues and lease table."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.coordinator.leasetable import LeaseTable
from taskscheduler.coordinator.model import ConcurrencyPolicy, Job, JobSpec, JobStatus, Priority
from taskscheduler.coordinator.readyqueue import ReadyQueues
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.coordinator.timeindex import TimeIndex

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_time_index_pops_due_in_order() -> None:
    index = TimeIndex()
    index.schedule("b", at(2))
    index.schedule("a", at(1))
    index.schedule("c", at(10))

    assert index.next_fire_at() == at(1)
    assert index.pop_due(at(5), limit=10) == ["a", "b"]
    assert index.pop_due(at(5), limit=10) == []
    assert index.next_fire_at() == at(10)
    assert len(index) == 1


def test_time_index_reschedule_and_remove() -> None:
    index = TimeIndex()
    index.schedule("a", at(1))
    index.schedule("a", at(20))
    index.schedule("b", at(2))
    index.remove("b")

    assert index.pop_due(at(10), limit=10) == []
    assert index.fire_at("a") == at(20)
    assert index.pop_due(at(20), limit=10) == ["a"]
    assert index.next_fire_at() is None


def test_time_index_respects_limit() -> None:
    index = TimeIndex()
    for number in range(5):
        index.schedule(f"job-{number}", at(number))

    assert index.pop_due(at(100), limit=2) == ["job-0", "job-1"]
    assert len(index) == 3


def test_ready_queues_priority_then_due() -> None:
    queues = ReadyQueues()
    queues.push("low-old", Priority.LOW, "shell", at(0))
    queues.push("high-new", Priority.HIGH, "shell", at(5))
    queues.push("high-old", Priority.HIGH, "shell", at(1))
    queues.push("critical", Priority.CRITICAL, "http", at(3))

    taken = queues.pop_ready({"shell", "http"}, at(10), limit=10)

    assert taken == ["critical", "high-old", "high-new", "low-old"]
    assert len(queues) == 0


def test_ready_queues_filter_by_capability() -> None:
    queues = ReadyQueues()
    queues.push("needs-http", Priority.CRITICAL, "http", at(0))
    queues.push("needs-shell", Priority.LOW, "shell", at(0))

    assert queues.pop_ready({"shell"}, at(1), limit=5) == ["needs-shell"]
    assert "needs-http" in queues
    assert queues.depth_by_priority()[Priority.CRITICAL] == 1


def test_ready_queues_hold_runs_until_due() -> None:
    queues = ReadyQueues()
    queues.push("retry-later", Priority.HIGH, "shell", at(30))
    queues.push("ready-now", Priority.LOW, "shell", at(0))

    assert queues.pop_ready({"shell"}, at(1), limit=5) == ["ready-now"]
    assert queues.next_due_at() == at(30)
    assert queues.pop_ready({"shell"}, at(30), limit=5) == ["retry-later"]


def test_ready_queues_remove_and_limit() -> None:
    queues = ReadyQueues()
    for number in range(4):
        queues.push(f"run-{number}", Priority.NORMAL, "shell", at(number))
    queues.remove("run-0")

    assert queues.pop_ready({"shell"}, at(10), limit=2) == ["run-1", "run-2"]
    assert queues.pop_ready({"shell"}, at(10), limit=2) == ["run-3"]


def test_lease_table_extend_and_expire() -> None:
    leases = LeaseTable(ttl_s=10)
    leases.grant("run-1", "worker-a", attempt=1, token=7, now=100.0)

    assert leases.extend("worker-a", "run-1", 1, 7, now=105.0)
    assert leases.expired(114.0) == []
    assert [lease.run_id for lease in leases.expired(115.0)] == ["run-1"]


def test_lease_table_rejects_stale_claims() -> None:
    leases = LeaseTable(ttl_s=10)
    leases.grant("run-1", "worker-a", attempt=2, token=9, now=0.0)

    assert not leases.extend("worker-b", "run-1", 2, 9, now=1.0)
    assert not leases.extend("worker-a", "run-1", 1, 9, now=1.0)
    assert not leases.extend("worker-a", "run-1", 2, 8, now=1.0)
    assert not leases.extend("worker-a", "run-2", 2, 9, now=1.0)
    assert leases.is_current("run-1", 2, 9)
    assert leases.release("run-1") is not None
    assert not leases.is_current("run-1", 2, 9)


def test_time_index_load_replaces_entries() -> None:
    index = TimeIndex()
    index.schedule("job-old", T0)
    later = T0 + timedelta(seconds=5)

    index.load({"job-b": later, "job-a": T0 + timedelta(seconds=1), "job-c": later})

    assert len(index) == 3
    assert index.fire_at("job-old") is None
    assert index.pop_due(later, 10) == ["job-a", "job-b", "job-c"]


def _job(**spec_changes: object) -> Job:
    spec = dataclasses.replace(
        JobSpec(name="n", schedule="@every 1s", executor="noop"), **spec_changes
    )
    return Job(id="job-1", spec=spec, next_fire_at=T0, created_at=T0, updated_at=T0)


@pytest.mark.parametrize(
    ("spec_changes", "expected"),
    [
        ({}, T0 - timedelta(milliseconds=500)),
        ({"concurrency_policy": ConcurrencyPolicy.FORBID}, T0),
        ({"concurrency_policy": ConcurrencyPolicy.REPLACE}, T0),
        ({"dependencies": ("job-0",)}, T0),
    ],
)
def test_firing_time_by_policy(spec_changes: dict[str, object], expected: datetime) -> None:
    state = LeaderState(leases=LeaseTable(10), fire_ahead=timedelta(milliseconds=500))

    assert state.firing_time(_job(**spec_changes)) == expected
    assert LeaderState(leases=LeaseTable(10)).firing_time(_job(**spec_changes)) == T0
    paused = dataclasses.replace(_job(**spec_changes), status=JobStatus.PAUSED)
    assert state.firing_time(paused) is None
