"""JobService: protobuf in and out, JobRepository, BulkJobs and the leader's Firer behind."""

from __future__ import annotations

import asyncio

import grpc

from taskscheduler.coordinator import codec
from taskscheduler.coordinator.bulk_jobs import BulkJobs, ItemResult, check_batch_size
from taskscheduler.coordinator.codec import JobDraft
from taskscheduler.coordinator.engine import Engine
from taskscheduler.coordinator.jobs import JobRepository
from taskscheduler.coordinator.model import Run, RunStatus
from taskscheduler.coordinator.rpc import translate_errors
from taskscheduler.coordinator.validation import validate_id, validate_page
from taskscheduler.errors import FailedPreconditionError, InvalidArgumentError
from taskscheduler.grpc_status import status_code_for
from taskscheduler.v1 import jobs_pb2, jobs_pb2_grpc, types_pb2


class JobServicer(jobs_pb2_grpc.JobServiceServicer):
    def __init__(self, jobs: JobRepository, engine: Engine) -> None:
        self._jobs = jobs
        self._bulk = BulkJobs(jobs)
        self._engine = engine

    @translate_errors
    async def CreateJob(
        self, request: jobs_pb2.CreateJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.CreateJobResponse:
        job = await self._jobs.create(codec.job_spec_from_proto(request.job))
        return jobs_pb2.CreateJobResponse(job=codec.job_to_proto(job))

    @translate_errors
    async def ListJobs(
        self, request: jobs_pb2.ListJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobsResponse:
        page = validate_page(request.limit, request.offset)
        status = codec.JOB_STATUSES.from_proto(request.status, field="status")
        priority = codec.PRIORITIES.from_proto(request.priority, field="priority")
        jobs, total = self._jobs.list(status=status, priority=priority, page=page)
        return jobs_pb2.ListJobsResponse(
            jobs=[codec.job_to_proto(job) for job in jobs],
            pagination=types_pb2.Pagination(limit=page.limit, offset=page.offset, total=total),
        )

    @translate_errors
    async def GetJob(
        self, request: jobs_pb2.GetJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetJobResponse:
        job = await self._jobs.get(validate_id(request.job_id, "jobId"))
        return jobs_pb2.GetJobResponse(job=codec.job_to_proto(job))

    @translate_errors
    async def UpdateJob(
        self, request: jobs_pb2.UpdateJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.UpdateJobResponse:
        job_id = validate_id(request.job_id, "jobId")
        draft = codec.job_spec_from_proto(request.job)
        job = await self._jobs.update(job_id, draft, list(request.update_mask.paths))
        return jobs_pb2.UpdateJobResponse(job=codec.job_to_proto(job))

    @translate_errors
    async def DeleteJob(
        self, request: jobs_pb2.DeleteJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.DeleteJobResponse:
        job_id = validate_id(request.job_id, "jobId")
        await self._jobs.delete(job_id)
        return jobs_pb2.DeleteJobResponse(job_id=job_id)

    @translate_errors
    async def ExecuteJob(
        self, request: jobs_pb2.ExecuteJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ExecuteJobResponse:
        job_id = validate_id(request.job_id, "jobId")
        run = await self._engine.leader().firer.execute_now(job_id)
        return jobs_pb2.ExecuteJobResponse(run=codec.run_to_proto(run))

    @translate_errors
    async def PauseJob(
        self, request: jobs_pb2.PauseJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.PauseJobResponse:
        job = await self._jobs.pause(validate_id(request.job_id, "jobId"))
        return jobs_pb2.PauseJobResponse(job=codec.job_to_proto(job))

    @translate_errors
    async def ResumeJob(
        self, request: jobs_pb2.ResumeJobRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ResumeJobResponse:
        job = await self._jobs.resume(validate_id(request.job_id, "jobId"))
        return jobs_pb2.ResumeJobResponse(job=codec.job_to_proto(job))

    @translate_errors
    async def GetJobStatus(
        self, request: jobs_pb2.GetJobStatusRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.GetJobStatusResponse:
        job_id = validate_id(request.job_id, "jobId")
        job = await self._jobs.get(job_id)
        (latest, _), counts = await asyncio.gather(
            self._jobs.history(job_id, validate_page(1, 0)), self._jobs.run_counts(job_id)
        )
        response = jobs_pb2.GetJobStatusResponse(
            job_id=job.id,
            status=codec.JOB_STATUSES.to_proto(job.status),
            run_counts=dict(counts),
        )
        _set_time(response.next_run, job.next_fire_at)
        _set_time(response.last_run, job.last_run_at)
        if latest:
            response.latest_run.CopyFrom(self._run_to_proto(latest[0]))
        return response

    @translate_errors
    async def CancelRun(
        self, request: jobs_pb2.CancelRunRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.CancelRunResponse:
        job_id = validate_id(request.job_id, "jobId")
        run_id = validate_id(request.run_id, "runId")
        run = await self._jobs.run(job_id, run_id)
        if run.status.is_final:
            raise FailedPreconditionError(
                f"run {run_id!r} already ended as {run.status.value}; only queued or "
                "running runs can be cancelled",
                field="runId",
            )
        dispatcher = self._engine.leader().dispatcher
        await dispatcher.cancel_run(run_id, "cancelled on request", stored=run)
        run = await self._jobs.run(job_id, run_id)
        return jobs_pb2.CancelRunResponse(run=codec.run_to_proto(run))

    @translate_errors
    async def ListJobHistory(
        self, request: jobs_pb2.ListJobHistoryRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.ListJobHistoryResponse:
        job_id = validate_id(request.job_id, "jobId")
        page = validate_page(request.limit, request.offset)
        runs, total = await self._jobs.history(job_id, page)
        return jobs_pb2.ListJobHistoryResponse(
            runs=[self._run_to_proto(run) for run in runs],
            pagination=types_pb2.Pagination(limit=page.limit, offset=page.offset, total=total),
        )

    @translate_errors
    async def BatchCreateJobs(
        self, request: jobs_pb2.BatchCreateJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.BatchCreateJobsResponse:
        check_batch_size(len(request.jobs), "jobs")
        results = await self._bulk.create_many([_draft_or_error(job) for job in request.jobs])
        return jobs_pb2.BatchCreateJobsResponse(results=_results_to_proto(results))

    @translate_errors
    async def BatchDeleteJobs(
        self, request: jobs_pb2.BatchDeleteJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.BatchDeleteJobsResponse:
        results = await self._bulk.delete_many(list(request.job_ids))
        return jobs_pb2.BatchDeleteJobsResponse(results=_results_to_proto(results))

    @translate_errors
    async def BatchPauseJobs(
        self, request: jobs_pb2.BatchPauseJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.BatchPauseJobsResponse:
        results = await self._bulk.pause_many(list(request.job_ids))
        return jobs_pb2.BatchPauseJobsResponse(results=_results_to_proto(results))

    @translate_errors
    async def BatchResumeJobs(
        self, request: jobs_pb2.BatchResumeJobsRequest, context: grpc.aio.ServicerContext
    ) -> jobs_pb2.BatchResumeJobsResponse:
        results = await self._bulk.resume_many(list(request.job_ids))
        return jobs_pb2.BatchResumeJobsResponse(results=_results_to_proto(results))

    def _run_to_proto(self, run: Run) -> types_pb2.Run:
        """Build a run message with the leader's in-memory waiting reason for a queued run."""
        message = codec.run_to_proto(run)
        if run.status is RunStatus.QUEUED:
            message.waiting_reason = self._engine.waiting_reason(run.id)
        elif run.status is RunStatus.RUNNING and run.attempts and run.revision:
            # The token is the revision of the assignment's transaction, so it is
            # not in the record that transaction wrote. While the attempt runs,
            # the record is not written again, and its mod revision is the token.
            current = message.attempts[-1]
            if current.fencing_token == 0:
                current.fencing_token = run.revision
        return message


def batch_result_to_proto(result: ItemResult) -> jobs_pb2.BatchJobResult:
    """Build one item's result; the error has the code, message and field of a REST error."""
    message = jobs_pb2.BatchJobResult(index=result.index, job_id=result.job_id)
    if result.job is not None:
        message.job.CopyFrom(codec.job_to_proto(result.job))
    if result.error is not None:
        message.error.code = status_code_for(result.error).name
        message.error.message = str(result.error)
        message.error.field = getattr(result.error, "field", "")
    return message


def _results_to_proto(results: list[ItemResult]) -> list[jobs_pb2.BatchJobResult]:
    return [batch_result_to_proto(result) for result in results]


def _draft_or_error(message: types_pb2.Job) -> JobDraft | InvalidArgumentError:
    """Convert one job of a batch; an enum number this API lacks fails that job alone."""
    try:
        return codec.job_spec_from_proto(message)
    except InvalidArgumentError as error:
        return error


def _set_time(target, value) -> None:  # type: ignore[no-untyped-def]
    timestamp = codec.datetime_to_timestamp(value)
    if timestamp is not None:
        target.CopyFrom(timestamp)
