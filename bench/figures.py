"""Measured figures, the targets they are held to, and the verdict on each."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Bound(Enum):
    """The relation a value must have to its target's limit."""

    AT_LEAST = ">="
    BELOW = "<"
    AT_MOST = "<="


@dataclass(frozen=True, slots=True)
class Target:
    bound: Bound
    limit: float

    def reached_by(self, value: float) -> bool:
        if self.bound is Bound.AT_LEAST:
            return value >= self.limit
        if self.bound is Bound.BELOW:
            return value < self.limit
        return value <= self.limit

    def shortfall(self, value: float) -> float:
        """Return how far `value` is on the wrong side of the limit; 0 when reached."""
        if self.reached_by(value):
            return 0.0
        return abs(value - self.limit)


def at_least(limit: float) -> Target:
    return Target(Bound.AT_LEAST, limit)


def below(limit: float) -> Target:
    return Target(Bound.BELOW, limit)


def at_most(limit: float) -> Target:
    return Target(Bound.AT_MOST, limit)


def format_number(value: float, digits: int = 0) -> str:
    """Format with thousands separators and `digits` decimals: 12345.6 -> '12,345.6'."""
    return f"{value:,.{digits}f}"


@dataclass(frozen=True, kw_only=True)
class Figure:
    """One measured number with its unit, and the target it is held to, if any."""

    name: str
    value: float | None
    unit: str
    target: Target | None = None
    digits: int = 0
    note: str = ""

    @property
    def value_text(self) -> str:
        if self.value is None:
            return "not measured"
        return f"{format_number(self.value, self.digits)} {self.unit}".rstrip()

    @property
    def target_text(self) -> str:
        if self.target is None:
            return ""
        limit = format_number(self.target.limit, self.digits)
        return f"{self.target.bound.value} {limit} {self.unit}".rstrip()

    @property
    def reached(self) -> bool | None:
        """True or False against the target; None without a target or a value."""
        if self.target is None or self.value is None:
            return None
        return self.target.reached_by(self.value)

    @property
    def verdict(self) -> str:
        """'reached', 'missed by N unit (P %)', 'not measured', or '' without a target."""
        if self.target is None:
            return ""
        if self.value is None:
            return "not measured"
        if self.target.reached_by(self.value):
            return "reached"
        shortfall = self.target.shortfall(self.value)
        missed = f"missed by {format_number(shortfall, self.digits)} {self.unit}".rstrip()
        if self.target.limit == 0:
            return missed
        return f"{missed} ({shortfall / abs(self.target.limit) * 100:.0f} % of the target)"


@dataclass(frozen=True, kw_only=True)
class Table:
    """Extra rows a section shows, such as a profile's top functions."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]


@dataclass(kw_only=True)
class Section:
    """The result of one scenario: what it did, its figures, tables and notes."""

    title: str
    method: str
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def missed(self) -> list[Figure]:
        return [figure for figure in self.figures if figure.reached is False]
