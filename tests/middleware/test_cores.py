"""The cores without any interface: request heads in, heads and chunks out.

What the drivers do is tested in test_asgi_driver/test_wsgi_driver and the behaviour
table; here each core's protocol is exercised directly, as h11 tests its state machine.
"""

from __future__ import annotations

import logging
import zlib
from typing import Any

import pytest

from middleware import CORS, AccessLog, GZip
from middleware._asgi_driver import ScopeHead
from middleware._core import AddHeaders, Handler, Outcome, PlainHead, RequestHead, Response
from middleware._wsgi_driver import EnvironHead
from tests.middleware.harness import Request, call_asgi_async, environ_for, scope_for


def core_of(cls: Any, **options: Any) -> Any:
    return cls(lambda environ, start_response: [], **options)._core


def test_a_plain_head_holds_what_it_is_given() -> None:
    head = PlainHead("GET", "/a", query=b"x=1", headers=[(b"origin", b"o")], client=("1.2.3.4", 5))
    assert (head.method, head.path, head.query, head.scheme, head.http_version) == (
        "GET",
        "/a",
        b"x=1",
        "http",
        "1.1",
    )
    assert head.client == ("1.2.3.4", 5)
    assert list(head.headers) == [(b"origin", b"o")]
    assert repr(head) == "<PlainHead GET /a>"


@pytest.mark.parametrize("kind", ["scope", "environ"])
def test_driver_heads_agree(kind: str) -> None:
    request = Request(
        "PUT", "/café", "q=1", (("Accept", "a"), ("Accept", "b"), ("Content-Type", "t"))
    )
    head: RequestHead
    if kind == "scope":
        scope = scope_for(request)
        scope["path"] = "/café"
        head = ScopeHead(scope)
    else:
        environ = environ_for(request)
        environ["PATH_INFO"] = "/café".encode().decode("latin-1")
        environ["HTTP_ACCEPT"] = "a, b"  # a server joins repeated fields
        head = EnvironHead(environ)
    assert (head.method, head.path, head.query, head.scheme, head.http_version) == (
        "PUT",
        "/café",
        b"q=1",
        "http",
        "1.1",
    )
    assert head.client == ("10.0.0.7", 5000)
    assert head.header(b"accept") == b"a, b"
    assert head.header(b"content-type") == b"t"
    assert head.header(b"x-missing") is None
    assert (b"content-type", b"t") in list(head.headers)


def test_an_environ_without_peer_or_protocol_still_gives_a_head() -> None:
    head = EnvironHead({"REQUEST_METHOD": "GET"})
    assert (head.path, head.query, head.client, head.http_version) == ("", b"", None, "1.1")
    assert EnvironHead({"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/2"}).http_version == "2"
    assert ScopeHead({"method": "GET", "headers": [], "path": "/"}).client is None


def test_the_abstract_protocol_says_what_is_missing() -> None:
    class Bare(RequestHead):
        __slots__ = ()

    head = Bare()
    head.method = "GET"
    for name in ("path", "query", "scheme", "client", "http_version"):
        with pytest.raises(NotImplementedError):
            getattr(head, name)
    with pytest.raises(NotImplementedError):
        head.header(b"x")
    with pytest.raises(NotImplementedError):
        _ = head.headers
    with pytest.raises(NotImplementedError):
        Handler().pending_head()
    assert Handler().on_response_start(200, []) == (200, [])
    assert Handler().on_body(b"x", True) == b"x"
    assert Handler().on_opaque_body() is None
    Handler().on_complete(Outcome.COMPLETED)


def test_cors_core_short_circuits_a_preflight_and_decorates_a_simple_response() -> None:
    core = core_of(CORS, allow_origins=["https://a.example"], allow_credentials=True)
    preflight = core.on_request(
        PlainHead(
            "OPTIONS",
            "/",
            headers=[(b"origin", b"https://a.example"), (b"access-control-request-method", b"GET")],
        )
    )
    assert isinstance(preflight, Response)
    assert preflight.status == 200
    handler = core.on_request(PlainHead("GET", "/", headers=[(b"origin", b"https://a.example")]))
    assert isinstance(handler, AddHeaders)  # headers only: the drivers need no handler
    headers = handler.merged([(b"vary", b"")])
    assert (b"access-control-allow-credentials", b"true") in headers
    assert (b"vary", b"Origin") in headers
    # Stateless per origin, so shared between requests.
    assert (
        core.on_request(PlainHead("GET", "/", headers=[(b"origin", b"https://a.example")]))
        is handler
    )


def test_cors_handler_memo_stays_bounded() -> None:
    core = core_of(CORS, allow_origins=["https://a.example"])
    for i in range(3000):
        core.on_request(PlainHead("GET", "/", headers=[(b"origin", f"https://{i}.net".encode())]))
    assert len(core._by_origin) <= 1024


GZIP_HEAD = PlainHead("GET", "/", headers=[(b"accept-encoding", b"gzip")])


