"""The etcd fixtures: a session etcd reached with aetcd, private servers for chaos tests."""

from __future__ import annotations

import signal
from collections.abc import Callable

import aetcd
import pytest

from taskscheduler.etcd_server import EtcdServer, EtcdStartError, probe_etcd

pytestmark = pytest.mark.integration


async def test_session_etcd_stores_keys_under_prefix(
    etcd_client: aetcd.Client, etcd_prefix: str
) -> None:
    key = f"{etcd_prefix}/greeting".encode()

    await etcd_client.put(key, b"hello")
    stored = await etcd_client.get(key)
    listed = [item.key for item in await etcd_client.get_prefix(etcd_prefix.encode())]

    assert stored is not None
    assert stored.value == b"hello"
    assert listed == [key]


def test_etcd_prefixes_differ_between_tests(etcd_prefix: str) -> None:
    assert etcd_prefix.startswith("/ts-test-")
    assert len(etcd_prefix) == len("/ts-test-") + 8


def test_session_etcd_runs_with_dev_flags(etcd: EtcdServer) -> None:
    log = etcd.log_tail(400)

    assert '"auto-compaction-mode":"periodic"' in log
    assert '"auto-compaction-retention":"5m0s"' in log
    assert etcd.returncode is None


async def test_paused_etcd_stops_responding(start_etcd: Callable[[], EtcdServer]) -> None:
    server = start_etcd()

    server.pause()
    with pytest.raises(EtcdStartError, match=r"did not respond within 1\.0 s"):
        await server.wait_ready(timeout_s=1.0)
    server.resume()
    await server.wait_ready(timeout_s=10.0)

    await probe_etcd(server.config.host, server.config.client_port)


async def test_killed_etcd_fails_readiness_with_log(
    start_etcd: Callable[[], EtcdServer],
) -> None:
    server = start_etcd()

    code = server.kill()
    with pytest.raises(EtcdStartError, match="exited with code -9 before it responded") as caught:
        await server.wait_ready(timeout_s=5.0)

    assert code == -signal.SIGKILL
    assert server.returncode == -signal.SIGKILL
    assert "last lines of" in str(caught.value)
    assert "starting an etcd server" in str(caught.value)


def test_stopped_etcd_keeps_data_across_restart(start_etcd: Callable[[], EtcdServer]) -> None:
    server = start_etcd()
    data_dir = server.config.data_dir

    assert server.stop() == -signal.SIGTERM
    server.start()

    assert server.returncode is None
    assert (data_dir / "member").is_dir()
