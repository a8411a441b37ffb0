"""The leader's fenced writes of runs, queue entries, leases and job progress.

Contract: only the leader calls these methods. Every transaction compares
the leader key's create revision with the leader's fence, so a deposed
leader's write fails in etcd (LostLeadershipError) instead of landing.

- fire: creates a run only if its key is absent (one run per slot), and
  moves the job's schedule progress only if the job record is still at the
  revision the plan was made from (JobChangedError otherwise).
- assign: moves queued runs to running and creates one lease key per run;
  the lease key's create revision, the transaction's revision, is the
  attempt's fencing token.
- finish: records an attempt's end only while the lease key still has the
  reporter's token (StaleLeaseError otherwise), and deletes the lease.
- finish_many: records several attempt ends and job status changes under
  the same compares, all or nothing (BatchConflictError otherwise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aetcd import rpc

from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.completion_plan import WriteCost
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Job, Run
from taskscheduler.errors import (
    FailedPreconditionError,
    LostLeadershipError,
    SchedulerError,
    StaleLeaseError,
)


class JobChangedError(FailedPreconditionError):
    """The job record moved on since it was read; re-read it and decide again."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"job {job_id!r} changed during the write; retry the request")
        self.job_id = job_id


class BatchConflictError(FailedPreconditionError):
    """A lease or job of a batched write changed; nothing was written, so write each item alone."""

    def __init__(self, size: int) -> None:
        super().__init__(f"a lease or job of a batch of {size} changed; nothing was written")
        self.size = size


class AlreadyLeasedError(SchedulerError):
    """A run of an assignment has a lease key already: an earlier assignment committed.

    That happens when the outcome of an assignment's transaction was not
    known (a timeout), and its runs were queued again in memory.
    """

    def __init__(self, run_ids: Sequence[str]) -> None:
        super().__init__(f"a run of {', '.join(run_ids)} is leased already; nothing was written")
        self.run_ids = tuple(run_ids)


class SlotTakenError(SchedulerError):
    """Runs for these slots exist already (fired before a failover)."""

    def __init__(self, run_ids: Sequence[str]) -> None:
        super().__init__(f"runs exist already: {', '.join(run_ids)}")
        self.run_ids = tuple(run_ids)


@dataclass(frozen=True, slots=True)
class Firing:
    """One job's fire: the job as read, the job with its new progress, and the new runs."""

    job_before: Job
    job_after: Job
    runs: tuple[Run, ...] = ()
    # The queued runs wait for the job's dependencies: they get a held key, not a queue key.
    held: bool = False


@dataclass(frozen=True, slots=True)
class AttemptEnd:
    """An ended run to record, and the fencing token its lease key must still have."""

    run: Run
    fencing_token: int


@dataclass(frozen=True, slots=True)
class JobChange:
    """A job as read, and the job to write if the record is still at that revision."""

    before: Job
    after: Job


