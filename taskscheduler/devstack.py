"""The `taskscheduler dev` stack: etcd, one coordinator, one agent and the gateway on loopback.

`Supervisor` starts child processes in order, waits for each to be ready,
copies their output to the terminal and to one log file per child, and
stops them in reverse order on SIGINT or SIGTERM. When a child exits on
its own it stops the others and returns a non-zero code. The process
list is injectable, so tests can supervise stand-in children.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from taskscheduler.errors import SchedulerError
from taskscheduler.etcd_server import (
    EtcdConfig,
    etcd_command,
    find_etcd_binary,
    probe_etcd,
    read_log_tail,
)
from taskscheduler.logs import get_logger
from taskscheduler.ports import LOOPBACK
from taskscheduler.v1 import workers_pb2, workers_pb2_grpc

if TYPE_CHECKING:
    from taskscheduler.cli import DevConfig

log = get_logger(__name__)

DEV_WORKER_ID = "dev-agent"
_READ_CHUNK_BYTES = 65536
_PROBE_INTERVAL_S = 0.2
_PUMP_DRAIN_TIMEOUT_S = 2.0
_FAILURE_TAIL_LINES = 20


class ChildFailedError(SchedulerError):
    """A supervised child exited on its own or did not become ready in time."""


# --- Commands and readiness probes ---------------------------------------------


def component_command(component: str) -> list[str]:
    """Return the command that runs `taskscheduler-<component>` with this interpreter.

    The console script beside sys.executable is preferred because process
    listings then show its name. Without it, the same entry point runs
    through `python -c`.
    """
    script = Path(sys.executable).parent / f"taskscheduler-{component}"
    if script.exists():
        return [str(script)]
    entry_point = f"import sys; from taskscheduler.{component}.main import main; sys.exit(main())"
    return [sys.executable, "-c", entry_point]


async def probe_grpc_health(address: str, timeout_s: float = 1.0) -> None:
    """Return once grpc.health.v1.Health/Check for service "" at `address` reports SERVING."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        response = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        raise ConnectionError(f"health check at {address} reports {status}")


async def probe_worker_registered(
    coordinator_address: str, worker_id: str, since: datetime, timeout_s: float = 1.0
) -> None:
    """Return once the coordinator lists `worker_id` as registered or heartbeating after `since`.

    The time check keeps a record left in etcd by an earlier agent with the
    same id from counting as this agent.
    """
    async with grpc.aio.insecure_channel(coordinator_address) as channel:
        stub = workers_pb2_grpc.WorkerServiceStub(channel)
        response = await stub.GetWorker(
            workers_pb2.GetWorkerRequest(worker_id=worker_id), timeout=timeout_s
        )
    worker = response.worker
    seen_at = max(
        worker.registered_at.ToDatetime(tzinfo=UTC),
        worker.last_heartbeat_at.ToDatetime(tzinfo=UTC),
    )
    if seen_at < since:
        raise ConnectionError(
            f"worker {worker_id!r} was last seen at {seen_at.isoformat()}, "
            f"before this agent started at {since.isoformat()}"
        )


async def probe_http_ok(url: str, timeout_s: float = 1.0) -> None:
    """Return once GET `url` returns status 200."""
    async with httpx.AsyncClient(timeout=timeout_s) as client:
        response = await client.get(url)
    if response.status_code != 200:
        raise ConnectionError(f"GET {url} returned {response.status_code}")


# --- Supervisor -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class ChildSpec:
    """One supervised child: its command and how to tell that it is ready."""

    name: str
    argv: Sequence[str]
    # Raises until the child is ready; each call gets its own short deadline.
    probe: Callable[[], Awaitable[None]]
    ready_timeout_s: float = 30.0
    env: Mapping[str, str] = field(default_factory=dict)
    # False sends the output only to the log file; the supervisor then shows
    # its last lines when the child fails.
    echo: bool = True


def describe_exit(code: int) -> str:
    """Describe a Popen-style return code, where a negative code is the signal that ended it."""
    if code < 0:
        return f"signal {signal.Signals(-code).name}"
    return f"exit code {code}"


def _prefix(child: _Child) -> bytes:
    return f"{child.spec.name:<11} | ".encode()


