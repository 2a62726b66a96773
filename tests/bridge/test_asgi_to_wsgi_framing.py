"""``ASGIToWSGI`` frames responses itself (WSGI servers trust the app's framing).

In-process: no body for HEAD, 204 and 304; one digits-only Content-Length or the
request fails before anything reaches the server; bytes counted against it; a body
that is not bytes is an app error. The same rules on real servers, with a pipelined
second request, are in ``tests/e2e/test_asgi_to_wsgi_framing_servers.py``.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any
from wsgiref.util import FileWrapper

import pytest

from bridge._framing import content_length, has_no_body
from bridge._http import InvalidResponse
from bridge._types import Receive, Scope, Send
from tests.bridge.test_asgi_to_wsgi import call, make_environ


def app_sending(
    status: int = 200,
    headers: list[tuple[bytes, bytes]] | None = None,
    chunks: tuple[Any, ...] = (b"hello",),
    *,
    gate: threading.Event | None = None,
) -> Any:
    """An app sending ``chunks`` as body messages; with ``gate``, it waits for the
    server to take the first chunk before sending the rest (so the head is out)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": headers if headers is not None else [(b"content-length", b"5")],
            }
        )
        for index, chunk in enumerate(chunks):
            more = index < len(chunks) - 1
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
            if index == 0 and gate is not None:
                while not gate.is_set():
                    await asyncio.sleep(0.001)

    return app


def head_then_fail(
    make: Any, loop_mode: str, app: Any, gate: threading.Event
) -> tuple[list[str], list[bytes], Any]:
    """Start a response, take its first chunk, open ``gate``, then drain it until the
    iterable raises; returns what the server saw and the exception."""
    heads: list[str] = []
    result = make(app, loop_mode=loop_mode)(
        make_environ(), lambda status, headers, *_: heads.append(status)
    )
    iterator = iter(result)
    received = [next(iterator)]
    gate.set()
    try:
        while True:
            received.append(next(iterator))
    except (InvalidResponse, TypeError) as exc:
        return heads, received, exc
    finally:
        result.close()


# --- the pure rules -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "expected"),
    [
        ("HEAD", 200, True),
        ("GET", 204, True),
        ("GET", 304, True),
        ("GET", 103, True),
        ("GET", 200, False),
        ("POST", 404, False),
        ("GET", 205, False),
    ],
)
def test_which_responses_have_no_body(method: str, status: int, expected: bool) -> None:
    assert has_no_body(method, status) is expected


@pytest.mark.parametrize(
    ("headers", "length", "out"),
    [
        ([("content-type", "text/plain")], None, [("content-type", "text/plain")]),
        ([("Content-Length", "5")], 5, [("Content-Length", "5")]),
        ([("content-length", "0")], 0, [("content-length", "0")]),
        ([("content-length", " 7\t")], 7, [("content-length", "7")]),
        (
            [("content-length", "5"), ("x", "y"), ("Content-Length", "5")],
            5,
            [("content-length", "5"), ("x", "y")],
        ),
    ],
    ids=["absent", "one", "zero", "whitespace-trimmed", "equal-duplicates-folded"],
)
def test_content_length_is_read_and_folded(
    headers: list[tuple[str, str]], length: int | None, out: list[tuple[str, str]]
) -> None:
    assert content_length(headers) == (out, length)


@pytest.mark.parametrize(
    "values",
    [["+5"], ["-1"], ["5, 6"], ["5, 5"], ["5 6"], [""], ["0x5"], ["\u00b2"], ["5", "6"], ["1e3"]],
    ids=[
        "plus",
        "negative",
        "list",
        "list-of-equal",
        "space-inside",
        "empty",
        "hex",
        "superscript-two",
        "conflicting",
        "exponent",
    ],
)
def test_invalid_content_length_is_refused(values: list[str]) -> None:
    with pytest.raises(InvalidResponse, match="Content-Length"):
        content_length([("content-length", value) for value in values])


