"""Job selectors: the agent labels a job's runs need, checked and matched.

A selector is a mapping of label key to value. An agent matches it when
its labels contain every entry with an equal value, so the empty selector
matches every agent.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from taskscheduler.errors import InvalidArgumentError

MAX_SELECTOR_ENTRIES = 16
MAX_SELECTOR_KEY_CHARS = 63
MAX_SELECTOR_VALUE_CHARS = 255

# The label keys agents accept (--labels), so a selector can only ask for those.
LABEL_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,62}\Z")

# A selector as a hashable value: sorted (key, value) pairs.
SelectorKey = tuple[tuple[str, str], ...]


def selector_key(selector: Mapping[str, str]) -> SelectorKey:
    return tuple(sorted(selector.items()))


def labels_match(selector: SelectorKey | Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Return whether `labels` contain every entry of `selector`."""
    pairs = selector.items() if isinstance(selector, Mapping) else selector
    return all(labels.get(key) == value for key, value in pairs)


def describe(selector: SelectorKey) -> str:
    """Render a selector as comma-separated key=value pairs, as agents' --labels take them."""
    return ",".join(f"{key}={value}" for key, value in selector)


def check_selector(selector: Mapping[str, str]) -> None:
    """Raise InvalidArgumentError unless the selector is well formed.

    A bad value names the field `selector.<key>`, as the gateway does for a value
    of the wrong JSON type. A bad key, or too many entries, names `selector`.
    """
    if len(selector) > MAX_SELECTOR_ENTRIES:
        raise InvalidArgumentError(
            "selector",
            f"selector has {len(selector)} entries; use at most {MAX_SELECTOR_ENTRIES}",
        )
    for key, value in selector.items():
        if not LABEL_KEY.match(key):
            raise InvalidArgumentError(
                "selector",
                f"selector key {key[:80]!r} is not a label key agents can have: use 1 to "
                f"{MAX_SELECTOR_KEY_CHARS} letters, digits, '.', '_', '/' or '-', starting with "
                "a letter or digit",
            )
        if (
            not value
            or len(value) > MAX_SELECTOR_VALUE_CHARS
            or not value.isprintable()
            or "," in value
            or value != value.strip()
        ):
            raise InvalidArgumentError(
                f"selector.{key}",
                f"selector value for {key!r} must be 1 to {MAX_SELECTOR_VALUE_CHARS} printable "
                "characters without commas or surrounding spaces, as agents' --labels take them",
            )
