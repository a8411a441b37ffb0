"""Conversion between WorkerService messages and the agent's plain dataclasses.

Protobuf stays here; the runner, the outbox and the executors see only
AttemptContext, Lease and FinishedAttempt.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2
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
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# A double represents every whole number up to 2**53 exactly.
_MAX_EXACT_INTEGER = 2**53


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
        payload=struct_to_dict(assignment.payload),
        timeout_s=float(assignment.timeout) if assignment.timeout > 0 else None,
        scheduled_at=scheduled_at,
    )


def start_at_from_proto(assignment: workers_pb2.Assignment) -> datetime | None:
    """Return the instant the attempt may start at, or None to start it at once."""
    if not assignment.HasField("start_at"):
        return None
    return assignment.start_at.ToDatetime(tzinfo=UTC)


def lease_to_proto(lease: Lease) -> workers_pb2.LeaseRef:
    return workers_pb2.LeaseRef(
        run_id=lease.run_id, attempt=lease.attempt, fencing_token=lease.fencing_token
    )


def lease_from_proto(lease: workers_pb2.LeaseRef) -> Lease:
    return Lease(lease.run_id, lease.attempt, lease.fencing_token)


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Convert a Struct to plain Python data, as json.loads would build it from the JSON.

    A Struct stores every JSON number as a double. Whole ones come back as
    int, so a payload's `{"count": 3}` reaches a handler as 3, not 3.0.
    """
    return {key: _value_to_python(value) for key, value in struct.fields.items()}


def _value_to_python(value: struct_pb2.Value) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [_value_to_python(item) for item in value.list_value.values]
    if kind == "number_value":
        number = value.number_value
        if number.is_integer() and -_MAX_EXACT_INTEGER <= number <= _MAX_EXACT_INTEGER:
            return int(number)
        return number
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    return None


def completion_to_proto(
    worker_id: str, finished: FinishedAttempt
) -> workers_pb2.CompleteAttemptRequest:
    """Build the report of a finished attempt.

    Raises ValueError or TypeError when a field cannot be encoded, such as a
    string with a lone surrogate, which protobuf rejects.
    """
    result = finished.result
    request = workers_pb2.CompleteAttemptRequest(
        worker_id=worker_id,
        lease=lease_to_proto(finished.lease),
        outcome=_OUTCOME_TO_PROTO[result.outcome],
        exit_code=result.exit_code,
        output=result.output,
        error=result.error,
        started_at=_timestamp(finished.started_at),
        completed_at=_timestamp(finished.completed_at),
    )
    if result.result is not None:
        try:
            json_format.ParseDict(result.result, request.result)
        except json_format.ParseError as error:
            raise ValueError(f"result is not a google.protobuf.Value: {error}") from error
    return request


def _timestamp(instant: datetime) -> Timestamp:
    # Exact integer arithmetic, and several times faster than Timestamp.FromDatetime.
    elapsed = instant - _EPOCH
    return Timestamp(
        seconds=elapsed.days * 86_400 + elapsed.seconds, nanos=elapsed.microseconds * 1000
    )
