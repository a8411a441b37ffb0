"""The history pruner's round over all jobs for the age limit."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from taskscheduler.clock import FakeClock
from taskscheduler.coordinator.history import HistoryPruner
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.leasetable import LeaseTable
from taskscheduler.coordinator.state import LeaderState


class _Job:
    def __init__(self, job_id: str) -> None:
        self.id = job_id


class _Cache:
    def __init__(self, count: int) -> None:
        self.jobs = [_Job(f"job-{n:04d}") for n in range(count)]

    def __len__(self) -> int:
        return len(self.jobs)

    def all(self) -> list[_Job]:
        return list(self.jobs)


def _pruner(cache: _Cache, interval_s: float, age_sweep_s: float) -> HistoryPruner:
    return HistoryPruner(
        store=cast(Any, None),
        keys=KeyLayout(),
        cache=cast(Any, cache),
        state=LeaderState(leases=LeaseTable(10)),
        clock=FakeClock(),
        max_runs=10,
        max_age=timedelta(days=7),
        fence=cast(Any, None),
        interval_s=interval_s,
        age_sweep_s=age_sweep_s,
    )


def test_slices_cover_every_job_once_per_round() -> None:
    cache = _Cache(1000)
    pruner = _pruner(cache, interval_s=30, age_sweep_s=3600)

    # 120 passes per round: ceil(1000 / 120) = 9 jobs a pass, so 112 passes end the round.
    slices = [pruner._next_slice() for _ in range(112)]

    assert {len(piece) for piece in slices[:-1]} == {9}
    assert len(slices[-1]) == 1
    checked = [job_id for piece in slices for job_id in piece]
    assert checked == [job.id for job in cache.jobs]
    assert pruner._next_slice() == [job.id for job in cache.jobs[:9]]


def test_short_round_takes_all_jobs() -> None:
    cache = _Cache(5)
    pruner = _pruner(cache, interval_s=30, age_sweep_s=10)

    assert pruner._next_slice() == [job.id for job in cache.jobs]
    assert pruner._next_slice() == [job.id for job in cache.jobs]


def test_jobs_are_counted_again_only_past_the_cap() -> None:
    pruner = _pruner(_Cache(0), interval_s=30, age_sweep_s=3600)
    state = pruner._state
    for _ in range(3):
        state.note_new_run("job-1")

    assert pruner._over_cap() == {"job-1"}

    pruner._counts["job-1"] = 5
    for _ in range(5):
        state.note_new_run("job-1")
    assert pruner._over_cap() == set()
    assert pruner._counts["job-1"] == 10

    state.note_new_run("job-1")
    assert pruner._over_cap() == {"job-1"}
