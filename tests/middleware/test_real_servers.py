"""Streams through GZip on real servers: uvicorn (ASGI) and gunicorn gthread (WSGI).

The app pauses one second between events; the first event must reach the client,
decompressed incrementally, well before the second one exists.
"""

from __future__ import annotations

import time
import zlib

import httpx
import pytest

from tests.apps.middleware_apps import LINE_PAUSE, LINES, PAUSE, event
from tests.middleware.harness import assert_lines_arrived_one_by_one, line_arrivals
from tests.servers import asgi_server_argv, free_port, serve, wsgi_server_argv

pytestmark = pytest.mark.slow

SERVERS = [
    pytest.param("uvicorn", "asgi", id="uvicorn"),
    pytest.param("gunicorn-gthread", "wsgi", id="gunicorn-gthread"),
]


def _argv(server: str, interface: str, attr: str, port: int) -> list[str]:
    target = f"tests.apps.middleware_apps:{interface}_{attr}"
    if interface == "asgi":
        return asgi_server_argv(server, target, port)
    return wsgi_server_argv(server, target, port)


@pytest.mark.parametrize(("server", "interface"), SERVERS)
@pytest.mark.parametrize("attr", ["sse", "stream"])
def test_the_first_compressed_event_arrives_before_the_second_is_produced(
    server: str, interface: str, attr: str
) -> None:
    port = free_port()
    with serve(_argv(server, interface, attr, port), port) as url, httpx.Client() as client:
        decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        decoded = b""
        first_at = None
        started = time.monotonic()
        with client.stream("GET", url + "/", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["content-encoding"] == "gzip"
            assert "content-length" not in response.headers
            assert "Accept-Encoding" in response.headers["vary"]
            for raw in response.iter_raw():
                decoded += decoder.decompress(raw)
                if first_at is None and decoded.startswith(event(0)):
                    first_at = time.monotonic() - started
        decoded += decoder.flush()
    assert first_at is not None
    assert first_at < 0.8 * PAUSE
    assert decoded == event(0) + event(1) + event(2)


@pytest.mark.parametrize(("server", "interface"), SERVERS)
def test_server_sent_events_stay_uncompressed_by_default(server: str, interface: str) -> None:
    port = free_port()
    with serve(_argv(server, interface, "sse_default", port), port) as url, httpx.Client() as c:
        started = time.monotonic()
        with c.stream("GET", url + "/", headers={"Accept-Encoding": "gzip"}) as response:
            assert "content-encoding" not in response.headers
            first = next(response.iter_raw())
            assert time.monotonic() - started < 0.8 * PAUSE
            assert first.startswith(b"id: 0\n")


@pytest.mark.parametrize(("server", "interface"), SERVERS)
def test_short_lines_written_slowly_reach_a_gzip_client_line_by_line(
    server: str, interface: str
) -> None:
    port = free_port()
    with serve(_argv(server, interface, "lines", port), port) as url, httpx.Client() as client:
        reads: list[tuple[float, bytes]] = []
        with client.stream("GET", url + "/", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers["content-encoding"] == "gzip"
            assert "content-length" not in response.headers
            for raw in response.iter_raw():
                reads.append((time.monotonic(), raw))
    assert_lines_arrived_one_by_one(line_arrivals(reads, LINES), len(LINES), LINE_PAUSE)
