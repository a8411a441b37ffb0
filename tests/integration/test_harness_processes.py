"""Process handles, waiting helpers and flag building of the test harness."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from harness import ProcessHandle, ProcessStartError, flags_to_argv, wait_until, wait_until_async

from taskscheduler.etcd_server import stop_process

# Prints its pid, writes it to the ready file, then waits; "ignore" makes it ignore SIGTERM.
STANDIN_SOURCE = """
import os, pathlib, signal, sys, time
if sys.argv[2] == "ignore":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("started", os.getpid(), flush=True)
pathlib.Path(sys.argv[1]).write_text(str(os.getpid()))
while True:
    time.sleep(0.05)
"""


def _standin(tmp_path: Path, *, on_sigterm: str = "exit") -> ProcessHandle:
    """A handle that is ready once the ready file contains the pid of its current process."""
    ready_file = tmp_path / "ready"

    def probe(_started_at: float) -> None:
        if not ready_file.exists() or ready_file.read_text() != str(handle.pid):
            raise FileNotFoundError(ready_file)

    handle = ProcessHandle(
        name="standin",
        argv=[sys.executable, "-c", STANDIN_SOURCE, str(ready_file), on_sigterm],
        log_path=tmp_path / "standin.log",
        probe=probe,
        stop_timeout_s=0.5,
    )
    return handle


def _never_ready(error: Exception) -> Callable[[float], None]:
    def probe(_started_at: float) -> None:
        raise error

    return probe


def _process_state(pid: int) -> str:
    # The state letter follows the command name in parentheses.
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


@pytest.fixture
def standin(tmp_path: Path) -> Iterator[ProcessHandle]:
    handle = _standin(tmp_path)
    yield handle
    handle.stop()


@pytest.mark.integration
def test_handle_start_logs_and_stop(standin) -> None:
    handle = standin

    handle.start()
    pid = handle.pid
    code = handle.stop()

    assert code == -signal.SIGTERM
    assert handle.returncode == code
    assert handle.is_running is False
    assert f"started {pid}" in handle.logs()
    assert handle.logs().startswith(f"=== standin: {sys.executable} -c")


@pytest.mark.integration
def test_handle_pause_and_resume(standin) -> None:
    handle = standin
    handle.start()

    handle.pause()
    wait_until(lambda: _process_state(handle.pid) == "T", timeout_s=5, message="stopped state")
    handle.resume()
    wait_until(lambda: _process_state(handle.pid) != "T", timeout_s=5, message="running state")

    assert handle.is_running


@pytest.mark.integration
def test_handle_stop_continues_paused_process(standin) -> None:
    handle = standin
    handle.start()
    handle.pause()

    code = handle.stop(timeout_s=5)

    assert code == -signal.SIGTERM


@pytest.mark.integration
def test_handle_kill_and_restart(standin) -> None:
    handle = standin
    handle.start()
    first_pid = handle.pid

    assert handle.kill() == -signal.SIGKILL
    handle.restart()

    assert handle.pid != first_pid
    assert handle.is_running
    assert handle.logs().count("=== standin:") == 2
    assert f"started {handle.pid}" in handle.log_tail(2)


@pytest.mark.integration
def test_handle_sigkills_after_stop_timeout(tmp_path: Path) -> None:
    handle = _standin(tmp_path, on_sigterm="ignore")
    handle.start()

    assert handle.stop() == -signal.SIGKILL


@pytest.mark.integration
def test_handle_start_fails_when_never_ready(tmp_path: Path) -> None:
    handle = ProcessHandle(
        name="silent",
        argv=[sys.executable, "-c", "import time; print('waiting', flush=True); time.sleep(30)"],
        log_path=tmp_path / "silent.log",
        probe=_never_ready(ConnectionError("refused")),
        ready_timeout_s=0.5,
    )
    try:
        with pytest.raises(ProcessStartError) as caught:
            handle.start()
    finally:
        handle.stop()

    message = str(caught.value)
    assert message.startswith(
        "silent was not ready within 0.5 s (last probe error: ConnectionError('refused'))"
    )
    assert message.endswith("waiting\n")


@pytest.mark.integration
def test_handle_start_fails_when_process_exits(tmp_path: Path) -> None:
    handle = ProcessHandle(
        name="crashing",
        argv=[sys.executable, "-c", "import sys; sys.exit('bad flag --x')"],
        log_path=tmp_path / "crashing.log",
        probe=_never_ready(OSError("not yet")),
    )

    with pytest.raises(ProcessStartError, match="crashing exited with code 1 before it was ready"):
        handle.start()

    assert handle.logs().endswith("bad flag --x\n")


@pytest.mark.integration
def test_stop_process_returns_code_of_exited_process() -> None:
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(4)"])
    process.wait(timeout=10)

    assert stop_process(process, timeout_s=1) == 4


@pytest.mark.parametrize(
    ("flags", "argv"),
    [
        ({"lease_ttl_s": 3}, ["--lease-ttl-s", "3"]),
        ({"heartbeat_interval_s": 0.5}, ["--heartbeat-interval-s", "0.5"]),
        ({"verbose": True, "quiet": False, "worker_id": None}, ["--verbose"]),
        ({"capabilities": ["shell", "http"]}, ["--capabilities", "shell,http"]),
        ({"labels": {"zone": "a", "tier": "gpu"}}, ["--labels", "zone=a,tier=gpu"]),
        ({"prefix": "/ts-1", "log_format": "json"}, ["--prefix", "/ts-1", "--log-format", "json"]),
    ],
    ids=["int", "float", "booleans-and-none", "list", "dict", "strings"],
)
def test_flags_to_argv(flags: dict[str, object], argv: list[str]) -> None:
    assert flags_to_argv(flags) == argv


def test_wait_until_returns_truthy_value() -> None:
    values = iter([0, None, [], "found"])

    assert wait_until(lambda: next(values), timeout_s=5, interval_s=0.001) == "found"


def test_wait_until_reports_last_value() -> None:
    started = time.monotonic()

    with pytest.raises(AssertionError) as caught:
        wait_until(lambda: [], timeout_s=0.05, interval_s=0.01, message="queue drained")

    assert str(caught.value) == "queue drained: not met within 0.05 s; last value: []"
    assert time.monotonic() - started < 1


def test_wait_until_reports_last_exception() -> None:
    def probe() -> bool:
        raise ConnectionError("refused")

    with pytest.raises(AssertionError) as caught:
        wait_until(probe, timeout_s=0.05, interval_s=0.01, message="gateway up")

    assert str(caught.value) == (
        "gateway up: not met within 0.05 s; last value: ConnectionError('refused')"
    )


async def test_wait_until_async_awaits_predicate() -> None:
    calls = 0

    async def ready() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        return calls if calls >= 3 else 0

    assert await wait_until_async(ready, timeout_s=5, interval_s=0.001) == 3


async def test_wait_until_async_times_out() -> None:
    with pytest.raises(AssertionError, match=r"^leader elected: not met within 0\.05 s"):
        await wait_until_async(
            lambda: False, timeout_s=0.05, interval_s=0.01, message="leader elected"
        )
