"""A TCP proxy on 127.0.0.1 that a test can cut, to cut one process off from a server.

`cut()` closes every proxied connection and the listening socket, so new
connections are refused; `restore()` listens on the same port again. It
runs on the event loop of the test that starts it.
"""

from __future__ import annotations

import asyncio
import contextlib

from taskscheduler.ports import LOOPBACK

_CHUNK_BYTES = 64 * 1024


class CuttableProxy:
    """Forwards connections from 127.0.0.1:`port` to `target` (HOST:PORT) until cut."""

    def __init__(self, target: str) -> None:
        host, _, port = target.rpartition(":")
        self._target_host = host
        self._target_port = int(port)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.port = 0
        self.connections = 0

    @property
    def address(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def is_cut(self) -> bool:
        return self._server is None

    async def start(self) -> None:
        """Listen on a free port (the first time) or on the same port again (after a cut)."""
        self._server = await asyncio.start_server(
            self._accept, LOOPBACK, self.port, reuse_address=True
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        """Refuse new connections and close the open ones, in both directions."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        pipes = list(self._pipes)
        for pipe in pipes:
            pipe.cancel()
        await asyncio.gather(*pipes, return_exceptions=True)
        # Since Python 3.12 this also waits for open connections, so it comes last.
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        await self.start()

    async def close(self) -> None:
        await self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.is_cut:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self._target_host, self._target_port
            )
        except OSError:
            writer.close()
            return
        self.connections += 1
        pipe = asyncio.current_task()
        assert pipe is not None
        self._pipes.add(pipe)
        try:
            await asyncio.gather(_pump(reader, upstream_writer), _pump(upstream_reader, writer))
        finally:
            self._pipes.discard(pipe)
            for stream in (writer, upstream_writer):
                stream.close()


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy bytes until EOF, then half-close the other side."""
    with contextlib.suppress(ConnectionError):
        while chunk := await reader.read(_CHUNK_BYTES):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
