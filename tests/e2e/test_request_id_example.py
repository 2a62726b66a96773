"""``examples/request_id``: one middleware, written once, through real servers.

Flask on gunicorn gthread and FastAPI on uvicorn, with the servers' own proxy-header
handling switched off so that what the app sees is our ProxyHeaders' doing.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import free_port, serve, wsgi_server_argv

pytestmark = pytest.mark.slow

FORWARDED = {
    "X-Forwarded-For": "198.51.100.7",
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "public.example",
}


def _argv(server: str, port: int) -> list[str]:
    if server == "gunicorn-gthread":
        argv = wsgi_server_argv(server, "examples.request_id.flask_app:app", port)
        # gunicorn would otherwise set the scheme itself from 127.0.0.1's headers.
        return [*argv[:-1], "--forwarded-allow-ips", "192.0.2.1", argv[-1]]
    return [
        sys.executable,
        "-m",
        "uvicorn",
        "examples.request_id.fastapi_app:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-proxy-headers",  # the app must see our ProxyHeaders' work, not uvicorn's
        "--no-access-log",
    ]


@pytest.fixture(params=["gunicorn-gthread", "uvicorn"])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    port = free_port()
    log = tmp_path / "server.log"
    with serve(_argv(request.param, port), port, log=log) as url:
        yield url, log


def test_an_incoming_request_id_reaches_the_app_the_client_and_the_access_log(
    server: tuple[str, Path],
) -> None:
    url, log = server
    response = httpx.get(url + "/", headers={"X-Request-ID": "req-42"}, timeout=10)
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-42"
    assert response.json()["request_id"] == "req-42"
    # The record is written once the server has closed the response: wait for it.
    pattern = re.compile(r"access: .*GET / HTTP/1\.1.* request_id=req-42$", re.M)
    deadline = time.monotonic() + 15
    while not pattern.search(log.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pattern.search(log.read_text())


def test_a_missing_or_unsafe_request_id_is_replaced_by_a_fresh_one(
    server: tuple[str, Path],
) -> None:
    url, _ = server
    ids = set()
    for given in (None, "bad id; x=1", "x" * 200):
        headers = {} if given is None else {"X-Request-ID": given}
        response = httpx.get(url + "/", headers=headers, timeout=10)
        echoed = response.headers["x-request-id"]
        assert re.fullmatch("[0-9a-f]{32}", echoed)
        assert response.json()["request_id"] == echoed
        ids.add(echoed)
    assert len(ids) == 3


def test_proxy_headers_give_the_app_the_forwarded_client_scheme_and_host(
    server: tuple[str, Path],
) -> None:
    url, _ = server
    body = httpx.get(url + "/", headers=FORWARDED, timeout=10).json()
    assert body["client"] == "198.51.100.7"
    assert body["url"] == "https://public.example/"
    prefixed = httpx.get(url + "/", headers={**FORWARDED, "X-Forwarded-Prefix": "/app"}, timeout=10)
    assert prefixed.json()["url"] == "https://public.example/app/"
    direct = httpx.get(url + "/", timeout=10).json()
    assert direct["client"] == "127.0.0.1"
    assert direct["url"] == url + "/"
