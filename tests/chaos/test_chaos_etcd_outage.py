"""Stop etcd for 10 s under load, start it again on the same data dir and port.

Nothing accepted is lost: every job created before the stop still exists,
and every attempt an agent logged as succeeded ends as a completed run,
including one that finished while etcd was down. Health reports etcd as
unreachable during the outage, and scheduling resumes by itself, with the
same coordinator processes.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta

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
    one_time_job,
    read_jobs,
    read_runs,
    recurring_job,
    shared_slots,
    sleep_until,
    start_cluster,
    utc_now,
)
from harness import ApiClient, Components, wait_until_async

from taskscheduler.coordinator.model import Run, RunStatus
from taskscheduler.etcd_server import EtcdServer
from taskscheduler.v1 import monitoring_pb2

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

OUTAGE_S = 10.0
RECURRING_JOBS = 10
# The long run is running when etcd stops and finishes during the outage.
LONG_RUN_S = 3
LONG_OUTPUT = "finished while etcd was down"


async def test_etcd_outage_loses_nothing_and_scheduling_resumes(
    private_etcd: EtcdServer, private_etcd_client: aetcd.Client, components: Components
) -> None:
    cluster = await start_cluster(components, private_etcd_client)
    gateway = await asyncio.to_thread(components.start_gateway)
    addresses = [str(handle.address) for handle in cluster.coordinators]
    recurring = [
        recurring_job(f"tick-{i}", "@every 1s", ["echo", "tick"]) for i in range(RECURRING_JOBS)
    ]
    created_at = utc_now()
    recurring_ids = await create_jobs(addresses, recurring)
    await wait_until_async(
        lambda: _each_completed_twice(cluster, recurring_ids, created_at),
        timeout_s=20,
        interval_s=0.5,
        message="every recurring job completes two runs before the outage",
    )
    long_job = one_time_job(
        "outlives-etcd", utc_now(), ["sh", "-c", f"sleep {LONG_RUN_S}; echo {LONG_OUTPUT}"]
    )
    (long_job_id,) = await create_jobs(addresses, [long_job])
    long_run = await wait_until_async(
        lambda: _run_of(cluster, long_job_id, RunStatus.RUNNING),
        timeout_s=15,
        message="the long run is running",
    )
    jobs_before = set(await read_jobs(cluster))
    pids_before = [handle.pid for handle in cluster.coordinators]

    # Stop etcd; health reports it, writes are rejected, the long run finishes.
    stopped_at = utc_now()
    await asyncio.to_thread(private_etcd.stop)
    healths = await wait_until_async(
        lambda: _healths_if_etcd_unreachable(addresses),
        timeout_s=15,
        message="every coordinator reports etcd unreachable",
    )
    async with httpx.AsyncClient(base_url=gateway.url, timeout=15) as client:
        health_over_rest = (await client.get("/health")).json()
        rejected = await client.post(
            "/api/jobs",
            json={
                "name": "during-outage",
                "schedule": "@every 1h",
                "executor": "shell",
                "payload": {"command": ["true"]},
            },
        )
    finished_during = await wait_until_async(
        lambda: _finished_anywhere(cluster, long_run.id, stopped_at),
        timeout_s=LONG_RUN_S + 10,
        message="the long run finishes on its agent while etcd is down",
    )
    await sleep_until(stopped_at + timedelta(seconds=OUTAGE_S))

    # Start etcd again on the same data dir and port.
    down_s = (utc_now() - stopped_at).total_seconds()
    await asyncio.to_thread(private_etcd.start)
    restarted_at = utc_now()
    serving_s = (restarted_at - stopped_at).total_seconds()
    print(f"etcd stopped for {down_s:.2f} s, serving again {serving_s:.2f} s after the stop")

    # Scheduling resumes by itself: every recurring job completes a new slot.
    await wait_until_async(
        lambda: each_completed_since(cluster, recurring_ids, restarted_at),
        timeout_s=30,
        interval_s=0.5,
        message="every recurring job completes a run scheduled after the restart",
    )
    resumed = min(
        (
            record["at"]
            for handle in cluster.coordinators
            for record in events_after(handle, "attempt assigned", restarted_at)
        ),
        default=None,
    )
    assert resumed is not None
    print(f"first attempt assigned {(resumed - restarted_at).total_seconds():.2f} s after restart")

    # Every attempt an agent logged as succeeded is a completed run.
    reported = _succeeded_run_ids(cluster)
    await wait_until_async(
        lambda: _all_completed(cluster, reported),
        timeout_s=30,
        interval_s=0.5,
        message="every run reported as succeeded is completed",
    )
    print(f"{len(reported)} attempts logged as succeeded by the agents are completed runs")

    for health in healths:
        assert health.etcd_reachable is False
        assert any(problem.startswith("etcd unreachable") for problem in health.problems)
        assert health.status == "degraded"
    assert health_over_rest["data"]["etcdReachable"] is False
    assert rejected.status_code == 503, rejected.text
    assert rejected.json()["success"] is False
    assert stopped_at < finished_during[0]["at"] < restarted_at
    assert long_run.id in reported
    long_after = await _run_of(cluster, long_job_id, RunStatus.COMPLETED)
    assert long_after is not None
    assert long_after.output == LONG_OUTPUT + "\n"
    assert long_after.attempt == 1
    with ApiClient(gateway.url) as api:
        (history,) = await asyncio.to_thread(api.history, long_job_id)
    assert history["status"] == "completed"
    assert history["output"] == LONG_OUTPUT + "\n"
    assert [attempt["outcome"] for attempt in history["attempts"]] == ["succeeded"]
    assert jobs_before == {*recurring_ids, long_job_id}
    assert set(await read_jobs(cluster)) == jobs_before
    assert [handle.pid for handle in cluster.coordinators] == pids_before
    assert all(handle.is_running for handle in cluster.coordinators)
    assert shared_slots(await read_runs(cluster)) == []


async def _run_of(cluster: Cluster, job_id: str, status: RunStatus) -> Run | None:
    runs = [run for run in await read_runs(cluster) if run.job_id == job_id]
    return runs[0] if len(runs) == 1 and runs[0].status is status else None


async def _healths_if_etcd_unreachable(
    addresses: list[str],
) -> list[monitoring_pb2.GetHealthResponse] | None:
    healths = await asyncio.gather(*(get_health(address) for address in addresses))
    return list(healths) if all(not health.etcd_reachable for health in healths) else None


def _finished_anywhere(cluster: Cluster, run_id: str, after: datetime) -> list[dict]:
    return [
        record
        for agent in cluster.agents
        for record in events_after(agent, "attempt finished", after, run_id=run_id)
    ]


def _succeeded_run_ids(cluster: Cluster) -> set[str]:
    return {
        record["run_id"]
        for agent in cluster.agents
        for record in log_events(agent, "attempt finished")
        if record.get("outcome") == "succeeded"
    }


async def _all_completed(cluster: Cluster, run_ids: set[str]) -> bool:
    """Return True when every run in `run_ids` is completed; else raise, naming the others.

    wait_until_async shows the last exception, so a timeout names the missing runs.
    """
    statuses = {run.id: run.status for run in await read_runs(cluster)}
    missing = sorted(run_id for run_id in run_ids if statuses.get(run_id) != RunStatus.COMPLETED)
    if missing:
        raise AssertionError(f"not completed: {missing[:10]} ({len(missing)} in all)")
    return True


async def _each_completed_twice(cluster: Cluster, job_ids: list[str], since: datetime) -> bool:
    completed = Counter(
        run.job_id
        for run in await read_runs(cluster)
        if run.status is RunStatus.COMPLETED and run.scheduled_at > since
    )
    return all(completed[job_id] >= 2 for job_id in job_ids)
