"""Properties of random valid cron expressions in a few time zones.

The expressions have 5 or 6 fields and use `L`, `W`, `#` and `?`. Each is
built together with an independent model of what it selects: value sets for
the numeric forms, and for `L`, `W` and `#` the days found by scanning the
month's calendar. So the expected fire times come from the generator, not
from the parser under test, and the daylight saving time rules come from the
minute-by-minute enumerator of test_schedule_dst.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Protocol
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_schedule_dst import TRANSITION_DAYS, chain_fires, enumerate_fires

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.schedule import Schedule, fire_times, parse_schedule
from taskscheduler.schedule.cron import CronSchedule

_MINUTE = timedelta(minutes=1)
_MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]
# Between 1901 and 2099 the calendar repeats every 28 years, and 28 consecutive years
# contain every combination of leap year and weekday of January 1.
_CALENDAR_CYCLE_YEARS = range(2001, 2029)
# Window comparisons stop after this many fire times, so dense schedules stay fast.
_FIRES_COMPARED_MAX = 400


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]


class DaySelector(Protocol):
    def select(self, days: list[date]) -> set[int]:
        """Return the day numbers selected among `days`, every day of one month."""
        ...


def _is_workday(day: date) -> bool:
    return day.weekday() < 5


def _cron_weekday(day: date) -> int:
    return day.isoweekday() % 7


@dataclass(frozen=True)
class DayValues:
    values: frozenset[int]

    def select(self, days: list[date]) -> set[int]:
        return {day.day for day in days if day.day in self.values}


@dataclass(frozen=True)
class WeekdayValues:
    values: frozenset[int]

    def select(self, days: list[date]) -> set[int]:
        weekdays = {value % 7 for value in self.values}
        return {day.day for day in days if _cron_weekday(day) in weekdays}


@dataclass(frozen=True)
class LastDay:
    before: int

    def select(self, days: list[date]) -> set[int]:
        return {days[-1 - self.before].day} if self.before < len(days) else set()


@dataclass(frozen=True)
class NearestWorkday:
    target: int

    def select(self, days: list[date]) -> set[int]:
        """The Monday-to-Friday day of the month closest to `target` (distances never tie)."""
        if self.target > len(days):
            return set()
        workdays = [day for day in days if _is_workday(day)]
        return {min(workdays, key=lambda day: abs(day.day - self.target)).day}


@dataclass(frozen=True)
class LastWorkday:
    def select(self, days: list[date]) -> set[int]:
        return {max(day.day for day in days if _is_workday(day))}


@dataclass(frozen=True)
class LastOfWeekday:
    weekday: int

    def select(self, days: list[date]) -> set[int]:
        return {max(day.day for day in days if _cron_weekday(day) == self.weekday % 7)}


@dataclass(frozen=True)
class NthWeekday:
    weekday: int
    n: int

    def select(self, days: list[date]) -> set[int]:
        matching = [day.day for day in days if _cron_weekday(day) == self.weekday % 7]
        return {matching[self.n - 1]} if self.n <= len(matching) else set()


@dataclass(frozen=True)
class DayField:
    text: str
    selectors: tuple[DaySelector, ...]

    @property
    def unrestricted(self) -> bool:
        return self.text.startswith("*") or self.text == "?"

    def select(self, days: list[date]) -> set[int]:
        return set().union(*(selector.select(days) for selector in self.selectors))


@dataclass(frozen=True)
class Expression:
    second: Field | None
    minute: Field
    hour: Field
    day_of_month: DayField
    month: Field
    day_of_week: DayField
    _month_cache: dict[tuple[int, int], frozenset[int]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    @property
    def text(self) -> str:
        fields = (self.minute, self.hour, self.day_of_month, self.month, self.day_of_week)
        texts = [part.text for part in fields]
        return " ".join(texts if self.second is None else [self.second.text, *texts])

    @property
    def seconds(self) -> list[int]:
        return [0] if self.second is None else sorted(self.second.values)

    @property
    def follows_elapsed_time(self) -> bool:
        return self.hour.text.startswith("*") or "/" in self.hour.text

    def firing_days(self, year: int, month: int) -> frozenset[int]:
        """Return the day numbers of `month` that the day fields select, by the OR/AND rule."""
        key = (year, month)
        if key not in self._month_cache:
            length = calendar.monthrange(year, month)[1]
            days = [date(year, month, number) for number in range(1, length + 1)]
            by_month_day = self.day_of_month.select(days)
            by_weekday = self.day_of_week.select(days)
            both_needed = self.day_of_month.unrestricted or self.day_of_week.unrestricted
            combined = by_month_day & by_weekday if both_needed else by_month_day | by_weekday
            self._month_cache[key] = frozenset(combined)
        return self._month_cache[key]

    def matches_day(self, day: date) -> bool:
        return day.month in self.month.values and day.day in self.firing_days(day.year, day.month)

    def matches_minute(self, wall: datetime) -> bool:
        return (
            wall.minute in self.minute.values
            and wall.hour in self.hour.values
            and self.matches_day(wall.date())
        )

    def matches(self, wall: datetime) -> bool:
        return wall.second in self.seconds and self.matches_minute(wall)

    def can_fire(self) -> bool:
        """Whether some date fires, found by checking one whole calendar cycle."""
        return any(
            self.firing_days(year, month)
            for year in _CALENDAR_CYCLE_YEARS
            for month in self.month.values
        )


def _render(value: int, names: list[str] | None, use_name: bool, upper: bool) -> str:
    if names is None or not use_name or value >= len(names):
        return str(value)
    name = names[value - 1] if len(names) == 12 else names[value]
    return name.upper() if upper else name


@st.composite
def items(draw: st.DrawFn, minimum: int, maximum: int, names: list[str] | None) -> Field:
    kind = draw(
        st.sampled_from(["star", "star-step", "value", "range", "range-step", "start-step"])
    )
    low = draw(st.integers(minimum, maximum))
    high = draw(st.integers(low, maximum))
    step = draw(st.integers(1, maximum - minimum + 2))
    use_name = draw(st.booleans())
    upper = draw(st.booleans())
    low_text = _render(low, names, use_name, upper)
    high_text = _render(high, names, use_name, upper)
    if kind == "star":
        return Field("*", frozenset(range(minimum, maximum + 1)))
    if kind == "star-step":
        return Field(f"*/{step}", frozenset(range(minimum, maximum + 1, step)))
    if kind == "value":
        return Field(low_text, frozenset({low}))
    if kind == "range":
        return Field(f"{low_text}-{high_text}", frozenset(range(low, high + 1)))
    if kind == "range-step":
        return Field(f"{low_text}-{high_text}/{step}", frozenset(range(low, high + 1, step)))
    return Field(f"{low_text}/{step}", frozenset(range(low, maximum + 1, step)))


@st.composite
def fields(draw: st.DrawFn, minimum: int, maximum: int, names: list[str] | None = None) -> Field:
    parts = draw(st.lists(items(minimum, maximum, names), min_size=1, max_size=3))
    return Field(
        ",".join(part.text for part in parts),
        frozenset().union(*(part.values for part in parts)),
    )


def _cased(text: str, lower: bool) -> str:
    return text.lower() if lower else text


@st.composite
def day_of_month_items(draw: st.DrawFn) -> tuple[str, DaySelector]:
    kind = draw(st.sampled_from(["numeric", "numeric", "L", "L-n", "W", "LW"]))
    lower = draw(st.booleans())
    if kind == "L":
        return _cased("L", lower), LastDay(0)
    if kind == "L-n":
        before = draw(st.integers(0, 30))
        return _cased(f"L-{before}", lower), LastDay(before)
    if kind == "W":
        target = draw(st.integers(1, 31))
        return _cased(f"{target}W", lower), NearestWorkday(target)
    if kind == "LW":
        return _cased("LW", lower), LastWorkday()
    numeric = draw(items(1, 31, None))
    return numeric.text, DayValues(numeric.values)


@st.composite
def day_of_week_items(draw: st.DrawFn) -> tuple[str, DaySelector]:
    kind = draw(st.sampled_from(["numeric", "numeric", "last", "nth"]))
    weekday = draw(st.integers(0, 7))
    weekday_text = _render(weekday, _DAY_NAMES, draw(st.booleans()), draw(st.booleans()))
    if kind == "last":
        return f"{weekday_text}{_cased('L', draw(st.booleans()))}", LastOfWeekday(weekday)
    if kind == "nth":
        n = draw(st.integers(1, 5))
        return f"{weekday_text}#{n}", NthWeekday(weekday, n)
    numeric = draw(items(0, 7, _DAY_NAMES))
    return numeric.text, WeekdayValues(numeric.values)


@st.composite
def day_fields(draw: st.DrawFn, day_of_month: bool) -> DayField:
    """A day field: `?` one time in eight, else a list of one to three items."""
    if draw(st.integers(0, 7)) == 0:
        if day_of_month:
            return DayField("?", (DayValues(frozenset(range(1, 32))),))
        return DayField("?", (WeekdayValues(frozenset(range(7))),))
    item_strategy = day_of_month_items() if day_of_month else day_of_week_items()
    parts = draw(st.lists(item_strategy, min_size=1, max_size=3))
    return DayField(",".join(text for text, _ in parts), tuple(selector for _, selector in parts))


expressions = st.builds(
    Expression,
    second=st.one_of(st.none(), fields(0, 59)),
    minute=fields(0, 59),
    hour=fields(0, 23),
    day_of_month=day_fields(day_of_month=True),
    month=fields(1, 12, _MONTH_NAMES),
    day_of_week=day_fields(day_of_month=False),
)


def _few_values(maximum: int, count_max: int) -> st.SearchStrategy[Field]:
    return st.lists(st.integers(0, maximum), min_size=1, max_size=count_max, unique=True).map(
        lambda values: Field(",".join(map(str, values)), frozenset(values))
    )


# At most 2 fire times an hour, so a year of them stays quick to list.
sparse_expressions = st.builds(
    Expression,
    second=st.one_of(st.none(), _few_values(59, 1)),
    minute=_few_values(59, 2),
    hour=fields(0, 23),
    day_of_month=day_fields(day_of_month=True),
    month=fields(1, 12, _MONTH_NAMES),
    day_of_week=day_fields(day_of_month=False),
)
afters = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)).map(
    lambda naive: naive.replace(tzinfo=UTC)
)


def _parse(expression: Expression, timezone: str) -> CronSchedule | None:
    """Parse, or return None when the parser rejects an expression that cannot fire."""
    try:
        schedule = parse_schedule(expression.text, one_time=False, timezone=timezone)
    except InvalidArgumentError as error:
        assert "never fires" in error.message, error.message
        assert not expression.can_fire()
        return None
    assert isinstance(schedule, CronSchedule)
    return schedule


def _skipped_minutes(fire: datetime, zone: ZoneInfo) -> list[datetime]:
    """Return the wall minutes a forward transition skipped just before `fire`, if any."""
    wall = fire.astimezone(zone).replace(tzinfo=None)
    skipped = (fire - _MINUTE).astimezone(zone).replace(tzinfo=None).replace(second=0) + _MINUTE
    walls = []
    while skipped < wall:
        walls.append(skipped)
        skipped += _MINUTE
    return walls


def _assert_window_enumerated(
    schedule: Schedule, expression: Expression, zone: ZoneInfo, start: datetime, end: datetime
) -> None:
    """Assert that the fire times in [start, end) equal the enumerator's, up to a count."""
    expected = enumerate_fires(
        expression.matches_minute,
        expression.seconds,
        expression.follows_elapsed_time,
        zone,
        start,
        end,
    )
    if len(expected) > _FIRES_COMPARED_MAX:
        end = expected[_FIRES_COMPARED_MAX]
        expected = expected[:_FIRES_COMPARED_MAX]

    assert isinstance(schedule, CronSchedule)
    assert chain_fires(schedule, start, end) == expected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=expressions, timezone=st.sampled_from(ZONES), after=afters)
