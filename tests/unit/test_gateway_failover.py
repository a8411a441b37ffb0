"""CoordinatorClient failover against fake replicas served by grpc.aio on loopback."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import grpc
import pytest

from taskscheduler import errors
from taskscheduler.gateway.coordinator_client import (
    CoordinatorClient,
    CoordinatorUnreachableError,
    FailoverPolicy,
)
from taskscheduler.gateway.http_rules import bindings_from_files
from taskscheduler.grpc_status import status_code_for, trailers_for
from taskscheduler.ports import find_free_port
from taskscheduler.v1 import (
    jobs_pb2,
    jobs_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
    types_pb2,
)

FAST_POLICY = FailoverPolicy(
    call_deadline_s=5.0, connect_timeout_s=0.3, backoff_s=0.05, failover_budget_s=1.0
)
BINDINGS = {binding.method.name: binding for binding in bindings_from_files()}
READ = BINDINGS["GetHealth"]
WRITE = BINDINGS["CreateJob"]


class FakeReplica(monitoring_pb2_grpc.MonitoringServiceServicer, jobs_pb2_grpc.JobServiceServicer):
    """Fake replica that serves GetHealth (a read) and CreateJob (a write) as `mode` selects."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.mode = "ok"
        self.leader_address = ""
        self.calls = 0

    async def _fail_if_asked(self, context: grpc.aio.ServicerContext) -> None:
        self.calls += 1
        error: Exception
        if self.mode == "unavailable":
            error = errors.StoreUnavailableError("etcd did not answer")
        elif self.mode == "follower":
            error = errors.NotLeaderError(self.leader_address)
        else:
            return
        code = status_code_for(error)
        context.set_trailing_metadata(trailers_for(error, code))
        await context.abort(code, str(error))

    async def GetHealth(self, request, context):
        await self._fail_if_asked(context)
        return monitoring_pb2.GetHealthResponse(status="ok", coordinator_id=self.name)

    async def CreateJob(self, request, context):
        await self._fail_if_asked(context)
        return jobs_pb2.CreateJobResponse(job=types_pb2.Job(id=f"job-from-{self.name}"))


StartReplica = Callable[..., Awaitable[tuple[FakeReplica, str]]]


@pytest.fixture
async def start_replica() -> AsyncIterator[StartReplica]:
    servers: list[grpc.aio.Server] = []

    async def start(name: str, port: int = 0) -> tuple[FakeReplica, str]:
        replica = FakeReplica(name)
        server = grpc.aio.server()
        monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server(replica, server)
        jobs_pb2_grpc.add_JobServiceServicer_to_server(replica, server)
        bound = server.add_insecure_port(f"127.0.0.1:{port}")
        await server.start()
        servers.append(server)
        return replica, f"127.0.0.1:{bound}"

    yield start
    for server in servers:
        await server.stop(None)


@pytest.fixture
async def clients() -> AsyncIterator[Callable[..., CoordinatorClient]]:
    made: list[CoordinatorClient] = []

    def make(addresses: list[str], policy: FailoverPolicy = FAST_POLICY) -> CoordinatorClient:
        client = CoordinatorClient(addresses, policy)
        made.append(client)
        return client

    yield make
    for client in made:
        await client.close()


def dead_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize(("binding", "kind"), [(READ, "read"), (WRITE, "write")])
async def test_dead_address_is_skipped(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient], binding, kind: str
) -> None:
    live, address = await start_replica("live")
    client = clients([dead_address(), address])

    response = await client.call(binding, binding.request_class())

    assert live.calls == 1, kind
    assert response.ListFields(), kind


