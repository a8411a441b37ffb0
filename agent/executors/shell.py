"""The `shell` executor: runs a command (an argv list, never through a shell).

Payload: {"command": ["argv0", "arg", ...], "env": {"K": "V"}, "cwd": "dir"}.
`command` is required; `env` is merged over the agent's environment; `cwd`
defaults to the agent's working directory. Exit code 0 is success.

The child starts in its own session, so it and everything it spawns share one
process group. On timeout or cancellation the group gets SIGTERM, then SIGKILL
after `kill_grace_s`. Members still running when the command exits are stopped
the same way. A process that calls setsid() itself leaves the group and is
out of reach.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.logs import get_logger

from .base import AttemptContext, AttemptOutcome, AttemptResult
from .output import OutputTail
from .payload import (
    optional_string,
    optional_string_map,
    payload_field,
    reject_unknown_keys,
)
from .process_group import terminate_group

_log = get_logger(__name__)

_PAYLOAD_KEYS = frozenset({"command", "env", "cwd"})
_READ_CHUNK_BYTES = 64 * 1024
# After the command has exited, how long the output pipe may stay open.
_OUTPUT_DRAIN_S = 1.0


@dataclass(frozen=True, slots=True)
class ShellPayload:
    command: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None


def parse_shell_payload(payload: Mapping[str, Any]) -> ShellPayload:
    """Validate a `shell` payload; InvalidArgumentError names the bad field."""
    reject_unknown_keys(payload, _PAYLOAD_KEYS)
    command = payload.get("command")
    if command is None:
        raise InvalidArgumentError(
            payload_field("command"), 'is required: a list such as ["echo", "hello"]'
        )
    if isinstance(command, str) or not isinstance(command, list | tuple) or not command:
        raise InvalidArgumentError(
            payload_field("command"),
            'must be a non-empty list of strings such as ["echo", "hello"]; '
            "it is not run through a shell",
        )
    for index, part in enumerate(command):
        if not isinstance(part, str):
            raise InvalidArgumentError(
                payload_field(f"command[{index}]"),
                f"must be a string, got {type(part).__name__}",
            )
    if not command[0]:
        raise InvalidArgumentError(payload_field("command[0]"), "must name a program")

    cwd = optional_string(payload, "cwd")
    if cwd is not None and not os.path.isdir(cwd):
        raise InvalidArgumentError(payload_field("cwd"), f"directory {cwd!r} does not exist")
    env = optional_string_map(payload, "env")
    for name in env:
        if not name or "=" in name or "\0" in name:
            raise InvalidArgumentError(
                payload_field("env"), f"{name!r} is not a valid environment variable name"
            )
    return ShellPayload(command=tuple(command), env=env, cwd=cwd or None)


def attempt_environment(attempt: AttemptContext, extra: Mapping[str, str]) -> dict[str, str]:
    """Build the child's environment: the agent's, then the payload's, then the attempt's ids."""
    env = dict(os.environ)
    env.update(extra)
    env.update(
        {
            "TASKSCHEDULER_FENCING_TOKEN": str(attempt.fencing_token),
            "TASKSCHEDULER_RUN_ID": attempt.run_id,
            "TASKSCHEDULER_ATTEMPT": str(attempt.attempt),
            "TASKSCHEDULER_JOB_ID": attempt.job_id,
        }
    )
    return env


class ShellExecutor:
    """Runs argv commands as child processes, keeping the last 64 KiB of stdout and stderr."""

    def __init__(self, *, kill_grace_s: float = 2.0) -> None:
        self._kill_grace_s = kill_grace_s

    async def execute(self, attempt: AttemptContext) -> AttemptResult:
        try:
            payload = parse_shell_payload(attempt.payload)
        except InvalidArgumentError as error:
            return AttemptResult.invalid_payload(error)

        # The agent owns the output pipe instead of asyncio, because
        # Process.wait() would otherwise also wait for every process that
        # inherited the pipe, and a background grandchild would hold it open.
        read_fd, write_fd = os.pipe()
        try:
            started = await _spawn(payload, attempt, write_fd)
        finally:
            os.close(write_fd)
        if isinstance(started, AttemptResult):
            os.close(read_fd)
            return started
        return await self._supervise(started, attempt, read_fd)

    async def _supervise(
        self, process: asyncio.subprocess.Process, attempt: AttemptContext, read_fd: int
    ) -> AttemptResult:
        # The child leads its own session, so its pid is also the process group id.
        group_id = process.pid
        tail = OutputTail()
        reader: asyncio.Task[None] | None = None
        timed_out = False
        try:
            reader = await _start_reading(read_fd, tail)
            async with asyncio.timeout(attempt.timeout_s):
                await process.wait()
        except TimeoutError:
            timed_out = True
        finally:
            # Runs on normal exit, on timeout and on cancellation alike.
            await terminate_group(group_id, grace_s=self._kill_grace_s)
            if process.returncode is None:
                # The child left its process group (setpgid), so kill it by pid.
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
            await process.wait()
            if reader is not None:
                await _finish_reading(reader)

        return _result_of(process.returncode, tail, attempt, timed_out)


async def _spawn(
    payload: ShellPayload, attempt: AttemptContext, output_fd: int
) -> asyncio.subprocess.Process | AttemptResult:
    """Start the command with stdout and stderr on `output_fd`, or return why it cannot start."""
    program = payload.command[0]
    try:
        return await asyncio.create_subprocess_exec(
            *payload.command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=output_fd,
            stderr=asyncio.subprocess.STDOUT,
            cwd=payload.cwd,
            env=attempt_environment(attempt, payload.env),
            start_new_session=True,
        )
    except FileNotFoundError:
        return AttemptResult.failed(f"invalid payload.command: program {program!r} not found")
    except PermissionError:
        return AttemptResult.failed(
            f"invalid payload.command: program {program!r} is not executable"
        )
    except (OSError, ValueError) as error:
        # ValueError: a NUL byte in an argument or an environment value.
        return AttemptResult.failed(f"invalid payload: cannot start {program!r}: {error}")


def _result_of(
    returncode: int | None, tail: OutputTail, attempt: AttemptContext, timed_out: bool
) -> AttemptResult:
    # asyncio reports death by signal N as returncode -N.
    exit_code = returncode if returncode is not None else -1
    output = tail.text()
    if timed_out:
        return AttemptResult(
            outcome=AttemptOutcome.TIMED_OUT,
            exit_code=exit_code,
            output=output,
            error=f"timed out after {attempt.timeout_s:g} s; the process group was killed",
        )
    if exit_code == 0:
        return AttemptResult(outcome=AttemptOutcome.SUCCEEDED, output=output)
    if exit_code < 0:
        error = f"killed by signal {_signal_name(-exit_code)}"
    else:
        error = f"exited with code {exit_code}"
    return AttemptResult.failed(error, exit_code=exit_code, output=output)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return str(number)


async def _start_reading(read_fd: int, tail: OutputTail) -> asyncio.Task[None]:
    """Copy everything from the pipe into `tail` in a task that ends at end of file."""
    loop = asyncio.get_running_loop()
    stream = asyncio.StreamReader()
    # The transport owns the file from here on and closes it.
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(stream), os.fdopen(read_fd, "rb", buffering=0)
    )

    async def copy() -> None:
        try:
            while chunk := await stream.read(_READ_CHUNK_BYTES):
                tail.write(chunk)
        finally:
            transport.close()

    return asyncio.create_task(copy())


async def _finish_reading(reader: asyncio.Task[None]) -> None:
    """Wait briefly for the output pipe to close, then stop reading."""
    done, _ = await asyncio.wait({reader}, timeout=_OUTPUT_DRAIN_S)
    if reader in done:
        reader.result()
        return
    _log.warning("output pipe still open after the process group ended; output may be cut")
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
