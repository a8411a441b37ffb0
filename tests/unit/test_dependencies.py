"""Job dependencies: graph checks, the trigger decision, and the specs they allow."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.coordinator import ids
from taskscheduler.coordinator.codec import JobDraft
from taskscheduler.coordinator.decisions import job_status_after_run
from taskscheduler.coordinator.dependencies import (
    Completion,
    cancel_reason,
    check_dependency_graph,
    expired_reason,
    find_cycle,
    is_dependency_cancel,
    missing_dependencies,
    trigger_for,
    waiting_reason,
)
from taskscheduler.coordinator.jobs import first_fire_at, idle_status
from taskscheduler.coordinator.model import (
    Job,
    JobStatus,
    Priority,
    Run,
    RunStatus,
    RunTrigger,
)
from taskscheduler.coordinator.validation import validate_job_spec
from taskscheduler.errors import InvalidArgumentError

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


# Graph checks

GRAPH_REJECTED = [
    # (job id, its new dependencies, the stored graph, expected message part)
    ("job-a", ["job-a"], {"job-a": []}, "job job-a cannot depend on itself"),
    ("job-a", ["job-x"], {"job-a": []}, "unknown jobs: job-x."),
    ("job-a", ["job-b", "job-x", "job-y"], {"job-b": []}, "unknown jobs: job-x, job-y."),
    ("job-a", ["job-b"], {"job-a": [], "job-b": ["job-a"]}, "cycle: job-a -> job-b -> job-a."),
    (
        "job-a",
        ["job-b"],
        {"job-a": [], "job-b": ["job-c"], "job-c": ["job-a"]},
        "cycle: job-a -> job-b -> job-c -> job-a.",
    ),
    (
        "job-a",
        ["job-d", "job-b"],
        {"job-a": [], "job-b": ["job-c"], "job-c": ["job-a"], "job-d": []},
        "cycle: job-a -> job-b -> job-c -> job-a.",
    ),
]


@pytest.mark.parametrize(("job_id", "dependencies", "graph", "message_part"), GRAPH_REJECTED)
def test_graph_rejected(
    job_id: str, dependencies: list[str], graph: dict[str, list[str]], message_part: str
) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        check_dependency_graph(job_id, dependencies, graph)

    assert caught.value.field == "dependencies"
    assert message_part in caught.value.message


GRAPH_ACCEPTED = [
    # diamond: a depends on b and c, both depend on d
    ("job-a", ["job-b", "job-c"], {"job-b": ["job-d"], "job-c": ["job-d"], "job-d": []}),
    # a chain, checked on update of its head
    ("job-a", ["job-b"], {"job-a": [], "job-b": ["job-c"], "job-c": []}),
    # the stored entry of job-a is replaced by its new dependencies, so the old cycle goes
    ("job-a", ["job-c"], {"job-a": ["job-b"], "job-b": [], "job-c": []}),
    ("job-a", [], {}),
]


@pytest.mark.parametrize(("job_id", "dependencies", "graph"), GRAPH_ACCEPTED)
def test_graph_accepted(job_id: str, dependencies: list[str], graph: dict[str, list[str]]) -> None:
    check_dependency_graph(job_id, dependencies, graph)


def test_find_cycle_ends_on_stored_cycle() -> None:
    graph = {"job-b": ["job-c"], "job-c": ["job-b"]}

    assert find_cycle("job-a", ["job-b"], graph) == []


# Trigger decision


def completion(job_id: str, minutes: int) -> Completion:
    return Completion(job_id, f"{job_id}.{minutes}", T0 + timedelta(minutes=minutes))


TRIGGERS = [
    # (completions, dependant's newest run in minutes after T0 or None, expected trigger run)
    ({"job-a": completion("job-a", 1)}, None, "job-a.1"),
    ({"job-a": None}, None, None),
    ({}, None, None),
    ({"job-a": completion("job-a", 1), "job-b": None}, None, None),
    ({"job-a": completion("job-a", 1), "job-b": completion("job-b", 3)}, None, "job-b.3"),
    ({"job-a": completion("job-a", 5), "job-b": completion("job-b", 3)}, 2, "job-a.5"),
    # one dependency has not completed since the dependant's newest run
    ({"job-a": completion("job-a", 5), "job-b": completion("job-b", 2)}, 2, None),
    ({"job-a": completion("job-a", 5), "job-b": completion("job-b", 1)}, 2, None),
    ({"job-a": completion("job-a", 1)}, 4, None),
]


@pytest.mark.parametrize(("completions", "last_run_minutes", "expected"), TRIGGERS)
def test_trigger_for(
    completions: dict[str, Completion | None], last_run_minutes: int | None, expected: str | None
) -> None:
    last_run_at = None if last_run_minutes is None else T0 + timedelta(minutes=last_run_minutes)

    trigger = trigger_for(completions, last_run_at)

    assert (trigger.run_id if trigger else None) == expected


def test_trigger_tie_picks_larger_run_id() -> None:
    same = {
        "job-a": Completion("job-a", "job-a.1", T0),
        "job-b": Completion("job-b", "job-b.1", T0),
    }

    assert trigger_for(same, None) == Completion("job-b", "job-b.1", T0)


def test_dependency_run_id_is_derived() -> None:
    first = ids.dependency_run_id("job-d", T0, "job-a.00001893456000000")
    again = ids.dependency_run_id("job-d", T0, "job-a.00001893456000000")
    other = ids.dependency_run_id("job-d", T0, "job-b.00001893456000000")

    assert first == again
    assert first != other
    assert ids.job_id_of(first) == "job-d"
    assert first.startswith("job-d.01893488400000-d")


def make_run(status: RunStatus, trigger: RunTrigger, error: str = "") -> Run:
    return Run(
        id="job-d.1",
        job_id="job-d",
        job_name="d",
        trigger=trigger,
        status=status,
        priority=Priority.NORMAL,
        executor="shell",
        scheduled_at=T0,
        due_at=T0,
        max_attempts=1,
        error=error,
    )


CANCELS = [
    (
        RunStatus.CANCELLED,
        RunTrigger.DEPENDENCY,
        cancel_reason("job-a", "job-a.1", RunStatus.FAILED),
        True,
    ),
    (RunStatus.CANCELLED, RunTrigger.DEPENDENCY, "cancelled by request", False),
    (
        RunStatus.CANCELLED,
        RunTrigger.MANUAL,
        cancel_reason("job-a", "job-a.1", RunStatus.FAILED),
        False,
    ),
    (
        RunStatus.FAILED,
        RunTrigger.DEPENDENCY,
        cancel_reason("job-a", "job-a.1", RunStatus.FAILED),
        False,
    ),
]


@pytest.mark.parametrize(("status", "trigger", "error", "expected"), CANCELS)
def test_is_dependency_cancel(
    status: RunStatus, trigger: RunTrigger, error: str, expected: bool
) -> None:
    assert is_dependency_cancel(make_run(status, trigger, error)) is expected


def test_cancel_reason_names_run() -> None:
    reason = cancel_reason("job-a", "job-a.7", RunStatus.TIMEOUT)

    assert reason == "cancelled: dependency job-a run job-a.7 ended timeout"


# Specs of jobs that run on dependencies


def dependant_draft() -> JobDraft:
    return JobDraft(
        name="load",
        schedule="",
        executor="shell",
        payload={"command": ["true"]},
        dependencies=("job-a", "job-b"),
    )


def test_dependant_spec_accepted() -> None:
    spec = validate_job_spec(dependant_draft())

    assert spec.schedule == ""
    assert spec.dependencies == ("job-a", "job-b")
    assert spec.runs_on_dependencies is True


def test_dependant_never_fires_by_time() -> None:
    spec = validate_job_spec(dependant_draft())

    assert first_fire_at(spec, T0) is None
    assert idle_status(spec, None) is JobStatus.SCHEDULED


@pytest.mark.parametrize(
    ("run_status", "expected"),
    [
        (RunStatus.COMPLETED, JobStatus.SCHEDULED),
        (RunStatus.CANCELLED, JobStatus.SCHEDULED),
        (RunStatus.FAILED, JobStatus.FAILED),
    ],
)
def test_dependant_status_after_run(run_status: RunStatus, expected: JobStatus) -> None:
    job = Job(
        id="job-d",
        spec=validate_job_spec(dependant_draft()),
        status=JobStatus.RUNNING,
        created_at=T0,
        updated_at=T0,
    )

    assert job_status_after_run(job, run_status, other_active_runs=0) is expected


MISSING = [
    # (completions, previous run in minutes after T0 or None, expected missing)
    ({"job-a": completion("job-a", 1)}, None, []),
    ({"job-a": None}, None, ["job-a"]),
    ({}, 3, []),
    ({"job-a": completion("job-a", 5), "job-b": completion("job-b", 1)}, 2, ["job-b"]),
    ({"job-b": completion("job-b", 2), "job-a": completion("job-a", 9)}, 2, ["job-b"]),
    ({"job-b": None, "job-a": completion("job-a", 1)}, 2, ["job-a", "job-b"]),
    ({"job-a": completion("job-a", 3), "job-b": completion("job-b", 4)}, 2, []),
]


@pytest.mark.parametrize(("completions", "previous_minutes", "expected"), MISSING)
def test_missing_dependencies(
    completions: dict[str, Completion | None], previous_minutes: int | None, expected: list[str]
) -> None:
    since = None if previous_minutes is None else T0 + timedelta(minutes=previous_minutes)

    assert missing_dependencies(completions, since) == expected


def test_waiting_and_expired_reasons_name_the_missing_jobs() -> None:
    deadline = T0 + timedelta(hours=1)

    assert waiting_reason(["job-a", "job-b"], deadline) == (
        "waiting for dependencies to complete: job-a, job-b (until 2030-01-01T10:00:00Z)"
    )
    assert expired_reason(["job-b"], 600) == (
        "cancelled: dependencies job-b did not complete within 600 s of the fire time "
        "(dependencyWait)"
    )
