"""Race stress for ``ASGIToWSGI``'s framing and deadline paths across threads.

With the interpreter switching threads every microsecond, several WSGI threads at once
make streamed, ``HEAD``, wrong-length and timed-out requests in both loop modes; every
byte of every response is checked, and every failure must be the expected one. Bounded
to a few seconds; the long soak lives in ``tests/soak``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import random
from typing import Any

import pytest

from bridge import RequestTimeout
from bridge._asgi_to_wsgi import ASGIToWSGI
from bridge._http import InvalidResponse
from bridge._types import Receive, Scope, Send
from tests.bridge.test_asgi_to_wsgi import make_environ

THREADS = 6
REQUESTS_PER_THREAD = 30


def _chunks(seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [
        bytes([rng.randrange(256)]) * rng.randrange(1, 3000) for _ in range(rng.randrange(1, 12))
    ]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind, seed = scope["path"].strip("/").split("/")
    chunks = _chunks(int(seed))
    length = sum(map(len, chunks))
    if kind == "hang":
        await asyncio.Event().wait()
    declared = {"ok": length, "long": length - 1, "short": length + 1}[kind]
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(declared).encode())],
        }
    )
    for index, chunk in enumerate(chunks):
        await send(
            {"type": "http.response.body", "body": chunk, "more_body": index < len(chunks) - 1}
        )
        if index % 3 == 1:
            await asyncio.sleep(0)


def _one(adapter: ASGIToWSGI, kind: str, method: str, seed: int) -> str:
    heads: list[tuple[str, list[tuple[str, str]]]] = []
    environ = make_environ(path=f"/{kind}/{seed}", method=method)
    expected = b"".join(_chunks(seed))
    received = bytearray()
    try:
        result: Any = adapter(environ, lambda status, headers, *_: heads.append((status, headers)))
        try:
            for chunk in result:
                received += chunk
        finally:
            if hasattr(result, "close"):  # a complete one-shot response is a plain list
                result.close()
    except (InvalidResponse, RequestTimeout) as exc:
        if kind == "ok":
            raise
        # Never more than the declared bytes, and only a prefix of the real body.
        assert expected.startswith(bytes(received))
        if kind == "long":
            assert len(received) <= len(expected) - 1
        return type(exc).__name__
    if kind == "hang":
        assert heads == [("504 Gateway Timeout", heads[0][1])]
        return "504"
    assert kind == "ok" or method == "HEAD", (kind, method)
    [(status, headers)] = heads
    assert status == "200 OK"
    declared = int(dict(headers)["content-length"])
    if method == "HEAD":
        assert received == b""
    else:
        assert (bytes(received), declared) == (expected, len(expected))
    return "ok"


@pytest.mark.parametrize("loop_mode", ["thread", "shared"])
def test_framing_and_deadlines_hold_under_fast_thread_switching(loop_mode: str) -> None:
    plan = [
        (kind, method, seed)
        for seed in range(THREADS * REQUESTS_PER_THREAD)
        for kind, method in [random.Random(seed).choice(_MIX)]
    ]
    # A deadline on every request (generous, so only the hung ones reach theirs).
    with (
        ASGIToWSGI(app, loop_mode=loop_mode, lifespan="off", request_timeout=60) as adapter,
        ASGIToWSGI(app, loop_mode=loop_mode, lifespan="off", request_timeout=0.05) as hasty,
        concurrent.futures.ThreadPoolExecutor(THREADS) as pool,
    ):
        outcomes = list(pool.map(lambda p: _one(hasty if p[0] == "hang" else adapter, *p), plan))
    by_kind: dict[str, set[str]] = {}
    for (kind, method, _), outcome in zip(plan, outcomes, strict=True):
        by_kind.setdefault(f"{kind}-{method}", set()).add(outcome)
    assert by_kind["ok-GET"] == {"ok"}
    assert by_kind["ok-HEAD"] == {"ok"}
    assert by_kind["long-HEAD"] == by_kind["short-HEAD"] == {"ok"}  # no body to count
    assert by_kind["long-GET"] == by_kind["short-GET"] == {"InvalidResponse"}
    assert by_kind["hang-GET"] == {"504"}


_MIX = [
    ("ok", "GET"),
    ("ok", "GET"),
    ("ok", "GET"),
    ("ok", "HEAD"),
    ("long", "GET"),
    ("short", "GET"),
    ("long", "HEAD"),
    ("short", "HEAD"),
    ("hang", "GET"),
]
