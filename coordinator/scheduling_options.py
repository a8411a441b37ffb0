"""Validation of a job's scheduling options: misfire and concurrency policies,
catch-up window, jitter and the start/end window.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from taskscheduler.coordinator.codec import JobDraft
from taskscheduler.coordinator.model import ConcurrencyPolicy, JobType, MisfirePolicy
from taskscheduler.errors import InvalidArgumentError

DEFAULT_CATCH_UP_WINDOW_S = 3600
MAX_CATCH_UP_WINDOW_S = 7 * 24 * 3600
MAX_JITTER_S = 24 * 3600


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulingOptions:
    misfire_policy: MisfirePolicy
    catch_up_window_s: int
    concurrency_policy: ConcurrencyPolicy
    jitter_s: int
    start_at: datetime | None
    end_at: datetime | None


def check_scheduling_options(draft: JobDraft) -> SchedulingOptions:
    """Return the options with defaults applied; raise InvalidArgumentError naming the field."""
    if draft.type is JobType.ONE_TIME:
        _reject_recurring_only(draft)
    window_s = draft.catch_up_window_s
    if not 0 <= window_s <= MAX_CATCH_UP_WINDOW_S:
        raise InvalidArgumentError(
            "catchUpWindow",
            f"catchUpWindow {window_s} is out of range; give 1 to {MAX_CATCH_UP_WINDOW_S} "
            f"seconds, or 0 for the default of {DEFAULT_CATCH_UP_WINDOW_S}",
        )
    if not 0 <= draft.jitter_s <= MAX_JITTER_S:
        raise InvalidArgumentError(
            "jitter",
            f"jitter {draft.jitter_s} is out of range; give 0 to {MAX_JITTER_S} seconds",
        )
    if draft.start_at and draft.end_at and draft.end_at <= draft.start_at:
        raise InvalidArgumentError(
            "endAt",
            f"endAt {draft.end_at.isoformat()} is not after startAt "
            f"{draft.start_at.isoformat()}; give a later endAt",
        )
    return SchedulingOptions(
        misfire_policy=draft.misfire_policy or MisfirePolicy.RUN_ONCE,
        catch_up_window_s=window_s or DEFAULT_CATCH_UP_WINDOW_S,
        concurrency_policy=draft.concurrency_policy or ConcurrencyPolicy.ALLOW,
        jitter_s=draft.jitter_s,
        start_at=draft.start_at,
        end_at=draft.end_at,
    )


def _reject_recurring_only(draft: JobDraft) -> None:
    """Reject options that only recurring jobs use, so a one-time job does not carry
    settings that would silently do nothing."""
    given = {
        "startAt": draft.start_at is not None,
        "endAt": draft.end_at is not None,
        "jitter": draft.jitter_s != 0,
        "catchUpWindow": draft.catch_up_window_s not in (0, DEFAULT_CATCH_UP_WINDOW_S),
        "misfirePolicy": draft.misfire_policy not in (None, MisfirePolicy.RUN_ONCE),
        "concurrencyPolicy": draft.concurrency_policy not in (None, ConcurrencyPolicy.ALLOW),
    }
    for field, is_given in given.items():
        if is_given:
            raise InvalidArgumentError(
                field,
                f"{field} applies to recurring jobs only; remove it, or make the job recurring",
            )
