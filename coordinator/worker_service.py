"""WorkerService: the agent protocol (leader only) and the worker listing (any replica)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

import grpc

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.dispatch import Assigned, AttemptReport, HeldLease
from taskscheduler.coordinator.engine import Engine
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import AttemptOutcome, Worker, WorkerStatus
from taskscheduler.coordinator.rpc import translate_errors
from taskscheduler.coordinator.validation import validate_id, validate_page
from taskscheduler.errors import InvalidArgumentError, NotFoundError
from taskscheduler.v1 import types_pb2, workers_pb2, workers_pb2_grpc

MAX_POLL_WAIT_S = 30.0


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
        assigned = await self._engine.leader().dispatcher.poll(
            worker_id, request.max_assignments, wait_s
        )
        lease_ttl_ms = int(self._timings.lease_ttl_s * 1000)
        return workers_pb2.PollWorkResponse(
            assignments=[_assignment(item, lease_ttl_ms) for item in assigned]
        )

    @translate_errors
    async def CompleteAttempt(
        self, request: workers_pb2.CompleteAttemptRequest, context: grpc.aio.ServicerContext
    ) -> workers_pb2.CompleteAttemptResponse:
        worker_id = validate_id(request.worker_id, "workerId")
        outcome = codec.ATTEMPT_OUTCOMES.from_proto(request.outcome, field="outcome")
        if outcome is None or outcome is AttemptOutcome.LEASE_EXPIRED:
            raise InvalidArgumentError(
                "outcome", "outcome must be succeeded, failed, timeout or cancelled"
            )
        lease = request.lease
        report = AttemptReport(
            outcome=outcome,
            exit_code=request.exit_code,
            output=request.output[-65536:],
            error=request.error[:4096],
            started_at=codec.timestamp_to_datetime(request.started_at),
            completed_at=codec.timestamp_to_datetime(request.completed_at),
        )
        status = await self._engine.leader().dispatcher.complete(
            worker_id, HeldLease(lease.run_id, lease.attempt, lease.fencing_token), report
        )
        return workers_pb2.CompleteAttemptResponse(run_status=codec.RUN_STATUSES.to_proto(status))

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
    return assignment
