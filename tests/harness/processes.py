"""Handles on real processes started by integration tests.

A handle starts its process with output appended to one log file, waits
until a readiness probe passes, and offers the operations chaos tests
need: stop, kill, pause, resume, restart.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from taskscheduler.etcd_server import read_log_tail, stop_process


class ProcessStartError(AssertionError):
    """A process exited or failed its readiness probe before its deadline; ends with its log."""


class ProcessHandle:
    """One test process: its command, log file and readiness probe.

    `probe` is called with the time the current process was started
    (time.time()) and raises until the process is ready.
    """

    def __init__(
        self,
        *,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        probe: Callable[[float], None],
        address: str | None = None,
        env: Mapping[str, str] | None = None,
        ready_timeout_s: float = 30.0,
        stop_timeout_s: float = 10.0,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.address = address
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self._probe = probe
        # Debug level: tests read per-run lines (such as "attempt started") from the logs.
        self._env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "TASKSCHEDULER_LOG_LEVEL": "debug",
            **(env or {}),
        }
        self._process: subprocess.Popen[bytes] | None = None
        self._started_at = 0.0

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} pid={self.pid_or_none} address={self.address}>"

    @property
    def url(self) -> str:
        """`http://` + address, for processes that serve HTTP."""
        if self.address is None:
            raise AttributeError(f"{self.name} listens on no address")
        return f"http://{self.address}"

    @property
    def pid(self) -> int:
        return self._current().pid

    @property
    def pid_or_none(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def returncode(self) -> int | None:
        """Exit code once the process has exited, negative for a signal; None while it runs."""
        return None if self._process is None else self._process.poll()

    @property
    def is_running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> ProcessHandle:
        """Start the process and wait until its probe passes; raise ProcessStartError if not."""
        if self.is_running:
            raise RuntimeError(f"{self.name} is already running with pid {self.pid}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log_file:
            log_file.write(f"=== {self.name}: {' '.join(self.argv)}\n".encode())
            log_file.flush()
            self._started_at = time.time()
            self._process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env,
            )
        self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float | None = None) -> None:
        """Return once the readiness probe passes; raise ProcessStartError on exit or timeout."""
        timeout_s = self.ready_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout_s
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            code = self._current().poll()
            if code is not None:
                raise self._start_error(f"exited with code {code} before it was ready")
            try:
                self._probe(self._started_at)
            except Exception as error:
                last_error = error
                time.sleep(0.1)
            else:
                return
        raise self._start_error(
            f"was not ready within {timeout_s} s (last probe error: {last_error!r})"
        )

    def stop(self, timeout_s: float | None = None) -> int | None:
        """Stop with SIGTERM, or SIGKILL after `timeout_s`; return the exit code."""
        if self._process is None:
            return None
        return stop_process(self._process, self.stop_timeout_s if timeout_s is None else timeout_s)

    def kill(self) -> int:
        """Kill with SIGKILL, as a crash would, and return the exit code."""
        process = self._current()
        if process.poll() is None:
            process.kill()
        return process.wait()

    def pause(self) -> None:
        """Freeze the process with SIGSTOP; it keeps its sockets but does nothing."""
        self._current().send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Continue the process after `pause`."""
        self._current().send_signal(signal.SIGCONT)

    def restart(self) -> ProcessHandle:
        """Stop the process if it runs, start it again with the same command, and wait."""
        self.stop()
        return self.start()

    def logs(self) -> str:
        """Return the whole log file: every start of this handle, in order."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def log_tail(self, max_lines: int = 100) -> str:
        return read_log_tail(self.log_path, max_lines)

    def _current(self) -> subprocess.Popen[bytes]:
        if self._process is None:
            raise RuntimeError(f"{self.name} has not been started")
        return self._process

    def _start_error(self, reason: str) -> ProcessStartError:
        return ProcessStartError(
            f"{self.name} {reason}; last lines of {self.log_path}:\n{self.log_tail(60)}"
        )


class AgentHandle(ProcessHandle):
    """A handle on an agent, which listens on no address and is known by its worker id."""

    def __init__(self, *, worker_id: str, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.worker_id = worker_id
