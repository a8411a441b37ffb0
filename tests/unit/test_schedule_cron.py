"""Recurring schedules against hand-computed fire times, including daylight saving time days.

HAND_COMPUTED is the reference table for the dialect: 5- and 6-field cron,
`L`, `W`, `#`, `?`, macros and `@every`, in zones with offset transitions.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskscheduler.schedule import fire_times, parse_schedule


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


# Every hour of local 2026-10-25 in London, which has 25: 00:00 BST is 23:00Z the day before,
# then 01:00 BST (00:00Z), 01:00 GMT (01:00Z), and so on to 23:00 GMT (23:00Z).
LONDON_FALL_BACK_HOURS = ["2026-10-24T23:00Z"] + [f"2026-10-25T{hour:02}:00Z" for hour in range(24)]

# Each row: expression, time zone, `after`, the expected next fire times (UTC).
# Weekdays used below: 2026-01-01 is a Thursday, 2026-02-01 and 2026-03-01 are Sundays,
# 2026-08-01 is a Saturday, 2026-11-01 is a Sunday.
HAND_COMPUTED = [
    # Spring forward in New York (2026-03-08, 02:00 EST -> 03:00 EDT): 02:30 fires after the gap.
    (
        "30 2 * * *",
        "America/New_York",
        "2026-03-07T12:00Z",
        ["2026-03-08T07:00Z", "2026-03-09T06:30Z"],
    ),
    # Fall back in New York (2026-11-01, 02:00 EDT -> 01:00 EST): 01:30 fires once, in EDT.
    (
        "30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00Z",
        ["2026-11-01T05:30Z", "2026-11-02T06:30Z"],
    ),
    (
        "0 0 31 * *",
        "UTC",
        "2026-01-31T00:00Z",
        ["2026-03-31T00:00Z", "2026-05-31T00:00Z", "2026-07-31T00:00Z"],
    ),
    # Toronto springs forward at 07:00Z; the step hour skips the missing 02:00.
    (
        "0 */2 * * *",
        "America/Toronto",
        "2023-03-12T03:00Z",
        [
            "2023-03-12T05:00Z",
            "2023-03-12T08:00Z",
            "2023-03-12T10:00Z",
            "2023-03-12T12:00Z",
            "2023-03-12T14:00Z",
        ],
    ),
    ("0 0 29 2 *", "UTC", "2026-01-01T00:00Z", ["2028-02-29T00:00Z", "2032-02-29T00:00Z"]),
    ("0 0 29 2 *", "Europe/Berlin", "2027-01-01T00:00Z", ["2028-02-28T23:00Z"]),
    (
        "*/15 * * * *",
        "UTC",
        "2026-05-05T10:07:30Z",
        ["2026-05-05T10:15Z", "2026-05-05T10:30Z", "2026-05-05T10:45Z", "2026-05-05T11:00Z"],
    ),
    # 2026-01-02 is a Friday.
    ("0 9 * * mon-fri", "UTC", "2026-01-02T09:00Z", ["2026-01-05T09:00Z", "2026-01-06T09:00Z"]),
    (
        "0 9 * * 1-5",
        "Europe/Berlin",
        "2026-01-02T08:00Z",
        ["2026-01-05T08:00Z", "2026-01-06T08:00Z"],
    ),
    ("0 0 1 JAN *", "UTC", "2026-06-01T00:00Z", ["2027-01-01T00:00Z", "2028-01-01T00:00Z"]),
    ("@yearly", "Europe/Berlin", "2026-06-01T00:00Z", ["2026-12-31T23:00Z", "2027-12-31T23:00Z"]),
    ("@annually", "UTC", "2026-01-01T00:00Z", ["2027-01-01T00:00Z"]),
    ("@monthly", "Asia/Tokyo", "2026-01-15T00:00Z", ["2026-01-31T15:00Z", "2026-02-28T15:00Z"]),
    # 2026-01-01 is a Thursday, so the first Sunday is 01-04.
    ("@weekly", "UTC", "2026-01-01T00:00Z", ["2026-01-04T00:00Z", "2026-01-11T00:00Z"]),
    (
        "@daily",
        "America/Los_Angeles",
        "2026-01-01T00:00Z",
        ["2026-01-01T08:00Z", "2026-01-02T08:00Z"],
    ),
    ("@midnight", "UTC", "2026-02-28T12:00Z", ["2026-03-01T00:00Z", "2026-03-02T00:00Z"]),
    ("@hourly", "UTC", "2026-01-01T00:30Z", ["2026-01-01T01:00Z", "2026-01-01T02:00Z"]),
    ("0 12 * * 7", "UTC", "2026-01-01T00:00Z", ["2026-01-04T12:00Z", "2026-01-11T12:00Z"]),
    ("0 12 * * 0", "UTC", "2026-01-01T00:00Z", ["2026-01-04T12:00Z", "2026-01-11T12:00Z"]),
    # Both day fields restricted: the Fridays of January 2026 or the 13th (a Tuesday).
    (
        "0 0 13 * 5",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-01-02T00:00Z", "2026-01-09T00:00Z", "2026-01-13T00:00Z", "2026-01-16T00:00Z"],
    ),
    # Day-of-month starts with '*', so a day must match both fields:
    # Mondays that are the 1st, 11th, 21st or 31st.
    (
        "0 0 */10 * mon",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-05-11T00:00Z", "2026-06-01T00:00Z", "2026-08-31T00:00Z"],
    ),
    (
        "5/15 * * * *",
        "UTC",
        "2026-01-01T00:00Z",
        [
            "2026-01-01T00:05Z",
            "2026-01-01T00:20Z",
            "2026-01-01T00:35Z",
            "2026-01-01T00:50Z",
            "2026-01-01T01:05Z",
        ],
    ),
    (
        "1-10/3 * * * *",
        "UTC",
        "2026-01-01T00:08Z",
        ["2026-01-01T00:10Z", "2026-01-01T01:01Z", "2026-01-01T01:04Z"],
    ),
    (
        "0 0 * FEB,aug *",
        "UTC",
        "2026-02-27T12:00Z",
        ["2026-02-28T00:00Z", "2026-08-01T00:00Z", "2026-08-02T00:00Z"],
    ),
    ("0 0 31 1-4 *", "UTC", "2026-01-31T00:00Z", ["2026-03-31T00:00Z", "2027-01-31T00:00Z"]),
    (
        "0 22 * * *",
        "Australia/Sydney",
        "2026-01-01T00:00Z",
        ["2026-01-01T11:00Z", "2026-01-02T11:00Z"],
    ),
    # Berlin springs forward on 2026-03-29 at 01:00Z (02:00 CET -> 03:00 CEST).
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-03-28T12:00Z",
        ["2026-03-29T01:00Z", "2026-03-30T00:30Z"],
    ),
    # Berlin falls back on 2026-10-25 at 01:00Z (03:00 CEST -> 02:00 CET).
    (
        "30 2 * * *",
        "Europe/Berlin",
        "2026-10-24T12:00Z",
        ["2026-10-25T00:30Z", "2026-10-26T01:30Z"],
    ),
    (
        "30 * * * *",
        "Europe/Berlin",
        "2026-03-29T00:00Z",
        ["2026-03-29T00:30Z", "2026-03-29T01:30Z", "2026-03-29T02:30Z"],
    ),
    (
        "30 * * * *",
        "Europe/Berlin",
        "2026-10-24T23:00Z",
        ["2026-10-24T23:30Z", "2026-10-25T00:30Z", "2026-10-25T01:30Z", "2026-10-25T02:30Z"],
    ),
    # Lord Howe falls back half an hour on 2026-04-04 at 15:00Z (02:00 +11 -> 01:30 +10:30).
    (
        "45 1 * * *",
        "Australia/Lord_Howe",
        "2026-04-04T00:00Z",
        ["2026-04-04T14:45Z", "2026-04-05T15:15Z"],
    ),
    (
        "45 * * * *",
        "Australia/Lord_Howe",
        "2026-04-04T14:00Z",
        ["2026-04-04T14:45Z", "2026-04-04T15:15Z", "2026-04-04T16:15Z"],
    ),
    # Santiago springs forward at midnight on 2026-09-06 (00:00 -04 -> 01:00 -03).
    ("@daily", "America/Santiago", "2026-09-05T12:00Z", ["2026-09-06T04:00Z", "2026-09-07T03:00Z"]),
    # Samoa skipped 2011-12-30: 12:00 of that day fires at the transition, 10:00Z.
    (
        "0 12 * * *",
        "Pacific/Apia",
        "2011-12-29T00:00Z",
        ["2011-12-29T22:00Z", "2011-12-30T10:00Z", "2011-12-30T22:00Z"],
    ),
    ("0 12 * * *", "Asia/Kolkata", "2026-01-01T00:00Z", ["2026-01-01T06:30Z", "2026-01-02T06:30Z"]),
    ("0 0 * * *", "Etc/GMT+5", "2026-01-01T00:00Z", ["2026-01-01T05:00Z"]),
    ("0 0 * * *", "", "2026-01-01T00:00Z", ["2026-01-02T00:00Z"]),
    # `after` may be given in any zone: 10:30+02:00 is 08:30Z, past today's 09:00 BST.
    ("0 9 * * *", "Europe/London", "2026-06-01T10:30+02:00", ["2026-06-02T08:00Z"]),
    ("* * * * *", "UTC", "2026-01-01T00:00:59.500Z", ["2026-01-01T00:01Z", "2026-01-01T00:02Z"]),
    ("59 23 31 12 *", "UTC", "2026-12-31T23:59Z", ["2027-12-31T23:59Z"]),
    ("  0   9 * *  *  ", "UTC", "2026-01-01T00:00Z", ["2026-01-01T09:00Z"]),
    # London springs forward on 2026-03-29 at 01:00Z (01:00 GMT -> 02:00 BST).
    (
        "30 1 * * *",
        "Europe/London",
        "2026-03-28T12:00Z",
        ["2026-03-29T01:00Z", "2026-03-30T00:30Z"],
    ),
    # London falls back on 2026-10-25 at 01:00Z (02:00 BST -> 01:00 GMT): 01:30 fires in BST only.
    (
        "30 1 * * *",
        "Europe/London",
        "2026-10-24T12:00Z",
        ["2026-10-25T00:30Z", "2026-10-26T01:30Z"],
    ),
    ("0 * * * *", "Europe/London", "2026-10-24T22:59:59Z", LONDON_FALL_BACK_HOURS),
    # New York falls back on 2026-11-01 at 06:00Z: the hourly job fires at 01:00 EDT and 01:00 EST.
    (
        "0 * * * *",
        "America/New_York",
        "2026-11-01T04:30Z",
        ["2026-11-01T05:00Z", "2026-11-01T06:00Z", "2026-11-01T07:00Z"],
    ),
    # Lord Howe springs forward half an hour on 2026-10-03 at 15:30Z (02:00 +10:30 -> 02:30 +11).
    (
        "15 2 * * *",
        "Australia/Lord_Howe",
        "2026-10-02T12:00Z",
        ["2026-10-02T15:45Z", "2026-10-03T15:30Z", "2026-10-04T15:15Z"],
    ),
    (
        "*/30 * * * *",
        "Australia/Lord_Howe",
        "2026-10-03T15:00Z",
        ["2026-10-03T15:30Z", "2026-10-03T16:00Z"],
    ),
    # February: 28 days in 2027, 29 in 2028.
    (
        "0 0 L 2 *",
        "UTC",
        "2026-06-01T00:00Z",
        ["2027-02-28T00:00Z", "2028-02-29T00:00Z", "2029-02-28T00:00Z"],
    ),
    ("0 9 29 * *", "UTC", "2027-01-29T09:00Z", ["2027-03-29T09:00Z", "2027-04-29T09:00Z"]),
    ("0 9 29 * *", "UTC", "2028-01-29T09:00Z", ["2028-02-29T09:00Z", "2028-03-29T09:00Z"]),
    (
        "0 12 L * *",
        "UTC",
        "2026-01-31T12:00Z",
        ["2026-02-28T12:00Z", "2026-03-31T12:00Z", "2026-04-30T12:00Z"],
    ),
    (
        "0 0 L-3 * *",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-01-28T00:00Z", "2026-02-25T00:00Z", "2026-03-28T00:00Z"],
    ),
    # 15W: Feb 15 and Mar 15 are Sundays, so Monday the 16th; Aug 15 is a Saturday, so the 14th.
    (
        "0 9 15W * *",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-01-15T09:00Z", "2026-02-16T09:00Z", "2026-03-16T09:00Z", "2026-04-15T09:00Z"],
    ),
    ("0 9 15W * *", "UTC", "2026-08-01T00:00Z", ["2026-08-14T09:00Z", "2026-09-15T09:00Z"]),
    # 1W: Saturday Aug 1 moves to Monday Aug 3, not back into July; Sunday Nov 1 to Nov 2.
    ("0 0 1W * *", "UTC", "2026-07-15T00:00Z", ["2026-08-03T00:00Z", "2026-09-01T00:00Z"]),
    ("0 0 1W * *", "UTC", "2026-10-15T00:00Z", ["2026-11-02T00:00Z", "2026-12-01T00:00Z"]),
    # 31W: Saturday Jan 31 moves to the 30th; Sunday May 31 to Friday the 29th, not into June.
    (
        "0 0 31W * *",
        "UTC",
        "2026-01-01T00:00Z",
        [
            "2026-01-30T00:00Z",
            "2026-03-31T00:00Z",
            "2026-05-29T00:00Z",
            "2026-07-31T00:00Z",
            "2026-08-31T00:00Z",
        ],
    ),
    # LW: Saturday Jan 31 and Feb 28 move to Friday; Sunday May 31 to Friday the 29th.
    (
        "0 0 LW * *",
        "UTC",
        "2026-01-01T00:00Z",
        [
            "2026-01-30T00:00Z",
            "2026-02-27T00:00Z",
            "2026-03-31T00:00Z",
            "2026-04-30T00:00Z",
            "2026-05-29T00:00Z",
        ],
    ),
    (
        "0 0 * * 5L",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-01-30T00:00Z", "2026-02-27T00:00Z", "2026-03-27T00:00Z"],
    ),
    # Berlin is back on CET (+01:00) after 2026-10-25.
    (
        "0 18 * * FRIL",
        "Europe/Berlin",
        "2026-10-01T00:00Z",
        ["2026-10-30T17:00Z", "2026-11-27T17:00Z"],
    ),
    (
        "0 0 * * MON#2",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-01-12T00:00Z", "2026-02-09T00:00Z", "2026-03-09T00:00Z"],
    ),
    # New York is on EDT (-04:00) from 2026-03-08.
    (
        "30 8 * * 1#2",
        "America/New_York",
        "2026-03-01T00:00Z",
        ["2026-03-09T12:30Z", "2026-04-13T12:30Z"],
    ),
    # Fifth Fridays: January and May 2026 have five.
    ("0 0 * * 5#5", "UTC", "2026-01-01T00:00Z", ["2026-01-30T00:00Z", "2026-05-29T00:00Z"]),
    # New York springs forward on the second Sunday of March: 02:30 fires after the gap.
    ("30 2 * 3 SUN#2", "America/New_York", "2026-01-01T00:00Z", ["2026-03-08T07:00Z"]),
    # A fifth Monday in February needs Feb 29 on a Monday; 2100 is not a leap year.
    (
        "0 0 ? 2 MON#5",
        "UTC",
        "2026-01-01T00:00Z",
        ["2044-02-29T00:00Z", "2072-02-29T00:00Z", "2112-02-29T00:00Z"],
    ),
    # Both day fields restricted: days 8 and 9, or the second Sunday.
    (
        "0 0 8-9 * 0#2",
        "UTC",
        "2021-01-01T00:00Z",
        [
            "2021-01-08T00:00Z",
            "2021-01-09T00:00Z",
            "2021-01-10T00:00Z",
            "2021-02-08T00:00Z",
            "2021-02-09T00:00Z",
            "2021-02-14T00:00Z",
            "2021-03-08T00:00Z",
            "2021-03-09T00:00Z",
        ],
    ),
    (
        "0 0 L * MON#1",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-01-05T00:00Z", "2026-01-31T00:00Z", "2026-02-02T00:00Z", "2026-02-28T00:00Z"],
    ),
    # '?' is '*', so only the first Mondays fire.
    (
        "0 0 ? * MON#1",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-01-05T00:00Z", "2026-02-02T00:00Z", "2026-03-02T00:00Z"],
    ),
    (
        "0 0 1,L * ?",
        "UTC",
        "2026-01-15T00:00Z",
        ["2026-01-31T00:00Z", "2026-02-01T00:00Z", "2026-02-28T00:00Z", "2026-03-01T00:00Z"],
    ),
    # Day-of-month starts with '*', so the 1st, 16th or 31st that is a third Monday: the 16th.
    (
        "0 0 */15 * MON#3",
        "UTC",
        "2026-01-01T00:00Z",
        ["2026-02-16T00:00Z", "2026-03-16T00:00Z", "2026-11-16T00:00Z"],
    ),
    # Steps restart at each month, year and hour boundary.
    ("*/25 * * * *", "UTC", "2026-12-31T23:50Z", ["2027-01-01T00:00Z", "2027-01-01T00:25Z"]),
    (
        "0 0 */2 * *",
        "UTC",
        "2026-01-30T00:00Z",
        ["2026-01-31T00:00Z", "2026-02-01T00:00Z", "2026-02-03T00:00Z"],
    ),
    (
        "0 0 1 */5 *",
        "UTC",
        "2026-11-15T00:00Z",
        ["2027-01-01T00:00Z", "2027-06-01T00:00Z", "2027-11-01T00:00Z"],
    ),
    (
        "0 */7 * * *",
        "UTC",
        "2026-01-31T20:00Z",
        ["2026-01-31T21:00Z", "2026-02-01T00:00Z", "2026-02-01T07:00Z"],
    ),
    # Six fields: second minute hour day-of-month month day-of-week.
    (
        "*/30 * * * * *",
        "UTC",
        "2024-01-01T00:00:00Z",
        ["2024-01-01T00:00:30Z", "2024-01-01T00:01:00Z", "2024-01-01T00:01:30Z"],
    ),
    (
        "5,10 * * * * *",
        "UTC",
        "2026-01-01T00:00:05Z",
        ["2026-01-01T00:00:10Z", "2026-01-01T00:01:05Z", "2026-01-01T00:01:10Z"],
    ),
    (
        "0/20 0 0 1 1 *",
        "UTC",
        "2026-12-31T23:59:59Z",
        [
            "2027-01-01T00:00:00Z",
            "2027-01-01T00:00:20Z",
            "2027-01-01T00:00:40Z",
            "2028-01-01T00:00:00Z",
        ],
    ),
    ("59 59 23 31 12 *", "UTC", "2026-12-31T23:59:59Z", ["2027-12-31T23:59:59Z"]),
    ("0 0 12 L * ?", "UTC", "2026-02-01T00:00Z", ["2026-02-28T12:00Z", "2026-03-31T12:00Z"]),
    # The hour-field rule applies with seconds: 02:30:15 is in the gap, 01:30:xx fires in EDT.
    (
        "15 30 2 * * *",
        "America/New_York",
        "2026-03-07T12:00Z",
        ["2026-03-08T07:00:00Z", "2026-03-09T06:30:15Z"],
    ),
    (
        "*/20 30 1 * * *",
        "America/New_York",
        "2026-10-31T12:00Z",
        [
            "2026-11-01T05:30:00Z",
            "2026-11-01T05:30:20Z",
            "2026-11-01T05:30:40Z",
            "2026-11-02T06:30:00Z",
        ],
    ),
    (
        "45 59 * * * *",
        "Europe/London",
        "2026-10-25T00:00Z",
        ["2026-10-25T00:59:45Z", "2026-10-25T01:59:45Z", "2026-10-25T02:59:45Z"],
    ),
    # 2026-01-01T00:00Z is 1767225600 s after the epoch, a multiple of 90 and of 5400.
    ("@every 90s", "UTC", "2026-01-01T00:00Z", ["2026-01-01T00:01:30Z", "2026-01-01T00:03:00Z"]),
    (
        "@every 1h30m",
        "Australia/Lord_Howe",
        "2026-04-04T14:00Z",
        ["2026-04-04T15:00Z", "2026-04-04T16:30Z"],
    ),
]


@pytest.mark.parametrize(
    ("expression", "timezone", "after", "expected"),
    HAND_COMPUTED,
    ids=[f"{row[0].strip()}|{row[1] or 'empty'}|{row[2]}" for row in HAND_COMPUTED],
)
def test_fire_times_hand_computed(
    expression: str, timezone: str, after: str, expected: list[str]
) -> None:
    schedule = parse_schedule(expression, one_time=False, timezone=timezone)

    fires = fire_times(schedule, _utc(after), len(expected))

    assert fires == [_utc(text) for text in expected]
    assert all(fire.tzinfo is UTC for fire in fires)


def test_fire_times_stops_when_schedule_ends() -> None:
    schedule = parse_schedule("2026-12-24T18:00:00Z", one_time=True)

    fires = fire_times(schedule, datetime(2026, 1, 1, tzinfo=UTC), 5)

    assert fires == [datetime(2026, 12, 24, 18, 0, tzinfo=UTC)]


def test_fire_times_stops_at_last_year() -> None:
    schedule = parse_schedule("0 0 1 1 *", one_time=False)

    fires = fire_times(schedule, datetime(9996, 6, 1, tzinfo=UTC), 5)

    assert fires == [datetime(9997, 1, 1, tzinfo=UTC), datetime(9998, 1, 1, tzinfo=UTC)]


def test_fire_times_zero_count() -> None:
    schedule = parse_schedule("* * * * *", one_time=False)

    assert fire_times(schedule, datetime(2026, 1, 1, tzinfo=UTC), 0) == []


def test_fire_times_after_a_past_one_time() -> None:
    schedule = parse_schedule("2001-01-01T00:00:00Z", one_time=True)

    assert fire_times(schedule, datetime(2026, 1, 1, tzinfo=UTC), 3) == []


@pytest.mark.parametrize(
    ("after", "count", "message"),
    [
        (datetime(2026, 1, 1), 1, "aware"),
        (datetime(2026, 1, 1), 0, "aware"),
        (datetime(2026, 1, 1, tzinfo=UTC), -1, "count must be at least 0, got -1"),
    ],
)
def test_fire_times_bad_arguments(after: datetime, count: int, message: str) -> None:
    schedule = parse_schedule("* * * * *", one_time=False)

    with pytest.raises(ValueError, match=message):
        fire_times(schedule, after, count)


@pytest.mark.parametrize(
    ("day", "count"), [("2026-10-25", 25), ("2026-03-29", 23), ("2026-06-01", 24)]
)
def test_hourly_london_local_day(day: str, count: int) -> None:
    zone = ZoneInfo("Europe/London")
    local_day = date.fromisoformat(day)
    start = datetime.combine(local_day, datetime.min.time(), tzinfo=zone)
    end = datetime.combine(local_day + timedelta(days=1), datetime.min.time(), tzinfo=zone)
    schedule = parse_schedule("0 * * * *", one_time=False, timezone="Europe/London")

    fires = []
    fire = schedule.next_fire_after(start - timedelta(microseconds=1))
    while fire is not None and fire < end:
        fires.append(fire)
        fire = schedule.next_fire_after(fire)

    assert len(fires) == count
    assert fires[0] == start.astimezone(UTC)
    assert all(
        later - earlier == timedelta(hours=1) for earlier, later in itertools.pairwise(fires)
    )


@pytest.mark.parametrize(
    ("expression", "expected_count"),
    [
        ("30 2 * * *", 365),
        ("30 1 * * *", 365),
        ("0 * * * *", 8760),
        # On 2026-03-08, 02:00 fires after the gap at 03:00 EDT, the same instant as 03:00.
        ("0 2,3 * * *", 729),
        ("*/30 30 1 * * *", 730),
        # On 2026-03-08, 02:30:00 and 02:30:30 both fire once, together, after the gap.
        ("*/30 30 2 * * *", 729),
    ],
)
def test_year_in_new_york(expression: str, expected_count: int) -> None:
    """A fixed-hour job fires once per local day and time; an hourly one follows elapsed hours."""
    zone = ZoneInfo("America/New_York")
    start = datetime(2026, 1, 1, tzinfo=zone)
    end = datetime(2027, 1, 1, tzinfo=zone)
    schedule = parse_schedule(expression, one_time=False, timezone="America/New_York")

    fires = []
    fire = schedule.next_fire_after(start - timedelta(microseconds=1))
    while fire is not None and fire < end:
        fires.append(fire)
        fire = schedule.next_fire_after(fire)

    assert len(fires) == expected_count
    assert len({fire.astimezone(zone).date() for fire in fires}) == 365


def test_naive_after_rejected() -> None:
    schedule = parse_schedule("* * * * *", one_time=False)

    with pytest.raises(ValueError, match="aware"):
        schedule.next_fire_after(datetime(2026, 1, 1))


def test_expression_kept_stripped() -> None:
    schedule = parse_schedule("  @daily ", one_time=False, timezone="Europe/Berlin")

    assert schedule.expression == "@daily"


def test_last_year_returns_none() -> None:
    schedule = parse_schedule("0 0 1 1 *", one_time=False, timezone="America/New_York")

    assert schedule.next_fire_after(datetime(9998, 6, 1, tzinfo=UTC)) is None
    assert schedule.next_fire_after(datetime.max.replace(tzinfo=UTC)) is None
