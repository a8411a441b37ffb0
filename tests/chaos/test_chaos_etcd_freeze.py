"""Freeze etcd (SIGSTOP) for longer than a write's timeout, under recurring load.

Writes in flight time out while their outcome is unknown. Every job still
fires again once etcd responds: a firing that timed out puts its jobs back
in the time index, and any of its runs that did commit are queued. No run
is left queued for good.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from harness import ApiClient, Components, wait_until

from taskscheduler.etcd_server import EtcdServer

pytestmark = [pytest.mark.integration, pytest.mark.chaos]

JOBS = 60
FREEZE_S = 7.0


def _after(api: ApiClient, job_ids: list[str], moment: str) -> dict[str, list[dict]]:
    return {
        job_id: [run for run in api.history(job_id, limit=100) if run["scheduledAt"] > moment]
        for job_id in job_ids
    }


def _every_job_completed_after(api: ApiClient, job_ids: list[str], moment: str) -> bool:
    runs = _after(api, job_ids, moment)
    return all(any(run["status"] == "completed" for run in job_runs) for job_runs in runs.values())


def test_frozen_etcd_leaves_no_job_unfired(
    private_etcd: EtcdServer, components: Components
) -> None:
    # Leadership outlives the freeze, so the leader's own state must recover;
    # a new election would rebuild it from etcd and hide a gap.
    components.start_coordinator(election_ttl_s=20)
    components.start_agent(capabilities="noop", max_concurrent=200)
    gateway = components.start_gateway()
    with ApiClient(gateway.url) as api:
        created = api.post(
            "/api/jobs/batch",
            {
                "jobs": [
                    {"name": f"freeze-{index}", "schedule": "@every 1s", "executor": "noop"}
                    for index in range(JOBS)
                ]
            },
        )
        job_ids = [item["jobId"] for item in created]
        started = datetime.now(UTC).isoformat()
        wait_until(
            lambda: _every_job_completed_after(api, job_ids, started),
            timeout_s=20,
            interval_s=0.5,
            message="every job completes a run before the freeze",
        )

        private_etcd.pause()
        # The outage itself lasts this long; nothing is waited for here.
        time.sleep(FREEZE_S)
        private_etcd.resume()
        resumed = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()

        wait_until(
            lambda: _every_job_completed_after(api, job_ids, resumed),
            timeout_s=30,
            interval_s=0.5,
            message="every job completes a run after the freeze",
        )
        api.post("/api/jobs/batch/pause", {"jobIds": job_ids})
        wait_until(
            lambda: (
                not [
                    run
                    for job_runs in _after(api, job_ids, started).values()
                    for run in job_runs
                    if run["status"] in ("queued", "running")
                ]
            ),
            timeout_s=30,
            interval_s=0.5,
            message="no run left queued or running",
        )
