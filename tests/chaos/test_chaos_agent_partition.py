"""An agent cut off from every coordinator for 10 s while its run finishes.

The agent reaches the cluster only through a TCP proxy in front of the
leader, and the test cuts that proxy (open connections closed, new ones
refused). The attempt lease (30 s) outlives the cut, so the result waits
in the agent's outbox and is recorded once, after the agent reconnects.
Two more agents start during the cut: had the lease expired, one of them
would have taken a second attempt.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import aetcd
import grpc
import pytest
from chaos_cluster import (
    Cluster,
    create_jobs,
    events_after,
    log_events,
    one_time_job,
    read_leader,
    read_runs,
    sleep_until,
    start_agent,
    start_cluster,
    utc_now,
    wait_for_leader,
)
from chaos_proxy import CuttableProxy
from harness import AgentHandle, Components, wait_until_async

from taskscheduler.coordinator.model import Run, RunStatus
from taskscheduler.v1 import jobs_pb2, jobs_pb2_grpc, types_pb2

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

LEASE_TTL_S = 30
CUT_S = 10.0
RUN_S = 3
OUTPUT = "done after the cut\n"
# A run record is written three times when nothing goes wrong: created
# (queued), assigned (running) and finished (completed).
RUN_RECORD_WRITES = 3


async def test_cut_off_agent_reports_once_after_reconnect(
    components: Components, etcd_client: aetcd.Client
) -> None:
    cluster = await start_cluster(components, etcd_client, agents=0, lease_ttl_s=LEASE_TTL_S)
    leader = await wait_for_leader(cluster)
    proxy = CuttableProxy(leader.address)
    await proxy.start()
    try:
        subject = await start_agent(cluster, coordinators=proxy.address)
        cluster.agents.append(subject)
        (job_id,) = await create_jobs(
            [leader.address],
            [
                one_time_job(
                    "outlives-the-cut",
                    utc_now(),
                    ["sh", "-c", f"sleep {RUN_S}; echo {OUTPUT.strip()}"],
                    max_retries=1,
                )
            ],
        )
        run = await wait_until_async(
            lambda: _run_in(cluster, job_id, RunStatus.RUNNING),
            timeout_s=15,
            message="the run is running",
        )
        assert run.worker_id == subject.worker_id
        # "running" in etcd is written before the agent receives the assignment;
        # cut only once the agent has started the attempt.
        await wait_until_async(
            lambda: _started(subject, run.id) >= 1,
            timeout_s=10,
            message="the agent started the attempt",
        )

        # Cut the agent off; its run finishes during the cut.
        cut_at = utc_now()
        await proxy.cut()
        for _ in range(2):
            cluster.agents.append(await start_agent(cluster))
        finished = await wait_until_async(
            lambda: events_after(subject, "attempt finished", cut_at, run_id=run.id),
            timeout_s=RUN_S + 10,
            message="the cut-off agent finishes the attempt",
        )
        await sleep_until(cut_at + timedelta(seconds=CUT_S))
        during_cut = await _run_in(cluster, job_id, RunStatus.RUNNING)
        restored_at = utc_now()
        await proxy.restore()

        # Reconnected, the agent delivers the result from its outbox.
        completed = await wait_until_async(
            lambda: _run_in(cluster, job_id, RunStatus.COMPLETED),
            timeout_s=30,
            interval_s=0.25,
            message="the run is completed after the agent reconnects",
        )
        # Stopped while the proxy still forwards, so it can deregister.
        await asyncio.to_thread(subject.stop)
    finally:
        await proxy.close()
    recorded_at = completed.completed_at
    recorded_after_s = (_run_finished_at(cluster, run.id) - restored_at).total_seconds()
    print(
        f"cut for {(restored_at - cut_at).total_seconds():.2f} s; attempt finished "
        f"{(finished[0]['at'] - cut_at).total_seconds():.2f} s into the cut; result recorded "
        f"{recorded_after_s:.2f} s after reconnecting"
    )

    # The agent followed no redirect around the proxy: the leader stayed the same.
    assert await read_leader(cluster) == leader
    assert during_cut is not None, "the run left `running` while its agent was cut off"
    assert cut_at < finished[0]["at"] < restored_at
    assert finished[0]["outcome"] == "succeeded"
    assert recorded_at is not None
    assert completed.attempt == 1
    assert [a.worker_id for a in completed.attempts] == [subject.worker_id]
    assert [a.outcome.value for a in completed.attempts] == ["succeeded"]
    assert completed.output == OUTPUT
    assert await _run_record_version(cluster, run.id) == RUN_RECORD_WRITES
    assert [_started(agent, run.id) for agent in cluster.agents] == [1, 0, 0]
    finishes = [
        record
        for handle in cluster.coordinators
        for record in log_events(handle, "run finished")
        if record.get("run_id") == run.id
    ]
    assert len(finishes) == 1
    assert finishes[0]["at"] > restored_at

    # The history over the API shows the same single attempt.
    (history,) = await _history(leader.address, job_id)
    assert history.status == types_pb2.RUN_STATUS_COMPLETED
    assert len(history.attempts) == 1
    assert history.output == OUTPUT


async def _run_in(cluster: Cluster, job_id: str, status: RunStatus) -> Run | None:
    runs = [run for run in await read_runs(cluster) if run.job_id == job_id]
    assert len(runs) <= 1, runs
    return runs[0] if runs and runs[0].status is status else None


async def _run_record_version(cluster: Cluster, run_id: str) -> int:
    job_id, _, suffix = run_id.partition(".")
    kv = await cluster.etcd.get(f"{cluster.prefix}/runs/{job_id}/{suffix}".encode())
    assert kv is not None
    return int(kv.version)


def _run_finished_at(cluster: Cluster, run_id: str) -> datetime:
    for handle in cluster.coordinators:
        for record in log_events(handle, "run finished"):
            if record.get("run_id") == run_id:
                return record["at"]
    raise AssertionError(f"no coordinator logged that run {run_id} finished")


def _started(agent: AgentHandle, run_id: str) -> int:
    return sum(1 for record in log_events(agent, "attempt started") if record["run_id"] == run_id)


async def _history(address: str, job_id: str) -> list[types_pb2.Run]:
    async with grpc.aio.insecure_channel(address) as channel:
        stub = jobs_pb2_grpc.JobServiceStub(channel)
        request = jobs_pb2.ListJobHistoryRequest(job_id=job_id)
        response = await stub.ListJobHistory(request, timeout=10)
    return list(response.runs)
