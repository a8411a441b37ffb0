"""Fixtures shared by the test suite: a real etcd, process factories and the full stack.

One etcd serves the whole session; each test gets its own key prefix,
so tests do not see each other's data. Tests that pause or kill etcd
start a private one with `start_etcd`. When a test fails, the last 100
lines of every process it started are added to its report.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from pathlib import Path

import aetcd
import pytest
from harness import AgentHandle, ApiClient, Components, ProcessHandle, Stack

from taskscheduler.etcd_server import (
    EtcdConfig,
    EtcdNotFoundError,
    EtcdServer,
    find_etcd_binary,
    read_log_tail,
)
from taskscheduler.ports import find_free_ports

_FAILURE_LOG_LINES = 100
# What the report of a failed test shows the log tails of: the processes
# of its `components` fixture and the private etcd servers it started.
_COMPONENTS = pytest.StashKey[Components]()
_LOG_FILES = pytest.StashKey[dict[str, Path]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when in ("setup", "call"):
        for name, path in _log_files_of(item).items():
            report.sections.append(
                (f"last lines of {name} ({path})", read_log_tail(path, _FAILURE_LOG_LINES))
            )
    return report


def _log_files_of(item: pytest.Item) -> dict[str, Path]:
    recorded: dict[str, Path] = item.stash.get(_LOG_FILES, {})
    log_files = {**recorded}
    components = item.stash.get(_COMPONENTS, None)
    if components is not None:
        log_files |= {handle.name: handle.log_path for handle in components.started}
    return log_files


def _record_log_file(request: pytest.FixtureRequest, name: str, path: Path) -> None:
    request.node.stash.setdefault(_LOG_FILES, {})[name] = path


@pytest.fixture(scope="session")
def etcd_binary() -> Path:
    """The etcd server binary; a missing one fails the tests that need it, with the reason."""
    try:
        return find_etcd_binary()
    except EtcdNotFoundError as error:
        reason = str(error)
    # Failing outside the except block keeps the traceback chain out of the report.
    pytest.fail(reason, pytrace=False)


def _start_test_etcd(binary: Path, folder: Path, name: str) -> EtcdServer:
    client_port, peer_port = find_free_ports(2)
    config = EtcdConfig(
        data_dir=folder / "data",
        client_port=client_port,
        peer_port=peer_port,
        name=name,
        fsync=False,
    )
    server = EtcdServer(config, log_path=folder / "etcd.log", binary=binary)
    server.start()
    return server


@pytest.fixture(scope="session")
def etcd(etcd_binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    """One etcd for the whole session, without fsync; keep its data under `etcd_prefix`."""
    server = _start_test_etcd(etcd_binary, tmp_path_factory.mktemp("etcd"), "taskscheduler-test")
    yield server
    server.stop()


@pytest.fixture
def start_etcd(
    etcd_binary: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[[], EtcdServer]]:
    """Factory for private etcd servers, for tests that pause, kill or restart etcd."""
    servers: list[EtcdServer] = []

    def start() -> EtcdServer:
        name = f"etcd-{len(servers) + 1}"
        folder = tmp_path / name
        _record_log_file(request, name, folder / "etcd.log")
        server = _start_test_etcd(etcd_binary, folder, name)
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def etcd_prefix() -> str:
    """A key prefix no other test uses, such as /ts-test-1a2b3c4d."""
    return f"/ts-test-{uuid.uuid4().hex[:8]}"


@pytest.fixture
async def etcd_client(etcd: EtcdServer) -> AsyncIterator[aetcd.Client]:
    """An aetcd client connected to the session etcd."""
    async with aetcd.Client(etcd.config.host, etcd.config.client_port, timeout=10) as client:
        yield client


@pytest.fixture
def components(
    etcd: EtcdServer, etcd_prefix: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Components]:
    """The processes of one test; all are stopped at teardown, in reverse start order."""
    started = Components(log_dir=tmp_path / "logs", etcd_endpoint=etcd.endpoint, prefix=etcd_prefix)
    request.node.stash[_COMPONENTS] = started
    yield started
    started.stop_all()


@pytest.fixture
def start_coordinator(components: Components) -> Callable[..., ProcessHandle]:
    """Factory: `start_coordinator(**flags)` starts a coordinator and waits until it serves."""
    return components.start_coordinator


@pytest.fixture
def start_agent(components: Components) -> Callable[..., AgentHandle]:
    """Factory: `start_agent(**flags)` starts an agent and waits until it is registered."""
    return components.start_agent


@pytest.fixture
def start_gateway(components: Components) -> Callable[..., ProcessHandle]:
    """Factory: `start_gateway(**flags)` starts a gateway and waits until /health returns 200."""
    return components.start_gateway


@pytest.fixture
def stack(components: Components) -> Iterator[Stack]:
    """A coordinator, an agent and a gateway on this test's prefix, with fast test timings."""
    coordinator = components.start_coordinator()
    agent = components.start_agent()
    gateway = components.start_gateway()
    with ApiClient(gateway.url) as api:
        yield Stack(coordinator=coordinator, agent=agent, gateway=gateway, api=api)
