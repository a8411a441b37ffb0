"""Start coordinators, agents and gateways as real processes for one test.

`Components` builds each command line from keyword flags, so that
`lease_ttl_s=3` becomes `--lease-ttl-s 3`. It fills in what the test
leaves out: a free port, the test's etcd and key prefix, and the
coordinators started so far. It waits for readiness, and at teardown
stops everything in reverse start order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from taskscheduler.devstack import (
    component_command,
    probe_grpc_health,
    probe_http_ok,
    probe_worker_registered,
)
from taskscheduler.etcd_server import run_coroutine_blocking
from taskscheduler.ports import LOOPBACK, find_free_port

from .api import ApiClient
from .processes import AgentHandle, ProcessHandle

# Timings short enough that lease expiry and failover happen within a test.
# An etcd lease lives at least about 2 s, whatever TTL is asked for.
FAST_COORDINATOR_FLAGS: Mapping[str, object] = {
    "election_ttl_s": 3,
    "lease_ttl_s": 3,
    "heartbeat_interval_s": 0.5,
    "worker_offline_after_s": 3,
}
# Teardown stops the agent with SIGTERM; a short grace keeps it quick.
FAST_AGENT_FLAGS: Mapping[str, object] = {"shutdown_grace_s": 3}


def flags_to_argv(flags: Mapping[str, object]) -> list[str]:
    """Turn keyword flags into command-line arguments.

    `name_s=3` becomes `--name-s 3`. True adds the bare flag, and False or
    None leaves it out. A list or tuple is joined with commas, and a dict
    becomes `k=v,k2=v2`.
    """
    argv: list[str] = []
    for key, value in flags.items():
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        elif isinstance(value, dict):
            argv += [flag, ",".join(f"{k}={v}" for k, v in value.items())]
        elif isinstance(value, list | tuple):
            argv += [flag, ",".join(str(item) for item in value)]
        else:
            argv += [flag, str(value)]
    return argv


def _blocking_probe(
    make_coroutine: Callable[[], Coroutine[Any, Any, None]],
) -> Callable[[float], None]:
    return lambda _started_at: run_coroutine_blocking(make_coroutine)


class Components:
    """The coordinators, agents and gateways of one test, on one etcd prefix."""

    def __init__(self, *, log_dir: Path, etcd_endpoint: str, prefix: str) -> None:
        self.log_dir = log_dir
        self.etcd_endpoint = etcd_endpoint
        self.prefix = prefix
        self.started: list[ProcessHandle] = []
        self.coordinators: list[ProcessHandle] = []
        self.agents: list[AgentHandle] = []
        self.gateways: list[ProcessHandle] = []

    def coordinator_addresses(self) -> str:
        if not self.coordinators:
            raise RuntimeError("start a coordinator first, or pass coordinators=...")
        return ",".join(str(handle.address) for handle in self.coordinators)

    def start_coordinator(self, **flags: object) -> ProcessHandle:
        """Start a coordinator with fast test timings; keyword flags override any default."""
        listen = str(flags.pop("listen", None) or f"{LOOPBACK}:{find_free_port()}")
        effective = {
            "etcd": self.etcd_endpoint,
            "prefix": self.prefix,
            "log_format": "console",
            **FAST_COORDINATOR_FLAGS,
            **flags,
        }
        handle = ProcessHandle(
            name=f"coordinator-{len(self.coordinators) + 1}",
            argv=[*component_command("coordinator"), "--listen", listen, *flags_to_argv(effective)],
            log_path=self._log_path("coordinator", len(self.coordinators) + 1),
            probe=_blocking_probe(lambda: probe_grpc_health(listen)),
            address=listen,
        )
        self.coordinators.append(handle)
        return self._start(handle)

    def start_agent(self, **flags: object) -> AgentHandle:
        """Start an agent with a unique worker id on every coordinator started so far.

        It counts as ready once a coordinator lists its worker id as
        registered or heartbeating after this start.
        """
        worker_id = str(flags.pop("worker_id", None) or f"agent-{uuid.uuid4().hex[:8]}")
        coordinators = str(flags.pop("coordinators", None) or self.coordinator_addresses())
        effective = {"log_format": "console", **FAST_AGENT_FLAGS, **flags}
        argv = [
            *component_command("agent"),
            *("--coordinators", coordinators, "--worker-id", worker_id),
            *flags_to_argv(effective),
        ]
        handle = AgentHandle(
            worker_id=worker_id,
            name=f"agent-{len(self.agents) + 1}",
            argv=argv,
            log_path=self._log_path("agent", len(self.agents) + 1),
            probe=_worker_probe(coordinators.split(","), worker_id),
        )
        self.agents.append(handle)
        self._start(handle)
        return handle

    def start_gateway(self, **flags: object) -> ProcessHandle:
        """Start a gateway in front of every coordinator started so far."""
        listen = str(flags.pop("listen", None) or f"{LOOPBACK}:{find_free_port()}")
        coordinators = str(flags.pop("coordinators", None) or self.coordinator_addresses())
        effective = {"log_format": "console", **flags}
        argv = [
            *component_command("gateway"),
            *("--listen", listen, "--coordinators", coordinators),
            *flags_to_argv(effective),
        ]
        handle = ProcessHandle(
            name=f"gateway-{len(self.gateways) + 1}",
            argv=argv,
            log_path=self._log_path("gateway", len(self.gateways) + 1),
            probe=_blocking_probe(lambda: probe_http_ok(f"http://{listen}/health")),
            address=listen,
        )
        self.gateways.append(handle)
        return self._start(handle)

    def stop_all(self) -> None:
        """Stop every process in reverse start order, including ones a test paused."""
        for handle in reversed(self.started):
            handle.stop()

    def log_tails(self, max_lines: int = 100) -> str:
        """Return the last `max_lines` of every process log, one titled block each."""
        return "\n".join(
            f"----- {handle.name} ({handle.log_path}) -----\n{handle.log_tail(max_lines)}"
            for handle in self.started
        )

    def _start(self, handle: ProcessHandle) -> ProcessHandle:
        # Registered before start, so a failed start is still stopped and its log shown.
        self.started.append(handle)
        return handle.start()

    def _log_path(self, kind: str, number: int) -> Path:
        return self.log_dir / f"{kind}-{number}.log"


def _worker_probe(coordinators: list[str], worker_id: str) -> Callable[[float], None]:
    def probe(started_at: float) -> None:
        since = datetime.fromtimestamp(started_at, UTC)
        errors = []
        for address in coordinators:
            try:
                run_coroutine_blocking(partial(probe_worker_registered, address, worker_id, since))
            except Exception as error:
                errors.append(f"{address}: {error!r}")
            else:
                return
        raise ConnectionError("; ".join(errors))

    return probe


@dataclass
class Stack:
    """One coordinator, one agent and one gateway, with a REST client bound to the gateway."""

    coordinator: ProcessHandle
    agent: AgentHandle
    gateway: ProcessHandle
    api: ApiClient
