"""Stand-in children for testing the dev supervisor without the real scheduler processes.

A stand-in prints a line, creates NAME.ready in its folder, and then
waits. On SIGTERM it appends its name to `stopped` and exits 0, so a test
can check the stop order. When NAME.die appears it exits with code 3.
With `ignore_sigterm` it keeps running after SIGTERM.

Run as a script (`python standins.py FOLDER ETCD_BINARY`), this module
supervises a real etcd and two stand-ins until SIGINT or SIGTERM. It
imports only the standard library and taskscheduler, so it runs from
any working directory.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from taskscheduler.devstack import ChildSpec, Supervisor
from taskscheduler.etcd_server import EtcdConfig, etcd_command, probe_etcd
from taskscheduler.ports import LOOPBACK, find_free_ports

DIE_EXIT_CODE = 3

STANDIN_SOURCE = """
import pathlib, signal, sys, time
name, folder, ignore_sigterm = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3] == "1"

def on_sigterm(signum, frame):
    with open(folder / "stopped", "a") as stopped:
        stopped.write(name + "\\n")
    if not ignore_sigterm:
        sys.exit(0)

signal.signal(signal.SIGTERM, on_sigterm)
print(name, "started", flush=True)
(folder / (name + ".ready")).touch()
while not (folder / (name + ".die")).exists():
    time.sleep(0.05)
print(name, "dying", flush=True)
sys.exit(3)
"""


def standin_child(
    name: str,
    folder: Path,
    *,
    ignore_sigterm: bool = False,
    ready_timeout_s: float = 10.0,
    never_ready: bool = False,
) -> ChildSpec:
    """Build a stand-in child that is ready once NAME.ready exists (never, with `never_ready`)."""
    ready_file = folder / f"{name}.ready"

    async def probe() -> None:
        if never_ready or not ready_file.exists():
            raise FileNotFoundError(ready_file)

    ignore_flag = "1" if ignore_sigterm else "0"
    return ChildSpec(
        name=name,
        argv=[sys.executable, "-c", STANDIN_SOURCE, name, str(folder), ignore_flag],
        probe=probe,
        ready_timeout_s=ready_timeout_s,
    )


def etcd_child(binary: Path, folder: Path) -> ChildSpec:
    """Build a child that runs a real etcd on free ports under `folder`."""
    client_port, peer_port = find_free_ports(2)
    config = EtcdConfig(
        data_dir=folder / "etcd", client_port=client_port, peer_port=peer_port, fsync=False
    )
    return ChildSpec(
        name="etcd",
        argv=etcd_command(binary, config),
        probe=lambda: probe_etcd(LOOPBACK, client_port),
        echo=False,
    )


def stopped_order(folder: Path) -> list[str]:
    """Return the names of the stand-ins that received SIGTERM, in order."""
    stopped = folder / "stopped"
    return stopped.read_text().split() if stopped.exists() else []


async def _supervise(folder: Path, etcd_binary: Path) -> int:
    children = [
        etcd_child(etcd_binary, folder),
        standin_child("first", folder),
        standin_child("second", folder),
    ]
    supervisor = Supervisor(children, log_dir=folder / "logs", output=sys.stdout.buffer)

    def on_ready() -> None:
        (folder / "pids.json").write_text(json.dumps(supervisor.pids))

    return await supervisor.run(on_ready=on_ready)


if __name__ == "__main__":
    sys.exit(asyncio.run(_supervise(Path(sys.argv[1]), Path(sys.argv[2]))))
