"""Early hints and the client-left signal of WSGIToASGI on real ASGI servers.

``tests.apps.signal_apps:app`` runs in its own server process on 127.0.0.1:

- the disconnect signal on uvicorn and hypercorn (asyncio and trio): a raw socket
  client asks for a 10-second view and hangs up; the view, polling
  ``environ["bridge.disconnected"]``, must stop early and its callback run once;
- early hints on hypercorn (asyncio and trio), which offers ``http.response.early_hint``
  over HTTP/2: an ``h2`` client on a raw socket must read two ``103`` responses with
  the app's Link values before the ``200``; over HTTP/1.1 hypercorn offers no
  extension and the app sees no ``wsgi.early_hints``.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.apps.signal_apps import HINT_PAUSE, SCRIPT, SLOW_BUDGET, STYLE
from tests.servers import asgi_server_argv, free_port, require_module, serve

pytestmark = pytest.mark.slow

APP = "tests.apps.signal_apps:app"


class Running:
    def __init__(self, url: str, reports: Path) -> None:
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)
        self.reports = reports


def _start(name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    require_module("hypercorn" if name.startswith("hypercorn") else name)
    if name == "hypercorn-trio":
        require_module("trio")
    reports = tmp_path_factory.mktemp(f"signal-{name}")
    port = free_port()
    argv = asgi_server_argv(name, APP, port)
    with serve(argv, port, env={"BRIDGE_SIGNAL_DIR": str(reports)}) as url:
        yield Running(url, reports)


@pytest.fixture(scope="module", params=["uvicorn", "hypercorn", "hypercorn-trio"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    yield from _start(request.param, tmp_path_factory)


def _wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} did not appear in {timeout}s"
        time.sleep(0.02)


def _outcome(server: Running, token: str, timeout: float) -> Any:
    path = server.reports / f"{token}.json"
    _wait_for(path, timeout)
    return json.loads(path.read_text())


# --- the client-left signal -------------------------------------------------------------


def test_a_slow_view_stops_early_when_its_client_hangs_up(server: Running) -> None:
    token = uuid.uuid4().hex
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(f"GET /slow/{token} HTTP/1.1\r\nHost: test\r\n\r\n".encode())
        _wait_for(server.reports / f"{token}.started", 10)
        time.sleep(0.2)
    hung_up = time.monotonic()
    outcome = _outcome(server, token, SLOW_BUDGET)
    noticed_after = time.monotonic() - hung_up
    assert outcome["stopped_early"] is True
    assert outcome["elapsed"] < SLOW_BUDGET / 2
    assert noticed_after < SLOW_BUDGET / 2
    time.sleep(0.3)  # a second run of the callback would show by now
    assert (server.reports / f"{token}.callback").read_text() == "fired\n"


def test_a_client_that_stays_gets_the_whole_answer_and_no_callback(server: Running) -> None:
    token = uuid.uuid4().hex
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        request = f"GET /slow/{token}?budget=0.3 HTTP/1.1\r\nHost: test\r\nConnection: close"
        sock.sendall(f"{request}\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert data.endswith(b"\r\n\r\nfinished")
    assert _outcome(server, token, 5)["stopped_early"] is False
    time.sleep(0.3)
    assert not (server.reports / f"{token}.callback").exists()


# --- early hints ------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["hypercorn", "hypercorn-trio"])
def hypercorn(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    require_module("h2")
    yield from _start(request.param, tmp_path_factory)


def _h2_get(server: Running, path: str) -> list[tuple[float, str, Any]]:
    """``GET path`` over HTTP/2 (prior knowledge): ``(arrival, kind, payload)`` in order."""
    import h2.config
    import h2.connection
    import h2.events

    events: list[tuple[float, str, Any]] = []
    connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        connection.initiate_connection()
        stream = connection.get_next_available_stream_id()
        connection.send_headers(
            stream,
            [
                (":method", "GET"),
                (":path", path),
                (":scheme", "http"),
                (":authority", f"{server.host}:{server.port}"),
            ],
            end_stream=True,
        )
        sock.sendall(connection.data_to_send())
        ended = False
        while not ended:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the HTTP/2 connection")
            now = time.monotonic()
            for event in connection.receive_data(data):
                if getattr(event, "stream_id", stream) != stream:
                    continue
                if isinstance(event, h2.events.InformationalResponseReceived):
                    events.append((now, "informational", _decoded(event.headers)))
                elif isinstance(event, h2.events.ResponseReceived):
                    events.append((now, "response", _decoded(event.headers)))
                elif isinstance(event, h2.events.DataReceived):
                    events.append((now, "data", event.data))
                    connection.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            sock.sendall(connection.data_to_send())
        connection.close_connection()
        sock.sendall(connection.data_to_send())
    return events


def _decoded(headers: Any) -> list[tuple[str, str]]:
    return [
        (
            name.decode() if isinstance(name, bytes) else name,
            value.decode() if isinstance(value, bytes) else value,
        )
        for name, value in headers
    ]


def test_early_hints_reach_an_http2_client_as_103s_before_the_page(hypercorn: Running) -> None:
    events = _h2_get(hypercorn, "/hints")
    kinds = [kind for _, kind, _ in events]
    assert kinds[:3] == ["informational", "informational", "response"]
    first, second, response = (payload for _, _, payload in events[:3])
    # hypercorn adds its own date and server headers; the app's part is the Link value.
    assert [(n, v) for n, v in first if n in (":status", "link")] == [
        (":status", "103"),
        ("link", STYLE),
    ]
    # Only the Link value of a hint is carried: the other header is not sent.
    assert [(n, v) for n, v in second if n in (":status", "link")] == [
        (":status", "103"),
        ("link", SCRIPT),
    ]
    assert "x-not-a-link" not in dict(second)
    assert dict(response)[":status"] == "200"
    assert b"".join(payload for _, kind, payload in events if kind == "data") == b"hinted"
    # The hints went out while the app was still working, not with its page.
    assert events[2][0] - events[0][0] >= HINT_PAUSE / 2


def test_over_http1_hypercorn_offers_no_hints_and_the_app_sees_none(hypercorn: Running) -> None:
    with socket.create_connection((hypercorn.host, hypercorn.port), timeout=10) as sock:
        sock.sendall(b"GET /hints HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert b" 103 " not in data
    assert data.endswith(b"\r\n\r\nno hints offered")
