"""``_Exchange.pump`` under a forced interleaving: a worker posting in the gap after the
pump releases its lock must have its messages sent exactly once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from bridge._types import Message
from bridge._wsgi_to_asgi import _Exchange


class _GapLock:
    """A lock that runs ``on_release`` right after each release: the race window."""

    def __init__(self, on_release: Callable[[], None]) -> None:
        self._lock = threading.Lock()
        self._on_release = on_release

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return self._lock.acquire(blocking, timeout)

    def release(self) -> None:
        self._lock.release()
        self._on_release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


async def _no_receive() -> Message:
    raise AssertionError("receive() must not be called")


def _exchange(send: Any) -> _Exchange:
    return _Exchange(
        asyncio.get_running_loop(),
        _no_receive,
        send,
        body_complete=True,
        asked_for_body=True,
        head_only=False,
        pathsend=False,
        window=2,
    )


HEAD: Message = {"type": "http.response.start", "status": 200, "headers": []}
CHUNK: Message = {"type": "http.response.body", "body": b"chunk-0", "more_body": True}


async def test_a_post_in_the_gap_after_the_pump_finds_the_outbox_empty_is_sent_once() -> None:
    sent: list[Message] = []
    exchange: _Exchange

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            # The app ends once the loop runs again (not inside this send).
            asyncio.get_running_loop().call_soon(exchange._post_end, None)

    exchange = _exchange(send)
    fired = False

    def post_in_the_gap() -> None:
        # Exactly when the pump, having found the outbox empty, has made its waiter
        # and released the lock, a worker posts the head and one body chunk.
        nonlocal fired
        if fired or exchange._waiter is None or exchange._outbox:
            return
        fired = True
        exchange._post(HEAD, body=False, wake=False)
        exchange._post(CHUNK, body=True)

    exchange._lock = _GapLock(post_in_the_gap)  # type: ignore[assignment]
    await asyncio.wait_for(exchange.pump(), timeout=10)
    assert fired
    assert sent == [HEAD, CHUNK]
    assert exchange._unsent == 0


async def test_sending_more_chunks_than_were_posted_is_an_error_not_silence() -> None:
    async def send(message: Message) -> None:
        pass

    exchange = _exchange(send)
    exchange._outbox.append(dict(CHUNK))  # in the outbox but never counted as posted
    with pytest.raises(RuntimeError, match="1 body chunk"):
        await asyncio.wait_for(exchange.pump(), timeout=10)
