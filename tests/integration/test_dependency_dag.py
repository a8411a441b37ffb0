"""Jobs that run when their dependencies complete, on real processes over REST."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from harness import Stack, wait_until

pytestmark = pytest.mark.integration

# Roots fire only when executed: their yearly slot is months away in any test run.
ROOT_SCHEDULE = "0 0 1 1 *"
STEP_COMMAND = ["sh", "-c", "sleep 0.3; echo done"]


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _runs(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    """Return the job's runs, oldest first."""
    return list(reversed(stack.api.history(job_id, limit=100)))


def _completed(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    return [run for run in _runs(stack, job_id) if run["status"] == "completed"]


def _create_dag(stack: Stack) -> dict[str, str]:
    """Create two roots, a join depending on both, and two leaves depending on the join."""
    roots = {
        name: stack.api.create_job(
            name=f"etl-{name}", schedule=ROOT_SCHEDULE, payload={"command": STEP_COMMAND}
        )["id"]
        for name in ("extract-a", "extract-b")
    }
    join = stack.api.create_job(
        name="etl-join",
        schedule="",
        payload={"command": STEP_COMMAND},
        dependencies=[roots["extract-a"], roots["extract-b"]],
    )
    leaves = {
        name: stack.api.create_job(
            name=f"etl-{name}",
            schedule="",
            payload={"command": STEP_COMMAND},
            dependencies=[join["id"]],
        )["id"]
        for name in ("load-a", "load-b")
    }
    assert join["schedule"] == ""
    assert join["nextRun"] is None
    assert join["status"] == "scheduled"
    return {**roots, "join": join["id"], **leaves}


def _run_round(stack: Stack, jobs: dict[str, str], round_number: int) -> dict[str, dict]:
    """Execute both roots and wait for both leaves; return each job's run of this round."""
    for root in ("extract-a", "extract-b"):
        stack.api.post(f"/api/jobs/{jobs[root]}/execute")

    def leaves_done() -> bool:
        return all(
            len(_completed(stack, jobs[leaf])) == round_number for leaf in ("load-a", "load-b")
        )

    wait_until(leaves_done, timeout_s=30, message=f"both leaves completed round {round_number}")
    runs = {}
    for name, job_id in jobs.items():
        history = _runs(stack, job_id)
        assert len(history) == round_number, f"{name} has runs {history}"
        runs[name] = history[-1]
        assert runs[name]["status"] == "completed", runs[name]
    return runs


def _assert_topological(runs: dict[str, dict]) -> None:
    for name in ("join", "load-a", "load-b"):
        assert runs[name]["trigger"] == "dependency"
    for root in ("extract-a", "extract-b"):
        assert runs[root]["trigger"] == "manual"
        assert _at(runs["join"]["startedAt"]) >= _at(runs[root]["completedAt"])
    for leaf in ("load-a", "load-b"):
        assert _at(runs[leaf]["startedAt"]) >= _at(runs["join"]["completedAt"])


def test_dag_runs_in_order_twice(stack: Stack, start_agent: Callable[..., Any]) -> None:
    start_agent()
    start_agent()
    jobs = _create_dag(stack)

    first = _run_round(stack, jobs, 1)
    _assert_topological(first)
    second = _run_round(stack, jobs, 2)
    _assert_topological(second)

    for name in jobs:
        assert _at(second[name]["startedAt"]) > _at(first[name]["completedAt"])
    workers = {run["workerId"] for run in [*first.values(), *second.values()]}
    assert len(workers) >= 2


def test_dag_rejects_cycle_and_unknown(stack: Stack) -> None:
    jobs = _create_dag(stack)

    unknown = stack.api.expect_error(
        "POST",
        "/api/jobs",
        400,
        json={
            "name": "orphan",
            "type": "recurring",
            "executor": "shell",
            "payload": {"command": ["true"]},
            "dependencies": [jobs["join"], "job-missing"],
        },
    )
    assert unknown["field"] == "dependencies"
    assert "unknown jobs: job-missing." in unknown["message"]

    join, leaf = jobs["join"], jobs["load-a"]
    cycle = stack.api.expect_error(
        "PUT", f"/api/jobs/{join}", 400, json={"dependencies": [jobs["extract-a"], leaf]}
    )
    assert cycle["field"] == "dependencies"
    assert f"cycle: {join} -> {leaf} -> {join}." in cycle["message"]

    itself = stack.api.expect_error("PUT", f"/api/jobs/{join}", 400, json={"dependencies": [join]})
    assert itself["field"] == "dependencies"
    assert f"job {join} cannot depend on itself" in itself["message"]

    assert stack.api.get(f"/api/jobs/{join}")["dependencies"] == [
        jobs["extract-a"],
        jobs["extract-b"],
    ]


def test_delete_of_dependency_rejected(stack: Stack) -> None:
    jobs = _create_dag(stack)

    error = stack.api.expect_error("DELETE", f"/api/jobs/{jobs['join']}", 409)

    assert error["field"] == "jobId"
    assert f"{jobs['load-a']}, {jobs['load-b']}" in error["message"] or (
        f"{jobs['load-b']}, {jobs['load-a']}" in error["message"]
    )
    stack.api.delete(f"/api/jobs/{jobs['load-a']}")
    stack.api.delete(f"/api/jobs/{jobs['load-b']}")
    stack.api.delete(f"/api/jobs/{jobs['join']}")


def test_failed_dependency_cancels_dependants(stack: Stack) -> None:
    failing = stack.api.create_job(
        schedule=ROOT_SCHEDULE, payload={"command": ["sh", "-c", "exit 4"]}
    )["id"]
    middle = stack.api.create_job(
        schedule="", payload={"command": ["true"]}, dependencies=[failing]
    )["id"]
    last = stack.api.create_job(schedule="", payload={"command": ["true"]}, dependencies=[middle])[
        "id"
    ]

    stack.api.post(f"/api/jobs/{failing}/execute")
    cancelled = wait_until(
        lambda: _runs(stack, last),
        timeout_s=20,
        message="a cancelled run of the last dependant",
    )

    failed_run = _runs(stack, failing)[-1]
    assert failed_run["status"] == "failed"
    reason = f"cancelled: dependency {failing} run {failed_run['id']} ended failed"
    for job_id, history in ((middle, _runs(stack, middle)), (last, cancelled)):
        assert len(history) == 1, history
        run = history[0]
        assert run["status"] == "cancelled"
        assert run["trigger"] == "dependency"
        assert run["error"] == reason
        assert run["attempt"] == 0
        assert run["workerId"] == ""
        assert stack.api.get(f"/api/jobs/{job_id}")["status"] == "scheduled"


async def test_concurrent_updates_cannot_close_a_cycle(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.gateway.url, timeout=10) as client:
        for attempt in range(8):
            first = stack.api.create_job(schedule=ROOT_SCHEDULE, payload={"command": ["true"]})
            second = stack.api.create_job(schedule=ROOT_SCHEDULE, payload={"command": ["true"]})

            responses = await asyncio.gather(
                client.put(f"/api/jobs/{first['id']}", json={"dependencies": [second["id"]]}),
                client.put(f"/api/jobs/{second['id']}", json={"dependencies": [first["id"]]}),
            )

            statuses = sorted(response.status_code for response in responses)
            assert statuses == [200, 400], f"attempt {attempt}: {statuses}"
            rejected = next(r for r in responses if r.status_code == 400).json()["error"]
            assert rejected["field"] == "dependencies"
            assert "cycle" in rejected["message"]
