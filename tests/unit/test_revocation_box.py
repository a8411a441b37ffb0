"""Revoked leases noted for an agent until its next poll or heartbeat."""

from __future__ import annotations

from taskscheduler.coordinator.completion_plan import HeldLease
from taskscheduler.coordinator.revocations import MAX_NOTES_PER_AGENT, RevocationBox

LEASE = HeldLease("run-1", 1, 40)
OTHER = HeldLease("run-2", 2, 41)


def test_poll_takes_notes_once() -> None:
    box = RevocationBox()

    box.note("agent-1", LEASE)
    box.note("agent-1", OTHER)

    assert box.has("agent-1") is True
    assert box.has("agent-2") is False
    assert box.take("agent-1") == [LEASE, OTHER]
    assert box.take("agent-1") == []
    assert box.has("agent-1") is False


def test_heartbeat_forgets_notes() -> None:
    box = RevocationBox()
    box.note("agent-1", LEASE)
    box.note("agent-2", OTHER)

    box.forget("agent-1")

    assert box.take("agent-1") == []
    assert box.take("agent-2") == [OTHER]


def test_notes_per_agent_are_capped() -> None:
    box = RevocationBox()

    for attempt in range(MAX_NOTES_PER_AGENT + 5):
        box.note("agent-1", HeldLease("run-1", attempt, 40))

    assert len(box.take("agent-1")) == MAX_NOTES_PER_AGENT