def test_gzip_core_holds_the_head_only_until_the_first_chunk_then_streams() -> None:
    handler = core_of(GZip, minimum_size=10).on_request(GZIP_HEAD)
    assert handler.on_response_start(200, [(b"content-type", b"text/plain")]) is None
    assert handler.on_body(b"", True) == b""  # nothing to decide on yet
    assert handler.pending_head() is None
    first = handler.on_body(b"12345", True)  # under minimum_size, still not held back
    _status, headers = handler.pending_head()
    assert (b"content-encoding", b"gzip") in headers
    decoder = zlib.decompressobj(31)
    assert decoder.decompress(first) == b"12345"
    assert decoder.decompress(handler.on_body(b"67890abc", True)) == b"67890abc"
    assert decoder.decompress(handler.on_body(b"tail", False)) == b"tail"
    assert decoder.eof


def test_gzip_core_drops_bytes_past_a_declared_length_it_compressed_whole() -> None:
    handler = core_of(GZip, minimum_size=1).on_request(GZIP_HEAD)
    head = [(b"content-type", b"text/plain"), (b"content-length", b"5")]
    assert handler.on_response_start(200, head) is None
    body = handler.on_body(b"12345", True)
    _status, headers = handler.pending_head()
    assert (b"content-length", str(len(body)).encode()) in headers
    assert zlib.decompress(body, 31) == b"12345"
    assert handler.on_body(b"excess", True) == b""
    assert handler.on_body(b"", False) == b""


def test_gzip_core_gives_the_head_back_unchanged_for_an_opaque_body() -> None:
    handler = core_of(GZip).on_request(GZIP_HEAD)
    head = (200, [(b"content-type", b"text/plain")])
    assert handler.on_response_start(*head) is None
    assert handler.on_opaque_body() == head
    assert handler.on_body(b"x", False) == b"x"


def test_gzip_core_memos_stay_bounded() -> None:
    core = core_of(GZip)
    for i in range(600):
        core.on_request(PlainHead("GET", "/", headers=[(b"accept-encoding", f"x{i}".encode())]))
        core.excluded_type(f"text/x{i}".encode())
    assert len(core._negotiated) <= 256
    assert len(core._types) <= 256


def test_gzip_core_steps_aside_for_head_requests() -> None:
    assert core_of(GZip).on_request(PlainHead("HEAD", "/")) is None


async def test_an_app_error_under_a_full_exchange_gets_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "middleware.access")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("after start, before the body")

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    with pytest.raises(RuntimeError):
        await AccessLog(GZip(app))(
            scope_for(Request(headers=(("Accept-Encoding", "gzip"),))), receive, send
        )
    # GZip held the 200 head, so the client can still be told 500.
    assert sent[0]["status"] == 500
    assert caplog.records[0].http["status"] == 500  # type: ignore[attr-defined]


async def test_pathsend_after_an_unheld_head_reports_the_declared_length(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "middleware.access")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        headers = [(b"content-length", b"1234")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": "/x"})

    result = await call_asgi_async(AccessLog(app), Request())
    assert result.messages[-1]["type"] == "http.response.pathsend"
    assert caplog.records[0].http["bytes"] == 1234  # type: ignore[attr-defined]


def test_gzip_core_leaves_a_small_whole_body_alone_but_varies() -> None:
    handler = core_of(GZip, minimum_size=10).on_request(GZIP_HEAD)
    assert handler.on_response_start(200, [(b"content-type", b"text/plain")]) is None
    assert handler.on_body(b"small", False) == b"small"
    assert handler.pending_head() == (
        200,
        [(b"content-type", b"text/plain"), (b"vary", b"Accept-Encoding")],
    )


@pytest.mark.parametrize(
    "app_headers",
    [
        pytest.param([(b"content-type", b"text/plain")], id="no-length"),
        pytest.param(
            [(b"content-type", b"text/plain"), (b"content-length", b"20"), (b"x-a", b"1")],
            id="length-in-the-middle",
        ),
        pytest.param([(b"content-length", b"20"), (b"content-length", b"20")], id="length-twice"),
        pytest.param([(b"etag", b'"v1"'), (b"content-length", b"20")], id="strong-etag"),
        pytest.param([(b"vary", b"Origin"), (b"content-length", b"20")], id="own-vary"),
    ],
)
def test_gzip_core_codes_a_whole_body_head_as_the_one_pass_rewrite_does(
    app_headers: list[tuple[bytes, bytes]],
) -> None:
    from middleware._compression import _compressed_headers

    handler = core_of(GZip, minimum_size=1).on_request(GZIP_HEAD)
    assert handler.on_response_start(200, app_headers) is None
    body = handler.on_body(b"x" * 20, False)
    assert zlib.decompress(body, 31) == b"x" * 20
    expected = _compressed_headers(app_headers, b"gzip", str(len(body)).encode())
    assert handler.pending_head() == (200, expected)
    assert [pair for pair in expected if pair[0] == b"content-length"] == [
        (b"content-length", str(len(body)).encode())
    ]


def test_gzip_core_restarted_with_a_passing_head_gives_no_stale_head_for_an_opaque_body() -> None:
    handler = core_of(GZip).on_request(GZIP_HEAD)
    assert handler.on_response_start(200, [(b"content-type", b"text/plain")]) is None
    # A WSGI start_response with exc_info: the 500 head is one GZip leaves alone.
    head = (204, [(b"x-error", b"1")])
    assert handler.on_response_start(*head) == head
    assert handler.on_opaque_body() is None
