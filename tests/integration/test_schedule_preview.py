"""GET /api/schedule/preview through the gateway: DST-correct fire times and input errors."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from harness import ApiClient, Components

from taskscheduler.etcd_server import EtcdServer

pytestmark = pytest.mark.integration

PREVIEW = "/api/schedule/preview"


def hourly(first: str, count: int) -> list[str]:
    """Return `count` whole UTC hours from `first`, in the API's format."""
    start = datetime.fromisoformat(first)
    instants = [start + timedelta(hours=index) for index in range(count)]
    return [instant.strftime("%Y-%m-%dT%H:%M:%SZ") for instant in instants]


def preview(api: ApiClient, **params: object) -> list[str]:
    # httpx percent-encodes the spaces, `*` and `/` of a cron expression.
    return api.get(PREVIEW, **params)["fireTimes"]


@pytest.fixture(scope="module")
def api(etcd: EtcdServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiClient]:
    """A gateway and one coordinator for the whole module, since a preview reads no state."""
    processes = Components(
        log_dir=tmp_path_factory.mktemp("preview-logs"),
        etcd_endpoint=etcd.endpoint,
        prefix=f"/ts-test-{uuid.uuid4().hex[:8]}",
    )
    try:
        processes.start_coordinator()
        gateway = processes.start_gateway()
        with ApiClient(gateway.url) as client:
            yield client
    finally:
        processes.stop_all()


@pytest.mark.parametrize(
    ("schedule", "timezone", "after", "count", "expected"),
    [
        # 02:30 does not exist on the day clocks go forward, so it fires at 03:00 EDT.
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T12:00:00Z",
            2,
            ["2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"],
        ),
        # 01:30 happens twice on the day clocks go back, and it fires once, at 01:30 EDT.
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T12:00:00Z",
            2,
            ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"],
        ),
        # Every hour, the repeated 01:00 included, makes 25 fire times on 25 October in London.
        (
            "0 * * * *",
            "Europe/London",
            "2026-10-24T22:59:59Z",
            26,
            hourly("2026-10-24T23:00:00+00:00", 26),
        ),
        # Every even hour, and 02:00 does not exist on 12 March 2023 in Toronto.
        (
            "0 */2 * * *",
            "America/Toronto",
            "2023-03-12T03:00:00Z",
            5,
            [
                "2023-03-12T05:00:00Z",
                "2023-03-12T08:00:00Z",
                "2023-03-12T10:00:00Z",
                "2023-03-12T12:00:00Z",
                "2023-03-12T14:00:00Z",
            ],
        ),
        # An @every interval is aligned to the Unix epoch, whatever the time zone.
        (
            "@every 90m",
            "Asia/Kolkata",
            "2026-01-01T00:00:00Z",
            3,
            ["2026-01-01T01:30:00Z", "2026-01-01T03:00:00Z", "2026-01-01T04:30:00Z"],
        ),
    ],
)
def test_preview_fire_times(
    api: ApiClient, schedule: str, timezone: str, after: str, count: int, expected: list[str]
) -> None:
    fire_times = preview(api, schedule=schedule, timezone=timezone, after=after, count=count)

    assert fire_times == expected


def test_preview_london_day_has_25_hours(api: ApiClient) -> None:
    fire_times = preview(
        api, schedule="0 * * * *", timezone="Europe/London", after="2026-10-24T22:59:59Z", count=26
    )

    local_day = [instant for instant in fire_times if instant < "2026-10-26T00:00:00Z"]
    assert len(local_day) == 25
    assert local_day[0] == "2026-10-24T23:00:00Z"
    assert local_day[-1] == "2026-10-25T23:00:00Z"
    assert fire_times[-1] == "2026-10-26T00:00:00Z"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        # A past instant shows without `after`, because such a job would fire at once.
        (
            {"schedule": "2026-05-01T10:00:00+02:00", "type": "one-time"},
            ["2026-05-01T08:00:00Z"],
        ),
        (
            {"schedule": "2026-05-01T10:00:00+02:00", "type": "one-time", "count": 3},
            ["2026-05-01T08:00:00Z"],
        ),
        # An instant at or before `after` never fires.
        (
            {
                "schedule": "2026-05-01T08:00:00Z",
                "type": "one-time",
                "after": "2026-05-01T08:00:00Z",
            },
            [],
        ),
    ],
)
def test_preview_one_time(api: ApiClient, params: dict[str, object], expected: list[str]) -> None:
    assert preview(api, **params) == expected


def test_preview_count_zero_means_ten(api: ApiClient) -> None:
    fire_times = preview(api, schedule="@hourly", after="2026-01-01T00:00:00Z", count=0)

    assert fire_times == hourly("2026-01-01T01:00:00+00:00", 10)


def test_preview_defaults_to_now_and_utc(api: ApiClient) -> None:
    before = datetime.now(UTC)
    fire_times = preview(api, schedule="0 9 * * *", count=2)
    after = datetime.now(UTC)

    first = datetime.fromisoformat(fire_times[0])
    assert first.hour == 9
    assert first.minute == 0
    assert before < first <= after + timedelta(days=1)
    assert datetime.fromisoformat(fire_times[1]) - first == timedelta(days=1)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"schedule": ""}, "schedule"),
        ({"schedule": "0 9 * * *", "timezone": "Mars/Base"}, "timezone"),
        ({"schedule": "0 9 * * *", "count": 5000}, "count"),
        ({"schedule": "0 9 * * *", "count": -1}, "count"),
        ({"schedule": "not an instant", "type": "one-time"}, "schedule"),
    ],
)
def test_preview_rejects_bad_input(api: ApiClient, params: dict[str, object], field: str) -> None:
    error = api.expect_error("GET", PREVIEW, 400, params=params)

    assert error["field"] == field
    assert error["code"] == "INVALID_ARGUMENT"
    assert error["message"]


def test_preview_count_limit_is_inclusive(api: ApiClient) -> None:
    fire_times = preview(api, schedule="@every 1s", after="2026-01-01T00:00:00Z", count=1000)

    assert len(fire_times) == 1000
    assert fire_times[-1] == "2026-01-01T00:16:40Z"
