"""The outbox's batched reports: per-report verdicts, limits, and the CompleteAttempt fallback."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
import structlog
from agent_fakes import FakeWorkerService, make_assignment, serve_fake, wait_until
from google.protobuf import json_format, struct_pb2
from google.protobuf.message import Message

from taskscheduler.agent.agent import Agent, AgentTuning
from taskscheduler.agent.attempts import FinishedAttempt, Lease
from taskscheduler.agent.backoff import RetryPolicy
from taskscheduler.agent.config import AgentConfig
from taskscheduler.agent.executors import AttemptOutcome, AttemptResult, default_registry
from taskscheduler.agent.outbox import MAX_CALL_BYTES, MAX_REPORTS_PER_CALL, Outbox
from taskscheduler.clock import FakeClock
from taskscheduler.errors import InvalidArgumentError
from taskscheduler.grpc_status import trailers_for
from taskscheduler.v1 import types_pb2, workers_pb2

WORKER_ID = "agent-batch"
STARTED_AT = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

Responder = Callable[[str, Message], Awaitable[Any]]


def rpc_error(code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(
        code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=f"scripted {code.name}"
    )


def unknown_worker_error() -> grpc.aio.AioRpcError:
    """The coordinator's rejection of a call from an agent it has no registration for."""
    error = InvalidArgumentError("workerId", "worker 'agent-batch' is not registered")
    code = grpc.StatusCode.INVALID_ARGUMENT
    trailers = grpc.aio.Metadata(*trailers_for(error, code))
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), trailers, details=str(error))


def accepted(run_id: str) -> workers_pb2.CompleteAttemptResult:
    return workers_pb2.CompleteAttemptResult(
        run_id=run_id, run_status=types_pb2.RUN_STATUS_COMPLETED
    )


def rejected(run_id: str, code: grpc.StatusCode) -> workers_pb2.CompleteAttemptResult:
    return workers_pb2.CompleteAttemptResult(
        run_id=run_id, error_code=code.name, error_message=f"scripted {code.name}"
    )


class FakeClient:
    """Stands in for CoordinatorClient: records calls and returns what scripted responders return.

    Without a scripted responder, every report is accepted.
    """

    def __init__(self) -> None:
        self.current_address = "127.0.0.1:7001"
        self.calls: list[tuple[str, Any]] = []
        self.responders: deque[Responder] = deque()

    def methods(self) -> list[str]:
        return [method for method, _ in self.calls]

    def run_ids(self, index: int) -> list[str]:
        method, request = self.calls[index]
        if method == "CompleteAttempt":
            return [request.lease.run_id]
        return [report.lease.run_id for report in request.reports]

    async def call(self, method: str, request: Message, *, timeout_s: float) -> Any:
        self.calls.append((method, request))
        if self.responders:
            return await self.responders.popleft()(method, request)
        return accept_all(method, request)


def accept_all(method: str, request: Any) -> Any:
    if method == "CompleteAttempt":
        return workers_pb2.CompleteAttemptResponse(run_status=types_pb2.RUN_STATUS_COMPLETED)
    return workers_pb2.CompleteAttemptsResponse(
        results=[accepted(report.lease.run_id) for report in request.reports]
    )


def answer(response: Any) -> Responder:
    async def respond(method: str, request: Message) -> Any:
        return response

    return respond


def fail(code: grpc.StatusCode) -> Responder:
    async def respond(method: str, request: Message) -> Any:
        raise rpc_error(code)

    return respond


class RecordingClock(FakeClock):
    def __init__(self) -> None:
        super().__init__()
        self.sleeps: list[float] = []

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        await super().sleep(seconds)


def finished(
    run_id: str, *, output: str = "", result: Any = None, fencing_token: int = 5
) -> FinishedAttempt:
    return FinishedAttempt(
        lease=Lease(run_id, 1, fencing_token),
        job_id="job-1",
        result=AttemptResult(outcome=AttemptOutcome.SUCCEEDED, output=output, result=result),
        started_at=STARTED_AT,
        completed_at=STARTED_AT + timedelta(seconds=2),
    )


class Harness:
    def __init__(self) -> None:
        self.client = FakeClient()
        self.clock = RecordingClock()
        self.outbox = Outbox(
            client=self.client,  # type: ignore[arg-type]
            worker_id=lambda: WORKER_ID,
            retry=RetryPolicy(initial_s=1.0, max_s=4.0, jitter=0.0),
            clock=self.clock,
        )

    def put(self, *run_ids: str) -> None:
        for run_id in run_ids:
            self.outbox.put(finished(run_id))

    def pending(self) -> list[str]:
        return [lease.run_id for lease in self.outbox.leases()]

    async def wait_calls(self, count: int) -> None:
        await wait_until(lambda: len(self.client.calls) >= count, what=f"{count} calls")

    async def wait_empty(self) -> None:
        assert await self.outbox.wait_empty(5), f"still pending: {self.pending()}"


