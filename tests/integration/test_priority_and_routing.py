"""Strict priority order and label routing, on a real coordinator, agents and etcd."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from harness import AgentHandle, ApiClient, Components, ProcessHandle, wait_until

from taskscheduler.coordinator import etcd

pytestmark = pytest.mark.integration

PRIORITY_RANK = {"critical": 3, "high": 2, "normal": 1, "low": 0}


async def _count_keys(endpoint: str, prefix: str) -> int:
    store = etcd.Etcd([endpoint])
    try:
        return (await store.range_prefix(prefix, count_only=True)).count
    finally:
        await store.close()


async def test_priority_order_on_one_slot_agent(
    start_coordinator: Callable[..., ProcessHandle],
    start_agent: Callable[..., AgentHandle],
    start_gateway: Callable[..., ProcessHandle],
    etcd_prefix: str,
    components: Components,
) -> None:
    start_coordinator(priority_aging_s=100_000)
    gateway = start_gateway()
    rng = random.Random(7)
    base = datetime.now(UTC) - timedelta(hours=1)
    expected: list[tuple[int, str, str]] = []
    with ApiClient(gateway.url) as api:
        # 200 one-time jobs due in the past, in shuffled priority and due order.
        for offset_s in rng.sample(range(200), 200):
            priority = rng.choice(list(PRIORITY_RANK))
            due = (base + timedelta(seconds=offset_s)).isoformat()
            job = api.create_job(type="one-time", schedule=due, priority=priority)
            expected.append((-PRIORITY_RANK[priority], due, job["id"]))
        queued = 0
        deadline = datetime.now(UTC) + timedelta(seconds=20)
        while queued < 200 and datetime.now(UTC) < deadline:
            queued = await _count_keys(components.etcd_endpoint, f"{etcd_prefix}/queue/")
            await asyncio.sleep(0.2)
        assert queued == 200

        start_agent(max_concurrent=1)
        runs = wait_until(
            lambda: _finished_runs(api, [job_id for _, _, job_id in expected]),
            timeout_s=45,
            interval_s=1.0,
            message="200 completed runs",
        )

    started_order = [run["jobId"] for run in sorted(runs, key=_fencing_token)]
    assert started_order == [job_id for _, _, job_id in sorted(expected)]


def _fencing_token(run: dict) -> int:
    return int(run["attempts"][0]["fencingToken"])


def _finished_runs(api: ApiClient, job_ids: list[str]) -> list[dict] | None:
    runs = []
    for job_id in job_ids:
        history = api.history(job_id)
        if not history or history[0]["status"] != "completed":
            return None
        runs.append(history[0])
    return runs


def test_selector_routing_and_waiting_reason(
    start_coordinator: Callable[..., ProcessHandle],
    start_agent: Callable[..., AgentHandle],
    start_gateway: Callable[..., ProcessHandle],
) -> None:
    start_coordinator()
    plain = start_agent(labels="gpu=false", max_concurrent=4)
    gpu = start_agent(labels="gpu=true", max_concurrent=4)
    gateway = start_gateway()
    with ApiClient(gateway.url) as api:
        gpu_job = api.create_job(schedule="@every 1s", selector={"gpu": "true"})
        mars_job = api.create_job(
            type="one-time", schedule=datetime.now(UTC).isoformat(), selector={"zone": "mars"}
        )
        assert gpu_job["selector"] == {"gpu": "true"}

        completed = wait_until(
            lambda: _at_least(
                5, [r for r in api.history(gpu_job["id"]) if r["status"] == "completed"]
            ),
            timeout_s=20,
            message="five completed gpu runs",
        )
        waiting = wait_until(
            lambda: [r for r in api.history(mars_job["id"]) if r.get("waitingReason")],
            timeout_s=10,
            message="the mars run shows a waiting reason",
        )[0]
        status = api.get(f"/api/jobs/{mars_job['id']}/status")

    assert {run["workerId"] for run in completed} == {gpu.worker_id}
    assert plain.worker_id != gpu.worker_id
    assert waiting["status"] == "queued"
    assert waiting["waitingReason"] == (
        "no online agent offering executor 'shell' has labels zone=mars"
    )
    assert status["latestRun"]["waitingReason"] == waiting["waitingReason"]


def _at_least(count: int, runs: list[dict]) -> list[dict] | None:
    return runs if len(runs) >= count else None


def test_unroutable_runs_do_not_hold_back_routable_ones(
    start_coordinator: Callable[..., ProcessHandle],
    start_agent: Callable[..., AgentHandle],
    start_gateway: Callable[..., ProcessHandle],
) -> None:
    start_coordinator(max_queued_in_memory=2)
    start_agent()
    gateway = start_gateway()
    with ApiClient(gateway.url) as api:
        stuck = api.create_job(
            schedule="0 0 1 1 *",
            priority="low",
            selector={"zone": "mars"},
            payload={"command": ["true"]},
        )["id"]
        for _ in range(3):
            api.post(f"/api/jobs/{stuck}/execute")
        plain = api.create_job(schedule="0 0 1 1 *", priority="low", payload={"command": ["true"]})
        api.post(f"/api/jobs/{plain['id']}/execute")

        completed = wait_until(
            lambda: [r for r in api.history(plain["id"]) if r["status"] == "completed"],
            timeout_s=20,
            message="the routable run completed behind unroutable runs of its priority",
        )
        stuck_runs = api.history(stuck)

    assert len(completed) == 1
    assert [run["status"] for run in stuck_runs] == ["queued"] * 3
