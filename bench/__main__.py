"""`python -m bench [--quick]`: run the scenarios, print the figures, write the page.

The full run writes docs/benchmarks.md. A quick run (`--quick`, under two
minutes) writes build/benchmarks-quick.md instead, so that a routine
check does not overwrite the committed figures; `--output` picks any path.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import shlex
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc

from bench.cluster import ClusterError, flag_list
from bench.figures import Section
from bench.machine import describe_machine
from bench.profiling import find_py_spy, py_spy_can_attach
from bench.report import RunInfo, render_console, render_page
from bench.scenarios.lag import run_schedule_lag
from bench.scenarios.million import run_million
from bench.scenarios.throughput import run_throughput
from bench.settings import FULL, QUICK, Context, Sizes, progress, standin_sizes
from taskscheduler.coordinator.config import parse_config

SCENARIOS: dict[str, Callable[[Context], Awaitable[list[Section]]]] = {
    "throughput": run_throughput,
    "lag": run_schedule_lag,
    "million": run_million,
}
FULL_OUTPUT = Path("docs/benchmarks.md")
QUICK_OUTPUT = Path("build/benchmarks-quick.md")
# Coordinator settings that describe where it runs, not how it schedules.
_PLACEMENT_FIELDS = {"listen", "etcd_endpoints", "advertise", "prefix", "coordinator_id"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=(
            "Start etcd, coordinators and agents on loopback, measure throughput, schedule lag, "
            "a million jobs with a failover, agent memory and the coordinator's hot path, and "
            "write the figures with their targets to a Markdown page."
        ),
    )
    parser.add_argument(
        "--quick", action="store_true", help="smaller counts and short windows; under 2 minutes"
    )
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default: {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--executor",
        choices=("auto", "noop", "shell"),
        default="auto",
        help="executor of the benchmark jobs; auto uses noop when the agent has it, else shell "
        "with small due rates (default: auto)",
    )
    parser.add_argument(
        "--profiler",
        choices=("auto", "py-spy", "cprofile", "none"),
        default="auto",
        help="how to profile the leader in scenario 1; auto uses py-spy when it is installed "
        "and may attach, else cProfile (default: auto)",
    )

    # Where the page and the logs go.
    parser.add_argument(
        "--output",
        type=Path,
        help="page to write (default: docs/benchmarks.md, quick: build/benchmarks-quick.md)",
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        help="folder for etcd data and process logs (default: a new temporary folder)",
    )
    parser.add_argument(
        "--keep-work-dir", action="store_true", help="keep the work folder after a successful run"
    )

    # Size overrides, for trying the harness at other scales.
    parser.add_argument(
        "--throughput-jobs", type=int, help="@every 1s jobs of scenario 1, its due rate in runs/s"
    )
    parser.add_argument("--million-jobs", type=int, help="rarely firing jobs of scenario 3")
    parser.add_argument("--window-s", type=float, help="measurement window of scenario 1, seconds")
    return parser


def agent_has_executor(name: str) -> bool:
    """Return whether the agent's built-in executors include `name`."""
    try:
        from taskscheduler.agent.executors import default_registry

        return default_registry().get(name) is not None
    except Exception as error:
        progress(f"could not list the agent's executors ({error!r}); assuming no {name!r}")
        return False


def choose_executor(requested: str) -> str:
    if requested != "auto":
        return requested
    return "noop" if agent_has_executor("noop") else "shell"


def choose_profiler(requested: str) -> str:
    """Resolve 'auto' to 'py-spy' when it is installed and may attach, else to 'cprofile'."""
    if requested != "auto":
        return requested
    binary = find_py_spy()
    if binary is not None and py_spy_can_attach(binary):
        return "py-spy"
    progress("py-spy is missing or may not attach here; the coordinator runs under cProfile")
    return "cprofile"


def resolve_sizes(args: argparse.Namespace, executor: str) -> Sizes:
    sizes = QUICK if args.quick else FULL
    if executor != "noop":
        sizes = standin_sizes(sizes)
    overrides = {
        "throughput_jobs": args.throughput_jobs,
        "million_jobs": args.million_jobs,
        "window_s": args.window_s,
    }
    return dataclasses.replace(sizes, **{k: v for k, v in overrides.items() if v is not None})


