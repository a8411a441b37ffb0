"""Sharing of equal immutable values between the job records every replica keeps.

A replica keeps every job in memory, and a million jobs mostly repeat the
same schedules, time zones, executors, retry policies and fire times.
Keeping one object per distinct value instead of one per job saves a few
hundred bytes a job. Values must be immutable and hashable.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

T = TypeVar("T", bound=Hashable)

EMPTY_MAPPING: MappingProxyType[str, Any] = MappingProxyType({})
# Distinct values kept; past this the table starts again, so unusual values
# (unique timestamps) cannot grow it without bound.
_MAX_SHARED = 200_000
_shared: dict[Hashable, Hashable] = {}


def shared(value: T) -> T:
    """Return the kept object equal to `value`, keeping `value` if there is none."""
    kept = _shared.get(value)
    if kept is not None:
        return kept  # type: ignore[return-value]
    if len(_shared) >= _MAX_SHARED:
        _shared.clear()
    _shared[value] = value
    return value


def frozen_mapping(items: Mapping[str, Any]) -> MappingProxyType[str, Any]:
    """Return a read-only copy of `items`, one shared object for every empty mapping."""
    return MappingProxyType(dict(items)) if items else EMPTY_MAPPING
