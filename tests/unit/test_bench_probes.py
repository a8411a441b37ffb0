"""The benchmark's readers: /proc and os-release text, profiles, run messages, and sizes."""

from __future__ import annotations

import cProfile
import dataclasses
import os
import sys
from pathlib import Path

import pytest
from google.protobuf import timestamp_pb2

from taskscheduler.v1 import types_pb2

# `bench` is a folder at the repository root run with `python -m bench`; it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.client import run_record_from_proto, timestamp_ms
from bench.machine import parse_cpu_model, parse_kib_field, parse_os_name, rss_bytes
from bench.profiling import (
    frame_name,
    parse_collapsed,
    summarize,
    summarize_pstats,
)
from bench.runs import RunRecord
from bench.settings import FULL, QUICK, Sizes, standin_sizes

CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B13
processor\t: 1
model name\t: AMD EPYC 7B13
"""

STATUS = """Name:\ttaskscheduler-c
VmPeak:\t  300000 kB
VmRSS:\t   56320 kB
Threads:\t9
"""


def test_parse_cpu_model() -> None:
    assert parse_cpu_model(CPUINFO) == "AMD EPYC 7B13"
    assert parse_cpu_model("processor\t: 0\n") == "unknown"


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        (STATUS, "VmRSS", 56320),
        (STATUS, "VmPeak", 300000),
        (STATUS, "VmSwap", None),
        ("MemTotal:       24684000 kB\nMemFree: 1 kB\n", "MemTotal", 24684000),
    ],
)
def test_parse_kib_field(text: str, name: str, expected: int | None) -> None:
    assert parse_kib_field(text, name) == expected


def test_parse_os_name() -> None:
    text = 'NAME="Debian GNU/Linux"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'

    assert parse_os_name(text) == "Debian GNU/Linux 12 (bookworm)"
    assert parse_os_name("NAME=x\n") == "unknown"


def test_rss_bytes_own_and_missing_process() -> None:
    own = rss_bytes(os.getpid())

    assert own is not None
    assert 1_000_000 < own < 10_000_000_000
    assert rss_bytes(2**22 + 12345) is None


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("complete_many (coordinator/dispatch.py:120)", "complete_many (coordinator/dispatch.py)"),
        ("<module> (taskscheduler-coordinator)", "<module> (taskscheduler-coordinator)"),
        (" f (a.py:1) ", "f (a.py)"),
    ],
)
def test_frame_name_drops_line_number(frame: str, expected: str) -> None:
    assert frame_name(frame) == expected


COLLAPSED = [
    "<module> (main.py:9);main (main.py:5);run (asyncio/runners.py:190);work (app/a.py:10) 6\n",
    "<module> (main.py:9);main (main.py:5);run (asyncio/runners.py:190);"
    "work (app/a.py:12);encode (app/codec.py:3) 3\n",
    "<module> (main.py:9);main (main.py:5);walk (app/b.py:1);walk (app/b.py:2) 5\n",
    "garbage line without a count\n",
]


def test_parse_collapsed_counts_self_and_total() -> None:
    samples = parse_collapsed(COLLAPSED)

    assert samples.total == 14
    assert samples.self_counts["work (app/a.py)"] == 6
    assert samples.self_counts["encode (app/codec.py)"] == 3
    assert samples.self_counts["walk (app/b.py)"] == 5
    assert samples.total_counts["work (app/a.py)"] == 9
    assert samples.total_counts["walk (app/b.py)"] == 5
    assert samples.total_counts["main (main.py)"] == 14


def test_summarize_leaves_plumbing_out_of_the_cumulative_table() -> None:
    summary = summarize("py-spy", parse_collapsed(COLLAPSED))

    assert summary.samples == 14
    assert [row.function for row in summary.by_self] == [
        "work (app/a.py)",
        "walk (app/b.py)",
        "encode (app/codec.py)",
    ]
    # main is on every stack and run is in asyncio/, so both count as plumbing.
    assert [row.function for row in summary.by_total] == [
        "work (app/a.py)",
        "walk (app/b.py)",
        "encode (app/codec.py)",
    ]
    assert summary.by_total[0].total_share == pytest.approx(9 / 14)
    assert summary.by_total[0].self_share == pytest.approx(6 / 14)


def test_summarize_no_samples() -> None:
    summary = summarize("py-spy", parse_collapsed([]))

    assert (summary.samples, summary.by_self, summary.by_total) == (0, (), ())


def _busy(rounds: int) -> int:
    return sum(index * index for index in range(rounds))


def test_summarize_pstats_names_the_costly_function(tmp_path: Path) -> None:
    output = tmp_path / "profile.pstats"
    profiler = cProfile.Profile()
    profiler.runcall(_busy, 200_000)
    profiler.dump_stats(output)

    summary = summarize_pstats(output)

    assert summary.samples > 0
    top_names = [row.function.split(" ")[0] for row in summary.by_self[:3]]
    assert "<genexpr>" in top_names


def timestamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def test_timestamp_ms() -> None:
    assert timestamp_ms(timestamp(1_700_000_000, 12_345_678)) == 1_700_000_000_012
    assert timestamp_ms(timestamp_pb2.Timestamp()) is None


def test_run_record_from_proto() -> None:
    message = types_pb2.Run(
        id="job-a.01700000000000",
        job_id="job-a",
        status=types_pb2.RUN_STATUS_COMPLETED,
        scheduled_at=timestamp(1_700_000_000),
        started_at=timestamp(1_700_000_000, 25_000_000),
    )

    assert run_record_from_proto(message) == RunRecord(
        job_id="job-a",
        run_id="job-a.01700000000000",
        status="completed",
        scheduled_ms=1_700_000_000_000,
        started_ms=1_700_000_000_025,
        completed_ms=None,
    )


def test_standin_sizes_cap_due_rates_only() -> None:
    sizes = standin_sizes(FULL)

    assert sizes.throughput_jobs == 20
    assert sizes.lag_jobs == 10
    assert sizes.probe_jobs == 5
    assert sizes.agent_max_concurrent == 32
    assert sizes.million_jobs == FULL.million_jobs
    assert sizes.window_s == FULL.window_s


def test_quick_sizes_are_smaller() -> None:
    assert QUICK.million_jobs < FULL.million_jobs
    assert QUICK.window_s < FULL.window_s
    assert QUICK.throughput_jobs == FULL.throughput_jobs


def test_sizes_reject_a_zero() -> None:
    with pytest.raises(ValueError, match="window_s must be positive"):
        dataclasses.replace(FULL, window_s=0)
    assert isinstance(FULL, Sizes)
