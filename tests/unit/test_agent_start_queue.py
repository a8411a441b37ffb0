"""Attempts handed out before they are due: waiting, starting at the instant, revoke and drain."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest
from agent_fakes import wait_until

from taskscheduler.agent.attempts import (
    NOT_STARTED_ERROR,
    AttemptRunner,
    FinishedAttempt,
    Lease,
)
from taskscheduler.agent.executors import (
    AttemptContext,
    AttemptOutcome,
    AttemptResult,
    ExecutorRegistry,
)
from taskscheduler.agent.start_queue import MAX_START_WAIT_S, StartQueue
from taskscheduler.clock import FakeClock

# Steps of the fake clock, exact in binary floating point, so that its
# monotonic reading lands exactly on each sleep's deadline.
HALF_S = 0.5
QUARTER_S = 0.25


class InlineRecorder:
    """An InlineExecutor, as `noop` is, that records each call with the clock's time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[tuple[str, datetime]] = []

    def execute_inline(self, attempt: AttemptContext) -> AttemptResult:
        self.calls.append((attempt.run_id, self.clock.now()))
        return AttemptResult(outcome=AttemptOutcome.SUCCEEDED)

    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        raise AssertionError("the runner must call execute_inline")


class GatedExecutor:
    """Records each start and succeeds once `release` is set."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.started: list[str] = []

    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        self.started.append(attempt.run_id)
        await self.release.wait()
        return AttemptResult(outcome=AttemptOutcome.SUCCEEDED)


class Harness:
    """A runner on a fake clock with an inline `noop` recorder and a gated executor."""

    def __init__(self, *, max_concurrent: int = 4) -> None:
        self.clock = FakeClock()
        self.noop = InlineRecorder(self.clock)
        self.gated = GatedExecutor()
        registry = ExecutorRegistry()
        registry.register("noop", self.noop)
        registry.register("gated", self.gated)
        self.finished: list[FinishedAttempt] = []
        self.runner = AttemptRunner(
            registry=registry,
            max_concurrent=max_concurrent,
            clock=self.clock,
            on_finished=self.finished.append,
        )

    def at(self, seconds: float) -> datetime:
        """Return the instant `seconds` after the fake clock's current time."""
        return self.clock.now() + timedelta(seconds=seconds)

    def start(self, run_id: str, start_at: datetime | None, *, executor: str = "noop") -> Lease:
        context = attempt_context(run_id, executor=executor)
        self.runner.start(context, start_at=start_at)
        return Lease.of(context)

    def started_run_ids(self) -> list[str]:
        return [run_id for run_id, _ in self.noop.calls]


def attempt_context(run_id: str, *, executor: str = "noop") -> AttemptContext:
    return AttemptContext(
        run_id=run_id,
        job_id="job-1",
        job_name="job",
        attempt=1,
        fencing_token=7,
        executor=executor,
    )


async def settle() -> None:
    """Give every ready task many turns of the event loop without moving the fake clock."""
    for _ in range(20):
        await asyncio.sleep(0)


def start_timers() -> list[asyncio.Task[object]]:
    """Return the start queue's pending timer tasks, which it names "start at INSTANT"."""
    return [
        task
        for task in asyncio.all_tasks()
        if task.get_name().startswith("start at ") and not task.done()
    ]


async def test_future_start_waits_for_instant() -> None:
    harness = Harness()
    start_at = harness.at(HALF_S)

    harness.start("run-1", start_at)
    await settle()
    assert harness.noop.calls == []

    harness.clock.advance(QUARTER_S)
    await settle()
    assert harness.noop.calls == []

    harness.clock.advance(QUARTER_S)
    await wait_until(lambda: harness.noop.calls != [], what="the attempt to start")
    harness.clock.advance(HALF_S)
    await settle()

    assert harness.noop.calls == [("run-1", start_at)]


async def test_started_at_equals_start_instant() -> None:
    harness = Harness()
    start_at = harness.at(HALF_S)

    harness.start("run-1", start_at)
    harness.clock.advance(HALF_S)
    await wait_until(lambda: harness.finished != [], what="the attempt to finish")

    (finished,) = harness.finished
    assert finished.started_at == start_at
    assert finished.lease == Lease("run-1", 1, 7)
    assert finished.result.outcome is AttemptOutcome.SUCCEEDED


