"""Exponential retry backoff and run cancellation, on real processes."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from itertools import pairwise

import pytest
from harness import Stack, wait_until

pytestmark = pytest.mark.integration


def _now_instant() -> str:
    return datetime.now(UTC).isoformat()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_retry_delays_grow_exponentially(stack: Stack) -> None:
    job = stack.api.create_job(
        type="one-time",
        schedule=_now_instant(),
        payload={"command": ["false"]},
        retryPolicy={"maxRetries": 3, "retryDelay": 1, "backoffMultiplier": 2},
    )

    run = wait_until(
        lambda: [r for r in stack.api.history(job["id"]) if r["status"] == "failed"],
        timeout_s=25,
        message="run failed after its retries",
    )[0]

    attempts = run["attempts"]
    assert [attempt["number"] for attempt in attempts] == [1, 2, 3, 4]
    gaps = [
        (_parse(later["startedAt"]) - _parse(earlier["completedAt"])).total_seconds()
        for earlier, later in pairwise(attempts)
    ]
    for gap, expected in zip(gaps, [1, 2, 4], strict=True):
        assert expected - 0.1 <= gap <= expected + 1.5, gaps


def test_max_retry_delay_caps_backoff(stack: Stack) -> None:
    job = stack.api.create_job(
        type="one-time",
        schedule=_now_instant(),
        payload={"command": ["false"]},
        retryPolicy={
            "maxRetries": 2,
            "retryDelay": 1,
            "backoffMultiplier": 10,
            "maxRetryDelay": 1,
        },
    )

    run = wait_until(
        lambda: [r for r in stack.api.history(job["id"]) if r["status"] == "failed"],
        timeout_s=20,
        message="run failed after its retries",
    )[0]

    attempts = run["attempts"]
    second_gap = _parse(attempts[2]["startedAt"]) - _parse(attempts[1]["completedAt"])
    assert second_gap.total_seconds() <= 2.5


def test_cancel_running_run_kills_it(stack: Stack) -> None:
    marker = "30.777"
    job = stack.api.create_job(
        type="one-time", schedule=_now_instant(), payload={"command": ["sleep", marker]}
    )
    run = wait_until(
        lambda: [r for r in stack.api.history(job["id"]) if r["status"] == "running"],
        timeout_s=10,
        message="run started",
    )[0]

    cancelled = stack.api.post(f"/api/jobs/{job['id']}/runs/{run['id']}/cancel")

    assert cancelled["status"] == "cancelled"
    assert cancelled["attempts"][-1]["outcome"] == "cancelled"
    wait_until(
        lambda: (
            subprocess.run(["pgrep", "-f", f"sleep {marker}"], capture_output=True).returncode == 1
        ),
        timeout_s=10,
        message="cancelled process killed",
    )
    error = stack.api.expect_error("POST", f"/api/jobs/{job['id']}/runs/{run['id']}/cancel", 409)
    assert error["field"] == "runId"
    assert stack.api.get(f"/api/jobs/{job['id']}")["status"] == "failed"


def test_cancel_queued_run(stack: Stack) -> None:
    job = stack.api.create_job(
        payload={"command": ["true"]}, executor="shell", schedule="@every 1h"
    )
    stack.agent.stop()
    run = stack.api.post(f"/api/jobs/{job['id']}/execute")

    cancelled = stack.api.post(f"/api/jobs/{job['id']}/runs/{run['id']}/cancel")

    assert cancelled["status"] == "cancelled"
    assert cancelled["attempts"] == []
    assert cancelled["error"] == "cancelled on request"


def test_cancel_unknown_run_is_404(stack: Stack) -> None:
    job = stack.api.create_job()

    error = stack.api.expect_error(
        "POST", f"/api/jobs/{job['id']}/runs/{job['id']}.00000000000001/cancel", 404
    )

    assert error["field"] == "runId"
    other = stack.api.expect_error("POST", f"/api/jobs/{job['id']}/runs/job-x.1/cancel", 404)
    assert other["field"] == "runId"
