"""Profile the coordinator's hot path with py-spy, or with cProfile where py-spy cannot attach.

py-spy samples a running process from outside, so it can cover just the
loaded period. cProfile has to wrap the process from its start, so its
numbers cover the coordinator's whole life, idle time at start included.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import pstats
import re
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

# The cumulative table leaves out the plumbing that contains everything:
# the event loop, thread starts and module entry points, and any frame on
# at least this share of all samples (such as the program's `main`).
PLUMBING_SHARE = 0.8
_IDLE_CALLS = re.compile(r"of 'select\.(epoll|poll)' objects")
_LIBRARY_PREFIX = re.compile(r"^.*/lib/python\d+\.\d+/(site-packages/)?")
_PLUMBING = re.compile(r"\((asyncio/[^)]*|threading\.py|selectors\.py|runpy\.py|<frozen runpy>)\)$")
TOP = 10
_LINE_SUFFIX = re.compile(r":\d+\)$")


@dataclass(frozen=True, slots=True)
class ProfileRow:
    function: str
    # Share of samples (py-spy) or of time (cProfile) spent in the function itself.
    self_share: float
    # Share spent in the function and everything it called.
    total_share: float


@dataclass(frozen=True, kw_only=True)
class ProfileSummary:
    source: str
    samples: int
    # How much was profiled, in words: "439 samples" or "2.5 s of busy time".
    size: str
    by_self: tuple[ProfileRow, ...]
    by_total: tuple[ProfileRow, ...]


def frame_name(frame: str) -> str:
    """Drop the line number from a py-spy frame: 'f (a/b.py:12)' -> 'f (a/b.py)'."""
    return _LINE_SUFFIX.sub(")", frame.strip())


@dataclass
class Samples:
    """Sample counts per function: as the innermost frame (self) and anywhere on the stack."""

    total: int = 0
    self_counts: Counter[str] = field(default_factory=Counter)
    total_counts: Counter[str] = field(default_factory=Counter)

    def is_plumbing(self, name: str) -> bool:
        """Return whether `name` is event loop, thread or module entry, or on most samples."""
        if name.startswith("<module> ") or _PLUMBING.search(name):
            return True
        return self.total_counts[name] >= PLUMBING_SHARE * self.total


def parse_collapsed(lines: Iterable[str]) -> Samples:
    """Read py-spy's raw (collapsed) output: 'frame;frame;frame COUNT' per line.

    A function that recurses counts once per stack in `total_counts`.
    """
    samples = Samples()
    for line in lines:
        stack, _, count_text = line.rstrip("\n").rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_name(frame) for frame in stack.split(";")]
        samples.total += count
        samples.self_counts[frames[-1]] += count
        for name in set(frames):
            samples.total_counts[name] += count
    return samples


def summarize(source: str, samples: Samples) -> ProfileSummary:
    """Pick the top functions by self share, and by cumulative share without entry frames."""
    if samples.total <= 0:
        return ProfileSummary(source=source, samples=0, size="no samples", by_self=(), by_total=())

    def row(name: str) -> ProfileRow:
        return ProfileRow(
            name,
            samples.self_counts[name] / samples.total,
            samples.total_counts[name] / samples.total,
        )

    by_self = tuple(row(name) for name, _ in samples.self_counts.most_common(TOP))
    inner = [
        name for name, _ in samples.total_counts.most_common() if not samples.is_plumbing(name)
    ]
    by_total = tuple(row(name) for name in inner[:TOP])
    return ProfileSummary(
        source=source,
        samples=samples.total,
        size=f"{samples.total:,} samples",
        by_self=by_self,
        by_total=by_total,
    )


def summarize_pstats(path: Path) -> ProfileSummary:
    """Read a cProfile output file into the same summary, with shares of busy time.

    cProfile records no stacks; a function's cumulative time serves as
    its share of stacks. Time blocked in the event loop's poll is idle, as
    py-spy counts it, and is left out of the total.
    """
    stats = pstats.Stats(str(path))
    # Integer microseconds, so that both profilers share one summary.
    scale = 1_000_000
    samples = Samples()
    idle = 0
    # pstats keeps {(file, line, function): (calls, primitive calls, self s, total s, callers)}.
    for (file, _line, function), entry in stats.stats.items():  # type: ignore[attr-defined]
        if _IDLE_CALLS.search(function):
            idle += round(entry[2] * scale)
            continue
        name = f"{function} ({_short_path(file)})"
        samples.self_counts[name] += round(entry[2] * scale)
        samples.total_counts[name] = max(samples.total_counts[name], round(entry[3] * scale))
    samples.total = round(stats.total_tt * scale) - idle  # type: ignore[attr-defined]
    summary = summarize("cProfile, over the whole process life", samples)
    return dataclasses.replace(summary, size=f"{samples.total / scale:,.1f} s of busy time")


def _short_path(file: str) -> str:
    if file == "~":
        return "built-in"
    return _LIBRARY_PREFIX.sub("", file)


def find_py_spy() -> Path | None:
    """Return the py-spy binary beside this interpreter or on PATH, if any."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.exists():
        return beside
    found = shutil.which("py-spy")
    return None if found is None else Path(found)


def py_spy_can_attach(binary: Path, timeout_s: float = 20.0) -> bool:
    """Return whether py-spy may read this process's stacks (it needs ptrace rights)."""
    try:
        completed = subprocess.run(
            [str(binary), "dump", "--pid", str(os.getpid()), "--nonblocking"],
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return completed.returncode == 0


async def record_py_spy(binary: Path, pid: int, duration_s: int, output: Path) -> ProfileSummary:
    """Sample process `pid` for `duration_s` seconds at 100 Hz and summarise the samples.

    --nonblocking keeps py-spy from pausing the coordinator at each sample,
    so the load it serves is not slowed; an odd stack may come out torn.
    Raises RuntimeError when py-spy fails.
    """
    process = await asyncio.create_subprocess_exec(
        str(binary),
        "record",
        *("--pid", str(pid), "--duration", str(duration_s), "--rate", "100"),
        *("--format", "raw", "--output", str(output), "--nonblocking"),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        printed, _ = await process.communicate()
    except asyncio.CancelledError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        tail = printed.decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"py-spy record exited with code {process.returncode}: {tail}")
    with output.open(encoding="utf-8", errors="replace") as file:
        samples = parse_collapsed(file)
    return summarize("py-spy, 100 Hz", samples)
