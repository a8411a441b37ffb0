"""The `taskscheduler` command. Subcommands: `dev`.

`taskscheduler dev` runs a private etcd, one coordinator, one agent and
the gateway on 127.0.0.1 in the foreground until Ctrl-C. This module
turns its flags and environment variables into a DevConfig, checks the
ports, and hands the children to taskscheduler.devstack. A flag given on
the command line wins over its environment variable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskscheduler import __version__, logs
from taskscheduler.devstack import Supervisor, dev_children
from taskscheduler.errors import SchedulerError
from taskscheduler.etcd_server import EtcdNotFoundError
from taskscheduler.ports import LOOPBACK, is_port_free

EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130


class PortInUseError(SchedulerError, OSError):
    """A port the dev stack needs is taken or planned twice; the message names the flag."""


# The parsers raise ArgumentTypeError because argparse prints its message,
# while for a ValueError it prints only "invalid <type> value".


def _whole_number(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def port_number(text: str) -> int:
    """Parse a TCP port number, 1 to 65535."""
    port = _whole_number(text)
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port must be between 1 and 65535, got {port}")
    return port


def etcd_port_number(text: str) -> int:
    """Parse etcd's client port, 1 to 65534, because its peer port is one above."""
    port = port_number(text)
    if port == 65535:
        raise argparse.ArgumentTypeError(
            "etcd's port must be at most 65534 because its peer port is one above"
        )
    return port


def positive_int(text: str) -> int:
    """Parse an integer of at least 1."""
    number = _whole_number(text)
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {number}")
    return number


@dataclass(frozen=True, kw_only=True)
class DevConfig:
    """Ports, data folder and agent size of one `taskscheduler dev` stack."""

    data_dir: Path
    gateway_port: int = 8080
    coordinator_port: int = 50051
    # etcd's peer port is this plus one.
    etcd_port: int = 2379
    agent_concurrency: int = 4
    ready_timeout_s: float = 30.0
    stop_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name, port in (
            ("gateway_port", self.gateway_port),
            ("coordinator_port", self.coordinator_port),
            ("etcd_port", self.etcd_port),
        ):
            if not 1 <= port <= 65535:
                raise ValueError(f"{name} must be between 1 and 65535, got {port}")
        if self.etcd_port == 65535:
            raise ValueError(
                "etcd_port must be at most 65534 because etcd's peer port is one above"
            )
        if self.agent_concurrency < 1:
            raise ValueError(f"agent_concurrency must be at least 1, got {self.agent_concurrency}")

    @property
    def etcd_peer_port(self) -> int:
        return self.etcd_port + 1

    @property
    def gateway_url(self) -> str:
        return f"http://{LOOPBACK}:{self.gateway_port}"

    @property
    def coordinator_address(self) -> str:
        return f"{LOOPBACK}:{self.coordinator_port}"

    @property
    def etcd_endpoint(self) -> str:
        return f"{LOOPBACK}:{self.etcd_port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


@dataclass(frozen=True)
class DevOption:
    """One `taskscheduler dev` flag with its environment variable and default."""

    flag: str
    env: str
    parse: Callable[[str], object]
    default: str
    metavar: str
    help: str

    @property
    def dest(self) -> str:
        return self.flag.removeprefix("--").replace("-", "_")

    @property
    def how_to_change(self) -> str:
        return f"{self.flag} (or {self.env})"


DEV_OPTIONS = (
    DevOption(
        "--data-dir",
        "TASKSCHEDULER_DATA_DIR",
        Path,
        ".taskscheduler",
        "DIR",
        "folder for etcd's data (kept across restarts) and the logs/ of every process, "
        "relative to the current directory",
    ),
    DevOption(
        "--gateway-port",
        "TASKSCHEDULER_GATEWAY_PORT",
        port_number,
        "8080",
        "PORT",
        "port of the REST gateway on 127.0.0.1",
    ),
    DevOption(
        "--coordinator-port",
        "TASKSCHEDULER_COORDINATOR_PORT",
        port_number,
        "50051",
        "PORT",
        "gRPC port of the coordinator on 127.0.0.1",
    ),
    DevOption(
        "--etcd-port",
        "TASKSCHEDULER_ETCD_PORT",
        etcd_port_number,
        "2379",
        "PORT",
        "client port of the private etcd on 127.0.0.1; its peer port is this plus one",
    ),
    DevOption(
        "--agent-concurrency",
        "TASKSCHEDULER_AGENT_CONCURRENCY",
        positive_int,
        "4",
        "N",
        "number of runs the agent executes at the same time",
    ),
)
_OPTIONS_BY_DEST = {option.dest: option for option in DEV_OPTIONS}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskscheduler", description="Distributed job scheduler tools."
    )
    parser.add_argument("--version", action="version", version=f"taskscheduler {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    dev = commands.add_parser(
        "dev",
        help="run etcd, a coordinator, an agent and the gateway on 127.0.0.1 until Ctrl-C",
        description=(
            "Run a private etcd, one coordinator, one agent and the REST gateway on 127.0.0.1 "
            "in the foreground. Ctrl-C or SIGTERM stops them all. Logs go to the terminal "
            "and to DATA_DIR/logs/. A flag given on the command line overrides its "
            "environment variable."
        ),
    )
    for option in DEV_OPTIONS:
        dev.add_argument(
            option.flag,
            type=option.parse,
            default=None,
            metavar=option.metavar,
            help=f"{option.help} (env {option.env}; default {option.default})",
        )
    dev.set_defaults(run=_dev_command, command_parser=dev)
    return parser


