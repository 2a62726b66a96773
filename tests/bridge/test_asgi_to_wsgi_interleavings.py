"""ASGIToWSGI's shared loop under forced interleavings (#10's open race).

The app runs on the loop thread while the WSGI thread reads what it produced. Each test
pauses the WSGI thread at a read of the exchange's state and lets the app run to its end
right there, so the interleaving that lost data happens every time, not by luck. (The
state was once two fields, a phase and a "finished" flag, read in the wrong order.)
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from bridge import _asgi_to_wsgi
from bridge._a2w_exchange import ENDED, Exchange, State
from bridge._a2w_runners import SharedLink
from bridge._asgi_to_wsgi import ASGIToWSGI
from bridge._types import Receive, Scope, Send
from tests.wsgi_call import call_wsgi_app

# Fewer than the chunks (MAX_BUFFERED_CHUNKS) after which send() waits for the WSGI side.
CHUNKS = [b"chunk-%02d|" % index for index in range(12)]
WAIT = 10.0


class _PauseOnRead:
    """A data descriptor for one exchange attribute: when the WSGI thread reads it while
    the exchange's pause condition holds, the pause action runs first (once). Reads by
    the WSGI thread are remembered as ``_seen_<name>``."""

    def __init__(self, default: Any) -> None:
        self.default = default
        self.name = self.key = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name
        self.key = f"_value_{name}"

    def __get__(self, exchange: Any, owner: type | None = None) -> Any:
        if exchange is None:
            return self
        state = exchange.__dict__
        if threading.current_thread() is threading.main_thread():
            pause = state.get("_pause")
            if pause is not None and pause[0] == self.name and pause[1](exchange):
                del state["_pause"]
                pause[2](exchange)
            state[f"_seen_{self.name}"] = state.get(self.key, self.default)
        return state.get(self.key, self.default)

    def __set__(self, exchange: Any, value: Any) -> None:
        exchange.__dict__[self.key] = value

    def peek(self, exchange: Any) -> Any:
        """The value, without pausing."""
        return exchange.__dict__.get(self.key, self.default)


class _PausingExchange(Exchange):
    state = _PauseOnRead(State.AWAITING_START)  # type: ignore[assignment]
    taken = 0

    def take(self) -> bytes:
        self.taken += 1
        return super().take()


def _saw_streaming(exchange: Any) -> bool:
    """The WSGI thread has already read the state as STREAMING."""
    return exchange.__dict__.get("_seen_state") is State.STREAMING


class _Scenario:
    """An app that sends the head and ``before`` chunks, then waits for ``go`` and sends
    the rest. At its first read of ``pause_at`` once ``when`` holds, the WSGI thread
    releases the app and waits until it has returned."""

    def __init__(self, before: int, pause_at: str, when: Callable[[Any], bool]) -> None:
        self.before = before
        self.pause_at = pause_at
        self.when = when
        self.go = threading.Event()
        self.exchanges: list[_PausingExchange] = []
        self.paused = 0

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for data in CHUNKS[: self.before]:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        deadline = time.monotonic() + WAIT
        while not self.go.is_set() and time.monotonic() < deadline:
            await asyncio.sleep(0.001)
        for data in CHUNKS[self.before :]:
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"end"})

    def exchange(self, *args: Any) -> _PausingExchange:
        made = _PausingExchange(*args)
        made.__dict__["_pause"] = (self.pause_at, self.when, self._run_app_to_its_end)
        self.exchanges.append(made)
        return made

    def _run_app_to_its_end(self, exchange: Any) -> None:
        self.paused += 1
        self.go.set()
        deadline = time.monotonic() + WAIT
        while _PausingExchange.state.peek(exchange) not in ENDED:  # type: ignore[attr-defined]
            assert time.monotonic() < deadline, "the app did not finish"
            time.sleep(0.001)


@pytest.fixture
def scenario(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., _Scenario]]:
    made: list[_Scenario] = []

    def factory(before: int, pause_at: str, when: Callable[[Any], bool]) -> _Scenario:
        made.append(_Scenario(before, pause_at, when))
        monkeypatch.setattr(_asgi_to_wsgi, "Exchange", made[-1].exchange)
        return made[-1]

    yield factory
    for each in made:
        each.go.set()  # never leave an app waiting


def _get(adapter: ASGIToWSGI) -> bytes:
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    setup_testing_defaults(environ)
    status, received = call_wsgi_app(adapter, environ)
    assert status == "200 OK"
    return received


def test_chunks_sent_while_the_wsgi_thread_finds_none_are_not_lost(
    scenario: Callable[..., _Scenario], make: Callable[..., ASGIToWSGI]
) -> None:
    # The WSGI thread has taken chunk 0 and finds no chunk waiting; the app sends the
    # other 11 and completes just before the WSGI thread reads the state. They must
    # still be delivered: the state is read first, the chunks after it.
    def after_chunk_0(exchange: Any) -> bool:
        return exchange.taken == 1 and not exchange.chunks

    this = scenario(1, "state", after_chunk_0)
    assert _get(make(this.app, loop_mode="shared")) == b"".join(CHUNKS) + b"end"
    assert this.paused == 1


def test_a_response_completed_between_the_head_and_the_end_check_is_served_whole(
    scenario: Callable[..., _Scenario], make: Callable[..., ASGIToWSGI]
) -> None:
    # The WSGI thread has seen the head (state STREAMING); before its next look, the app
    # sends the whole body and returns. That is a complete response, not a failure.
    this = scenario(0, "state", _saw_streaming)
    assert _get(make(this.app, loop_mode="shared")) == b"".join(CHUNKS) + b"end"
    assert this.paused == 1


def test_an_abandoned_request_is_cancelled_though_the_loop_runs_between_the_wsgi_calls(
    monkeypatch: pytest.MonkeyPatch, make: Callable[..., ASGIToWSGI]
) -> None:
    # The WSGI thread gives up on a request (here its request_timeout) while the app
    # waits in receive() for the end of the response. Leaving reports a disconnect to
    # receive(); the app must meet the cancellation instead, even when the loop thread
    # runs everything the leaving scheduled before the WSGI thread asks for anything
    # else (forced here: each call onto the loop waits until the loop has run it, and
    # a little more). The cancellation was once a second, separate call.
    original = SharedLink.call_on_loop

    def call_on_loop_then_let_the_loop_run(
        self: SharedLink, function: Callable[..., object], *args: Any
    ) -> None:
        ran = threading.Event()

        def run() -> None:
            function(*args)
            ran.set()

        original(self, run)
        assert ran.wait(WAIT)
        time.sleep(0.05)

    monkeypatch.setattr(SharedLink, "call_on_loop", call_on_loop_then_let_the_loop_run)
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            assert (await receive())["type"] == "http.request"  # the empty body
            seen.append((await receive())["type"])
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    setup_testing_defaults(environ)
    statuses: list[str] = []
    adapter = make(app, loop_mode="shared", request_timeout=0.2)
    body = adapter(environ, lambda status, headers, exc_info=None: statuses.append(status))
    assert statuses == ["504 Gateway Timeout"]
    assert b"".join(body) == b"Gateway Timeout"
    assert seen == ["cancelled"]
