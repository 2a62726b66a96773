"""``http.response.early_hint`` from an ASGI app to a WSGI server's ``wsgi.early_hints``.

Advertised only where the environ offers the callable (gunicorn does); each hint before
the head becomes one call with its ``Link`` headers, made by the WSGI thread before the
head; without the callable, or after the head, hints are dropped silently.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any
from wsgiref.util import setup_testing_defaults

import pytest

from bridge import ASGIToWSGI
from bridge._http import InvalidResponse
from bridge._types import Message, Receive, Scope, Send

CSS = b"</style.css>; rel=preload; as=style"
JS = b"</app.js>; rel=preload; as=script"
HEAD: Message = {"type": "http.response.start", "status": 200, "headers": []}
BODY: Message = {"type": "http.response.body", "body": b"page"}


def hint(*links: Any) -> Message:
    return {"type": "http.response.early_hint", "links": list(links)}


def call(
    adapter: ASGIToWSGI, early_hints: Callable[[Any], object] | None, events: list[Any]
) -> bytes:
    """One GET; ``events`` records each hint call and the head, in order."""
    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    setup_testing_defaults(environ)
    if early_hints is not None:
        environ["wsgi.early_hints"] = early_hints

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        events.append(("start", status))
        return lambda data: None

    result = adapter(environ, start_response)
    try:
        return b"".join(result)
    finally:
        getattr(result, "close", lambda: None)()


def recorder(events: list[Any]) -> Callable[[Any], None]:
    def early_hints(headers: Any) -> None:
        events.append(("103", list(headers), threading.current_thread()))

    return early_hints


def test_each_hint_before_the_head_is_one_103_with_its_links_in_order(
    make: Callable[..., ASGIToWSGI], loop_mode: str
) -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["extensions"])
        await send(hint(CSS, JS))
        await send(hint(bytearray(b"  </font.woff2>; rel=preload \t")))
        await send(HEAD)
        await send(BODY)

    events: list[Any] = []
    assert call(make(app, loop_mode=loop_mode), recorder(events), events) == b"page"
    assert seen == [{"http.response.pathsend": {}, "http.response.early_hint": {}}]
    assert [event[:2] for event in events] == [
        ("103", [("Link", CSS.decode()), ("Link", JS.decode())]),
        ("103", [("Link", "</font.woff2>; rel=preload")]),
        ("start", "200 OK"),
    ]
    # The server's socket belongs to the WSGI thread: it sends the 103s, in both modes.
    assert {event[2] for event in events[:2]} == {threading.current_thread()}


def test_a_hint_is_sent_while_the_app_is_still_working(
    make: Callable[..., ASGIToWSGI], loop_mode: str
) -> None:
    # The point of a 103: the client preloads while the app computes the response. This
    # app only starts its response once the server has sent the hint.
    sent = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(hint(CSS))
        deadline = time.monotonic() + 10
        while not sent.is_set():
            assert time.monotonic() < deadline, "the hint was not sent while the app waited"
            await asyncio.sleep(0.001)
        await send(HEAD)
        await send(BODY)

    events: list[Any] = []

    def early_hints(headers: Any) -> None:
        events.append(("103", list(headers)))
        sent.set()

    assert call(make(app, loop_mode=loop_mode), early_hints, events) == b"page"
    assert events == [("103", [("Link", CSS.decode())]), ("start", "200 OK")]


def test_without_wsgi_early_hints_nothing_is_advertised_and_hints_are_dropped(
    make: Callable[..., ASGIToWSGI], loop_mode: str
) -> None:
    seen: list[Any] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["extensions"])
        await send(hint(CSS))  # sent anyway: dropped without a word
        await send(HEAD)
        await send(BODY)

    events: list[Any] = []
    assert call(make(app, loop_mode=loop_mode), None, events) == b"page"
    assert seen == [{"http.response.pathsend": {}}]
    assert events == [("start", "200 OK")]


def test_a_hint_after_the_head_is_dropped(make: Callable[..., ASGIToWSGI], loop_mode: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(HEAD)
        await send(hint(CSS))
        await send({"type": "http.response.body", "body": b"pa", "more_body": True})
        await send(hint(JS))
        await send({"type": "http.response.body", "body": b"ge"})

    events: list[Any] = []
    assert call(make(app, loop_mode=loop_mode), recorder(events), events) == b"page"
    assert events == [("start", "200 OK")]


@pytest.mark.parametrize(
    "links",
    [
        [b"</a.css>; rel=preload\r\nSet-Cookie: stolen=1"],
        [b"</a.css>\n"],
        [b"</a\x00.css>"],
        ["</a.css>; rel=preload"],
        b"</a.css>; rel=preload",
        None,
    ],
    ids=["crlf", "lf", "nul", "str-link", "bytes-not-list", "none"],
)
def test_a_hint_that_is_not_a_list_of_clean_bytes_raises_in_the_app_and_sends_nothing(
    make: Callable[..., ASGIToWSGI], loop_mode: str, links: Any
) -> None:
    raised: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.early_hint", "links": links})
        except InvalidResponse as exc:
            raised.append(exc)
        await send(HEAD)
        await send(BODY)

    events: list[Any] = []
    assert call(make(app, loop_mode=loop_mode), recorder(events), events) == b"page"
    assert len(raised) == 1
    assert events == [("start", "200 OK")]


def test_a_hint_with_no_links_sends_no_103(make: Callable[..., ASGIToWSGI], loop_mode: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(hint())
        await send(hint(b"  "))
        await send(HEAD)
        await send(BODY)

    events: list[Any] = []
    assert call(make(app, loop_mode=loop_mode), recorder(events), events) == b"page"
    assert events == [("start", "200 OK")]


def test_a_server_whose_hint_call_fails_still_serves_the_response(
    make: Callable[..., ASGIToWSGI], loop_mode: str
) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(hint(CSS))
        await send(HEAD)
        await send(BODY)

    events: list[Any] = []

    def early_hints(headers: Any) -> None:
        events.append("103 attempted")
        raise BrokenPipeError("client went away")

    assert call(make(app, loop_mode=loop_mode), early_hints, events) == b"page"
    assert events == ["103 attempted", ("start", "200 OK")]


class _RecordingInput:
    def __init__(self, body: bytes, events: list[Any]) -> None:
        self._body = body
        self._events = events

    def read(self, size: int = -1) -> bytes:
        self._events.append("read")
        data, self._body = self._body[:size], self._body[size:]
        return data


def test_a_hint_is_sent_before_the_request_body_is_read(
    make: Callable[..., ASGIToWSGI], loop_mode: str
) -> None:
    # A client may hold its body back until it has its 103 (or simply be slow): the hint
    # must not wait behind a blocking wsgi.input read.
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(hint(CSS))
        message = await receive()
        await send(HEAD)
        await send({"type": "http.response.body", "body": message["body"]})

    events: list[Any] = []
    environ: dict[str, Any] = {"REQUEST_METHOD": "POST", "PATH_INFO": "/"}
    setup_testing_defaults(environ)
    environ.update(CONTENT_LENGTH="4", **{"wsgi.input": _RecordingInput(b"data", events)})
    environ["wsgi.early_hints"] = lambda headers: events.append(("103", list(headers)))

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        events.append(("start", status))
        return lambda data: None

    result = make(app, loop_mode=loop_mode)(environ, start_response)
    try:
        assert b"".join(result) == b"data"
    finally:
        getattr(result, "close", lambda: None)()
    assert events == [("103", [("Link", CSS.decode())]), "read", ("start", "200 OK")]
