"""The processes of one benchmark scenario: etcd, coordinators and agents on loopback.

Each process gets free ports, a log file under the scenario's folder and
a process group of its own, so a Ctrl-C reaches only the benchmark,
which then stops everything in reverse start order. `Cluster.close` runs
on every exit path, errors and cancellation included.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import rss_bytes
from taskscheduler.devstack import component_command, probe_grpc_health, probe_worker_registered
from taskscheduler.etcd_server import (
    EtcdConfig,
    etcd_command,
    find_etcd_binary,
    probe_etcd,
    read_log_tail,
    stop_process,
)
from taskscheduler.ports import LOOPBACK, find_free_ports

READY_TIMEOUT_S = 60.0
_PROBE_INTERVAL_S = 0.2


class ClusterError(RuntimeError):
    """A benchmark process exited or was not ready in time; the message ends with its log."""


class Child:
    """One process started by the benchmark, with its output in one log file."""

    def __init__(self, *, name: str, argv: Sequence[str], log_path: Path, address: str = ""):
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.address = address
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def launch(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            log_file.write(f"=== {self.name}: {' '.join(self.argv)}\n".encode())
            log_file.flush()
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
                process_group=0,
            )

    async def wait_ready(
        self, probe: Callable[[], Awaitable[object]], timeout_s: float = READY_TIMEOUT_S
    ) -> None:
        """Return once `probe` succeeds; raise ClusterError on exit or after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if not self.running:
                raise self.failure("exited before it was ready")
            try:
                await asyncio.wait_for(probe(), timeout=5.0)
            except Exception as error:
                # Any probe error means "not yet"; the last one is reported at the deadline.
                last_error = error
                await asyncio.sleep(_PROBE_INTERVAL_S)
            else:
                return
        raise self.failure(f"was not ready within {timeout_s:g} s (last check: {last_error!r})")

    def rss_bytes(self) -> int | None:
        """Resident memory now, in bytes; None when the process is not running."""
        return rss_bytes(self.pid) if self.running else None

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop with SIGTERM, and SIGKILL after `timeout_s`."""
        if self._process is not None:
            stop_process(self._process, timeout_s)

    def kill(self) -> None:
        """SIGKILL the process, as a crash would, and reap it."""
        if self._process is not None and self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL)
            self._process.wait()

    def failure(self, reason: str) -> ClusterError:
        code = None if self._process is None else self._process.poll()
        return ClusterError(
            f"{self.name} {reason} (exit code {code}); last lines of {self.log_path}:\n"
            f"{read_log_tail(self.log_path, 30)}"
        )


@dataclass(frozen=True, kw_only=True)
class AgentSettings:
    capabilities: str
    max_concurrent: int
    # Teardown only: noop and `true` attempts end at once, so a short grace costs nothing.
    shutdown_grace_s: float = 5.0

    def flags(self) -> list[str]:
        return [
            *("--capabilities", self.capabilities),
            *("--max-concurrent", str(self.max_concurrent)),
            *("--shutdown-grace-s", f"{self.shutdown_grace_s:g}"),
        ]


def flag_list(flags: Mapping[str, object]) -> list[str]:
    """Turn {"history_max_runs": 5} into ["--history-max-runs", "5"]."""
    argv: list[str] = []
    for key, value in flags.items():
        argv += ["--" + key.replace("_", "-"), str(value)]
    return argv


class Cluster:
    """The processes of one scenario, stopped in reverse start order by `close`."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.children: list[Child] = []
        self.etcd_endpoint = ""

    async def __aenter__(self) -> Cluster:
        return self

    async def __aexit__(self, *_exc_info: object) -> None:
        self.close()

    async def start_etcd(self) -> Child:
        """Start a single-member etcd with fsync on and its data on disk under the work folder."""
        client_port, peer_port = find_free_ports(2)
        config = EtcdConfig(
            data_dir=self.work_dir / "etcd", client_port=client_port, peer_port=peer_port
        )
        child = self._launch("etcd", etcd_command(find_etcd_binary(), config))
        await child.wait_ready(lambda: probe_etcd(LOOPBACK, client_port))
        self.etcd_endpoint = config.client_endpoint
        return child

    async def start_coordinator(
        self,
        number: int,
        flags: Mapping[str, object],
        *,
        cprofile_output: Path | None = None,
    ) -> Child:
        """Start coordinator replica `number` with `flags` on a free port; wait until it serves.

        With `cprofile_output` it runs under cProfile, which writes that
        file when the coordinator exits on SIGTERM.
        """
        (port,) = find_free_ports(1)
        address = f"{LOOPBACK}:{port}"
        command = component_command("coordinator")
        if cprofile_output is not None:
            command = [sys.executable, "-m", "cProfile", "-o", str(cprofile_output)]
            command += ["-m", "taskscheduler.coordinator.main"]
        argv = [
            *command,
            *("--listen", address, "--etcd", self.etcd_endpoint),
            *("--coordinator-id", f"bench-coordinator-{number}"),
            *flag_list(flags),
        ]
        child = self._launch(f"coordinator-{number}", argv, address=address)
        await child.wait_ready(lambda: probe_grpc_health(address))
        return child

    async def start_agent(
        self, number: int, coordinators: Sequence[str], settings: AgentSettings
    ) -> Child:
        """Start agent `number` on `coordinators`; wait until the leader lists it as registered."""
        worker_id = f"bench-agent-{number}"
        argv = [
            *component_command("agent"),
            *("--coordinators", ",".join(coordinators), "--worker-id", worker_id),
            *settings.flags(),
        ]
        since = datetime.now(UTC)
        child = self._launch(f"agent-{number}", argv)
        await child.wait_ready(
            lambda: _registered_anywhere(coordinators, worker_id, since),
        )
        return child

    def close(self) -> None:
        """Stop every process, newest first; a process that ignores SIGTERM is killed."""
        while self.children:
            self.children.pop().stop()

    def _launch(self, name: str, argv: Sequence[str], address: str = "") -> Child:
        child = Child(name=name, argv=argv, log_path=self.work_dir / f"{name}.log", address=address)
        # Registered before launch, so that `close` stops it whatever happens next.
        self.children.append(child)
        child.launch()
        return child


async def _registered_anywhere(
    coordinators: Sequence[str], worker_id: str, since: datetime
) -> None:
    errors = []
    for address in coordinators:
        try:
            await probe_worker_registered(address, worker_id, since)
        except Exception as error:
            errors.append(f"{address}: {error!r}")
        else:
            return
    raise ConnectionError("; ".join(errors))