@asynccontextmanager
async def delivering(harness: Harness) -> AsyncIterator[Harness]:
    task = asyncio.create_task(harness.outbox.run())
    try:
        yield harness
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert not task.done() or task.cancelled()


async def test_outbox_sends_pending_in_one_call() -> None:
    harness = Harness()
    harness.put("run-a", "run-b", "run-c")

    async with delivering(harness):
        await harness.wait_empty()

    assert harness.client.methods() == ["CompleteAttempts"]
    _, request = harness.client.calls[0]
    assert request.worker_id == WORKER_ID
    assert harness.client.run_ids(0) == ["run-a", "run-b", "run-c"]
    first = request.reports[0]
    assert first.worker_id == WORKER_ID
    assert first.lease == workers_pb2.LeaseRef(run_id="run-a", attempt=1, fencing_token=5)
    assert first.outcome == types_pb2.ATTEMPT_OUTCOME_SUCCEEDED
    assert first.started_at.ToDatetime(tzinfo=UTC) == STARTED_AT
    assert first.completed_at.ToDatetime(tzinfo=UTC) == STARTED_AT + timedelta(seconds=2)
    assert not first.HasField("result")


async def test_outbox_judges_each_result() -> None:
    harness = Harness()
    harness.put("run-ok", "run-stale", "run-gone", "run-bad", "run-later")
    harness.client.responders.append(
        answer(
            workers_pb2.CompleteAttemptsResponse(
                results=[
                    accepted("run-ok"),
                    rejected("run-stale", grpc.StatusCode.FAILED_PRECONDITION),
                    rejected("run-gone", grpc.StatusCode.NOT_FOUND),
                    rejected("run-bad", grpc.StatusCode.INVALID_ARGUMENT),
                    rejected("run-later", grpc.StatusCode.UNAVAILABLE),
                ]
            )
        )
    )

    with structlog.testing.capture_logs() as logged:
        async with delivering(harness):
            await harness.wait_empty()

    assert harness.client.methods() == ["CompleteAttempts", "CompleteAttempts"]
    assert harness.client.run_ids(1) == ["run-later"]
    # The first call made progress, so the retry went out without a backoff.
    assert harness.clock.sleeps == []
    verdicts = [
        (entry["log_level"], entry["event"], entry["run_id"])
        for entry in logged
        if entry["log_level"] != "debug"
    ]
    assert verdicts == [
        ("warning", "lease is stale; dropping the attempt's result", "run-stale"),
        ("warning", "run not found; dropping the attempt's result", "run-gone"),
        ("error", "coordinator rejected the report; dropping it", "run-bad"),
        ("warning", "reporting the attempt failed; retrying", "run-later"),
    ]


async def test_outbox_unknown_error_code_is_retried() -> None:
    harness = Harness()
    harness.put("run-x")
    harness.client.responders.append(
        answer(
            workers_pb2.CompleteAttemptsResponse(
                results=[
                    workers_pb2.CompleteAttemptResult(run_id="run-x", error_code="NO_SUCH_CODE")
                ]
            )
        )
    )

    async with delivering(harness):
        await wait_until(lambda: harness.clock.sleeps, what="a backoff")
        assert harness.pending() == ["run-x"]
        harness.clock.advance(1.0)
        await harness.wait_empty()

    assert harness.clock.sleeps == [1.0]
    assert len(harness.client.calls) == 2


async def test_outbox_unimplemented_falls_back() -> None:
    harness = Harness()
    harness.put("run-a", "run-b")
    harness.client.responders.append(fail(grpc.StatusCode.UNIMPLEMENTED))

    async with delivering(harness):
        await harness.wait_empty()
        assert harness.client.methods() == [
            "CompleteAttempts",
            "CompleteAttempt",
            "CompleteAttempt",
        ]
        assert harness.client.run_ids(1) == ["run-a"]
        assert harness.client.run_ids(2) == ["run-b"]

        # The same coordinator gets single calls from now on.
        harness.put("run-c")
        await harness.wait_empty()
        assert harness.client.methods()[3:] == ["CompleteAttempt"]

        # Another coordinator (a new leader) is asked for the batched call again.
        harness.client.current_address = "127.0.0.1:7002"
        harness.put("run-d")
        await harness.wait_empty()
        assert harness.client.methods()[4:] == ["CompleteAttempts"]

    assert harness.clock.sleeps == []


