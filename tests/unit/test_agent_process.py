"""The `taskscheduler-agent` process: start, register, stay small, stop on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import sys

from agent_fakes import FakeWorkerService, make_assignment, serve_fake, wait_until

from taskscheduler.v1 import types_pb2

# The agent must idle well below 100 MB; this is the budget the tests hold it to.
IDLE_RSS_LIMIT_KIB = 80 * 1024


def resident_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


async def test_agent_process_runs_and_stops_on_sigterm() -> None:
    service = FakeWorkerService()
    service.add_assignment(
        make_assignment("run-p", fencing_token=3, payload={"command": ["echo", "from process"]})
    )
    async with serve_fake(service) as address:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "taskscheduler.agent.main",
            *("--coordinators", address, "--worker-id", "process-agent"),
            *("--poll-wait-s", "0.5", "--log-format", "console"),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            await wait_until(lambda: service.completions, timeout_s=15, what="the report")
            await wait_until(lambda: len(service.heartbeats) >= 2, what="heartbeats")
            rss_kib = resident_kib(process.pid)

            process.send_signal(signal.SIGTERM)
            _, stderr = await asyncio.wait_for(process.communicate(), timeout=15)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    (report,) = service.completions
    assert process.returncode == 0, stderr.decode()
    assert report.outcome == types_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert report.output == "from process\n"
    assert service.registrations[0].worker_id == "process-agent"
    assert service.deregistrations == ["process-agent"]
    assert rss_kib < IDLE_RSS_LIMIT_KIB
    assert b"agent stopped" in stderr
