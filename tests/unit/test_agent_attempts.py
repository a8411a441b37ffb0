"""The attempt runner: slots, revocation, shutdown and broken executors."""

from __future__ import annotations

import asyncio

import pytest
from agent_fakes import wait_until

from taskscheduler.agent.attempts import (
    SHUTDOWN_ERROR,
    AttemptRunner,
    FinishedAttempt,
    Lease,
    NoFreeSlotError,
)
from taskscheduler.agent.executors import (
    AttemptContext,
    AttemptOutcome,
    AttemptResult,
    ExecutorRegistry,
)
from taskscheduler.clock import FakeClock


class GatedExecutor:
    """Succeeds with the run id as output once `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[str] = []
        self.cancelled: list[str] = []

    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        self.started.append(attempt.run_id)
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(attempt.run_id)
            raise
        return AttemptResult(outcome=AttemptOutcome.SUCCEEDED, output=attempt.run_id)


class BrokenExecutor:
    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        raise RuntimeError("boom")


class StubbornExecutor:
    """Ignores the attempt's timeout."""

    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


class Harness:
    def __init__(self, *, max_concurrent: int = 2) -> None:
        self.clock = FakeClock()
        self.gated = GatedExecutor()
        registry = ExecutorRegistry()
        registry.register("gated", self.gated)
        registry.register("broken", BrokenExecutor())
        registry.register("stubborn", StubbornExecutor())
        self.finished: list[FinishedAttempt] = []
        self.runner = AttemptRunner(
            registry=registry,
            max_concurrent=max_concurrent,
            clock=self.clock,
            on_finished=self.finished.append,
            timeout_margin_s=0.05,
        )

    def start(
        self, run_id: str, *, executor: str = "gated", timeout_s: float | None = None
    ) -> Lease:
        context = AttemptContext(
            run_id=run_id,
            job_id="job-1",
            job_name="job",
            attempt=1,
            fencing_token=len(run_id),
            executor=executor,
            timeout_s=timeout_s,
        )
        self.runner.start(context)
        return Lease.of(context)


async def test_runner_fills_and_frees_slots() -> None:
    harness = Harness(max_concurrent=2)
    harness.start("run-a")
    harness.start("run-b")

    assert harness.runner.free_slots == 0
    with pytest.raises(NoFreeSlotError):
        harness.start("run-c")

    harness.clock.advance(3)
    harness.gated.release.set()
    assert await asyncio.wait_for(harness.runner.wait_for_free_slots(), timeout=5) >= 1
    await wait_until(lambda: len(harness.finished) == 2, what="two results")
    assert harness.runner.free_slots == 2
    first = harness.finished[0]
    assert first.result.outcome is AttemptOutcome.SUCCEEDED
    assert first.lease == Lease("run-a", 1, 5)
    assert (first.completed_at - first.started_at).total_seconds() == 3


async def test_runner_revoke_drops_result() -> None:
    harness = Harness()
    lease = harness.start("run-r")
    await wait_until(lambda: harness.gated.started == ["run-r"], what="the executor to start")

    assert harness.runner.revoke(lease)
    await wait_until(lambda: harness.runner.free_slots == 2, what="the slot to be freed")

    assert harness.gated.cancelled == ["run-r"]
    assert harness.finished == []
    assert harness.runner.leases() == []


async def test_runner_revoke_before_first_step() -> None:
    harness = Harness()
    lease = harness.start("run-early")

    assert harness.runner.revoke(lease)
    await wait_until(lambda: harness.runner.free_slots == 2, what="the slot to be freed")

    assert harness.gated.started == []
    assert harness.finished == []


async def test_runner_revoke_unknown_lease() -> None:
    harness = Harness()

    assert not harness.runner.revoke(Lease("run-x", 1, 1))


async def test_runner_drain_lets_attempts_finish() -> None:
    harness = Harness()
    harness.start("run-d")
    harness.gated.release.set()

    await asyncio.wait_for(harness.runner.drain(grace_s=5), timeout=10)

    (finished,) = harness.finished
    assert finished.result.outcome is AttemptOutcome.SUCCEEDED


async def test_runner_drain_fails_leftovers() -> None:
    harness = Harness()
    harness.start("run-slow")

    await asyncio.wait_for(harness.runner.drain(grace_s=0.05), timeout=10)

    (finished,) = harness.finished
    assert finished.result.outcome is AttemptOutcome.FAILED
    assert finished.result.error == SHUTDOWN_ERROR
    assert harness.runner.free_slots == 2


async def test_runner_broken_executor_fails_attempt() -> None:
    harness = Harness()
    harness.start("run-broken", executor="broken")

    await wait_until(lambda: harness.finished, what="the result")

    (finished,) = harness.finished
    assert finished.result.outcome is AttemptOutcome.FAILED
    assert finished.result.error == "executor 'broken' raised RuntimeError('boom')"


async def test_runner_cancels_executor_past_timeout() -> None:
    harness = Harness()
    harness.start("run-stubborn", executor="stubborn", timeout_s=0.05)

    await wait_until(lambda: harness.finished, what="the result")

    (finished,) = harness.finished
    assert finished.result.outcome is AttemptOutcome.TIMED_OUT
    assert finished.result.error == (
        "executor 'stubborn' did not stop at its 0.05 s timeout and was cancelled"
    )


async def test_runner_ignores_repeated_assignment() -> None:
    harness = Harness()
    harness.start("run-twice")
    harness.start("run-twice")

    assert harness.runner.free_slots == 1
    assert harness.runner.leases() == [Lease("run-twice", 1, 9)]


class InlineRecorder:
    """An InlineExecutor that records its calls."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def execute_inline(self, attempt: AttemptContext) -> AttemptResult:
        self.calls.append(attempt.run_id)
        return AttemptResult(outcome=AttemptOutcome.SUCCEEDED, output="inline")

    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        raise AssertionError("the runner must call execute_inline")


async def test_runner_inline_executor_finishes_in_start() -> None:
    clock = FakeClock()
    recorder = InlineRecorder()
    registry = ExecutorRegistry()
    registry.register("inline", recorder)
    finished: list[FinishedAttempt] = []
    runner = AttemptRunner(
        registry=registry, max_concurrent=1, clock=clock, on_finished=finished.append
    )
    context = AttemptContext(
        run_id="run-i",
        job_id="job-1",
        job_name="job",
        attempt=1,
        fencing_token=3,
        executor="inline",
    )

    runner.start(context)

    assert recorder.calls == ["run-i"]
    (result,) = finished
    assert result.lease == Lease("run-i", 1, 3)
    assert result.result == AttemptResult(outcome=AttemptOutcome.SUCCEEDED, output="inline")
    assert result.started_at == result.completed_at == clock.now()
    assert runner.leases() == []
    assert runner.free_slots == 1


async def test_runner_unreported_attempts_hold_slots() -> None:
    unreported = [0]
    registry = ExecutorRegistry()
    registry.register("gated", GatedExecutor())
    runner = AttemptRunner(
        registry=registry,
        max_concurrent=2,
        clock=FakeClock(),
        on_finished=lambda _: None,
        unreported=lambda: unreported[0],
    )

    unreported[0] = 2
    assert runner.free_slots == 0
    waiter = asyncio.create_task(runner.wait_for_free_slots())
    await asyncio.sleep(0)
    assert not waiter.done()

    unreported[0] = 1
    runner.report_settled()
    assert await asyncio.wait_for(waiter, timeout=5) == 1