@pytest.mark.parametrize(
    ("label", "offset_s"),
    [
        ("no start instant", None),
        ("instant is now", 0.0),
        ("instant in the past", -3.0),
    ],
)
async def test_due_start_begins_at_once(label: str, offset_s: float | None) -> None:
    harness = Harness()
    start_at = None if offset_s is None else harness.at(offset_s)

    harness.start("run-1", start_at)

    assert harness.noop.calls == [("run-1", harness.clock.now())], label
    assert len(harness.finished) == 1, label
    assert harness.runner.leases() == [], label
    assert start_timers() == [], label


async def test_burst_on_one_instant_shares_timer() -> None:
    harness = Harness(max_concurrent=5)
    start_at = harness.at(HALF_S)
    run_ids = [f"run-{index}" for index in range(5)]

    for run_id in run_ids:
        harness.start(run_id, start_at)
    await settle()
    timers = start_timers()

    assert len(timers) == 1
    assert timers[0].get_name() == f"start at {start_at.isoformat()}"
    assert harness.runner.free_slots == 0

    harness.clock.advance(HALF_S)
    await wait_until(lambda: len(harness.noop.calls) == 5, what="five starts")

    assert harness.noop.calls == [(run_id, start_at) for run_id in run_ids]
    assert start_timers() == []
    assert harness.runner.free_slots == 5


async def test_distinct_instants_get_own_timers() -> None:
    harness = Harness()
    first, second = harness.at(QUARTER_S), harness.at(HALF_S)

    harness.start("run-a", first)
    harness.start("run-b", second)
    await settle()
    assert len(start_timers()) == 2

    harness.clock.advance(QUARTER_S)
    await wait_until(lambda: len(harness.noop.calls) == 1, what="the first start")
    assert harness.noop.calls == [("run-a", first)]

    harness.clock.advance(QUARTER_S)
    await wait_until(lambda: len(harness.noop.calls) == 2, what="the second start")
    assert harness.noop.calls == [("run-a", first), ("run-b", second)]


async def test_waiting_attempt_holds_slot_and_lease() -> None:
    harness = Harness(max_concurrent=3)
    harness.start("run-now", None, executor="gated")
    harness.start("run-later", harness.at(HALF_S))

    assert harness.runner.free_slots == 1
    assert harness.runner.leases() == [Lease("run-now", 1, 7), Lease("run-later", 1, 7)]

    harness.clock.advance(HALF_S)
    await wait_until(lambda: harness.noop.calls != [], what="the waiting attempt to start")

    assert harness.runner.leases() == [Lease("run-now", 1, 7)]
    assert harness.runner.free_slots == 2


async def test_revoke_waiting_attempt_never_starts() -> None:
    harness = Harness(max_concurrent=2)
    lease = harness.start("run-1", harness.at(HALF_S))
    assert harness.runner.free_slots == 1

    assert harness.runner.revoke(lease) is True

    assert harness.runner.free_slots == 2
    assert harness.runner.leases() == []
    assert await asyncio.wait_for(harness.runner.wait_for_free_slots(), timeout=5) == 2
    harness.clock.advance(HALF_S)
    await settle()
    harness.clock.advance(MAX_START_WAIT_S)
    await settle()
    assert harness.noop.calls == []
    assert harness.finished == []
    assert harness.runner.revoke(lease) is False


async def test_drain_within_grace_starts_waiting() -> None:
    harness = Harness()
    start_at = harness.at(HALF_S)
    harness.start("run-1", start_at)

    drain = asyncio.create_task(harness.runner.drain(grace_s=10))
    await settle()
    assert not drain.done()
    assert harness.noop.calls == []

    harness.clock.advance(HALF_S)
    await asyncio.wait_for(drain, timeout=5)

    assert harness.noop.calls == [("run-1", start_at)]
    (finished,) = harness.finished
    assert finished.result == AttemptResult(outcome=AttemptOutcome.SUCCEEDED)
    assert finished.started_at == start_at
    assert harness.runner.free_slots == 4


async def test_drain_within_grace_runs_started_executor() -> None:
    harness = Harness()
    start_at = harness.at(HALF_S)
    harness.start("run-1", start_at, executor="gated")

    drain = asyncio.create_task(harness.runner.drain(grace_s=10))
    harness.clock.advance(HALF_S)
    await wait_until(lambda: harness.gated.started == ["run-1"], what="the executor to start")
    harness.gated.release.set()
    await asyncio.wait_for(drain, timeout=5)

    (finished,) = harness.finished
    assert finished.result.outcome is AttemptOutcome.SUCCEEDED
    assert finished.started_at == start_at


