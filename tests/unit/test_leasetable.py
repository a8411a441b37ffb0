"""The leader's lease table: grants, releases, and the per-worker index."""

from __future__ import annotations

from taskscheduler.coordinator.leasetable import LeaseTable


def test_held_by_follows_grants_and_releases() -> None:
    table = LeaseTable(ttl_s=10)
    table.grant("job-1.1", "agent-a", 1, 100, now=0.0)
    table.grant("job-1.2", "agent-a", 1, 100, now=0.0)
    table.grant("job-2.1", "agent-b", 1, 101, now=0.0)

    assert sorted(lease.run_id for lease in table.held_by("agent-a")) == ["job-1.1", "job-1.2"]
    assert table.count_held_by("agent-b") == 1

    table.release("job-1.1")
    table.grant("job-2.1", "agent-a", 2, 102, now=1.0)

    assert sorted(lease.run_id for lease in table.held_by("agent-a")) == ["job-1.2", "job-2.1"]
    assert table.count_held_by("agent-b") == 0
    assert table.held_by("agent-b") == []
    assert len(table) == 2


def test_expired_lists_only_past_deadlines() -> None:
    table = LeaseTable(ttl_s=10)
    table.grant("job-1.1", "agent-a", 1, 100, now=0.0)
    table.grant("job-1.2", "agent-a", 1, 100, now=5.0)

    assert table.extend("agent-a", "job-1.2", 1, 100, now=8.0)
    assert not table.extend("agent-b", "job-1.1", 1, 100, now=8.0)

    assert [lease.run_id for lease in table.expired(now=10.0)] == ["job-1.1"]
    assert table.expired(now=17.9) == [table.get("job-1.1")]
    assert len(table.expired(now=18.0)) == 2
