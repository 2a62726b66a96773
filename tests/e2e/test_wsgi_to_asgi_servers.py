"""WSGIToASGI behind real ASGI servers (uvicorn, hypercorn, granian, daphne).

Each server runs ``tests.apps.flask_legacy:app`` (FastAPI with a real Flask app mounted
at ``/legacy`` and a bare PEP 3333 app at ``/raw``, ``/limited`` and ``/tiny``, all through
``WSGIToASGI``) in its own process on 127.0.0.1, once per module; httpx (or a raw socket,
where the exact bytes on the wire matter) is the client.

A server that is not installed is skipped with the reason; one that is installed but
does not start is an error. Where a server itself cannot show a behaviour, that test
is skipped for it with the reason (never passed silently).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import random
import select
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from werkzeug.exceptions import InternalServerError, NotFound

from tests.apps.flask_legacy import RAW_MAX_BODY, SLOW, TINY_RETRY_AFTER, big_body
from tests.servers import asgi_server_argv, free_port, require_module, serve

pytestmark = pytest.mark.slow

SERVERS = ["uvicorn", "hypercorn", "granian", "daphne"]
APP = "tests.apps.flask_legacy:app"
#: Servers that advertise ``http.response.pathsend`` (the adapter then sends files by path).
PATHSEND_SERVERS = {"granian"}


class Server:
    def __init__(self, name: str, url: str) -> None:
        self.name = name
        self.url = url
        self.host, port = url.removeprefix("http://").split(":")
        self.port = int(port)


@pytest.fixture(scope="module", params=SERVERS)
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    name: str = request.param
    require_module(name)
    port = free_port()
    with serve(asgi_server_argv(name, APP, port), port) as url:
        yield Server(name, url)


@pytest.fixture
def client(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def raw_exchange(server: Server, path: str) -> bytes:
    """Everything the server sends back for ``GET path`` on a fresh connection."""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


def stream_state(client: httpx.Client, token: str) -> Any:
    return client.get(f"/legacy/stats/{token}").json()["state"]


def wait_for_state(client: httpx.Client, token: str, wanted: object, timeout: float = 3.0) -> Any:
    """Poll ``/legacy/stats/<token>`` until it reads ``wanted`` or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while (state := stream_state(client, token)) != wanted and time.monotonic() < deadline:
        time.sleep(0.02)
    return state


# --- routing: the mount, its boundary, FastAPI next to it --------------------------------


def test_flask_page_is_served_under_the_mount(client: httpx.Client) -> None:
    response = client.get("/legacy/hello")
    assert response.status_code == 200
    assert response.text == "Hello from Flask!"
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["content-length"] == "17"


def test_url_for_links_carry_the_mount_prefix(client: httpx.Client) -> None:
    response = client.get("/legacy/links")
    assert response.text == (
        '<a href="/legacy/hello">hello</a>\n<form action="/legacy/echo/form" method="post"></form>'
    )


def test_flask_sees_the_mount_as_script_name(client: httpx.Client, server: Server) -> None:
    info = client.get("/legacy/whoami").json()
    assert (info["script_name"], info["path_info"]) == ("/legacy", "/whoami")
    assert info["external_url"] == f"{server.url}/legacy/hello"


def test_mount_root_with_a_slash_reaches_the_flask_index(client: httpx.Client) -> None:
    response = client.get("/legacy/")
    assert response.status_code == 200
    assert response.text == "Flask index"


@pytest.mark.parametrize("path", ["/legacyfoo", "/legacyfoo/hello", "/legacy-x/hello"])
def test_prefix_without_a_segment_boundary_is_fastapis_404(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"detail": "Not Found"}


def test_fastapi_routes_work_next_to_the_mount(client: httpx.Client) -> None:
    assert client.get("/").json() == {"legacy": "/legacy/"}
    assert client.get("/api/status").json() == {"ok": True}


# --- request bodies ------------------------------------------------------------------------


