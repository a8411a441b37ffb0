"""Fixtures of the chaos tests: a private etcd the test may stop, and etcd clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aetcd
import pytest
from harness import Components

from taskscheduler.etcd_server import EtcdServer


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos: kills, pauses or cuts off real processes and checks what survives"
    )


@pytest.fixture
def private_etcd(start_etcd: Callable[[], EtcdServer], components: Components) -> EtcdServer:
    """A private etcd that this test's processes use instead of the session one.

    List it before `components` in a test's arguments: its `start_etcd` is then
    set up first, so teardown stops the processes first and etcd last.
    """
    server = start_etcd()
    components.etcd_endpoint = server.endpoint
    return server


@pytest.fixture
async def private_etcd_client(private_etcd: EtcdServer) -> AsyncIterator[aetcd.Client]:
    """An aetcd client connected to `private_etcd`."""
    config = private_etcd.config
    async with aetcd.Client(config.host, config.client_port, timeout=10) as client:
        yield client
