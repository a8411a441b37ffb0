"""Percentiles and rates over measured samples."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(values: Sequence[float], rank: float) -> float:
    """Return the nearest-rank percentile: the least value with `rank` % of samples at or below it.

    Raises ValueError for no samples or a rank outside 0 to 100.
    """
    if not values:
        raise ValueError("percentile of no samples is undefined")
    if not 0 <= rank <= 100:
        raise ValueError(f"percentile rank must be between 0 and 100, got {rank}")
    ordered = sorted(values)
    position = max(1, math.ceil(rank / 100 * len(ordered)))
    return ordered[position - 1]


@dataclass(frozen=True, slots=True)
class Distribution:
    """Summary of samples in one unit, such as schedule lag in milliseconds."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Distribution | None:
        """Summarise `values`; None when there are none."""
        if not values:
            return None
        ordered = sorted(values)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 50),
            p95=percentile(ordered, 95),
            p99=percentile(ordered, 99),
            max=ordered[-1],
        )


def rate_per_s(count: int, duration_s: float) -> float:
    """Return `count` events over `duration_s` seconds as events per second."""
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    return count / duration_s
