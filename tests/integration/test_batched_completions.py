"""CompleteAttempts on a real coordinator and etcd, driven by a test acting as the agent.

The test registers a worker id, polls for work itself and reports the
attempts, so it controls every token and result the coordinator receives.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest
from harness import ApiClient, ProcessHandle, wait_until_async

from taskscheduler.coordinator import codec
from taskscheduler.coordinator import etcd as etcd_client
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import (
    Attempt,
    Job,
    JobSpec,
    JobStatus,
    Priority,
    Run,
    RunStatus,
    RunTrigger,
)
from taskscheduler.coordinator.runstore import AttemptEnd, BatchConflictError, JobChange, RunStore
from taskscheduler.errors import LostLeadershipError
from taskscheduler.etcd_server import EtcdServer
from taskscheduler.grpc_status import field_of, leader_address_of
from taskscheduler.v1 import jobs_pb2, jobs_pb2_grpc, types_pb2, workers_pb2, workers_pb2_grpc

pytestmark = pytest.mark.integration

WORKER_ID = "test-agent-1"
# Leases and the worker's liveness outlast the test, which sends no heartbeats.
SLOW_LEASES = {"lease_ttl_s": 120, "worker_offline_after_s": 300}
BIG_RESULT = "x" * 70_000
# One result per run, in assignment order; None sends no result.
RESULTS: list[Any] = [
    7,
    2.5,
    "text",
    True,
    {"rows": 3, "nested": {"list": [1, "two", None]}},
    [1, 2, 3],
    "stale",
    "ünïcödé",
    None,
    BIG_RESULT,
    {"empty": {}},
    [],
]
STALE_INDEX = 6
DROPPED_INDEX = 9


async def _create_jobs(jobs: jobs_pb2_grpc.JobServiceStub, count: int) -> list[str]:
    job_ids = []
    for number in range(count):
        job = types_pb2.Job(
            name=f"batched-{number}",
            type=types_pb2.JOB_TYPE_RECURRING,
            schedule="@every 24h",
            executor="shell",
        )
        job.payload.update({"command": ["true"]})
        job_ids.append((await jobs.CreateJob(jobs_pb2.CreateJobRequest(job=job))).job.id)
    return job_ids


async def _poll_assignments(
    workers: workers_pb2_grpc.WorkerServiceStub, count: int
) -> list[workers_pb2.Assignment]:
    assignments: list[workers_pb2.Assignment] = []
    deadline = time.monotonic() + 20
    while len(assignments) < count:
        assert time.monotonic() < deadline, f"got {len(assignments)} of {count} assignments"
        response = await workers.PollWork(
            workers_pb2.PollWorkRequest(
                worker_id=WORKER_ID, max_assignments=count - len(assignments), wait_timeout_ms=2000
            )
        )
        assignments.extend(response.assignments)
    return assignments


def _report(
    assignment: workers_pb2.Assignment, result: Any, *, token_offset: int = 0
) -> workers_pb2.CompleteAttemptRequest:
    request = workers_pb2.CompleteAttemptRequest(
        lease=workers_pb2.LeaseRef(
            run_id=assignment.run_id,
            attempt=assignment.attempt,
            fencing_token=assignment.fencing_token + token_offset,
        ),
        outcome=types_pb2.ATTEMPT_OUTCOME_SUCCEEDED,
        output=f"output of {assignment.run_id}",
    )
    value = codec.result_to_value(result)
    if value is not None:
        request.result.CopyFrom(value)
    return request


async def _runs_by_id(jobs: jobs_pb2_grpc.JobServiceStub, job_ids: list[str]) -> dict[str, Any]:
    runs = {}
    for job_id in job_ids:
        response = await jobs.ListJobHistory(jobs_pb2.ListJobHistoryRequest(job_id=job_id))
        runs.update({run.id: run for run in response.runs})
    return runs


async def _start_runs(
    jobs: jobs_pb2_grpc.JobServiceStub,
    workers: workers_pb2_grpc.WorkerServiceStub,
    job_count: int,
    runs_per_job: int,
) -> tuple[list[str], list[workers_pb2.Assignment]]:
    job_ids = await _create_jobs(jobs, job_count)
    for job_id in job_ids:
        for _ in range(runs_per_job):
            await jobs.ExecuteJob(jobs_pb2.ExecuteJobRequest(job_id=job_id))
    await workers.RegisterWorker(
        workers_pb2.RegisterWorkerRequest(
            worker_id=WORKER_ID, capabilities=["shell"], max_concurrent=40
        )
    )
    assignments = await _poll_assignments(workers, job_count * runs_per_job)
    return job_ids, assignments


async def test_batch_records_runs_and_results(
    start_coordinator: Callable[..., ProcessHandle],
    start_gateway: Callable[..., ProcessHandle],
) -> None:
    coordinator = start_coordinator(**SLOW_LEASES)
    gateway = start_gateway()
    async with grpc.aio.insecure_channel(str(coordinator.address)) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        workers = workers_pb2_grpc.WorkerServiceStub(channel)
        job_ids, assignments = await _start_runs(jobs, workers, job_count=3, runs_per_job=4)
        reports = [
            _report(item, result, token_offset=1000 if index == STALE_INDEX else 0)
            for index, (item, result) in enumerate(zip(assignments, RESULTS, strict=True))
        ]

        response = await workers.CompleteAttempts(
            workers_pb2.CompleteAttemptsRequest(worker_id=WORKER_ID, reports=reports)
        )

        # One result per report, in request order; only the stale one is rejected.
        results = list(response.results)
        assert [result.run_id for result in results] == [item.run_id for item in assignments]
        stale = results[STALE_INDEX]
        assert stale.error_code == "FAILED_PRECONDITION"
        assert "no longer current" in stale.error_message
        assert stale.run_status == types_pb2.RUN_STATUS_UNSPECIFIED
        others = results[:STALE_INDEX] + results[STALE_INDEX + 1 :]
        assert [result.error_code for result in others] == [""] * 11
        assert {result.run_status for result in others} == {types_pb2.RUN_STATUS_COMPLETED}

        # The history contains each result as sent; the oversized one is dropped with a note.
        runs = await _runs_by_id(jobs, job_ids)
        for index, (item, result) in enumerate(zip(assignments, RESULTS, strict=True)):
            run = runs[item.run_id]
            if index == STALE_INDEX:
                assert run.status == types_pb2.RUN_STATUS_RUNNING
                assert not run.HasField("result")
                continue
            assert run.status == types_pb2.RUN_STATUS_COMPLETED
            if index == DROPPED_INDEX or result is None:
                assert not run.HasField("result")
            else:
                assert codec.value_to_result(run.result) == result
        dropped = runs[assignments[DROPPED_INDEX].run_id]
        assert dropped.output == (
            f"output of {dropped.id}\n[result dropped: its JSON encoding is 70002 bytes, "
            "over the limit of 65536 bytes]"
        )
        stale_job = assignments[STALE_INDEX].job_id
        for job_id in job_ids:
            job = (await jobs.GetJob(jobs_pb2.GetJobRequest(job_id=job_id))).job
            expected = (
                types_pb2.JOB_STATUS_RUNNING
                if job_id == stale_job
                else (types_pb2.JOB_STATUS_SCHEDULED)
            )
            assert job.status == expected, job_id

        # The stale run's real lease still holds; its report lands alone.
        late = _report(assignments[STALE_INDEX], {"late": True})
        late.worker_id = WORKER_ID
        single = await workers.CompleteAttempt(late)
        assert single.run_status == types_pb2.RUN_STATUS_COMPLETED
        job = (await jobs.GetJob(jobs_pb2.GetJobRequest(job_id=stale_job))).job
        assert job.status == types_pb2.JOB_STATUS_SCHEDULED

    # REST shows the results as plain JSON.
    with ApiClient(gateway.url) as api:
        rest_runs = {run["id"]: run for job_id in job_ids for run in api.history(job_id)}
    assert rest_runs[assignments[STALE_INDEX].run_id]["result"] == {"late": True}
    assert rest_runs[assignments[4].run_id]["result"] == RESULTS[4]
    assert rest_runs[assignments[0].run_id]["result"] == 7
    assert rest_runs[assignments[8].run_id]["result"] is None


async def test_batch_rejects_bad_reports_alone(
    start_coordinator: Callable[..., ProcessHandle],
) -> None:
    coordinator = start_coordinator(**SLOW_LEASES)
    async with grpc.aio.insecure_channel(str(coordinator.address)) as channel:
        jobs = jobs_pb2_grpc.JobServiceStub(channel)
        workers = workers_pb2_grpc.WorkerServiceStub(channel)
        job_ids, assignments = await _start_runs(jobs, workers, job_count=1, runs_per_job=2)
        good = _report(assignments[0], {"ok": 1})
        no_run_id = _report(assignments[1], None)
        no_run_id.lease.run_id = ""
        bad_outcome = _report(assignments[1], None)
        bad_outcome.outcome = types_pb2.ATTEMPT_OUTCOME_LEASE_EXPIRED
        other_worker = _report(assignments[1], None)
        other_worker.worker_id = "someone-else"
        repeated = _report(assignments[0], None)

        response = await workers.CompleteAttempts(
            workers_pb2.CompleteAttemptsRequest(
                worker_id=WORKER_ID,
                reports=[good, no_run_id, bad_outcome, other_worker, repeated],
            )
        )

        results = list(response.results)
        assert results[0].run_status == types_pb2.RUN_STATUS_COMPLETED
        assert results[0].error_code == ""
        assert [result.error_code for result in results[1:]] == ["INVALID_ARGUMENT"] * 4
        assert results[1].error_message.startswith("reports[1].lease.runId is required")
        assert results[2].error_message.startswith("reports[2].outcome must be")
        assert results[3].error_message.startswith("reports[3].workerId 'someone-else' differs")
        assert results[4].error_message.startswith(
            f"reports[4].lease.runId {assignments[0].run_id!r} repeats reports[0]"
        )
        runs = await _runs_by_id(jobs, job_ids)
        assert codec.value_to_result(runs[assignments[0].run_id].result) == {"ok": 1}
        assert runs[assignments[1].run_id].status == types_pb2.RUN_STATUS_RUNNING

        for request, field in [
            (workers_pb2.CompleteAttemptsRequest(worker_id="unknown-agent"), "workerId"),
            (workers_pb2.CompleteAttemptsRequest(worker_id=""), "workerId"),
            (
                workers_pb2.CompleteAttemptsRequest(
                    worker_id=WORKER_ID, reports=[no_run_id] * 1001
                ),
                "reports",
            ),
        ]:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await workers.CompleteAttempts(request)
            assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field_of(raised.value) == field

        empty = await workers.CompleteAttempts(
            workers_pb2.CompleteAttemptsRequest(worker_id=WORKER_ID)
        )
        assert list(empty.results) == []


async def test_follower_sends_agents_to_leader(
    start_coordinator: Callable[..., ProcessHandle],
) -> None:
    coordinators = [start_coordinator(), start_coordinator()]
    request = workers_pb2.CompleteAttemptsRequest(worker_id="unknown-agent")

    async def codes() -> dict[str, grpc.aio.AioRpcError] | None:
        answers = {}
        for handle in coordinators:
            async with grpc.aio.insecure_channel(str(handle.address)) as channel:
                try:
                    await workers_pb2_grpc.WorkerServiceStub(channel).CompleteAttempts(request)
                except grpc.aio.AioRpcError as error:
                    answers[str(handle.address)] = error
        found = {error.code() for error in answers.values()}
        settled = found == {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}
        return answers if settled else None

    answers = await wait_until_async(codes, timeout_s=20, message="one leader, one follower")

    leader = next(a for a, e in answers.items() if e.code() == grpc.StatusCode.INVALID_ARGUMENT)
    follower_error = next(
        e for e in answers.values() if e.code() == grpc.StatusCode.FAILED_PRECONDITION
    )
    assert leader_address_of(follower_error) == leader


def _running_run(job_id: str, number: int, token: int) -> Run:
    started = datetime(2026, 1, 1, tzinfo=UTC)
    attempt = Attempt(number=1, worker_id=WORKER_ID, fencing_token=token, started_at=started)
    return Run(
        id=f"{job_id}.{number:014d}",
        job_id=job_id,
        job_name=job_id,
        trigger=RunTrigger.MANUAL,
        status=RunStatus.RUNNING,
        priority=Priority.NORMAL,
        executor="shell",
        scheduled_at=started,
        due_at=started,
        max_attempts=1,
        attempt=1,
        worker_id=WORKER_ID,
        started_at=started,
        attempts=(attempt,),
    )


async def test_finish_many_is_all_or_nothing(etcd: EtcdServer, etcd_prefix: str) -> None:
    store = etcd_client.Etcd([etcd.endpoint])
    keys = KeyLayout(etcd_prefix)
    try:
        fence_revision = (await store.txn([], [etcd_client.put(keys.leader, b"test")])).revision
        now = datetime(2026, 1, 1, tzinfo=UTC)
        job = Job(
            id="job-1",
            spec=JobSpec(name="one", schedule="@every 1h", executor="shell"),
            status=JobStatus.RUNNING,
            created_at=now,
            updated_at=now,
        )
        job_revision = (
            await store.txn([], [etcd_client.put(keys.job(job.id), codec.encode_job(job))])
        ).revision
        job = replace(job, revision=job_revision)
        ended = []
        for number in (1, 2):
            token = (
                await store.txn([], [etcd_client.put(keys.lease(f"job-1.{number:014d}"), b"a")])
            ).revision
            run = _running_run(job.id, number, token)
            ended.append(replace(run, status=RunStatus.COMPLETED, result={"n": number}))
        change = JobChange(job, replace(job, status=JobStatus.SCHEDULED))

        def fence_at(revision: int) -> Callable[[], etcd_client.Compare]:
            return lambda: etcd_client.created_at_revision(keys.leader, revision)

        runs = RunStore(store, keys, fence_at(fence_revision))
        stale = [
            AttemptEnd(ended[0], ended[0].attempts[0].fencing_token),
            AttemptEnd(ended[1], ended[1].attempts[0].fencing_token + 1),
        ]
        with pytest.raises(BatchConflictError):
            await runs.finish_many(stale, [change])
        assert await store.get(keys.lease(ended[0].id)) is not None
        assert await store.get(keys.run(ended[0].id)) is None

        deposed = RunStore(store, keys, fence_at(fence_revision + 1))
        current = [AttemptEnd(run, run.attempts[0].fencing_token) for run in ended]
        with pytest.raises(LostLeadershipError):
            await deposed.finish_many(current, [change])

        revision = await runs.finish_many(current, [change])

        for run in ended:
            assert await store.get(keys.lease(run.id)) is None
            kv = await store.get(keys.run(run.id))
            assert kv is not None
            stored = codec.decode_run(kv.key, kv.value, kv.mod_revision)
            assert stored.result == run.result
            assert stored.revision == revision
        job_kv = await store.get(keys.job(job.id))
        assert job_kv is not None
        assert codec.decode_job(job_kv.key, job_kv.value, job_kv.mod_revision).status is (
            JobStatus.SCHEDULED
        )
    finally:
        await store.close()