async def test_read_retries_server_unavailable(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    failing, failing_address = await start_replica("failing")
    live, live_address = await start_replica("live")
    failing.mode = "unavailable"
    client = clients([failing_address, live_address])

    response = await client.call(READ, READ.request_class())

    assert response.coordinator_id == "live"
    assert failing.calls == 1
    assert live.calls == 1


async def test_write_not_retried_after_server_unavailable(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    failing, failing_address = await start_replica("failing")
    live, live_address = await start_replica("live")
    failing.mode = "unavailable"
    client = clients([failing_address, live_address])

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.call(WRITE, WRITE.request_class())

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert failing.calls == 1
    assert live.calls == 0


async def test_follower_redirects_write_to_leader(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    follower, follower_address = await start_replica("follower")
    leader, leader_address = await start_replica("leader")
    follower.mode = "follower"
    follower.leader_address = leader_address
    client = clients([follower_address])

    response = await client.call(WRITE, WRITE.request_class())

    assert response.job.id == "job-from-leader"
    assert follower.calls == 1
    assert leader.calls == 1


async def test_leader_redirect_happens_once_per_try(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    first, first_address = await start_replica("first")
    second, second_address = await start_replica("second")
    first.mode = second.mode = "follower"
    first.leader_address = second_address
    second.leader_address = first_address
    # One try at once, and one more 0.5 s later, after the election wait ended.
    short_wait = dataclasses.replace(FAST_POLICY, election_wait_s=0.2)
    client = clients([first_address], short_wait)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.call(WRITE, WRITE.request_class())

    # Each try follows one redirect and no more. The replicas that name each
    # other reject every call, so the call ends with their rejection.
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert first.calls == second.calls
    assert first.calls in (1, 2)


async def test_starting_leader_is_retried(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    follower, follower_address = await start_replica("follower")
    leader, leader_address = await start_replica("leader")
    follower.mode = "follower"
    follower.leader_address = leader_address
    # Elected but still loading: it names itself, as a replica did before it
    # left its own address out.
    leader.mode = "follower"
    leader.leader_address = leader_address
    client = clients([follower_address])
    asyncio.get_running_loop().call_later(0.7, setattr, leader, "mode", "serving")

    response = await client.call(WRITE, WRITE.request_class())

    assert response.job.id
    assert leader.calls >= 2


async def test_leaderless_write_waits_for_election(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    follower, follower_address = await start_replica("follower")
    follower.mode = "follower"
    client = clients([follower_address])
    # The election ends while the gateway retries: the follower starts to answer.
    asyncio.get_running_loop().call_later(0.7, setattr, follower, "mode", "serving")

    response = await client.call(WRITE, WRITE.request_class())

    assert response.job.id
    assert follower.calls >= 2


async def test_dead_named_leader_waits_for_election(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    follower, follower_address = await start_replica("follower")
    follower.mode = "follower"
    follower.leader_address = f"127.0.0.1:{find_free_port()}"
    client = clients([follower_address])
    # The follower learns that a new leader (itself) was elected.
    asyncio.get_running_loop().call_later(1.5, setattr, follower, "mode", "serving")

    response = await client.call(WRITE, WRITE.request_class())

    assert response.job.id == "job-from-follower"
    assert follower.calls >= 2


async def test_leaderless_write_gives_up_after_wait(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    follower, follower_address = await start_replica("follower")
    follower.mode = "follower"
    short_wait = FailoverPolicy(
        call_deadline_s=5.0,
        connect_timeout_s=0.3,
        backoff_s=0.05,
        failover_budget_s=1.0,
        election_wait_s=1.2,
    )
    client = clients([follower_address], short_wait)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.call(WRITE, WRITE.request_class())

    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert follower.calls >= 2


async def test_answering_address_is_tried_first_next_time(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    failing, failing_address = await start_replica("failing")
    live, live_address = await start_replica("live")
    failing.mode = "unavailable"
    client = clients([failing_address, live_address])

    await client.call(READ, READ.request_class())
    await client.call(READ, READ.request_class())

    assert failing.calls == 1
    assert live.calls == 2


async def test_no_address_reachable_fails_within_budget(
    clients: Callable[..., CoordinatorClient],
) -> None:
    client = clients([dead_address(), dead_address(), dead_address()])
    loop = asyncio.get_running_loop()
    started = loop.time()

    with pytest.raises(CoordinatorUnreachableError) as caught:
        await client.call(READ, READ.request_class())

    assert loop.time() - started < FAST_POLICY.failover_budget_s + FAST_POLICY.backoff_s + 0.5
    assert caught.value.addresses == client.addresses


async def test_coordinator_that_comes_back_is_used(
    start_replica: StartReplica, clients: Callable[..., CoordinatorClient]
) -> None:
    address = dead_address()
    # Long enough to wait out the channel's reconnect backoff (at most 1 s).
    patient = FailoverPolicy(connect_timeout_s=1.5, backoff_s=0.05, failover_budget_s=3.0)
    client = clients([address], patient)
    with pytest.raises(CoordinatorUnreachableError):
        await client.call(READ, READ.request_class())

    replica, _ = await start_replica("back", port=int(address.rsplit(":", 1)[1]))
    response = await client.call(READ, READ.request_class())

    assert response.coordinator_id == "back"
    assert replica.calls == 1


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"call_deadline_s": 0}, "call_deadline_s must be positive, got 0"),
        ({"connect_timeout_s": -1}, "connect_timeout_s must be positive, got -1"),
        ({"backoff_s": -0.1}, "backoff_s must not be negative, got -0.1"),
    ],
)
def test_failover_policy_validation(settings: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        FailoverPolicy(**settings)

    assert str(caught.value) == message


def test_client_requires_an_address() -> None:
    with pytest.raises(ValueError, match="at least one coordinator address"):
        CoordinatorClient([])
