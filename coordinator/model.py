"""The coordinator's domain: jobs, runs, attempts and workers as plain data.

Protobuf stays at the edges (coordinator.codec); everything between them
passes these frozen dataclasses. Enum values are the JSON spellings of
the REST surface. All datetimes are aware UTC.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any


class Priority(enum.StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Assignment order: a higher rank is handed out first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.NORMAL: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}


class JobType(enum.StrEnum):
    ONE_TIME = "one-time"
    RECURRING = "recurring"


class MisfirePolicy(enum.StrEnum):
    SKIP = "skip"
    RUN_ONCE = "run_once"
    CATCH_UP = "catch_up"


class ConcurrencyPolicy(enum.StrEnum):
    ALLOW = "allow"
    FORBID = "forbid"
    REPLACE = "replace"


class JobStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"


class RunStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"

    @property
    def is_final(self) -> bool:
        return self not in (RunStatus.QUEUED, RunStatus.RUNNING)


class RunTrigger(enum.StrEnum):
    SCHEDULE = "schedule"
    MANUAL = "manual"
    DEPENDENCY = "dependency"


class AttemptOutcome(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timeout"
    CANCELLED = "cancelled"
    LEASE_EXPIRED = "lease-expired"


class WorkerStatus(enum.StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """How many more attempts a failed run gets, and the delays before them.

    The delay before attempt n+1 is retry_delay_s * backoff_multiplier**(n-1),
    capped at max_retry_delay_s when that is set.
    """

    max_retries: int = 0
    retry_delay_s: int = 0
    backoff_multiplier: float = 1.0
    max_retry_delay_s: int = 0

    def delay_after(self, attempt: int) -> float:
        """Return the seconds to wait after failed attempt number `attempt` (from 1)."""
        delay = self.retry_delay_s * self.backoff_multiplier ** max(0, attempt - 1)
        if self.max_retry_delay_s:
            delay = min(delay, self.max_retry_delay_s)
        return delay


# How long a run of a scheduled job with dependencies waits for them at its
# fire time, by default and at most.
DEFAULT_DEPENDENCY_WAIT_S = 3600
MAX_DEPENDENCY_WAIT_S = 24 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class JobSpec:
    """The client-defined part of a job: what runs, when, and how."""

    name: str
    description: str = ""
    type: JobType = JobType.RECURRING
    schedule: str = ""
    timezone: str = "UTC"
    priority: Priority = Priority.NORMAL
    executor: str = ""
    payload: MappingProxyType[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    timeout_s: int = 0
    dependencies: tuple[str, ...] = ()
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE
    catch_up_window_s: int = 3600
    concurrency_policy: ConcurrencyPolicy = ConcurrencyPolicy.ALLOW
    jitter_s: int = 0
    start_at: datetime | None = None
    end_at: datetime | None = None
    selector: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    dependency_wait_s: int = DEFAULT_DEPENDENCY_WAIT_S

    @property
    def runs_on_dependencies(self) -> bool:
        """True for a job without a schedule that runs when its dependencies complete."""
        return not self.schedule and bool(self.dependencies)

    @property
    def waits_for_dependencies(self) -> bool:
        """True for a job with a schedule whose runs wait for its dependencies."""
        return bool(self.schedule) and bool(self.dependencies)


@dataclass(frozen=True, slots=True, kw_only=True)
class Job:
    """A stored job: its spec plus the state the coordinator keeps for it.

    `last_fire_at` is the newest schedule slot that has a run; firing
    continues from it after a restart or failover. `last_run_at` is the
    newest run of any trigger (slot, by hand, or by dependencies): the
    API's `lastRun`. `revision` is the etcd mod revision the record was
    read at (0 before it is stored).
    """

    id: str
    spec: JobSpec
    status: JobStatus = JobStatus.SCHEDULED
    next_fire_at: datetime | None = None
    last_fire_at: datetime | None = None
    last_run_at: datetime | None = None
    created_at: datetime
    updated_at: datetime
    revision: int = 0

    @property
    def paused(self) -> bool:
        return self.status is JobStatus.PAUSED


@dataclass(frozen=True, slots=True, kw_only=True)
class Attempt:
    number: int
    worker_id: str
    fencing_token: int
    started_at: datetime
    completed_at: datetime | None = None
    outcome: AttemptOutcome | None = None
    exit_code: int = 0
    error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Run:
    """One firing of a job for one slot (or one manual execute), with its attempts."""

    id: str
    job_id: str
    job_name: str
    trigger: RunTrigger
    status: RunStatus
    priority: Priority
    executor: str
    scheduled_at: datetime
    due_at: datetime
    max_attempts: int
    attempt: int = 0
    worker_id: str = ""
    started_at: datetime | None = None
    completed_at: datetime | None = None
    exit_code: int = 0
    output: str = ""
    error: str = ""
    attempts: tuple[Attempt, ...] = ()
    # The JSON value a Python handler returned from the attempt that completed
    # the run; None when there is none.
    result: Any = None
    revision: int = 0

    @property
    def duration_s(self) -> float:
        if self.started_at is None or self.completed_at is None:
            return 0.0
        return (self.completed_at - self.started_at).total_seconds()


@dataclass(frozen=True, slots=True, kw_only=True)
class Worker:
    id: str
    hostname: str = ""
    capabilities: tuple[str, ...] = ()
    labels: MappingProxyType[str, str] = field(default_factory=lambda: MappingProxyType({}))
    max_concurrent: int = 1
    status: WorkerStatus = WorkerStatus.ONLINE
    running: int = 0
    registered_at: datetime
    last_heartbeat_at: datetime
    version: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Page:
    """A page request, already clamped to the allowed bounds."""

    limit: int = 50
    offset: int = 0
