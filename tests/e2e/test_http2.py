"""WSGIToASGI behind ASGI servers speaking HTTP/2 (cleartext, prior knowledge).

The same app as ``test_wsgi_to_asgi_servers`` (a Flask app mounted in FastAPI), served
by hypercorn (which takes HTTP/2 on a plain socket when the client opens with the
HTTP/2 preface) and granian ``--http 2``; httpx speaks HTTP/2 only (``http1=False``),
so every exchange here is an HTTP/2 stream. What differs from HTTP/1.1 and is checked:
many streams share one connection, a request body has no chunked framing, and a
client that is done with a download resets its stream (RST_STREAM) while the
connection, and the other streams on it, carry on.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest

from tests.apps.flask_legacy import big_body
from tests.servers import asgi_server_argv, free_port, require_module, serve

pytestmark = pytest.mark.slow

APP = "tests.apps.flask_legacy:app"


def _argv(name: str, port: int) -> list[str]:
    if name == "granian":
        argv = asgi_server_argv(name, APP, port)
        return [*argv[:-1], "--http", "2", argv[-1]]
    return asgi_server_argv(name, APP, port)


@pytest.fixture(scope="module", params=["hypercorn", "granian"])
def base_url(request: pytest.FixtureRequest) -> Iterator[str]:
    name: str = request.param
    require_module(name)
    require_module("h2")
    port = free_port()
    with serve(_argv(name, port), port) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, http1=False, http2=True, timeout=10) as client:
        yield client


def test_a_flask_page_is_served_over_http2(client: httpx.Client) -> None:
    response = client.get("/legacy/hello")
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    assert response.text == "Hello from Flask!"


def test_many_streams_on_one_connection_each_get_their_own_answer(base_url: str) -> None:
    # A bare h2 client opens all 24 streams before reading any answer, so all of them are
    # in flight on one connection at once. (httpx's sync client sharing one HTTP/2
    # connection between threads is not used for this: httpcore allocates a stream id and
    # writes its HEADERS without a lock, so two threads can send stream 13 before 11,
    # which a server must answer with a PROTOCOL_ERROR GOAWAY.)
    names = [f"page-{i}" for i in range(24)]
    connection = _H2Connection(base_url)
    try:
        streams = [connection.get(f"/legacy/page/{name}") for name in names]
        connection.read_until(lambda: connection.ended.issuperset(streams))
        answers = [json.loads(connection.bodies[stream_id]) for stream_id in streams]
    finally:
        connection.close()
    assert [connection.statuses[stream_id] for stream_id in streams] == [200] * len(names)
    assert [answer["name"] for answer in answers] == names
    assert [answer["url"] for answer in answers] == [f"/legacy/page/{name}" for name in names]


def test_streamed_response_flushes_the_first_chunk_early(client: httpx.Client) -> None:
    arrivals: list[tuple[float, bytes]] = []
    began = time.monotonic()
    with client.stream("GET", "/legacy/stream") as response:
        assert response.http_version == "HTTP/2"
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic() - began, chunk))
    assert b"".join(chunk for _, chunk in arrivals) == b"first\nsecond\n"
    # The app sleeps 1 s between its two chunks: the first must not wait for it.
    assert arrivals[0][1] == b"first\n"
    assert arrivals[0][0] < 0.8
    assert arrivals[-1][0] >= 1.0


def test_large_download_arrives_intact(client: httpx.Client) -> None:
    size = 8 * 1024 * 1024 + 3
    digest = hashlib.sha256()
    received = 0
    with client.stream("GET", f"/legacy/big/{size}") as response:
        assert response.http_version == "HTTP/2"
        for chunk in response.iter_raw():
            digest.update(chunk)
            received += len(chunk)
    expected = hashlib.sha256(b"".join(big_body(size))).hexdigest()
    assert (received, digest.hexdigest()) == (size, expected)


def test_streamed_upload_without_length_arrives_intact(client: httpx.Client) -> None:
    parts = [bytes([i]) * (64 * 1024 + i) for i in range(16)]
    data = b"".join(parts)
    response = client.post("/legacy/upload", content=iter(parts))
    assert response.http_version == "HTTP/2"
    assert response.status_code == 200
    body = response.json()
    assert (body["length"], body["sha256"]) == (len(data), hashlib.sha256(data).hexdigest())


class _H2Connection:
    """A bare HTTP/2 client on one socket, for what httpx cannot do: reset a stream.

    (httpcore, under httpx, closes a response it stops reading without telling the
    server, so the server only sees its flow-control window run dry.)
    """

    def __init__(self, base_url: str) -> None:
        host, port = base_url.removeprefix("http://").split(":")
        self.authority = f"{host}:{port}"
        self.sock = socket.create_connection((host, int(port)), timeout=10)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.bodies: dict[int, bytearray] = {}
        self.ended: set[int] = set()
        self.statuses: dict[int, int] = {}
        self._flush()

    def _flush(self) -> None:
        self.sock.sendall(self.h2.data_to_send())

    def get(self, path: str) -> int:
        stream_id = self.h2.get_next_available_stream_id()
        headers = [
            (":method", "GET"),
            (":path", path),
            (":scheme", "http"),
            (":authority", self.authority),
        ]
        self.h2.send_headers(stream_id, headers, end_stream=True)
        self.bodies[stream_id] = bytearray()
        self._flush()
        return stream_id

    def read_until(self, done: Callable[[], bool]) -> None:
        while not done():
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the server closed the HTTP/2 connection")
            for event in self.h2.receive_data(data):
                if isinstance(event, h2.events.DataReceived):
                    if event.stream_id in self.bodies:
                        self.bodies[event.stream_id] += event.data
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                elif isinstance(event, h2.events.ResponseReceived):
                    self.statuses[event.stream_id] = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.StreamEnded):
                    self.ended.add(event.stream_id)
            self._flush()

    def fetch(self, path: str) -> bytes:
        stream_id = self.get(path)
        self.read_until(lambda: stream_id in self.ended)
        return bytes(self.bodies.pop(stream_id))

    def reset(self, stream_id: int) -> None:
        self.h2.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        self.bodies.pop(stream_id, None)
        self._flush()

    def close(self) -> None:
        self.h2.close_connection()
        self._flush()
        self.sock.close()


def test_a_reset_stream_stops_the_app_and_the_connection_carries_on(base_url: str) -> None:
    token = uuid.uuid4().hex
    connection = _H2Connection(base_url)
    try:
        stream_id = connection.get(f"/legacy/forever/{token}")
        connection.read_until(lambda: connection.bodies[stream_id].startswith(b"tick\n"))
        connection.reset(stream_id)
        # The same connection then asks how the app's generator ended.
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            state = json.loads(connection.fetch(f"/legacy/stats/{token}"))["state"]
            if state == "closed":
                break
            time.sleep(0.05)
        assert state == "closed"
        assert connection.fetch("/legacy/hello") == b"Hello from Flask!"
    finally:
        connection.close()
