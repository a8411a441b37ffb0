"""The one table from project exceptions to gRPC status, and the rich-status codec.

The field a status is about travels as a google.rpc.BadRequest field
violation in the `grpc-status-details-bin` trailer, so the gateway can name
it without parsing message text. A follower's answer to a leader-only call
carries the leader's address in the `x-leader-address` trailer.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2

from taskscheduler import errors

STATUS_DETAILS_KEY = "grpc-status-details-bin"
LEADER_ADDRESS_KEY = "x-leader-address"
# Set on a follower's rejection of a leader-only call: nothing was applied, so
# any client may retry the call, writes included.
NOT_LEADER_KEY = "x-not-leader"

# Most specific class first: the first isinstance match wins.
_STATUS_BY_ERROR: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (errors.InvalidArgumentError, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.RecordDecodeError, grpc.StatusCode.DATA_LOSS),
    (errors.NotFoundError, grpc.StatusCode.NOT_FOUND),
    (errors.AlreadyExistsError, grpc.StatusCode.ALREADY_EXISTS),
    (errors.NotLeaderError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.FailedPreconditionError, grpc.StatusCode.FAILED_PRECONDITION),
    (errors.StoreUnavailableError, grpc.StatusCode.UNAVAILABLE),
    (errors.LostLeadershipError, grpc.StatusCode.UNAVAILABLE),
)


def status_code_for(error: Exception) -> grpc.StatusCode:
    """Return the gRPC status code for a project exception; anything else is INTERNAL.

    A follower without a known leader returns UNAVAILABLE, so clients retry
    instead of treating it as a final rejection.
    """
    if isinstance(error, errors.NotLeaderError) and not error.leader_address:
        return grpc.StatusCode.UNAVAILABLE
    for error_type, code in _STATUS_BY_ERROR:
        if isinstance(error, error_type):
            return code
    return grpc.StatusCode.INTERNAL


def trailers_for(error: Exception, code: grpc.StatusCode) -> tuple[tuple[str, str | bytes], ...]:
    """Build the trailing metadata that carries the field and the leader address."""
    trailers: list[tuple[str, str | bytes]] = []
    field = getattr(error, "field", "")
    if field:
        violation = error_details_pb2.BadRequest.FieldViolation(field=field, description=str(error))
        detail = status_pb2.Status(code=code.value[0], message=str(error))
        detail.details.add().Pack(error_details_pb2.BadRequest(field_violations=[violation]))
        trailers.append((STATUS_DETAILS_KEY, detail.SerializeToString()))
    if isinstance(error, errors.NotLeaderError):
        trailers.append((NOT_LEADER_KEY, "1"))
        if error.leader_address:
            trailers.append((LEADER_ADDRESS_KEY, error.leader_address))
    return tuple(trailers)


def field_of(error: grpc.RpcError) -> str:
    """Return the field named by a status's BadRequest detail, or "" when there is none."""
    for key, value in _trailing_metadata(error):
        if key != STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        detail = status_pb2.Status.FromString(value)
        for packed in detail.details:
            bad_request = error_details_pb2.BadRequest()
            if packed.Unpack(bad_request) and bad_request.field_violations:
                return bad_request.field_violations[0].field
    return ""


def leader_address_of(error: grpc.RpcError) -> str:
    """Return the leader address a follower sent back, or ""."""
    for key, value in _trailing_metadata(error):
        if key == LEADER_ADDRESS_KEY:
            return value if isinstance(value, str) else value.decode()
    return ""


def is_not_leader(error: grpc.RpcError) -> bool:
    """Return True when a follower rejected a leader-only call before applying anything."""
    return any(key == NOT_LEADER_KEY for key, _ in _trailing_metadata(error))


def _trailing_metadata(error: grpc.RpcError) -> tuple[tuple[str, str | bytes], ...]:
    trailing = getattr(error, "trailing_metadata", None)
    if trailing is None:
        return ()
    metadata = trailing()
    return tuple(metadata or ())
