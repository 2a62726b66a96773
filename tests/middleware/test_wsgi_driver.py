"""The WSGI driver: close() exactly once, file wrappers, write(), exc_info, outcomes."""

from __future__ import annotations

import io
import logging
import sys
import zlib
from collections.abc import Iterator
from typing import Any
from wsgiref.util import FileWrapper

import pytest

from bridge._http import ClientDisconnected
from middleware import CORS, AccessLog, GZip
from middleware.api import Core, CoreMiddleware, Handler, Head, HeaderList, Outcome, RequestHead
from tests.middleware.harness import Request, TrackedBody, call_wsgi, environ_for

BIG = b"y" * 5000
GZIP = (("Accept-Encoding", "gzip"),)


@pytest.fixture(autouse=True)
def _access_log_enabled(caplog: pytest.LogCaptureFixture) -> None:
    """AccessLog steps aside when its logger is disabled; these tests need it active."""
    caplog.set_level(logging.INFO, "middleware.access")


def tracked_app(chunks: list[bytes], bodies: list[TrackedBody]) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        body = TrackedBody(chunks)
        bodies.append(body)
        return body

    return app


@pytest.mark.parametrize(
    "wrap",
    [GZip, AccessLog, lambda app: CORS(app, allow_origins=["*"])],
    ids=["gzip", "access_log", "cors"],
)
def test_close_of_the_inner_iterable_runs_once_after_a_full_response(wrap: Any) -> None:
    bodies: list[TrackedBody] = []
    result = call_wsgi(wrap(tracked_app([BIG, BIG], bodies)), Request(headers=GZIP))
    assert result.decoded == BIG * 2
    assert bodies[0].closed == 1


def test_close_runs_once_when_the_server_stops_early_and_that_is_a_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    bodies: list[TrackedBody] = []
    app = AccessLog(GZip(tracked_app([BIG] * 5, bodies)))
    environ = environ_for(Request(headers=GZIP))
    with caplog.at_level(logging.INFO, "middleware.access"):
        body = app(environ, lambda status, headers, exc_info=None: lambda data: None)
        next(iter(body))
        body.close()  # type: ignore[attr-defined]
        body.close()  # type: ignore[attr-defined]
    assert bodies[0].closed == 1
    assert [r.http["status"] for r in caplog.records] == [499]  # type: ignore[attr-defined]


def test_close_without_iterating_still_closes_the_inner_iterable() -> None:
    bodies: list[TrackedBody] = []
    body = GZip(tracked_app([BIG], bodies))(environ_for(Request()), lambda *a: lambda d: None)
    body.close()  # type: ignore[attr-defined]
    assert bodies[0].closed == 1


def test_an_error_while_iterating_is_reraised_logged_as_500_and_closes_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    closed: list[int] = []

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            yield BIG
            raise RuntimeError("mid-body")
        finally:
            closed.append(1)

    with caplog.at_level(logging.INFO, "middleware.access"), pytest.raises(RuntimeError):
        call_wsgi(AccessLog(GZip(app)), Request(headers=GZIP), validate=False)
    assert closed == [1]
    assert caplog.records[0].http["status"] == 500  # type: ignore[attr-defined]


def test_an_error_from_the_app_call_is_reraised_unchanged_and_logged_as_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    error = LookupError("no")

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise error

    with caplog.at_level(logging.INFO, "middleware.access"), pytest.raises(LookupError) as raised:
        call_wsgi(AccessLog(app), Request())
    assert raised.value is error
    assert caplog.records[0].http["status"] == 500  # type: ignore[attr-defined]


def test_a_client_gone_while_reading_input_is_a_499(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"a"
        raise ClientDisconnected("gone")

    with caplog.at_level(logging.INFO, "middleware.access"), pytest.raises(ClientDisconnected):
        call_wsgi(AccessLog(app), Request(), validate=False)
    assert caplog.records[0].http["status"] == 499  # type: ignore[attr-defined]


def test_a_file_wrapper_stays_a_file_wrapper_and_gzip_leaves_it_alone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    data = io.BytesIO(BIG)

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(BIG)))]
        )
        return environ["wsgi.file_wrapper"](data, 1024)

    environ = environ_for(Request(headers=GZIP))
    environ["wsgi.file_wrapper"] = FileWrapper
    seen: list[Any] = []
    with caplog.at_level(logging.INFO, "middleware.access"):
        body = AccessLog(GZip(app))(environ, lambda s, h, e=None: seen.append(h))
        assert isinstance(body, FileWrapper)
        # Unchanged, down to the app's spelling of the names.
        assert seen[0] == [("Content-Type", "text/plain"), ("Content-Length", str(len(BIG)))]
        assert b"".join(body) == BIG
        assert not caplog.records  # complete only when the server closes it
        body.close()
        body.close()
    assert data.closed
    assert caplog.records[0].http["bytes"] == len(BIG)  # type: ignore[attr-defined]
    assert caplog.records[0].http["status"] == 200  # type: ignore[attr-defined]


