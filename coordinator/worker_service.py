"""WorkerService: the agent protocol (leader only) and the worker listing (any replica)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

import grpc
from google.protobuf import timestamp_pb2

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.assignment import Assigned
from taskscheduler.coordinator.completion import Completion, CompletionResult
from taskscheduler.coordinator.completion_plan import AttemptReport, HeldLease
from taskscheduler.coordinator.engine import Engine, LeaderRuntime
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import AttemptOutcome, Worker, WorkerStatus
from taskscheduler.coordinator.rpc import translate_errors
from taskscheduler.coordinator.validation import validate_id, validate_page
from taskscheduler.errors import InvalidArgumentError, NotFoundError, SchedulerError
from taskscheduler.grpc_status import status_code_for
from taskscheduler.v1 import types_pb2, workers_pb2, workers_pb2_grpc

MAX_POLL_WAIT_S = 30.0
# Reports per CompleteAttempts call. Agents also keep a call under gRPC's default
# 4 MiB message limit, which 64 KiB of output and of result per report reach sooner.
MAX_REPORTS_PER_CALL = 1000
# A report keeps the last this many characters of output and the first of error.
MAX_OUTPUT_CHARS = 65536
MAX_ERROR_CHARS = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentTimings:
    heartbeat_interval_s: float
    lease_ttl_s: float


class WorkerServicer(workers_pb2_grpc.WorkerServiceServicer):
    def __init__(
        self,
        engine: Engine,
        store: etcd.Etcd,
        keys: KeyLayout,
        timings: AgentTimings,
        clock: Clock,
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._store = store
        self._keys = keys
        self._timings = timings

    @translate_errors
    async def ListWorkers(
        self, request: workers_pb2.ListWorkersRequest, context: grpc.aio.ServicerContext
    ) -> workers_pb2.ListWorkersResponse:
        page = validate_page(request.limit, request.offset)
        workers: list[Worker] = []
        async for result in self._store.pages(self._keys.workers):
            for kv in result.kvs:
                workers.append(codec.decode_worker(kv.key, kv.value, kv.mod_revision))
        selected = workers[page.offset : page.offset + page.limit]
        return workers_pb2.ListWorkersResponse(
            workers=[codec.worker_to_proto(self._live(worker)) for worker in selected],
            pagination=types_pb2.Pagination(
                limit=page.limit, offset=page.offset, total=len(workers)
            ),
        )

    @translate_errors
    async def GetWorker(
        self, request: workers_pb2.GetWorkerRequest, context: grpc.aio.ServicerContext
    ) -> workers_pb2.GetWorkerResponse:
        worker_id = validate_id(request.worker_id, "workerId")
        kv = await self._store.get(self._keys.worker(worker_id))
        if kv is None:
            raise NotFoundError("worker", worker_id, field="workerId")
        worker = codec.decode_worker(kv.key, kv.value, kv.mod_revision)
        return workers_pb2.GetWorkerResponse(worker=codec.worker_to_proto(self._live(worker)))

    @translate_errors
    async def RegisterWorker(
        self, request: workers_pb2.RegisterWorkerRequest, context: grpc.aio.ServicerContext
    ) -> workers_pb2.RegisterWorkerResponse:
        worker = _worker_from_request(request, self._clock.now())
        registered = await self._engine.leader().workers.register(worker)
        return workers_pb2.RegisterWorkerResponse(
            worker=codec.worker_to_proto(registered),
            heartbeat_interval_ms=int(self._timings.heartbeat_interval_s * 1000),
            lease_ttl_ms=int(self._timings.lease_ttl_s * 1000),
        )

    @translate_errors
    async def DeregisterWorker(
        self, request: workers_pb2.DeregisterWorkerRequest, context: grpc.aio.ServicerContext
    ) -> workers_pb2.DeregisterWorkerResponse:
        worker_id = validate_id(request.worker_id, "workerId")
        await self._engine.leader().workers.deregister(worker_id)
        return workers_pb2.DeregisterWorkerResponse(worker_id=worker_id)

    @translate_errors
    async def Heartbeat(
        self, request: workers_pb2.HeartbeatRequest, context: grpc.aio.ServicerContext
    ) -> workers_pb2.HeartbeatResponse:
        worker_id = validate_id(request.worker_id, "workerId")
        runtime = self._engine.leader()
        lease_ttl_ms = int(self._timings.lease_ttl_s * 1000)
        if not runtime.workers.known(worker_id):
            return workers_pb2.HeartbeatResponse(known=False, lease_ttl_ms=lease_ttl_ms)
        held = [HeldLease(ref.run_id, ref.attempt, ref.fencing_token) for ref in request.leases]
        revoked = await runtime.dispatcher.heartbeat(worker_id, held)
        return workers_pb2.HeartbeatResponse(
            known=True,
            lease_ttl_ms=lease_ttl_ms,
            revoked=[_lease_ref(lease) for lease in revoked],
        )

    @translate_errors
    async def PollWork(
        self, request: workers_pb2.PollWorkRequest, context: grpc.aio.ServicerContext
    ) -> workers_pb2.PollWorkResponse:
        worker_id = validate_id(request.worker_id, "workerId")
        if request.max_assignments < 1:
            raise InvalidArgumentError("maxAssignments", "maxAssignments must be at least 1")
        wait_s = min(max(request.wait_timeout_ms, 0) / 1000, MAX_POLL_WAIT_S)
        remaining = context.time_remaining()
        if remaining is not None:
            wait_s = max(0.0, min(wait_s, remaining - 1.0))
        polled = await self._engine.leader().dispatcher.poll(
            worker_id, request.max_assignments, wait_s, accepts_start_at=request.accepts_start_at
        )
        lease_ttl_ms = int(self._timings.lease_ttl_s * 1000)
        return workers_pb2.PollWorkResponse(
            assignments=[_assignment(item, lease_ttl_ms) for item in polled.assigned],
            revoked=[_lease_ref(lease) for lease in polled.revoked],
        )

    @translate_errors
    async def CompleteAttempt(
        self, request: workers_pb2.CompleteAttemptRequest, context: grpc.aio.ServicerContext
    ) -> workers_pb2.CompleteAttemptResponse:
        worker_id = validate_id(request.worker_id, "workerId")
        completion = _completion_from_proto(request, field_prefix="")
        runtime = self._leader_serving(worker_id)
        status = await runtime.dispatcher.complete(worker_id, completion.held, completion.report)
        return workers_pb2.CompleteAttemptResponse(run_status=codec.RUN_STATUSES.to_proto(status))

    @translate_errors
    async def CompleteAttempts(
        self, request: workers_pb2.CompleteAttemptsRequest, context: grpc.aio.ServicerContext
    ) -> workers_pb2.CompleteAttemptsResponse:
        """Record many reports; bad input or a stale token rejects only that report."""
        worker_id = validate_id(request.worker_id, "workerId")
        if len(request.reports) > MAX_REPORTS_PER_CALL:
            raise InvalidArgumentError(
                "reports",
                f"reports has {len(request.reports)} entries. Send at most "
                f"{MAX_REPORTS_PER_CALL} per call and the rest in further calls",
            )
        runtime = self._leader_serving(worker_id)
        parsed = _reports_from_proto(request.reports, worker_id)
        completions = [item for item in parsed if isinstance(item, Completion)]
        recorded = iter(await runtime.dispatcher.complete_many(worker_id, completions))
        results = [
            _rejected_report(report.lease.run_id, item)
            if isinstance(item, InvalidArgumentError)
            else _result_to_proto(next(recorded))
            for report, item in zip(request.reports, parsed, strict=True)
        ]
        return workers_pb2.CompleteAttemptsResponse(results=results)

    def _leader_serving(self, worker_id: str) -> LeaderRuntime:
        """Return the leader's runtime; raise InvalidArgumentError for an unregistered worker."""
        runtime = self._engine.leader()
        if not runtime.workers.known(worker_id):
            raise InvalidArgumentError(
                "workerId",
                f"worker {worker_id!r} is not registered. Call RegisterWorker, then report again",
            )
        return runtime

    def _live(self, worker: Worker) -> Worker:
        runtime = self._engine.runtime
        return runtime.workers.overlay(worker) if runtime is not None else worker


