"""The project's exceptions.

Every error raised on purpose derives from SchedulerError, and each
subclass also inherits the builtin that fits, so callers may catch either.
The gRPC edge maps them to status codes with one table
(taskscheduler.grpc_status); nothing decides by message text.
"""

from __future__ import annotations


class SchedulerError(Exception):
    """Root of the project's exceptions."""


class InvalidArgumentError(SchedulerError, ValueError):
    """Client input that fails validation; `field` names the offending field (lowerCamelCase)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


class NotFoundError(SchedulerError, LookupError):
    """A job, run or worker that does not exist."""

    def __init__(self, kind: str, object_id: str, field: str = "") -> None:
        super().__init__(f"{kind} {object_id!r} not found")
        self.kind = kind
        self.object_id = object_id
        self.field = field


class AlreadyExistsError(SchedulerError):
    """A create whose id or unique name is taken."""

    def __init__(self, kind: str, object_id: str, field: str = "") -> None:
        super().__init__(f"{kind} {object_id!r} already exists")
        self.kind = kind
        self.object_id = object_id
        self.field = field


class FailedPreconditionError(SchedulerError):
    """A valid request that the current state does not allow, such as resuming a deleted job."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class StaleLeaseError(FailedPreconditionError):
    """A heartbeat or completion whose fencing token is not the attempt's current lease."""

    def __init__(self, run_id: str, attempt: int, fencing_token: int) -> None:
        super().__init__(
            f"lease on run {run_id!r} attempt {attempt} with fencing token {fencing_token} "
            "is no longer current; drop this attempt's result"
        )
        self.run_id = run_id
        self.attempt = attempt
        self.fencing_token = fencing_token


class NotLeaderError(SchedulerError):
    """A leader-only call made on a follower; `leader_address` is where to go, if known."""

    def __init__(self, leader_address: str) -> None:
        where = leader_address or "unknown (election in progress)"
        super().__init__(f"this coordinator is not the leader; leader: {where}")
        self.leader_address = leader_address


class StoreUnavailableError(SchedulerError, ConnectionError):
    """etcd could not be reached or did not respond in time."""


class LostLeadershipError(SchedulerError):
    """A leader write whose fence no longer matches: another replica leads now."""


class RecordDecodeError(SchedulerError, ValueError):
    """A stored record that cannot be decoded, reported instead of crashing a loop."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"cannot decode record at {key!r}: {reason}")
        self.key = key
        self.reason = reason
