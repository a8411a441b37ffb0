"""The agent's loops against a fake WorkerService on 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from agent_fakes import (
    FakeWorkerService,
    make_assignment,
    process_gone,
    serve_fake,
    wait_until,
)

import taskscheduler
from taskscheduler.agent.agent import Agent, AgentCrashedError, AgentTuning
from taskscheduler.agent.backoff import RetryPolicy
from taskscheduler.agent.config import AgentConfig
from taskscheduler.agent.executors import default_registry
from taskscheduler.clock import Clock, SystemClock
from taskscheduler.v1 import types_pb2, workers_pb2

WORKER_ID = "agent-under-test"
TUNING = AgentTuning(
    retry=RetryPolicy(initial_s=0.01, max_s=0.05), outbox_flush_s=1.0, deregister_timeout_s=1.0
)
SHUTDOWN_ERROR = "agent shut down before the attempt finished"


def make_agent(
    address: str,
    *,
    max_concurrent: int = 4,
    grace_s: float = 5.0,
    clock: Clock | None = None,
) -> Agent:
    config = AgentConfig(
        coordinators=(address,),
        worker_id=WORKER_ID,
        max_concurrent=max_concurrent,
        labels={"zone": "test"},
        poll_wait_s=0.2,
        shutdown_grace_s=grace_s,
    )
    return Agent(config, registry=default_registry(kill_grace_s=0.2), clock=clock, tuning=TUNING)


@contextlib.asynccontextmanager
async def running(agent: Agent) -> AsyncIterator[asyncio.Task[None]]:
    """Run the agent in a task; on exit stop it and wait for the shutdown to finish."""
    task = asyncio.create_task(agent.run())
    try:
        yield task
    finally:
        agent.stop()
        await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), timeout=10)


def pid_command(pid_file: Path, then: str = "exec sleep 30") -> list[str]:
    return ["sh", "-c", f"echo $$ > {pid_file}.tmp; mv {pid_file}.tmp {pid_file}; {then}"]


def lease_key(run_id: str, fencing_token: int, attempt: int = 1) -> tuple[str, int, int]:
    return (run_id, attempt, fencing_token)


async def wait_for_heartbeat_after(service: FakeWorkerService, count: int) -> int:
    """Wait for a heartbeat beyond the first `count`; return its index."""
    await wait_until(lambda: len(service.heartbeats) > count, what="another heartbeat")
    return len(service.heartbeats) - 1


async def wait_for_lease_released(service: FakeWorkerService, lease: tuple[str, int, int]) -> None:
    """Wait until the latest heartbeat, and the one after it, no longer list `lease`."""
    await wait_until(
        lambda: bool(service.heartbeats) and lease not in service.latest_heartbeat_leases(),
        what=f"a heartbeat without {lease}",
    )
    seen = await wait_for_heartbeat_after(service, len(service.heartbeats))
    assert lease not in service.leases_in_heartbeat(seen)


async def test_agent_scenario_complete_revoke_retry(tmp_path: Path) -> None:
    service = FakeWorkerService()
    service.add_assignment(
        make_assignment("run-ok", fencing_token=11, payload={"command": ["echo", "done"]})
    )
    service.add_assignment(
        make_assignment("run-bad", fencing_token=22, payload={"command": ["sh", "-c", "exit 3"]})
    )
    async with serve_fake(service) as address:
        agent = make_agent(address)
        async with running(agent):
            # Registration, then one poll that returns both assignments.
            await wait_until(lambda: len(service.completions) == 2, what="two completions")
            registration = service.registrations[0]
            assert registration.worker_id == WORKER_ID
            assert registration.hostname == socket.gethostname()
            assert list(registration.capabilities) == ["shell", "http", "noop"]
            assert dict(registration.labels) == {"zone": "test"}
            assert registration.max_concurrent == 4
            assert registration.version == taskscheduler.__version__
            assert service.polls[0].max_assignments == 4
            assert service.polls[0].wait_timeout_ms == 200
            assert service.poll_results[0] == ["run-ok", "run-bad"]

            (succeeded,) = service.accepted_for("run-ok")
            assert succeeded.worker_id == WORKER_ID
            assert succeeded.lease == workers_pb2.LeaseRef(
                run_id="run-ok", attempt=1, fencing_token=11
            )
            assert succeeded.outcome == types_pb2.ATTEMPT_OUTCOME_SUCCEEDED
            assert succeeded.exit_code == 0
            assert succeeded.output == "done\n"
            assert succeeded.started_at.ToDatetime() <= succeeded.completed_at.ToDatetime()
            (failed,) = service.accepted_for("run-bad")
            assert failed.lease.fencing_token == 22
            assert failed.outcome == types_pb2.ATTEMPT_OUTCOME_FAILED
            assert failed.exit_code == 3
            assert failed.error == "exited with code 3"

            # A revoked lease stops its attempt and drops the result.
            pid_file = tmp_path / "revoked.pid"
            service.add_assignment(
                make_assignment(
                    "run-revoked", fencing_token=33, payload={"command": pid_command(pid_file)}
                )
            )
            await wait_until(pid_file.exists, what="the revoked attempt to start")
            await wait_until(
                lambda: lease_key("run-revoked", 33) in service.latest_heartbeat_leases(),
                what="a heartbeat holding the lease",
            )
            service.revoke_next = [
                workers_pb2.LeaseRef(run_id="run-revoked", attempt=1, fencing_token=33)
            ]
            pid = int(pid_file.read_text())
            await wait_until(lambda: process_gone(pid), what="the revoked process to end")
            await wait_for_lease_released(service, lease_key("run-revoked", 33))
            assert service.calls_for("run-revoked") == []

            # A report that meets UNAVAILABLE three times lands exactly once.
            service.completion_failures.extend([grpc.StatusCode.UNAVAILABLE] * 3)
            service.add_assignment(
                make_assignment("run-retried", fencing_token=44, payload={"command": ["true"]})
            )
            await wait_until(lambda: service.accepted_for("run-retried"), what="the retried report")
            await wait_for_lease_released(service, lease_key("run-retried", 44))
            assert len(service.calls_for("run-retried")) == 4
            assert len(service.accepted_for("run-retried")) == 1

    assert service.deregistrations == [WORKER_ID]


async def test_agent_never_exceeds_max_concurrent(tmp_path: Path) -> None:
    service = FakeWorkerService()
    release = tmp_path / "release"
    wait_for_release = f"while [ ! -e {release} ]; do sleep 0.02; done"
    for index in range(3):
        service.add_assignment(
            make_assignment(
                f"run-{index}",
                fencing_token=index + 1,
                payload={"command": ["sh", "-c", wait_for_release]},
            )
        )
    async with serve_fake(service) as address:
        agent = make_agent(address, max_concurrent=2)
        async with running(agent):
            await wait_until(lambda: service.queued == 1, what="two runs handed out")
            seen = await wait_for_heartbeat_after(service, len(service.heartbeats))
            assert len(service.leases_in_heartbeat(seen)) == 2
            assert service.queued == 1

            release.touch()
            await wait_until(lambda: len(service.completions) == 3, what="all three reports")

    assert [poll.max_assignments for poll in service.polls][:1] == [2]
    assert all(1 <= poll.max_assignments <= 2 for poll in service.polls)
    assert all(len(handed) <= 2 for handed in service.poll_results)


async def test_agent_reports_unknown_executor() -> None:
    service = FakeWorkerService()
    service.add_assignment(
        make_assignment("run-py", fencing_token=5, executor="python", payload={"handler": "x"})
    )
    async with serve_fake(service) as address, running(make_agent(address)):
        await wait_until(lambda: service.completions, what="the report")

    (report,) = service.completions
    assert report.outcome == types_pb2.ATTEMPT_OUTCOME_FAILED
    assert report.error == (
        "executor 'python' is not available on this agent; it has: http, noop, shell"
    )


async def test_agent_drops_stale_completion() -> None:
    service = FakeWorkerService()
    service.completion_failures.append(grpc.StatusCode.FAILED_PRECONDITION)
    service.add_assignment(
        make_assignment("run-stale", fencing_token=6, payload={"command": ["true"]})
    )
    async with serve_fake(service) as address, running(make_agent(address)):
        await wait_until(lambda: service.calls_for("run-stale"), what="the report")
        await wait_for_lease_released(service, lease_key("run-stale", 6))

    assert len(service.calls_for("run-stale")) == 1
    assert service.accepted_for("run-stale") == []


async def test_agent_registers_again_when_unknown() -> None:
    service = FakeWorkerService()
    async with serve_fake(service) as address, running(make_agent(address)):
        await wait_until(lambda: service.heartbeats, what="the first heartbeat")
        service.unknown_heartbeats = 1
        await wait_until(lambda: len(service.registrations) == 2, what="a second registration")

    assert [r.worker_id for r in service.registrations] == [WORKER_ID, WORKER_ID]


class _CountingClock(SystemClock):
    def __init__(self) -> None:
        self.sleeps = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        await super().sleep(seconds)


async def test_agent_waits_for_coordinator_at_start() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{probe.getsockname()[1]}"
    clock = _CountingClock()
    service = FakeWorkerService()
    agent = make_agent(address, clock=clock)
    async with running(agent) as task:
        await wait_until(lambda: clock.sleeps >= 3, what="three failed registration tries")
        assert not task.done()
        assert service.registrations == []

        async with serve_fake(service, address):
            await wait_until(lambda: service.registrations, timeout_s=10, what="registration")


async def test_agent_shutdown_kills_unfinished_attempt(tmp_path: Path) -> None:
    service = FakeWorkerService()
    pid_file = tmp_path / "slow.pid"
    service.add_assignment(
        make_assignment("run-slow", fencing_token=7, payload={"command": pid_command(pid_file)})
    )
    async with serve_fake(service) as address:
        agent = make_agent(address, grace_s=0.3)
        task = asyncio.create_task(agent.run())
        await wait_until(pid_file.exists, what="the attempt to start")
        heartbeats_at_stop = len(service.heartbeats)
        polls_at_stop = len(service.polls)

        agent.stop()
        await asyncio.wait_for(task, timeout=10)

    (report,) = service.completions
    assert report.lease.fencing_token == 7
    assert report.outcome == types_pb2.ATTEMPT_OUTCOME_FAILED
    assert report.error == SHUTDOWN_ERROR
    assert process_gone(int(pid_file.read_text()))
    assert any(
        lease_key("run-slow", 7) in service.leases_in_heartbeat(index)
        for index in range(heartbeats_at_stop, len(service.heartbeats))
    )
    assert len(service.polls) == polls_at_stop
    assert service.deregistrations == [WORKER_ID]


async def test_agent_shutdown_lets_attempt_finish(tmp_path: Path) -> None:
    service = FakeWorkerService()
    pid_file = tmp_path / "short.pid"
    service.add_assignment(
        make_assignment(
            "run-short", fencing_token=8, payload={"command": pid_command(pid_file, "sleep 0.3")}
        )
    )
    async with serve_fake(service) as address:
        agent = make_agent(address, grace_s=5)
        task = asyncio.create_task(agent.run())
        await wait_until(pid_file.exists, what="the attempt to start")

        agent.stop()
        await asyncio.wait_for(task, timeout=10)

    (report,) = service.completions
    assert report.outcome == types_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert service.deregistrations == [WORKER_ID]


class _BrokenClock(SystemClock):
    async def sleep(self, seconds: float) -> None:
        raise RuntimeError("clock failed")


async def test_agent_stops_when_a_loop_crashes() -> None:
    service = FakeWorkerService()
    async with serve_fake(service) as address:
        agent = make_agent(address, clock=_BrokenClock())

        with pytest.raises(AgentCrashedError):
            await asyncio.wait_for(agent.run(), timeout=10)

    assert len(service.registrations) == 1
