"""Time zone lookups and the UTC offset transitions that schedule evaluation needs.

`zoneinfo` converts single instants but does not list a zone's transitions,
so this module finds them by probing the UTC offset once a day and
bisecting to the second where it changes. In tz database release 2025b,
consecutive transitions of one zone are at least about four days apart
(the closest pair is Africa/Freetown in 1939), so a daily probe misses none.
Tables are cached per zone and UTC year.
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from taskscheduler.errors import InvalidArgumentError

_PROBE_STEP = timedelta(days=1)
_FIRST_YEAR = 2
LAST_YEAR = 9998
"""The last year in which schedules are evaluated; later fire times count as never."""
_ONE_SECOND = timedelta(seconds=1)


_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


def validate_timezone(name: str) -> zoneinfo.ZoneInfo:
    """Return the IANA time zone called `name`; the empty string means UTC.

    Raises InvalidArgumentError(field="timezone") for a name the tz database does not have.
    """
    if name == "":
        return zoneinfo.ZoneInfo("UTC")
    if name in _NOT_ZONES or name.startswith(("posix/", "right/")):
        # These resolve through the host's files or are not zones at all, so two
        # replicas on different hosts could compute different slots.
        raise InvalidArgumentError(
            "timezone",
            f"timezone {name[:100]!r} is not a portable IANA zone name; "
            "use a name such as Europe/Berlin, America/New_York or UTC",
        )
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError) as error:
        # ValueError and OSError cover keys that are paths, contain NUL or name a folder.
        raise InvalidArgumentError(
            "timezone",
            f"timezone {name[:100]!r} is not a known IANA time zone; "
            "use an IANA name such as Europe/Berlin, America/New_York or UTC",
        ) from error


@dataclass(frozen=True, slots=True)
class Transition:
    """A change of a zone's UTC offset; `at` is the first instant (aware UTC) of the new offset."""

    at: datetime
    offset_before: timedelta
    offset_after: timedelta


def utc_offset(zone: zoneinfo.ZoneInfo, instant: datetime) -> timedelta:
    """Return the UTC offset of `zone` at the aware `instant`."""
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None, "a ZoneInfo always has an offset"
    return offset


def next_transition(zone: zoneinfo.ZoneInfo, after: datetime, until: datetime) -> Transition | None:
    """Return the first transition of `zone` in (after, until], or None when there is none."""
    for year in range(after.year, until.year + 1):
        for transition in _transitions_in_year(zone, year):
            if transition.at > until:
                return None
            if transition.at > after:
                return transition
    return None


def previous_transition(
    zone: zoneinfo.ZoneInfo, since: datetime, until: datetime
) -> Transition | None:
    """Return the last transition of `zone` in (since, until], or None when there is none."""
    found = None
    for year in range(since.year, until.year + 1):
        for transition in _transitions_in_year(zone, year):
            if since < transition.at <= until:
                found = transition
    return found


def first_instant_of_wall_time(wall_time: datetime, zone: zoneinfo.ZoneInfo) -> datetime:
    """Return the UTC instant at which the naive local `wall_time` first happens in `zone`.

    A wall time repeated by a backward transition maps to its first occurrence.
    A wall time skipped by a forward transition maps to the transition instant,
    the first instant after the gap.
    """
    earliest = wall_time.replace(tzinfo=zone, fold=0).astimezone(UTC)
    if earliest.astimezone(zone).replace(tzinfo=None) == wall_time:
        return earliest

    # In a gap, fold=0 reads the wall time with the offset before the transition
    # and fold=1 with the offset after it, so the transition lies between them.
    latest = wall_time.replace(tzinfo=zone, fold=1).astimezone(UTC)
    low, high = min(earliest, latest), max(earliest, latest)
    transition = next_transition(zone, low, high)
    return transition.at if transition is not None else earliest


@functools.lru_cache(maxsize=4096)
def _transitions_in_year(zone: zoneinfo.ZoneInfo, year: int) -> tuple[Transition, ...]:
    """Return the transitions of `zone` in (Jan 1 of `year`, Jan 1 of `year + 1`], UTC.

    Years outside 2-9998 return no transitions: converting their instants to a
    zone with a nonzero offset may leave the range that `datetime` can hold.
    """
    if not _FIRST_YEAR <= year <= LAST_YEAR:
        return ()
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    transitions = []
    probe = datetime(year, 1, 1, tzinfo=UTC)
    offset = utc_offset(zone, probe)
    while probe < end:
        following = min(probe + _PROBE_STEP, end)
        following_offset = utc_offset(zone, following)
        if following_offset != offset:
            transitions.append(_bisect_transition(zone, probe, following, offset))
        probe, offset = following, following_offset
    return tuple(transitions)


def _bisect_transition(
    zone: zoneinfo.ZoneInfo, low: datetime, high: datetime, offset_at_low: timedelta
) -> Transition:
    """Find the first whole second in (low, high] whose offset differs from `offset_at_low`."""
    while high - low > _ONE_SECOND:
        middle = low + (high - low) // 2
        middle = middle.replace(microsecond=0)
        if middle <= low:
            middle = low + _ONE_SECOND
        if utc_offset(zone, middle) == offset_at_low:
            low = middle
        else:
            high = middle
    return Transition(at=high, offset_before=offset_at_low, offset_after=utc_offset(zone, high))
