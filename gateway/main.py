"""The `taskscheduler-gateway` command: the REST gateway served by uvicorn."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import NoReturn

import uvicorn

from taskscheduler import logs
from taskscheduler.gateway.app import create_app
from taskscheduler.gateway.coordinator_client import CoordinatorClient, FailoverPolicy

PROGRAM = "taskscheduler-gateway"
DEFAULT_LISTEN = "127.0.0.1:8080"
# Requests still running at shutdown get this long to finish.
_GRACEFUL_SHUTDOWN_S = 5

log = logs.get_logger(__name__)


class _OneLineParser(argparse.ArgumentParser):
    """Reports a bad flag in one line on stderr, then exits with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def split_host_port(value: str) -> tuple[str, int]:
    """Split HOST:PORT (or [IPv6]:PORT); raise ValueError naming what is wrong."""
    host, separator, port_text = value.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not separator or not host:
        raise ValueError(f"{value!r} is not HOST:PORT, such as 127.0.0.1:8080")
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{value!r} has no port from 1 to 65535")
    return host, int(port_text)


def _address_list(value: str) -> list[str]:
    addresses = [address.strip() for address in value.split(",") if address.strip()]
    if not addresses:
        raise argparse.ArgumentTypeError("no coordinator address given")
    for address in addresses:
        try:
            split_host_port(address)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from err
    return addresses


def _listen_address(value: str) -> tuple[str, int]:
    try:
        return split_host_port(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def _positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def build_parser() -> argparse.ArgumentParser:
    environ = os.environ
    parser = _OneLineParser(
        prog=PROGRAM,
        description="REST/JSON gateway to the taskscheduler coordinators.",
    )
    parser.add_argument(
        "--listen",
        type=_listen_address,
        default=environ.get("TASKSCHEDULER_GATEWAY_LISTEN", DEFAULT_LISTEN),
        metavar="HOST:PORT",
        help="address to serve HTTP on (env TASKSCHEDULER_GATEWAY_LISTEN; default %(default)s)",
    )
    parser.add_argument(
        "--coordinators",
        type=_address_list,
        default=environ.get("TASKSCHEDULER_COORDINATORS"),
        metavar="HOST:PORT[,HOST:PORT...]",
        help="coordinator gRPC addresses, tried in order (env TASKSCHEDULER_COORDINATORS)",
    )
    parser.add_argument(
        "--call-deadline",
        type=_positive_seconds,
        default=environ.get("TASKSCHEDULER_GATEWAY_CALL_DEADLINE", "10"),
        metavar="SECONDS",
        help="deadline of one coordinator call, in seconds "
        "(env TASKSCHEDULER_GATEWAY_CALL_DEADLINE; default %(default)s)",
    )
    parser.add_argument(
        "--log-format",
        choices=("json", "console"),
        default=environ.get("TASKSCHEDULER_LOG_FORMAT", "json"),
        help="log line format (env TASKSCHEDULER_LOG_FORMAT; default %(default)s)",
    )
    parser.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default=environ.get("TASKSCHEDULER_LOG_LEVEL", "info").lower(),
        help="lowest level logged; debug logs every request "
        "(env TASKSCHEDULER_LOG_LEVEL; default %(default)s)",
    )
    return parser


def bind_listener(host: str, port: int) -> socket.socket:
    """Bind and listen on HOST:PORT; raise OSError when the address is taken or invalid."""
    family, kind, protocol, _name, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listener = socket.socket(family, kind, protocol)
    try:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(address)
        listener.listen(2048)
    except OSError:
        listener.close()
        raise
    listener.set_inheritable(True)
    return listener


def main(argv: Sequence[str] | None = None) -> int:
    """Run the gateway until SIGINT or SIGTERM; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.coordinators is None:
        parser.error("--coordinators is required (or set TASKSCHEDULER_COORDINATORS)")
    logs.configure("gateway", json_output=args.log_format == "json", level=args.log_level)

    host, port = args.listen
    try:
        listener = bind_listener(host, port)
    except OSError as err:
        print(f"{PROGRAM}: cannot listen on {host}:{port}: {err.strerror or err}", file=sys.stderr)
        return 1

    policy = FailoverPolicy(call_deadline_s=args.call_deadline)
    asyncio.run(_serve(listener, args.coordinators, policy))
    return 0


async def _serve(listener: socket.socket, coordinators: list[str], policy: FailoverPolicy) -> None:
    client = CoordinatorClient(coordinators, policy)
    config = uvicorn.Config(
        create_app(client),
        log_config=None,
        access_log=False,
        lifespan="off",
        server_header=False,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)

    # uvicorn handles SIGINT and SIGTERM while it serves. Afterwards it raises the
    # signal again for the previous handler, so a no-op handler there lets us exit 0.
    previous = {sig: signal.signal(sig, _ignore_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    address = "{}:{}".format(*listener.getsockname()[:2])
    log.info("gateway started", listen=address, coordinators=coordinators)
    try:
        await server.serve(sockets=[listener])
    finally:
        await client.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("gateway stopped", listen=address)


def _ignore_signal(_signum: int, _frame: object) -> None:
    return None


if __name__ == "__main__":
    sys.exit(main())
