"""Per-request state under stress: every request sees its own values, on threads
(WSGI, switch interval 1e-6) and on one event loop (ASGI, many tasks at once)."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import pytest

from middleware import RequestID
from middleware.api import ENVIRON_STATE_KEY, request_state
from middleware.testing import PlainRequest, call_wsgi

REQUESTS = 400


@pytest.fixture
def fast_switching() -> Iterator[None]:
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def test_threads_each_see_their_own_request_id(fast_switching: None) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        from_environ = environ[ENVIRON_STATE_KEY]["request_id"]
        from_context = request_state.get()["request_id"]
        start_response("200 OK", [])
        return [f"{from_environ} {from_context}".encode()]

    wrapped = RequestID(app)
    mismatches: list[str] = []

    def worker(start: int) -> None:
        for number in range(start, REQUESTS, 8):
            rid = f"id-{number}".encode()
            result = call_wsgi(wrapped, PlainRequest(headers=[(b"x-request-id", rid)]))
            if result.body != rid + b" " + rid or result.header(b"x-request-id") != rid:
                mismatches.append(f"{rid!r}: {result.body!r}")

    threads = [threading.Thread(target=worker, args=(start,)) for start in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert mismatches == []
    assert request_state.get(None) is None  # nothing leaks into the caller's context


def test_concurrent_tasks_each_see_their_own_request_id() -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0)  # let every other request interleave here
        body = f"{scope['state']['request_id']} {request_state.get()['request_id']}"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body.encode()})

    wrapped = RequestID(app)

    async def one(number: int) -> bytes:
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        request = PlainRequest(headers=[(b"x-request-id", f"id-{number}".encode())])
        await wrapped(request.scope(), receive, send)
        return bytes(sent[-1]["body"])

    async def main() -> list[bytes]:
        return await asyncio.gather(*(one(number) for number in range(REQUESTS)))

    bodies = asyncio.run(main())
    assert bodies == [f"id-{n} id-{n}".encode() for n in range(REQUESTS)]
