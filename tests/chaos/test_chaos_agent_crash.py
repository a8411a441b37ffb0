"""SIGKILL an agent in the middle of `sleep 5` runs: its leases expire and the runs retry.

Each run has one retry (retryPolicy maxRetries 1). The runs of the killed
agent end attempt 1 as `lease-expired` and complete in attempt 2 on another
agent. The runs on the surviving agents complete in attempt 1.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import aetcd
import pytest
from chaos_cluster import (
    Cluster,
    create_jobs,
    events_after,
    one_time_job,
    read_runs,
    sleep_until,
    start_cluster,
    utc_now,
)
from harness import FAST_COORDINATOR_FLAGS, ApiClient, Components, wait_until_async

from taskscheduler.coordinator.model import Run, RunStatus

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

RUNS = 6
SLEEP_S = 5
# The agent dies this long after the first attempt started, in the middle of the sleep.
KILL_AFTER_S = 2.0
LEASE_TTL_S = float(str(FAST_COORDINATOR_FLAGS["lease_ttl_s"]))


async def test_killed_agent_runs_retry_elsewhere(
    components: Components, etcd_client: aetcd.Client
) -> None:
    cluster = await start_cluster(components, etcd_client)
    gateway = await asyncio.to_thread(components.start_gateway)
    addresses = [str(handle.address) for handle in cluster.coordinators]
    jobs = [
        one_time_job(f"sleeper-{index}", utc_now(), ["sleep", str(SLEEP_S)], max_retries=1)
        for index in range(RUNS)
    ]
    job_ids = await create_jobs(addresses, jobs)

    # Kill the agent running the most runs, in the middle of their sleep.
    running = await wait_until_async(
        lambda: _all_running(cluster, job_ids),
        timeout_s=15,
        message=f"all {RUNS} runs running",
    )
    holders = Counter(run.worker_id for run in running)
    victim_id, victim_runs = holders.most_common(1)[0]
    victim = cluster.agent_named(victim_id)
    first_start = min(run.started_at for run in running if run.started_at is not None)
    await sleep_until(first_start + timedelta(seconds=KILL_AFTER_S))
    killed_at = utc_now()
    victim.kill()
    print(
        f"runs per agent {dict(holders)}; killed {victim.name} ({victim_runs} runs) "
        f"{(killed_at - first_start).total_seconds():.2f} s after the first attempt started"
    )
    assert events_after(victim, "attempt finished", first_start) == []

    # Every run completes: the victim's in attempt 2 elsewhere, the others in attempt 1.
    finished = await wait_until_async(
        lambda: _all_completed(cluster, job_ids),
        timeout_s=LEASE_TTL_S + 3 * SLEEP_S + 10,
        interval_s=0.25,
        message=f"all {RUNS} runs completed",
    )
    survivors = {agent.worker_id for agent in cluster.agents if agent is not victim}
    retried = [run for run in finished if run.attempts[0].worker_id == victim_id]
    assert len(retried) == victim_runs
    for run in retried:
        first, second = run.attempts
        print(
            f"{run.id}: lease expired {(first.completed_at - killed_at).total_seconds():.2f} s "
            f"after the kill; attempt 2 on {second.worker_id}"
        )
        assert run.attempt == 2
        assert first.outcome.value == "lease-expired"
        assert second.outcome.value == "succeeded"
        assert second.worker_id in survivors
        assert second.started_at is not None and second.started_at > killed_at
    for run in finished:
        if run not in retried:
            assert [a.outcome.value for a in run.attempts] == ["succeeded"]
            assert run.attempts[0].worker_id in survivors

    # The REST history shows the same attempts.
    with ApiClient(gateway.url) as api:
        for run in retried:
            (history,) = await asyncio.to_thread(api.history, run.job_id)
            assert history["status"] == "completed"
            assert history["attempt"] == 2
            assert [a["outcome"] for a in history["attempts"]] == ["lease-expired", "succeeded"]
            assert history["attempts"][0]["workerId"] == victim_id
            assert history["attempts"][1]["workerId"] != victim_id
            assert history["workerId"] == history["attempts"][1]["workerId"]


async def _runs_of(cluster: Cluster, job_ids: list[str]) -> list[Run]:
    wanted = set(job_ids)
    return [run for run in await read_runs(cluster) if run.job_id in wanted]


async def _all_running(cluster: Cluster, job_ids: list[str]) -> list[Run] | None:
    runs = await _runs_of(cluster, job_ids)
    if len(runs) == len(job_ids) and all(run.status is RunStatus.RUNNING for run in runs):
        return runs
    return None


async def _all_completed(cluster: Cluster, job_ids: list[str]) -> list[Run] | None:
    runs = await _runs_of(cluster, job_ids)
    if len(runs) == len(job_ids) and all(run.status is RunStatus.COMPLETED for run in runs):
        return runs
    return None
