"""``http.response.early_hint`` through ``ASGIToWSGI`` on gunicorn gthread, read raw.

The app sends a hint, then waits for the request body; the client holds the body back
until it has read the whole 103 off the socket, so the test passes only if the 103 goes
out while the app is still working, before the final response.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bridge import ASGIToWSGI
from bridge._types import Receive, Scope, Send
from tests.servers import free_port, require_module, serve, wsgi_server_argv

pytestmark = pytest.mark.slow

CSS = b"</style.css>; rel=preload; as=style"
JS = b"</app.js>; rel=preload; as=script"


async def _hinting(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    offered = "http.response.early_hint" in scope.get("extensions", {})
    await send({"type": "http.response.early_hint", "links": [CSS, JS]})
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    reply = body + (b" offered" if offered else b" not offered")
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(reply)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": reply})


application = ASGIToWSGI(_hinting, lifespan="off")
application_shared = ASGIToWSGI(_hinting, lifespan="off", loop_mode="shared")


@pytest.fixture(scope="module", params=["application", "application_shared"])
def gthread(request: pytest.FixtureRequest) -> Iterator[int]:
    require_module("gunicorn")
    port = free_port()
    target = f"tests.e2e.test_asgi_to_wsgi_early_hints_servers:{request.param}"
    with serve(wsgi_server_argv("gunicorn-gthread", target, port), port):
        yield port


def _read_until(sock: socket.socket, end: bytes, received: bytes = b"") -> bytes:
    while end not in received:
        data = sock.recv(65536)
        if not data:
            break
        received += data
    return received


def test_gunicorn_gthread_sends_the_103_before_the_app_answers(gthread: int) -> None:
    with socket.create_connection(("127.0.0.1", gthread), timeout=20) as sock:
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nConnection: close\r\n\r\n"
        )
        informational = _read_until(sock, b"\r\n\r\n")
        head, _, early = informational.partition(b"\r\n\r\n")
        assert head == (b"HTTP/1.1 103 Early Hints\r\nLink: " + CSS + b"\r\nLink: " + JS), (
            informational
        )
        assert early == b""  # nothing of the final response before the body was sent
        sock.sendall(b"data")
        rest = _read_until(sock, b"data offered")
        while data := sock.recv(65536):
            rest += data
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n"), rest
    assert b"\r\ncontent-length: 12\r\n" in rest
    assert rest.endswith(b"\r\n\r\ndata offered")


def test_an_http_1_0_client_gets_no_103(gthread: int) -> None:
    # gunicorn drops hints for HTTP/1.0 clients, which do not know 1xx responses.
    with socket.create_connection(("127.0.0.1", gthread), timeout=20) as sock:
        sock.sendall(b"POST / HTTP/1.0\r\nHost: t\r\nContent-Length: 4\r\n\r\ndata")
        received = _read_until(sock, b"data offered")
        while data := sock.recv(65536):
            received += data
    assert received.startswith(b"HTTP/1.0 200 OK\r\n"), received
    assert b" 103 " not in received
    assert received.endswith(b"\r\n\r\ndata offered")
