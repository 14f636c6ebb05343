"""A TCP proxy in front of nats-server that a test can cut: ``cut()`` stops passing bytes either way
(the connections stay open, as with a network partition: nothing arrives, nothing is refused), and
``restore()`` closes what was cut off and lets new connections through, so the clients reconnect."""

from __future__ import annotations

import asyncio
import contextlib

from grctl.nats.server import free_port


class BlackholeProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open = asyncio.Event()
        self._open.set()
        self._writers: set[asyncio.StreamWriter] = set()
        self.connections = 0  # accepted so far: a reconnection shows as a new one
        self.dropped = 0  # bytes lost in the partition: what the cut-off side tried to say

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    async def start(self) -> BlackholeProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._open.wait()
        self.connections += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer),
                             return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            if self._open.is_set():
                writer.write(data)
                await writer.drain()
            else:
                self.dropped += len(data)
            # cut: what was sent into the partition is lost, and the connection stays silent

    def cut(self) -> None:
        self._open.clear()

    def restore(self) -> None:
        """Close every connection that was cut (their peers reconnect), then accept again."""
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()
        self._open.set()

    async def stop(self) -> None:
        self.restore()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
