"""``ASGIToWSGI(request_timeout=...)`` on real WSGI servers: hung apps do not take the
server down. Without it, requests to an app that never answers hold gunicorn's or
waitress's threads forever; with it, each is answered 504 (or aborted after its head)
and the server keeps serving.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_asgi_to_wsgi_framing_servers import start_server

pytestmark = pytest.mark.slow

TIMEOUT = 1.0


@pytest.fixture(
    scope="module",
    params=[
        ("gunicorn-gthread", "application"),
        ("gunicorn-gthread", "application_shared"),
        ("waitress", "application"),
    ],
    ids=lambda p: f"{p[0]}-{p[1]}",
)
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    yield from start_server(*request.param, env={"FRAMING_APPS_REQUEST_TIMEOUT": str(TIMEOUT)})


def test_more_hung_requests_than_threads_are_answered_504_and_the_server_keeps_serving(
    server: str,
) -> None:
    # 10 hung requests against 8 server threads: without the timeout they would hold
    # every thread forever and the last two (and every later request) would never start.
    targets = ["/hang"] * 5 + ["/hang-receive"] * 5
    limits = httpx.Limits(max_connections=16)
    began = time.monotonic()
    with (
        httpx.Client(base_url=server, timeout=30, limits=limits) as client,
        concurrent.futures.ThreadPoolExecutor(10) as pool,
    ):
        statuses = list(pool.map(lambda t: client.post(t, content=b"body").status_code, targets))
        elapsed = time.monotonic() - began
        assert statuses == [504] * 10
        assert elapsed < 20  # two rounds of TIMEOUT on 8 threads, with room for a busy CI
        response = client.get("/ok")
    assert (response.status_code, response.text) == (200, "ok")


def test_a_request_hung_after_its_head_is_aborted(server: str) -> None:
    with (
        httpx.Client(base_url=server, timeout=30) as client,
        client.stream("GET", "/hang-after-head") as response,
    ):
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    assert httpx.get(f"{server}/ok", timeout=30).text == "ok"