class _Child:
    def __init__(self, spec: ChildSpec, process: asyncio.subprocess.Process, log_path: Path):
        self.spec = spec
        self.process = process
        self.log_path = log_path
        self.pump: asyncio.Task[None] | None = None


class Supervisor:
    """Start children in order, watch them, and stop them in reverse order.

    `run` returns 0 after a requested stop (SIGINT, SIGTERM or
    `request_stop`) and 1 when a child exits on its own or is not ready in
    time; `failure` then contains the one-line reason.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec],
        *,
        log_dir: Path,
        output: BinaryIO,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self._specs = list(children)
        self._log_dir = log_dir
        self._output = output
        self._stop_timeout_s = stop_timeout_s
        self._running: list[_Child] = []
        self._stop_requested = asyncio.Event()
        self._output_closed = False
        self.failure: str | None = None

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the children started so far, by name."""
        return {child.spec.name: child.process.pid for child in self._running}

    def request_stop(self) -> None:
        """Ask `run` to stop every child and return 0, as SIGINT does."""
        self._stop_requested.set()

    async def run(self, on_ready: Callable[[], None] | None = None) -> int:
        """Supervise the children until a stop is requested or one fails; return the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self.request_stop)
        try:
            return await self._run_until_stopped(on_ready)
        finally:
            await self._stop_all()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)

    async def _run_until_stopped(self, on_ready: Callable[[], None] | None) -> int:
        supervising = asyncio.create_task(self._start_and_watch(on_ready))
        stopping = asyncio.create_task(self._stop_requested.wait())
        await asyncio.wait({supervising, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()

        # A failure wins over a stop requested at the same moment.
        if supervising.done():
            try:
                supervising.result()
            except ChildFailedError as error:
                self.failure = str(error)
                log.error("child failed; stopping the others", reason=self.failure)
                return 1
        supervising.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await supervising
        log.info("stop requested; stopping children")
        return 0

    async def _start_and_watch(self, on_ready: Callable[[], None] | None) -> None:
        for spec in self._specs:
            child = await self._launch(spec)
            await self._race_with_exits(self._wait_ready(child))
        if on_ready is not None:
            on_ready()
        await self._race_with_exits(self._stop_requested.wait())

    async def _launch(self, spec: ChildSpec) -> _Child:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self._log_dir / f"{spec.name}.log"
        try:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1", **spec.env},
                # A process group of its own keeps the terminal's Ctrl-C away from
                # the child, so that only the supervisor decides the stop order.
                process_group=0,
            )
        except OSError as error:
            raise ChildFailedError(f"{spec.name} could not be started: {error}") from error
        child = _Child(spec, process, log_path)
        child.pump = asyncio.create_task(self._pump_output(child))
        self._running.append(child)
        log.info("child started", child=spec.name, pid=process.pid, log_file=str(log_path))
        return child

    async def _wait_ready(self, child: _Child) -> None:
        spec = child.spec
        deadline = time.monotonic() + spec.ready_timeout_s
        last_error: Exception | None = None
        while (remaining_s := deadline - time.monotonic()) > 0:
            try:
                await asyncio.wait_for(spec.probe(), timeout=remaining_s)
            except Exception as error:
                # Any probe error means "not yet"; the last one is reported at the deadline.
                last_error = error
                await asyncio.sleep(_PROBE_INTERVAL_S)
            else:
                log.info("child ready", child=spec.name, pid=child.process.pid)
                return
        raise self._failure(
            child,
            f"did not become ready within {spec.ready_timeout_s} s (last check: {last_error!r})",
        )

    async def _race_with_exits(self, work: Awaitable[object]) -> None:
        """Await `work`, raising ChildFailedError as soon as any running child exits."""
        work_task = asyncio.ensure_future(work)
        exits = {asyncio.create_task(child.process.wait()): child for child in self._running}
        try:
            done, _ = await asyncio.wait({work_task, *exits}, return_when=asyncio.FIRST_COMPLETED)
            for exit_task, child in exits.items():
                if exit_task in done:
                    reason = f"exited unexpectedly ({describe_exit(exit_task.result())})"
                    raise self._failure(child, reason)
            work_task.result()
        finally:
            for task in (work_task, *exits):
                task.cancel()

    def _failure(self, child: _Child, reason: str) -> ChildFailedError:
        if not child.spec.echo:
            tail = read_log_tail(child.log_path, _FAILURE_TAIL_LINES).splitlines()
            self._write_lines(_prefix(child), [line.encode() for line in tail])
        return ChildFailedError(f"{child.spec.name} {reason}; see {child.log_path}")

    async def _pump_output(self, child: _Child) -> None:
        """Copy the child's output to its log file, and line by line with a prefix to `output`."""
        assert child.process.stdout is not None
        prefix = _prefix(child)
        pending = b""
        with child.log_path.open("ab") as log_file:
            while chunk := await child.process.stdout.read(_READ_CHUNK_BYTES):
                log_file.write(chunk)
                log_file.flush()
                if child.spec.echo:
                    *lines, pending = (pending + chunk).split(b"\n")
                    self._write_lines(prefix, lines)
            if pending:
                self._write_lines(prefix, [pending])

    def _write_lines(self, prefix: bytes, lines: list[bytes]) -> None:
        if not lines or self._output_closed:
            return
        try:
            self._output.write(b"".join(prefix + line + b"\n" for line in lines))
            self._output.flush()
        except OSError as error:
            # A closed terminal must not stop the pumps, or the children
            # would block on full pipes; the log files still get everything.
            self._output_closed = True
            log.warning(
                "terminal output failed; children's output goes only to their logs",
                error=str(error),
            )

    async def _stop_all(self) -> None:
        while self._running:
            await self._stop_child(self._running.pop())

    async def _stop_child(self, child: _Child) -> None:
        process = child.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), self._stop_timeout_s)
            except TimeoutError:
                log.warning(
                    "child ignored SIGTERM; killing it",
                    child=child.spec.name,
                    timeout_s=self._stop_timeout_s,
                )
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        log.info("child stopped", child=child.spec.name, exit_code=process.returncode)

        # A grandchild that inherited the pipe could keep it open forever.
        if child.pump is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(child.pump, _PUMP_DRAIN_TIMEOUT_S)


