"""TCP port checks and free-port allocation on the loopback interface.

Every helper binds with SO_REUSEADDR, as etcd, gRPC and uvicorn do, so a
port whose last connection lingers in TIME_WAIT counts as free while a
port with a listening socket does not.
"""

from __future__ import annotations

import contextlib
import socket

LOOPBACK = "127.0.0.1"


def _bound_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def is_port_free(port: int, host: str = LOOPBACK) -> bool:
    """Return whether a server could listen on `host:port` now."""
    try:
        sock = _bound_socket(host, port)
    except OSError:
        return False
    sock.close()
    return True


def find_free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return `count` distinct ports that were free on `host` a moment ago.

    All sockets stay bound until every port is chosen, so the ports differ.
    Another process may still take one before the caller binds it.
    """
    with contextlib.ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(_bound_socket(host, 0))
            ports.append(sock.getsockname()[1])
        return ports


def find_free_port(host: str = LOOPBACK) -> int:
    """Return one port that was free on `host` a moment ago."""
    return find_free_ports(1, host)[0]


def find_free_port_run(count: int, host: str = LOOPBACK, attempts: int = 100) -> int:
    """Return the first of `count` consecutive ports that were all free on `host` a moment ago.

    Tests that run `taskscheduler dev` need this for etcd, whose peer port is the next one.
    Raises OSError after `attempts` tries without such a run.
    """
    for _ in range(attempts):
        first = find_free_port(host)
        if first + count - 1 <= 65535 and all(
            is_port_free(port, host) for port in range(first + 1, first + count)
        ):
            return first
    raise OSError(f"found no {count} consecutive free ports on {host} in {attempts} tries")
