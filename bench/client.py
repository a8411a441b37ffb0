"""The load generator's gRPC calls: bulk job writes, paged history reads, metrics and health.

Bulk writes use the Batch* RPCs (at most 1000 jobs a request). When a
coordinator rejects those with UNIMPLEMENTED, they fall back to one call
per job, so the harness also runs against builds without batch operations.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import struct_pb2, timestamp_pb2

from bench.runs import RunRecord
from taskscheduler.v1 import (
    jobs_pb2,
    jobs_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
    types_pb2,
)

BATCH_LIMIT = 1000
HISTORY_PAGE = 1000
_CALL_TIMEOUT_S = 60.0
_SINGLE_CALLS_IN_FLIGHT = 32


def timestamp_ms(timestamp: timestamp_pb2.Timestamp) -> int | None:
    """Return a Timestamp as epoch milliseconds; None when it is unset (zero)."""
    if timestamp.seconds == 0 and timestamp.nanos == 0:
        return None
    return timestamp.seconds * 1000 + timestamp.nanos // 1_000_000


def run_record_from_proto(run: types_pb2.Run) -> RunRecord:
    status = types_pb2.RunStatus.Name(run.status).removeprefix("RUN_STATUS_").lower()
    return RunRecord(
        job_id=run.job_id,
        run_id=run.id,
        status=status,
        scheduled_ms=timestamp_ms(run.scheduled_at) or 0,
        started_ms=timestamp_ms(run.started_at),
        completed_ms=timestamp_ms(run.completed_at),
    )


def recurring_job(
    name: str,
    schedule: str,
    executor: str,
    payload: dict[str, Any],
    misfire_policy: types_pb2.MisfirePolicy = types_pb2.MISFIRE_POLICY_UNSPECIFIED,
) -> types_pb2.Job:
    message = types_pb2.Job(
        name=name,
        type=types_pb2.JOB_TYPE_RECURRING,
        schedule=schedule,
        executor=executor,
        priority=types_pb2.PRIORITY_NORMAL,
        misfire_policy=misfire_policy,
    )
    struct = struct_pb2.Struct()
    struct.update(payload)
    message.payload.CopyFrom(struct)
    return message


def chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


@dataclass
class BulkResult:
    """Outcome of a bulk write: ids written, per-item errors, and whether batches were used."""

    job_ids: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    batched: bool = True
    elapsed_s: float = 0.0


class CoordinatorClient:
    """gRPC stubs on one coordinator replica."""

    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = grpc.aio.insecure_channel(
            address, options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        )
        self.jobs = jobs_pb2_grpc.JobServiceStub(self._channel)
        self.monitoring = monitoring_pb2_grpc.MonitoringServiceStub(self._channel)
        self._batch_supported: dict[str, bool] = {}

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> CoordinatorClient:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        await self.close()

    async def health(self, timeout_s: float = 2.0) -> monitoring_pb2.GetHealthResponse:
        return await self.monitoring.GetHealth(monitoring_pb2.GetHealthRequest(), timeout=timeout_s)

    async def metrics(self) -> monitoring_pb2.Metrics:
        response = await self.monitoring.GetMetrics(
            monitoring_pb2.GetMetricsRequest(), timeout=_CALL_TIMEOUT_S
        )
        return response.metrics

    async def wait_until_leader(self, timeout_s: float = 60.0) -> float:
        """Poll GetHealth every 50 ms until this replica is leader; return the seconds taken."""
        started = time.monotonic()
        deadline = started + timeout_s
        last: object = None
        while time.monotonic() < deadline:
            try:
                health = await self.health(timeout_s=1.0)
            except grpc.aio.AioRpcError as error:
                last = error.code()
            else:
                if health.role == "leader":
                    return time.monotonic() - started
                last = health.role
            await asyncio.sleep(0.05)
        raise TimeoutError(
            f"{self.address} did not become leader in {timeout_s:g} s (last: {last})"
        )

    async def supports_batch_create(self) -> bool:
        """Return whether the replica serves BatchCreateJobs, by sending an empty batch."""
        try:
            await self.jobs.BatchCreateJobs(jobs_pb2.BatchCreateJobsRequest(), timeout=10.0)
        except grpc.aio.AioRpcError as error:
            return error.code() != grpc.StatusCode.UNIMPLEMENTED
        return True

    async def create_jobs(
        self, jobs: Iterable[types_pb2.Job], *, batch_size: int = BATCH_LIMIT, in_flight: int = 4
    ) -> BulkResult:
        """Create `jobs` with BatchCreateJobs, `in_flight` requests at a time."""
        result = BulkResult()
        started = time.monotonic()
        batches = _batches(jobs, min(batch_size, BATCH_LIMIT))
        await _drain(batches, in_flight, lambda batch: self._create_batch(batch, result))
        result.batched = self._batch_supported.get("create", True)
        result.elapsed_s = time.monotonic() - started
        return result

    async def pause_jobs(self, job_ids: Sequence[str]) -> BulkResult:
        """Pause `job_ids` with BatchPauseJobs, 1000 a request."""
        result = BulkResult()
        started = time.monotonic()
        for batch in chunks(job_ids, BATCH_LIMIT):
            await self._pause_batch(list(batch), result)
        result.batched = self._batch_supported.get("pause", True)
        result.elapsed_s = time.monotonic() - started
        return result

    async def history(self, job_id: str) -> list[RunRecord]:
        """Read every kept run of one job, 1000 a page."""
        records: list[RunRecord] = []
        offset = 0
        while True:
            response = await self.jobs.ListJobHistory(
                jobs_pb2.ListJobHistoryRequest(job_id=job_id, limit=HISTORY_PAGE, offset=offset),
                timeout=_CALL_TIMEOUT_S,
            )
            records += [run_record_from_proto(run) for run in response.runs]
            offset += len(response.runs)
            if not response.runs or offset >= response.pagination.total:
                return records

    async def histories(
        self, job_ids: Sequence[str], in_flight: int = 8
    ) -> dict[str, list[RunRecord]]:
        """Read the history of every job in `job_ids`, `in_flight` jobs at a time."""
        found: dict[str, list[RunRecord]] = {}

        async def read(job_id: str) -> None:
            found[job_id] = await self.history(job_id)

        await _drain(iter(job_ids), in_flight, read)
        return found

    async def job_total(self) -> int:
        """Return the number of jobs in this replica's job cache."""
        response = await self.jobs.ListJobs(
            jobs_pb2.ListJobsRequest(limit=1), timeout=_CALL_TIMEOUT_S
        )
        return response.pagination.total

    async def _create_batch(self, batch: list[types_pb2.Job], result: BulkResult) -> None:
        if self._batch_supported.get("create", True):
            try:
                response = await self.jobs.BatchCreateJobs(
                    jobs_pb2.BatchCreateJobsRequest(jobs=batch), timeout=_CALL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._batch_supported["create"] = False
            else:
                _collect(response.results, result)
                return
        await _drain(
            iter(batch), _SINGLE_CALLS_IN_FLIGHT, lambda job: self._create_one(job, result)
        )

    async def _create_one(self, job: types_pb2.Job, result: BulkResult) -> None:
        try:
            response = await self.jobs.CreateJob(
                jobs_pb2.CreateJobRequest(job=job), timeout=_CALL_TIMEOUT_S
            )
        except grpc.aio.AioRpcError as error:
            result.errors.append(f"{job.name}: {error.code().name} {error.details()}")
        else:
            result.job_ids.append(response.job.id)

    async def _pause_batch(self, batch: list[str], result: BulkResult) -> None:
        if self._batch_supported.get("pause", True):
            try:
                response = await self.jobs.BatchPauseJobs(
                    jobs_pb2.BatchPauseJobsRequest(job_ids=batch), timeout=_CALL_TIMEOUT_S
                )
            except grpc.aio.AioRpcError as error:
                if error.code() != grpc.StatusCode.UNIMPLEMENTED:
                    raise
                self._batch_supported["pause"] = False
            else:
                _collect(response.results, result)
                return

        async def pause_one(job_id: str) -> None:
            await self.jobs.PauseJob(
                jobs_pb2.PauseJobRequest(job_id=job_id), timeout=_CALL_TIMEOUT_S
            )
            result.job_ids.append(job_id)

        await _drain(iter(batch), _SINGLE_CALLS_IN_FLIGHT, pause_one)


def _collect(results: Iterable[jobs_pb2.BatchJobResult], into: BulkResult) -> None:
    for item in results:
        if item.error.code:
            into.errors.append(f"item {item.index}: {item.error.code} {item.error.message}")
        else:
            into.job_ids.append(item.job_id or item.job.id)


def _batches(jobs: Iterable[types_pb2.Job], size: int) -> Iterator[list[types_pb2.Job]]:
    batch: list[types_pb2.Job] = []
    for job in jobs:
        batch.append(job)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def _drain(items: Iterator[Any], in_flight: int, work: Callable[[Any], Any]) -> None:
    """Run `work(item)` for every item, `in_flight` at a time; the first error propagates."""

    async def worker() -> None:
        for item in items:
            await work(item)

    async with asyncio.TaskGroup() as group:
        for _ in range(in_flight):
            group.create_task(worker())
