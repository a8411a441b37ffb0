"""The bounded output tail shared by the executors."""

from __future__ import annotations

import pytest

from taskscheduler.agent.executors.output import MAX_OUTPUT_BYTES, OutputTail


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        ([b"short"], "short"),
        ([b"a" * 10, b"b" * 10], "a" * 6 + "b" * 10),
        ([b"x" * 100], "x" * 16),
        # A cut through a 3-byte character drops its leftover bytes.
        (["€".encode() * 10], "€" * 5),
        ([b"ok \xff bad"], "ok \ufffd bad"),
    ],
)
def test_output_tail_keeps_end(chunks: list[bytes], expected: str) -> None:
    tail = OutputTail(limit_bytes=16)
    for chunk in chunks:
        tail.write(chunk)

    assert tail.text() == expected
    assert len(tail.text().encode()) <= 16
    assert tail.total_bytes == sum(len(chunk) for chunk in chunks)


def test_output_tail_default_limit_is_64_kib() -> None:
    tail = OutputTail()
    tail.write(b"a" * (MAX_OUTPUT_BYTES + 10))

    assert MAX_OUTPUT_BYTES == 65536
    assert tail.text() == "a" * MAX_OUTPUT_BYTES
