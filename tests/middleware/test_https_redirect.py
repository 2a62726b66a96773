"""HTTPSRedirect: a behaviour table run through all four ways (WSGI, ASGI, both adapters)."""

from __future__ import annotations

from typing import Any

import pytest

from middleware import HTTPSRedirect, Middleware, ProxyHeaders, Stack
from middleware.testing import PlainRequest, run

# (scheme, host, method, path, query, expected status, expected Location)
CASES: list[tuple[str, str, str, str, bytes, int, bytes | None]] = [
    ("https", "example.com", "GET", "/a", b"", 200, None),
    ("http", "example.com", "GET", "/a", b"", 308, b"https://example.com/a"),
    ("http", "example.com", "POST", "/a", b"", 308, b"https://example.com/a"),
    ("http", "example.com:80", "GET", "/", b"x=1&y=%2F", 308, b"https://example.com/?x=1&y=%2F"),
    ("http", "example.com:8080", "GET", "/", b"", 308, b"https://example.com:8080/"),
    ("http", "[::1]:80", "GET", "/", b"", 308, b"https://[::1]/"),
    ("http", "example.com", "GET", "/caf\u00e9 x", b"", 308, b"https://example.com/caf%C3%A9%20x"),
    ("http", "example.com", "GET", "//evil.com/x", b"", 308, b"https://example.com//evil.com/x"),
    ("http", "evil.com/x?", "GET", "/", b"", 400, None),  # not a host: never echoed
]


@pytest.mark.parametrize("case", CASES)
def test_behaviour_table(case: tuple[str, str, str, str, bytes, int, bytes | None]) -> None:
    scheme, host, method, path, query, status, location = case
    request = PlainRequest(method=method, path=path, query=query, scheme=scheme, server=(host, 80))
    for way, result in run(HTTPSRedirect, request).items():
        assert result.status == status, way
        assert result.header(b"location") == location, way
        if status == 200:
            assert result.body == b"hello", way
        else:
            assert result.seen is None, way  # answered before the app runs


def test_the_root_path_is_kept() -> None:
    request = PlainRequest(path="/x", root_path="/app", server=("example.com", 80))
    for way, result in run(HTTPSRedirect, request).items():
        assert result.header(b"location") == b"https://example.com/app/x", way


def test_behind_proxy_headers_the_forwarded_scheme_and_host_count() -> None:
    stack = Stack([Middleware(ProxyHeaders, x_host=1), Middleware(HTTPSRedirect)])
    via_tls = PlainRequest(headers=[(b"x-forwarded-proto", b"https")])
    plain = PlainRequest(
        headers=[(b"x-forwarded-proto", b"http"), (b"x-forwarded-host", b"public.example")]
    )
    spoofed = PlainRequest(headers=[(b"x-forwarded-proto", b"https")], client=("203.0.113.9", 1))
    for way, result in run(stack, via_tls).items():
        assert result.status == 200, way  # no redirect loop behind a TLS proxy
    for way, result in run(stack, plain).items():
        assert result.header(b"location") == b"https://public.example/", way
    for way, result in run(stack, spoofed).items():
        assert result.status == 308, way  # only a trusted proxy can say "https"


def test_a_ws_handshake_is_redirected_to_wss_and_wss_passes() -> None:
    from tests.middleware.test_proxy_headers import _handshake

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})

    sent = _handshake(HTTPSRedirect(app), [])
    assert sent[0] == {
        "type": "websocket.http.response.start",
        "status": 308,
        "headers": [(b"location", b"wss://testserver/ws"), (b"content-length", b"0")],
    }
    assert sent[1] == {"type": "websocket.http.response.body", "body": b""}
    passed = _handshake(HTTPSRedirect(app), [], scheme="wss")
    assert passed == [{"type": "websocket.accept"}]
    behind_tls = _handshake(
        Stack([Middleware(ProxyHeaders), Middleware(HTTPSRedirect)])(app),
        [(b"x-forwarded-proto", b"https")],
    )
    assert behind_tls == [{"type": "websocket.accept"}]


def test_a_websocket_upgrade_seen_as_http_is_sent_to_wss() -> None:
    # How a WSGI app under WSGIToASGI (and any driver) sees a handshake: a GET with Upgrade.
    request = PlainRequest(
        path="/ws", headers=[(b"connection", b"Upgrade"), (b"upgrade", b"WebSocket")]
    )
    for way, result in run(HTTPSRedirect, request).items():
        assert result.status == 308, way
        assert result.header(b"location") == b"wss://testserver/ws", way


def test_a_subclass_keeps_the_websocket_handshake_path() -> None:
    from tests.middleware.test_proxy_headers import _handshake

    class Mine(HTTPSRedirect):
        pass

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "websocket.accept"})

    wrapped = Mine(app)
    assert isinstance(wrapped, HTTPSRedirect)
    assert type(wrapped) is Mine.ASGI
    sent = _handshake(wrapped, [])
    assert sent[0]["status"] == 308


def test_proxy_headers_inside_is_applied_first_so_either_order_works() -> None:
    stack = Stack([Middleware(HTTPSRedirect), Middleware(ProxyHeaders, x_host=1)])
    via_tls = PlainRequest(
        path="/x", headers=[(b"x-forwarded-proto", b"https"), (b"x-forwarded-for", b"1.2.3.4")]
    )
    for way, result in run(stack, via_tls).items():
        assert result.status == 200, way
        assert result.seen is not None, way
        assert result.seen.client == ("1.2.3.4", 0), way  # applied once, not undone
        assert result.seen.scheme == "https", way
    plain = PlainRequest(headers=[(b"x-forwarded-host", b"public.example")])
    for way, result in run(stack, plain).items():
        assert result.header(b"location") == b"https://public.example/", way
    spoofed = PlainRequest(headers=[(b"x-forwarded-proto", b"https")], client=("203.0.113.9", 1))
    for way, result in run(stack, spoofed).items():
        assert result.status == 308, way


def test_proxy_headers_inside_a_fastapi_stack_is_found() -> None:
    from fastapi import FastAPI

    app = FastAPI()
    app.add_middleware(ProxyHeaders)
    app.add_middleware(HTTPSRedirect)  # outermost: the order users often write

    seen: list[str] = []

    @app.get("/")
    def index() -> dict[str, str]:
        seen.append("called")
        return {}

    from middleware.testing import call_asgi

    request = PlainRequest(headers=[(b"x-forwarded-proto", b"https")])
    result = call_asgi(app, request)
    assert result.status == 200
    assert seen == ["called"]
