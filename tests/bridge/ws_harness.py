"""An in-process ASGI server stand-in for WebSocket scopes.

The test plays the client: it queues what ``receive()`` returns and reads what the app
sent, message by message; ``hold_sends`` makes ``send()`` wait (a slow client).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from bridge._types import ASGIApp, Message

TIMEOUT = 10.0


def ws_scope(
    path: str = "/ws",
    *,
    headers: Sequence[tuple[bytes, bytes]] = ((b"host", b"testserver"),),
    query_string: bytes = b"",
    subprotocols: Sequence[str] = (),
    extensions: dict[str, Any] | None = None,
    root_path: str = "",
) -> dict[str, Any]:
    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "scheme": "ws",
        "path": path,
        "raw_path": path.encode("utf-8"),
        "root_path": root_path,
        "query_string": query_string,
        "headers": list(headers),
        "client": ("127.0.0.1", 51000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": list(subprotocols),
    }
    if extensions is not None:
        scope["extensions"] = extensions
    return scope


class Client:
    """One connection's server side: scripted ``receive``, recorded ``send``."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any] | None = None) -> None:
        self.app = app
        self.scope = scope if scope is not None else ws_scope()
        self.incoming: asyncio.Queue[Message] = asyncio.Queue()
        self.outgoing: asyncio.Queue[Message] = asyncio.Queue()
        self.receive_calls = 0
        self.sends_allowed = asyncio.Event()
        self.sends_allowed.set()
        self.task: asyncio.Task[None] | None = None

    async def receive(self) -> Message:
        self.receive_calls += 1
        return await self.incoming.get()

    async def send(self, message: Message) -> None:
        await self.sends_allowed.wait()
        await self.outgoing.put(dict(message))

    def connect(self) -> Client:
        self.incoming.put_nowait({"type": "websocket.connect"})
        self.task = asyncio.ensure_future(self.app(self.scope, self.receive, self.send))
        return self

    async def next(self) -> Message:
        """The next message the app sent (fails after a generous timeout)."""
        return await asyncio.wait_for(self.outgoing.get(), TIMEOUT)

    def say(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.incoming.put_nowait({"type": "websocket.receive", "text": data})
        else:
            self.incoming.put_nowait({"type": "websocket.receive", "bytes": data})

    def leave(self, code: int = 1001) -> None:
        self.incoming.put_nowait({"type": "websocket.disconnect", "code": code})

    async def finished(self) -> None:
        """Wait for the app's ASGI task to return (re-raising what it raised)."""
        assert self.task is not None
        await asyncio.wait_for(self.task, TIMEOUT)

    async def accepted(self) -> Message:
        message = await self.next()
        assert message["type"] == "websocket.accept", message
        return message