def settings_rows(ctx: Context) -> tuple[tuple[str, str], ...]:
    config = parse_config(flag_list(ctx.coordinator_flags))
    coordinator = ", ".join(
        _setting_text(field.name, getattr(config, field.name))
        for field in dataclasses.fields(config)
        if field.name not in _PLACEMENT_FIELDS
    )
    agent = ctx.agent_settings()
    sizes = ", ".join(
        f"{f.name}={getattr(ctx.sizes, f.name):,}" for f in dataclasses.fields(ctx.sizes)
    )
    return (
        (
            "job executor",
            f"`{ctx.executor}`" + (" (a stand-in for noop)" if ctx.standin else ""),
        ),
        ("coordinator", f"defaults of `taskscheduler-coordinator --help`: {coordinator}"),
        ("agent", " ".join(agent.flags()) + "; other flags default"),
        ("etcd", "one member, fsync on, data dir on disk, auto-compaction 5m, --max-txn-ops 1024"),
        ("profiler", ctx.profiler),
        ("sizes", sizes),
    )


def _setting_text(name: str, value: object) -> str:
    if isinstance(value, timedelta):
        return f"{name}_s={value.total_seconds():g}"
    return f"{name}={value}"


def caveats(ctx: Context) -> tuple[str, ...]:
    notes = []
    if ctx.standin:
        notes.append(
            "These jobs ran `shell` with `true` in place of `noop`, at small due rates. The "
            "figures check the harness only and cannot be held to the targets."
        )
    if ctx.quick:
        notes.append("Quick mode: shorter windows and fewer jobs than the full benchmark.")
    return tuple(notes)


async def run_scenarios(ctx: Context, names: Sequence[str]) -> tuple[list[Section], list[str]]:
    """Run each scenario in turn; a failed one is reported and the next one still runs."""
    sections: list[Section] = []
    failures: list[str] = []
    for name in names:
        progress(f"scenario {name}")
        try:
            sections += await SCENARIOS[name](ctx)
        except (ClusterError, RuntimeError, TimeoutError, OSError, grpc.RpcError) as error:
            traceback.print_exc()
            failures.append(f"scenario {name} failed: {error}")
            progress(failures[-1].splitlines()[0])
    sections.sort(key=lambda section: section.title)
    return sections, failures


def parse_scenarios(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown or not names:
        raise SystemExit(
            f"python -m bench: error: --scenarios takes {','.join(SCENARIOS)}, got {text!r}"
        )
    return names


async def main_async(args: argparse.Namespace, argv: Sequence[str]) -> int:
    loop = asyncio.get_running_loop()
    current = asyncio.current_task()
    assert current is not None
    # SIGTERM cancels like Ctrl-C does, so every cluster is stopped on the way out.
    loop.add_signal_handler(signal.SIGTERM, current.cancel)

    names = parse_scenarios(args.scenarios)
    started = time.monotonic()
    executor = choose_executor(args.executor)
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="taskscheduler-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        work_dir=work_dir,
        sizes=resolve_sizes(args, executor),
        executor=executor,
        quick=args.quick,
        profiler=choose_profiler(args.profiler) if "throughput" in names else "none",
    )
    progress(f"executor {executor}, profiler {ctx.profiler}, work folder {work_dir}")
    sections, failures = await run_scenarios(ctx, names)

    info = RunInfo(
        date=datetime.now(UTC),
        command=" ".join(shlex.quote(part) for part in [sys.executable, "-m", "bench", *argv]),
        mode="quick" if args.quick else "full",
        wall_time_s=time.monotonic() - started,
        settings=settings_rows(ctx),
        caveats=caveats(ctx) + tuple(failures),
    )
    output = args.output or (QUICK_OUTPUT if args.quick else FULL_OUTPUT)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render_page(describe_machine(), info, sections))
    print(render_console(sections))
    print(f"wall time {info.wall_time_s:.0f} s; page written to {output}")
    if failures:
        print(f"logs kept in {work_dir}", file=sys.stderr)
        return 1
    if args.keep_work_dir or args.work_dir:
        print(f"logs kept in {work_dir}")
    else:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return asyncio.run(main_async(args, argv))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("python -m bench: interrupted; every process it started was stopped", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
