"""The deployment middleware through real servers: Flask on gunicorn gthread, FastAPI on
uvicorn, each behind one stack of ProxyHeaders, TrustedHost, HTTPSRedirect, RequestID and
SecurityHeaders, with AccessLog outermost.

The servers' own proxy-header handling is off (uvicorn ``--no-proxy-headers``, gunicorn
trusting another address), so what the app sees is our middleware's work. The test
client connects from 127.0.0.1: with ``TRUSTED=127.0.0.1`` it plays the proxy, with
``TRUSTED=192.0.2.1`` it is a stranger whose forwarded headers must count for nothing.
The apps are defined here and imported by the servers (``tests.e2e.<this module>``).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, WebSocket  # module level: FastAPI resolves annotations here
from websockets.sync.client import connect

from middleware import (
    AccessLog,
    HTTPSRedirect,
    Middleware,
    ProxyHeaders,
    RequestID,
    SecurityHeaders,
    Stack,
    TrustedHost,
)
from tests.servers import free_port, serve, wsgi_server_argv

pytestmark = pytest.mark.slow

MODULE = "tests.e2e.test_deployment_middleware_servers"
ALLOWED = ["public.example", "127.0.0.1"]
FORWARDED = {
    # A client-made entry first; the proxy appended the real peer on the right.
    "X-Forwarded-For": "6.6.6.6, 198.51.100.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "public.example",
    "X-Forwarded-Prefix": "/app",
}


def _stack() -> list[Middleware]:
    return [
        Middleware(AccessLog, format="access: %(h)s %(r)s %(s)s rid=%(request_id)s"),
        Middleware(
            ProxyHeaders,
            trusted_hosts=os.environ.get("TRUSTED", "127.0.0.1"),
            x_host=1,
            x_prefix=1,
        ),
        Middleware(TrustedHost, allowed_hosts=ALLOWED),
        Middleware(HTTPSRedirect),
        Middleware(RequestID),
        Middleware(SecurityHeaders),
    ]


def _log_to_stderr() -> None:
    logger = logging.getLogger("middleware.access")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


def make_flask_app() -> Any:
    from flask import Flask, jsonify, request, url_for

    _log_to_stderr()
    app = Flask(__name__)

    @app.get("/items/<int:item>")
    def item(item: int) -> Any:
        return jsonify(
            client=request.remote_addr,
            url=url_for("item", item=item, _external=True),
            request_id=request.environ["middleware.state"]["request_id"],
        )

    app.wsgi_app = Stack(_stack())(app.wsgi_app)  # type: ignore[method-assign]
    return app


def make_fastapi_app() -> Any:
    _log_to_stderr()
    app = FastAPI()

    @app.get("/items/{item}", name="item")
    def item(item: int, request: Request) -> dict[str, Any]:
        return {
            "client": request.client.host if request.client else None,
            "url": str(request.url_for("item", item=item)),
            "request_id": request.state.request_id,
        }

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        client = websocket.client.host if websocket.client else None
        await websocket.send_text(f"{client} {websocket.url}")
        await websocket.close()

    for entry in reversed(_stack()):  # add_middleware: the last added is outermost
        app.add_middleware(entry.cls, **entry.options)
    return app


def _argv(server: str, port: int) -> list[str]:
    if server == "gunicorn-gthread":
        argv = wsgi_server_argv(server, f"{MODULE}:make_flask_app()", port)
        # gunicorn would otherwise set the scheme itself from 127.0.0.1's headers.
        return [*argv[:-1], "--forwarded-allow-ips", "192.0.2.1", argv[-1]]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        f"{MODULE}:make_fastapi_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-proxy-headers",  # the app must see our ProxyHeaders' work, not uvicorn's
        # uvicorn's access log stays on: it formats scope["client"] with %d, so a
        # forwarded client without a port must still carry an int.
    ]


Server = tuple[str, Path]


def _start(server: str, trusted: str, tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    log = tmp_path / f"{server}.log"
    with serve(_argv(server, port), port, log=log, env={"TRUSTED": trusted}) as url:
        yield url, log


@pytest.fixture(params=["gunicorn-gthread", "uvicorn"])
def behind_proxy(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The test client is the trusted proxy."""
    yield from _start(request.param, "127.0.0.1", tmp_path)


@pytest.fixture(params=["gunicorn-gthread", "uvicorn"])
def stranger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Server]:
    """The test client is not a trusted proxy."""
    yield from _start(request.param, "192.0.2.1", tmp_path)


@pytest.fixture
def uvicorn_behind_proxy(tmp_path: Path) -> Iterator[Server]:
    yield from _start("uvicorn", "127.0.0.1", tmp_path)


def _wait_for(log: Path, pattern: re.Pattern[str]) -> str:
    # The record is written once the server has closed the response.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        text = log.read_text(errors="replace")
        if pattern.search(text):
            return text
        time.sleep(0.05)
    return log.read_text(errors="replace")