def test_urlencoded_form_is_parsed_by_flask(client: httpx.Client) -> None:
    response = client.post("/legacy/echo/form", data={"name": "Zoë", "colour": "blue & green"})
    assert response.status_code == 200
    assert response.json() == {
        "form": {"name": "Zoë", "colour": "blue & green"},
        "content_type": "application/x-www-form-urlencoded",
    }


def test_json_body_is_parsed_by_flask(client: httpx.Client) -> None:
    payload = {"items": [1, 2.5, None], "text": "café ☕", "nested": {"ok": True}}
    response = client.post("/legacy/echo/json", json=payload)
    assert response.status_code == 200
    assert response.json() == payload


def test_non_ascii_path_and_query_reach_flask_decoded(client: httpx.Client) -> None:
    response = client.get("/legacy/page/caf%C3%A9", params={"q": "été"})
    assert response.json() == {
        "name": "café",
        "url": "/legacy/page/caf%C3%A9",
        "args": {"q": "été"},
    }


def test_latin1_request_header_and_repeated_cookies_reach_flask(client: httpx.Client) -> None:
    headers = [(b"X-Name", b"caf\xe9"), (b"Cookie", b"a=1"), (b"Cookie", b"b=2")]
    response = client.get("/legacy/echo/headers", headers=headers)
    assert response.json() == {"name": "café", "cookie": "a=1; b=2"}


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_body_over_max_body_size_gets_413(client: httpx.Client, chunked: bool) -> None:
    body = b"x" * (RAW_MAX_BODY + 1)
    # A declared length is refused before the app runs; a chunked one when it is read.
    content = iter([body[:600], body[600:]]) if chunked else body
    response = client.post("/limited/read", content=content)
    assert response.status_code == 413
    assert response.text == "Request body too large"


def test_body_of_exactly_max_body_size_is_read(client: httpx.Client) -> None:
    response = client.post("/limited/read", content=b"x" * RAW_MAX_BODY)
    assert response.status_code == 200
    assert response.text == str(RAW_MAX_BODY)


@pytest.mark.parametrize("path", ["/raw/read", "/legacy/upload"])
def test_expect_100_continue_is_answered_when_the_app_reads(server: Server, path: str) -> None:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Length: 10\r\n"
        "Expect: 100-continue\r\nConnection: close\r\n\r\n"
    )
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        sock.sendall(head.encode())
        interim = sock.recv(65536)  # the client waits for the go-ahead before its body
        sock.sendall(b"0123456789")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert interim.startswith(b"HTTP/1.1 100")
    assert data.split(b"\r\n")[0].split(b" ")[:2] == [b"HTTP/1.1", b"200"]
    if path == "/raw/read":
        assert data.endswith(b"10") or data.endswith(b"2\r\n10\r\n0\r\n\r\n")
    else:
        assert b'"length":10' in data


def test_chunked_upload_of_several_megabytes_is_read_fully(client: httpx.Client) -> None:
    body = random.Random(3333).randbytes(4 * 1024 * 1024 + 123)
    chunk = 64 * 1024

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), chunk):
            yield body[start : start + chunk]

    response = client.post("/legacy/upload", content=chunks())
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.request.headers
    assert response.json() == {
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "transfer_encoding": "chunked",
    }


# --- streaming responses ---------------------------------------------------------------------


def test_streamed_response_flushes_the_first_chunk_before_the_generator_ends(
    client: httpx.Client,
) -> None:
    arrivals: list[tuple[float, bytes]] = []
    began = time.monotonic()
    with client.stream("GET", "/legacy/stream") as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            arrivals.append((time.monotonic() - began, chunk))
    assert b"".join(chunk for _, chunk in arrivals) == b"first\nsecond\n"
    # The generator sleeps 1 s between its chunks: the first must not wait for it.
    assert arrivals[0][1] == b"first\n"
    assert arrivals[0][0] < 0.8
    assert arrivals[-1][0] >= 1.0


