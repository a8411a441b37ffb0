"""Scenario 3: a million rarely firing jobs, then a leader failover under them.

Two replicas share one etcd: replica 1 leads, replica 2 follows with a
warm job cache. The jobs are created with BatchCreateJobs, a few `@every
1s` probe jobs run beside them, and replica 1 is killed with SIGKILL.
The probe jobs catch up missed slots, so their runs show the whole gap.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from bench.client import BulkResult, CoordinatorClient, recurring_job
from bench.cluster import Cluster
from bench.figures import Figure, Section, at_most, below
from bench.runs import RunRecord, SlotCheck, check_slots, lags_ms
from bench.scenarios.stack import (
    INTERVAL_MS,
    Stack,
    create_every_second_jobs,
    etcd_db_size,
    megabytes,
    start_stack,
    stop_load,
)
from bench.settings import SINGLE_CREATE_LIMIT, Context, progress
from bench.stats import Distribution
from taskscheduler.v1 import types_pb2

# Midnight UTC on 1 January: a schedule that fires once a year.
RARE_SCHEDULE = "0 0 1 1 *"
TARGET_RSS_MB = 2000
TARGET_FAILOVER_S = 10
_SYNC_TIMEOUT_S = 300.0
# Probe slots this close to the end of observation may not have finished.
_TAIL_MARGIN_S = 3
_LEAD_IN_S = 5


@dataclass
class Failover:
    # The first slot at which every probe job existed.
    first_slot_ms: int
    killed_ms: int
    elected_s: float
    observed_until_ms: int
    new_leader_rss: int | None
    probe_runs: dict[str, list[RunRecord]]

    def resumed_s(self) -> float | None:
        """Seconds from the kill to the first started run of a slot after the kill."""
        starts = [
            run.started_ms
            for runs in self.probe_runs.values()
            for run in runs
            if run.scheduled_ms > self.killed_ms and run.started_ms is not None
        ]
        return (min(starts) - self.killed_ms) / 1000 if starts else None

    def window(self) -> tuple[int, int]:
        """Return the probe slots checked: from just before the kill to just before the end."""
        start = max(self.first_slot_ms, (self.killed_ms // 1000 - _LEAD_IN_S) * 1000)
        return start, self.observed_until_ms - _TAIL_MARGIN_S * 1000


async def run_million(ctx: Context) -> list[Section]:
    async with Cluster(ctx.scenario_dir("million")) as cluster:
        stack = await start_stack(ctx, cluster, coordinators=2, agents=1)
        leader, follower = stack.coordinators
        async with (
            CoordinatorClient(leader.address) as leader_client,
            CoordinatorClient(follower.address) as follower_client,
        ):
            rss_before = leader.rss_bytes()
            created = await _create_rare_jobs(ctx, leader_client)
            await _wait_follower_synced(follower_client, len(created.job_ids))
            rss_after = {child.name: child.rss_bytes() for child in stack.coordinators}
            db_size = await etcd_db_size(cluster.etcd_endpoint)
            probes = await create_every_second_jobs(
                ctx, leader_client, "probe", ctx.sizes.probe_jobs, types_pb2.MISFIRE_POLICY_CATCH_UP
            )
            # Each probe job fires from the first slot after its creation, so all fire from here.
            first_slot_ms = (int(time.time()) + 1) * 1000
            await asyncio.sleep(ctx.sizes.probe_warmup_s)
            failover = await _fail_over(ctx, stack, follower_client, probes.job_ids, first_slot_ms)
    return [_section(ctx, stack, created, rss_before, rss_after, db_size, failover)]


async def _create_rare_jobs(ctx: Context, client: CoordinatorClient) -> BulkResult:
    count = ctx.sizes.million_jobs
    if not await client.supports_batch_create():
        count = min(count, SINGLE_CREATE_LIMIT)
        progress(f"BatchCreateJobs is not served; creating {count:,} jobs one call at a time")
    jobs = (
        recurring_job(f"bench-rare-{index:07d}", RARE_SCHEDULE, ctx.executor, ctx.payload)
        for index in range(count)
    )
    progress(f"creating {count:,} jobs on {RARE_SCHEDULE!r}")
    result = await client.create_jobs(jobs, in_flight=ctx.sizes.create_in_flight)
    progress(
        f"created {len(result.job_ids):,} jobs in {result.elapsed_s:.1f} s "
        f"({len(result.errors):,} rejected)"
    )
    return result


async def _wait_follower_synced(client: CoordinatorClient, expected: int) -> None:
    """Wait until the follower's job cache has `expected` jobs, so the RSS readings compare."""
    deadline = time.monotonic() + _SYNC_TIMEOUT_S
    total = -1
    while time.monotonic() < deadline:
        total = await client.job_total()
        if total >= expected:
            return
        await asyncio.sleep(2.0)
    progress(f"follower holds {total:,} of {expected:,} jobs after {_SYNC_TIMEOUT_S:g} s")


