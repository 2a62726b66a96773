"""WSGIToASGI's queue on uvicorn: a request queued behind busy workers gets 503 with
Retry-After at its deadline, and a burst at the defaults is served in full."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from tests.apps.queue_apps import TINY_DEADLINE, TINY_RETRY_AFTER, TINY_WORKERS
from tests.servers import asgi_server_argv, free_port, require_module, serve

pytestmark = pytest.mark.slow

SLACK = 5.0  # seconds past the deadline a loaded 2-core machine may need


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    require_module("uvicorn")
    port = free_port()
    argv = [*asgi_server_argv("uvicorn", "tests.apps.queue_apps:app", port), "--backlog", "8192"]
    with serve(argv, port) as base:
        yield base


def _address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def _get(url: str, path: str, timeout: float = 60.0) -> tuple[int, dict[str, str], bytes]:
    """One GET on a fresh connection, read until the server closes it."""
    with socket.create_connection(_address(url), timeout=timeout) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


def _stats(url: str) -> dict[str, Any]:
    status, _, body = _get(url, "/stats")
    assert status == 200
    return dict(json.loads(body))


def _wait_for(predicate: Any, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_slow_uploaders_pinning_every_worker_make_a_new_request_get_503_at_its_deadline(
    url: str,
) -> None:
    # TINY_WORKERS clients that send a head and 10 of 1,000 promised bytes, then stall:
    # the app is reading their bodies, so every worker is pinned.
    slow = []
    try:
        for _ in range(TINY_WORKERS):
            sock = socket.create_connection(_address(url), timeout=60)
            sock.sendall(
                b"POST /tiny/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10
            )
            slow.append(sock)
        _wait_for(lambda: _stats(url)["running"] == TINY_WORKERS)
        served_before = _stats(url)["served"].get("/tiny/hello", 0)

        started = time.monotonic()
        status, headers, body = _get(url, "/tiny/hello")
        waited = time.monotonic() - started

        assert status == 503
        assert headers["retry-after"] == str(TINY_RETRY_AFTER)
        assert body == b"Service Unavailable"
        assert TINY_DEADLINE * 0.9 <= waited <= TINY_DEADLINE + SLACK
        # The expired request never ran and left nothing waiting.
        stats = _stats(url)
        assert stats["served"].get("/tiny/hello", 0) == served_before
        assert stats["waiting"] == 0
    finally:
        for sock in slow:
            sock.close()
    # With the slow clients gone the workers are free again.
    _wait_for(lambda: _stats(url)["running"] == 0)
    assert _get(url, "/tiny/hello")[:3:2] == (200, b"hello")


async def _burst_request(host: str, port: int, index: int) -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(
            f"GET /hello?i={index} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
        )
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_a_burst_of_5000_concurrent_requests_is_served_in_full_at_the_defaults(url: str) -> None:
    host, port = _address(url)

    async def burst() -> list[tuple[int, bytes] | BaseException]:
        jobs = [_burst_request(host, port, index) for index in range(5000)]
        return await asyncio.wait_for(asyncio.gather(*jobs, return_exceptions=True), 300)

    results = asyncio.run(burst())
    outcomes = Counter(
        repr(result) if isinstance(result, BaseException) else result for result in results
    )
    assert outcomes == {(200, b"hello"): 5000}