@pytest.mark.parametrize("grace_s", [0.0, 0.05])
async def test_drain_past_grace_fails_unstarted(grace_s: float) -> None:
    harness = Harness(max_concurrent=2)
    harness.start("run-1", harness.at(HALF_S))
    drained_at = harness.clock.now()

    # The fake clock does not move, so the start instant lies past any real grace.
    await asyncio.wait_for(harness.runner.drain(grace_s=grace_s), timeout=5)

    assert harness.noop.calls == []
    (finished,) = harness.finished
    assert finished.lease == Lease("run-1", 1, 7)
    assert finished.result.outcome is AttemptOutcome.FAILED
    assert finished.result.error == NOT_STARTED_ERROR
    assert finished.started_at == drained_at
    assert harness.runner.free_slots == 2
    assert harness.runner.leases() == []
    assert start_timers() == []

    harness.clock.advance(HALF_S)
    await settle()
    assert harness.noop.calls == []
    assert len(harness.finished) == 1


async def test_far_start_cut_to_one_second() -> None:
    harness = Harness()
    limit = harness.at(1.0)

    harness.start("run-1", harness.at(5.0))
    harness.clock.advance(HALF_S)
    await settle()
    assert harness.noop.calls == []

    harness.clock.advance(HALF_S)
    await wait_until(lambda: harness.noop.calls != [], what="the attempt to start")

    assert MAX_START_WAIT_S == 1.0
    assert harness.noop.calls == [("run-1", limit)]
    assert harness.finished[0].started_at == limit


async def test_duplicate_waiting_assignment_ignored() -> None:
    harness = Harness(max_concurrent=3)
    start_at = harness.at(HALF_S)

    harness.start("run-1", start_at)
    harness.start("run-1", start_at)
    harness.start("run-1", None)

    assert harness.runner.free_slots == 2
    assert harness.runner.leases() == [Lease("run-1", 1, 7)]
    assert harness.noop.calls == []

    harness.clock.advance(HALF_S)
    await wait_until(lambda: harness.noop.calls != [], what="the attempt to start")
    await settle()
    assert harness.noop.calls == [("run-1", start_at)]
    assert len(harness.finished) == 1


async def test_queue_calls_on_due_per_instant() -> None:
    clock = FakeClock()
    started: list[tuple[str, datetime]] = []
    queue: StartQueue[str] = StartQueue(
        clock=clock, on_due=lambda context: started.append((context.run_id, clock.now()))
    )
    start_at = clock.now() + timedelta(seconds=HALF_S)

    assert queue.is_due(None)
    assert queue.is_due(clock.now())
    assert not queue.is_due(start_at)
    queue.add("a", attempt_context("run-a"), start_at)
    queue.add("b", attempt_context("run-b"), start_at)
    assert len(queue) == 2
    assert "a" in queue
    assert queue.leases() == ["a", "b"]
    assert queue.discard("b") is not None
    assert queue.discard("b") is None

    clock.advance(HALF_S)
    await wait_until(lambda: started != [], what="on_due to be called")
    await settle()

    assert started == [("run-a", start_at)]
    assert len(queue) == 0
    assert queue.leases() == []


async def test_queue_keeps_going_after_on_due_raises() -> None:
    clock = FakeClock()
    started: list[str] = []

    def on_due(context: AttemptContext) -> None:
        if context.run_id == "run-bad":
            raise RuntimeError("boom")
        started.append(context.run_id)

    queue: StartQueue[str] = StartQueue(clock=clock, on_due=on_due)
    start_at = clock.now() + timedelta(seconds=HALF_S)
    for run_id in ("run-1", "run-bad", "run-2"):
        queue.add(run_id, attempt_context(run_id), start_at)

    clock.advance(HALF_S)
    await wait_until(lambda: len(started) == 2, what="both good attempts to start")

    assert started == ["run-1", "run-2"]
    assert len(queue) == 0


async def test_drain_skips_revoked_instants() -> None:
    harness = Harness(max_concurrent=2)
    lease = harness.start("run-1", harness.at(HALF_S))
    assert harness.runner.revoke(lease) is True

    # The fake clock does not move: waiting for the revoked run's timer would
    # use up the whole grace period.
    await asyncio.wait_for(harness.runner.drain(grace_s=30.0), timeout=1.0)

    assert harness.noop.calls == []
    assert harness.finished == []
    assert start_timers() == []
