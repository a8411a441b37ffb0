"""Sharing equal values between decoded job records."""

from __future__ import annotations

from datetime import UTC, datetime

from taskscheduler.coordinator import codec
from taskscheduler.coordinator.interning import EMPTY_MAPPING, frozen_mapping, shared
from taskscheduler.coordinator.model import Job, JobSpec, RetryPolicy

NOW = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)


def test_shared_returns_first_equal_object() -> None:
    first = RetryPolicy(max_retries=3, retry_delay_s=10)
    second = RetryPolicy(max_retries=3, retry_delay_s=10)

    assert shared(first) is first
    assert shared(second) is first


def test_frozen_mapping_shares_empty() -> None:
    assert frozen_mapping({}) is EMPTY_MAPPING
    copied = frozen_mapping({"a": 1})
    assert dict(copied) == {"a": 1}
    assert copied is not frozen_mapping({"a": 1})


def test_decoded_jobs_share_equal_fields() -> None:
    spec = JobSpec(name="n", schedule="0 0 1 1 *", executor="noop")
    records = [
        codec.encode_job(Job(id=f"job-{n}", spec=spec, created_at=NOW, updated_at=NOW))
        for n in range(2)
    ]

    first, second = (
        codec.decode_job(f"/p/jobs/job-{n}", record, 1) for n, record in enumerate(records)
    )

    assert first.spec.schedule is second.spec.schedule
    assert first.spec.retry_policy is second.spec.retry_policy
    assert first.spec.payload is EMPTY_MAPPING
    assert first.created_at is second.created_at
    assert first.id == "job-0"
    assert second.id == "job-1"
