"""Checks shared by the executors' payload parsers.

Each raises InvalidArgumentError naming the payload field (`payload.command`,
`payload.env.HOME`) so the attempt fails with a message naming what to fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskscheduler.errors import InvalidArgumentError


def payload_field(name: str) -> str:
    return f"payload.{name}"


def reject_unknown_keys(payload: Mapping[str, Any], known: frozenset[str]) -> None:
    unknown = sorted(set(payload) - known)
    if unknown:
        raise InvalidArgumentError(
            payload_field(unknown[0]),
            f"unknown key {unknown[0]!r}; expected keys: {', '.join(sorted(known))}",
        )


def optional_string(payload: Mapping[str, Any], key: str) -> str | None:
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentError(
            payload_field(key), f"must be a string, got {type(value).__name__}"
        )
    return value


def optional_string_map(payload: Mapping[str, Any], key: str) -> dict[str, str]:
    """Return the object at `key` as str -> str; a missing key is an empty map."""
    value = payload.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidArgumentError(
            payload_field(key),
            f"must be an object of string values, got {type(value).__name__}",
        )
    for name, item in value.items():
        if not isinstance(item, str):
            raise InvalidArgumentError(
                payload_field(f"{key}.{name}"),
                f"must be a string, got {type(item).__name__}; quote numbers and booleans",
            )
    return dict(value)


def optional_int(payload: Mapping[str, Any], key: str) -> int | None:
    """Return the integer at `key`.

    A whole float counts, because protobuf Struct stores every number as a double.
    """
    value = payload.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidArgumentError(
            payload_field(key), f"must be an integer, got {type(value).__name__}"
        )
    if isinstance(value, float) and not value.is_integer():
        raise InvalidArgumentError(payload_field(key), f"must be an integer, got {value}")
    return int(value)