def test_client_leaving_mid_stream_closes_the_apps_generator(server: Server) -> None:
    token = uuid.uuid4().hex
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", f"/legacy/forever/{token}") as response:
            assert next(response.iter_raw()).startswith(b"tick\n")
        # Leaving the block closed the stream's connection mid-body.
        assert wait_for_state(client, token, "closed") == "closed"


def test_client_leaving_a_stream_whose_request_body_was_not_read_to_its_end_closes_it(
    server: Server,
) -> None:
    unread, exact = uuid.uuid4().hex, uuid.uuid4().hex
    with httpx.Client(base_url=server.url, timeout=10) as client:
        # Regression (fixed in 6a137c1): the watcher waited for the body to be complete.
        # The app never reads this body; every server delivers 1 MB in several messages.
        with client.stream("POST", f"/raw/forever/{unread}", content=b"x" * 1_000_000) as r:
            assert next(r.iter_raw()).startswith(b"tick\n")
        # The app reads exactly Content-Length bytes (as Django does); hypercorn and
        # granian still owe it a last, empty http.request message.
        with client.stream("POST", f"/raw/read-then-forever/{exact}", content=b"0123456789") as r:
            assert next(r.iter_raw()).startswith(b"tick\n")
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            states = {"unread": stream_state(client, unread), "exact": stream_state(client, exact)}
            if states == {"unread": "closed", "exact": "closed"}:
                break
            time.sleep(0.05)
    assert states == {"unread": "closed", "exact": "closed"}


@pytest.mark.parametrize("path", ["/raw/short", "/legacy/fail-mid-stream"])
def test_response_failing_after_its_head_is_cut_off_not_completed(
    server: Server, client: httpx.Client, path: str
) -> None:
    if server.name == "daphne":
        pytest.skip(
            "daphne leaves the connection open when an ASGI app raises after "
            "http.response.start (its handle_exception tries a second start and fails), "
            "so the client only sees a read timeout"
        )
    # Completing the body would make a broken response look whole; the server must
    # close the connection instead, which the client reports as a protocol error.
    with pytest.raises(httpx.RemoteProtocolError, match=r"incomplete chunked read|expected 10"):
        client.get(path)
    data = raw_exchange(server, path)
    assert data.split(b"\r\n")[0].split(b" ")[:2] == [b"HTTP/1.1", b"200"]
    assert data.endswith(b"\r\n\r\n01234") or data.endswith(b"8\r\npartial\n\r\n")


def test_client_leaving_a_stream_held_by_backpressure_closes_it(server: Server) -> None:
    token = uuid.uuid4().hex
    with httpx.Client(base_url=server.url, timeout=10) as client:
        with client.stream("GET", f"/raw/flood/{token}") as response:
            chunks = response.iter_raw()  # kept: dropping it would close the response
            assert next(chunks).startswith(b"fff")
            # Stop reading: socket buffers fill, the server's send() waits for the
            # client and the app's thread waits for the adapter to take more.
            time.sleep(0.5)
            assert stream_state(client, token) == "running"
        assert wait_for_state(client, token, "closed") == "closed"


#: What a server may accept of an upload nobody reads: the adapter's stash (1 MiB),
#: the server's own buffer, and the kernel's socket buffers (tcp_rmem goes to 32 MB).
UNREAD_UPLOAD_BOUND = 64 * 1024 * 1024


def test_upload_nobody_reads_is_not_buffered_without_bound(server: Server) -> None:
    if server.name != "uvicorn":
        pytest.skip(
            "needs a server that stops reading when the app stops receiving and reads "
            "fast enough to tell the bound from kernel buffers in 3 s: daphne buffers "
            "every request body itself; hypercorn and granian are too slow here"
        )
    token = uuid.uuid4().hex
    block = b"10000\r\n" + b"u" * 0x10000 + b"\r\n"  # one 64 KiB chunk, chunked coding
    accepted = 0
    response = b""
    with socket.create_connection((server.host, server.port), timeout=10) as sock:
        head = f"POST /raw/flood/{token} HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked"
        sock.sendall(head.encode() + b"\r\n\r\n")
        sock.setblocking(False)
        pending = memoryview(block)
        deadline = time.monotonic() + 3.0
        # Read the response as it comes (so the app streams on) and upload all the while.
        while time.monotonic() < deadline and accepted < UNREAD_UPLOAD_BOUND:
            readable, writable, _ = select.select([sock], [sock], [], 0.05)
            if readable:
                data = sock.recv(1 << 20)
                if not data:
                    break
                response = response or data
            if writable:
                with contextlib.suppress(BlockingIOError):
                    sent = sock.send(pending)
                    accepted += sent
                    pending = pending[sent:] or memoryview(block)
    assert response.startswith(b"HTTP/1.1 200 OK\r\n")  # the app did stream
    assert accepted < UNREAD_UPLOAD_BOUND