# --- no body for HEAD, 204 and 304 --------------------------------------------------------


def test_head_response_keeps_its_headers_and_drops_the_body(make: Any, loop_mode: str) -> None:
    app = app_sending(200, [(b"content-type", b"text/plain"), (b"content-length", b"5")])
    response = call(make(app, loop_mode=loop_mode), make_environ(method="HEAD"))
    assert response.status == "200 OK"
    assert response.headers == [("content-type", "text/plain"), ("content-length", "5")]
    assert response.body == b""


def test_head_body_streamed_after_the_head_is_dropped_too(make: Any, loop_mode: str) -> None:
    gate = threading.Event()
    app = app_sending(200, [(b"content-length", b"10")], (b"01234", b"56789"), gate=gate)
    result = make(app, loop_mode=loop_mode)(make_environ(method="HEAD"), lambda *a: None)
    gate.set()
    try:
        assert list(result) == []
    finally:
        result.close()


def test_starlette_head_response_has_no_body(make: Any, loop_mode: str) -> None:
    from starlette.responses import PlainTextResponse

    response = call(
        make(PlainTextResponse("injected"), loop_mode=loop_mode), make_environ(method="HEAD")
    )
    assert response.status == "200 OK"
    assert ("content-length", "8") in response.headers
    assert response.body == b""


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_statuses_drop_the_body(make: Any, loop_mode: str, status: int) -> None:
    app = app_sending(status, [(b"etag", b'"x"')], (b"HTTP/1.1 200 OK\r\n\r\nsmuggled",))
    response = call(make(app, loop_mode=loop_mode), validate=False)
    assert response.status.startswith(str(status))
    assert response.headers == [("etag", '"x"')]
    assert response.body == b""


def test_head_with_a_pathsend_file_sends_no_file(make: Any, tmp_path: Path) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"12345")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"a/b"), (b"content-length", b"5")],
            }
        )
        await send({"type": "http.response.pathsend", "path": str(file)})

    response = call(make(app), make_environ(method="HEAD"))
    assert (response.status, response.body) == ("200 OK", b"")


# --- Content-Length -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"+5")],
        [(b"content-length", b"-1")],
        [(b"content-length", b"5, 6")],
        [(b"content-length", b"\xb2")],
        [(b"content-length", b"5"), (b"Content-Length", b"6")],
    ],
    ids=["plus", "negative", "list", "non-ascii-digit", "conflicting"],
)
def test_invalid_content_length_fails_before_anything_is_sent(
    make: Any, loop_mode: str, headers: list[tuple[bytes, bytes]]
) -> None:
    heads: list[str] = []
    with pytest.raises(InvalidResponse, match="Content-Length"):
        make(app_sending(200, headers), loop_mode=loop_mode)(
            make_environ(), lambda status, *_: heads.append(status)
        )
    assert heads == []


def test_equal_duplicate_content_lengths_are_folded_into_one(make: Any, loop_mode: str) -> None:
    headers = [(b"content-length", b"5"), (b"content-type", b"a/b"), (b"Content-Length", b"5")]
    response = call(make(app_sending(200, headers), loop_mode=loop_mode))
    assert response.headers == [("content-length", "5"), ("content-type", "a/b")]
    assert response.body == b"hello"


@pytest.mark.parametrize(
    ("length", "chunks"),
    [(b"4", (b"hello",)), (b"6", (b"hello",)), (b"10", (b"hello", b"world", b"!"))],
    ids=["longer", "shorter", "longer-in-chunks"],
)
def test_wrong_length_body_sent_at_once_fails_before_anything_is_sent(
    make: Any, loop_mode: str, length: bytes, chunks: tuple[bytes, ...]
) -> None:
    heads: list[str] = []
    with pytest.raises(InvalidResponse, match="Content-Length"):
        make(app_sending(200, [(b"content-length", length)], chunks), loop_mode=loop_mode)(
            make_environ(), lambda status, *_: heads.append(status)
        )
    assert heads == []