# --- The dev stack ----------------------------------------------------------------


def dev_children(config: DevConfig, etcd_binary: Path | None = None) -> list[ChildSpec]:
    """Build the children of the dev stack in start order: etcd, coordinator, agent, gateway."""
    binary = etcd_binary or find_etcd_binary()
    etcd_config = EtcdConfig(
        data_dir=config.data_dir / "etcd",
        client_port=config.etcd_port,
        peer_port=config.etcd_peer_port,
        name="taskscheduler-dev",
    )
    started_at = datetime.now(UTC)
    coordinator = config.coordinator_address
    console = ["--log-format", "console"]
    timeout_s = config.ready_timeout_s
    return [
        ChildSpec(
            name="etcd",
            argv=etcd_command(binary, etcd_config),
            probe=lambda: probe_etcd(LOOPBACK, config.etcd_port),
            ready_timeout_s=timeout_s,
            # etcd logs several JSON lines a second while starting; they
            # would bury the scheduler's own lines, so they stay in the file.
            echo=False,
        ),
        ChildSpec(
            name="coordinator",
            argv=[
                *component_command("coordinator"),
                *("--listen", coordinator, "--etcd", config.etcd_endpoint),
                *console,
            ],
            probe=lambda: probe_grpc_health(coordinator),
            ready_timeout_s=timeout_s,
        ),
        ChildSpec(
            name="agent",
            argv=[
                *component_command("agent"),
                *("--coordinators", coordinator, "--worker-id", DEV_WORKER_ID),
                *("--max-concurrent", str(config.agent_concurrency)),
                # Shorter than the stop deadline, so the agent ends its attempts itself.
                *("--shutdown-grace-s", "5"),
                *console,
            ],
            probe=lambda: probe_worker_registered(coordinator, DEV_WORKER_ID, started_at),
            ready_timeout_s=timeout_s,
        ),
        ChildSpec(
            name="gateway",
            argv=[
                *component_command("gateway"),
                *("--listen", f"{LOOPBACK}:{config.gateway_port}", "--coordinators", coordinator),
                *console,
            ],
            probe=lambda: probe_http_ok(f"{config.gateway_url}/health"),
            ready_timeout_s=timeout_s,
        ),
    ]