def _worker_from_request(request: workers_pb2.RegisterWorkerRequest, now: datetime) -> Worker:
    worker_id = request.worker_id or "worker-" + secrets.token_hex(6)
    validate_id(worker_id, "workerId")
    capabilities = tuple(dict.fromkeys(c.strip() for c in request.capabilities if c.strip()))
    if not capabilities:
        raise InvalidArgumentError(
            "capabilities", "capabilities must name at least one executor, such as shell"
        )
    if request.max_concurrent < 0:
        raise InvalidArgumentError("maxConcurrent", "maxConcurrent must be 1 or more")
    return Worker(
        id=worker_id,
        hostname=request.hostname,
        capabilities=capabilities,
        labels=MappingProxyType(dict(request.labels)),
        max_concurrent=request.max_concurrent or 1,
        status=WorkerStatus.ONLINE,
        registered_at=now,
        last_heartbeat_at=now,
        version=request.version,
    )


def _reports_from_proto(
    reports: Sequence[workers_pb2.CompleteAttemptRequest], worker_id: str
) -> list[Completion | InvalidArgumentError]:
    """Read each report of a batch, or the error that rejects it; a run may appear once."""
    parsed: list[Completion | InvalidArgumentError] = []
    first_index: dict[str, int] = {}
    for index, report in enumerate(reports):
        prefix = f"reports[{index}]."
        try:
            if report.worker_id and report.worker_id != worker_id:
                raise InvalidArgumentError(
                    prefix + "workerId",
                    f"{prefix}workerId {report.worker_id!r} differs from workerId "
                    f"{worker_id!r}. Leave it empty or send each worker's reports in its own call",
                )
            completion = _completion_from_proto(report, field_prefix=prefix)
            run_id = completion.held.run_id
            if run_id in first_index:
                raise InvalidArgumentError(
                    prefix + "lease.runId",
                    f"{prefix}lease.runId {run_id!r} repeats reports[{first_index[run_id]}]. "
                    "Report each attempt once",
                )
        except InvalidArgumentError as error:
            parsed.append(error)
            continue
        first_index[run_id] = index
        parsed.append(completion)
    return parsed