def test_longer_streamed_body_aborts_without_writing_the_excess(make: Any, loop_mode: str) -> None:
    gate = threading.Event()
    app = app_sending(200, [(b"content-length", b"8")], (b"12345", b"6789"), gate=gate)
    heads, received, error = head_then_fail(make, loop_mode, app, gate)
    assert heads == ["200 OK"]
    assert b"".join(received) == b"12345"  # "6789" would overrun: nothing of it is written
    assert isinstance(error, InvalidResponse)
    assert "longer than its Content-Length 8" in str(error)


def test_shorter_streamed_body_makes_the_iterable_raise(make: Any, loop_mode: str) -> None:
    gate = threading.Event()
    app = app_sending(200, [(b"content-length", b"20")], (b"12345", b"6789"), gate=gate)
    heads, received, error = head_then_fail(make, loop_mode, app, gate)
    assert heads == ["200 OK"]
    assert b"".join(received) == b"123456789"
    assert isinstance(error, InvalidResponse)
    assert "ended after 9 of its Content-Length 20 bytes" in str(error)


def test_the_app_sees_the_framing_error_in_send(make: Any) -> None:
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"1")]}
        )
        try:
            await send({"type": "http.response.body", "body": b"too long"})
        except InvalidResponse as exc:
            errors.append(exc)

    # Even an app that swallows the error does not get its response out.
    with pytest.raises(InvalidResponse):
        make(app)(make_environ(), lambda *a: None)
    assert len(errors) == 1


# --- body types ---------------------------------------------------------------------------


@pytest.mark.parametrize("body", [50_000_000, "hello", None, [b"x"]], ids=repr)
def test_a_body_that_is_not_bytes_fails_before_anything_is_sent(
    make: Any, loop_mode: str, body: Any
) -> None:
    heads: list[str] = []
    with pytest.raises(TypeError, match="'body' must be bytes, not "):
        make(app_sending(200, [], (body,)), loop_mode=loop_mode)(
            make_environ(), lambda status, *_: heads.append(status)
        )
    assert heads == []


def test_a_body_that_is_not_bytes_after_the_head_aborts(make: Any, loop_mode: str) -> None:
    gate = threading.Event()
    heads, received, error = head_then_fail(
        make, loop_mode, app_sending(200, [], (b"ok", 50_000_000), gate=gate), gate
    )
    assert (heads, received) == (["200 OK"], [b"ok"])
    assert isinstance(error, TypeError)


def test_bytearray_and_memoryview_bodies_are_bytes(make: Any, loop_mode: str) -> None:
    app = app_sending(200, [(b"content-type", b"a/b")], (bytearray(b"ab"), memoryview(b"cd")))
    assert call(make(app, loop_mode=loop_mode)).body == b"abcd"


# --- pathsend -----------------------------------------------------------------------------


@pytest.mark.parametrize("wrapper", [True, False], ids=["file_wrapper", "read-in-chunks"])
@pytest.mark.parametrize("length", [b"3", b"9"], ids=["file-longer", "file-shorter"])
def test_pathsend_file_not_matching_content_length_is_refused(
    make: Any, tmp_path: Path, wrapper: bool, length: bytes
) -> None:
    file = tmp_path / "f.bin"
    file.write_bytes(b"12345")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", length)]}
        )
        await send({"type": "http.response.pathsend", "path": str(file)})

    environ = make_environ()
    if not wrapper:
        environ.pop("wsgi.file_wrapper", None)
    else:
        environ["wsgi.file_wrapper"] = FileWrapper
    received: list[bytes] = []

    def serve() -> None:
        result = make(app)(environ, lambda *a: None)
        try:
            received.extend(result)
        finally:
            result.close()

    with pytest.raises(InvalidResponse, match="Content-Length"):
        serve()
    assert len(b"".join(received)) <= int(length)
