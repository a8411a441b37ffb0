"""The taskscheduler-gateway command as a process: start, signals, port taken, bad flags."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from taskscheduler.gateway.main import split_host_port

STARTUP_DEADLINE_S = 20.0
EXIT_DEADLINE_S = 15.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def gateway_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "taskscheduler.gateway.main", *args]


@pytest.fixture
def dead_coordinator() -> str:
    return f"127.0.0.1:{free_port()}"


@pytest.fixture
def running_gateway(dead_coordinator: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = free_port()
    process = subprocess.Popen(
        gateway_command(
            "--listen",
            f"127.0.0.1:{port}",
            "--coordinators",
            dead_coordinator,
            "--log-format",
            "json",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(process, port)
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=EXIT_DEADLINE_S)


def wait_until_serving(process: subprocess.Popen[str], port: int) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"gateway exited early with status {process.returncode}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/openapi.json", timeout=0.5)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise AssertionError(f"gateway did not serve on port {port} within {STARTUP_DEADLINE_S} s")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_gateway_cleanly(
    running_gateway: tuple[subprocess.Popen[str], int], sig: signal.Signals
) -> None:
    process, port = running_gateway
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=10)

    process.send_signal(sig)
    _, stderr = process.communicate(timeout=EXIT_DEADLINE_S)

    assert health.status_code == 503
    assert health.json()["error"]["code"] == "UNAVAILABLE"
    assert process.returncode == 0
    assert '"event": "gateway stopped"' in stderr
    assert "Traceback" not in stderr


def test_port_taken_exits_with_one_line(dead_coordinator: str) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]

        result = subprocess.run(
            gateway_command("--listen", f"127.0.0.1:{port}", "--coordinators", dead_coordinator),
            capture_output=True,
            text=True,
            timeout=STARTUP_DEADLINE_S,
        )

    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"taskscheduler-gateway: cannot listen on 127.0.0.1:{port}: Address already in use"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--listen", "8080"],
            "argument --listen: '8080' is not HOST:PORT, such as 127.0.0.1:8080",
        ),
        (
            ["--coordinators", "a:1,b"],
            "argument --coordinators: 'b' is not HOST:PORT, such as 127.0.0.1:8080",
        ),
        (["--coordinators", "a:0"], "argument --coordinators: 'a:0' has no port from 1 to 65535"),
        (
            ["--coordinators", "a:1", "--log-format", "xml"],
            "argument --log-format: invalid choice: 'xml'",
        ),
        ([], "--coordinators is required (or set TASKSCHEDULER_COORDINATORS)"),
    ],
)
def test_bad_flag_exits_2_with_one_line(args: list[str], message: str) -> None:
    env = {
        name: value for name, value in os.environ.items() if not name.startswith("TASKSCHEDULER_")
    }
    result = subprocess.run(
        gateway_command(*args), capture_output=True, text=True, timeout=30, env=env
    )
    lines = result.stderr.splitlines()

    assert result.returncode == 2
    assert len(lines) == 1
    # argparse words its own messages differently across Python versions; the start is stable.
    assert lines[0].startswith(f"taskscheduler-gateway: error: {message}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:9000", ("::1", 9000)),
    ],
)
def test_split_host_port(value: str, expected: tuple[str, int]) -> None:
    assert split_host_port(value) == expected
