"""A scriptable WorkerService served by grpc.aio on 127.0.0.1, for the agent's tests.

It records every request, hands out queued assignments on PollWork (a real
long-poll that honours wait_timeout_ms), revokes chosen leases on the
next heartbeat, and can fail calls with chosen status codes. CompleteAttempts
returns UNIMPLEMENTED, as a coordinator without it does, unless
`batch_completions` is set.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf import struct_pb2

from taskscheduler.grpc_status import LEADER_ADDRESS_KEY
from taskscheduler.v1 import types_pb2, workers_pb2, workers_pb2_grpc


class FakeWorkerService(workers_pb2_grpc.WorkerServiceServicer):
    def __init__(self, *, heartbeat_interval_ms: int = 50) -> None:
        self.heartbeat_interval_ms = heartbeat_interval_ms
        self.registrations: list[workers_pb2.RegisterWorkerRequest] = []
        self.heartbeats: list[workers_pb2.HeartbeatRequest] = []
        self.polls: list[workers_pb2.PollWorkRequest] = []
        # Run ids handed out by each PollWork response, in order.
        self.poll_results: list[list[str]] = []
        # Every report sent, alone or in a batch, and the ones this fake accepted.
        self.completion_calls: list[workers_pb2.CompleteAttemptRequest] = []
        self.completions: list[workers_pb2.CompleteAttemptRequest] = []
        # Whether CompleteAttempts is served, and the batches it received.
        self.batch_completions = False
        self.batch_calls: list[workers_pb2.CompleteAttemptsRequest] = []
        # Completion calls wait while this is clear.
        self.completions_open = asyncio.Event()
        self.completions_open.set()
        self.deregistrations: list[str] = []
        # Status codes the next CompleteAttempt calls fail with, one per call.
        self.completion_failures: deque[grpc.StatusCode] = deque()
        # Leases the next heartbeat reports as revoked.
        self.revoke_next: list[workers_pb2.LeaseRef] = []
        # How many of the next heartbeats return known=False.
        self.unknown_heartbeats = 0
        # When set, every call is rejected as a follower pointing at this address.
        self.leader_address = ""
        self._assignments: deque[workers_pb2.Assignment] = deque()
        self._work_added = asyncio.Event()

    def add_assignment(self, assignment: workers_pb2.Assignment) -> None:
        self._assignments.append(assignment)
        self._work_added.set()

    @property
    def queued(self) -> int:
        return len(self._assignments)

    def leases_in_heartbeat(self, index: int) -> set[tuple[str, int, int]]:
        return {
            (lease.run_id, lease.attempt, lease.fencing_token)
            for lease in self.heartbeats[index].leases
        }

    def latest_heartbeat_leases(self) -> set[tuple[str, int, int]]:
        return self.leases_in_heartbeat(-1) if self.heartbeats else set()

    def accepted_for(self, run_id: str) -> list[workers_pb2.CompleteAttemptRequest]:
        return [c for c in self.completions if c.lease.run_id == run_id]

    def calls_for(self, run_id: str) -> list[workers_pb2.CompleteAttemptRequest]:
        return [c for c in self.completion_calls if c.lease.run_id == run_id]

    async def _reject_if_follower(self, context: grpc.aio.ServicerContext) -> None:
        if self.leader_address:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                "this coordinator is not the leader",
                trailing_metadata=((LEADER_ADDRESS_KEY, self.leader_address),),
            )

    async def RegisterWorker(self, request: Any, context: Any) -> Any:
        await self._reject_if_follower(context)
        self.registrations.append(request)
        return workers_pb2.RegisterWorkerResponse(
            worker=types_pb2.Worker(
                id=request.worker_id,
                hostname=request.hostname,
                capabilities=request.capabilities,
                max_concurrent=request.max_concurrent,
            ),
            heartbeat_interval_ms=self.heartbeat_interval_ms,
            lease_ttl_ms=self.heartbeat_interval_ms * 3,
        )

    async def Heartbeat(self, request: Any, context: Any) -> Any:
        await self._reject_if_follower(context)
        self.heartbeats.append(request)
        revoked, self.revoke_next = self.revoke_next, []
        known = self.unknown_heartbeats == 0
        self.unknown_heartbeats = max(0, self.unknown_heartbeats - 1)
        return workers_pb2.HeartbeatResponse(revoked=revoked, known=known, lease_ttl_ms=150)

    async def PollWork(self, request: Any, context: Any) -> Any:
        await self._reject_if_follower(context)
        self.polls.append(request)
        if not self._assignments:
            self._work_added.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._work_added.wait(), request.wait_timeout_ms / 1000)
        handed = []
        while self._assignments and len(handed) < request.max_assignments:
            handed.append(self._assignments.popleft())
        self.poll_results.append([assignment.run_id for assignment in handed])
        return workers_pb2.PollWorkResponse(assignments=handed)

    async def CompleteAttempt(self, request: Any, context: Any) -> Any:
        await self._reject_if_follower(context)
        await self.completions_open.wait()
        self.completion_calls.append(request)
        if self.completion_failures:
            code = self.completion_failures.popleft()
            await context.abort(code, f"scripted {code.name}")
        self.completions.append(request)
        return workers_pb2.CompleteAttemptResponse(run_status=types_pb2.RUN_STATUS_COMPLETED)

    async def CompleteAttempts(self, request: Any, context: Any) -> Any:
        await self._reject_if_follower(context)
        if not self.batch_completions:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        await self.completions_open.wait()
        self.batch_calls.append(request)
        results = []
        for report in request.reports:
            self.completion_calls.append(report)
            if self.completion_failures:
                code = self.completion_failures.popleft()
                results.append(
                    workers_pb2.CompleteAttemptResult(
                        run_id=report.lease.run_id,
                        error_code=code.name,
                        error_message=f"scripted {code.name}",
                    )
                )
                continue
            self.completions.append(report)
            results.append(
                workers_pb2.CompleteAttemptResult(
                    run_id=report.lease.run_id, run_status=types_pb2.RUN_STATUS_COMPLETED
                )
            )
        return workers_pb2.CompleteAttemptsResponse(results=results)

    async def DeregisterWorker(self, request: Any, context: Any) -> Any:
        await self._reject_if_follower(context)
        self.deregistrations.append(request.worker_id)
        return workers_pb2.DeregisterWorkerResponse(worker_id=request.worker_id)


@contextlib.asynccontextmanager
async def serve_fake(
    service: FakeWorkerService, address: str = "127.0.0.1:0"
) -> AsyncIterator[str]:
    """Serve `service` on loopback; yield its HOST:PORT and stop the server on exit."""
    server = grpc.aio.server()
    workers_pb2_grpc.add_WorkerServiceServicer_to_server(service, server)
    port = server.add_insecure_port(address)
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)


def make_assignment(
    run_id: str,
    *,
    fencing_token: int,
    payload: dict[str, Any],
    executor: str = "shell",
    attempt: int = 1,
    timeout: int = 0,
    job_id: str = "job-1",
) -> workers_pb2.Assignment:
    struct = struct_pb2.Struct()
    struct.update(payload)
    return workers_pb2.Assignment(
        run_id=run_id,
        job_id=job_id,
        job_name=f"name-of-{job_id}",
        attempt=attempt,
        fencing_token=fencing_token,
        executor=executor,
        payload=struct,
        timeout=timeout,
        lease_ttl_ms=150,
    )


async def wait_until(
    condition: Callable[[], bool], *, timeout_s: float = 5.0, what: str = "condition"
) -> None:
    """Poll `condition` every 10 ms until it holds; fail the test after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() >= deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.01)


def process_gone(pid: int) -> bool:
    """Return whether `pid` has ended: no such process, or a zombie not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat_file:
            stat = stat_file.read()
    except FileNotFoundError:
        return True
    state = stat[stat.rfind(b")") + 2 :].split()[0]
    return state in (b"Z", b"X")
