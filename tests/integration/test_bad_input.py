"""Bad input over REST is answered 400 or 404 naming the field, and stores nothing."""

from __future__ import annotations

from typing import Any

import pytest
from harness import DEFAULT_JOB_FIELDS, Stack

pytestmark = pytest.mark.integration

GOOD_JOB: dict[str, Any] = {"name": "valid", **DEFAULT_JOB_FIELDS}

BAD_JOBS = [
    pytest.param({k: v for k, v in GOOD_JOB.items() if k != "name"}, "name", id="missing-name"),
    pytest.param({**GOOD_JOB, "schedule": "61 * * * *"}, "schedule", id="minute-61"),
    pytest.param({**GOOD_JOB, "priority": "urgent"}, "priority", id="unknown-priority"),
    pytest.param({**GOOD_JOB, "timeout": -5}, "timeout", id="negative-timeout"),
    pytest.param({**GOOD_JOB, "payload": "echo hi"}, "payload", id="payload-not-object"),
    pytest.param({**GOOD_JOB, "payload": [1, 2]}, "payload", id="payload-list"),
    pytest.param(
        {**GOOD_JOB, "type": "one-time", "schedule": "tomorrow at noon"},
        "schedule",
        id="one-time-bad-instant",
    ),
    pytest.param(
        {**GOOD_JOB, "type": "one-time", "schedule": "0 9 * * *"},
        "schedule",
        id="one-time-cron",
    ),
    pytest.param({**GOOD_JOB, "timezone": "Mars/Olympus"}, "timezone", id="bad-timezone"),
    pytest.param({**GOOD_JOB, "schedule": "0 0 30 2 *"}, "schedule", id="never-fires"),
    pytest.param({**GOOD_JOB, "payload": {"command": []}}, "payload.command", id="empty-command"),
    pytest.param(
        {**GOOD_JOB, "retryPolicy": {"maxRetries": -1}}, "retryPolicy.maxRetries", id="neg-retries"
    ),
    pytest.param({**GOOD_JOB, "colour": "blue"}, "colour", id="unknown-key"),
    pytest.param({**GOOD_JOB, "timeout": "soon"}, "timeout", id="timeout-not-number"),
]


def _job_total(stack: Stack) -> int:
    response = stack.api.http.get("/api/jobs")
    return response.json()["pagination"]["total"]


@pytest.mark.parametrize(("body", "field"), BAD_JOBS)
def test_bad_job_rejected(stack: Stack, body: dict[str, Any], field: str) -> None:
    before = _job_total(stack)

    error = stack.api.expect_error("POST", "/api/jobs", 400, json=body)

    assert error["code"] == "INVALID_ARGUMENT"
    assert error["field"] == field
    assert error["message"]
    assert _job_total(stack) == before


def test_malformed_json_rejected(stack: Stack) -> None:
    before = _job_total(stack)

    error = stack.api.expect_error(
        "POST",
        "/api/jobs",
        400,
        content=b'{"name": "x", ',
        headers={"content-type": "application/json"},
    )

    assert "JSON" in error["message"]
    assert _job_total(stack) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/jobs/job-does-not-exist"),
        ("PUT", "/api/jobs/job-does-not-exist"),
        ("DELETE", "/api/jobs/job-does-not-exist"),
        ("POST", "/api/jobs/job-does-not-exist/pause"),
        ("GET", "/api/jobs/job-does-not-exist/history"),
        ("GET", "/api/workers/no-such-worker"),
    ],
)
def test_unknown_id_is_404(stack: Stack, method: str, path: str) -> None:
    kwargs = {"json": {"priority": "low"}} if method == "PUT" else {}

    error = stack.api.expect_error(method, path, 404, **kwargs)

    assert error["code"] == "NOT_FOUND"


def test_update_rejects_bad_value_and_keeps_job(stack: Stack) -> None:
    job = stack.api.create_job(priority="high")

    error = stack.api.expect_error("PUT", f"/api/jobs/{job['id']}", 400, json={"schedule": "* * *"})

    assert error["field"] == "schedule"
    stored = stack.api.get(f"/api/jobs/{job['id']}")
    assert stored["schedule"] == job["schedule"]
    assert stored["priority"] == "high"


def test_update_changes_only_sent_fields(stack: Stack) -> None:
    job = stack.api.create_job(priority="high", description="before")

    updated = stack.api.put(f"/api/jobs/{job['id']}", json={"description": "after"})

    assert updated["description"] == "after"
    assert updated["priority"] == "high"
    assert updated["schedule"] == job["schedule"]
