"""Conversion between WorkerService messages and the agent's plain dataclasses.

Protobuf stays here; the runner, the outbox and the executors see only
AttemptContext, Lease and FinishedAttempt.
"""

from __future__ import annotations

from datetime import UTC, datetime

from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from taskscheduler.v1 import types_pb2, workers_pb2

from .attempts import FinishedAttempt, Lease
from .executors.base import AttemptContext, AttemptOutcome

_OUTCOME_TO_PROTO = {
    AttemptOutcome.SUCCEEDED: types_pb2.ATTEMPT_OUTCOME_SUCCEEDED,
    AttemptOutcome.FAILED: types_pb2.ATTEMPT_OUTCOME_FAILED,
    AttemptOutcome.TIMED_OUT: types_pb2.ATTEMPT_OUTCOME_TIMED_OUT,
    AttemptOutcome.CANCELLED: types_pb2.ATTEMPT_OUTCOME_CANCELLED,
}


def context_from_proto(assignment: workers_pb2.Assignment) -> AttemptContext:
    scheduled_at = None
    if assignment.HasField("scheduled_at"):
        scheduled_at = assignment.scheduled_at.ToDatetime(tzinfo=UTC)
    return AttemptContext(
        run_id=assignment.run_id,
        job_id=assignment.job_id,
        job_name=assignment.job_name,
        attempt=assignment.attempt,
        fencing_token=assignment.fencing_token,
        executor=assignment.executor,
        payload=json_format.MessageToDict(assignment.payload),
        timeout_s=float(assignment.timeout) if assignment.timeout > 0 else None,
        scheduled_at=scheduled_at,
    )


def lease_to_proto(lease: Lease) -> workers_pb2.LeaseRef:
    return workers_pb2.LeaseRef(
        run_id=lease.run_id, attempt=lease.attempt, fencing_token=lease.fencing_token
    )


def lease_from_proto(lease: workers_pb2.LeaseRef) -> Lease:
    return Lease(lease.run_id, lease.attempt, lease.fencing_token)


def completion_to_proto(
    worker_id: str, finished: FinishedAttempt
) -> workers_pb2.CompleteAttemptRequest:
    result = finished.result
    return workers_pb2.CompleteAttemptRequest(
        worker_id=worker_id,
        lease=lease_to_proto(finished.lease),
        outcome=_OUTCOME_TO_PROTO[result.outcome],
        exit_code=result.exit_code,
        output=result.output,
        error=result.error,
        started_at=_timestamp(finished.started_at),
        completed_at=_timestamp(finished.completed_at),
    )


def _timestamp(instant: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(instant)
    return stamp
