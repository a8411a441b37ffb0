"""The agent's coordinator client: moving between addresses and following the leader."""

from __future__ import annotations

import socket

import grpc
import pytest
from agent_fakes import FakeWorkerService, serve_fake

from taskscheduler.agent.backoff import RetryPolicy
from taskscheduler.agent.connection import CoordinatorClient, CoordinatorUnavailableError
from taskscheduler.clock import SystemClock
from taskscheduler.v1 import workers_pb2

FAST_RETRY = RetryPolicy(initial_s=0.01, max_s=0.05)


def unused_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


def client_for(*addresses: str) -> CoordinatorClient:
    return CoordinatorClient(addresses, retry=FAST_RETRY, clock=SystemClock())


def completion(run_id: str) -> workers_pb2.CompleteAttemptRequest:
    return workers_pb2.CompleteAttemptRequest(
        worker_id="w1", lease=workers_pb2.LeaseRef(run_id=run_id, attempt=1, fencing_token=5)
    )


async def test_client_follows_leader_address() -> None:
    leader, follower = FakeWorkerService(), FakeWorkerService()
    async with serve_fake(leader) as leader_address, serve_fake(follower) as follower_address:
        follower.leader_address = leader_address
        client = client_for(follower_address)
        try:
            response = await client.call(
                "RegisterWorker", workers_pb2.RegisterWorkerRequest(worker_id="w1"), timeout_s=2
            )
        finally:
            await client.close()

    assert response.worker.id == "w1"
    assert len(leader.registrations) == 1
    assert follower.registrations == []
    assert client.current_address == leader_address


async def test_client_moves_past_unreachable_address() -> None:
    service = FakeWorkerService()
    async with serve_fake(service) as live_address:
        client = client_for(unused_address(), live_address)
        try:
            await client.call(
                "RegisterWorker", workers_pb2.RegisterWorkerRequest(worker_id="w1"), timeout_s=2
            )
        finally:
            await client.close()

    assert len(service.registrations) == 1
    assert client.current_address == live_address


async def test_client_retries_unavailable_status() -> None:
    service = FakeWorkerService()
    service.completion_failures.extend([grpc.StatusCode.UNAVAILABLE] * 3)
    async with serve_fake(service) as address:
        client = client_for(address)
        try:
            await client.call("CompleteAttempt", completion("run-1"), timeout_s=2)
        finally:
            await client.close()

    assert len(service.calls_for("run-1")) == 4
    assert len(service.accepted_for("run-1")) == 1


async def test_client_gives_up_after_budget() -> None:
    client = client_for(unused_address())
    try:
        with pytest.raises(CoordinatorUnavailableError) as raised:
            await client.call(
                "RegisterWorker",
                workers_pb2.RegisterWorkerRequest(worker_id="w1"),
                timeout_s=1,
                give_up_after_s=0.2,
            )
    finally:
        await client.close()

    assert raised.value.method == "RegisterWorker"
    assert raised.value.cause.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    "code",
    [
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.INVALID_ARGUMENT,
    ],
)
async def test_client_raises_other_statuses(code: grpc.StatusCode) -> None:
    service = FakeWorkerService()
    service.completion_failures.append(code)
    async with serve_fake(service) as address:
        client = client_for(address)
        try:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await client.call("CompleteAttempt", completion("run-2"), timeout_s=2)
        finally:
            await client.close()

    assert raised.value.code() == code
    assert len(service.calls_for("run-2")) == 1
