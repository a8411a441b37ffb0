"""In-memory counters and recent samples that feed the metrics and dashboard RPCs."""

from __future__ import annotations

import statistics
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskscheduler.coordinator.model import Run, RunStatus

_SAMPLES = 1000


@dataclass
class Stats:
    started_at: datetime
    counters: Counter[str] = field(default_factory=Counter)
    schedule_lag_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    run_duration_ms: deque[float] = field(default_factory=lambda: deque(maxlen=_SAMPLES))
    recent_runs: deque[Run] = field(default_factory=lambda: deque(maxlen=20))
    finished: deque[tuple[datetime, RunStatus]] = field(
        default_factory=lambda: deque(maxlen=50_000)
    )

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def record_start(self, due_at: datetime, started_at: datetime) -> None:
        self.schedule_lag_ms.append(max(0.0, (started_at - due_at).total_seconds() * 1000))

    def record_finish(self, run: Run, now: datetime) -> None:
        self.run_duration_ms.append(run.duration_s * 1000)
        self.recent_runs.appendleft(run)
        self.finished.append((now, run.status))
        self.count(f"runs_{run.status.value}")

    def finished_since(self, now: datetime, window: timedelta) -> Counter[str]:
        cutoff = now - window
        return Counter(status.value for at, status in self.finished if at >= cutoff)

    def lag_percentile_ms(self, percentile: int) -> float:
        if len(self.schedule_lag_ms) < 2:
            return self.schedule_lag_ms[0] if self.schedule_lag_ms else 0.0
        return statistics.quantiles(self.schedule_lag_ms, n=100, method="inclusive")[percentile - 1]

    def average_duration_ms(self) -> float:
        return statistics.fmean(self.run_duration_ms) if self.run_duration_ms else 0.0