def test_fires_increase_and_match(expression: Expression, timezone: str, after: datetime) -> None:
    zone = ZoneInfo(timezone)
    schedule = _parse(expression, timezone)
    if schedule is None:
        return

    fires = fire_times(schedule, after, 6)

    assert len(fires) == 6
    previous = after
    for fire in fires:
        assert fire > previous
        assert fire.tzinfo is UTC

        local = fire.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if expression.follows_elapsed_time:
            assert expression.matches(wall)
        elif expression.matches(wall):
            assert local.fold == 0, "a fixed-hour schedule fires at the first occurrence only"
        else:
            skipped = _skipped_minutes(fire, zone)
            assert any(expression.matches_minute(minute) for minute in skipped)
        previous = fire


@settings(max_examples=150, deadline=None)
@given(
    expression=expressions,
    timezone=st.sampled_from(ZONES),
    after=afters,
    window_minutes=st.integers(1, 24 * 60),
)
def test_window_enumerated(
    expression: Expression, timezone: str, after: datetime, window_minutes: int
) -> None:
    """Up to a day from a random instant, the fire times equal a minute-by-minute enumeration."""
    schedule = _parse(expression, timezone)
    assume(schedule is not None)
    start = after.replace(second=0, microsecond=0)
    end = start + timedelta(minutes=window_minutes)

    _assert_window_enumerated(schedule, expression, ZoneInfo(timezone), start, end)


