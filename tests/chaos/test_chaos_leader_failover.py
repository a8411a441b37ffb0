"""SIGKILL the leader three times while 500 one-time and 20 per-second jobs fire.

Three coordinators and three agents share one etcd prefix. After each kill
the test measures the failover time (kill -> first attempt assigned by the
new leader, from the new leader's log) and restarts the killed replica, so
three stay up. Afterwards every one-time job has exactly one completed run
and no slot has two runs.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta

import aetcd
import httpx
import pytest
from chaos_cluster import (
    Cluster,
    create_jobs,
    each_completed_since,
    events_after,
    get_health,
    log_events,
    misnamed_runs,
    one_time_job,
    read_jobs,
    read_runs,
    recurring_job,
    runs_by_job,
    shared_slots,
    sleep_until,
    start_cluster,
    utc_now,
    wait_for_leader,
)
from harness import FAST_COORDINATOR_FLAGS, Components, wait_until_async

from taskscheduler.coordinator.model import JobStatus, RunStatus

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

ONE_TIME_JOBS = 500
RECURRING_JOBS = 20
# The one-time instants are spread evenly over this window, which starts
# LEAD_S after the jobs are sent, so creating them does not eat the window.
SPREAD_S = 20.0
LEAD_S = 4.0
# Kills happen this far into the window, so each one hits one-time runs firing.
KILL_OFFSETS_S = (2.0, 9.0, 16.0)
ELECTION_TTL_S = float(str(FAST_COORDINATOR_FLAGS["election_ttl_s"]))
FAILOVER_LIMIT_S = ELECTION_TTL_S + 2.0
# A one-time run may lose its assignment in flight to a killed leader. Its
# lease then expires, and the retry policy gives the run another attempt.
MAX_RETRIES = 3


@dataclass(frozen=True)
class Failover:
    killed: str
    successor: str
    elected_after_s: float
    assigned_after_s: float


async def test_leader_kills_keep_one_run_per_slot(
    components: Components, etcd_client: aetcd.Client
) -> None:
    cluster = await start_cluster(components, etcd_client)
    gateway = await asyncio.to_thread(components.start_gateway)
    addresses = [str(handle.address) for handle in cluster.coordinators]

    # Create the recurring load, then the one-time jobs spread over the window.
    recurring = [
        recurring_job(f"every-second-{index:02d}", "@every 1s", ["true"])
        for index in range(RECURRING_JOBS)
    ]
    recurring_ids = await create_jobs(addresses, recurring)
    window_start = utc_now() + timedelta(seconds=LEAD_S)
    one_time = [
        one_time_job(
            f"once-{index:03d}",
            window_start + timedelta(seconds=SPREAD_S * index / ONE_TIME_JOBS),
            ["true"],
            max_retries=MAX_RETRIES,
        )
        for index in range(ONE_TIME_JOBS)
    ]
    sent_at = time.monotonic()
    one_time_ids = await create_jobs(addresses, one_time)
    print(f"created {ONE_TIME_JOBS} one-time jobs in {time.monotonic() - sent_at:.2f} s")

    # Kill the leader three times during the window; restart each victim.
    failovers = []
    for offset_s in KILL_OFFSETS_S:
        await sleep_until(window_start + timedelta(seconds=offset_s))
        failovers.append(await _kill_leader(cluster))
    for number, failover in enumerate(failovers, start=1):
        print(
            f"failover {number}: killed {failover.killed}, new leader {failover.successor}, "
            f"elected after {failover.elected_after_s:.2f} s, "
            f"first attempt assigned after {failover.assigned_after_s:.2f} s"
        )

    # Wait for every one-time job to finish, then check history in etcd.
    last_failover_at = utc_now()
    await wait_until_async(
        lambda: _all_completed(cluster, one_time_ids),
        timeout_s=SPREAD_S + 60,
        interval_s=0.5,
        message="every one-time job has a completed run",
    )
    runs = await read_runs(cluster)
    grouped = runs_by_job(runs)
    not_one_run = {
        job_id: [(run.id, run.status.value) for run in grouped.get(job_id, [])]
        for job_id in one_time_ids
        if [run.status for run in grouped.get(job_id, [])] != [RunStatus.COMPLETED]
    }
    retried = [grouped[job_id][0].id for job_id in one_time_ids if grouped[job_id][0].attempt > 1]
    print(f"{len(runs)} runs in etcd; {len(retried)} one-time runs needed a second attempt")
    assert not_one_run == {}
    assert shared_slots(runs) == []
    assert misnamed_runs(runs) == []
    jobs = await read_jobs(cluster)
    not_completed = [
        job_id for job_id in one_time_ids if jobs[job_id].status is not JobStatus.COMPLETED
    ]
    assert not_completed == []

    # No attempt ran twice: each agent start names a distinct (run, attempt).
    starts = Counter(
        (record["run_id"], record["attempt"])
        for agent in cluster.agents
        for record in log_events(agent, "attempt started")
    )
    assert [start for start, count in starts.items() if count > 1] == []

    # The REST history agrees: one completed run per one-time job.
    started = time.monotonic()
    histories = await _rest_histories(gateway.url, one_time_ids)
    print(f"read {len(histories)} histories over REST in {time.monotonic() - started:.2f} s")
    wrong_histories = {
        job_id: [run["status"] for run in history]
        for job_id, history in histories.items()
        if [run["status"] for run in history] != ["completed"]
    }
    assert wrong_histories == {}

    # The recurring jobs kept firing after the last failover.
    await wait_until_async(
        lambda: each_completed_since(cluster, recurring_ids, last_failover_at),
        timeout_s=20,
        interval_s=0.5,
        message="every recurring job completed a run scheduled after the last failover",
    )

    for failover in failovers:
        assert failover.assigned_after_s < FAILOVER_LIMIT_S, failover


async def _kill_leader(cluster: Cluster) -> Failover:
    """SIGKILL the leader, wait for its successor's first assignment, restart the victim."""
    leader = await wait_for_leader(cluster)
    victim = cluster.coordinator_at(leader.address)
    assert (await get_health(leader.address)).role == "leader"

    killed_at = utc_now()
    victim.kill()
    successor_record = await wait_for_leader(
        cluster, other_than=leader.address, timeout_s=ELECTION_TTL_S + 15
    )
    successor = cluster.coordinator_at(successor_record.address)
    elected = await wait_until_async(
        lambda: events_after(successor, "elected leader", killed_at),
        timeout_s=10,
        message=f"{successor.name} logs its election",
    )
    assigned = await wait_until_async(
        lambda: events_after(successor, "attempt assigned", killed_at),
        timeout_s=20,
        message=f"{successor.name} assigns a first attempt",
    )
    await asyncio.to_thread(victim.restart)
    return Failover(
        killed=victim.name,
        successor=successor.name,
        elected_after_s=(elected[0]["at"] - killed_at).total_seconds(),
        assigned_after_s=(assigned[0]["at"] - killed_at).total_seconds(),
    )


async def _all_completed(cluster: Cluster, job_ids: list[str]) -> bool:
    grouped = runs_by_job(await read_runs(cluster))
    return all(
        any(run.status is RunStatus.COMPLETED for run in grouped.get(job_id, []))
        for job_id in job_ids
    )


async def _rest_histories(base_url: str, job_ids: list[str]) -> dict[str, list[dict]]:
    limit = asyncio.Semaphore(16)

    async def history(client: httpx.AsyncClient, job_id: str) -> tuple[str, list[dict]]:
        async with limit:
            response = await client.get(f"/api/jobs/{job_id}/history")
        body = response.json()
        assert response.status_code == 200, body
        return job_id, body["data"]

    async with httpx.AsyncClient(base_url=base_url, timeout=10) as client:
        pairs = await asyncio.gather(*(history(client, job_id) for job_id in job_ids))
    return dict(pairs)
