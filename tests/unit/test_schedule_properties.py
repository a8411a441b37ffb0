"""Properties of random valid 5-field cron expressions in a few time zones.

The expressions are built from known value sets, so the expected sets come
from the generator, not from the parser under test.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_schedule_dst import TRANSITION_DAYS, chain_fires, enumerate_fires

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.schedule import parse_schedule

_MINUTE = timedelta(minutes=1)
_MONTH_NAMES = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_DAYS_IN_MONTH_MAX = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
ZONES = ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata"]


@dataclass(frozen=True)
class Field:
    text: str
    values: frozenset[int]


@dataclass(frozen=True)
class Expression:
    minute: Field
    hour: Field
    day_of_month: Field
    month: Field
    day_of_week: Field

    @property
    def text(self) -> str:
        fields = (self.minute, self.hour, self.day_of_month, self.month, self.day_of_week)
        return " ".join(field.text for field in fields)

    @property
    def follows_elapsed_time(self) -> bool:
        return self.hour.text.startswith("*") or "/" in self.hour.text

    def matches_day(self, day: date) -> bool:
        if day.month not in self.month.values:
            return False
        by_month_day = day.day in self.day_of_month.values
        by_weekday = day.isoweekday() % 7 in {value % 7 for value in self.day_of_week.values}
        if self.day_of_month.text.startswith("*") or self.day_of_week.text.startswith("*"):
            return by_month_day and by_weekday
        return by_month_day or by_weekday

    def matches(self, wall: datetime) -> bool:
        return (
            wall.minute in self.minute.values
            and wall.hour in self.hour.values
            and self.matches_day(wall.date())
        )

    def can_fire(self) -> bool:
        """Whether some calendar date satisfies the day fields (see the parser's rule)."""
        if self.day_of_month.text.startswith("*") or not self.day_of_week.text.startswith("*"):
            return True
        return any(
            day <= _DAYS_IN_MONTH_MAX[month - 1]
            for month in self.month.values
            for day in self.day_of_month.values
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


expressions = st.builds(
    Expression,
    minute=fields(0, 59),
    hour=fields(0, 23),
    day_of_month=fields(1, 31),
    month=fields(1, 12, _MONTH_NAMES),
    day_of_week=fields(0, 7, _DAY_NAMES),
)
afters = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)).map(
    lambda naive: naive.replace(tzinfo=UTC)
)


def _skipped_walls(fire: datetime, zone: ZoneInfo) -> list[datetime]:
    """Return the wall times a forward transition skipped just before `fire`, if any."""
    wall = fire.astimezone(zone).replace(tzinfo=None)
    skipped = (fire - _MINUTE).astimezone(zone).replace(tzinfo=None) + _MINUTE
    walls = []
    while skipped < wall:
        walls.append(skipped)
        skipped += _MINUTE
    return walls


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=expressions, timezone=st.sampled_from(ZONES), after=afters)
def test_fires_increase_and_match(expression: Expression, timezone: str, after: datetime) -> None:
    zone = ZoneInfo(timezone)
    try:
        schedule = parse_schedule(expression.text, one_time=False, timezone=timezone)
    except InvalidArgumentError as error:
        assert "never fires" in error.message
        assert not expression.can_fire()
        return
    assert expression.can_fire()

    previous = after
    for _ in range(6):
        fire = schedule.next_fire_after(previous)
        assert fire is not None
        assert fire > previous
        assert fire.tzinfo is UTC

        local = fire.astimezone(zone)
        wall = local.replace(tzinfo=None)
        if expression.follows_elapsed_time:
            assert expression.matches(wall)
        elif expression.matches(wall):
            assert local.fold == 0, "a fixed-hour schedule fires at the first occurrence only"
        else:
            assert any(expression.matches(skipped) for skipped in _skipped_walls(fire, zone))
        previous = fire


@settings(max_examples=120, deadline=None)
@given(
    expression=expressions,
    timezone=st.sampled_from(ZONES),
    after=afters,
    window_minutes=st.integers(0, 24 * 60),
)
def test_no_fire_skipped(
    expression: Expression, timezone: str, after: datetime, window_minutes: int
) -> None:
    """No matching minute between `after` and the next fire time is left out."""
    assume(expression.can_fire())
    zone = ZoneInfo(timezone)
    schedule = parse_schedule(expression.text, one_time=False, timezone=timezone)
    after = after.replace(second=0, microsecond=0)

    fire = schedule.next_fire_after(after)
    assert fire is not None

    # Check at most one day of minutes, so that sparse schedules stay fast.
    instant = after + _MINUTE
    end = min(fire, after + timedelta(minutes=window_minutes + 1))
    while instant < end:
        local = instant.astimezone(zone)
        if expression.matches(local.replace(tzinfo=None)):
            # Only a fixed-hour schedule may pass over a match: the repeat of a wall time.
            assert not expression.follows_elapsed_time, f"{instant} matches but was skipped"
            assert local.fold == 1, f"{instant} matches but was skipped"
        instant += _MINUTE


@settings(max_examples=100, deadline=None)
@given(expression=expressions, transition=st.sampled_from(TRANSITION_DAYS))
def test_transition_window_enumerated(expression: Expression, transition: tuple[str, str]) -> None:
    """Around offset transitions, the fire times equal a minute-by-minute enumeration."""
    assume(expression.can_fire())
    timezone, day = transition
    start = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(hours=12)
    end = start + timedelta(hours=48)
    schedule = parse_schedule(expression.text, one_time=False, timezone=timezone)

    expected = enumerate_fires(
        expression.matches, expression.follows_elapsed_time, ZoneInfo(timezone), start, end
    )

    assert chain_fires(schedule, start, end) == expected
