"""The dev supervisor with stand-in children, and a real etcd where the case needs one."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from harness import wait_until, wait_until_async
from harness.standins import etcd_child, standin_child, stopped_order

from taskscheduler.devstack import ChildSpec, Supervisor

pytestmark = pytest.mark.integration

STANDINS_SCRIPT = Path(__file__).parents[1] / "harness" / "standins.py"


def _assert_gone(pids: dict[str, int]) -> None:
    for pid in pids.values():
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


async def _run_until_ready(
    supervisor: Supervisor,
) -> tuple[asyncio.Task[int], asyncio.Event]:
    ready = asyncio.Event()
    running = asyncio.create_task(supervisor.run(on_ready=ready.set))
    await wait_until_async(ready.is_set, timeout_s=20, message="supervisor ready")
    return running, ready


async def test_stop_request_stops_children_in_reverse(tmp_path: Path, etcd_binary: Path) -> None:
    output = io.BytesIO()
    children = [
        etcd_child(etcd_binary, tmp_path),
        standin_child("first", tmp_path),
        standin_child("second", tmp_path),
    ]
    supervisor = Supervisor(children, log_dir=tmp_path / "logs", output=output)

    running, _ = await _run_until_ready(supervisor)
    pids = supervisor.pids
    supervisor.request_stop()
    code = await asyncio.wait_for(running, timeout=20)

    assert code == 0
    assert supervisor.failure is None
    assert list(pids) == ["etcd", "first", "second"]
    assert stopped_order(tmp_path) == ["second", "first"]
    _assert_gone(pids)
    assert b"first       | first started\n" in output.getvalue()
    assert b"etcd " not in output.getvalue()
    assert "first started" in (tmp_path / "logs" / "first.log").read_text()
    assert "starting an etcd server" in (tmp_path / "logs" / "etcd.log").read_text()


async def test_dying_child_stops_the_others(tmp_path: Path) -> None:
    children = [standin_child(name, tmp_path) for name in ("first", "second", "third")]
    supervisor = Supervisor(children, log_dir=tmp_path / "logs", output=io.BytesIO())

    running, _ = await _run_until_ready(supervisor)
    pids = supervisor.pids
    (tmp_path / "second.die").touch()
    code = await asyncio.wait_for(running, timeout=20)

    assert code == 1
    assert supervisor.failure == (
        f"second exited unexpectedly (exit code 3); see {tmp_path / 'logs' / 'second.log'}"
    )
    assert stopped_order(tmp_path) == ["third", "first"]
    _assert_gone(pids)


async def test_child_never_ready_fails_startup(tmp_path: Path) -> None:
    children = [
        standin_child("first", tmp_path),
        standin_child("stuck", tmp_path, never_ready=True, ready_timeout_s=0.5),
        standin_child("never-started", tmp_path),
    ]
    supervisor = Supervisor(children, log_dir=tmp_path / "logs", output=io.BytesIO())

    code = await asyncio.wait_for(supervisor.run(), timeout=20)

    assert code == 1
    assert supervisor.failure is not None
    assert supervisor.failure.startswith("stuck did not become ready within 0.5 s")
    assert stopped_order(tmp_path) == ["stuck", "first"]
    assert not (tmp_path / "never-started.ready").exists()


async def test_child_exiting_during_startup_fails(tmp_path: Path) -> None:
    crashing = ChildSpec(
        name="crashing",
        argv=[sys.executable, "-c", "import sys; print('bad flag'); sys.exit(2)"],
        probe=standin_child("unused", tmp_path).probe,
        echo=False,
    )
    output = io.BytesIO()
    supervisor = Supervisor([crashing], log_dir=tmp_path / "logs", output=output)

    code = await asyncio.wait_for(supervisor.run(), timeout=20)

    assert code == 1
    assert supervisor.failure == (
        f"crashing exited unexpectedly (exit code 2); see {tmp_path / 'logs' / 'crashing.log'}"
    )
    # Output of a child that is not echoed is shown when it fails.
    assert output.getvalue() == b"crashing    | bad flag\n"


async def test_child_ignoring_sigterm_is_killed(tmp_path: Path) -> None:
    children = [standin_child("stubborn", tmp_path, ignore_sigterm=True)]
    supervisor = Supervisor(
        children, log_dir=tmp_path / "logs", output=io.BytesIO(), stop_timeout_s=0.5
    )

    running, _ = await _run_until_ready(supervisor)
    pid = supervisor.pids["stubborn"]
    supervisor.request_stop()
    code = await asyncio.wait_for(running, timeout=20)

    assert code == 0
    assert stopped_order(tmp_path) == ["stubborn"]
    _assert_gone({"stubborn": pid})


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_stops_supervisor_cleanly(
    tmp_path: Path, etcd_binary: Path, signum: signal.Signals
) -> None:
    supervisor = subprocess.Popen(
        [sys.executable, str(STANDINS_SCRIPT), str(tmp_path), str(etcd_binary)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        pids_file = tmp_path / "pids.json"
        wait_until(pids_file.exists, timeout_s=20, message="stand-in stack ready")
        pids = json.loads(pids_file.read_text())

        supervisor.send_signal(signum)
        output, _ = supervisor.communicate(timeout=20)
    finally:
        supervisor.kill()

    assert supervisor.returncode == 0, output.decode()
    assert list(pids) == ["etcd", "first", "second"]
    assert stopped_order(tmp_path) == ["second", "first"]
    _assert_gone(pids)
    assert b"child stopped" in output
