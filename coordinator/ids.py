"""Ids of jobs and runs.

A scheduled run's id is derived from (job id, fire time), so two leaders
firing the same slot compute the same id and etcd's create-if-absent
compare lets only one of them land. A dependency run's id is derived the
same way from (job id, the dependency run that triggered it). Manual runs
add a random suffix.
Run ids sort by time within a job, which is also the order of history keys.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

_RUN_SEPARATOR = "."


def new_job_id() -> str:
    return "job-" + secrets.token_hex(8)


def scheduled_run_id(job_id: str, fire_at: datetime) -> str:
    return f"{job_id}{_RUN_SEPARATOR}{_epoch_ms(fire_at):014d}"


def manual_run_id(job_id: str, requested_at: datetime) -> str:
    return f"{job_id}{_RUN_SEPARATOR}{_epoch_ms(requested_at):014d}-m{secrets.token_hex(3)}"


def dependency_run_id(job_id: str, triggered_at: datetime, trigger_run_id: str) -> str:
    """Return the id of the run of `job_id` that the run `trigger_run_id` set off."""
    digest = hashlib.sha256(trigger_run_id.encode()).hexdigest()[:12]
    return f"{job_id}{_RUN_SEPARATOR}{_epoch_ms(triggered_at):014d}-d{digest}"


def job_id_of(run_id: str) -> str:
    """Return the job id a run id was derived from; raises ValueError for a malformed id."""
    job_id, separator, suffix = run_id.partition(_RUN_SEPARATOR)
    if not separator or not job_id or not suffix:
        raise ValueError(f"malformed run id {run_id!r}")
    return job_id


def _epoch_ms(instant: datetime) -> int:
    return int(instant.timestamp() * 1000)
