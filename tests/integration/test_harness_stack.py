"""The `stack` fixture, the process factories and `taskscheduler dev`, with the real binaries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from harness import ApiClient, ProcessHandle, Stack, wait_until

from taskscheduler.ports import find_free_port_run, find_free_ports

pytestmark = pytest.mark.integration


def test_stack_runs_a_job(stack: Stack) -> None:
    job = stack.api.create_job(payload={"command": ["echo", "from the harness"]})
    stack.api.post(f"/api/jobs/{job['id']}/execute")

    runs = wait_until(
        lambda: [run for run in stack.api.history(job["id"]) if run["status"] == "completed"],
        timeout_s=15,
        message="executed run completed",
    )

    assert runs[0]["output"] == "from the harness\n"
    assert runs[0]["workerId"] == stack.agent.worker_id
    assert stack.api.get(f"/api/workers/{stack.agent.worker_id}")["id"] == stack.agent.worker_id
    missing = stack.api.expect_error("GET", "/api/jobs/job-does-not-exist", 404)
    assert missing["code"] == "NOT_FOUND"


def test_restarted_coordinator_keeps_jobs(
    start_coordinator: Callable[..., ProcessHandle],
    start_gateway: Callable[..., ProcessHandle],
) -> None:
    coordinator = start_coordinator()
    gateway = start_gateway()
    with ApiClient(gateway.url) as api:
        created = api.create_job(name="kept")
        first_pid = coordinator.pid

        coordinator.restart()
        job = wait_until(
            lambda: api.get(f"/api/jobs/{created['id']}"),
            timeout_s=15,
            message="job readable after coordinator restart",
        )

    assert job["name"] == "kept"
    assert coordinator.pid != first_pid
    assert coordinator.logs().count("=== coordinator-1:") == 2


def test_dev_command_serves_and_stops_on_sigint(tmp_path: Path) -> None:
    etcd_port, coordinator_port, gateway_port = _dev_ports()
    command = [
        str(Path(sys.executable).parent / "taskscheduler"),
        "dev",
        *("--data-dir", str(tmp_path / "dev"), "--etcd-port", str(etcd_port)),
        *("--coordinator-port", str(coordinator_port), "--gateway-port", str(gateway_port)),
    ]
    output_path = tmp_path / "dev.out"
    with output_path.open("wb") as output_file:
        dev = subprocess.Popen(command, stdout=output_file, stderr=subprocess.STDOUT)
    try:
        wait_until(
            lambda: b"taskscheduler dev is ready" in output_path.read_bytes(),
            timeout_s=40,
            message="`taskscheduler dev` printed its ready banner",
        )
        health = httpx.get(f"http://127.0.0.1:{gateway_port}/health", timeout=5)
        dev.send_signal(signal.SIGINT)
        dev.wait(timeout=30)
    finally:
        dev.kill()

    output = output_path.read_text()
    assert health.status_code == 200
    assert dev.returncode == 0, output
    assert "child stopped                  child=etcd" in output
    assert sorted(os.listdir(tmp_path / "dev" / "logs")) == [
        "agent.log",
        "coordinator.log",
        "etcd.log",
        "gateway.log",
    ]


def _dev_ports() -> tuple[int, int, int]:
    """Return free ports for etcd, the coordinator and the gateway; etcd's port + 1 is free too."""
    while True:
        etcd_port = find_free_port_run(2)
        coordinator_port, gateway_port = find_free_ports(2)
        if not {coordinator_port, gateway_port} & {etcd_port, etcd_port + 1}:
            return etcd_port, coordinator_port, gateway_port
