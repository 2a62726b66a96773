"""A stream through GZip reaches the client chunk by chunk, on both interfaces (#11).

In process: the app writes five short lines 0.3 s apart (each far under
``minimum_size``) and the test records when each compressed chunk leaves the
middleware. The same apps on real servers are in ``test_real_servers.py``.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import Any

import pytest

from middleware import GZip
from tests.apps.middleware_apps import LINE_PAUSE, LINES, asgi_lines, wsgi_lines
from tests.middleware.harness import (
    Request,
    assert_lines_arrived_one_by_one,
    environ_for,
    line_arrivals,
    scope_for,
)

GZIP_REQUEST = Request(headers=(("Accept-Encoding", "gzip"),))


def test_a_wsgi_stream_of_short_lines_is_compressed_and_flushed_line_by_line() -> None:
    heads: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        heads.append((status, headers))
        return None

    body = wsgi_lines(environ_for(GZIP_REQUEST), start_response)
    reads: list[tuple[float, bytes]] = []
    try:
        for chunk in body:
            if chunk:
                reads.append((time.monotonic(), chunk))
    finally:
        body.close()  # type: ignore[attr-defined]
    ((status, headers),) = heads
    assert status == "200 OK"
    lowered = [(name.lower(), value) for name, value in headers]
    assert ("content-encoding", "gzip") in lowered
    assert not any(name == "content-length" for name, _ in lowered)
    assert_lines_arrived_one_by_one(line_arrivals(reads, LINES), len(LINES), LINE_PAUSE)


async def test_an_asgi_stream_of_short_lines_is_compressed_and_flushed_line_by_line() -> None:
    messages: list[dict[str, Any]] = []
    reads: list[tuple[float, bytes]] = []

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)
        if message["type"] == "http.response.body" and message.get("body"):
            reads.append((time.monotonic(), message["body"]))

    await asgi_lines(scope_for(GZIP_REQUEST), receive, send)
    start = messages[0]
    assert start["status"] == 200
    assert (b"content-encoding", b"gzip") in start["headers"]
    assert not any(name == b"content-length" for name, _ in start["headers"])
    assert messages[-1]["more_body"] is False
    assert_lines_arrived_one_by_one(line_arrivals(reads, LINES), len(LINES), LINE_PAUSE)


@pytest.mark.parametrize(
    ("body", "compressed"),
    [([b"short"], False), ([b"short", b""], True), (iter([b"short"]), True)],
    ids=["one-item-list-is-whole", "longer-list-is-a-stream", "iterator-is-a-stream"],
)
def test_a_wsgi_body_is_whole_only_when_it_says_so(body: Any, compressed: bool) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return body

    heads: list[list[tuple[str, str]]] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        heads.append(headers)
        return None

    result = GZip(app)(environ_for(GZIP_REQUEST), start_response)
    data = b"".join(result)
    headers = [(name.lower(), value) for name, value in heads[0]]
    assert len(heads) == 1
    assert (("content-encoding", "gzip") in headers) is compressed
    assert (zlib.decompress(data, 31) if compressed else data) == b"short"
    assert ("vary", "Accept-Encoding") in headers