async def test_outbox_fallback_retries_in_order() -> None:
    harness = Harness()
    harness.put("run-a", "run-b")
    harness.client.responders.extend(
        [fail(grpc.StatusCode.UNIMPLEMENTED), fail(grpc.StatusCode.INTERNAL)]
    )

    async with delivering(harness):
        await wait_until(lambda: harness.clock.sleeps, what="a backoff")
        assert harness.pending() == ["run-a", "run-b"]
        harness.clock.advance(1.0)
        await harness.wait_empty()

    assert harness.client.methods() == [
        "CompleteAttempts",
        "CompleteAttempt",
        "CompleteAttempt",
        "CompleteAttempt",
    ]
    assert [harness.client.run_ids(index) for index in (1, 2, 3)] == [
        ["run-a"],
        ["run-a"],
        ["run-b"],
    ]


async def test_outbox_fallback_drops_stale_report() -> None:
    harness = Harness()
    harness.put("run-stale", "run-ok")
    harness.client.responders.extend(
        [fail(grpc.StatusCode.UNIMPLEMENTED), fail(grpc.StatusCode.FAILED_PRECONDITION)]
    )

    async with delivering(harness):
        await harness.wait_empty()

    assert [harness.client.run_ids(index) for index in (1, 2)] == [["run-stale"], ["run-ok"]]
    assert harness.clock.sleeps == []


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.NOT_FOUND,
    ],
)
async def test_outbox_rejected_batch_goes_one_by_one(code: grpc.StatusCode) -> None:
    harness = Harness()
    harness.put("run-a", "run-b")
    harness.client.responders.append(fail(code))

    async with delivering(harness):
        await harness.wait_empty()
        harness.put("run-c")
        await harness.wait_empty()

    assert harness.client.methods() == [
        "CompleteAttempts",
        "CompleteAttempt",
        "CompleteAttempt",
        "CompleteAttempts",
    ]


async def test_outbox_unknown_worker_keeps_reports() -> None:
    harness = Harness()
    harness.put("run-a", "run-b")

    async def unknown(method: str, request: Message) -> Any:
        raise unknown_worker_error()

    harness.client.responders.extend([unknown, fail(grpc.StatusCode.UNIMPLEMENTED), unknown])

    async with delivering(harness):
        await wait_until(lambda: harness.clock.sleeps == [1.0], what="the first backoff")
        assert harness.pending() == ["run-a", "run-b"]
        harness.clock.advance(1.0)
        # One per call now, and the single call meets the same rejection.
        await wait_until(lambda: harness.clock.sleeps == [1.0, 2.0], what="the second backoff")
        assert harness.pending() == ["run-a", "run-b"]
        harness.clock.advance(2.0)
        await harness.wait_empty()

    assert harness.client.methods() == [
        "CompleteAttempts",
        "CompleteAttempts",
        "CompleteAttempt",
        "CompleteAttempt",
        "CompleteAttempt",
    ]
    assert [harness.client.run_ids(index) for index in (2, 3, 4)] == [
        ["run-a"],
        ["run-a"],
        ["run-b"],
    ]


async def test_outbox_failed_batch_backs_off() -> None:
    harness = Harness()
    harness.put("run-a", "run-b")
    harness.client.responders.extend(
        [fail(grpc.StatusCode.INTERNAL), fail(grpc.StatusCode.RESOURCE_EXHAUSTED)]
    )

    async with delivering(harness):
        await wait_until(lambda: harness.clock.sleeps == [1.0], what="the first backoff")
        assert len(harness.client.calls) == 1
        harness.clock.advance(1.0)
        await wait_until(lambda: harness.clock.sleeps == [1.0, 2.0], what="the second backoff")
        assert len(harness.client.calls) == 2
        harness.clock.advance(2.0)
        await harness.wait_empty()

    assert harness.client.methods() == ["CompleteAttempts"] * 3
    assert harness.client.run_ids(2) == ["run-a", "run-b"]


async def test_outbox_caps_reports_per_call() -> None:
    harness = Harness()
    harness.put(*(f"run-{index}" for index in range(MAX_REPORTS_PER_CALL + 44)))

    async with delivering(harness):
        await harness.wait_empty()

    assert [len(harness.client.run_ids(index)) for index in range(2)] == [
        MAX_REPORTS_PER_CALL,
        44,
    ]
    assert harness.client.run_ids(1)[0] == f"run-{MAX_REPORTS_PER_CALL}"


