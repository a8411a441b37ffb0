"""`taskscheduler-coordinator`: one coordinator replica.

Starts the gRPC server (jobs, workers, monitoring, standard health and
reflection), keeps the job cache warm, and campaigns for leadership. On
SIGINT or SIGTERM it stops taking calls, steps down so a follower takes
over at once, and exits 0. It exits 1 with one line when it cannot start.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from taskscheduler import logs
from taskscheduler.clock import SystemClock
from taskscheduler.coordinator import etcd
from taskscheduler.coordinator.config import CoordinatorConfig, parse_config
from taskscheduler.coordinator.election import Election, LeaderInfo
from taskscheduler.coordinator.engine import Engine, EngineSettings
from taskscheduler.coordinator.job_service import JobServicer
from taskscheduler.coordinator.jobcache import JobCache
from taskscheduler.coordinator.jobs import JobRepository
from taskscheduler.coordinator.keys import KeyLayout
from taskscheduler.coordinator.monitoring_service import MonitoringServicer
from taskscheduler.coordinator.schedule_service import ScheduleServicer
from taskscheduler.coordinator.worker_service import AgentTimings, WorkerServicer
from taskscheduler.errors import StoreUnavailableError
from taskscheduler.v1 import (
    jobs_pb2,
    jobs_pb2_grpc,
    monitoring_pb2,
    monitoring_pb2_grpc,
    schedules_pb2,
    schedules_pb2_grpc,
    workers_pb2,
    workers_pb2_grpc,
)

log = logs.get_logger(__name__)


class StartupError(Exception):
    """The coordinator cannot start; the message is the one line printed."""


async def wait_for_etcd(store: etcd.Etcd, keys: KeyLayout, timeout_s: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        try:
            await store.get(keys.leader)
            return
        except StoreUnavailableError as error:
            if asyncio.get_running_loop().time() >= deadline:
                endpoints = ",".join(store.endpoints)
                raise StartupError(
                    f"etcd at {endpoints} unreachable after {timeout_s:g} s ({error}); "
                    "check --etcd and that etcd is running"
                ) from error
            await asyncio.sleep(0.2)


def build_server(config: CoordinatorConfig, services: dict[str, object]) -> grpc.aio.Server:
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 0),
            # Agents ping every 3 s to notice a frozen coordinator; accept that rate.
            ("grpc.keepalive_permit_without_calls", 1),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 2000),
            ("grpc.http2.max_ping_strikes", 0),
        ]
    )
    jobs_pb2_grpc.add_JobServiceServicer_to_server(services["jobs"], server)
    workers_pb2_grpc.add_WorkerServiceServicer_to_server(services["workers"], server)
    monitoring_pb2_grpc.add_MonitoringServiceServicer_to_server(services["monitoring"], server)
    schedules_pb2_grpc.add_ScheduleServiceServicer_to_server(services["schedules"], server)
    health_pb2_grpc.add_HealthServicer_to_server(services["health"], server)
    names = [
        jobs_pb2.DESCRIPTOR.services_by_name["JobService"].full_name,
        workers_pb2.DESCRIPTOR.services_by_name["WorkerService"].full_name,
        monitoring_pb2.DESCRIPTOR.services_by_name["MonitoringService"].full_name,
        schedules_pb2.DESCRIPTOR.services_by_name["ScheduleService"].full_name,
        health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
        reflection.SERVICE_NAME,
    ]
    reflection.enable_server_reflection(names, server)
    try:
        port = server.add_insecure_port(config.listen)
    except RuntimeError as error:
        raise StartupError(f"cannot listen on {config.listen}: {error}") from error
    if port == 0:
        raise StartupError(f"cannot listen on {config.listen}: address in use or invalid")
    return server


async def serve(config: CoordinatorConfig) -> None:
    clock = SystemClock()
    keys = KeyLayout(config.prefix)
    store = etcd.Etcd(config.etcd_endpoints)
    await wait_for_etcd(store, keys, config.etcd_connect_timeout_s)

    cache = JobCache(store, keys)
    me = LeaderInfo(config.coordinator_id, config.advertise)
    election = Election(store, keys, me, ttl_s=config.election_ttl_s, clock=clock)
    settings = EngineSettings(
        lease_ttl_s=config.lease_ttl_s,
        worker_offline_after_s=config.worker_offline_after_s,
        history_max_runs=config.history_max_runs,
        history_max_age=config.history_max_age,
        priority_aging_s=config.priority_aging_s,
        max_queued_in_memory=config.max_queued_in_memory,
        history_prune_interval_s=config.history_prune_interval_s,
        fire_ahead_ms=config.fire_ahead_ms,
        hand_ahead_ms=config.hand_ahead_ms,
    )
    engine = Engine(
        store=store, keys=keys, cache=cache, election=election, clock=clock, settings=settings
    )
    health_servicer = health.aio.HealthServicer()
    timings = AgentTimings(
        heartbeat_interval_s=config.heartbeat_interval_s, lease_ttl_s=config.lease_ttl_s
    )
    services = {
        "jobs": JobServicer(JobRepository(store, keys, cache, clock), engine),
        "workers": WorkerServicer(engine, store, keys, timings, clock),
        "monitoring": MonitoringServicer(
            engine=engine,
            election=election,
            cache=cache,
            store=store,
            keys=keys,
            clock=clock,
            coordinator_id=config.coordinator_id,
        ),
        "schedules": ScheduleServicer(clock),
        "health": health_servicer,
    }
    server = build_server(config, services)
    await server.start()

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    background = [
        asyncio.create_task(cache.run(), name="job-cache"),
        asyncio.create_task(election.run(engine.on_elected, engine.on_lost), name="election"),
    ]
    await cache.synced.wait()
    await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    log.info(
        "coordinator started",
        coordinator_id=config.coordinator_id,
        listen=config.listen,
        etcd=list(config.etcd_endpoints),
        prefix=config.prefix,
    )

    stopper = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait([stopper, *background], return_when=asyncio.FIRST_COMPLETED)
    crashed = [task for task in done if task is not stopper]
    for task in crashed:
        log.error(
            "background loop ended unexpectedly", loop=task.get_name(), error=repr(task.exception())
        )

    await shutdown(server, health_servicer, engine, election, background, store)
    if crashed:
        raise SystemExit(1)


async def shutdown(
    server: grpc.aio.Server,
    health_servicer: health.aio.HealthServicer,
    engine: Engine,
    election: Election,
    background: Sequence[asyncio.Task[None]],
    store: etcd.Etcd,
) -> None:
    log.info("coordinator stopping")
    await health_servicer.enter_graceful_shutdown()
    await engine.on_lost()
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    await election.resign()
    await server.stop(grace=2.0)
    with contextlib.suppress(Exception):
        await store.close()
    log.info("coordinator stopped")


def main(argv: Sequence[str] | None = None) -> None:
    try:
        config = parse_config(argv)
    except ValueError as error:
        print(f"taskscheduler-coordinator: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logs.configure("coordinator", json_output=config.log_format != "console")
    try:
        asyncio.run(serve(config))
    except StartupError as error:
        print(f"taskscheduler-coordinator: {error}", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
