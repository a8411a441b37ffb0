"""Scenario 2: schedule lag at a fixed due rate.

Lag is the run's recorded attempt start (`startedAt`, as the agent
reported it) minus its slot (`scheduledAt`). Every `@every 1s` job fires
on the same whole second, so each second's runs arrive as one burst and
the last run of a burst waits longest.
"""

from __future__ import annotations

import asyncio

from bench.client import CoordinatorClient
from bench.cluster import Cluster
from bench.figures import Figure, Section, at_most, below
from bench.runs import check_slots, lags_ms
from bench.scenarios.stack import (
    INTERVAL_MS,
    SKIPPED_SLOTS_NOTE,
    create_every_second_jobs,
    start_stack,
    stop_load,
    watch_window,
)
from bench.settings import Context, progress
from bench.stats import Distribution

TARGET_P99_MS = 50


async def run_schedule_lag(ctx: Context) -> list[Section]:
    sizes = ctx.sizes
    async with Cluster(ctx.scenario_dir("lag")) as cluster:
        stack = await start_stack(ctx, cluster, agents=sizes.agents)
        async with CoordinatorClient(stack.leader.address) as client:
            created = await create_every_second_jobs(ctx, client, "lag", sizes.lag_jobs)
            progress(f"warming up for {sizes.lag_warmup_s:g} s")
            await asyncio.sleep(sizes.lag_warmup_s)
            window = await watch_window(client, stack.coordinators, sizes.lag_window_s)
            drain_s = await stop_load(client, created.job_ids, sizes.drain_timeout_s)
            histories = await client.histories(created.job_ids)

    runs = [run for records in histories.values() for run in records]
    lags = lags_ms(runs, window.start_ms, window.end_ms)
    lag = Distribution.of(lags)
    early = sum(1 for value in lags if value < 0)
    slots = check_slots(
        histories, start_ms=window.start_ms, end_ms=window.end_ms, interval_ms=INTERVAL_MS
    )
    p50, p95, p99 = window.lag_metrics_ms
    section = Section(
        title="2. Schedule lag at a fixed due rate",
        method=(
            f"{sizes.lag_jobs:,} `@every 1s` `{ctx.executor}` jobs, a due rate of "
            f"{sizes.lag_jobs:,} runs/s, on {len(stack.agents)} agent(s). Lag = the run's "
            "`startedAt` (the agent's report of the attempt start) minus its `scheduledAt`, "
            f"for every run scheduled in a {window.duration_s:g} s window after "
            f"{sizes.lag_warmup_s:g} s of warm-up. All jobs share each whole-second slot, so "
            "every second starts with a burst of runs."
        ),
        figures=[
            Figure(name="runs measured", value=lag.count if lag else 0, unit=""),
            Figure(name="lag p50", value=lag.p50 if lag else None, unit="ms"),
            Figure(name="lag p95", value=lag.p95 if lag else None, unit="ms"),
            Figure(
                name="lag p99",
                value=lag.p99 if lag else None,
                unit="ms",
                target=below(TARGET_P99_MS),
            ),
            Figure(name="lag max", value=lag.max if lag else None, unit="ms"),
            Figure(name="runs started before their slot", value=early, unit="", target=at_most(0)),
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
        ],
    )
    section.notes.append(
        "The coordinator's own metric (due time to assignment, its last 1000 attempts, read "
        f"at the window's end): p50 {p50:.1f} ms, p95 {p95:.1f} ms, p99 {p99:.1f} ms."
    )
    section.notes.append(
        "How the burst starts on time: runs are written up to `--fire-ahead-ms` (500) before "
        "their slot, and handed to the agents up to `--hand-ahead-ms` (250) before it, with "
        "the slot as the attempt's start instant. The fenced etcd transactions that move the "
        "burst to running and the assignment's round trip therefore happen before the slot. "
        "Each agent starts its share of the burst from one timer at the slot, one attempt after "
        "another on its event loop; what is left of the lag is that pass and the timer's wake-up. "
        "The coordinator's metric is 0 for a run handed out before it is due."
    )
    if drain_s is None:
        section.notes.append("Runs were still queued or running when the drain timed out.")
    if slots.missing:
        section.notes.append(SKIPPED_SLOTS_NOTE)
    return [section]
