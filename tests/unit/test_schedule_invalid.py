"""Schedules and time zones that parse_schedule rejects, and the errors it raises."""

from __future__ import annotations

import zoneinfo

import pytest

from taskscheduler.errors import InvalidArgumentError
from taskscheduler.schedule import parse_schedule, validate_timezone

# Each row: expression, one_time, the fragments the message must contain.
BAD_SCHEDULES = [
    ("", False, ["is empty", "'0 9 * * *'"]),
    ("   ", False, ["is empty"]),
    ("61 * * * *", False, ["schedule '61 * * * *': minute 61 is out of range 0-59"]),
    ("* 24 * * *", False, ["hour 24 is out of range 0-23"]),
    ("* * 0 * *", False, ["day-of-month 0 is out of range 1-31"]),
    ("* * 32 * *", False, ["day-of-month 32 is out of range 1-31"]),
    ("* * * 13 *", False, ["month 13 is out of range 1-12"]),
    ("* * * * 8", False, ["day-of-week 8 is out of range 0-7 (0 and 7 are Sunday)"]),
    ("99999999999 * * * *", False, ["minute 99999999999 is out of range 0-59"]),
    ("*/0 * * * *", False, ["minute step '0' in '*/0' must be a whole number of at least 1"]),
    ("*/x * * * *", False, ["minute step 'x'"]),
    ("1-10/ * * * *", False, ["minute step ''"]),
    ("10-5 * * * *", False, ["minute range 10-5 runs backwards", "10-59,0-5"]),
    ("a * * * *", False, ["minute value 'a' is invalid; use a number 0-59"]),
    ("* * * foo *", False, ["month value 'foo' is invalid", "jan"]),
    ("* * * * monday", False, ["day-of-week value 'monday' is invalid", "mon"]),
    ("1,,2 * * * *", False, ["minute field has an empty list item"]),
    ("*-5 * * * *", False, ["minute item '*-5' is invalid"]),
    ("1-2-3 * * * *", False, ["minute item '1-2-3' is not a value, range or step"]),
    ("* * *", False, ["has 3 fields", "minute hour day-of-month month day-of-week"]),
    ("*", False, ["has 1 field,"]),
    ("* * *", False, ["or 6 (second minute hour day-of-month month day-of-week)"]),
    ("0 0 0 * * * 2026", False, ["has 7 fields"]),
    ("60 * * * * *", False, ["second 60 is out of range 0-59"]),
    ("0 0 30 2 * *", False, ["hour 30 is out of range 0-23"]),
    ("0 0 0 30 2 *", False, ["never fires", "day-of-month 30 does not occur in February"]),
    ("0 0 0 31 4 ?", False, ["never fires", "day-of-month 31 does not occur in April"]),
    ("L * * * *", False, ["minute item 'L' uses 'L' (last), which is allowed only in day-of"]),
    ("0 5L * * *", False, ["hour item '5L' uses 'L' (last)"]),
    ("0 0 * 5W *", False, ["month item '5W' uses 'W' (nearest weekday)", "only in day-of-month"]),
    ("0 0 * 1#2 *", False, ["month item '1#2' uses '#' (nth weekday)", "only in day-of-week"]),
    (
        "? * * * *",
        False,
        ["minute item '?' uses '?' (no specific value)", "as the whole day-of-month or day-of"],
    ),
    ("0 0 ?,1 * *", False, ["day-of-month item '?': '?' (no specific value) must be the whole"]),
    ("0 0 * * ?/2", False, ["day-of-week item '?/2': '?' (no specific value) must be the whole"]),
    ("0 0 1#2 * *", False, ["day-of-month item '1#2' uses '#'", "only in day-of-week"]),
    ("0 0 1-LW * *", False, ["day-of-month item '1-LW' is not supported", "L, L-3, 15W and LW"]),
    ("0 0 L/2 * *", False, ["day-of-month item 'L/2' is not supported"]),
    ("0 0 L-3W * *", False, ["day-of-month item 'L-3W' is not supported"]),
    ("0 0 1-15W * *", False, ["day-of-month item '1-15W' is not supported"]),
    ("0 0 W * *", False, ["day-of-month item 'W' is not supported"]),
    ("0 0 L-31 * *", False, ["day-of-month item 'L-31' is out of range; use L-0 to L-30"]),
    ("0 0 32W * *", False, ["day-of-month 32 is out of range 1-31"]),
    ("0 0 0W * *", False, ["day-of-month 0 is out of range 1-31"]),
    ("0 0 * * L", False, ["day-of-week item 'L' is not supported", "5L for the last Friday"]),
    ("0 0 * * 1-5L", False, ["day-of-week item '1-5L' is not supported", "MON#1,MON#3"]),
    ("0 0 * * */2#1", False, ["day-of-week item '*/2#1' is not supported"]),
    ("0 0 * * MON-FRI#2", False, ["day-of-week item 'MON-FRI#2' is not supported"]),
    ("0 0 * * 15W", False, ["day-of-week item '15W' uses 'W'", "only in day-of-month"]),
    ("0 0 * * MON#6", False, ["day-of-week item 'MON#6' asks for occurrence 6", "#1 to #5"]),
    ("0 0 * * 1#0", False, ["asks for occurrence 0"]),
    ("0 0 * * 8L", False, ["day-of-week 8 is out of range 0-7"]),
    ("0 0 * * FOOL", False, ["day-of-week value 'FOO' is invalid"]),
    ("0 0 * * 8#1", False, ["day-of-week 8 is out of range 0-7"]),
    ("0 0 31W 2 *", False, ["never fires", "day-of-month 31W does not occur in February"]),
    ("0 0 L-29 2 *", False, ["never fires", "day-of-month L-29 does not occur in February"]),
    (
        "0 0 LW * */7",
        False,
        [
            "never fires, because no day in any month matches both day-of-month LW and "
            "day-of-week */7, and a day must match both when either field starts with '*'"
        ],
    ),
    ("0 0 */15 1,2 MON#2", False, ["no day in January or February matches both"]),
    ("0 0 */20 * SUNL", False, ["no day in any month matches both"]),
    ("0 0 30 2 *", False, ["never fires", "day-of-month 30 does not occur in February"]),
    ("0 0 31 4 *", False, ["never fires", "day-of-month 31 does not occur in April"]),
    ("0 0 30,31 2 *", False, ["day-of-month 30,31 does not occur in February"]),
    (
        "0 0 31 2,4,6 *",
        False,
        [
            "does not occur in February, April or June; "
            "choose a day that exists in February, April or June"
        ],
    ),
    ("0 0 30 feb */2", False, ["never fires"]),
    ("@reboot", False, ["unknown macro '@reboot'", "@hourly", "@every 90s"]),
    ("@daily 5", False, ["macro '@daily' takes no arguments; remove '5'"]),
    ("@every", False, ["@every needs a duration"]),
    ("@every 0s", False, ["shorter than the minimum 1s"]),
    ("@every 0.5s", False, ["shorter than the minimum 1s"]),
    ("@every -5s", False, ["must be positive"]),
    ("@every 5", False, ["missing a unit after 5"]),
    ("@every 5d", False, ["unit 'd'", "not supported", "use h, m or s"]),
    ("@every 500ms", False, ["unit 'ms'", "not supported"]),
    ("@every abc", False, ["'abc' is not a duration"]),
    ("@every 1.5s", False, ["not a whole number of seconds"]),
    ("@every 1h 30m", False, ["unit 'h '"]),
    (
        "@every 1h1h",
        False,
        ["@every duration '1h1h' gives unit 'h' more than once; write each unit once"],
    ),
    ("@every 30s1m30s", False, ["gives unit 's' more than once"]),
    ("@every 99999999999h", False, ["is too long"]),
    ("2026-12-24T18:00:00Z", False, ["only a one-time job can use"]),
    ("0 9 * * *", True, ["a one-time job needs an ISO-8601 instant such as 2026-12-24T18:00:00Z"]),
    ("", True, ["a one-time job needs an ISO-8601 instant"]),
    ("@every 5s", True, ["a one-time job needs an ISO-8601 instant"]),
    ("tomorrow", True, ["a one-time job needs an ISO-8601 instant"]),
    ("2026-12-24", True, ["a one-time job needs an ISO-8601 instant"]),
    ("2026-13-01T00:00:00Z", True, ["month must be in 1..12", "ISO-8601 instant"]),
    ("2026-12-24T25:00:00", True, ["hour must be in 0..23"]),
    ("2026-12-24T18:00:00 Berlin", True, ["a one-time job needs an ISO-8601 instant"]),
    ("9999-12-31T23:00:00-05:00", True, ["outside the years 1-9999"]),
]