async def _fail_over(
    ctx: Context,
    stack: Stack,
    follower_client: CoordinatorClient,
    probe_ids: list[str],
    first_slot_ms: int,
) -> Failover:
    leader, follower = stack.coordinators
    progress(f"killing the leader {leader.name} with SIGKILL")
    killed_s = time.time()
    leader.kill()
    await follower_client.wait_until_leader(timeout_s=120.0)
    elected_s = time.time() - killed_s
    progress(f"{follower.name} leads {elected_s:.2f} s after the kill")

    observed_until_s = killed_s + ctx.sizes.failover_observe_s
    await asyncio.sleep(max(0.0, observed_until_s - time.time()))
    new_leader_rss = follower.rss_bytes()
    await stop_load(follower_client, probe_ids, ctx.sizes.drain_timeout_s)
    return Failover(
        first_slot_ms=first_slot_ms,
        killed_ms=int(killed_s * 1000),
        elected_s=elected_s,
        observed_until_ms=int(observed_until_s * 1000),
        new_leader_rss=new_leader_rss,
        probe_runs=await follower_client.histories(probe_ids),
    )


def _section(
    ctx: Context,
    stack: Stack,
    created: BulkResult,
    rss_before: int | None,
    rss_after: dict[str, int | None],
    db_size: int | None,
    failover: Failover,
) -> Section:
    leader, follower = stack.coordinators
    start_ms, end_ms = failover.window()
    runs = [run for records in failover.probe_runs.values() for run in records]
    lag = Distribution.of(lags_ms(runs, start_ms, end_ms))
    slots = check_slots(
        failover.probe_runs, start_ms=start_ms, end_ms=end_ms, interval_ms=INTERVAL_MS
    )
    count = len(created.job_ids)
    section = Section(
        title="3. A million recurring jobs, and a leader failover",
        method=(
            f"{count:,} recurring jobs on `{RARE_SCHEDULE}` created with "
            f"{_create_method(ctx, created)}; "
            "coordinator RSS from /proc/PID/status VmRSS (1 MB = 10^6 bytes); etcd size from its "
            f"Status call. Then {ctx.sizes.probe_jobs} `@every 1s` probe jobs with misfire policy "
            f"catch-up, and after {ctx.sizes.probe_warmup_s:g} s the leader is killed with SIGKILL "
            "while replica 2 follows. Failover time runs from the kill until replica 2's GetHealth "
            "reports `leader`, and until the first probe slot after the kill starts on the agent."
        ),
        figures=[
            Figure(name="jobs created", value=count, unit=""),
            Figure(name="create time", value=created.elapsed_s, unit="s", digits=1),
            Figure(
                name="create rate",
                value=count / created.elapsed_s if created.elapsed_s else None,
                unit="jobs/s",
            ),
            Figure(
                name=f"{leader.name} (leader) RSS before the jobs",
                value=megabytes(rss_before),
                unit="MB",
            ),
            *_rss_figures(rss_after),
            Figure(
                name=f"{follower.name} RSS after taking over",
                value=megabytes(failover.new_leader_rss),
                unit="MB",
                target=below(TARGET_RSS_MB),
            ),
            Figure(
                name="etcd database size with the jobs",
                value=megabytes(db_size),
                unit="MB",
                digits=1,
            ),
            Figure(
                name="failover: new leader reports `leader`",
                value=failover.elected_s,
                unit="s",
                digits=2,
                target=below(TARGET_FAILOVER_S),
            ),
            Figure(
                name="failover: first post-kill slot started",
                value=failover.resumed_s(),
                unit="s",
                digits=2,
                target=below(TARGET_FAILOVER_S),
            ),
            *_probe_figures(lag, slots),
        ],
    )
    section.notes += [f"Probe slot check example: {example}" for example in slots.examples]
    if created.errors:
        section.notes.append(f"{len(created.errors):,} jobs rejected, first: {created.errors[0]}")
    return section


def _create_method(ctx: Context, created: BulkResult) -> str:
    if created.batched:
        return f"BatchCreateJobs, 1000 a request, {ctx.sizes.create_in_flight} requests in flight"
    return "single CreateJob calls, because the coordinator does not serve BatchCreateJobs"


def _rss_figures(rss_after: dict[str, int | None]) -> list[Figure]:
    return [
        Figure(
            name=f"{name} RSS with the jobs loaded",
            value=megabytes(rss),
            unit="MB",
            target=below(TARGET_RSS_MB),
        )
        for name, rss in rss_after.items()
    ]


def _probe_figures(lag: Distribution | None, slots: SlotCheck) -> list[Figure]:
    return [
        Figure(
            name="probe lag across the failover, p50", value=lag.p50 if lag else None, unit="ms"
        ),
        Figure(
            name="probe lag across the failover, p99", value=lag.p99 if lag else None, unit="ms"
        ),
        Figure(
            name="probe lag across the failover, max", value=lag.max if lag else None, unit="ms"
        ),
        Figure(
            name="probe slots without a run (skipped or lost)",
            value=slots.missing,
            unit="",
            target=at_most(0),
        ),
        Figure(
            name="probe slots with extra runs (doubled)",
            value=slots.doubled + slots.off_slot,
            unit="",
            target=at_most(0),
        ),
        Figure(
            name="probe slots not completed", value=slots.unfinished, unit="", target=at_most(0)
        ),
    ]
