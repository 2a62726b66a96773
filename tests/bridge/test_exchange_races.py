"""``_Exchange`` under forced interleavings: each test makes the other thread act in the
exact gap where a race was found, so it fails on the old code every time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any

import pytest

from bridge._types import Message
from bridge._wsgi_to_asgi import _Exchange


class _GapLock:
    """A lock that runs ``on_release`` right after each release and ``on_acquire`` right
    before each acquire: the race windows."""

    def __init__(
        self, on_release: Callable[[], None], on_acquire: Callable[[], None] = lambda: None
    ) -> None:
        self._lock = threading.Lock()
        self._on_release = on_release
        self._on_acquire = on_acquire

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        self._on_acquire()
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


def _exchange(send: Any, receive: Any = _no_receive, body_complete: bool = True) -> _Exchange:
    return _Exchange(
        asyncio.get_running_loop(),
        receive,
        send,
        body_complete=body_complete,
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


async def test_a_pull_emptying_the_stash_as_the_last_chunk_arrives_still_sees_more_body() -> None:
    # The receiver has stashed chunk A and just received the last chunk L. A pull that
    # takes A at that moment must be told more body follows, or L is lost.
    messages = iter(
        [
            {"type": "http.request", "body": b"A" * 5, "more_body": True},
            {"type": "http.request", "body": b"L" * 7, "more_body": False},
        ]
    )

    async def receive() -> Message:
        return next(messages)

    async def send(message: Message) -> None:
        raise AssertionError("nothing is sent here")

    exchange = _exchange(send, receive, body_complete=False)
    pulled: list[tuple[bytes, bool]] = []

    def pull_before_the_receiver_stashes() -> None:
        if not pulled and exchange._stash and exchange._receiver is not None:
            pulled.append((b"", True))  # guard against re-entry from pull's own lock
            pulled[0] = exchange.pull()  # stash holds A: returns at once, no blocking

    exchange._lock = _GapLock(lambda: None, pull_before_the_receiver_stashes)  # type: ignore[assignment]
    exchange._start_receiver(False)
    assert exchange._receiver is not None
    await asyncio.wait_for(exchange._receiver, timeout=10)
    pulled.append(exchange.pull())
    assert pulled == [(b"A" * 5, True), (b"L" * 7, False)]


async def _never_send(message: Message) -> None:
    raise AssertionError("nothing is sent here")


async def test_a_client_that_left_before_the_worker_ran_reads_as_gone() -> None:
    # The signal is made with the exchange, on the loop: a client that leaves while the
    # job still waits for a worker is recorded on it, whenever the view looks.
    exchange = _exchange(_never_send)
    exchange.client_left(_gone())
    signal = exchange.disconnected
    assert signal.is_set() is True
    assert exchange.disconnected is signal  # made once


async def test_a_signal_made_before_the_client_left_is_set_when_it_leaves() -> None:
    exchange = _exchange(_never_send)
    signal = exchange.disconnected
    assert signal._set is False  # not is_set(): that would start listening
    exchange.client_left(_gone())
    assert signal._set is True


def _gone() -> Any:
    from bridge._http import ClientDisconnected

    return ClientDisconnected("client disconnected")
