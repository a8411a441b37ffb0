"""Revoked leases noted for agents with a poll open, and only for those."""

from __future__ import annotations

from taskscheduler.coordinator.completion_plan import HeldLease
from taskscheduler.coordinator.revocations import RevocationBox

LEASE = HeldLease("run-1", 1, 40)
OTHER = HeldLease("run-2", 2, 41)


def test_note_without_open_poll_is_dropped() -> None:
    box = RevocationBox()

    assert box.note("agent-1", LEASE) is False
    assert box.has("agent-1") is False
    assert box.take("agent-1") == []


def test_open_poll_takes_notes_once() -> None:
    box = RevocationBox()
    box.poll_opened("agent-1")

    assert box.note("agent-1", LEASE) is True
    assert box.note("agent-1", OTHER) is True
    assert box.has("agent-1") is True
    assert box.has("agent-2") is False
    assert box.take("agent-1") == [LEASE, OTHER]
    assert box.take("agent-1") == []


def test_closing_last_poll_forgets_notes() -> None:
    box = RevocationBox()
    box.poll_opened("agent-1")
    box.poll_opened("agent-1")
    box.note("agent-1", LEASE)

    box.poll_closed("agent-1")
    assert box.has("agent-1") is True
    box.poll_closed("agent-1")

    assert box.has("agent-1") is False
    assert box.note("agent-1", OTHER) is False
