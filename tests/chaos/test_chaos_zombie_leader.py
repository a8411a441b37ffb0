"""A leader frozen past its election TTL comes back as a follower, and none of its writes land.

Why the check is sound: only coordinators write to this test's private etcd
(agents and clients here go through coordinators). After the new leader is
elected, the test freezes the new leader and the third replica too, waits
until etcd's revision stops moving, records it, and only then resumes the
old leader. It wakes with overdue timers in its firing, liveness and
lease-expiry loops and with long polls still open from before the freeze,
so any late scheduling write it makes happens while it is the only process
running (the test prints its warnings, which show the attempts). If one
had landed, etcd's revision would have moved. The freeze of the others is
kept well under the election TTL, and the test checks afterwards that the
leader key still has the same create revision, so no other replica could
have become leader and written in between.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import aetcd
import pytest
from chaos_cluster import (
    Cluster,
    create_jobs,
    etcd_revision,
    events_after,
    get_health,
    log_events,
    read_leader,
    read_runs,
    recurring_job,
    start_cluster,
    utc_now,
    wait_for_leader,
)
from harness import Components, ProcessHandle, wait_until_async

from taskscheduler.coordinator.model import RunStatus
from taskscheduler.etcd_server import EtcdServer
from taskscheduler.v1 import monitoring_pb2

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

# Long enough that freezing the new leader for the settle reads and the
# observation window (under 4 s together) cannot let its election lease expire.
ELECTION_TTL_S = 6
MAX_WINDOW_S = 2.5
# After the zombie logs that its leader loops stopped, it gets this long to
# send anything else it had queued.
SETTLE_S = 0.5
RECURRING_JOBS = 10


async def test_frozen_leader_writes_nothing_after_thaw(
    private_etcd: EtcdServer, private_etcd_client: aetcd.Client, components: Components
) -> None:
    cluster = await start_cluster(
        components, private_etcd_client, election_ttl_s=ELECTION_TTL_S, lease_ttl_s=10
    )
    addresses = [str(handle.address) for handle in cluster.coordinators]
    jobs = [recurring_job(f"tick-{i}", "@every 1s", ["true"]) for i in range(RECURRING_JOBS)]
    created_at = utc_now()
    await create_jobs(addresses, jobs)
    await wait_until_async(
        lambda: _completed_runs_since(cluster, created_at), timeout_s=15, message="runs completing"
    )

    # Freeze the leader until a new one is elected and schedules.
    old_record = await wait_for_leader(cluster)
    zombie = cluster.coordinator_at(old_record.address)
    frozen_at = utc_now()
    zombie.pause()
    new_record = await wait_for_leader(
        cluster, other_than=zombie.address or "", timeout_s=ELECTION_TTL_S + 15
    )
    leader = cluster.coordinator_at(new_record.address)
    # Agents whose calls hang on the frozen leader reach the new one only when
    # those calls time out (PollWork: poll wait 10 s + 5 s margin).
    assigned = await wait_until_async(
        lambda: events_after(leader, "attempt assigned", frozen_at),
        timeout_s=25,
        message="the new leader assigns attempts",
    )
    elected = events_after(leader, "elected leader", frozen_at)
    print(
        f"froze {zombie.name} (fence {old_record.fence}); {leader.name} elected with fence "
        f"{new_record.fence} {_seconds_after(elected, frozen_at)} s and first assigned "
        f"{_seconds_after(assigned, frozen_at)} s after the freeze"
    )

    # Only the zombie runs during the window; etcd's revision must not move.
    others = [handle for handle in cluster.coordinators if handle is not zombie]
    for handle in others:
        handle.pause()
    try:
        revision_before = await _settled_revision(cluster)
        thawed_at = utc_now()
        zombie.resume()
        await _wait_for_zombie_to_step_down(zombie, thawed_at)
        revision_after = await etcd_revision(cluster)
        window_s = (utc_now() - thawed_at).total_seconds()
    finally:
        for handle in others:
            handle.resume()
    print(f"zombie alone for {window_s:.2f} s; etcd revision {revision_before} -> {revision_after}")
    _print_zombie_log(zombie, thawed_at)

    assert revision_after == revision_before
    assert events_after(zombie, "leadership lost", thawed_at) != []
    assert window_s < MAX_WINDOW_S
    assert await read_leader(cluster) == new_record

    # The zombie is a follower that names the new leader; scheduling goes on.
    health = await wait_until_async(
        lambda: _health_if_follower(zombie, str(leader.address)),
        timeout_s=10,
        message=f"{zombie.name} reports itself a follower of {leader.name}",
    )
    assert health.role == "follower"
    assert health.leader == leader.address
    resumed_at = utc_now()
    await wait_until_async(
        lambda: _completed_runs_since(cluster, resumed_at),
        timeout_s=15,
        message="runs completing after the others resumed",
    )


async def _settled_revision(cluster: Cluster) -> int:
    """Return etcd's revision once two reads 0.3 s apart agree (writes in flight have landed)."""
    previous = await etcd_revision(cluster)
    for _ in range(20):
        await asyncio.sleep(0.3)
        current = await etcd_revision(cluster)
        if current == previous:
            return current
        previous = current
    raise AssertionError(f"etcd revision kept moving with every coordinator frozen: {current}")


async def _wait_for_zombie_to_step_down(zombie: ProcessHandle, thawed_at: datetime) -> None:
    await wait_until_async(
        lambda: events_after(zombie, "leader loops stopped", thawed_at),
        timeout_s=MAX_WINDOW_S - SETTLE_S,
        interval_s=0.05,
        message=f"{zombie.name} stops its leader loops after the thaw",
    )
    await asyncio.sleep(SETTLE_S)


def _print_zombie_log(zombie: ProcessHandle, thawed_at: datetime) -> None:
    """Print the warnings the zombie logged after the thaw, such as the writes it tried."""
    for record in log_events(zombie):
        if record["at"] > thawed_at and record.get("level") in ("warning", "error"):
            details = {k: v for k, v in record.items() if k not in ("at", "timestamp", "process")}
            print(f"zombie log after the thaw: {details}")


def _seconds_after(records: list[dict], moment: datetime) -> str:
    return f"{(records[0]['at'] - moment).total_seconds():.2f}" if records else "?"


async def _health_if_follower(
    handle: ProcessHandle, leader_address: str
) -> monitoring_pb2.GetHealthResponse | None:
    health = await get_health(str(handle.address))
    return health if health.role == "follower" and health.leader == leader_address else None


async def _completed_runs_since(cluster: Cluster, since: datetime) -> bool:
    return any(
        run.status is RunStatus.COMPLETED and run.scheduled_at > since
        for run in await read_runs(cluster)
    )
