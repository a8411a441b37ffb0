"""A faster `dataclasses.replace` for the frozen model records on the hot path.

At thousands of runs a second the leader copies a run or a job several
times per run, and `dataclasses.replace` spends most of its time finding
the fields and calling `__init__`. `evolve` writes each field straight into
a new instance through a function generated once per class. The model
classes have no `__post_init__`, so skipping `__init__` changes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Copier = Callable[[Any, dict[str, Any]], Any]
_copiers: dict[type, tuple[_Copier, frozenset[str]]] = {}


def evolve(record: T, **changes: Any) -> T:
    """Return a copy of the dataclass instance `record` with `changes` applied."""
    cls = type(record)
    entry = _copiers.get(cls)
    if entry is None:
        entry = _copiers[cls] = _build_copier(cls)
    copier, names = entry
    if not changes.keys() <= names:
        unknown = ", ".join(sorted(changes.keys() - names))
        raise TypeError(f"{cls.__name__} has no field {unknown}")
    return copier(record, changes)  # type: ignore[no-any-return]


def _build_copier(cls: type) -> tuple[_Copier, frozenset[str]]:
    if hasattr(cls, "__post_init__"):
        raise TypeError(f"{cls.__name__} has __post_init__; use dataclasses.replace")
    names = [field.name for field in dataclasses.fields(cls)]
    lines = [
        "def copy(record, changes):",
        "    new = new_instance(cls)",
        "    get = changes.get",
        *(f"    set_field(new, {name!r}, get({name!r}, record.{name}))" for name in names),
        "    return new",
    ]
    scope: dict[str, Any] = {
        "new_instance": object.__new__,
        "set_field": object.__setattr__,
        "cls": cls,
    }
    exec("\n".join(lines), scope)
    return scope["copy"], frozenset(names)
