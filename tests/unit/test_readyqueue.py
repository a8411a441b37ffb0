"""The leader's ready queues: priority order, aging, selectors, bounds and waiting reasons."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.coordinator.leasetable import LeaseTable
from taskscheduler.coordinator.model import Priority, Run, RunStatus, RunTrigger
from taskscheduler.coordinator.readyqueue import (
    AgentOffer,
    ReadyQueues,
    effective_rank,
    route_blocker,
)
from taskscheduler.coordinator.selector import check_selector, labels_match, selector_key
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.errors import InvalidArgumentError

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def ago(seconds: float) -> datetime:
    return NOW - timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("priority", "waited_s", "aging_s", "expected_rank"),
    [
        (Priority.LOW, 0, 300, 0),
        (Priority.LOW, 299, 300, 0),
        (Priority.LOW, 300, 300, 1),
        (Priority.LOW, 899, 300, 2),
        (Priority.LOW, 900, 300, 3),
        (Priority.LOW, 10_000, 300, 3),
        (Priority.HIGH, 300, 300, 3),
        (Priority.CRITICAL, 10_000, 300, 3),
        (Priority.LOW, 10_000, 0, 0),
        (Priority.NORMAL, -50, 300, 1),
    ],
)
def test_effective_rank_rises_one_level_per_aging_bound(
    priority: Priority, waited_s: float, aging_s: float, expected_rank: int
) -> None:
    assert effective_rank(priority, ago(waited_s), NOW, aging_s) == expected_rank


def test_pop_ready_orders_by_priority_then_due_time() -> None:
    queues = ReadyQueues(aging_s=0)
    queues.push("low-old", Priority.LOW, "shell", ago(50))
    queues.push("normal-new", Priority.NORMAL, "shell", ago(1))
    queues.push("critical", Priority.CRITICAL, "shell", ago(2))
    queues.push("normal-old", Priority.NORMAL, "shell", ago(10))
    queues.push("high", Priority.HIGH, "http", ago(3))

    taken = queues.pop_ready({"shell", "http"}, NOW, 10)

    assert taken == ["critical", "high", "normal-old", "normal-new", "low-old"]
    assert len(queues) == 0


def test_aged_low_run_goes_before_a_newer_normal_run() -> None:
    queues = ReadyQueues(aging_s=60)
    queues.push("normal", Priority.NORMAL, "shell", ago(5))
    queues.push("low-waited-2-bounds", Priority.LOW, "shell", ago(121))
    queues.push("high", Priority.HIGH, "shell", ago(1))

    # The low run reaches high after two bounds and is older than the high run.
    assert queues.pop_ready({"shell"}, NOW, 3) == ["low-waited-2-bounds", "high", "normal"]


def test_pop_ready_skips_runs_not_due_and_executors_not_offered() -> None:
    queues = ReadyQueues()
    queues.push("later", Priority.CRITICAL, "shell", NOW + timedelta(seconds=5))
    queues.push("http", Priority.CRITICAL, "http", ago(1))
    queues.push("now", Priority.LOW, "shell", ago(1))

    assert queues.pop_ready({"shell"}, NOW, 10) == ["now"]
    assert "later" in queues
    assert "http" in queues


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({}, {}, True),
        ({}, {"gpu": "true"}, True),
        ({"gpu": "true"}, {"gpu": "true", "zone": "a"}, True),
        ({"gpu": "true"}, {"gpu": "false"}, False),
        ({"gpu": "true"}, {}, False),
        ({"gpu": "true", "zone": "a"}, {"gpu": "true"}, False),
    ],
)
def test_labels_match_needs_every_selector_entry(
    selector: dict[str, str], labels: dict[str, str], matches: bool
) -> None:
    assert labels_match(selector_key(selector), labels) is matches
    assert labels_match(selector, labels) is matches


def test_pop_ready_offers_selector_runs_only_to_matching_labels() -> None:
    queues = ReadyQueues()
    queues.push("gpu", Priority.CRITICAL, "shell", ago(2), selector_key({"gpu": "true"}))
    queues.push("any", Priority.LOW, "shell", ago(1))

    assert queues.pop_ready({"shell"}, NOW, 10, labels={"gpu": "false"}) == ["any"]
    assert queues.pop_ready({"shell"}, NOW, 10, labels={"gpu": "true"}) == ["gpu"]


@pytest.mark.parametrize(
    ("selector", "field", "message_part"),
    [
        ({str(i): "v" for i in range(17)}, "selector", "at most 16"),
        ({"": "v"}, "selector", "use 1 to 63 letters, digits"),
        ({"k" * 64: "v"}, "selector", "use 1 to 63 letters, digits"),
        ({"a=b": "v"}, "selector", "is not a label key agents can have"),
        ({"zone x": "v"}, "selector", "is not a label key agents can have"),
        ({"k": ""}, "selector.k", "1 to 255 printable characters"),
        ({"k": "v" * 256}, "selector.k", "1 to 255 printable characters"),
        ({"k": "a,b"}, "selector.k", "without commas"),
        ({"k": "line\nbreak"}, "selector.k", "without commas"),
        ({"gpu": " padded"}, "selector.gpu", "surrounding spaces"),
    ],
)
def test_check_selector_rejects_bad_entries(
    selector: dict[str, str], field: str, message_part: str
) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        check_selector(selector)
    assert raised.value.field == field
    assert message_part in str(raised.value)


def test_check_selector_accepts_the_limits() -> None:
    check_selector({f"{i:02d}" + "k" * 61: "v" * 255 for i in range(16)})


@pytest.mark.parametrize(
    ("route", "expected"),
    [
        (("shell", ()), ""),
        (("gpu", ()), "no online agent offers executor 'gpu'"),
        (
            ("shell", (("zone", "mars"),)),
            "no online agent offering executor 'shell' has labels zone=mars",
        ),
        (("shell", (("gpu", "true"),)), ""),
    ],
)
def test_route_blocker_names_what_no_agent_offers(route, expected: str) -> None:  # type: ignore[no-untyped-def]
    agents = [
        AgentOffer({"shell"}, {"gpu": "false"}),
        AgentOffer({"shell", "http"}, {"gpu": "true"}),
    ]
    assert route_blocker(route, agents) == expected


def test_waiting_reason_shows_after_the_minimum_wait() -> None:
    queues = ReadyQueues()
    queues.push("mars-old", Priority.NORMAL, "shell", ago(5), selector_key({"zone": "mars"}))
    queues.push("mars-new", Priority.NORMAL, "shell", ago(1), selector_key({"zone": "mars"}))
    queues.push("fine", Priority.NORMAL, "shell", ago(5))
    queues.refresh_waiting_reasons([AgentOffer({"shell"}, {})])

    reason = "no online agent offering executor 'shell' has labels zone=mars"
    assert queues.waiting_reason("mars-old", NOW, 2.0) == reason
    assert queues.waiting_reason("mars-new", NOW, 2.0) == ""
    assert queues.waiting_reason("fine", NOW, 2.0) == ""
    assert queues.waiting_reason("unknown", NOW, 2.0) == ""


def make_run(run_id: str, priority: Priority, due_s_ago: float) -> Run:
    return Run(
        id=f"job-1.{run_id}",
        job_id="job-1",
        job_name="job",
        trigger=RunTrigger.MANUAL,
        status=RunStatus.QUEUED,
        priority=priority,
        executor="shell",
        scheduled_at=ago(due_s_ago),
        due_at=ago(due_s_ago),
        max_attempts=1,
    )


async def test_state_keeps_runs_over_the_bound_in_etcd_only() -> None:
    state = LeaderState(leases=LeaseTable(10), ready=ReadyQueues(max_per_priority=2))
    for number, due_s_ago in enumerate([10, 9, 8, 7]):
        state.queue(make_run(str(number), Priority.LOW, due_s_ago))
    state.queue(make_run("high", Priority.HIGH, 1))

    assert state.ready.depth_by_priority()[Priority.LOW] == 2
    assert state.ready.depth_by_priority()[Priority.HIGH] == 1
    assert state.active_per_job["job-1"] == 5
    assert sorted(state.active) == ["job-1.0", "job-1.1", "job-1.high"]
    due_ms = int(ago(8).timestamp() * 1000)
    assert state.etcd_only_from == {Priority.LOW: (due_ms, "job-1.2")}
    assert state.latest_spills == {Priority.LOW: (due_ms, "job-1.2")}


async def test_state_sends_new_runs_to_etcd_while_older_ones_wait_there() -> None:
    state = LeaderState(leases=LeaseTable(10), ready=ReadyQueues(max_per_priority=2))
    state.mark_in_etcd(Priority.NORMAL, (5, "job-1.old"))
    state.queue(make_run("new", Priority.NORMAL, 1))

    assert "job-1.new" not in state.active
    assert state.etcd_only_from[Priority.NORMAL] == (5, "job-1.old")

    # A loaded run is already counted, so loading does not count it again.
    state.load(make_run("old", Priority.NORMAL, 100))
    assert state.active_per_job["job-1"] == 1
    assert "job-1.old" in state.ready


async def test_runs_already_held_requeue_in_memory_past_the_bound() -> None:
    state = LeaderState(leases=LeaseTable(10), ready=ReadyQueues(max_per_priority=1))
    state.queue(make_run("a", Priority.LOW, 3))
    state.track(make_run("retry", Priority.LOW, 2))
    state.queue(make_run("retry", Priority.LOW, 2))

    assert state.ready.depth_by_priority()[Priority.LOW] == 2
    assert state.etcd_only_from == {}


def test_unroutable_runs_hard_bound() -> None:
    queues = ReadyQueues(max_per_priority=2)
    mars = selector_key({"zone": "mars"})
    for n in range(2):
        queues.push(f"job-1.{n}", Priority.LOW, "shell", ago(10), mars)

    assert queues.room(Priority.LOW) == 0

    queues.refresh_waiting_reasons([AgentOffer({"shell"}, {})])

    assert queues.room(Priority.LOW) == 2
    for n in range(2, 8):
        queues.push(f"job-1.{n}", Priority.LOW, "shell", ago(10), mars)
    assert queues.room(Priority.LOW) == 0
    assert queues.room(Priority.NORMAL) == 2

    queues.refresh_waiting_reasons([AgentOffer({"shell"}, {"zone": "mars"})])

    assert queues.room(Priority.LOW) == 0
    assert queues.pop_ready({"shell"}, NOW, 8, labels={"zone": "mars"}) == [
        f"job-1.{n}" for n in range(8)
    ]
    assert queues.room(Priority.LOW) == 2
