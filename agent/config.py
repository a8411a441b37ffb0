"""The agent's configuration, validated on construction.

Every check names the command-line flag that sets the bad value, so an
operator can see from the message what to change.
"""

from __future__ import annotations

import math
import os
import re
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from taskscheduler.errors import InvalidArgumentError

from .executors.base import EXECUTOR_NAME
from .executors.handlers import HandlerSpec, check_handler_name
from .executors.noop import NOOP_EXECUTOR

MAX_CONCURRENT_LIMIT = 1024
MAX_POLL_WAIT_S = 300.0
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")

_WORKER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
_LABEL_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$")
_MAX_LABEL_VALUE_CHARS = 255


def default_worker_id() -> str:
    """Return `<hostname>-<pid>`: unique per process on a host, readable in listings."""
    hostname = re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname()).strip("-.") or "agent"
    return f"{hostname[:100]}-{os.getpid()}"


@dataclass(frozen=True, kw_only=True)
class AgentConfig:
    """Settings of one `taskscheduler-agent` process, from its flags and environment."""

    # HOST:PORT of every coordinator replica; the agent finds the leader among them.
    coordinators: tuple[str, ...]
    worker_id: str = field(default_factory=default_worker_id)
    # Executor names this agent accepts assignments for. After construction
    # it also lists `noop` and every handler's name, whatever was given.
    capabilities: tuple[str, ...] = ("shell", "http", NOOP_EXECUTOR)
    # Python handlers to import at start, each registered as an executor.
    handlers: tuple[HandlerSpec, ...] = ()
    max_concurrent: int = 4
    labels: Mapping[str, str] = field(default_factory=dict)
    # How long one PollWork call waits for work before returning empty.
    poll_wait_s: float = 10.0
    # How long running attempts may take to finish after SIGTERM or SIGINT.
    shutdown_grace_s: float = 30.0
    log_format: str = "json"
    log_level: str = "info"

    def __post_init__(self) -> None:
        object.__setattr__(self, "coordinators", tuple(self.coordinators))
        object.__setattr__(self, "capabilities", tuple(self.capabilities))
        object.__setattr__(self, "handlers", tuple(self.handlers))
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))
        _check_coordinators(self.coordinators)
        _check_capabilities(self.capabilities)
        _check_handlers(self.handlers)
        # The coordinator routes a job only to agents that list its executor.
        built_in_and_handlers = (NOOP_EXECUTOR, *(handler.name for handler in self.handlers))
        merged = tuple(dict.fromkeys((*self.capabilities, *built_in_and_handlers)))
        object.__setattr__(self, "capabilities", merged)
        _check_worker_id(self.worker_id)
        _check_labels(self.labels)
        _check_numbers(self)
        _check_choice("--log-format", self.log_format, LOG_FORMATS)
        _check_choice("--log-level", self.log_level, LOG_LEVELS)


def split_address(address: str) -> tuple[str, int]:
    """Split HOST:PORT (IPv6 hosts in brackets); raises ValueError naming the problem."""
    host, separator, port_text = address.rpartition(":")
    if not separator or not host:
        raise ValueError(f"{address!r} is not HOST:PORT")
    bracketed = host.startswith("[") and host.endswith("]") and len(host) > 2
    if ("[" in host or ":" in host or "]" in host) and not bracketed:
        raise ValueError(f"{address!r} is not HOST:PORT; write IPv6 hosts as [::1]:PORT")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{address!r} has no port between 1 and 65535")
    return host, int(port_text)


def _check_coordinators(coordinators: tuple[str, ...]) -> None:
    if not coordinators:
        raise InvalidArgumentError(
            "--coordinators", "--coordinators is required: HOST:PORT[,HOST:PORT...]"
        )
    for address in coordinators:
        try:
            split_address(address)
        except ValueError as error:
            message = f"invalid --coordinators: {error}"
            raise InvalidArgumentError("--coordinators", message) from None


def _check_capabilities(capabilities: tuple[str, ...]) -> None:
    if not capabilities:
        raise InvalidArgumentError(
            "--capabilities", "--capabilities must name at least one executor, such as shell"
        )
    for name in capabilities:
        if not EXECUTOR_NAME.match(name):
            raise InvalidArgumentError(
                "--capabilities",
                f"invalid --capabilities entry {name!r}: use lowercase letters, digits, "
                "'_', '.' or '-', starting with a letter",
            )
    if len(set(capabilities)) != len(capabilities):
        raise InvalidArgumentError("--capabilities", "--capabilities lists an executor twice")


def _check_handlers(handlers: tuple[HandlerSpec, ...]) -> None:
    seen: set[str] = set()
    for handler in handlers:
        try:
            check_handler_name(handler.name)
        except ValueError as error:
            raise InvalidArgumentError("--handler", f"invalid --handler: {error}") from None
        if handler.name in seen:
            raise InvalidArgumentError(
                "--handler",
                f"invalid --handler: {handler.name!r} is registered twice; "
                "give each handler its own name",
            )
        seen.add(handler.name)


def _check_worker_id(worker_id: str) -> None:
    if not _WORKER_ID.match(worker_id):
        raise InvalidArgumentError(
            "--worker-id",
            f"invalid --worker-id {worker_id!r}: use 1-128 letters, digits, '.', '_', ':' "
            "or '-', starting with a letter or digit",
        )


def _check_labels(labels: Mapping[str, str]) -> None:
    for key, value in labels.items():
        if not _LABEL_KEY.match(key):
            raise InvalidArgumentError(
                "--labels",
                f"invalid --labels key {key!r}: use 1-63 letters, digits, '.', '_', '/' or '-'",
            )
        if (
            not value
            or len(value) > _MAX_LABEL_VALUE_CHARS
            or not value.isprintable()
            or ("," in value)
        ):
            raise InvalidArgumentError(
                "--labels",
                f"invalid --labels value for {key!r}: use 1 to {_MAX_LABEL_VALUE_CHARS} "
                "printable characters without commas",
            )


def _check_numbers(config: AgentConfig) -> None:
    if not 1 <= config.max_concurrent <= MAX_CONCURRENT_LIMIT:
        raise InvalidArgumentError(
            "--max-concurrent",
            f"invalid --max-concurrent {config.max_concurrent}: "
            f"must be between 1 and {MAX_CONCURRENT_LIMIT}",
        )
    if not 0 < config.poll_wait_s <= MAX_POLL_WAIT_S:
        raise InvalidArgumentError(
            "--poll-wait-s",
            f"invalid --poll-wait-s {config.poll_wait_s:g}: "
            f"must be above 0 and at most {MAX_POLL_WAIT_S:g} seconds",
        )
    if not (math.isfinite(config.shutdown_grace_s) and config.shutdown_grace_s >= 0):
        raise InvalidArgumentError(
            "--shutdown-grace-s",
            f"invalid --shutdown-grace-s {config.shutdown_grace_s:g}: must be 0 or more seconds",
        )


def _check_choice(flag: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise InvalidArgumentError(
            flag, f"invalid {flag} {value!r}: choose one of {', '.join(choices)}"
        )
