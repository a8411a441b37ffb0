"""A job created over REST runs on a real agent, through a real coordinator and etcd."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime

import pytest
from harness import Stack, wait_until

pytestmark = pytest.mark.integration


def _completed_runs(stack: Stack, job_id: str) -> list[dict]:
    return [run for run in stack.api.history(job_id) if run["status"] == "completed"]


def _now_instant() -> str:
    return datetime.now(UTC).isoformat()


def test_every_2s_job_completes_runs(stack: Stack) -> None:
    job = stack.api.create_job(
        schedule="@every 2s",
        executor="shell",
        payload={"command": ["sh", "-c", "echo hello"]},
    )

    runs = wait_until(
        lambda: len(_completed_runs(stack, job["id"])) >= 2 and _completed_runs(stack, job["id"]),
        timeout_s=15,
        message="two completed runs",
    )

    for run in runs:
        assert run["workerId"] == stack.agent.worker_id
        assert run["startedAt"] is not None
        assert run["completedAt"] is not None
        assert run["completedAt"] >= run["startedAt"]
        assert run["duration"] >= 0
        assert run["output"] == "hello\n"
        assert run["exitCode"] == 0
        assert run["attempt"] == 1
    scheduled = sorted(run["scheduledAt"] for run in runs)
    assert len(set(scheduled)) == len(scheduled)


def test_coordinator_restart_keeps_jobs(stack: Stack) -> None:
    job = stack.api.create_job(schedule="@every 1s", payload={"command": ["true"]})
    wait_until(lambda: _completed_runs(stack, job["id"]), timeout_s=10, message="a first run")

    stack.coordinator.stop()
    restarted_at = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    stack.coordinator.restart()

    assert stack.api.get(f"/api/jobs/{job['id']}")["name"] == job["name"]
    wait_until(
        lambda: [r for r in _completed_runs(stack, job["id"]) if r["scheduledAt"] > restarted_at],
        timeout_s=20,
        message="a run fired after the restart",
    )
    scheduled = [run["scheduledAt"] for run in stack.api.history(job["id"], limit=1000)]
    assert len(scheduled) == len(set(scheduled))


def test_failing_command_retries_then_fails(stack: Stack) -> None:
    job = stack.api.create_job(
        type="one-time",
        schedule=_now_instant(),
        payload={"command": ["sh", "-c", "echo broken >&2; exit 3"]},
        retryPolicy={"maxRetries": 2, "retryDelay": 1},
    )

    wait_until(
        lambda: stack.api.get(f"/api/jobs/{job['id']}")["status"] == "failed",
        timeout_s=20,
        message="job failed",
    )

    runs = stack.api.history(job["id"])
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "failed"
    assert run["attempt"] == 3
    assert [attempt["number"] for attempt in run["attempts"]] == [1, 2, 3]
    assert {attempt["outcome"] for attempt in run["attempts"]} == {"failed"}
    assert {attempt["exitCode"] for attempt in run["attempts"]} == {3}
    assert run["output"] == "broken\n"
    starts = [attempt["startedAt"] for attempt in run["attempts"]]
    assert starts == sorted(starts)


def test_timeout_kills_the_process_group(stack: Stack) -> None:
    marker = "30.4242"
    job = stack.api.create_job(
        type="one-time",
        schedule=_now_instant(),
        payload={"command": ["sh", "-c", f"sleep {marker} & sleep {marker}"]},
        timeout=1,
    )

    run = wait_until(
        lambda: [r for r in stack.api.history(job["id"]) if r["status"] == "timeout"],
        timeout_s=10,
        message="run ended as timeout",
    )[0]

    assert run["attempts"][0]["outcome"] == "timeout"
    assert stack.api.get(f"/api/jobs/{job['id']}")["status"] == "failed"
    leftover = subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True, text=True)
    assert leftover.stdout == ""


def test_execute_pause_resume(stack: Stack) -> None:
    job = stack.api.create_job(schedule="@every 1h", payload={"command": ["echo", "manual"]})

    paused = stack.api.post(f"/api/jobs/{job['id']}/pause")
    assert paused["status"] == "paused"
    run = stack.api.post(f"/api/jobs/{job['id']}/execute")
    assert run["trigger"] == "manual"
    assert run["status"] == "queued"

    finished = wait_until(
        lambda: [r for r in _completed_runs(stack, job["id"]) if r["id"] == run["id"]],
        timeout_s=10,
        message="manual run completed",
    )[0]
    assert finished["output"] == "manual\n"
    after_run = stack.api.get(f"/api/jobs/{job['id']}")
    assert after_run["status"] == "paused"
    # A run by hand counts as the job's last run; it is no slot of the schedule.
    assert after_run["lastRun"] == run["scheduledAt"]
    assert after_run.get("lastScheduledRun") is None

    resumed = stack.api.post(f"/api/jobs/{job['id']}/resume")
    assert resumed["status"] == "scheduled"
    assert resumed["nextRun"] is not None
    status = stack.api.get(f"/api/jobs/{job['id']}/status")
    assert status["latestRun"]["id"] == run["id"]
    assert status["lastRun"] == run["scheduledAt"]
    assert status["runCounts"] == {"completed": 1}


def test_running_attempt_shows_its_fencing_token(stack: Stack) -> None:
    job = stack.api.create_job(
        schedule="@every 1h",
        executor="shell",
        payload={"command": ["sh", "-c", 'echo "$TASKSCHEDULER_FENCING_TOKEN"; sleep 2']},
    )
    run = stack.api.post(f"/api/jobs/{job['id']}/execute")

    running = wait_until(
        lambda: [r for r in stack.api.history(job["id"]) if r["status"] == "running"],
        timeout_s=10,
        message="the run running",
    )[0]
    token_while_running = int(running["attempts"][-1]["fencingToken"])
    finished = wait_until(
        lambda: [r for r in _completed_runs(stack, job["id"]) if r["id"] == run["id"]],
        timeout_s=15,
        message="the run completed",
    )[0]

    assert token_while_running > 0
    assert int(finished["attempts"][-1]["fencingToken"]) == token_while_running
    assert finished["output"] == f"{token_while_running}\n"
