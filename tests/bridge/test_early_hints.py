"""``environ["wsgi.early_hints"]`` under WSGIToASGI, in process: 103s from a WSGI app.

The callable follows gunicorn's convention (a list of ``(name, value)`` headers) and is
offered only when the ASGI server offers the ``http.response.early_hint`` extension;
each call becomes one ``http.response.early_hint`` message carrying the Link values.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bridge import InvalidResponse, WSGIToASGI
from bridge._types import Environ, StartResponse
from tests.bridge.harness import request

TEXT = [("Content-Type", "text/plain")]
HINTS = {"http.response.early_hint": {}}
STYLE = "</style.css>; rel=preload; as=style"
SCRIPT = "</app.js>; rel=preload; as=script"


def hinting(*calls: list[Any]) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        for headers in calls:
            environ["wsgi.early_hints"](headers)
        start_response("200 OK", TEXT)
        return [b"page"]

    return app


async def test_each_call_sends_one_hint_before_the_response() -> None:
    app = hinting([("Link", STYLE), ("Link", SCRIPT)], [("link", "</font.woff2>; rel=preload")])
    exchange = await request(WSGIToASGI(app), extensions=HINTS)
    kinds = [m["type"] for m in exchange.messages]
    assert kinds[:3] == [
        "http.response.early_hint",
        "http.response.early_hint",
        "http.response.start",
    ]
    assert exchange.messages[0]["links"] == [STYLE.encode(), SCRIPT.encode()]
    assert exchange.messages[1]["links"] == [b"</font.woff2>; rel=preload"]
    assert exchange.body == b"page"


async def test_without_the_extension_there_is_no_callable() -> None:
    seen: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append("wsgi.early_hints" in environ)
        start_response("200 OK", TEXT)
        return []

    await request(WSGIToASGI(app))
    await request(WSGIToASGI(app), extensions={"http.response.pathsend": {}})
    await request(WSGIToASGI(app), extensions=HINTS)
    assert seen == [False, False, True]


async def test_only_link_headers_are_carried_and_bytes_are_accepted() -> None:
    app = hinting([("X-Other", "dropped"), (b"Link", STYLE.encode())], [("X-Only", "nothing")])
    exchange = await request(WSGIToASGI(app), extensions=HINTS)
    hints = [m for m in exchange.messages if m["type"] == "http.response.early_hint"]
    assert [h["links"] for h in hints] == [[STYLE.encode()]]


async def test_hints_after_the_head_went_out_are_dropped() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        hint = environ["wsgi.early_hints"]
        start_response("200 OK", TEXT)
        hint([("Link", STYLE)])  # headers set but not sent yet: still in time
        yield b"first"
        hint([("Link", SCRIPT)])  # the head went out with the first chunk: too late
        yield b"second"

    exchange = await request(WSGIToASGI(app), extensions=HINTS)
    kinds = [m["type"] for m in exchange.messages]
    assert kinds[:2] == ["http.response.early_hint", "http.response.start"]
    assert kinds.count("http.response.early_hint") == 1
    assert exchange.messages[0]["links"] == [STYLE.encode()]
    assert exchange.body == b"firstsecond"


@pytest.mark.parametrize(
    "headers",
    [
        [("Link", "</a.css>; rel=preload\r\nSet-Cookie: x=1")],
        [("Li nk", "</a.css>")],
        [("Link", 3)],
    ],
    ids=["crlf-in-value", "bad-name", "not-text"],
)
async def test_hints_that_could_split_the_response_raise_to_the_app(headers: list[Any]) -> None:
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.early_hints"](headers)
        except InvalidResponse as exc:
            errors.append(exc)
        start_response("200 OK", TEXT)
        return [b"page"]

    exchange = await request(WSGIToASGI(app), extensions=HINTS)
    assert len(errors) == 1
    assert exchange.messages[0]["type"] == "http.response.start"
