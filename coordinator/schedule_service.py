"""ScheduleService: preview a schedule's fire times with the code the leader fires with."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

import grpc

from taskscheduler.clock import Clock
from taskscheduler.coordinator import codec
from taskscheduler.coordinator.model import JobType
from taskscheduler.coordinator.rpc import translate_errors
from taskscheduler.errors import InvalidArgumentError
from taskscheduler.schedule import Schedule, parse_schedule
from taskscheduler.v1 import schedules_pb2, schedules_pb2_grpc

DEFAULT_COUNT = 10
MAX_COUNT = 1000
PREVIEW_BUDGET_S = 1.0


class ScheduleServicer(schedules_pb2_grpc.ScheduleServiceServicer):
    def __init__(self, clock: Clock) -> None:
        self._clock = clock

    @translate_errors
    async def PreviewSchedule(
        self, request: schedules_pb2.PreviewScheduleRequest, context: grpc.aio.ServicerContext
    ) -> schedules_pb2.PreviewScheduleResponse:
        count = request.count or DEFAULT_COUNT
        if not 1 <= count <= MAX_COUNT:
            raise InvalidArgumentError(
                "count", f"count {request.count} is out of range; give 1 to {MAX_COUNT}"
            )
        job_type = codec.JOB_TYPES.from_proto(request.type, field="type") or JobType.RECURRING
        if not request.schedule.strip():
            raise InvalidArgumentError(
                "schedule", "schedule is required, such as 0 9 * * * or @every 90s"
            )
        one_time = job_type is JobType.ONE_TIME
        schedule = parse_schedule(
            request.schedule, one_time=one_time, timezone=request.timezone or "UTC"
        )
        # Without `after`, a one-time instant shows even when past: it would fire at once.
        default_after = datetime.min.replace(tzinfo=UTC) if one_time else self._clock.now()
        after = codec.timestamp_to_datetime(request.after) or default_after

        # A sparse schedule (Feb 29 on a Monday) can take long to walk; the walk
        # runs off the event loop and stops at a time budget.
        fire_times = await asyncio.to_thread(_fire_times_within_budget, schedule, after, count)

        response = schedules_pb2.PreviewScheduleResponse()
        for fire_time in fire_times:
            response.fire_times.add().FromDatetime(fire_time)
        return response


def _fire_times_within_budget(schedule: Schedule, after: datetime, count: int) -> list[datetime]:
    deadline = time.monotonic() + PREVIEW_BUDGET_S
    fire_times: list[datetime] = []
    slot = schedule.next_fire_after(after)
    while slot is not None and len(fire_times) < count and time.monotonic() < deadline:
        fire_times.append(slot)
        slot = schedule.next_fire_after(slot)
    return fire_times
