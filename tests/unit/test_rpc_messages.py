"""Status messages cut to a size every gRPC client accepts."""

from __future__ import annotations

from taskscheduler.coordinator.rpc import MAX_MESSAGE_CHARS, shorten_message


def test_short_message_unchanged() -> None:
    assert shorten_message("dependencies name unknown jobs: job-1") == (
        "dependencies name unknown jobs: job-1"
    )


def test_long_message_cut_with_count() -> None:
    message = "dependants: " + ", ".join(f"job-{n:016x}" for n in range(500))

    shortened = shorten_message(message)

    assert len(shortened) <= MAX_MESSAGE_CHARS
    assert shortened.startswith("dependants: job-0000000000000000, ")
    left_out = len(message) - len(shortened.rpartition(" ... (")[0])
    assert shortened.endswith(f" ... ({left_out} more characters left out)")
