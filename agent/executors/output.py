"""A bounded buffer that keeps only the end of an attempt's output."""

from __future__ import annotations

# CompleteAttemptRequest.output carries at most the last 64 KiB.
MAX_OUTPUT_BYTES = 64 * 1024


class OutputTail:
    """The last `limit_bytes` bytes written to it; older bytes are discarded as new ones arrive."""

    def __init__(self, limit_bytes: int = MAX_OUTPUT_BYTES) -> None:
        self._limit_bytes = limit_bytes
        self._buffer = bytearray()
        self.total_bytes = 0

    def write(self, chunk: bytes) -> None:
        self.total_bytes += len(chunk)
        self._buffer += chunk[-self._limit_bytes :]
        excess = len(self._buffer) - self._limit_bytes
        if excess > 0:
            del self._buffer[:excess]

    def text(self) -> str:
        """Decode the kept bytes as UTF-8, replacing invalid sequences.

        The result encodes to at most `limit_bytes` bytes: a replacement
        character takes three bytes, so a tail with broken sequences is cut
        again from the front.
        """
        text = self._buffer.decode("utf-8", errors="replace")
        encoded = text.encode("utf-8")
        if len(encoded) <= self._limit_bytes:
            return text
        return encoded[-self._limit_bytes :].decode("utf-8", errors="ignore")