@pytest.mark.parametrize(
    ("expression", "one_time", "fragments"),
    BAD_SCHEDULES,
    ids=[f"{row[0]!r}|{'one-time' if row[1] else 'recurring'}" for row in BAD_SCHEDULES],
)
def test_bad_schedule(expression: str, one_time: bool, fragments: list[str]) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        parse_schedule(expression, one_time=one_time, timezone="Europe/Berlin")

    assert raised.value.field == "schedule"
    for fragment in fragments:
        assert fragment in raised.value.message


def test_message_quotes_expression() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        parse_schedule("0 0 30 2 *", one_time=False)

    assert raised.value.message.startswith("schedule '0 0 30 2 *': never fires")
    assert str(raised.value) == raised.value.message


def test_long_expression_truncated() -> None:
    expression = "61 " + "1," * 200 + "1 * * *"

    with pytest.raises(InvalidArgumentError) as raised:
        parse_schedule(expression, one_time=False)

    assert len(raised.value.message) < 200
    assert "minute 61 is out of range 0-59" in raised.value.message


BAD_TIMEZONES = [
    "Mars/Base",
    "Europe/Berlin ",
    "europe/berlin",
    "/etc/passwd",
    "../zoneinfo/UTC",
    "America",
    "Europe/\x00Berlin",
]


