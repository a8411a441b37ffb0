"""Which leader address a replica names when it rejects a leader-only call."""

from __future__ import annotations

import pytest

from taskscheduler.clock import FakeClock
from taskscheduler.coordinator.election import Election, LeaderInfo
from taskscheduler.coordinator.keys import KeyLayout

ME = LeaderInfo("coordinator-1", "127.0.0.1:50051")
OTHER = LeaderInfo("coordinator-2", "127.0.0.1:50052")


@pytest.mark.parametrize(
    ("seen_leader", "leader_address", "other_leader_address"),
    [
        (None, "", ""),
        (ME, ME.address, ""),
        (OTHER, OTHER.address, OTHER.address),
        # Another id on this address, such as an earlier run of this process.
        (LeaderInfo("coordinator-3", ME.address), ME.address, ME.address),
    ],
)
def test_replica_never_names_itself_leader(
    seen_leader: LeaderInfo | None, leader_address: str, other_leader_address: str
) -> None:
    election = Election(None, KeyLayout("/taskscheduler"), ME, ttl_s=5, clock=FakeClock())  # type: ignore[arg-type]
    election.leader = seen_leader

    assert election.leader_address == leader_address
    assert election.other_leader_address == other_leader_address