def dev_config_from(
    args: argparse.Namespace, environ: Mapping[str, str], parser: argparse.ArgumentParser
) -> DevConfig:
    """Fill the flags left unset from the environment, then the defaults, and build the config.

    A bad environment value ends the program through `parser.error`, naming the variable.
    """
    values = {}
    for dest, option in _OPTIONS_BY_DEST.items():
        value = getattr(args, dest)
        if value is None:
            raw = environ.get(option.env, option.default)
            try:
                value = option.parse(raw)
            except argparse.ArgumentTypeError as error:
                parser.error(f"environment variable {option.env}={raw!r} is invalid: {error}")
        values[dest] = value
    values["data_dir"] = Path(values["data_dir"]).resolve()
    try:
        return DevConfig(**values)
    except ValueError as error:
        parser.error(str(error))


# --- Port checks -------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedPort:
    """A port the dev stack listens on, its user, and how to move it."""

    port: int
    user: str
    how_to_change: str


def planned_ports(config: DevConfig) -> list[PlannedPort]:
    by_dest = _OPTIONS_BY_DEST
    return [
        PlannedPort(config.etcd_port, "etcd client API", by_dest["etcd_port"].how_to_change),
        PlannedPort(
            config.etcd_peer_port,
            "etcd peer API",
            f"{by_dest['etcd_port'].how_to_change}, since the peer port is one above it",
        ),
        PlannedPort(
            config.coordinator_port, "coordinator", by_dest["coordinator_port"].how_to_change
        ),
        PlannedPort(config.gateway_port, "gateway", by_dest["gateway_port"].how_to_change),
    ]


def check_ports(config: DevConfig, is_free: Callable[[int], bool] = is_port_free) -> None:
    """Raise PortInUseError for the first port planned twice or already taken on 127.0.0.1."""
    planned = planned_ports(config)
    users: dict[int, PlannedPort] = {}
    for entry in planned:
        if entry.port in users:
            raise PortInUseError(
                f"port {entry.port} is planned for both the {users[entry.port].user} and the "
                f"{entry.user}; change {entry.how_to_change}"
            )
        users[entry.port] = entry
    for entry in planned:
        if not is_free(entry.port):
            raise PortInUseError(
                f"port {entry.port} on {LOOPBACK} is already in use, so the {entry.user} "
                f"cannot listen on it; choose another with {entry.how_to_change}"
            )


# --- Running the stack -------------------------------------------------------------


def ready_banner(config: DevConfig) -> str:
    """Return the text printed once the stack is up: its addresses and a first request."""
    url = config.gateway_url
    example_job = (
        '{"name": "hello", "type": "recurring", "schedule": "@every 10s", '
        '"executor": "shell", "payload": {"command": ["echo", "hello"]}}'
    )
    return f"""
taskscheduler dev is ready; Ctrl-C stops everything.

  REST API          {url}/api/jobs
  dashboard         {url}/
  OpenAPI           {url}/openapi.json
  health            {url}/health
  coordinator gRPC  {config.coordinator_address}
  etcd              {config.etcd_endpoint}
  data and logs     {config.data_dir}

Create a job that prints "hello" every 10 seconds, then list its runs:

  curl -s -X POST {url}/api/jobs -H 'Content-Type: application/json' \\
    -d '{example_job}'
  curl -s {url}/api/jobs/JOB_ID/history
"""


def _print_error(message: str) -> None:
    print(f"taskscheduler dev: {message}", file=sys.stderr, flush=True)


def run_dev(config: DevConfig) -> int:
    """Run the dev stack in the foreground and return the exit code."""
    try:
        check_ports(config)
        children = dev_children(config)
    except (PortInUseError, EtcdNotFoundError) as error:
        _print_error(str(error))
        return EXIT_FAILURE

    logs.configure("dev", json_output=False)
    supervisor = Supervisor(
        children,
        log_dir=config.log_dir,
        output=sys.stdout.buffer,
        stop_timeout_s=config.stop_timeout_s,
    )
    code = asyncio.run(supervisor.run(on_ready=lambda: print(ready_banner(config), flush=True)))
    if supervisor.failure is not None:
        _print_error(f"{supervisor.failure}; stopped the other processes")
    return code


def _dev_command(
    args: argparse.Namespace, environ: Mapping[str, str], parser: argparse.ArgumentParser
) -> int:
    return run_dev(dev_config_from(args, environ, parser))


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the `taskscheduler` console script; returns the exit code."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args, os.environ if environ is None else environ, args.command_parser)
    except KeyboardInterrupt:
        # Ctrl-C before the supervisor installed its own handlers.
        return EXIT_INTERRUPTED