def test_head_of_an_endless_stream_answers_and_closes_the_iterable(client: httpx.Client) -> None:
    token = uuid.uuid4().hex
    response = client.head(f"/raw/forever/{token}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain"
    assert response.content == b""
    # The adapter stops the app after its first chunk: the server sends no body anyway.
    assert wait_for_state(client, token, "closed") == "closed"


def test_large_streamed_response_arrives_intact(client: httpx.Client) -> None:
    size = 8 * 1024 * 1024 + 5
    digest = hashlib.sha256()
    received = 0
    with client.stream("GET", f"/legacy/big/{size}") as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            digest.update(chunk)
            received += len(chunk)
    assert received == size
    assert digest.digest() == hashlib.sha256(b"".join(big_body(size))).digest()


# --- errors --------------------------------------------------------------------------------


def test_unknown_flask_route_is_flasks_404_page(client: httpx.Client) -> None:
    response = client.get("/legacy/no/such/page")
    assert response.status_code == 404
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == NotFound().get_body()


def test_failing_flask_view_is_flasks_500_page(client: httpx.Client) -> None:
    response = client.get("/legacy/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.text == InternalServerError().get_body()


def test_wsgi_app_raising_before_start_response_gets_the_adapters_500(
    client: httpx.Client,
) -> None:
    response = client.get("/raw/crash")
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.text == "Internal Server Error"


def test_header_with_cr_lf_is_a_500_and_never_reaches_the_wire(server: Server) -> None:
    data = raw_exchange(server, "/raw/crlf")
    head, _, body = data.partition(b"\r\n\r\n")
    # The reason phrase is each server's choice (h11 sends none): compare the code only.
    assert head.split(b"\r\n")[0].split(b" ")[:2] == [b"HTTP/1.1", b"500"]
    assert b"x-split" not in head.lower()
    assert b"x-injected" not in head.lower()
    assert b"must not be sent" not in data
    assert body.endswith(b"Internal Server Error")


# --- response heads and lengths -----------------------------------------------------------------


def test_repeated_set_cookie_headers_are_kept_apart(client: httpx.Client) -> None:
    response = client.get("/legacy/headers")
    assert response.headers.get_list("set-cookie") == ["first=1; Path=/", "second=2; Path=/"]
    assert dict(response.cookies) == {"first": "1", "second": "2"}


def test_latin1_header_value_goes_out_as_latin1_bytes(client: httpx.Client) -> None:
    response = client.get("/legacy/headers")
    raw = [(name.lower(), value) for name, value in response.headers.raw]
    assert (b"x-menu", b"caf\xe9 cr\xe8me") in raw


def test_body_beyond_content_length_is_cut_and_the_connection_stays_usable(
    client: httpx.Client,
) -> None:
    port = client.get("/legacy/whoami").json()["remote_port"]
    response = client.get("/raw/overlong")
    assert response.status_code == 200
    assert response.headers["content-length"] == "5"
    assert response.content == b"01234"
    # The dropped bytes were never written: the next response on the connection is intact.
    again = client.get("/legacy/whoami").json()
    assert again["remote_port"] == port
    assert again["path_info"] == "/whoami"


def test_several_requests_share_one_keep_alive_connection(server: Server) -> None:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    with httpx.Client(base_url=server.url, timeout=10, limits=limits) as client:
        ports = [client.get("/legacy/whoami").json()["remote_port"]]
        assert client.get("/legacy/hello").text == "Hello from Flask!"
        assert client.post("/legacy/echo/json", json=[1]).json() == [1]
        assert client.get("/legacy/missing").status_code == 404
        assert client.get("/api/status").json() == {"ok": True}
        ports.append(client.get("/legacy/whoami").json()["remote_port"])
    assert ports[0] is not None
    assert ports == [ports[0]] * 2


# --- files: pathsend where the server offers it, Python reads elsewhere ---------------------


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "payload.bin"
    path.write_bytes(random.Random(20).randbytes(3 * 1024 * 1024 + 7))
    return path


def test_server_advertises_pathsend_as_expected(client: httpx.Client, server: Server) -> None:
    extensions = client.get("/legacy/whoami").json()["extensions"]
    assert ("http.response.pathsend" in extensions) == (server.name in PATHSEND_SERVERS)


def test_file_wrapper_response_arrives_byte_identical(
    client: httpx.Client, server: Server, payload: Path
) -> None:
    token = uuid.uuid4().hex
    response = client.get(f"/legacy/download/{token}", params={"path": str(payload)})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == str(payload.stat().st_size)
    assert (
        hashlib.sha256(response.content).digest() == hashlib.sha256(payload.read_bytes()).digest()
    )
    # With pathsend the server reads the file by path and Python reads nothing from it;
    # elsewhere the adapter streams it through Python block by block.
    read_by_python = 0 if server.name in PATHSEND_SERVERS else payload.stat().st_size
    assert wait_for_state(client, token, read_by_python) == read_by_python


def test_send_file_by_path_arrives_byte_identical(client: httpx.Client, payload: Path) -> None:
    response = client.get("/legacy/file", params={"path": str(payload)})
    assert response.status_code == 200
    assert response.headers["content-length"] == str(payload.stat().st_size)
    assert response.headers["accept-ranges"] == "bytes"
    assert response.content == payload.read_bytes()


def test_range_of_a_send_file_response_is_exact(client: httpx.Client, payload: Path) -> None:
    # werkzeug wraps the file wrapper for a range, so the bytes go through Python.
    size = payload.stat().st_size
    response = client.get(
        "/legacy/file", params={"path": str(payload)}, headers={"Range": "bytes=1000-1999"}
    )
    assert response.status_code == 206
    assert response.headers["content-range"] == f"bytes 1000-1999/{size}"
    assert response.content == payload.read_bytes()[1000:2000]


# --- the thread pool over the wire ---------------------------------------------------------


def test_slow_views_run_in_parallel_on_the_pool(server: Server) -> None:
    limits = httpx.Limits(max_connections=16)
    with (
        httpx.Client(base_url=server.url, timeout=10, limits=limits) as client,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):
        client.get("/legacy/hello")
        began = time.monotonic()
        results = list(pool.map(lambda _: client.get("/legacy/slow").text, range(8)))
        elapsed = time.monotonic() - began
    assert results == ["slow"] * 8
    # One after another would take 8 x SLOW = 4 s.
    assert elapsed < 4 * SLOW


def test_saturated_pool_answers_503_with_retry_after(client: httpx.Client, server: Server) -> None:
    token = uuid.uuid4().hex
    held: list[httpx.Response] = []
    holder = threading.Thread(
        target=lambda: held.append(httpx.get(f"{server.url}/tiny/hold/{token}", timeout=10))
    )
    holder.start()
    try:
        assert wait_for_state(client, token, "holding") == "holding"
        refused = client.get("/tiny/overlong")
    finally:
        holder.join()
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == str(TINY_RETRY_AFTER)
    assert refused.text == "Service Unavailable"
    assert [(r.status_code, r.text) for r in held] == [(200, "held")]
    # The worker is free again (it counts as busy until just after its response).
    deadline = time.monotonic() + 3.0
    while (again := client.get("/tiny/overlong")).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert (again.status_code, again.content) == (200, b"01234")