def test_the_app_builds_public_urls_from_the_trusted_proxy_s_headers(
    behind_proxy: Server,
) -> None:
    url, log = behind_proxy
    response = httpx.get(url + "/items/7", headers=FORWARDED, timeout=10)
    assert response.status_code == 200
    body = response.json()
    assert body["client"] == "198.51.100.7"  # not the prepended 6.6.6.6
    assert body["url"] == "https://public.example/app/items/7"
    request_id = response.headers["x-request-id"]
    assert re.fullmatch("[0-9a-f]{32}", request_id)
    assert body["request_id"] == request_id
    assert response.headers["strict-transport-security"] == "max-age=31536000"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    # AccessLog sits outside ProxyHeaders and still logs the forwarded client.
    line = re.compile(rf"access: 198\.51\.100\.7 GET /app/items/7 HTTP/1\.1 200 rid={request_id}")
    assert line.search(_wait_for(log, line))


def test_plain_http_is_redirected_to_https_and_unsafe_ids_are_replaced(
    behind_proxy: Server,
) -> None:
    url, _ = behind_proxy
    response = httpx.get(url + "/items/7?x=1", timeout=10)
    assert response.status_code == 308
    port = url.rsplit(":", 1)[1]
    assert response.headers["location"] == f"https://127.0.0.1:{port}/items/7?x=1"
    assert "strict-transport-security" not in response.headers  # not over http
    kept = httpx.get(url + "/items/7", headers={**FORWARDED, "X-Request-ID": "req-42"}, timeout=10)
    assert kept.headers["x-request-id"] == "req-42"
    assert kept.json()["request_id"] == "req-42"
    # Servers refuse control characters themselves; spaces, quotes and ";" reach us.
    unsafe = {**FORWARDED, "X-Request-ID": 'bad id"; x=1'}
    replaced = httpx.get(url + "/items/7", headers=unsafe, timeout=10)
    assert re.fullmatch("[0-9a-f]{32}", replaced.headers["x-request-id"])
    assert replaced.json()["request_id"] == replaced.headers["x-request-id"]


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example", "X-Forwarded-Proto": "https"},
        {**FORWARDED, "X-Forwarded-Host": "evil.example"},
        {**FORWARDED, "X-Forwarded-Host": "public.example.evil.example"},
    ],
    ids=["host", "forwarded-host", "suffix"],
)
def test_a_foreign_host_is_refused_before_the_app(
    behind_proxy: Server, headers: dict[str, str]
) -> None:
    url, _ = behind_proxy
    response = httpx.get(url + "/items/7", headers=headers, timeout=10)
    assert response.status_code == 400
    assert response.content == b"Invalid host header"


def test_a_stranger_s_forwarded_headers_count_for_nothing(stranger: Server) -> None:
    url, log = stranger
    spoofed = {**FORWARDED, "X-Forwarded-Host": "127.0.0.1"}
    response = httpx.get(url + "/items/7", headers=spoofed, timeout=10)
    # X-Forwarded-Proto: https from a stranger does not make the request https.
    assert response.status_code == 308
    port = url.rsplit(":", 1)[1]
    assert response.headers["location"] == f"https://127.0.0.1:{port}/items/7"
    # Neither does the client address change: the log shows the real peer.
    line = re.compile(r"access: 127\.0\.0\.1 GET /items/7 HTTP/1\.1 308 ")
    assert line.search(_wait_for(log, line))
    # A Host naming us is fine; one naming somebody else is refused all the same.
    evil = httpx.get(url + "/items/7", headers={"Host": "evil.example"}, timeout=10)
    assert evil.status_code == 400


def test_websocket_handshakes_go_through_the_same_defences(uvicorn_behind_proxy: Server) -> None:
    url, _ = uvicorn_behind_proxy
    ws_url = url.replace("http://", "ws://") + "/ws"
    headers = {k: v for k, v in FORWARDED.items() if k != "X-Forwarded-Prefix"}
    with connect(ws_url, additional_headers=headers, open_timeout=10) as socket:
        assert socket.recv(timeout=10) == "198.51.100.7 wss://public.example/ws"
    # The refusals, read as plain HTTP (a WebSocket client would follow the redirect).
    upgrade = {
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version": "13",
    }
    # Plain ws is sent to wss (308, through uvicorn's websocket.http.response).
    redirected = httpx.get(url + "/ws", headers=upgrade, timeout=10)
    port = url.rsplit(":", 1)[1]
    assert redirected.status_code == 308
    assert redirected.headers["location"] == f"wss://127.0.0.1:{port}/ws"
    # A foreign host is refused before the app.
    foreign = {**headers, **upgrade, "X-Forwarded-Host": "evil.example"}
    refused = httpx.get(url + "/ws", headers=foreign, timeout=10)
    assert refused.status_code == 400
    assert refused.content == b"Invalid host header"