def test_the_write_callable_goes_through_the_core() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(BIG)
        write(b"")
        write(BIG)
        return [b"tail"]

    result = call_wsgi(GZip(app), Request(headers=GZIP), validate=False)
    assert result.header("content-encoding") == "gzip"
    assert zlib.decompress(result.body, 31) == BIG * 2 + b"tail"


def test_start_response_with_exc_info_before_the_head_went_out_replaces_it() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"error"]

    result = call_wsgi(GZip(app), Request(headers=GZIP), validate=False)
    assert result.status == 500
    assert result.body == b"error"


def test_start_response_with_exc_info_after_the_head_went_out_reraises() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial"
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Oops", [], sys.exc_info())

    with pytest.raises(ValueError, match="late"):
        call_wsgi(AccessLog(app), Request(), validate=False)


def test_start_response_twice_without_exc_info_is_an_error() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        start_response("200 OK", [])
        return []

    with pytest.raises(RuntimeError, match="twice"):
        call_wsgi(AccessLog(app), Request(), validate=False)


def test_a_body_before_start_response_is_an_error() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        yield b"too early"

    with pytest.raises(RuntimeError, match="before calling start_response"):
        call_wsgi(AccessLog(app), Request(), validate=False)


def test_a_one_item_list_body_is_compressed_whole_with_an_exact_length() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [BIG]

    result = call_wsgi(GZip(app), Request(headers=GZIP))
    assert result.header("content-length") == str(len(result.body))
    assert zlib.decompress(result.body, 31) == BIG


def test_the_apps_reason_phrase_is_kept() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 Fine Thanks", [("Content-Type", "text/plain")])
        return [b"ok"]

    statuses: list[str] = []
    body = CORS(app)(environ_for(Request()), lambda s, h, e=None: statuses.append(s))
    list(body)
    assert statuses == ["200 Fine Thanks"]


def test_a_preflight_never_calls_the_wsgi_app() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise AssertionError("preflight reached the app")

    request = Request(
        "OPTIONS",
        headers=(("Origin", "https://a.example"), ("Access-Control-Request-Method", "GET")),
    )
    result = call_wsgi(CORS(app, allow_origins=["https://a.example"]), request)
    assert (result.status, result.body) == (200, b"OK")


def test_non_ascii_paths_reach_the_core_decoded(caplog: pytest.LogCaptureFixture) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return []

    environ = environ_for(Request())
    environ["PATH_INFO"] = "/café".encode().decode("latin-1")
    with caplog.at_level(logging.INFO, "middleware.access"):
        body = AccessLog(app)(environ, lambda s, h, e=None: None)
        list(body)
        body.close()  # type: ignore[attr-defined]
    assert caplog.records[0].http["path"] == "/café"  # type: ignore[attr-defined]