@pytest.mark.parametrize("timezone", BAD_TIMEZONES)
@pytest.mark.parametrize("one_time", [False, True])
def test_bad_timezone(timezone: str, one_time: bool) -> None:
    expression = "2026-12-24T18:00:00Z" if one_time else "0 9 * * *"

    with pytest.raises(InvalidArgumentError) as raised:
        parse_schedule(expression, one_time=one_time, timezone=timezone)

    assert raised.value.field == "timezone"
    assert "is not a known IANA time zone" in raised.value.message
    assert "use an IANA name such as Europe/Berlin" in raised.value.message


@pytest.mark.parametrize(
    "timezone", ["localtime", "posixrules", "Factory", "posix/Europe/Berlin", "right/UTC"]
)
def test_host_dependent_timezone_rejected(timezone: str) -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        validate_timezone(timezone)

    assert raised.value.field == "timezone"
    assert "is not a portable IANA zone name" in raised.value.message


def test_offset_out_of_range_message() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        parse_schedule("2026-12-24T18:00:00+25:00", one_time=True)

    assert raised.value.field == "schedule"
    assert "the UTC offset must be between -23:59 and +23:59" in raised.value.message
    assert "timedelta" not in raised.value.message


def test_validate_timezone_message() -> None:
    with pytest.raises(InvalidArgumentError) as raised:
        validate_timezone("Mars/Base")

    assert raised.value.field == "timezone"
    assert raised.value.message == (
        "timezone 'Mars/Base' is not a known IANA time zone; "
        "use an IANA name such as Europe/Berlin, America/New_York or UTC"
    )


@pytest.mark.parametrize(
    ("name", "key"), [("", "UTC"), ("UTC", "UTC"), ("Europe/Berlin", "Europe/Berlin")]
)
def test_validate_timezone_valid(name: str, key: str) -> None:
    zone = validate_timezone(name)

    assert isinstance(zone, zoneinfo.ZoneInfo)
    assert zone.key == key


# Edge cases that are valid and must keep parsing.
GOOD_EDGES = [
    "0 0 29 2 *",
    "0 0 30 2 1",
    "0 0 */30 2 *",
    "0 0 30,31 2,4 *",
    "*/90 * * * *",
    "0 0 * * 7",
    "0 0 * * 5-7",
    "0 0 * Jan-MAR SUN",
    "@DAILY",
    "@every 1.5m",
    "@EVERY 1s",
    "@every 2h0m0s",
    "@every 30m1h",
    "0 0 0 * * *",
    "0 0 L * *",
    "0 0 l-30 * *",
    "0 0 L-28 2 *",
    "0 0 15W * *",
    "0 0 1W,31W * *",
    "0 0 lw * *",
    "0 0 1,15,L,LW * *",
    "0 0 ? * 1",
    "0 0 1 * ?",
    "0 0 * * 5L",
    "0 0 * * fril",
    "0 0 * * 7L",
    "0 0 * * 5#3",
    "0 0 * * mon#5",
    "0 0 * * 7#1,SAT#5",
    "0 0 * * 1-5,5L,MON#1",
    "0 0 * 2 MON#5",
    "0 0 30 2 MON#5",
    "0 0 */28 2 MONL",
    "0 0 0 L * ?",
]


@pytest.mark.parametrize("expression", GOOD_EDGES)
def test_edge_expression_accepted(expression: str) -> None:
    schedule = parse_schedule(expression, one_time=False, timezone="Europe/Berlin")

    assert schedule.expression == expression
