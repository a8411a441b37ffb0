"""The coordinator's command line and configuration.

Every flag also reads an environment variable, named in --help.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

# The most --hand-ahead-ms allows; agents wait at most this long for a start.
MAX_HAND_AHEAD_MS = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class CoordinatorConfig:
    listen: str
    etcd_endpoints: tuple[str, ...]
    advertise: str
    prefix: str
    coordinator_id: str
    election_ttl_s: int
    lease_ttl_s: float
    heartbeat_interval_s: float
    worker_offline_after_s: float
    history_max_runs: int
    history_max_age: timedelta
    etcd_connect_timeout_s: float
    log_format: str
    priority_aging_s: float = 300.0
    max_queued_in_memory: int = 10_000
    history_prune_interval_s: float = 30.0
    fire_ahead_ms: int = 500
    hand_ahead_ms: int = 250

    def __post_init__(self) -> None:
        for name, value in (("--listen", self.listen), ("--advertise", self.advertise)):
            _check_host_port(name, value)
        for endpoint in self.etcd_endpoints:
            _check_host_port("--etcd", endpoint)
        if not self.prefix.startswith("/") or self.prefix.endswith("/"):
            raise ValueError(
                "--prefix must start with '/' and not end with '/', e.g. /taskscheduler"
            )
        if self.election_ttl_s < 2:
            raise ValueError("--election-ttl-s must be at least 2 seconds")
        if self.heartbeat_interval_s <= 0 or self.lease_ttl_s < 2 * self.heartbeat_interval_s:
            raise ValueError(
                "--lease-ttl-s must be at least twice --heartbeat-interval-s, so one lost "
                "heartbeat does not expire a lease"
            )
        self._check_engine_ranges()

    def _check_engine_ranges(self) -> None:
        if self.history_max_runs < 1:
            raise ValueError("--history-max-runs must be at least 1")
        if self.priority_aging_s < 0:
            raise ValueError("--priority-aging-s must be 0 (no aging) or a positive number")
        if self.max_queued_in_memory < 1:
            raise ValueError("--max-queued-in-memory must be at least 1")
        if not 0 <= self.fire_ahead_ms <= 5000:
            raise ValueError("--fire-ahead-ms must be 0 (fire at the slot) to 5000")
        if not 0 <= self.hand_ahead_ms <= MAX_HAND_AHEAD_MS:
            raise ValueError(
                f"--hand-ahead-ms must be 0 (hand runs out when due) to {MAX_HAND_AHEAD_MS}"
            )
        if self.history_prune_interval_s <= 0:
            raise ValueError("--history-prune-interval-s must be a positive number of seconds")


def _check_host_port(flag: str, value: str) -> None:
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{flag} {value!r} is not HOST:PORT, e.g. 127.0.0.1:50051")


def _env(name: str, default: str) -> str:
    return os.environ.get(f"TASKSCHEDULER_{name}", default)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="taskscheduler-coordinator",
        description="Run one coordinator replica: job API, and scheduling while it leads.",
    )
    options = [
        ("--listen", "LISTEN", "127.0.0.1:50051", "gRPC address to serve on (HOST:PORT)"),
        ("--etcd", "ETCD", "127.0.0.1:2379", "etcd endpoints, HOST:PORT[,HOST:PORT...]"),
        (
            "--advertise",
            "ADVERTISE",
            "",
            "address agents use to reach this replica; default --listen",
        ),
        ("--prefix", "PREFIX", "/taskscheduler", "etcd key prefix shared by all replicas"),
        ("--coordinator-id", "COORDINATOR_ID", "", "replica id; default HOSTNAME-PORT"),
        ("--election-ttl-s", "ELECTION_TTL_S", "5", "leader lease TTL in seconds"),
        ("--lease-ttl-s", "LEASE_TTL_S", "10", "attempt lease TTL in seconds"),
        (
            "--heartbeat-interval-s",
            "HEARTBEAT_INTERVAL_S",
            "2",
            "agent heartbeat interval, seconds",
        ),
        (
            "--worker-offline-after-s",
            "WORKER_OFFLINE_AFTER_S",
            "10",
            "silence before a worker is offline, seconds",
        ),
        ("--history-max-runs", "HISTORY_MAX_RUNS", "1000", "runs kept per job"),
        (
            "--history-max-age-s",
            "HISTORY_MAX_AGE_S",
            "604800",
            "age after which runs are deleted, seconds",
        ),
        (
            "--fire-ahead-ms",
            "FIRE_AHEAD_MS",
            "500",
            "how long before its slot a run may be written and queued, milliseconds "
            "(0 to 5000; 0 writes it at the slot)",
        ),
        (
            "--hand-ahead-ms",
            "HAND_AHEAD_MS",
            "250",
            "how long before its due time a queued run may be handed to an agent that "
            "waits for that time itself, milliseconds (0 to 1000; 0 hands runs out when due)",
        ),
        (
            "--history-prune-interval-s",
            "HISTORY_PRUNE_INTERVAL_S",
            "30",
            "how often the leader deletes runs past those limits, seconds",
        ),
        (
            "--etcd-connect-timeout-s",
            "ETCD_CONNECT_TIMEOUT_S",
            "10",
            "how long to wait for etcd at start, seconds",
        ),
        ("--log-format", "LOG_FORMAT", "json", "json or console"),
        (
            "--priority-aging-s",
            "PRIORITY_AGING_S",
            "300",
            "wait after which a queued run rises one priority level, seconds; 0 disables",
        ),
        (
            "--max-queued-in-memory",
            "MAX_QUEUED_IN_MEMORY",
            "10000",
            "queued runs the leader holds in memory per priority; the rest wait in etcd",
        ),
    ]
    for flag, env_name, default, help_text in options:
        parser.add_argument(
            flag,
            default=_env(env_name, default),
            help=f"{help_text} (env TASKSCHEDULER_{env_name}; default {default or 'see text'})",
        )
    return parser


def parse_config(argv: Sequence[str] | None = None) -> CoordinatorConfig:
    """Parse flags into a validated config; raise ValueError naming the bad flag."""
    args = build_parser().parse_args(argv)
    port = args.listen.rpartition(":")[2]
    return CoordinatorConfig(
        listen=args.listen,
        etcd_endpoints=tuple(e.strip() for e in args.etcd.split(",") if e.strip()),
        advertise=args.advertise or args.listen,
        prefix=args.prefix,
        coordinator_id=args.coordinator_id or f"{socket.gethostname()}-{port}",
        election_ttl_s=_number(int, "--election-ttl-s", args.election_ttl_s),
        lease_ttl_s=_number(float, "--lease-ttl-s", args.lease_ttl_s),
        heartbeat_interval_s=_number(float, "--heartbeat-interval-s", args.heartbeat_interval_s),
        worker_offline_after_s=_number(
            float, "--worker-offline-after-s", args.worker_offline_after_s
        ),
        history_max_runs=_number(int, "--history-max-runs", args.history_max_runs),
        history_max_age=timedelta(
            seconds=_number(float, "--history-max-age-s", args.history_max_age_s)
        ),
        etcd_connect_timeout_s=_number(
            float, "--etcd-connect-timeout-s", args.etcd_connect_timeout_s
        ),
        log_format=args.log_format,
        priority_aging_s=_number(float, "--priority-aging-s", args.priority_aging_s),
        max_queued_in_memory=_number(int, "--max-queued-in-memory", args.max_queued_in_memory),
        history_prune_interval_s=_number(
            float, "--history-prune-interval-s", args.history_prune_interval_s
        ),
        fire_ahead_ms=_number(int, "--fire-ahead-ms", args.fire_ahead_ms),
        hand_ahead_ms=_number(int, "--hand-ahead-ms", args.hand_ahead_ms),
    )


def _number(kind: type, flag: str, value: str):  # type: ignore[no-untyped-def]
    try:
        return kind(value)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ValueError(f"{flag} {value!r} is not {what}") from None