def _completion_from_proto(
    request: workers_pb2.CompleteAttemptRequest, *, field_prefix: str
) -> Completion:
    """Read one report; InvalidArgumentError names the field, after `field_prefix`."""
    lease = request.lease
    validate_id(lease.run_id, field_prefix + "lease.runId")
    outcome_field = field_prefix + "outcome"
    outcome = codec.ATTEMPT_OUTCOMES.from_proto(request.outcome, field=outcome_field)
    if outcome is None or outcome is AttemptOutcome.LEASE_EXPIRED:
        raise InvalidArgumentError(
            outcome_field, f"{outcome_field} must be succeeded, failed, timeout or cancelled"
        )
    result = codec.value_to_result(request.result) if request.HasField("result") else None
    report = AttemptReport(
        outcome=outcome,
        exit_code=request.exit_code,
        output=request.output[-MAX_OUTPUT_CHARS:],
        error=request.error[:MAX_ERROR_CHARS],
        started_at=_time_field(request.started_at, field_prefix + "startedAt"),
        completed_at=_time_field(request.completed_at, field_prefix + "completedAt"),
        result=result,
    )
    return Completion(HeldLease(lease.run_id, lease.attempt, lease.fencing_token), report)


def _time_field(timestamp: timestamp_pb2.Timestamp, field: str) -> datetime | None:
    try:
        return codec.timestamp_to_datetime(timestamp)
    except ValueError as error:
        raise InvalidArgumentError(
            field, f"{field} is invalid: {error}. Send a time between years 1 and 9999"
        ) from error


def _result_to_proto(result: CompletionResult) -> workers_pb2.CompleteAttemptResult:
    if result.error is not None:
        return _rejected_report(result.run_id, result.error)
    return workers_pb2.CompleteAttemptResult(
        run_id=result.run_id, run_status=codec.RUN_STATUSES.to_proto(result.run_status)
    )


def _rejected_report(run_id: str, error: SchedulerError) -> workers_pb2.CompleteAttemptResult:
    return workers_pb2.CompleteAttemptResult(
        run_id=run_id, error_code=status_code_for(error).name, error_message=str(error)
    )


def _lease_ref(lease: HeldLease) -> workers_pb2.LeaseRef:
    return workers_pb2.LeaseRef(
        run_id=lease.run_id, attempt=lease.attempt, fencing_token=lease.fencing_token
    )


def _assignment(item: Assigned, lease_ttl_ms: int) -> workers_pb2.Assignment:
    run = item.run
    assignment = workers_pb2.Assignment(
        run_id=run.id,
        job_id=run.job_id,
        job_name=run.job_name,
        attempt=run.attempt,
        fencing_token=item.fencing_token,
        executor=run.executor,
        lease_ttl_ms=lease_ttl_ms,
    )
    if item.job is not None:
        assignment.payload.CopyFrom(codec.payload_to_struct(item.job.spec.payload))
        assignment.timeout = item.job.spec.timeout_s
    scheduled_at = codec.datetime_to_timestamp(run.scheduled_at)
    if scheduled_at is not None:
        assignment.scheduled_at.CopyFrom(scheduled_at)
    start_at = codec.datetime_to_timestamp(item.start_at)
    if start_at is not None:
        assignment.start_at.CopyFrom(start_at)
    return assignment
