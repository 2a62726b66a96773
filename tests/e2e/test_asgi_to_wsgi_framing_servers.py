"""``ASGIToWSGI`` framing on real WSGI servers, read byte for byte from a raw socket.

WSGI servers write what the app yields after the head it chose, so a body the server
should have dropped (``HEAD``, 204, 304) or a body that does not match Content-Length
becomes the next response on a keep-alive connection. Each test pipelines a second
request (``GET /ok``) on the same connection and parses everything the server sends
with h11, which enforces HTTP/1.1 framing the way a client or proxy would.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import h11
import pytest

from tests.servers import free_port, require_module, serve, wsgi_server_argv

pytestmark = pytest.mark.slow

SERVERS = ["gunicorn-gthread", "waitress", "uwsgi", "wsgiref"]
MODES = ["application", "application_shared"]


def framing_server_argv(name: str, target: str, port: int) -> list[str]:
    if name == "uwsgi":
        return [
            str(Path(sys.executable).with_name("uwsgi")),
            "--http11-socket",
            f"127.0.0.1:{port}",
            "--home",
            sys.prefix,
            "--threads",
            "4",
            "--module",
            target,
            "--need-app",
            "--die-on-term",
            "--disable-logging",
        ]
    return wsgi_server_argv(name, target, port)


def start_server(name: str, attr: str, env: dict[str, str] | None = None) -> Iterator[str]:
    if name == "uwsgi":
        if not Path(sys.executable).with_name("uwsgi").exists():
            pytest.skip("uwsgi is not installed on this machine")
    else:
        require_module("gunicorn" if name.startswith("gunicorn") else name)
    port = free_port()
    argv = framing_server_argv(name, f"tests.apps.framing_apps:{attr}", port)
    with serve(argv, port, env=env) as url:
        yield url


@pytest.fixture(
    scope="module",
    params=[(s, m) for s in SERVERS for m in MODES],
    ids=[f"{s}-{m}" for s in SERVERS for m in MODES],
)
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    name, attr = request.param
    for url in start_server(name, attr):
        SERVER_NAMES[url] = name
        yield url


SERVER_NAMES: dict[str, str] = {}  # url -> server name, for the server-specific checks


@dataclass
class Answer:
    status: int
    headers: dict[bytes, bytes]
    body: bytes = b""
    complete: bool = False


@dataclass
class Conversation:
    answers: list[Answer] = field(default_factory=list)
    error: str = ""  # how h11 found the stream broken (after the answers), if it did
    raw: bytes = b""
    server: str = ""


def _request(method: str, target: str, *, close: bool = False) -> tuple[h11.Request, bytes]:
    headers = [("Host", "127.0.0.1")] + ([("Connection", "close")] if close else [])
    event = h11.Request(method=method, target=target, headers=headers)
    data = h11.Connection(h11.CLIENT).send(event) or b""
    return event, data


def pipeline(url: str, method: str, target: str, *, timeout: float = 20.0) -> Conversation:
    """Send ``method target`` and ``GET /ok`` back to back on one connection, read until
    the server closes it, and parse what came back."""
    first, first_bytes = _request(method, target)
    second, second_bytes = _request("GET", "/ok", close=True)
    host, port = url.removeprefix("http://").split(":")
    raw = b""
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(first_bytes + second_bytes)
        try:
            while chunk := sock.recv(65536):
                raw += chunk
        except ConnectionResetError:
            pass  # an aborted connection: what was read so far is what counts
    conversation = parse(raw, [first, second])
    conversation.server = SERVER_NAMES.get(url, "")
    return conversation


def parse(raw: bytes, requests: list[h11.Request]) -> Conversation:
    conversation = Conversation(raw=raw)
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(raw)
    conn.receive_data(b"")  # EOF
    try:
        for request in requests:
            conn.send(request)
            conn.send(h11.EndOfMessage())
            answer: Answer | None = None
            while True:
                event = conn.next_event()
                if isinstance(event, h11.Response):
                    answer = Answer(event.status_code, dict(event.headers))
                    conversation.answers.append(answer)
                elif isinstance(event, h11.Data) and answer is not None:
                    answer.body += event.data
                elif isinstance(event, h11.EndOfMessage) and answer is not None:
                    answer.complete = True
                    break
                elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                    conversation.error = "connection closed"
                    return conversation
            if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                return conversation
            conn.start_next_cycle()
    except h11.RemoteProtocolError as exc:
        conversation.error = str(exc)
    return conversation


def assert_refused(conversation: Conversation) -> None:
    """The first request was refused before its head went out: the server answered 500
    (gunicorn, waitress, wsgiref) or, as uWSGI does for any WSGI app that raises,
    closed the connection without a response."""
    if conversation.server == "uwsgi":
        assert conversation.raw == b""
    else:
        assert conversation.answers[0].status == 500
        assert_only_ok_follows(conversation)


def assert_only_ok_follows(conversation: Conversation) -> None:
    """After the first answer: the pipelined ``GET /ok`` answered properly, or nothing."""
    rest = conversation.answers[1:]
    assert all(a.status == 200 and a.body == b"ok" and a.complete for a in rest), conversation
    assert len(rest) <= 1


INJECTED = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\nSet-Cookie: session=attacker\r\n\r\nINJECTED"


def test_head_to_a_starlette_route_cannot_inject_a_response(server: str) -> None:
    conversation = pipeline(server, "HEAD", "/echo?q=" + quote(INJECTED))
    first = conversation.answers[0]
    assert first.status == 200
    assert first.headers[b"content-length"] == str(len(INJECTED)).encode()
    assert (first.body, first.complete) == (b"", True)
    # The next thing on the connection is the answer to GET /ok, or its end (wsgiref
    # speaks HTTP/1.0; uWSGI closes after a HEAD).
    assert_only_ok_follows(conversation)
    assert b"INJECTED" not in conversation.raw
    assert b"attacker" not in conversation.raw


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_status_sends_no_body(server: str, status: int) -> None:
    conversation = pipeline(server, "GET", f"/status/{status}")
    first = conversation.answers[0]
    assert (first.status, first.headers[b"x-framing"], first.body) == (status, b"test", b"")
    # waitress closes the connection after a response without Content-Length; the
    # others answer the pipelined request.
    assert_only_ok_follows(conversation)
    assert b"SMUGGLED" not in conversation.raw


@pytest.mark.parametrize(
    "target",
    ["/length/%2B5/hello", "/length/-1/x", "/length/5,%206/hello", "/int-body"],
    ids=["plus-sign", "negative", "list", "int-body"],
)
def test_invalid_framing_before_the_head_is_a_500_and_nothing_of_the_body(
    server: str, target: str
) -> None:
    conversation = pipeline(server, "GET", target)
    assert_refused(conversation)
    assert len(conversation.raw) < 5000  # never 50 MB of NUL bytes
    assert b"hello" not in conversation.raw


@pytest.mark.parametrize(
    ("target", "declared", "prefix"),
    [
        ("/length/10/12345,678", 10, b"12345678"),
        ("/length/6/1234,5678", 6, b"1234"),
        ("/length/3/abcdef", 3, b""),
    ],
    ids=["short", "long-streamed", "long-at-once"],
)
def test_body_not_matching_content_length_never_desyncs_the_connection(
    server: str, target: str, declared: int, prefix: bytes
) -> None:
    conversation = pipeline(server, "GET", target)
    if not conversation.answers or conversation.answers[0].status == 500:
        assert_refused(conversation)  # refused before the head went out
    else:
        first = conversation.answers[0]
        # The head went out: the server aborted the connection after at most the
        # declared bytes, so the client sees a truncated body and nothing after it.
        assert first.status == 200
        assert first.headers[b"content-length"] == str(declared).encode()
        assert not first.complete
        assert first.body == prefix[: len(first.body)]
        assert len(conversation.answers) == 1, conversation
        assert conversation.error
    assert b"5678" not in conversation.raw or declared == 10
    assert b"def" not in conversation.raw
