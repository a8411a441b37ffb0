"""Pure decisions on attempt reports: how the run ends, what its job becomes, how writes batch.

Nothing here touches etcd, the clock or the leader's memory. The caller,
coordinator.completion, passes their contents in and applies the result.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from taskscheduler.coordinator.decisions import job_status_after_run, judge_attempt
from taskscheduler.coordinator.evolve import evolve
from taskscheduler.coordinator.model import AttemptOutcome, Job, RetryPolicy, Run, RunStatus

# A handler's result whose compact JSON encoding is longer than this is not stored.
MAX_RESULT_BYTES = 64 * 1024
# A run keeps the last this many characters of its output.
MAX_OUTPUT_CHARS = 64 * 1024
# Operations (and compares) per transaction, under etcd's default --max-txn-ops of 128.
MAX_OPS_PER_TXN = 120
# Key and value bytes per transaction, under etcd's default --max-request-bytes of 1.5 MiB,
# leaving room for the compares and the request's framing.
MAX_TXN_BYTES = 1024 * 1024

_NO_RETRY = RetryPolicy()


@dataclass(frozen=True, slots=True)
class HeldLease:
    """An agent's reference to the lease it holds on one attempt."""

    run_id: str
    attempt: int
    fencing_token: int


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """An attempt's end, as its agent (or the leader, for expiry and cancel) reports it.

    `result` is the JSON value a Python handler returned, None when there is none.
    """

    outcome: AttemptOutcome
    exit_code: int = 0
    output: str = ""
    error: str = ""
    started_at: datetime | None = None
    completed_at: datetime | None = None
    result: Any = None


def ended_run(run: Run, policy: RetryPolicy | None, report: AttemptReport, now: datetime) -> Run:
    """Return the run after its current attempt ended as `report` describes.

    The retry policy decides whether the run is final or queued again at its
    retry time. Only a completed run keeps the report's result, bounded as
    `stored_result` describes; any other end clears it.
    """
    verdict = judge_attempt(report.outcome, run.attempt, policy or _NO_RETRY, now)
    completed_at = report.completed_at or now
    previous = run.attempts[-1]
    # The agent's report of the start replaces the estimate made at assignment,
    # which is the due time of a run handed out early. An attempt that ended
    # before that time never started, and shows its end as its start.
    started_at = min(report.started_at or previous.started_at, completed_at)
    attempt = evolve(
        previous,
        started_at=started_at,
        completed_at=completed_at,
        outcome=report.outcome,
        exit_code=report.exit_code,
        error=report.error,
    )
    result, output = None, report.output
    if verdict.run_status is RunStatus.COMPLETED:
        result, output = stored_result(report.result, report.output)
    return evolve(
        run,
        status=verdict.run_status,
        due_at=verdict.retry_at or run.due_at,
        started_at=started_at,
        completed_at=completed_at,
        exit_code=report.exit_code,
        output=output,
        error=report.error,
        result=result,
        attempts=(*run.attempts[:-1], attempt),
    )


def stored_result(result: Any, output: str) -> tuple[Any, str]:
    """Return the result to store and the output to store with it.

    A result is dropped, not rejected, when its compact JSON encoding is longer
    than MAX_RESULT_BYTES or when it contains NaN or Infinity, which JSON cannot
    represent. The run still completes, and a line appended to its output
    explains why the result is missing. The output keeps its last
    MAX_OUTPUT_CHARS characters.
    """
    if result is None:
        return None, output
    try:
        encoded = json.dumps(result, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:
        note = "[result dropped: it contains NaN or Infinity, which JSON cannot represent]"
        return None, _with_note(output, note)
    size_bytes = len(encoded.encode())
    if size_bytes > MAX_RESULT_BYTES:
        note = (
            f"[result dropped: its JSON encoding is {size_bytes} bytes, "
            f"over the limit of {MAX_RESULT_BYTES} bytes]"
        )
        return None, _with_note(output, note)
    return result, output


def _with_note(output: str, note: str) -> str:
    joined = f"{output}\n{note}" if output else note
    return joined[-MAX_OUTPUT_CHARS:]


def job_after_end(job: Job | None, last_status: RunStatus, other_active_runs: int) -> Job | None:
    """Return the job with the status its ended runs leave it in, or None when it stays.

    `last_status` is the status of the job's run that ended last (in report
    order within one batch), and `other_active_runs` counts the job's runs
    that stay queued or running afterwards, retried runs included. None
    means no job write is needed.
    """
    if job is None:
        return None
    status = job_status_after_run(job, last_status, other_active_runs)
    if status is job.status:
        return None
    return evolve(job, status=status)


@dataclass(frozen=True, slots=True)
class WriteCost:
    """The operations and bytes one ended run adds to a transaction, besides its job's write."""

    job_id: str
    ops: int
    size_bytes: int


def split_batches(
    costs: Sequence[WriteCost],
    job_bytes: Mapping[str, int],
    *,
    max_ops: int = MAX_OPS_PER_TXN,
    max_bytes: int = MAX_TXN_BYTES,
) -> list[list[int]]:
    """Group ended runs, by index and in order, into transactions within etcd's limits.

    A transaction compares the leader fence and one lease key per run. Each
    distinct job in a group counts as one more operation, one more compare
    and `job_bytes[job_id]` more bytes, because its status may need a write.
    A run too large for any group gets a group of its own.
    """
    batches: list[list[int]] = []
    group = _Group()
    for index, cost in enumerate(costs):
        totals = group.totals_with(cost, job_bytes)
        ops, compares, size_bytes = totals
        if group.indexes and (ops > max_ops or compares > max_ops or size_bytes > max_bytes):
            batches.append(group.indexes)
            group = _Group()
            totals = group.totals_with(cost, job_bytes)
        group.add(index, cost.job_id, totals)
    if group.indexes:
        batches.append(group.indexes)
    return batches


@dataclass(slots=True)
class _Group:
    indexes: list[int] = dataclasses.field(default_factory=list)
    jobs: set[str] = dataclasses.field(default_factory=set)
    ops: int = 0
    compares: int = 1  # the leader fence
    size_bytes: int = 0

    def totals_with(self, cost: WriteCost, job_bytes: Mapping[str, int]) -> tuple[int, int, int]:
        """Return the group's operations, compares and bytes once `cost` joins it."""
        job_ops, job_size = 0, 0
        if cost.job_id not in self.jobs:
            job_ops, job_size = 1, job_bytes.get(cost.job_id, 0)
        return (
            self.ops + cost.ops + job_ops,
            self.compares + 1 + job_ops,
            self.size_bytes + cost.size_bytes + job_size,
        )

    def add(self, index: int, job_id: str, totals: tuple[int, int, int]) -> None:
        self.indexes.append(index)
        self.jobs.add(job_id)
        self.ops, self.compares, self.size_bytes = totals
