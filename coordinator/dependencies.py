"""Job dependencies: the graph rules checked at write time, and when a dependant runs.

Pure: the callers pass the dependency graph (job id to the ids it depends on)
and the completion times read from etcd. The rules are described in
docs/dependencies.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from taskscheduler.coordinator.model import Run, RunStatus, RunTrigger
from taskscheduler.errors import InvalidArgumentError

Graph = Mapping[str, Sequence[str]]


def check_dependency_graph(job_id: str, dependencies: Sequence[str], graph: Graph) -> None:
    """Raise InvalidArgumentError if the job's dependencies name itself, an unknown job, or
    close a cycle.

    `graph` maps every stored job id to its dependencies. The entry for `job_id`, if any,
    is read as `dependencies`, so an update is checked against the graph it would create.
    """
    if job_id in dependencies:
        raise InvalidArgumentError(
            "dependencies",
            f"job {job_id} cannot depend on itself. Remove {job_id} from dependencies",
        )
    unknown = [dependency for dependency in dependencies if dependency not in graph]
    if unknown:
        raise InvalidArgumentError(
            "dependencies",
            f"dependencies name unknown jobs: {', '.join(unknown)}. "
            "Create those jobs first or remove their ids",
        )
    cycle = find_cycle(job_id, dependencies, graph)
    if cycle:
        raise InvalidArgumentError(
            "dependencies",
            f"dependencies form a cycle: {' -> '.join(cycle)}. Remove one of these dependencies",
        )


def find_cycle(job_id: str, dependencies: Sequence[str], graph: Graph) -> list[str]:
    """Return a path from `job_id` back to itself through the dependencies, or [].

    A depth-first search from the job's new dependencies. It visits each job once, so
    it ends even if the stored graph already holds a cycle elsewhere.
    """
    parent: dict[str, str] = {}
    stack = [(job_id, dependency) for dependency in dependencies]
    while stack:
        source, current = stack.pop()
        if current in parent:
            continue
        parent[current] = source
        if current == job_id:
            return _path_back(job_id, parent)
        for following in graph.get(current, ()):
            if following not in parent:
                stack.append((current, following))
    return []


def _path_back(job_id: str, parent: Mapping[str, str]) -> list[str]:
    path = [job_id]
    current = parent[job_id]
    while current != job_id:
        path.append(current)
        current = parent[current]
    path.append(job_id)
    path.reverse()
    return path


@dataclass(frozen=True, slots=True)
class Completion:
    """The newest completed run of one dependency."""

    job_id: str
    run_id: str
    completed_at: datetime


def trigger_for(
    completions: Mapping[str, Completion | None], last_run_at: datetime | None
) -> Completion | None:
    """Decide whether a dependant runs now; return the completion that triggers it, or None.

    It runs when every dependency has a completion strictly after the dependant's newest
    run (`last_run_at`, None when it has none). The triggering completion is the newest
    one, so every replica derives the same run id from the same history.
    """
    if not completions:
        return None
    newest: Completion | None = None
    for completion in completions.values():
        if completion is None:
            return None
        if last_run_at is not None and completion.completed_at <= last_run_at:
            return None
        if newest is None or (completion.completed_at, completion.run_id) > (
            newest.completed_at,
            newest.run_id,
        ):
            newest = completion
    return newest


# A dependency run ending in one of these cancels the dependants' wait.
FAILED_STATUSES = frozenset({RunStatus.FAILED, RunStatus.TIMEOUT})


_CANCEL_PREFIX = "cancelled: dependency "


def cancel_reason(job_id: str, run_id: str, status: RunStatus) -> str:
    """Return the error recorded on a dependant's run cancelled because a dependency failed."""
    return f"{_CANCEL_PREFIX}{job_id} run {run_id} ended {status.value}"


def is_dependency_cancel(run: Run) -> bool:
    """True for a run recorded as cancelled because a dependency of its job failed."""
    return (
        run.trigger is RunTrigger.DEPENDENCY
        and run.status is RunStatus.CANCELLED
        and run.error.startswith(_CANCEL_PREFIX)
    )


# Runs of scheduled jobs with dependencies


def missing_dependencies(
    completions: Mapping[str, Completion | None], since: datetime | None
) -> list[str]:
    """Return, sorted, the dependencies without a completed run after `since`.

    `since` is the scheduled time of the dependant's previous run; before its first
    run it is None, and any completed run counts. An empty list means the waiting
    run may start.
    """
    return sorted(
        job_id
        for job_id, completion in completions.items()
        if completion is None or (since is not None and completion.completed_at <= since)
    )


def waiting_reason(missing: Sequence[str], deadline: datetime) -> str:
    """Return the reason a run that waits for its dependencies shows while queued."""
    until = deadline.isoformat().replace("+00:00", "Z")
    return f"waiting for dependencies to complete: {', '.join(missing)} (until {until})"


def expired_reason(missing: Sequence[str], wait_s: int) -> str:
    """Return the error of a run cancelled because its dependencies did not complete in time."""
    return (
        f"cancelled: dependencies {', '.join(missing)} did not complete within "
        f"{wait_s} s of the fire time (dependencyWait)"
    )
