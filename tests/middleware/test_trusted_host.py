"""TrustedHost: a behaviour table run through all four ways (WSGI, ASGI, both adapters)."""

from __future__ import annotations

from typing import Any

import pytest

from middleware import Middleware as M
from middleware import ProxyHeaders, Stack, TrustedHost
from middleware.testing import PlainHead, PlainRequest, run

ALLOWED = ["example.com", "*.example.org", "www.shop.example", "[::1]"]

# (host header, expected status, expected Location for redirects)
CASES: list[tuple[str, int, bytes | None]] = [
    ("example.com", 200, None),
    ("EXAMPLE.com:8000", 200, None),  # case-insensitive, port ignored
    ("a.example.org", 200, None),
    ("a.b.example.org", 200, None),
    ("example.org", 400, None),  # *.example.org is not example.org itself
    ("badexample.org", 400, None),
    ("evil.com", 400, None),
    ("example.com.evil.com", 400, None),
    ("[::1]:8000", 200, None),
    ("example.com/../x", 400, None),  # not a host at all
    ("", 400, None),
    ("shop.example", 307, b"http://www.shop.example/p%20q?a=1&b=%20"),
    ("shop.example:8080", 307, b"http://www.shop.example:8080/p%20q?a=1&b=%20"),
]


@pytest.mark.parametrize(("host", "status", "location"), CASES)
def test_behaviour_table(host: str, status: int, location: bytes | None) -> None:
    request = PlainRequest(path="/p q", query=b"a=1&b=%20", server=(host, 80))
    for way, result in run(lambda app: TrustedHost(app, allowed_hosts=ALLOWED), request).items():
        assert result.status == status, way
        assert result.header(b"location") == location, way
        if status == 200:
            assert result.seen is not None, way
            assert result.body == b"hello", way
        else:
            assert result.seen is None, way  # refused before the app runs
        if status == 400:
            assert result.body == b"Invalid host header", way


def test_www_redirect_can_be_switched_off() -> None:
    request = PlainRequest(server=("shop.example", 80))
    make = lambda app: TrustedHost(app, ALLOWED, www_redirect=False)  # noqa: E731
    for way, result in run(make, request).items():
        assert (result.status, result.seen) == (400, None), way


def test_the_default_allows_every_host() -> None:
    for way, result in run(TrustedHost, PlainRequest(server=("anything.test", 80))).items():
        assert result.status == 200, way


def test_a_missing_host_header_is_refused() -> None:
    # PlainRequest always sends Host; build the WSGI and ASGI requests without it.
    from middleware.testing import asgi_echo_app, call_asgi, call_wsgi, wsgi_echo_app

    class NoHost(PlainRequest):
        def scope(self) -> dict[str, Any]:
            scope = super().scope()
            scope["headers"] = [p for p in scope["headers"] if p[0] != b"host"]
            return scope

        def environ(self) -> dict[str, Any]:
            environ = super().environ()
            del environ["HTTP_HOST"]
            return environ

    seen: list[Any] = []
    assert call_wsgi(TrustedHost(wsgi_echo_app(seen), ALLOWED), NoHost()).status == 400
    assert call_asgi(TrustedHost(asgi_echo_app(seen), ALLOWED), NoHost()).status == 400
    assert seen == []


def test_the_forwarded_host_is_checked_behind_proxy_headers() -> None:
    stack = Stack([M(ProxyHeaders, x_host=1), M(TrustedHost, allowed_hosts=["public.example"])])
    good = PlainRequest(server=("10.0.0.5", 80), headers=[(b"x-forwarded-host", b"public.example")])
    bad = PlainRequest(server=("public.example", 80), headers=[(b"x-forwarded-host", b"evil.com")])
    for way, result in run(stack, good).items():
        assert result.status == 200, way
    for way, result in run(stack, bad).items():
        assert (result.status, result.seen) == (400, None), way


@pytest.mark.parametrize("hosts", [["exa*mple.com"], ["*example.com"], "example.com", [""]])
def test_bad_patterns_are_refused(hosts: Any) -> None:
    with pytest.raises((ValueError, TypeError), match=r"allowed_hosts"):
        TrustedHost(lambda e, s: [], allowed_hosts=hosts)


def test_memory_for_client_chosen_hosts_is_bounded() -> None:
    core = TrustedHost(lambda e, s: [], ALLOWED)._core
    for i in range(5000):
        head = PlainHead("GET", "/", headers=[(b"host", f"h{i}.test".encode())])
        assert core.on_request(head) is not None
    head = PlainHead("GET", "/", headers=[(b"host", b"x" * 10_000)])
    assert core.on_request(head) is not None
    assert len(core._verdicts) <= 1024


@pytest.mark.parametrize("extension", [True, False])
def test_a_websocket_handshake_for_a_foreign_host_is_refused(extension: bool) -> None:
    from tests.middleware.test_proxy_headers import _handshake

    called: list[Any] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope)
        await send({"type": "websocket.accept"})

    sent = _handshake(TrustedHost(app, ["example.com"]), [], extension=extension)
    assert called == []
    if extension:  # the client gets the 400 itself
        assert [m["type"] for m in sent] == [
            "websocket.http.response.start",
            "websocket.http.response.body",
        ]
        assert sent[0]["status"] == 400
        assert sent[1]["body"] == b"Invalid host header"
    else:  # refused before accept: the server answers 403
        assert sent == [{"type": "websocket.close", "code": 1008}]
    allowed = _handshake(TrustedHost(app, ["testserver"]), [])
    assert allowed == [{"type": "websocket.accept"}]
