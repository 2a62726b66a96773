"""ASGIToWSGI behind real WSGI servers (gunicorn sync/gthread, waitress, wsgiref).

Each server runs ``tests.apps.asgi_apps`` in its own process on a free port; httpx is
the client. Raw ASGI, Starlette, FastAPI and Django apps are mounted under werkzeug's
``DispatcherMiddleware``, so every check also covers ``root_path``.
"""

from __future__ import annotations

import concurrent.futures
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, require_module, serve, wsgi_server_argv

pytestmark = pytest.mark.slow

SERVERS = [
    ("gunicorn-sync", "application"),
    ("gunicorn-gthread", "application"),
    ("waitress", "application"),
    ("wsgiref", "application"),
    ("gunicorn-gthread", "application_shared"),
    ("wsgiref", "application_shared"),
]


@pytest.fixture(scope="module", params=SERVERS, ids=[f"{s}-{a}" for s, a in SERVERS])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    name, attr = request.param
    require_module("gunicorn" if name.startswith("gunicorn") else name)
    port = free_port()
    argv = wsgi_server_argv(name, f"tests.apps.asgi_apps:{attr}", port)
    with serve(argv, port) as url:
        yield name, url


@pytest.fixture
def client(server: tuple[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server[1], timeout=10) as client:
        yield client


def wait_for_file(path: Path, timeout: float = 5.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text():
            return path.read_text()
        time.sleep(0.02)
    return ""


def test_hello_world(client: httpx.Client) -> None:
    response = client.get("/hello")
    assert response.status_code == 200
    assert response.text == "Hello, world!"
    assert response.headers["content-type"] == "text/plain"


def test_scope_is_built_from_the_servers_environ(client: httpx.Client) -> None:
    info = client.get("/scope?q=caf%C3%A9&x", headers={"X-Custom": "yes"}).json()
    assert info["method"] == "GET"
    assert info["path"] == "/scope"
    assert info["root_path"] == ""
    assert info["query_string"] == "q=caf%C3%A9&x"
    assert info["client"][0] == "127.0.0.1"
    assert info["server"][1] == int(client.base_url.port or 0)
    assert ["x-custom", "yes"] in info["headers"]


def test_percent_encoded_path_is_decoded_and_raw_path_kept(client: httpx.Client) -> None:
    info = client.get("/scope/caf%C3%A9/x%20y").json()
    assert info["path"] == "/scope/café/x y"
    assert info["raw_path"] == "/scope/caf%C3%A9/x%20y"


def test_undecodable_path_gets_400(server: tuple[str, str]) -> None:
    host, port = server[1].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /%FF HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 400") or data.startswith(b"HTTP/1.0 400")


def test_large_body_arrives_in_several_messages(client: httpx.Client) -> None:
    body = bytes(range(256)) * 1024  # 256 KiB
    response = client.post("/echo", content=body)
    assert response.content == body
    assert int(response.headers["x-messages"]) >= 4


def test_chunked_upload_is_delivered_fully(client: httpx.Client, server: tuple[str, str]) -> None:
    if server[0] == "wsgiref":
        pytest.skip("wsgiref does not decode chunked request bodies")
    body = b"z" * 200_000
    response = client.post("/echo", content=iter([body[:70_000], body[70_000:]]))
    assert response.content == body


def test_response_streams_chunk_by_chunk(client: httpx.Client) -> None:
    arrivals: list[tuple[float, str]] = []
    began = time.monotonic()
    with client.stream("GET", "/stream") as response:
        for line in response.iter_lines():
            arrivals.append((time.monotonic() - began, line))
    assert [line for _, line in arrivals] == ["chunk0", "chunk1", "chunk2", "end"]
    # The first chunk arrives before the app has slept through the rest (3 x 0.2 s).
    assert arrivals[0][0] < 0.45
    assert arrivals[-1][0] >= 0.55


def test_exception_before_response_gives_the_servers_own_500(client: httpx.Client) -> None:
    # The exception reaches the server, which answers 500 in its own words (and logs it).
    response = client.get("/error")
    assert response.status_code == 500
    assert "Traceback" not in response.text


def test_background_work_runs_after_the_response(client: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "background"
    began = time.monotonic()
    response = client.get("/background", params={"marker": str(marker)})
    assert response.text == "queued"
    assert time.monotonic() - began < 0.3
    assert wait_for_file(marker) == "done"


def test_client_going_away_cancels_the_app(server: tuple[str, str], tmp_path: Path) -> None:
    marker = tmp_path / "forever"
    with (
        httpx.Client(base_url=server[1], timeout=10) as client,
        client.stream("GET", "/forever", params={"marker": str(marker)}) as response,
    ):
        assert next(response.iter_bytes()).startswith(b"x")
    # The server notices on its next write, closes the iterable, the task is cancelled.
    assert wait_for_file(marker, timeout=10) in ("cancelled", "disconnected")


def test_starlette_streaming_and_sync_endpoint_under_a_dispatcher(client: httpx.Client) -> None:
    assert client.get("/starlette/stream").text == "chunk0\nchunk1\nchunk2\n"
    assert client.get("/starlette/sync").text == "sync /starlette/sync root=/starlette"


def test_starlette_background_task_runs_after_the_response(
    client: httpx.Client, tmp_path: Path
) -> None:
    marker = tmp_path / "starlette-background"
    began = time.monotonic()
    response = client.get("/starlette/background", params={"marker": str(marker)})
    assert response.text == "queued"
    assert time.monotonic() - began < 0.3
    assert wait_for_file(marker) == "done"


def test_starlette_file_response_goes_through_pathsend(
    client: httpx.Client, tmp_path: Path
) -> None:
    file = tmp_path / "payload.bin"
    file.write_bytes(bytes(range(256)) * 4000)
    response = client.get("/starlette/file", params={"path": str(file)})
    assert response.status_code == 200
    assert response.content == file.read_bytes()
    assert response.headers["content-length"] == str(file.stat().st_size)


def test_fastapi_lifespan_state_reaches_the_handler(client: httpx.Client) -> None:
    response = client.get("/fastapi/state")
    assert response.status_code == 200
    assert response.json()["greeting"] == "hello from lifespan"


def test_fastapi_json_body_and_sync_route(client: httpx.Client) -> None:
    assert client.post("/fastapi/items", json={"a": [1, 2]}).json() == {"received": {"a": [1, 2]}}
    assert client.get("/fastapi/sync").json() == {"sync": True}


def test_django_sees_script_name_and_path_info(client: httpx.Client) -> None:
    response = client.post("/django/info/?x=1", content=b"form body")
    assert response.status_code == 200
    assert json.loads(response.text) == {
        "path": "/django/info/",
        "path_info": "/info/",
        "script_name": "/django",
        "method": "POST",
        "body": "form body",
    }


def test_concurrent_slow_requests_are_served_in_parallel(server: tuple[str, str]) -> None:
    if server[0] != "gunicorn-gthread":
        pytest.skip("only the 8-thread gthread worker promises 8 concurrent requests")

    # One client for all threads: building an httpx.Client per request costs more CPU
    # (TLS context) than the whole test budget on a small machine.
    limits = httpx.Limits(max_connections=16)
    with (
        httpx.Client(base_url=server[1], timeout=10, limits=limits) as client,
        concurrent.futures.ThreadPoolExecutor(8) as pool,
    ):
        client.get("/slow")  # warm every lazily created piece once
        began = time.monotonic()
        results = list(pool.map(lambda _: client.get("/slow").text, range(8)))
        elapsed = time.monotonic() - began
    assert results == ["slow"] * 8
    assert elapsed < 2.5


@pytest.mark.parametrize(
    ("name", "attr"),
    [("gunicorn-sync", "application"), ("gunicorn-gthread", "application_shared")],
)
def test_lifespan_shutdown_runs_when_the_worker_exits(name: str, attr: str, tmp_path: Path) -> None:
    require_module("gunicorn")
    log = tmp_path / "lifespan.log"
    port = free_port()
    argv = wsgi_server_argv(name, f"tests.apps.asgi_apps:{attr}", port)
    with serve(argv, port, env={"ASGI_APPS_LIFESPAN_LOG": str(log)}) as url:
        assert httpx.get(f"{url}/hello", timeout=10).text == "Hello, world!"
        assert log.read_text().split()[0] == "startup"
    # SIGTERM: gunicorn's worker exits normally and the adapter shuts lifespan down.
    events = [line.split()[0] for line in log.read_text().splitlines()]
    assert events == ["startup", "shutdown"]


@pytest.mark.parametrize("name", ["gunicorn-gthread", "waitress", "wsgiref"])
def test_the_server_logs_an_exception_before_the_response_once(name: str, tmp_path: Path) -> None:
    require_module("gunicorn" if name.startswith("gunicorn") else name)
    log = tmp_path / "server.log"
    port = free_port()
    argv = wsgi_server_argv(name, "tests.apps.asgi_apps:application", port)
    with serve(argv, port, log=log) as url:
        assert httpx.get(f"{url}/error", timeout=10).status_code == 500
        deadline = time.monotonic() + 10
        while "deliberate failure" not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)
    output = log.read_text()
    # The server's own traceback, once: the adapter adds no error record of its own
    # (which logging's last-resort handler would print here, traceback and all).
    assert output.count("RuntimeError: deliberate failure before the response") == 1, output
    assert "ASGI app raised" not in output, output
