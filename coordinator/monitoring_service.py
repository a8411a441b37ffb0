"""MonitoringService: dashboard, metrics and health, from the cache and the leader's memory."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import grpc

from taskscheduler import __version__
from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec, etcd
from taskscheduler.coordinator.election import Election
from taskscheduler.coordinator.engine import Engine
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.model import Priority, RunStatus, WorkerStatus
from taskscheduler.coordinator.rpc import translate_errors
from taskscheduler.coordinator.state import LeaderState
from taskscheduler.errors import StoreUnavailableError
from taskscheduler.v1 import monitoring_pb2, monitoring_pb2_grpc


class MonitoringServicer(monitoring_pb2_grpc.MonitoringServiceServicer):
    def __init__(
        self,
        *,
        engine: Engine,
        election: Election,
        cache: JobCache,
        store: etcd.Etcd,
        keys: KeyLayout,
        clock: Clock,
        coordinator_id: str,
    ) -> None:
        self._engine = engine
        self._election = election
        self._cache = cache
        self._store = store
        self._keys = keys
        self._clock = clock
        self._coordinator_id = coordinator_id

    @translate_errors
    async def GetDashboard(
        self, request: monitoring_pb2.GetDashboardRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetDashboardResponse:
        jobs = self._cache.all()
        dashboard = monitoring_pb2.Dashboard(
            total_jobs=len(jobs),
            jobs_by_status=Counter(job.status.value for job in jobs),
            jobs_by_priority=Counter(job.spec.priority.value for job in jobs),
            leader=self._election.leader_address,
        )
        workers = await self._workers_by_status()
        dashboard.workers_online = workers[WorkerStatus.ONLINE.value]
        dashboard.workers_offline = workers[WorkerStatus.OFFLINE.value]
        runtime = self._engine.runtime
        if runtime is not None:
            state = runtime.state
            depth = await self._queue_depth(state)
            dashboard.queue_depth.update({p.value: n for p, n in depth.items()})
            dashboard.running_runs = len(state.leases)
        stats = self._engine.stats
        dashboard.recent_runs.extend(codec.run_to_proto(run) for run in stats.recent_runs)
        dashboard.runs_last_hour.update(stats.finished_since(self._clock.now(), timedelta(hours=1)))
        return monitoring_pb2.GetDashboardResponse(dashboard=dashboard)

    @translate_errors
    async def GetMetrics(
        self, request: monitoring_pb2.GetMetricsRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetMetricsResponse:
        stats = self._engine.stats
        now = self._clock.now()
        counters = stats.counters
        metrics = monitoring_pb2.Metrics(
            uptime_seconds=int((now - stats.started_at).total_seconds()),
            runs_fired_total=counters["runs_fired"],
            runs_completed_total=counters[f"runs_{RunStatus.COMPLETED.value}"],
            runs_failed_total=counters[f"runs_{RunStatus.FAILED.value}"],
            runs_timed_out_total=counters[f"runs_{RunStatus.TIMEOUT.value}"],
            attempts_retried_total=counters["attempts_retried"],
            leases_expired_total=counters["leases_expired"],
            schedule_lag_p50_ms=stats.lag_percentile_ms(50),
            schedule_lag_p95_ms=stats.lag_percentile_ms(95),
            schedule_lag_p99_ms=stats.lag_percentile_ms(99),
            run_duration_avg_ms=stats.average_duration_ms(),
            is_leader=self._election.is_leader,
        )
        collected_at = codec.datetime_to_timestamp(now)
        if collected_at is not None:
            metrics.collected_at.CopyFrom(collected_at)
        runtime = self._engine.runtime
        if runtime is not None:
            metrics.queue_depth = sum((await self._queue_depth(runtime.state)).values())
            metrics.running_runs = len(runtime.state.leases)
            metrics.workers_online = len(runtime.workers.online())
        return monitoring_pb2.GetMetricsResponse(metrics=metrics)

    async def _queue_depth(self, state: LeaderState) -> dict[Priority, int]:
        """Return the queued runs per priority, counting from etcd where memory holds only some."""
        depth = state.ready.depth_by_priority()
        for priority in list(state.etcd_only_from):
            counted = await self._store.range_prefix(self._keys.queue_of(priority), count_only=True)
            depth[priority] = counted.count
        return depth

    @translate_errors
    async def GetHealth(
        self, request: monitoring_pb2.GetHealthRequest, context: grpc.aio.ServicerContext
    ) -> monitoring_pb2.GetHealthResponse:
        problems: list[str] = []
        reachable = True
        try:
            alarms = await self._store.alarms()
            problems.extend(f"etcd alarm: {alarm}" for alarm in alarms)
        except StoreUnavailableError as error:
            reachable = False
            problems.append(f"etcd unreachable: {error}")
        if not self._election.leader_address:
            problems.append("no leader elected")
        return monitoring_pb2.GetHealthResponse(
            status="degraded" if problems else "ok",
            coordinator_id=self._coordinator_id,
            role="leader" if self._election.is_leader else "follower",
            leader=self._election.leader_address,
            etcd_reachable=reachable,
            problems=problems,
            version=__version__,
        )

    async def _workers_by_status(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        runtime = self._engine.runtime
        if runtime is not None:
            counts[WorkerStatus.ONLINE.value] = len(runtime.workers.online())
            total = (await self._store.range_prefix(self._keys.workers, count_only=True)).count
            counts[WorkerStatus.OFFLINE.value] = total - counts[WorkerStatus.ONLINE.value]
            return counts
        async for page in self._store.pages(self._keys.workers):
            for kv in page.kvs:
                counts[codec.decode_worker(kv.key, kv.value, kv.mod_revision).status.value] += 1
        return counts