@settings(max_examples=100, deadline=None)
@given(expression=expressions, transition=st.sampled_from(TRANSITION_DAYS))
def test_transition_window_enumerated(expression: Expression, transition: tuple[str, str]) -> None:
    """Around offset transitions, the fire times equal a minute-by-minute enumeration."""
    timezone, day = transition
    schedule = _parse(expression, timezone)
    assume(schedule is not None)
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(hours=12)
    end = start + timedelta(hours=48)

    _assert_window_enumerated(schedule, expression, ZoneInfo(timezone), start, end)


@settings(max_examples=4, deadline=None)
@given(
    expression=sparse_expressions,
    timezone=st.sampled_from(["America/New_York", "Europe/London", "Australia/Lord_Howe"]),
    year=st.sampled_from([2026, 2028]),
)
def test_year_enumerated(expression: Expression, timezone: str, year: int) -> None:
    """Over a whole year with both transitions, no fire time is missing or extra."""
    schedule = _parse(expression, timezone)
    assume(schedule is not None)
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)

    expected = enumerate_fires(
        expression.matches_minute,
        expression.seconds,
        expression.follows_elapsed_time,
        ZoneInfo(timezone),
        start,
        end,
    )

    assert isinstance(schedule, CronSchedule)
    assert chain_fires(schedule, start, end) == expected
