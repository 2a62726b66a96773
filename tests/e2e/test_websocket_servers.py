"""The WebSocket examples on real ASGI servers, talked to by a real WebSocket client.

``examples/flask_websocket.py`` and ``examples/django_websocket.py`` are served by
uvicorn, hypercorn, daphne and granian (each in its own process on 127.0.0.1); the
client is the ``websockets`` package: text, binary, a 1 MiB message, pings, a client
that vanishes mid-conversation, refusals, Flask's session and ``url_for``.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.servers import ROOT, asgi_server_argv, free_port, require_module, serve

pytestmark = pytest.mark.slow

SERVERS = ["uvicorn", "hypercorn", "daphne", "granian"]
APPS = {
    "flask": ("examples.flask_websocket:asgi", "/ws/echo"),
    "django": ("examples.django_websocket:application", "/ws/echo/"),
}
TIMEOUT = 20.0


def _argv(server: str, target: str, port: int) -> list[str]:
    argv = asgi_server_argv(server, target, port)
    # The shared matrix turns granian's WebSockets off; here they are the point.
    return [arg for arg in argv if arg != "--no-ws"]


@pytest.fixture(scope="module", params=[(s, a) for s in SERVERS for a in APPS], ids=str)
def served(request: pytest.FixtureRequest) -> Iterator[tuple[str, str, str]]:
    server, app = request.param
    require_module(server)
    port = free_port()
    with serve(_argv(server, APPS[app][0], port), port) as url:
        yield server, app, url.replace("http://", "ws://")


def _client(url: str, **kwargs: object) -> ClientConnection:
    return connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT, max_size=None, **kwargs)  # type: ignore[arg-type]


def _echo_url(served: tuple[str, str, str]) -> str:
    _, app, base = served
    return base + APPS[app][1]


def _closed_by_client(served: tuple[str, str, str]) -> list[int]:
    url = served[2].replace("ws://", "http://") + "/stats"
    with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
        codes: list[int] = json.load(response)["closed_by_client"]
        return codes


def test_text_and_binary_messages_echo_with_their_type(served: tuple[str, str, str]) -> None:
    messages: list[str | bytes] = ["hello", "héllo wörld ✓", b"\x00\x01\xff", b"", ""]
    if served[0] == "daphne":
        # daphne drops the empty messages an app sends (it tests the payload for truth)
        messages = [message for message in messages if message]
    with _client(_echo_url(served)) as ws:
        for message in messages:
            ws.send(message)
            assert ws.recv(TIMEOUT) == message
        if served[0] == "daphne":  # what the README says about daphne
            ws.send("")
            ws.send(b"")
            ws.send("after")
            assert ws.recv(TIMEOUT) == "after"


def test_a_1_mib_message_arrives_whole_both_ways(served: tuple[str, str, str]) -> None:
    big = bytes(range(256)) * 4096
    text = "x" * (1 << 20)
    with _client(_echo_url(served)) as ws:
        ws.send(big)
        assert ws.recv(TIMEOUT) == big
        ws.send(text)
        assert ws.recv(TIMEOUT) == text


def test_client_pings_are_answered_while_messages_flow(served: tuple[str, str, str]) -> None:
    with _client(_echo_url(served)) as ws:
        for index in range(5):
            pong = ws.ping(f"ping {index}")
            ws.send(f"message {index}")
            assert pong.wait(TIMEOUT)
            assert ws.recv(TIMEOUT) == f"message {index}"


def test_a_client_that_vanishes_mid_conversation_ends_the_handler(
    served: tuple[str, str, str],
) -> None:
    before = len(_closed_by_client(served))
    with _client(_echo_url(served)) as ws:
        ws.send("one")
        assert ws.recv(TIMEOUT) == "one"
        ws.send("two")  # still in flight when the socket goes
        ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the TCP connection just ends
        ws.socket.close()
    # An earlier test's clean close (1000) may still be recorded after ``before`` was
    # read (daphne reports it late): only codes other than 1000 are this test's.
    deadline = time.monotonic() + TIMEOUT
    ours = [code for code in _closed_by_client(served)[before:] if code != 1000]
    while not ours and time.monotonic() < deadline:
        time.sleep(0.05)
        ours = [code for code in _closed_by_client(served)[before:] if code != 1000]
    # Gone without a close frame: RFC 6455 says 1006; some servers report 1005 ("no
    # status received") instead. Exactly one such close: this connection's.
    assert len(ours) == 1, ours
    assert ours[0] in (1005, 1006)


def test_a_clean_close_from_the_client_is_seen_with_its_code(served: tuple[str, str, str]) -> None:
    before = len(_closed_by_client(served))
    with _client(_echo_url(served)) as ws:
        ws.send("hi")
        assert ws.recv(TIMEOUT) == "hi"
        ws.close(4321, "done here")
    deadline = time.monotonic() + TIMEOUT
    codes = _closed_by_client(served)
    while len(codes) == before and time.monotonic() < deadline:
        time.sleep(0.05)
        codes = _closed_by_client(served)
    # hypercorn 0.18 does not pass the client's code on: it reports 1006 for any close
    # the app did not start.
    assert codes[before:] == [1006 if served[0] == "hypercorn" else 4321]


def test_a_route_that_does_not_accept_refuses_the_handshake(served: tuple[str, str, str]) -> None:
    server = served[0]
    with pytest.raises(InvalidStatus) as refused:
        _client(served[2] + "/no/such/page")
    # Servers with the denial-response extension pass the app's 404 on; others say 403.
    status = refused.value.response.status_code
    assert status == (403 if server == "daphne" else 404), server


def test_flask_session_and_url_for_work_in_a_websocket_route(served: tuple[str, str, str]) -> None:
    server, app, base = served
    if app != "flask":
        pytest.skip("the session and url_for check is Flask's")
    http = base.replace("ws://", "http://")
    login = httpx.get(http + "/login", params={"user": "ada"}, timeout=TIMEOUT)
    # url_for from an HTTP page gives the ws:// URL of the WebSocket route
    assert login.text == f"logged in as ada; now open {base}/ws/chat/lobby"
    headers = {"Cookie": f"session={login.cookies['session']}"}
    with _client(base + "/ws/chat/lobby", additional_headers=headers) as ws:
        assert ws.recv(TIMEOUT) == f"hello ada, this is {base}/ws/chat/lobby"
        ws.send("shout")
        assert ws.recv(TIMEOUT) == "SHOUT"
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(TIMEOUT)
    assert closed.value.rcvd is not None
    reason = "" if server == "daphne" else "see you"  # daphne drops the close reason
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (1000, reason)


def test_the_subprotocol_the_app_chooses_reaches_the_client(served: tuple[str, str, str]) -> None:
    if served[1] != "flask":
        pytest.skip("the Flask example negotiates a subprotocol")
    with _client(_echo_url(served), subprotocols=["other", "echo.v1"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "echo.v1"


# --- both patterns next to a Flask app mounted in FastAPI ----------------------------


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn"])
def mounted(request: pytest.FixtureRequest) -> Iterator[str]:
    port = free_port()
    argv = asgi_server_argv(request.param, "examples.flask_in_fastapi_websockets:app", port)
    with serve(argv, port) as url:
        yield url


def _login(http: str, user: str) -> dict[str, str]:
    response = httpx.get(http + "/legacy/login", params={"user": user}, timeout=TIMEOUT)
    assert response.text == f"logged in as {user}"
    return {"Cookie": f"session={response.cookies['session']}"}


def test_a_flask_websocket_route_works_through_the_fastapi_mount(mounted: str) -> None:
    headers = _login(mounted, "ada")
    with _client(
        mounted.replace("http", "ws") + "/legacy/ws/echo", additional_headers=headers
    ) as ws:
        ws.send("hi")
        assert ws.recv(TIMEOUT) == "ada said: hi"


def test_a_fastapi_websocket_route_shares_flasks_session_cookie(mounted: str) -> None:
    headers = _login(mounted, "grace")
    with _client(mounted.replace("http", "ws") + "/ws/notes", additional_headers=headers) as ws:
        assert ws.recv(TIMEOUT) == "hello grace"
        ws.send("buy milk")
        assert ws.recv(TIMEOUT) == "noted for grace: buy milk"


def test_the_fastapi_route_refuses_a_client_without_a_flask_login(mounted: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        _client(mounted.replace("http", "ws") + "/ws/notes")
    assert refused.value.response.status_code == 403


# --- what the servers do on SIGTERM --------------------------------------------------


@pytest.mark.parametrize("server", SERVERS)
def test_on_sigterm_the_server_ends_open_connections(server: str) -> None:
    require_module(server)
    port = free_port()
    argv = _argv(server, APPS["flask"][0], port)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                ws = _client(f"ws://127.0.0.1:{port}/ws/echo")
                break
            except OSError:
                assert time.monotonic() < deadline, "server did not start"
                time.sleep(0.1)
        with ws:
            ws.send("hi")
            assert ws.recv(TIMEOUT) == "hi"
            os.killpg(proc.pid, signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(TIMEOUT)
        received = closed.value.rcvd
        if server == "uvicorn":
            # uvicorn closes them itself, before lifespan shutdown could
            assert received is not None
            assert received.code == 1012
        else:
            # the others drop the TCP connection without a close frame
            assert received is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(TIMEOUT)
