"""Batch job operations: grouping into transactions, per-item results, retries on conflict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest
from aetcd import rpc

from taskscheduler.clock import FakeClock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.bulk_jobs import (
    MAX_BATCH_ITEMS,
    SAME_BATCH_NOTE,
    WRITE_ATTEMPTS,
    BulkJobs,
    ItemResult,
    check_batch_size,
)
from taskscheduler.coordinator.codec import JobDraft
from taskscheduler.coordinator.job_service import batch_result_to_proto
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.jobs import JobRepository
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Job, JobStatus
from taskscheduler.coordinator.txn_batches import (
    ItemWrite,
    TxnLimits,
    commit_writes,
    probe,
    read_keys,
    split_into_txns,
)
from taskscheduler.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    RecordDecodeError,
    SchedulerError,
    StoreUnavailableError,
)

T0 = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
KEYS = KeyLayout("/unit")


# An in-memory etcd for the calls the batch operations make


@dataclass
class FakeEtcd:
    """Transactions over a dict, with etcd's revision rules for the compares the code uses.

    `before_write` hooks run, one per call, before each transaction that has compares,
    so a test can change a job between a batch's read and its write.
    """

    revision: int = 1
    data: dict[bytes, tuple[bytes, int, int]] = field(default_factory=dict)
    writes: list[tuple[int, int, int]] = field(default_factory=list)
    before_write: list[Callable[[FakeEtcd], None]] = field(default_factory=list)
    unavailable: bool = False

    async def get(self, key: str) -> etcd.KeyValue | None:
        stored = self.data.get(key.encode())
        if stored is None:
            return None
        value, created, modified = stored
        return etcd.KeyValue(key, value, created, modified, 0)

    async def txn(
        self,
        compares: Sequence[etcd.Compare],
        success: Sequence[etcd.Op],
        failure: Sequence[etcd.Op] = (),
    ) -> etcd.TxnResult:
        if self.unavailable:
            raise StoreUnavailableError("etcd request failed: UNAVAILABLE: connection refused")
        if compares:
            self.writes.append((len(compares), len(success), len(failure)))
            if self.before_write:
                self.before_write.pop(0)(self)
        succeeded = all(self._holds(compare) for compare in compares)
        operations = success if succeeded else failure
        if any(not operation.HasField("request_range") for operation in operations):
            self.revision += 1
        responses = [self._apply(operation) for operation in operations]
        return etcd.TxnResult(succeeded=succeeded, revision=self.revision, responses=responses)

    def touch(self, job_id: str) -> None:
        """Rewrite a job record unchanged, as the leader does when it fires the job."""
        key = KEYS.job(job_id).encode()
        value, created, _ = self.data[key]
        self.revision += 1
        self.data[key] = (value, created, self.revision)

    def remove(self, job_id: str) -> None:
        self.revision += 1
        del self.data[KEYS.job(job_id).encode()]

    def keys_under(self, prefix: str) -> list[str]:
        return sorted(key.decode() for key in self.data if key.startswith(prefix.encode()))

    def _holds(self, compare: etcd.Compare) -> bool:
        _, created, modified = self.data.get(compare.key, (b"", 0, 0))
        target = compare.target
        if target == rpc.Compare.CompareTarget.MOD:
            return modified == compare.mod_revision
        if target == rpc.Compare.CompareTarget.CREATE:
            return created == compare.create_revision
        if target == rpc.Compare.CompareTarget.VERSION:
            return created > 0
        raise AssertionError(f"compare target {target} is not modelled")

    def _apply(self, operation: etcd.Op) -> rpc.ResponseOp:
        if operation.HasField("request_put"):
            put = operation.request_put
            _, created, _ = self.data.get(put.key, (b"", self.revision, 0))
            self.data[put.key] = (put.value, created, self.revision)
            return rpc.ResponseOp(response_put=rpc.PutResponse())
        if operation.HasField("request_delete_range"):
            request = operation.request_delete_range
            doomed = [key for key in self.data if _in_range(key, request.key, request.range_end)]
            for key in doomed:
                del self.data[key]
            return rpc.ResponseOp(
                response_delete_range=rpc.DeleteRangeResponse(deleted=len(doomed))
            )
        request = operation.request_range
        kvs = []
        if request.key in self.data:
            value, created, modified = self.data[request.key]
            kvs.append(
                rpc.KeyValue(
                    key=request.key,
                    value=b"" if request.keys_only else value,
                    create_revision=created,
                    mod_revision=modified,
                )
            )
        return rpc.ResponseOp(response_range=rpc.RangeResponse(kvs=kvs, count=len(kvs)))


def _in_range(key: bytes, start: bytes, end: bytes) -> bool:
    if not end:
        return key == start
    return start <= key < end


def _draft(name: str = "nightly", **fields: object) -> JobDraft:
    values: dict[str, object] = {
        "name": name,
        "schedule": "@every 1h",
        "executor": "shell",
        "payload": {"command": ["true"]},
        **fields,
    }
    return JobDraft(**values)  # type: ignore[arg-type]


@pytest.fixture
def store() -> FakeEtcd:
    return FakeEtcd()


@pytest.fixture
def cache(store: FakeEtcd) -> JobCache:
    return JobCache(store, KEYS)  # type: ignore[arg-type]


@pytest.fixture
def bulk(store: FakeEtcd, cache: JobCache) -> BulkJobs:
    jobs = JobRepository(store, KEYS, cache, FakeClock(T0))  # type: ignore[arg-type]
    return BulkJobs(jobs)


async def _create(bulk: BulkJobs, *drafts: JobDraft) -> list[Job]:
    results = await bulk.create_many(list(drafts))
    assert all(result.error is None for result in results), results
    return [result.job for result in results if result.job is not None]


def _stored_job(store: FakeEtcd, job_id: str) -> Job:
    value, _, modified = store.data[KEYS.job(job_id).encode()]
    return codec.decode_job(KEYS.job(job_id), value, modified)


def _codes(results: list[ItemResult]) -> list[str]:
    return [type(result.error).__name__ if result.error else "ok" for result in results]


# Grouping writes into transactions


def _create_write(number: int, value_bytes: int = 100, alone: bool = False) -> ItemWrite:
    key = KEYS.job(f"job-{number:04d}")
    return ItemWrite(
        compares=(etcd.absent(key),),
        operations=(etcd.put(key, b"x" * value_bytes),),
        alone=alone,
    )


def _delete_write(number: int) -> ItemWrite:
    job_id = f"job-{number:04d}"
    key = KEYS.job(job_id)
    return ItemWrite(
        compares=(etcd.modified_at_revision(key, 7),),
        operations=(
            etcd.delete(key),
            etcd.delete_prefix(KEYS.runs_of(job_id)),
            etcd.delete_prefix(KEYS.leases_of(job_id)),
        ),
        probes=(probe(key, keys_only=True),),
    )


@pytest.mark.parametrize(
    ("make_write", "count", "sizes"),
    [
        pytest.param(_create_write, 1, [1], id="one-create"),
        pytest.param(_create_write, 128, [128], id="creates-fill-one-txn"),
        pytest.param(_create_write, 129, [128, 1], id="creates-spill"),
        pytest.param(_create_write, 1000, [128] * 7 + [104], id="creates-full-batch"),
        pytest.param(_delete_write, 42, [42], id="deletes-fill-one-txn"),
        pytest.param(_delete_write, 100, [42, 42, 16], id="deletes-three-ops-each"),
    ],
)
def test_split_by_op_count(
    make_write: Callable[[int], ItemWrite], count: int, sizes: list[int]
) -> None:
    writes = [make_write(number) for number in range(count)]

    groups = split_into_txns(writes, TxnLimits())

    assert [len(group) for group in groups] == sizes
    assert [index for group in groups for index in group] == list(range(count))


@pytest.mark.parametrize(
    ("value_bytes", "count", "sizes"),
    [
        pytest.param(300_000, 10, [3, 3, 3, 1], id="300k-values"),
        pytest.param(600_000, 3, [1, 1, 1], id="600k-values"),
        pytest.param(2_000_000, 2, [1, 1], id="oversized-alone"),
        pytest.param(7_000, 200, [128, 72], id="ops-limit-first"),
        pytest.param(9_000, 200, [115, 85], id="bytes-limit-first"),
    ],
)
def test_split_by_request_bytes(value_bytes: int, count: int, sizes: list[int]) -> None:
    writes = [_create_write(number, value_bytes) for number in range(count)]

    groups = split_into_txns(writes, TxnLimits())

    assert [len(group) for group in groups] == sizes


def test_groups_fit_etcd_request_size() -> None:
    limits = TxnLimits(max_ops=128, max_bytes=200_000)
    writes = [_create_write(number, value_bytes=500 + 97 * number) for number in range(300)]

    groups = split_into_txns(writes, limits)

    for group in groups:
        request = rpc.TxnRequest(
            compare=[compare for index in group for compare in writes[index].compares],
            success=[operation for index in group for operation in writes[index].operations],
        )
        assert request.ByteSize() <= limits.max_bytes
    assert len(groups) > 1


def test_alone_write_gets_own_txn() -> None:
    writes = [_create_write(0), _create_write(1, alone=True), _create_write(2), _create_write(3)]

    groups = split_into_txns(writes, TxnLimits())

    assert groups == [[1], [0, 2, 3]]


@pytest.mark.parametrize(("max_ops", "max_bytes"), [(0, 100), (10, 0)])
def test_txn_limits_reject_zero(max_ops: int, max_bytes: int) -> None:
    with pytest.raises(ValueError, match="must be at least 1"):
        TxnLimits(max_ops=max_ops, max_bytes=max_bytes)


async def test_commit_writes_in_txns(store: FakeEtcd) -> None:
    writes = [_create_write(number) for number in range(300)]

    outcomes = await commit_writes(store, writes, TxnLimits())  # type: ignore[arg-type]

    assert [outcome.committed for outcome in outcomes] == [True] * 300
    assert store.writes == [(128, 128, 0), (128, 128, 0), (44, 44, 0)]
    assert len(store.keys_under(KEYS.jobs)) == 300


async def test_commit_failure_returns_each_items_probes(store: FakeEtcd) -> None:
    await commit_writes(store, [_create_write(1)], TxnLimits())  # type: ignore[arg-type]
    stored_revision = store.revision
    writes = [
        ItemWrite(
            compares=(etcd.absent(KEYS.job(f"job-{number:04d}")),),
            operations=(etcd.put(KEYS.job(f"job-{number:04d}"), b"new"),),
            probes=(probe(KEYS.job(f"job-{number:04d}")),),
        )
        for number in range(3)
    ]

    outcomes = await commit_writes(store, writes, TxnLimits())  # type: ignore[arg-type]

    assert [outcome.committed for outcome in outcomes] == [False, False, False]
    assert [outcome.error for outcome in outcomes] == [None, None, None]
    assert outcomes[0].probed == (None,)
    assert outcomes[2].probed == (None,)
    kv = outcomes[1].probed[0]
    assert kv is not None
    assert kv.key == KEYS.job("job-0001")
    assert kv.mod_revision == stored_revision
    assert kv.value == b"x" * 100


async def test_commit_unavailable_is_per_item(store: FakeEtcd) -> None:
    store.unavailable = True

    outcomes = await commit_writes(store, [_create_write(1), _create_write(2)], TxnLimits())  # type: ignore[arg-type]

    for outcome in outcomes:
        assert not outcome.committed
        assert isinstance(outcome.error, StoreUnavailableError)
        assert "may or may not have been applied" in str(outcome.error)


async def test_read_keys_in_groups(store: FakeEtcd) -> None:
    await commit_writes(store, [_create_write(number) for number in range(3)], TxnLimits())  # type: ignore[arg-type]
    keys = [KEYS.job(f"job-{number:04d}") for number in (2, 9, 0)]

    values = await read_keys(store, keys, TxnLimits(max_ops=2))  # type: ignore[arg-type]

    assert [kv.key if kv else None for kv in values] == [keys[0], None, keys[2]]


# Batch size and result mapping


@pytest.mark.parametrize(
    ("count", "message"),
    [
        (0, "jobIds is empty. List 1 to 1000 items"),
        (
            1001,
            "jobIds lists 1001 items, more than the maximum of 1000 per request. "
            "Split the request into requests of at most 1000 items",
        ),
    ],
)
def test_batch_size_rejected(count: int, message: str) -> None:
    with pytest.raises(InvalidArgumentError) as caught:
        check_batch_size(count, "jobIds")

    assert caught.value.field == "jobIds"
    assert caught.value.message == message


@pytest.mark.parametrize("count", [1, MAX_BATCH_ITEMS])
def test_batch_size_accepted(count: int) -> None:
    check_batch_size(count, "jobs")


@pytest.mark.parametrize(
    ("error", "code", "message", "error_field"),
    [
        (InvalidArgumentError("schedule", "bad cron"), "INVALID_ARGUMENT", "bad cron", "schedule"),
        (
            NotFoundError("job", "job-1", field="jobId"),
            "NOT_FOUND",
            "job 'job-1' not found",
            "jobId",
        ),
        (
            FailedPreconditionError("job-1 has dependants", field="jobId"),
            "FAILED_PRECONDITION",
            "job-1 has dependants",
            "jobId",
        ),
        (StoreUnavailableError("etcd down"), "UNAVAILABLE", "etcd down", ""),
        (RecordDecodeError("/k", "empty"), "DATA_LOSS", "cannot decode record at '/k': empty", ""),
        (SchedulerError("etcd rejected the write"), "INTERNAL", "etcd rejected the write", ""),
    ],
)
def test_failed_item_to_proto(
    error: SchedulerError, code: str, message: str, error_field: str
) -> None:
    proto = batch_result_to_proto(ItemResult(4, "job-1", error=error))

    assert proto.index == 4
    assert proto.job_id == "job-1"
    assert not proto.HasField("job")
    assert proto.error.code == code
    assert proto.error.message == message
    assert proto.error.field == error_field


async def test_applied_item_to_proto(bulk: BulkJobs) -> None:
    [job] = await _create(bulk, _draft("report"))

    proto = batch_result_to_proto(ItemResult(0, job.id, job))

    assert proto.job_id == job.id
    assert proto.job.id == job.id
    assert proto.job.name == "report"
    assert not proto.HasField("error")


# Create


async def test_create_reports_each_item(bulk: BulkJobs, store: FakeEtcd, cache: JobCache) -> None:
    drafts: list[JobDraft | InvalidArgumentError] = [
        _draft("first"),
        _draft("bad-schedule", schedule="61 * * * *"),
        InvalidArgumentError("priority", "priority 9 is unknown"),
        _draft("last"),
    ]

    results = await bulk.create_many(drafts)

    assert [result.index for result in results] == [0, 1, 2, 3]
    assert _codes(results) == ["ok", "InvalidArgumentError", "InvalidArgumentError", "ok"]
    assert results[1].error is not None
    assert results[1].error.field == "schedule"  # type: ignore[attr-defined]
    assert results[1].job_id == ""
    assert results[2].error is drafts[2]
    for result in (results[0], results[3]):
        assert result.job is not None
        assert result.job_id == result.job.id
        assert result.job.status is JobStatus.SCHEDULED
        assert result.job.next_fire_at == datetime(2030, 1, 1, 10, 0, tzinfo=UTC)
        assert result.job.revision == store.revision
        assert _stored_job(store, result.job_id).spec.name == result.job.spec.name
        assert cache.get(result.job_id) == result.job
    assert store.writes == [(2, 2, 0)]


async def test_create_full_batch_in_eight_txns(bulk: BulkJobs, store: FakeEtcd) -> None:
    drafts = [_draft(f"job-{number}") for number in range(MAX_BATCH_ITEMS)]

    results = await bulk.create_many(drafts)  # type: ignore[arg-type]

    assert _codes(results) == ["ok"] * MAX_BATCH_ITEMS
    assert len(store.keys_under(KEYS.jobs)) == MAX_BATCH_ITEMS
    assert [compares for compares, _, _ in store.writes] == [128] * 7 + [104]


async def test_create_dependency_checks(bulk: BulkJobs) -> None:
    [upstream] = await _create(bulk, _draft("upstream"))

    results = await bulk.create_many(
        [
            _draft("downstream", schedule="", dependencies=(upstream.id,)),
            _draft("orphan", schedule="", dependencies=("job-missing",)),
        ]
    )

    assert _codes(results) == ["ok", "InvalidArgumentError"]
    error = results[1].error
    assert isinstance(error, InvalidArgumentError)
    assert error.field == "dependencies"
    assert error.message == (
        "dependencies name unknown jobs: job-missing. Create those jobs first or remove "
        f"their ids. {SAME_BATCH_NOTE}"
    )


async def test_create_retries_collided_id(
    bulk: BulkJobs, store: FakeEtcd, monkeypatch: pytest.MonkeyPatch
) -> None:
    [existing] = await _create(bulk, _draft("existing"))
    fresh_ids = iter([existing.id, "job-fresh-1", "job-fresh-2"])
    monkeypatch.setattr("taskscheduler.coordinator.ids.new_job_id", lambda: next(fresh_ids))

    results = await bulk.create_many([_draft("new")])

    assert _codes(results) == ["ok"]
    assert results[0].job_id == "job-fresh-1"
    assert _stored_job(store, existing.id).spec.name == "existing"
    assert _stored_job(store, "job-fresh-1").spec.name == "new"


# Pause and resume


async def test_pause_reports_bad_ids(bulk: BulkJobs, store: FakeEtcd) -> None:
    [job] = await _create(bulk, _draft())

    results = await bulk.pause_many([job.id, "job-unknown", job.id, "a/b", ""])

    assert _codes(results) == [
        "ok",
        "NotFoundError",
        "InvalidArgumentError",
        "InvalidArgumentError",
        "InvalidArgumentError",
    ]
    assert [result.job_id for result in results] == [job.id, "job-unknown", job.id, "a/b", ""]
    assert str(results[2].error) == (
        f"job {job.id} is listed more than once, first at index 0. List each job once"
    )
    assert [getattr(result.error, "field", None) for result in results] == [
        None,
        "jobId",
        "jobIds",
        "jobId",
        "jobId",
    ]
    assert results[0].job is not None
    assert results[0].job.status is JobStatus.PAUSED
    assert _stored_job(store, job.id).status is JobStatus.PAUSED


async def test_pause_of_paused_job_writes_nothing(bulk: BulkJobs, store: FakeEtcd) -> None:
    [job] = await _create(bulk, _draft())
    await bulk.pause_many([job.id])
    writes_before = len(store.writes)

    results = await bulk.pause_many([job.id])

    assert _codes(results) == ["ok"]
    assert len(store.writes) == writes_before


async def test_resume_reschedules(bulk: BulkJobs, store: FakeEtcd) -> None:
    jobs = await _create(bulk, _draft("a"), _draft("b"))
    await bulk.pause_many([job.id for job in jobs])

    results = await bulk.resume_many([job.id for job in jobs])

    assert _codes(results) == ["ok", "ok"]
    for job in jobs:
        assert _stored_job(store, job.id).status is JobStatus.SCHEDULED


async def test_changed_job_retried_alone(bulk: BulkJobs, store: FakeEtcd) -> None:
    jobs = await _create(bulk, _draft("a"), _draft("b"), _draft("c"))
    store.writes.clear()
    store.before_write.append(lambda fake: fake.touch(jobs[1].id))

    results = await bulk.pause_many([job.id for job in jobs])

    assert _codes(results) == ["ok", "ok", "ok"]
    # The shared write fails; the two unchanged jobs go again together, the changed one alone.
    assert sorted(store.writes) == [(1, 1, 1), (2, 2, 2), (3, 3, 3)]
    for job in jobs:
        assert _stored_job(store, job.id).status is JobStatus.PAUSED


async def test_job_changing_every_time_fails(bulk: BulkJobs, store: FakeEtcd) -> None:
    jobs = await _create(bulk, _draft("steady"), _draft("busy"))
    busy = jobs[1].id
    store.writes.clear()
    store.before_write.extend(lambda fake: fake.touch(busy) for _ in range(WRITE_ATTEMPTS + 1))

    results = await bulk.pause_many([job.id for job in jobs])

    assert _codes(results) == ["ok", "FailedPreconditionError"]
    assert str(results[1].error) == (
        f"job {busy!r} kept changing during the update; retry the request"
    )
    # One shared write, then `steady` once and `busy` alone until its attempts run out.
    assert store.writes == [(2, 2, 2)] + [(1, 1, 1)] * (1 + WRITE_ATTEMPTS - 1)
    assert _stored_job(store, busy).status is JobStatus.SCHEDULED


async def test_job_deleted_meanwhile_not_found(bulk: BulkJobs, store: FakeEtcd) -> None:
    jobs = await _create(bulk, _draft("kept"), _draft("gone"))
    store.before_write.append(lambda fake: fake.remove(jobs[1].id))

    results = await bulk.pause_many([job.id for job in jobs])

    assert _codes(results) == ["ok", "NotFoundError"]


# Delete


async def test_delete_removes_history(bulk: BulkJobs, store: FakeEtcd, cache: JobCache) -> None:
    jobs = await _create(bulk, _draft("a"), _draft("b"))
    run_key = f"{KEYS.runs_of(jobs[0].id)}00000000000001"
    store.data[run_key.encode()] = (b"run", store.revision, store.revision)

    results = await bulk.delete_many([jobs[0].id, "job-unknown"])

    assert _codes(results) == ["ok", "NotFoundError"]
    assert results[0].job is None
    assert store.keys_under(KEYS.runs) == []
    assert store.keys_under(KEYS.jobs) == [KEYS.job(jobs[1].id)]
    assert cache.get(jobs[0].id) is None


async def test_delete_with_dependants(bulk: BulkJobs, store: FakeEtcd) -> None:
    [upstream] = await _create(bulk, _draft("upstream"))
    [middle] = await _create(bulk, _draft("middle", schedule="", dependencies=(upstream.id,)))
    [outside] = await _create(bulk, _draft("outside", schedule="", dependencies=(upstream.id,)))

    # `outside` still depends on `upstream`, so only `middle` goes.
    results = await bulk.delete_many([upstream.id, middle.id])

    assert _codes(results) == ["FailedPreconditionError", "ok"]
    assert str(results[0].error) == (
        f"job {upstream.id} cannot be deleted because these jobs depend on it: {outside.id}. "
        "Remove it from their dependencies or delete them first"
    )
    assert store.keys_under(KEYS.jobs) == sorted([KEYS.job(upstream.id), KEYS.job(outside.id)])


async def test_delete_dependants_first(bulk: BulkJobs, store: FakeEtcd) -> None:
    [upstream] = await _create(bulk, _draft("upstream"))
    [middle] = await _create(bulk, _draft("middle", schedule="", dependencies=(upstream.id,)))
    [leaf] = await _create(bulk, _draft("leaf", schedule="", dependencies=(middle.id,)))

    results = await bulk.delete_many([upstream.id, middle.id, leaf.id])

    assert _codes(results) == ["ok", "ok", "ok"]
    assert store.keys_under(KEYS.jobs) == []
