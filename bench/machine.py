"""Machine facts for the page (CPU, memory, OS, versions), and process memory (RSS)."""

from __future__ import annotations

import os
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import grpc

from taskscheduler.etcd_server import etcd_version, find_etcd_binary

_UNKNOWN = "unknown"


def parse_cpu_model(cpuinfo: str) -> str:
    """Return the first `model name` of /proc/cpuinfo text, or 'unknown'."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and value.strip():
            return value.strip()
    return _UNKNOWN


def parse_kib_field(text: str, name: str) -> int | None:
    """Return a `Name:  1234 kB` field of /proc/meminfo or /proc/PID/status, in KiB."""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == name:
            number, _, unit = value.strip().partition(" ")
            if unit.strip() not in ("kB", ""):
                raise ValueError(f"{name} is in {unit!r}, expected kB")
            return int(number)
    return None


def parse_os_name(os_release: str) -> str:
    """Return PRETTY_NAME of /etc/os-release text, unquoted, or 'unknown'."""
    for line in os_release.splitlines():
        key, _, value = line.partition("=")
        if key == "PRETTY_NAME":
            return value.strip().strip('"') or _UNKNOWN
    return _UNKNOWN


def rss_bytes(pid: int) -> int | None:
    """Return the resident set size (VmRSS) of process `pid` in bytes; None once it has exited."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    kib = parse_kib_field(status, "VmRSS")
    return None if kib is None else kib * 1024


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


@dataclass(frozen=True, kw_only=True)
class Machine:
    cpu_model: str
    cores: int
    memory_bytes: int | None
    os_name: str
    kernel: str
    python: str
    etcd: str
    grpcio: str

    def rows(self) -> list[tuple[str, str]]:
        memory = "unknown"
        if self.memory_bytes is not None:
            memory = f"{self.memory_bytes / 2**30:.1f} GiB"
        return [
            ("CPU", self.cpu_model),
            ("cores", str(self.cores)),
            ("RAM", memory),
            ("OS", f"{self.os_name}, Linux {self.kernel}"),
            ("Python", self.python),
            ("etcd", self.etcd),
            ("grpcio", self.grpcio),
        ]


def describe_machine() -> Machine:
    """Read this machine's facts from /proc, /etc/os-release and the installed versions."""
    memory_kib = parse_kib_field(_read("/proc/meminfo"), "MemTotal")
    try:
        etcd = etcd_version(find_etcd_binary())
    except (OSError, ValueError) as error:
        etcd = f"unknown ({error})"
    return Machine(
        cpu_model=parse_cpu_model(_read("/proc/cpuinfo")),
        cores=os.cpu_count() or 0,
        memory_bytes=None if memory_kib is None else memory_kib * 1024,
        os_name=parse_os_name(_read("/etc/os-release")),
        kernel=platform.release(),
        python=platform.python_version() + f" ({sys.implementation.name})",
        etcd=etcd,
        grpcio=grpc.__version__,
    )