class RunStore:
    def __init__(
        self, store: etcd.Etcd, keys: KeyLayout, fence: Callable[[], etcd.Compare]
    ) -> None:
        self._store = store
        self._keys = keys
        self._fence = fence

    async def fire(self, firings: Sequence[Firing]) -> int:
        """Commit several firings in one transaction; return its revision.

        On any compare failure nothing is written; the caller retries each
        firing alone with `fire_one` to learn which one conflicted.
        """
        compares = [self._fence()]
        ops: list[etcd.Op] = []
        for firing in firings:
            compares.append(self._job_unchanged(firing.job_before))
            ops.append(self._job_put(firing.job_after))
            for run in firing.runs:
                compares.append(etcd.absent(self._keys.run(run.id)))
                ops.extend(self._run_ops(run, held=firing.held))
        result = await self._store.txn(compares, ops, self._probe_fence())
        if not result.succeeded:
            self._raise_if_deposed(result)
            raise JobChangedError(firings[0].job_before.id if len(firings) == 1 else "*")
        return result.revision

    async def fire_one(self, firing: Firing) -> int:
        """Commit one firing; raise JobChangedError, SlotTakenError or LostLeadershipError."""
        job_key = self._keys.job(firing.job_before.id)
        compares = [self._fence(), self._job_unchanged(firing.job_before)]
        ops = [self._job_put(firing.job_after)]
        probes = [*self._probe_fence(), _probe(job_key)]
        for run in firing.runs:
            run_key = self._keys.run(run.id)
            compares.append(etcd.absent(run_key))
            ops.extend(self._run_ops(run, held=firing.held))
            probes.append(_probe(run_key))
        result = await self._store.txn(compares, ops, probes)
        if result.succeeded:
            return result.revision
        self._raise_if_deposed(result)
        job_kvs = _probed(result, 1)
        if not job_kvs or job_kvs[0].mod_revision != firing.job_before.revision:
            raise JobChangedError(firing.job_before.id)
        taken = [run.id for index, run in enumerate(firing.runs) if _probed(result, 2 + index)]
        raise SlotTakenError(taken)

    async def enqueue(self, run: Run) -> int:
        """Create a manual run and its queue entry; return the revision."""
        result = await self._store.txn(
            [self._fence(), etcd.absent(self._keys.run(run.id))],
            self._queue_ops(run),
            self._probe_fence(),
        )
        if not result.succeeded:
            self._raise_if_deposed(result)
            raise SlotTakenError([run.id])
        return result.revision

    async def assign(self, runs: Sequence[Run]) -> int:
        """Move queued runs to running under new leases; return the fencing token.

        The token is the transaction's revision, which is also the create
        revision of every new lease key. So each lease key must be absent
        before, and each run's job must still exist; otherwise AlreadyLeasedError
        is raised and nothing is written.
        """
        ops: list[etcd.Op] = []
        compares = [self._fence()]
        for run in runs:
            lease_key = self._keys.lease(run.id)
            ops.append(etcd.put(self._keys.run(run.id), codec.encode_run(run)))
            ops.append(etcd.delete(self._keys.queued(run)))
            ops.append(etcd.put(lease_key, run.worker_id.encode()))
            compares.append(etcd.absent(lease_key))
        # A job deleted meanwhile, on any replica, took its runs with it.
        compares += [etcd.exists(self._keys.job(job_id)) for job_id in {run.job_id for run in runs}]
        result = await self._store.txn(compares, ops, self._probe_fence())
        if not result.succeeded:
            self._raise_if_deposed(result)
            raise AlreadyLeasedError([run.id for run in runs])
        return result.revision

    async def read_lease(self, run_id: str) -> tuple[str, int] | None:
        """Return the (worker id, fencing token) of the run's lease key, or None without one."""
        kv = await self._store.get(self._keys.lease(run_id))
        return None if kv is None else (kv.value.decode(), kv.create_revision)

    async def finish(
        self,
        run: Run,
        fencing_token: int,
        *,
        job_before: Job | None,
        job_after: Job | None,
    ) -> int:
        """Record how an attempt ended, re-queue the run if it goes on, release the lease."""
        lease_key = self._keys.lease(run.id)
        compares = [self._fence(), etcd.created_at_revision(lease_key, fencing_token)]
        ops = [etcd.delete(lease_key), *self._run_ops(run)]
        if job_before is not None and job_after is not None:
            compares.append(self._job_unchanged(job_before))
            ops.append(self._job_put(job_after))
        probes = [*self._probe_fence(), _probe(lease_key)]
        result = await self._store.txn(compares, ops, probes)
        if result.succeeded:
            return result.revision
        self._raise_if_deposed(result)
        lease_kvs = _probed(result, 1)
        if not lease_kvs or lease_kvs[0].create_revision != fencing_token:
            raise StaleLeaseError(run.id, run.attempt, fencing_token)
        raise JobChangedError(run.job_id)

    async def finish_many(self, ends: Sequence[AttemptEnd], jobs: Sequence[JobChange]) -> int:
        """Record several attempts' ends and their jobs' new status in one transaction.

        Each run is written as `finish` writes it, and its lease key is
        deleted under a compare that the key still has the run's token. Each
        job is written under a compare on its mod revision. Return the revision.
        When any of those compares fails nothing is written and
        BatchConflictError is raised, so the caller writes each end alone
        with `finish` to learn which one conflicted. A failed fence raises
        LostLeadershipError. Run ids must be distinct: etcd rejects a
        transaction that writes one key twice.
        """
        compares = [self._fence()]
        ops: list[etcd.Op] = []
        for end in ends:
            lease_key = self._keys.lease(end.run.id)
            compares.append(etcd.created_at_revision(lease_key, end.fencing_token))
            ops.append(etcd.delete(lease_key))
            ops.extend(self._run_ops(end.run))
        for change in jobs:
            compares.append(self._job_unchanged(change.before))
            ops.append(self._job_put(change.after))
        result = await self._store.txn(compares, ops, self._probe_fence())
        if not result.succeeded:
            self._raise_if_deposed(result)
            raise BatchConflictError(len(ends))
        return result.revision

    def end_cost(self, run: Run) -> WriteCost:
        """Return the operations and key and value bytes `finish_many` takes to record `run`."""
        ops = [etcd.delete(self._keys.lease(run.id)), *self._run_ops(run)]
        return WriteCost(run.job_id, ops=len(ops), size_bytes=sum(map(_op_bytes, ops)))

    def job_write_bytes(self, job: Job) -> int:
        """Return the key and value bytes of writing the job's record."""
        return _op_bytes(self._job_put(job))

    async def settle(self, run: Run, *, job_before: Job | None, job_after: Job | None) -> int:
        """Write a run that holds no lease (a queued run cancelled), with its job's status."""
        compares = [self._fence()]
        ops = self._run_ops(run)
        if run.status.is_final:
            ops.append(etcd.delete(self._keys.queued(run)))
            ops.append(etcd.delete(self._keys.held_run(run.id)))
        if job_before is not None and job_after is not None:
            compares.append(self._job_unchanged(job_before))
            ops.append(self._job_put(job_after))
        result = await self._store.txn(compares, ops, self._probe_fence())
        if not result.succeeded:
            self._raise_if_deposed(result)
            raise JobChangedError(run.job_id)
        return result.revision

    async def drop_job_leftovers(self, runs: Sequence[Run]) -> None:
        """Delete the queue and lease keys of a deleted job's runs."""
        ops: list[etcd.Op] = []
        for run in runs:
            ops.append(etcd.delete(self._keys.queued(run)))
            ops.append(etcd.delete(self._keys.lease(run.id)))
            ops.append(etcd.delete(self._keys.held_run(run.id)))
        await self.drop_keys(ops)

    async def release_held(self, run: Run) -> bool:
        """Queue a run that waited for its dependencies; False if it no longer waits.

        The compare on the held key loses to a cancel that settled the run first.
        """
        held_key = self._keys.held_run(run.id)
        result = await self._store.txn(
            [self._fence(), etcd.exists(held_key)],
            [etcd.delete(held_key), etcd.put(self._keys.queued(run), b"")],
            self._probe_fence(),
        )
        if not result.succeeded:
            self._raise_if_deposed(result)
        return result.succeeded

    async def drop_queue_keys(self, keys: Sequence[str]) -> None:
        """Delete queue keys whose run record is gone (their job was deleted)."""
        await self.drop_keys([etcd.delete(key) for key in keys])

    async def drop_keys(self, ops: Sequence[etcd.Op]) -> None:
        if ops:
            result = await self._store.txn([self._fence()], ops, ())
            if not result.succeeded:
                raise LostLeadershipError("leader fence no longer matches; another replica leads")

    def _queue_ops(self, run: Run) -> list[etcd.Op]:
        return [
            etcd.put(self._keys.run(run.id), codec.encode_run(run)),
            etcd.put(self._keys.queued(run), b""),
        ]

    def _run_ops(self, run: Run, *, held: bool = False) -> list[etcd.Op]:
        if run.status.is_final:
            return [etcd.put(self._keys.run(run.id), codec.encode_run(run))]
        if held:
            return [
                etcd.put(self._keys.run(run.id), codec.encode_run(run)),
                etcd.put(self._keys.held_run(run.id), b""),
            ]
        return self._queue_ops(run)

    def _job_put(self, job: Job) -> etcd.Op:
        return etcd.put(self._keys.job(job.id), codec.encode_job(job))

    def _job_unchanged(self, job: Job) -> etcd.Compare:
        return etcd.modified_at_revision(self._keys.job(job.id), job.revision)

    def _probe_fence(self) -> list[etcd.Op]:
        return [_probe(self._keys.leader)]

    def _raise_if_deposed(self, result: etcd.TxnResult) -> None:
        fence = self._fence()
        leader_kvs = _probed(result, 0)
        if not leader_kvs or leader_kvs[0].create_revision != fence.create_revision:
            raise LostLeadershipError("leader fence no longer matches; another replica leads")


def _probe(key: str) -> etcd.Op:
    return etcd.Op(request_range=rpc.RangeRequest(key=key.encode()))


def _op_bytes(op: etcd.Op) -> int:
    if op.HasField("request_put"):
        return len(op.request_put.key) + len(op.request_put.value)
    return len(op.request_delete_range.key) + len(op.request_delete_range.range_end)


def _probed(result: etcd.TxnResult, index: int) -> list[rpc.KeyValue]:
    """Return the key-values read by the failure branch's probe at `index`."""
    if index >= len(result.responses):
        return []
    return list(result.responses[index].response_range.kvs)
