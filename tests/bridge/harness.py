"""An in-process ASGI server stand-in: scripted ``receive``, recorded ``send``.

Unlike httpx's ASGITransport it lets a test hold the client back (backpressure), make
it vanish mid-stream, see each message as it is sent, and count ``receive()`` calls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bridge import ThreadPool
from bridge._types import ASGIApp, Message


def http_scope(
    path: str = "/",
    *,
    method: str = "GET",
    headers: Sequence[tuple[bytes, bytes]] = ((b"host", b"testserver"),),
    query_string: bytes = b"",
    root_path: str = "",
    raw_path: bytes | None = None,
    extensions: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": raw_path if raw_path is not None else path.encode("utf-8"),
        "root_path": root_path,
        "query_string": query_string,
        "headers": list(headers),
        "client": ("127.0.0.1", 51000),
        "server": ("127.0.0.1", 8000),
    }
    if extensions is not None:
        scope["extensions"] = extensions
    scope.update(extra)
    return scope


@dataclass
class Exchange:
    """One request through an ASGI app, and everything the app sent."""

    body_chunks: Sequence[bytes] = (b"",)
    #: after this many http.request messages, receive() says http.disconnect
    disconnect_after: int | None = None
    #: send() waits for this event before each body message (a slow client)
    client_reads: asyncio.Event | None = None
    #: send() raises this on the n-th body message
    send_error: tuple[int, BaseException] | None = None
    messages: list[Message] = field(default_factory=list)
    receive_calls: int = 0
    body_sent: asyncio.Event = field(default_factory=asyncio.Event)
    _complete: asyncio.Event = field(default_factory=asyncio.Event)
    _gone: asyncio.Event = field(default_factory=asyncio.Event)
    _bodies: int = 0

    def disconnect(self) -> None:
        """The client goes away now: a pending or later receive() gets http.disconnect."""
        self._gone.set()

    async def receive(self) -> Message:
        self.receive_calls += 1
        index = self.receive_calls - 1
        if self.disconnect_after is not None and index >= self.disconnect_after:
            return {"type": "http.disconnect"}
        if index < len(self.body_chunks) and not self._gone.is_set():
            more = index < len(self.body_chunks) - 1
            return {"type": "http.request", "body": self.body_chunks[index], "more_body": more}
        # Like a real server: after the body, receive() blocks until the client leaves
        # or the response is complete.
        complete = asyncio.ensure_future(self._complete.wait())
        gone = asyncio.ensure_future(self._gone.wait())
        try:
            await asyncio.wait({complete, gone}, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when receive() itself is cancelled: leave no task pending
            complete.cancel()
            gone.cancel()
            await asyncio.gather(complete, gone, return_exceptions=True)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            self._bodies += 1
            if self.send_error is not None and self._bodies == self.send_error[0]:
                raise self.send_error[1]
            if self.client_reads is not None:
                await self.client_reads.wait()
                self.client_reads.clear()
        self.messages.append(message)
        if message["type"] == "http.response.body":
            self.body_sent.set()
            if not message.get("more_body", False):
                self._complete.set()
        elif message["type"] == "http.response.pathsend":
            self._complete.set()

    async def run(self, app: ASGIApp, scope: dict[str, Any]) -> Exchange:
        await app(scope, self.receive, self.send)
        return self

    @property
    def status(self) -> int:
        return int(self.start["status"])

    @property
    def start(self) -> Message:
        starts = [m for m in self.messages if m["type"] == "http.response.start"]
        assert len(starts) == 1, self.messages
        return starts[0]

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(k), bytes(v)) for k, v in self.start["headers"]]

    def header(self, name: bytes) -> bytes | None:
        values = [v for k, v in self.headers if k == name]
        return values[0] if values else None

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.messages if m["type"] == "http.response.body")

    @property
    def complete(self) -> bool:
        return self._complete.is_set()


async def pool_idle(pool: ThreadPool, timeout: float = 5.0) -> bool:
    """Whether ``pool`` has no job running or waiting, within ``timeout`` seconds.

    The response can reach the client a moment before its worker is done (it frees the
    request's objects, then takes the next job): a test polls rather than looking once.
    """
    deadline = time.monotonic() + timeout
    while pool.pending and time.monotonic() < deadline:
        await asyncio.sleep(0.001)
    return pool.pending == 0


async def request(
    app: ASGIApp, path: str = "/", *, body: Sequence[bytes] = (b"",), **scope: Any
) -> Exchange:
    """Send one request through ``app`` and return the finished exchange."""
    return await Exchange(body_chunks=body).run(app, http_scope(path, **scope))
