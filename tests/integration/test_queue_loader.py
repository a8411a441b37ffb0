"""QueueLoader against the session etcd: bounded loading in due order, orphan keys deleted."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from taskscheduler.coordinator import codec
from taskscheduler.coordinator.etcd import Etcd, absent, put
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.leasetable import LeaseTable
from taskscheduler.coordinator.model import Priority, Run, RunStatus, RunTrigger
from taskscheduler.coordinator.queueloader import QueueLoader
from taskscheduler.coordinator.readyqueue import ReadyQueues
from taskscheduler.coordinator.runstore import RunStore
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.etcd_server import EtcdServer

pytestmark = pytest.mark.integration

BASE = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
async def store(etcd: EtcdServer) -> AsyncIterator[Etcd]:
    client = Etcd([etcd.endpoint])
    yield client
    await client.close()


def _run(number: int, priority: Priority = Priority.LOW) -> Run:
    due = BASE + timedelta(seconds=number)
    return Run(
        id=f"job-1.{number:05d}",
        job_id="job-1",
        job_name="job",
        trigger=RunTrigger.MANUAL,
        status=RunStatus.QUEUED,
        priority=priority,
        executor="shell",
        scheduled_at=due,
        due_at=due,
        max_attempts=1,
    )


async def _write(store: Etcd, keys: KeyLayout, runs: list[Run]) -> None:
    ops = []
    for run in runs:
        ops.append(put(keys.run(run.id), codec.encode_run(run)))
        ops.append(put(keys.queued(run), b""))
    await store.txn([], ops)


async def test_loader_fills_memory_in_due_order_up_to_the_bound(
    store: Etcd, etcd_prefix: str
) -> None:
    keys = KeyLayout(etcd_prefix)
    runs = [_run(number) for number in (5, 1, 7, 3, 2, 6, 4)]
    await _write(store, keys, runs)
    orphan = keys.queued(_run(0))
    await store.txn([], [put(orphan, b"")])
    state = LeaderState(leases=LeaseTable(10), ready=ReadyQueues(max_per_priority=3))
    run_store = RunStore(store, keys, lambda: absent(keys.leader))
    loader = QueueLoader(state=state, store=store, keys=keys, runs=run_store)

    await loader.rebuild()

    assert sorted(state.active) == ["job-1.00001", "job-1.00002", "job-1.00003"]
    assert state.active_per_job["job-1"] == 8
    assert await store.get(orphan) is None

    # Popping frees room; the next refill loads the next runs by due time.
    popped = state.ready.pop_ready({"shell"}, BASE + timedelta(hours=1), 2)
    assert popped == ["job-1.00001", "job-1.00002"]
    for run_id in popped:
        state.untrack(run_id)
    await loader.refill()

    assert sorted(state.active) == ["job-1.00003", "job-1.00004", "job-1.00005"]
    assert state.etcd_only_from[Priority.LOW][1].startswith("job-1.00005")


async def test_loader_stops_when_etcd_holds_no_more(store: Etcd, etcd_prefix: str) -> None:
    keys = KeyLayout(etcd_prefix)
    await _write(store, keys, [_run(1, Priority.HIGH), _run(2, Priority.HIGH)])
    state = LeaderState(leases=LeaseTable(10), ready=ReadyQueues(max_per_priority=10))
    run_store = RunStore(store, keys, lambda: absent(keys.leader))
    loader = QueueLoader(state=state, store=store, keys=keys, runs=run_store)

    await loader.rebuild()

    assert sorted(state.active) == ["job-1.00001", "job-1.00002"]
    assert state.etcd_only_from == {}
    assert state.active_per_job["job-1"] == 2
