"""ProxyHeaders: a behaviour table run through all four ways (WSGI, ASGI, both adapters)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from middleware import ProxyHeaders
from middleware.testing import PlainHead, PlainRequest, Seen, run

PROXY = ("127.0.0.1", 50000)
STRANGER = ("203.0.113.9", 50000)


@dataclass(frozen=True)
class Case:
    name: str
    headers: tuple[tuple[bytes, bytes], ...]
    options: dict[str, Any] = field(default_factory=dict)
    peer: tuple[str, int] = PROXY
    # What the app must see: client host (and port when given), scheme, host header,
    # server, (root_path, path).
    client: tuple[str, int | None] = PROXY
    scheme: str = "http"
    host: bytes = b"testserver"
    server: tuple[str, int | None] = ("testserver", 80)
    paths: tuple[str, str] = ("", "/items")


XFF = b"x-forwarded-for"
XFP = b"x-forwarded-proto"
XFH = b"x-forwarded-host"

CASES = [
    Case("no proxy headers: nothing changes", ()),
    Case(
        "the proxy's client and scheme are taken",
        ((XFF, b"198.51.100.7"), (XFP, b"https")),
        client=("198.51.100.7", None),
        scheme="https",
    ),
    Case(
        "an untrusted peer cannot set anything",
        ((XFF, b"198.51.100.7"), (XFP, b"https"), (XFH, b"evil.example")),
        options={"x_host": 1},
        peer=STRANGER,
        client=STRANGER,
    ),
    Case(
        "values a client prepends are not taken (x_for=1: the proxy's own entry)",
        ((XFF, b"6.6.6.6, 198.51.100.7"),),
        client=("198.51.100.7", None),
    ),
    Case(
        "the same over repeated header lines",
        ((XFF, b"6.6.6.6"), (XFF, b"198.51.100.7")),
        client=("198.51.100.7", None),
    ),
    Case(
        "the walk goes through trusted proxies and stops at the first untrusted hop",
        ((XFF, b"6.6.6.6, 198.51.100.7, 10.1.2.3"),),
        options={"trusted_hosts": ["127.0.0.1", "10.0.0.0/8"], "x_for": 3},
        client=("198.51.100.7", None),
    ),
    Case(
        "'*' trusts every peer, and still takes only x_for entries",
        ((XFF, b"6.6.6.6, 198.51.100.7"),),
        options={"trusted_hosts": "*"},
        peer=STRANGER,
        client=("198.51.100.7", None),
    ),
    Case(
        "a chain shorter than x_for is ignored (some proxy did not append)",
        ((XFF, b"198.51.100.7"),),
        options={"x_for": 2},
    ),
    Case(
        "a port in X-Forwarded-For is the client's port",
        ((XFF, b"198.51.100.7:4711"),),
        client=("198.51.100.7", 4711),
    ),
    Case(
        "IPv6 entries, bracketed with a port",
        ((XFF, b"[2001:db8::7]:4711"),),
        client=("2001:db8::7", 4711),
    ),
    Case(
        "a client entry that is not an address leaves the client alone",
        ((XFF, b"<script>"),),
    ),
    Case(
        "an unknown scheme is ignored",
        ((XFP, b"javascript"),),
    ),
    Case("wss counts as https", ((XFP, b"wss"),), scheme="https", server=("testserver", 80)),
    Case(
        "X-Forwarded-Host is ignored unless x_host is set",
        ((XFH, b"public.example"),),
    ),
    Case(
        "X-Forwarded-Host with x_host=1",
        ((XFH, b"public.example"), (XFP, b"https")),
        options={"x_host": 1},
        scheme="https",
        host=b"public.example",
        server=("public.example", 443),
    ),
    Case(
        "a malformed forwarded host is ignored",
        ((XFH, b"evil.example/path"),),
        options={"x_host": 1},
    ),
    Case(
        "X-Forwarded-Port with x_port=1 goes on the host",
        ((XFH, b"public.example"), (b"x-forwarded-port", b"8443")),
        options={"x_host": 1, "x_port": 1},
        host=b"public.example:8443",
        server=("public.example", 8443),
    ),
    Case(
        "X-Forwarded-Prefix with x_prefix=1 becomes the root path",
        ((b"x-forwarded-prefix", b"/api/"),),
        options={"x_prefix": 1},
        paths=("/api", "/api/items"),
    ),
    Case(
        "a prefix that is not an absolute path is ignored",
        ((b"x-forwarded-prefix", b"https://evil.example"),),
        options={"x_prefix": 1},
    ),
    Case(
        "Forwarded (RFC 7239) when asked for",
        ((b"forwarded", b'for="[2001:db8::1]:4711";proto=https;host=public.example'),),
        options={"forwarded": True, "x_host": 1},
        client=("2001:db8::1", 4711),
        scheme="https",
        host=b"public.example",
        server=("public.example", 443),
    ),
    Case(
        "Forwarded: the element of our proxy, not the client's own",
        ((b"forwarded", b"for=6.6.6.6;proto=https, for=198.51.100.7;proto=http"),),
        options={"forwarded": True},
        client=("198.51.100.7", None),
    ),
    Case(
        "Forwarded: an obfuscated or unknown client leaves the client alone",
        ((b"forwarded", b"for=unknown;proto=https"),),
        options={"forwarded": True},
        scheme="https",
    ),
    Case(
        "X-Forwarded-* are ignored in Forwarded mode",
        ((XFF, b"198.51.100.7"), (XFP, b"https")),
        options={"forwarded": True},
    ),
]


def _check(case: Case, way: str, seen: Seen | None) -> None:
    assert seen is not None, way
    assert seen.client is not None, way
    # No port from the proxy: 0 (ASGI wants an int; WSGI gets REMOTE_PORT "0").
    assert seen.client == (case.client[0], 0 if case.client[1] is None else case.client[1]), way
    assert seen.scheme == case.scheme, way
    assert seen.header(b"host") == case.host, way
    assert seen.server == case.server, way
    assert (seen.root_path, seen.path) == case.paths, way


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_behaviour_table(case: Case) -> None:
    request = PlainRequest(path="/items", headers=case.headers, client=case.peer)
    results = run(lambda app: ProxyHeaders(app, **case.options), request)
    for way, result in results.items():
        assert (result.status, result.body) == (200, b"hello"), way
        _check(case, way, result.seen)


def test_the_response_is_left_alone() -> None:
    request = PlainRequest(headers=[(XFF, b"198.51.100.7")])
    for way, result in run(ProxyHeaders, request, headers=[(b"x-app", b"1")]).items():
        assert result.headers == [(b"x-app", b"1")], way


def test_a_long_chain_is_walked_in_linear_time_and_bounded_memory() -> None:
    core = ProxyHeaders(lambda e, s: [], trusted_hosts="*", x_for=100_000)._core
    chain = ", ".join(f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}" for i in range(100_000))
    head = PlainHead("GET", "/", headers=[(XFF, chain.encode())], client=PROXY)
    core.on_request(head)
    assert head.client == ("10.0.0.0", 0)  # everybody trusted: the x_for-th from the right
    assert len(core._trust.cache) <= 4096


@pytest.mark.parametrize(
    "options",
    [
        {"x_for": -1},
        {"x_host": True},
        {"x_prefix": "1"},
        {"trusted_hosts": ["127.0.0.1", ""]},
        {"trusted_hosts": [1]},
    ],
)
def test_bad_options_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"hop count|empty"):
        ProxyHeaders(lambda e, s: [], **options)


def _handshake(
    app: Any, headers: list[tuple[bytes, bytes]], *, scheme: str = "ws", extension: bool = True
) -> list[dict[str, Any]]:
    """Drive ``app`` with a WebSocket handshake; what it sent."""
    import asyncio

    scope: dict[str, Any] = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": scheme,
        "path": "/ws",
        "raw_path": b"/ws",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"testserver"), *headers],
        "client": PROXY,
        "server": ("testserver", 80),
        "extensions": {"websocket.http.response": {}} if extension else {},
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_a_websocket_handshake_gets_the_forwarded_client_and_scheme() -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope))
        await send({"type": "websocket.accept"})

    headers = [(XFF, b"6.6.6.6, 198.51.100.7"), (XFP, b"https"), (XFH, b"public.example")]
    sent = _handshake(ProxyHeaders(app, x_host=1), headers)
    assert sent == [{"type": "websocket.accept"}]
    (scope,) = seen
    assert scope["client"] == ("198.51.100.7", 0)
    assert scope["scheme"] == "wss"
    assert scope["server"] == ("public.example", 443)
    assert (b"host", b"public.example") in scope["headers"]


@pytest.mark.parametrize("proxy_outside", [True, False])
def test_access_log_records_the_forwarded_client_in_either_order(
    proxy_outside: bool, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from middleware import AccessLog, Middleware, Stack

    log = Middleware(AccessLog, format="%(h)s %(r)s")
    proxy = Middleware(ProxyHeaders)
    stack = Stack([proxy, log] if proxy_outside else [log, proxy])
    request = PlainRequest(headers=[(XFF, b"6.6.6.6, 198.51.100.7"), (XFP, b"https")])
    with caplog.at_level(logging.INFO, logger="middleware.access"):
        results = run(stack, request)
    records = [r for r in caplog.records if r.name == "middleware.access"]
    assert [r.getMessage() for r in records] == ["198.51.100.7 GET / HTTP/1.1"] * len(results)
    assert {r.http["client"] for r in records} == {"198.51.100.7"}  # type: ignore[attr-defined]
    assert {r.http["scheme"] for r in records} == {"https"}  # type: ignore[attr-defined]


_TRUSTED_NET = "10.0.0.0/8"


@settings(max_examples=200, deadline=None)
@given(
    prepended=st.lists(st.sampled_from(["6.6.6.6", "10.9.9.9", "junk", "", "[::1]:1"]), max_size=4),
    chain=st.lists(
        st.sampled_from(["10.1.1.1", "10.2.2.2", "198.51.100.7", "203.0.113.5"]), max_size=4
    ),
    x_for=st.integers(min_value=1, max_value=6),
)
def test_the_client_is_never_taken_from_left_of_the_first_untrusted_hop(
    prepended: list[str], chain: list[str], x_for: int
) -> None:
    """Whatever a client prepends, the address chosen is the first untrusted entry from
    the right within x_for entries (else the x_for-th), as a plain model computes it."""
    entries = prepended + chain
    core = ProxyHeaders(lambda e, s: [], trusted_hosts=["127.0.0.1", _TRUSTED_NET], x_for=x_for)
    head = PlainHead("GET", "/", headers=[(XFF, ", ".join(entries).encode())], client=PROXY)
    core._core.on_request(head)

    def trusted(entry: str) -> bool:
        return entry.startswith("10.")

    expected = None
    if entries and len(entries) >= x_for:
        window = entries[::-1][:x_for]
        expected = next((e for e in window if not trusted(e)), window[-1])
    if expected in (None, "", "junk"):
        assert head.client == PROXY
    elif expected == "[::1]:1":
        assert head.client == ("::1", 1)
    else:
        assert head.client == (expected, 0)
    # Entries the client prepended count only where a trusted chain leads to them.
    if head.client != PROXY and head.client[0] in ("6.6.6.6",):
        assert all(trusted(e) for e in chain)
        assert len(chain) < x_for