async def test_outbox_caps_bytes_per_call() -> None:
    harness = Harness()
    for index in range(20):
        harness.outbox.put(finished(f"run-{index}", output="x" * 65536))

    async with delivering(harness):
        await harness.wait_empty()

    assert [len(harness.client.run_ids(index)) for index in range(2)] == [15, 5]
    assert all(request.ByteSize() <= MAX_CALL_BYTES for _, request in harness.client.calls)


async def test_outbox_retries_reports_without_result() -> None:
    harness = Harness()
    harness.put("run-a", "run-b")
    harness.client.responders.append(
        answer(workers_pb2.CompleteAttemptsResponse(results=[accepted("run-a")]))
    )

    async with delivering(harness):
        await harness.wait_empty()

    assert harness.client.run_ids(0) == ["run-a", "run-b"]
    assert harness.client.run_ids(1) == ["run-b"]


async def test_outbox_sends_handler_result() -> None:
    harness = Harness()
    harness.outbox.put(finished("run-r", result={"rows": [1, "two", None], "ok": True}))

    async with delivering(harness):
        await harness.wait_empty()

    _, request = harness.client.calls[0]
    (report,) = request.reports
    expected = json_format.ParseDict({"rows": [1, "two", None], "ok": True}, struct_pb2.Value())
    assert report.result == expected


async def test_outbox_drops_unencodable_report() -> None:
    harness = Harness()
    broken = FinishedAttempt(
        lease=Lease("run-broken", 1, 5),
        job_id="job-1",
        result=AttemptResult.failed("bad \ud800 text"),
        started_at=STARTED_AT,
        completed_at=STARTED_AT,
    )
    harness.outbox.put(broken)
    harness.put("run-ok")

    with structlog.testing.capture_logs() as logged:
        async with delivering(harness):
            await harness.wait_empty()

    assert harness.client.run_ids(0) == ["run-ok"]
    errors = [entry for entry in logged if entry["log_level"] == "error"]
    assert [(entry["event"], entry["run_id"]) for entry in errors] == [
        (
            "attempt report cannot be encoded; dropping it, so the lease will expire",
            "run-broken",
        )
    ]


async def test_outbox_discard_during_call() -> None:
    harness = Harness()
    harness.put("run-revoked", "run-kept")
    in_call = asyncio.Event()
    release = asyncio.Event()

    async def slow(method: str, request: Message) -> Any:
        in_call.set()
        await release.wait()
        return workers_pb2.CompleteAttemptsResponse(
            results=[
                rejected("run-revoked", grpc.StatusCode.UNAVAILABLE),
                accepted("run-kept"),
            ]
        )

    harness.client.responders.append(slow)

    async with delivering(harness):
        await in_call.wait()
        assert harness.outbox.discard(Lease("run-revoked", 1, 5))
        release.set()
        await harness.wait_empty()

    assert len(harness.client.calls) == 1


# The agent against a fake coordinator


async def test_agent_takes_no_work_while_reports_wait() -> None:
    service = FakeWorkerService()
    service.batch_completions = True
    service.completions_open.clear()
    for index in range(5):
        service.add_assignment(
            make_assignment(f"run-{index}", fencing_token=index + 1, executor="noop", payload={})
        )
    tuning = AgentTuning(
        retry=RetryPolicy(initial_s=0.01, max_s=0.05), outbox_flush_s=1.0, deregister_timeout_s=1.0
    )

    async with serve_fake(service) as address:
        config = AgentConfig(
            coordinators=(address,), worker_id=WORKER_ID, max_concurrent=2, poll_wait_s=0.2
        )
        agent = Agent(config, registry=default_registry(), tuning=tuning)
        task = asyncio.create_task(agent.run())
        await wait_until(lambda: service.queued == 3, what="two runs handed out")
        # Both finished at once, but their reports wait, so they keep their slots.
        seen = len(service.heartbeats)
        await wait_until(lambda: len(service.heartbeats) > seen + 2, what="three heartbeats")
        assert service.queued == 3
        assert service.latest_heartbeat_leases() == {("run-0", 1, 1), ("run-1", 1, 2)}

        service.completions_open.set()
        await wait_until(lambda: len(service.completions) == 5, what="all five reports")
        agent.stop()
        await asyncio.wait_for(task, timeout=10)

    assert all(len(handed) <= 2 for handed in service.poll_results)
    assert all(poll.max_assignments <= 2 for poll in service.polls)
    assert service.completion_calls == service.completions
    assert [report.lease.run_id for report in service.completions] == [
        f"run-{index}" for index in range(5)
    ]
    assert all(
        report.outcome == types_pb2.ATTEMPT_OUTCOME_SUCCEEDED for report in service.completions
    )
