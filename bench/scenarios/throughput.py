"""Scenarios 1, 4 and 5 on one stack: sustained throughput, agent memory, and the hot-path profile.

Agent RSS and the profile are measured under the throughput load, so the
three share a stack: idle agent RSS first, then the jobs, a warm-up, the
measurement window, the profile, and last the check of every slot.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from bench.client import CoordinatorClient
from bench.cluster import Cluster
from bench.figures import Figure, Section, Table, at_least, at_most, below
from bench.profiling import ProfileSummary, find_py_spy, record_py_spy, summarize_pstats
from bench.runs import RunRecord, check_slots, completed_between, lags_ms
from bench.scenarios.stack import (
    INTERVAL_MS,
    Stack,
    Window,
    create_every_second_jobs,
    etcd_db_size,
    megabytes,
    sample_rss,
    start_stack,
    stop_load,
    watch_window,
)
from bench.settings import Context, progress
from bench.stats import Distribution, rate_per_s
from taskscheduler.v1 import types_pb2

CATCH_UP_NOTE = (
    "The jobs use misfire policy `catch_up`, so a leader that falls behind still fires every "
    "missed slot, and runs complete after their slot instead of being skipped. The completion "
    "rate is what the system sustains. A slot without a run after the drain is a lost run, "
    "unless the leader was still behind when the jobs were paused at the window's end. A "
    "paused job fires no more slots, so the slots it had not reached then have no run."
)

TARGET_RUNS_PER_S = 2000
TARGET_AGENT_RSS_MB = 80
# Idle agent RSS is read this long after registration, so not in the middle of start-up.
_IDLE_SETTLE_S = 2.0


@dataclass
class Observed:
    """Everything scenario 1 measured, for the three sections."""

    stack: Stack
    idle_rss: dict[str, int | None]
    window: Window
    histories: dict[str, list[RunRecord]]
    drain_s: float | None
    db_size: int | None
    profile: ProfileSummary | None
    profile_error: str = ""


async def run_throughput(ctx: Context) -> list[Section]:
    folder = ctx.scenario_dir("throughput")
    cprofile_output = folder / "coordinator.pstats" if ctx.profiler == "cprofile" else None
    async with Cluster(folder) as cluster:
        stack = await start_stack(
            ctx, cluster, agents=ctx.sizes.agents, cprofile_output=cprofile_output
        )
        async with CoordinatorClient(stack.leader.address) as client:
            observed = await _load_and_measure(ctx, cluster, stack, client, folder)
    # The cProfile file is written when the coordinator exits, so only now.
    if cprofile_output is not None:
        observed.profile = _read_pstats(cprofile_output, observed)
    return [
        throughput_section(ctx, observed),
        agent_memory_section(ctx, observed),
        profile_section(ctx, observed),
    ]


async def _load_and_measure(
    ctx: Context, cluster: Cluster, stack: Stack, client: CoordinatorClient, folder: Path
) -> Observed:
    sizes = ctx.sizes
    await asyncio.sleep(_IDLE_SETTLE_S)
    idle_rss = sample_rss(stack.agents)

    # catch_up: a leader running behind still fires every slot, so every slot must have a run.
    created = await create_every_second_jobs(
        ctx, client, "throughput", sizes.throughput_jobs, types_pb2.MISFIRE_POLICY_CATCH_UP
    )
    progress(f"warming up for {sizes.warmup_s:g} s")
    await asyncio.sleep(sizes.warmup_s)
    window = await watch_window(client, [*stack.agents, *stack.coordinators], sizes.window_s)

    profile, profile_error = None, ""
    if ctx.profiler == "py-spy":
        profile, profile_error = await _profile_leader(stack, folder, sizes.profile_s)

    progress("pausing the jobs and waiting for the last runs")
    drain_s = await stop_load(client, created.job_ids, sizes.drain_timeout_s)
    progress(f"reading the history of {len(created.job_ids):,} jobs")
    histories = await client.histories(created.job_ids)
    return Observed(
        stack=stack,
        idle_rss=idle_rss,
        window=window,
        histories=histories,
        drain_s=drain_s,
        db_size=await etcd_db_size(cluster.etcd_endpoint),
        profile=profile,
        profile_error=profile_error,
    )


async def _profile_leader(
    stack: Stack, folder: Path, duration_s: int
) -> tuple[ProfileSummary | None, str]:
    binary = find_py_spy()
    if binary is None:
        return None, "py-spy is not installed"
    progress(f"profiling the leader with py-spy for {duration_s} s")
    try:
        summary = await record_py_spy(
            binary, stack.leader.pid, duration_s, folder / "coordinator.py-spy.txt"
        )
    except RuntimeError as error:
        return None, str(error)
    return summary, ""


def _read_pstats(path: Path, observed: Observed) -> ProfileSummary | None:
    try:
        return summarize_pstats(path)
    except (OSError, EOFError, TypeError) as error:
        observed.profile_error = f"cProfile output {path} unreadable: {error}"
        return None


def throughput_section(ctx: Context, observed: Observed) -> Section:
    window = observed.window
    runs = [run for records in observed.histories.values() for run in records]
    completed = completed_between(runs, window.start_ms, window.end_ms)
    per_s = rate_per_s(completed, window.duration_s)
    slots = check_slots(
        observed.histories, start_ms=window.start_ms, end_ms=window.end_ms, interval_ms=INTERVAL_MS
    )
    lag = Distribution.of(lags_ms(runs, window.start_ms, window.end_ms))
    section = Section(
        title="1. Sustained throughput",
        method=(
            f"{ctx.sizes.throughput_jobs:,} recurring `{ctx.executor}` jobs on `@every 1s` "
            f"(a due rate of {ctx.sizes.throughput_jobs:,} runs/s) on {len(observed.stack.agents)} "
            f"agent(s) with `--max-concurrent {ctx.sizes.agent_max_concurrent}`, etcd with fsync "
            f"on. After {ctx.sizes.warmup_s:g} s of warm-up, a {window.duration_s:g} s window; "
            "completions are counted from the runs' recorded `completedAt`, read back over "
            "gRPC (ListJobHistory), and every job's runs scheduled in the window are checked "
            "against the expected 1 s slots."
        ),
        figures=[
            Figure(
                name="completed runs per second",
                value=per_s,
                unit="runs/s",
                target=at_least(TARGET_RUNS_PER_S),
            ),
            Figure(
                name="completed runs per minute",
                value=per_s * 60,
                unit="runs/min",
                target=at_least(TARGET_RUNS_PER_S * 60),
            ),
            Figure(
                name="runs completed per the coordinator's counter",
                value=rate_per_s(window.completed_by_counter, window.duration_s),
                unit="runs/s",
            ),
            Figure(name="slots checked", value=slots.expected, unit=""),
            Figure(
                name="slots without a run (skipped or lost)",
                value=slots.missing,
                unit="",
                target=at_most(0),
            ),
            Figure(
                name="extra runs on a slot (doubled)",
                value=slots.doubled + slots.off_slot,
                unit="",
                target=at_most(0),
            ),
            Figure(
                name="slots whose run had not completed after the drain",
                value=slots.unfinished,
                unit="",
                target=at_most(0),
            ),
            *_lag_figures("schedule lag under this load", lag),
            Figure(
                name="coordinator RSS, max in the window",
                value=megabytes(window.max_rss(observed.stack.leader.name)),
                unit="MB",
            ),
            Figure(
                name="etcd database size after the run",
                value=megabytes(observed.db_size),
                unit="MB",
                digits=1,
            ),
        ],
    )
    if observed.drain_s is None:
        section.notes.append("Runs were still queued or running when the drain timed out.")
    section.notes.append(CATCH_UP_NOTE)
    section.notes += [f"Slot check example: {example}" for example in slots.examples]
    return section


def _lag_figures(label: str, lag: Distribution | None) -> list[Figure]:
    if lag is None:
        return [Figure(name=label, value=None, unit="ms")]
    return [
        Figure(name=f"{label}, p50", value=lag.p50, unit="ms"),
        Figure(name=f"{label}, p99", value=lag.p99, unit="ms"),
        Figure(name=f"{label}, max", value=lag.max, unit="ms"),
    ]


def agent_memory_section(ctx: Context, observed: Observed) -> Section:
    figures = []
    for agent in observed.stack.agents:
        figures += [
            Figure(
                name=f"{agent.name} RSS idle",
                value=megabytes(observed.idle_rss.get(agent.name)),
                unit="MB",
                digits=1,
                target=below(TARGET_AGENT_RSS_MB),
            ),
            Figure(
                name=f"{agent.name} RSS under load, max",
                value=megabytes(observed.window.max_rss(agent.name)),
                unit="MB",
                digits=1,
                target=below(TARGET_AGENT_RSS_MB),
            ),
        ]
    return Section(
        title="4. Agent memory",
        method=(
            "VmRSS from /proc/PID/status of each agent: once registered and idle, and sampled "
            "every 2 s during the throughput window (the maximum is shown). 1 MB = 10^6 bytes."
        ),
        figures=figures,
    )


def profile_section(ctx: Context, observed: Observed) -> Section:
    profile = observed.profile
    section = Section(
        title="5. Coordinator hot path",
        method=_profile_method(ctx),
    )
    if profile is None:
        section.notes.append(f"No profile: {observed.profile_error or 'profiling was off'}.")
        return section
    section.notes.append(f"Profiled: {profile.size} ({profile.source}).")
    if ctx.profiler == "py-spy":
        section.notes.append(
            "py-spy sees Python frames only, so time in C code called from Python, such as "
            "asyncio's C task step and gRPC's Cython layer run from `Handle._run`, counts as "
            "self time of the calling Python function."
        )
    section.tables += [
        Table(
            title="Top 10 by self time (the function's own code)",
            columns=("function (file)", "self", "cumulative"),
            rows=tuple(
                (f"`{row.function}`", f"{row.self_share:.1%}", f"{row.total_share:.1%}")
                for row in profile.by_self
            ),
        ),
        Table(
            title=(
                "Top 10 by cumulative time (with callees; the event loop, thread and module "
                "entry frames, and frames on 80 % or more of the samples, are left out)"
            ),
            columns=("function (file)", "cumulative", "self"),
            rows=tuple(
                (f"`{row.function}`", f"{row.total_share:.1%}", f"{row.self_share:.1%}")
                for row in profile.by_total
            ),
        ),
    ]
    return section


def _profile_method(ctx: Context) -> str:
    if ctx.profiler == "py-spy":
        return (
            f"py-spy sampled the leader at 100 Hz for {ctx.sizes.profile_s} s right after the "
            "throughput window, under the same load; idle samples are dropped, so shares are "
            "of the time the coordinator was busy."
        )
    if ctx.profiler == "cprofile":
        return (
            "The leader ran under cProfile for its whole life (start, load and stop), so idle "
            "time and start-up are included; shares are of the total profiled time."
        )
    return "Profiling was turned off."