def test_a_head_only_core_hands_back_the_apps_own_iterable_and_exc_info() -> None:
    bodies: list[TrackedBody] = []
    inner = tracked_app([BIG], bodies)
    calls: list[tuple[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        result = inner(environ, start_response)
        try:
            raise ValueError("x")
        except ValueError:
            start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
        return result

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        calls.append((status, exc_info))
        return lambda data: None

    result = CORS(app, allow_origins=["*"])(environ_for(Request()), start_response)
    assert result is bodies[0]
    assert [status for status, _ in calls] == ["200 OK", "500 Oops"]
    assert calls[1][1][0] is ValueError


def test_a_core_that_changes_nothing_hands_the_apps_header_list_through() -> None:
    headers = [("Content-Type", "text/plain"), ("X-Custom", "1")]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"ok"]

    seen: list[Any] = []
    body = AccessLog(app)(environ_for(Request()), lambda s, h, e=None: seen.append(h))
    list(body)
    body.close()  # type: ignore[attr-defined]
    assert seen == [headers]
    assert seen[0] is headers


@pytest.mark.parametrize(
    "chunks",
    [[BIG], [], [b"", BIG, b""], [BIG[:100], b"", BIG[100:]]],
    ids=["one_item", "empty", "empty_items_around", "empty_item_inside"],
)
def test_a_list_body_is_compressed_at_once_and_handed_back_as_a_list(chunks: list[bytes]) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return chunks

    seen: list[Any] = []
    body = GZip(app)(environ_for(Request(headers=GZIP)), lambda s, h, e=None: seen.append(h))
    assert type(body) is list
    assert len(seen) == 1  # the head went out before the body was returned
    if len(chunks) == 1:
        assert len(body) == 1  # so a server can send Content-Length
    data = b"".join(body)
    expected = b"".join(chunks)
    if dict(seen[0]).get("content-encoding") == "gzip":
        assert zlib.decompress(data, 31) == expected
    else:
        assert data == expected


class _Recording(Handler):
    """Holds the head, upper-cases the body, records every call in order."""

    __slots__ = ("calls", "fail_body")

    def __init__(self, calls: list[Any], fail_body: bool = False) -> None:
        self.calls = calls
        self.fail_body = fail_body

    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        self.calls.append(("start", status))
        return None

    def on_body(self, chunk: bytes, more: bool) -> bytes:
        self.calls.append(("body", chunk, more))
        if self.fail_body:
            raise ValueError("core failed")
        return chunk.upper()

    def pending_head(self) -> Head | None:
        self.calls.append(("pending",))
        return 201, [(b"x-core", b"yes")]

    def on_complete(self, outcome: Outcome) -> None:
        self.calls.append(("complete", outcome))


def _recording_app(calls: list[Any], fail_body: bool = False) -> Any:
    class _Core(Core):
        def on_request(self, head: RequestHead) -> Handler:
            return _Recording(calls, fail_body)

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    class _Middleware(CoreMiddleware):
        def __init__(self, app: Any) -> None:
            super().__init__(app, _Core())

    return _Middleware(app)


@pytest.mark.parametrize("request_number", [1, 2], ids=["first", "later"])
def test_a_one_chunk_list_with_on_complete_is_a_list_that_completes_on_close(
    request_number: int,
) -> None:
    calls: list[Any] = []
    wrapped = _recording_app(calls)
    seen: list[Any] = []
    for _ in range(request_number):  # later requests take the driver's remembered path
        calls.clear()
        seen.clear()
        body = wrapped(environ_for(Request()), lambda s, h, e=None: seen.append((s, h)))
        assert isinstance(body, list)
        assert list(body) == [b"HELLO"]
        assert seen == [("201 Created", [("x-core", "yes")])]
        assert calls == [("start", 200), ("body", b"hello", False), ("pending",)]
        body.close()  # type: ignore[attr-defined]
        body.close()  # type: ignore[attr-defined]
        assert calls[3:] == [("complete", Outcome.COMPLETED)]


def test_a_core_error_on_a_one_chunk_list_is_reraised_and_completes_as_app_exception() -> None:
    calls: list[Any] = []
    wrapped = _recording_app(calls, fail_body=True)
    for _ in range(2):
        calls.clear()
        with pytest.raises(ValueError, match="core failed"):
            wrapped(environ_for(Request()), lambda s, h, e=None: None)
        assert calls == [
            ("start", 200),
            ("body", b"hello", False),
            ("complete", Outcome.APP_EXCEPTION),
        ]


def test_a_one_chunk_access_log_line_is_written_on_close(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"hello"]

    wrapped = AccessLog(app)
    for _ in range(2):
        caplog.clear()
        body = wrapped(environ_for(Request()), lambda s, h, e=None: None)
        assert list(body) == [b"hello"]
        assert caplog.records == []  # not before the server is done with the body
        body.close()  # type: ignore[attr-defined]
        assert [r.http["status"] for r in caplog.records] == [200]  # type: ignore[attr-defined]


def test_an_environ_heads_add_header_joins_and_refuses_as_check_header_does() -> None:
    from middleware._wsgi_driver import EnvironHead

    environ: dict[str, Any] = {"REQUEST_METHOD": "GET", "HTTP_X_ID": "a"}
    head = EnvironHead(environ)
    for _ in range(2):  # the second time, the name is one already found valid
        head.add_header(b"x-id", b"b")
    assert environ["HTTP_X_ID"] == "a, b, b"
    head.add_header(b"x-new", b"v 1")  # not alphanumeric: checked, and valid
    assert environ["HTTP_X_NEW"] == "v 1"
    for _ in range(2):
        with pytest.raises(ValueError, match="invalid value"):
            head.add_header(b"x-id", b"evil\r\nx-b: 1")
        with pytest.raises(ValueError, match="cannot be expressed"):
            head.add_header(b"x_id", b"1")  # CGI cannot tell it from x-id
        with pytest.raises(ValueError, match="lower-case token"):
            head.add_header(b"X-Id", b"1")
    assert environ["HTTP_X_ID"] == "a, b, b"
