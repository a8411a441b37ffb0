"""Scheduled jobs with dependencies: runs wait at their fire time, on real processes over REST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from harness import Stack, wait_until

pytestmark = pytest.mark.integration

# Dependencies fire only when executed: their yearly slot is months away in any test run.
FAR_SCHEDULE = "0 0 1 1 *"


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _soon(seconds: float = 1.0) -> str:
    instant = datetime.now(UTC) + timedelta(seconds=seconds)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _runs(stack: Stack, job_id: str) -> list[dict[str, Any]]:
    """Return the job's runs, oldest first."""
    return list(reversed(stack.api.history(job_id, limit=100)))


def _only_run(stack: Stack, job_id: str, status: str) -> dict[str, Any]:
    def found() -> dict[str, Any] | None:
        runs = _runs(stack, job_id)
        return runs[0] if len(runs) == 1 and runs[0]["status"] == status else None

    return wait_until(found, timeout_s=20, message=f"one {status} run of {job_id}")


def _dependency(stack: Stack, command: list[str]) -> str:
    return stack.api.create_job(schedule=FAR_SCHEDULE, payload={"command": command})["id"]


def _waiting_job(stack: Stack, dependencies: list[str], **fields: Any) -> str:
    return stack.api.create_job(
        type="one-time",
        schedule=_soon(),
        payload={"command": ["true"]},
        dependencies=dependencies,
        **fields,
    )["id"]


def test_run_waits_until_dependencies_complete(stack: Stack) -> None:
    first = _dependency(stack, ["true"])
    second = _dependency(stack, ["true"])
    report = _waiting_job(stack, [first, second])

    waiting = _only_run(stack, report, "queued")
    stack.api.post(f"/api/jobs/{first}/execute")
    _only_run(stack, first, "completed")

    def names_second() -> bool:
        run = _runs(stack, report)[0]
        return run["status"] == "queued" and run["waitingReason"].startswith(
            f"waiting for dependencies to complete: {second} (until "
        )

    wait_until(names_second, timeout_s=10, message="the waiting run names the missing dependency")
    assert waiting["trigger"] == "schedule"

    stack.api.post(f"/api/jobs/{second}/execute")
    completed = _only_run(stack, report, "completed")
    second_run = _only_run(stack, second, "completed")
    assert _at(completed["startedAt"]) >= _at(second_run["completedAt"])
    assert completed["scheduledAt"] == waiting["scheduledAt"]
    assert completed["waitingReason"] == ""


def test_run_starts_at_once_when_dependencies_completed_before(stack: Stack) -> None:
    dependency = _dependency(stack, ["true"])
    stack.api.post(f"/api/jobs/{dependency}/execute")
    _only_run(stack, dependency, "completed")

    report = _waiting_job(stack, [dependency])

    run = _only_run(stack, report, "completed")
    assert run["attempt"] == 1


def test_run_cancelled_after_dependency_wait(stack: Stack) -> None:
    dependency = _dependency(stack, ["true"])
    report = _waiting_job(stack, [dependency], dependencyWait=2)

    assert stack.api.get(f"/api/jobs/{report}")["dependencyWait"] == 2
    run = _only_run(stack, report, "cancelled")

    assert run["error"] == (
        f"cancelled: dependencies {dependency} did not complete within 2 s "
        "of the fire time (dependencyWait)"
    )
    assert run["attempt"] == 0
    assert _at(run["completedAt"]) >= _at(run["scheduledAt"]) + timedelta(seconds=2)
    assert stack.api.get(f"/api/jobs/{report}")["status"] == "failed"


def test_failed_dependency_cancels_waiting_run(stack: Stack) -> None:
    failing = _dependency(stack, ["sh", "-c", "exit 3"])
    report = _waiting_job(stack, [failing])
    _only_run(stack, report, "queued")

    stack.api.post(f"/api/jobs/{failing}/execute")

    run = _only_run(stack, report, "cancelled")
    failed = _only_run(stack, failing, "failed")
    assert run["error"] == f"cancelled: dependency {failing} run {failed['id']} ended failed"
    assert run["trigger"] == "schedule"


def test_waiting_run_survives_coordinator_restart(stack: Stack) -> None:
    dependency = _dependency(stack, ["true"])
    report = _waiting_job(stack, [dependency])
    waiting = _only_run(stack, report, "queued")

    stack.coordinator.restart()
    stack.api.post(f"/api/jobs/{dependency}/execute")

    run = _only_run(stack, report, "completed")
    assert run["id"] == waiting["id"]


def test_waiting_run_can_be_cancelled(stack: Stack) -> None:
    dependency = _dependency(stack, ["true"])
    report = _waiting_job(stack, [dependency])
    waiting = _only_run(stack, report, "queued")

    cancelled = stack.api.post(f"/api/jobs/{report}/runs/{waiting['id']}/cancel")
    assert cancelled["status"] == "cancelled"
    stack.api.post(f"/api/jobs/{dependency}/execute")
    _only_run(stack, dependency, "completed")

    run = _only_run(stack, report, "cancelled")
    assert run["id"] == waiting["id"]
    assert stack.api.get(f"/api/jobs/{report}")["status"] == "failed"


def test_cancel_restores_scheduled_status(stack: Stack) -> None:
    job = stack.api.create_job(
        schedule=FAR_SCHEDULE, selector={"zone": "mars"}, payload={"command": ["true"]}
    )["id"]
    queued = stack.api.post(f"/api/jobs/{job}/execute")
    assert stack.api.get(f"/api/jobs/{job}")["status"] == "running"

    stack.api.post(f"/api/jobs/{job}/runs/{queued['id']}/cancel")

    assert stack.api.get(f"/api/jobs/{job}")["status"] == "scheduled"


def test_removing_dependencies_releases_waiting_run(stack: Stack) -> None:
    dependency = _dependency(stack, ["true"])
    report = _waiting_job(stack, [dependency])
    waiting = _only_run(stack, report, "queued")

    stack.api.put(f"/api/jobs/{report}", {"dependencies": []})

    run = _only_run(stack, report, "completed")
    assert run["id"] == waiting["id"]
    assert stack.api.get(f"/api/jobs/{report}")["dependencyWait"] == 0


def test_removing_schedule_cancels_waiting_runs(stack: Stack) -> None:
    dependency = _dependency(stack, ["true"])
    report = stack.api.create_job(
        schedule="@every 1s", payload={"command": ["true"]}, dependencies=[dependency]
    )["id"]
    wait_until(
        lambda: _runs(stack, report), timeout_s=10, message="a run waiting for its dependency"
    )

    stack.api.put(f"/api/jobs/{report}", {"schedule": ""})
    wait_until(
        lambda: all(run["status"] == "cancelled" for run in _runs(stack, report)),
        timeout_s=10,
        message="every waiting run cancelled",
    )
    stack.api.post(f"/api/jobs/{dependency}/execute")
    started = wait_until(
        lambda: [r for r in _runs(stack, report) if r["status"] == "completed"],
        timeout_s=20,
        message="one run started by the dependency",
    )

    runs = _runs(stack, report)
    assert [run["trigger"] for run in started] == ["dependency"]
    cancelled = [run for run in runs if run["trigger"] == "schedule"]
    assert len(cancelled) == len(runs) - 1
    for run in cancelled:
        assert run["status"] == "cancelled"
        assert run["error"] == (
            "cancelled: the job's schedule was removed while this run waited for its dependencies"
        )
