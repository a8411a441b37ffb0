"""Runs as plain records, and the check that no scheduled slot was lost or doubled.

Times are integer epoch milliseconds, so slot arithmetic is exact. An
`@every` schedule fires on the instants epoch + k * interval, so the
expected slots of a window depend only on the interval.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

COMPLETED = "completed"


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """The fields of a recorded run that the benchmark reads."""

    job_id: str
    run_id: str
    status: str
    scheduled_ms: int
    # Attempt start as recorded on the run (the agent's report); None before it starts.
    started_ms: int | None = None
    completed_ms: int | None = None

    @property
    def lag_ms(self) -> int | None:
        """Milliseconds from the scheduled slot to the attempt's start, if it started."""
        return None if self.started_ms is None else self.started_ms - self.scheduled_ms


def format_ms(epoch_ms: int) -> str:
    """Format epoch milliseconds as an ISO-8601 UTC time: 1000 -> '1970-01-01T00:00:01.000Z'."""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


def expected_slots(start_ms: int, end_ms: int, interval_ms: int) -> list[int]:
    """Return the slots epoch + k * `interval_ms` with start_ms <= slot < end_ms."""
    if interval_ms <= 0:
        raise ValueError(f"interval_ms must be positive, got {interval_ms}")
    first = -(-start_ms // interval_ms) * interval_ms
    return list(range(first, end_ms, interval_ms))


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotCheck:
    """Coverage of the expected slots of one window by the runs of a set of jobs."""

    jobs: int
    expected: int
    # Expected slots with exactly one run, and that run completed.
    completed: int
    # Expected slots with no run.
    missing: int
    # Runs beyond the first on one slot.
    doubled: int
    # Expected slots whose single run did not complete (queued, running, failed...).
    unfinished: int
    # Runs in the window on an instant that is no slot of the schedule.
    off_slot: int
    examples: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return (
            self.missing == 0 and self.doubled == 0 and self.unfinished == 0 and not self.off_slot
        )


_MAX_EXAMPLES = 5


def check_slots(
    runs_by_job: Mapping[str, Sequence[RunRecord]],
    *,
    start_ms: int,
    end_ms: int,
    interval_ms: int,
) -> SlotCheck:
    """Check that every job has exactly one completed run per slot in [start_ms, end_ms)."""
    slots = expected_slots(start_ms, end_ms, interval_ms)
    slot_set = set(slots)
    totals: Counter[str] = Counter()
    examples: list[str] = []
    for job_id, runs in runs_by_job.items():
        in_window = [run for run in runs if start_ms <= run.scheduled_ms < end_ms]
        for kind, slot in _job_problems(in_window, slots, slot_set, totals):
            if len(examples) < _MAX_EXAMPLES:
                examples.append(f"job {job_id}: {kind} for the slot {format_ms(slot)}")
    expected = len(slots) * len(runs_by_job)
    return SlotCheck(
        jobs=len(runs_by_job),
        expected=expected,
        completed=totals["completed"],
        missing=totals["missing"],
        doubled=totals["doubled"],
        unfinished=totals["unfinished"],
        off_slot=totals["off_slot"],
        examples=tuple(examples),
    )


def _job_problems(
    runs: Sequence[RunRecord], slots: Sequence[int], slot_set: set[int], totals: Counter[str]
) -> Iterable[tuple[str, int]]:
    """Count one job's slot outcomes into `totals` and yield (problem, slot) pairs."""
    by_slot: dict[int, list[RunRecord]] = {}
    for run in runs:
        by_slot.setdefault(run.scheduled_ms, []).append(run)
    for slot, slot_runs in by_slot.items():
        if slot not in slot_set:
            totals["off_slot"] += len(slot_runs)
            yield "run off the schedule", slot
    for slot in slots:
        slot_runs = by_slot.get(slot, [])
        if not slot_runs:
            totals["missing"] += 1
            yield "no run", slot
        elif len(slot_runs) > 1:
            totals["doubled"] += len(slot_runs) - 1
            yield f"{len(slot_runs)} runs", slot
        elif slot_runs[0].status != COMPLETED:
            totals["unfinished"] += 1
            yield f"run {slot_runs[0].status}", slot
        else:
            totals["completed"] += 1


def completed_between(runs: Iterable[RunRecord], start_ms: int, end_ms: int) -> int:
    """Count the completed runs whose completion time lies in [start_ms, end_ms)."""
    return sum(
        1
        for run in runs
        if run.status == COMPLETED
        and run.completed_ms is not None
        and start_ms <= run.completed_ms < end_ms
    )


def lags_ms(runs: Iterable[RunRecord], start_ms: int, end_ms: int) -> list[float]:
    """Return the schedule lag of every started run scheduled in [start_ms, end_ms)."""
    return [
        float(run.lag_ms)
        for run in runs
        if run.lag_ms is not None and start_ms <= run.scheduled_ms < end_ms
    ]
