"""Smoke tests of the examples, each started with the one command its docs give.

* ``examples/django_under_gunicorn``: Django's ASGI app under Gunicorn, lifespan tied
  to the worker by ``gunicorn.conf.py``;
* ``examples/middleware_once.py``: one ``Stack`` on a Flask and a FastAPI app;
* ``examples/fastapi_in_flask.py``: FastAPI mounted in Flask, on waitress.

Each runs in its own process on 127.0.0.1 and is always stopped: ``tests.servers.serve``
(which echoes the output to stderr when it stops, read back with ``capfd``), or, where
the output must be read while the server runs, ``_server_with_log``.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import ROOT, free_port, require_module, serve

pytestmark = pytest.mark.slow

EXAMPLES = ROOT / "examples"
START_TIMEOUT = 60.0


def _port_pair() -> int:
    """A free port whose successor is free too (middleware_once serves on both)."""
    for _ in range(50):
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two consecutive free ports")


def _wait_for(port: int, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


@contextlib.contextmanager
def _client(url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=url, timeout=20) as client:
        yield client


def _wait_for_text(log: Path, text: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in log.read_text(errors="replace"):
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} not in the output:\n{log.read_text(errors='replace')}")


def test_django_asgi_app_under_gunicorn_with_lifespan_hooks(tmp_path: Path) -> None:
    require_module("django")
    require_module("gunicorn")
    port = free_port()
    conf = EXAMPLES / "django_under_gunicorn" / "gunicorn.conf.py"
    argv = [sys.executable, "-m", "gunicorn", "-c", str(conf)]
    log = tmp_path / "gunicorn.log"
    env = {"PORT": str(port), "WEB_CONCURRENCY": "1"}
    with serve(argv, port, env=env, log=log, timeout=START_TIMEOUT) as url:
        # post_worker_init runs lifespan startup when the worker boots: no request yet.
        _wait_for_text(log, "lifespan startup complete")
        with _client(url) as client:
            index = client.get("/")
            hello = client.get("/hello/matrix")
    assert index.status_code == 200
    assert 'href="/hello/gunicorn"' in index.text
    assert hello.status_code == 200
    body = hello.json()
    assert body["hello"] == "matrix"
    assert isinstance(body["started_at"], float)  # lifespan state reached the view
    # worker_exit closed the adapter: lifespan shutdown ran in the worker as it exited.
    output = log.read_text(errors="replace")
    assert output.count("lifespan startup complete") == 1, output
    assert output.count("lifespan shutdown complete") == 1, output


def test_one_stack_on_flask_and_fastapi(capfd: pytest.CaptureFixture[str]) -> None:
    for name in ("flask", "fastapi", "uvicorn"):
        require_module(name)
    port = _port_pair()
    argv = [sys.executable, str(EXAMPLES / "middleware_once.py")]
    bodies = []
    with serve(argv, port, env={"PORT": str(port)}, timeout=START_TIMEOUT) as fastapi_url:
        _wait_for(port + 1)
        for url in (fastapi_url, f"http://127.0.0.1:{port + 1}"):
            with _client(url) as client:
                allowed = client.get("/report", headers={"Origin": "https://app.example.com"})
                foreign = client.get("/report", headers={"Origin": "https://elsewhere.test"})
            assert allowed.status_code == 200
            assert allowed.headers["content-encoding"] == "gzip"
            assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
            assert "access-control-allow-origin" not in foreign.headers
            bodies.append(allowed.text)
    assert bodies[0] == bodies[1]
    assert bodies[0].startswith("line 0: the same report")
    output = capfd.readouterr().err
    # AccessLog, the same layer on both interfaces, logged all four requests alike.
    lines = [line for line in output.splitlines() if line.startswith("middleware.access:")]
    assert len(lines) == 4, output
    assert all('"GET /report HTTP/1.1" 200 ' in line for line in lines), lines


def test_fastapi_mounted_in_flask_on_waitress() -> None:
    for name in ("flask", "fastapi", "waitress"):
        require_module(name)
    port = free_port()
    argv = [sys.executable, str(EXAMPLES / "fastapi_in_flask.py")]
    with (
        serve(argv, port, env={"PORT": str(port)}, timeout=START_TIMEOUT) as url,
        _client(url) as client,
    ):
        index = client.get("/")
        item = client.get("/api/items/2")
        docs = client.get("/api/docs")
        schema = client.get("/api/openapi.json")
        missing = client.get("/nowhere")
    assert index.status_code == 200
    assert 'href="/api/items/1"' in index.text
    assert item.json() == {
        "id": 2,
        "name": "second item",  # from the lifespan state
        "self": f"{url}/api/items/2",  # url_for knows the mount
    }
    assert docs.status_code == 200
    assert "'/api/openapi.json'" in docs.text
    assert schema.json()["info"]["title"] == "Items API"
    assert missing.status_code == 404
    assert "text/html" in missing.headers["content-type"]  # Flask's 404, not FastAPI's
