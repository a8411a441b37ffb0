"""Bounded run history on real processes: the per-job cap is kept while a job keeps firing."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from harness import ApiClient, wait_until

pytestmark = pytest.mark.integration

MAX_RUNS = 3


def test_history_cap_keeps_newest_runs(
    start_coordinator: Callable[..., Any],
    start_agent: Callable[..., Any],
    start_gateway: Callable[..., Any],
) -> None:
    start_coordinator(history_max_runs=MAX_RUNS, history_prune_interval_s=1)
    start_agent()
    gateway = start_gateway()
    with ApiClient(gateway.url) as api:
        job = api.create_job(schedule="@every 1s", payload={"command": ["true"]})
        seen: set[str] = set()

        def pruned_after_growth() -> list[dict[str, Any]] | None:
            runs = api.history(job["id"], limit=100)
            seen.update(run["id"] for run in runs)
            return runs if len(seen) >= 3 * MAX_RUNS and len(runs) <= MAX_RUNS + 1 else None

        runs = wait_until(pruned_after_growth, timeout_s=30, message="history pruned to the cap")

    kept = sorted(run["id"] for run in runs)
    assert kept == sorted(seen)[-len(kept) :]
    assert min(seen) not in kept
