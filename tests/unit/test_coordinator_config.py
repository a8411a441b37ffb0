"""The coordinator's --hand-ahead-ms flag: default, environment, range and bad values."""

from __future__ import annotations

import os

import pytest

from taskscheduler.coordinator.config import MAX_HAND_AHEAD_MS, parse_config

RANGE_MESSAGE = "--hand-ahead-ms must be 0 (hand runs out when due) to 1000"


@pytest.fixture(autouse=True)
def no_coordinator_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep TASKSCHEDULER_* variables of the machine out of the parsed defaults."""
    for name in list(os.environ):
        if name.startswith("TASKSCHEDULER_"):
            monkeypatch.delenv(name)


def test_hand_ahead_default() -> None:
    assert parse_config([]).hand_ahead_ms == 250


def test_hand_ahead_limit_constant() -> None:
    assert MAX_HAND_AHEAD_MS == 1000


@pytest.mark.parametrize("value", ["0", "1", "999", "1000"])
def test_hand_ahead_accepts_range(value: str) -> None:
    assert parse_config(["--hand-ahead-ms", value]).hand_ahead_ms == int(value)


def test_hand_ahead_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKSCHEDULER_HAND_AHEAD_MS", "400")

    assert parse_config([]).hand_ahead_ms == 400


def test_hand_ahead_flag_overrides_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKSCHEDULER_HAND_AHEAD_MS", "400")

    assert parse_config(["--hand-ahead-ms", "0"]).hand_ahead_ms == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--hand-ahead-ms", "-1"], RANGE_MESSAGE),
        (["--hand-ahead-ms=-1"], RANGE_MESSAGE),
        (["--hand-ahead-ms", "1001"], RANGE_MESSAGE),
        (["--hand-ahead-ms", "abc"], "--hand-ahead-ms 'abc' is not a whole number"),
        (["--hand-ahead-ms", "2.5"], "--hand-ahead-ms '2.5' is not a whole number"),
        (["--hand-ahead-ms", ""], "--hand-ahead-ms '' is not a whole number"),
    ],
)
def test_hand_ahead_rejects_bad_values(argv: list[str], message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_config(argv)

    assert str(raised.value) == message


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("-1", RANGE_MESSAGE),
        ("1001", RANGE_MESSAGE),
        ("abc", "--hand-ahead-ms 'abc' is not a whole number"),
    ],
)
def test_hand_ahead_rejects_bad_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("TASKSCHEDULER_HAND_AHEAD_MS", value)

    with pytest.raises(ValueError) as raised:
        parse_config([])

    assert str(raised.value) == message
