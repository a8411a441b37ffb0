"""Steps the scenarios share: start a stack, add `@every 1s` jobs, watch a window, drain."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import aetcd

from bench.client import BulkResult, CoordinatorClient, recurring_job
from bench.cluster import Child, Cluster
from bench.settings import Context, progress
from taskscheduler.v1 import types_pb2

EVERY_SECOND = "@every 1s"
INTERVAL_MS = 1000
MB = 1_000_000
_RSS_SAMPLE_INTERVAL_S = 2.0


@dataclass
class Stack:
    etcd: Child
    coordinators: list[Child]
    agents: list[Child]

    @property
    def leader(self) -> Child:
        """The replica started first, which the stack waited to see elected."""
        return self.coordinators[0]

    @property
    def addresses(self) -> list[str]:
        return [child.address for child in self.coordinators]


async def start_stack(
    ctx: Context,
    cluster: Cluster,
    *,
    coordinators: int = 1,
    agents: int = 1,
    cprofile_output: Path | None = None,
) -> Stack:
    """Start etcd, replica 1 (and wait until it leads), the other replicas, then the agents."""
    etcd = await cluster.start_etcd()
    first = await cluster.start_coordinator(
        1, ctx.coordinator_flags, cprofile_output=cprofile_output
    )
    async with CoordinatorClient(first.address) as client:
        await client.wait_until_leader()
    replicas = [first]
    for number in range(2, coordinators + 1):
        replicas.append(await cluster.start_coordinator(number, ctx.coordinator_flags))
    addresses = [child.address for child in replicas]
    started_agents = [
        await cluster.start_agent(number, addresses, ctx.agent_settings())
        for number in range(1, agents + 1)
    ]
    progress(
        f"stack up: etcd, {len(replicas)} coordinator(s), {len(started_agents)} agent(s) "
        f"in {cluster.work_dir}"
    )
    return Stack(etcd=etcd, coordinators=replicas, agents=started_agents)


async def create_every_second_jobs(
    ctx: Context,
    client: CoordinatorClient,
    label: str,
    count: int,
    misfire_policy: types_pb2.MisfirePolicy = types_pb2.MISFIRE_POLICY_UNSPECIFIED,
) -> BulkResult:
    """Create `count` `@every 1s` jobs of the context's executor; raise if any is rejected."""
    jobs = (
        recurring_job(
            f"bench-{label}-{index:07d}", EVERY_SECOND, ctx.executor, ctx.payload, misfire_policy
        )
        for index in range(count)
    )
    result = await client.create_jobs(jobs, in_flight=ctx.sizes.create_in_flight)
    if result.errors:
        raise RuntimeError(
            f"{len(result.errors)} of {count} jobs rejected, first: {result.errors[0]}"
        )
    progress(f"created {count:,} {EVERY_SECOND} {ctx.executor} jobs in {result.elapsed_s:.1f} s")
    return result


@dataclass
class Window:
    """Counters and RSS samples taken while the load ran for one measurement window."""

    start_ms: int
    end_ms: int
    completed_by_counter: int
    rss_samples: dict[str, list[int]] = field(default_factory=dict)
    lag_metrics_ms: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def duration_s(self) -> float:
        return (self.end_ms - self.start_ms) / 1000

    def max_rss(self, name: str) -> int | None:
        samples = self.rss_samples.get(name)
        return max(samples) if samples else None


async def watch_window(
    client: CoordinatorClient, children: Sequence[Child], window_s: float
) -> Window:
    """Wait for the next whole second, then sample counters and RSS for `window_s` seconds."""
    start_s = math.ceil(time.time())
    await asyncio.sleep(max(0.0, start_s - time.time()))
    before = await client.metrics()
    end_s = start_s + window_s
    progress(f"measuring for {window_s:g} s")
    window = Window(start_ms=start_s * 1000, end_ms=int(end_s * 1000), completed_by_counter=0)
    while (remaining_s := end_s - time.time()) > 0:
        for child in children:
            rss = child.rss_bytes()
            if rss is not None:
                window.rss_samples.setdefault(child.name, []).append(rss)
        await asyncio.sleep(min(_RSS_SAMPLE_INTERVAL_S, remaining_s))
    after = await client.metrics()
    window.completed_by_counter = after.runs_completed_total - before.runs_completed_total
    window.lag_metrics_ms = (
        after.schedule_lag_p50_ms,
        after.schedule_lag_p95_ms,
        after.schedule_lag_p99_ms,
    )
    return window


async def stop_load(
    client: CoordinatorClient, job_ids: Sequence[str], timeout_s: float
) -> float | None:
    """Pause `job_ids`, wait until no run is queued or running; return the wait or None."""
    paused = await client.pause_jobs(job_ids)
    if paused.errors:
        progress(f"{len(paused.errors)} jobs not paused, first: {paused.errors[0]}")
    started = time.monotonic()
    deadline = started + timeout_s
    while time.monotonic() < deadline:
        metrics = await client.metrics()
        if metrics.queue_depth == 0 and metrics.running_runs == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.5)
    progress(f"runs still queued or running {timeout_s:g} s after pausing the jobs")
    return None


SKIPPED_SLOTS_NOTE = (
    "The jobs use the default misfire policy, `run once`: a leader that reaches a slot too late "
    "fires only the newest missed slot of the job. A slot without a run is therefore one that "
    "an overloaded leader dropped, or a run that was lost."
)


def sample_rss(children: Sequence[Child]) -> dict[str, int | None]:
    return {child.name: child.rss_bytes() for child in children}


async def etcd_db_size(endpoint: str) -> int | None:
    """Return etcd's database size in bytes from its Status call; None if etcd does not respond."""
    host, _, port = endpoint.rpartition(":")
    try:
        async with asyncio.timeout(10), aetcd.Client(host, int(port), timeout=10) as etcd:
            status = await etcd.status()
    except (aetcd.ClientError, OSError, TimeoutError) as error:
        progress(f"etcd status failed: {error!r}")
        return None
    return int(status.db_size)


def megabytes(value: int | None) -> float | None:
    """Bytes as MB (10^6 bytes), the unit of the memory targets."""
    return None if value is None else value / MB
