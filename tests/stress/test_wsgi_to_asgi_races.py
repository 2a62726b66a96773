"""WSGIToASGI's cross-thread paths under race stress, in process: the response pump,
the request-body read-ahead and the disconnect watcher. Every byte is checked."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from bridge import ThreadPool, WSGIToASGI
from bridge._types import Environ, Message, StartResponse
from tests.bridge.harness import http_scope
from tests.stress.indexed import chunks, first_difference, is_prefix

TIMEOUT = 120.0  # whole-test bound on a loaded 2-core machine; a hang fails, not blocks


def streaming_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """``/<stream>/<count>/<mode>``: ``count`` indexed chunks, by iterable or ``write()``."""
    _, stream, count, mode = environ["PATH_INFO"].split("/")
    write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
    body = chunks(int(stream), int(count))
    if mode == "write":
        for data in body:
            write(data)
        return []
    return iter(body)


def echo_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Reads the upload in uneven pieces (read(n), readline, read()) and echoes it."""
    stream = environ["wsgi.input"]
    parts: list[bytes] = []
    sizes = (1, 7, 33, 4096)
    turn = 0
    while True:
        # Every fifth read is a readline(), which scans across message boundaries.
        data = stream.readline() if turn % 5 == 4 else stream.read(sizes[turn % len(sizes)])
        turn += 1
        if not data:
            break
        parts.append(data)
    body = b"".join(parts)
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]


@dataclass
class Client:
    """A client that yields to the loop now and then, so the pump sleeps and wakes often."""

    upload: list[bytes] = field(default_factory=lambda: [b""])
    leave_after: int | None = None  # body messages received before the client leaves
    messages: list[Message] = field(default_factory=list)
    _received: int = 0
    _gone: asyncio.Event = field(default_factory=asyncio.Event)
    _done: asyncio.Event = field(default_factory=asyncio.Event)

    async def receive(self) -> Message:
        index = self._received
        self._received += 1
        if index < len(self.upload):
            if index % 2:
                await asyncio.sleep(0)
            more = index < len(self.upload) - 1
            return {"type": "http.request", "body": self.upload[index], "more_body": more}
        gone = asyncio.ensure_future(self._gone.wait())
        done = asyncio.ensure_future(self._done.wait())
        try:
            await asyncio.wait({gone, done}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            gone.cancel()
            done.cancel()
            await asyncio.gather(gone, done, return_exceptions=True)
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        if self._gone.is_set():
            raise OSError("the client has gone")
        self.messages.append(message)
        bodies = sum(1 for m in self.messages if m["type"] == "http.response.body")
        if bodies % 3 == 1:
            await asyncio.sleep(0)
        if message["type"] == "http.response.body" and not message.get("more_body"):
            self._done.set()
        if self.leave_after is not None and bodies >= self.leave_after:
            self._gone.set()

    @property
    def body(self) -> bytes:
        return b"".join(m["body"] for m in self.messages if m["type"] == "http.response.body")

    def problems(self, stream: int) -> list[str]:
        """Framing errors: one start, first; exactly one final body message, last."""
        kinds = [m["type"] for m in self.messages]
        found = []
        if kinds.count("http.response.start") != 1 or kinds[0] != "http.response.start":
            found.append(f"stream {stream}: {kinds.count('http.response.start')} heads")
        finals = [m for m in self.messages[1:] if not m.get("more_body", False)]
        if self.leave_after is None and (len(finals) != 1 or finals[0] is not self.messages[-1]):
            found.append(f"stream {stream}: {len(finals)} final body messages")
        return found


async def gather_bounded(jobs: list[Any], concurrency: int) -> None:
    gate = asyncio.Semaphore(concurrency)

    async def run(job: Any) -> None:
        async with gate:
            await job

    await asyncio.wait_for(asyncio.gather(*(run(job) for job in jobs)), TIMEOUT)


async def pump_stress(streams: int, count: int) -> None:
    pool = ThreadPool(8, max_queue=streams)
    failures: list[str] = []
    try:
        for window in (1, 2, 8):
            adapter = WSGIToASGI(streaming_app, pool=pool, max_chunks_in_flight=window)

            async def one(stream: int, adapter: WSGIToASGI = adapter, window: int = window) -> None:
                mode = "write" if stream % 2 else "iter"
                client = Client()
                await adapter(http_scope(f"/{stream}/{count}/{mode}"), client.receive, client.send)
                failures.extend(client.problems(stream))
                wrong = first_difference(stream, client.body, chunks(stream, count))
                if wrong is not None:
                    failures.append(f"window {window}, {mode}: {wrong}")

            await gather_bounded([one(stream) for stream in range(streams)], concurrency=16)
    finally:
        pool.shutdown()
    assert not failures, f"{len(failures)} bad streams, first: {failures[:5]}"


async def test_every_streamed_chunk_arrives_once_and_in_order() -> None:
    await pump_stress(streams=150, count=24)


@pytest.mark.soak
async def test_every_streamed_chunk_arrives_once_and_in_order_soak() -> None:
    await pump_stress(streams=1500, count=48)


async def upload_stress(uploads: int, count: int) -> None:
    pool = ThreadPool(8, max_queue=uploads)
    adapter = WSGIToASGI(echo_app, pool=pool)
    failures: list[str] = []

    async def one(stream: int) -> None:
        # Uneven message sizes, some empty, so reads straddle message boundaries.
        upload = [
            piece[: 1 + (index * 7 + stream) % 32]
            for index, piece in enumerate(chunks(stream, count))
        ]
        upload[len(upload) // 2] = b""
        client = Client(upload=upload)
        await adapter(http_scope("/", method="POST"), client.receive, client.send)
        failures.extend(client.problems(stream))
        if client.body != b"".join(upload):
            want = hashlib.sha256(b"".join(upload)).hexdigest()[:12]
            got = hashlib.sha256(client.body).hexdigest()[:12]
            failures.append(
                f"upload {stream}: echoed {len(client.body)} bytes ({got}), sent "
                f"{sum(map(len, upload))} ({want})"
            )

    try:
        await gather_bounded([one(stream) for stream in range(uploads)], concurrency=16)
    finally:
        pool.shutdown()
    assert not failures, f"{len(failures)} bad uploads, first: {failures[:5]}"


async def test_every_uploaded_byte_reaches_the_app_once_and_in_order() -> None:
    await upload_stress(uploads=150, count=40)


@pytest.mark.soak
async def test_every_uploaded_byte_reaches_the_app_once_and_in_order_soak() -> None:
    await upload_stress(uploads=1500, count=80)


def short_app(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """``/<stream>/<mode>``: a one-chunk list (or none), with or without Content-Length."""
    _, stream, mode = environ["PATH_INFO"].split("/")
    body = b"".join(chunks(int(stream), 1 + int(stream) % 3))
    headers = [("Content-Type", "application/octet-stream")]
    if mode == "length":
        headers.append(("Content-Length", str(len(body))))
    write = start_response("200 OK", headers)
    if mode == "empty":
        return []
    if mode == "write":  # the head and body posted by write(), then an empty list
        write(body)
        return []
    return [body]


async def short_stress(requests: int) -> None:
    pool = ThreadPool(8, max_queue=requests)
    adapter = WSGIToASGI(short_app, pool=pool)
    failures: list[str] = []
    modes = ("length", "plain", "empty", "write")

    async def one(stream: int) -> None:
        mode = modes[stream % len(modes)]
        method = "HEAD" if stream % 5 == 4 else "GET"
        client = Client()
        await adapter(http_scope(f"/{stream}/{mode}", method=method), client.receive, client.send)
        failures.extend(client.problems(stream))
        want = (
            b"" if mode == "empty" or method == "HEAD" else b"".join(chunks(stream, 1 + stream % 3))
        )
        if client.body != want:
            failures.append(f"{mode} {method} {stream}: {len(client.body)} bytes, want {len(want)}")

    try:
        await gather_bounded([one(stream) for stream in range(requests)], concurrency=16)
    finally:
        pool.shutdown()
    assert not failures, f"{len(failures)} bad responses, first: {failures[:5]}"


async def test_every_short_list_response_arrives_whole_once() -> None:
    await short_stress(requests=1500)


@pytest.mark.soak
async def test_every_short_list_response_arrives_whole_once_soak() -> None:
    await short_stress(requests=15000)


class Endless:
    """An endless indexed stream that records where its close() was called."""

    def __init__(self, stream: int) -> None:
        self.stream = stream
        self.index = 0
        self.closed_in: list[int] = []
        self.worker = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        self.worker = threading.get_ident()
        if self.index >= 100_000:  # a safety net: the client leaves long before
            raise StopIteration
        data = chunks(self.stream, self.index + 1)[self.index]
        self.index += 1
        return data

    def close(self) -> None:
        self.closed_in.append(threading.get_ident())


async def disconnect_stress(streams: int) -> None:
    pool = ThreadPool(8, max_queue=streams)
    made: dict[int, Endless] = {}

    def endless_app(environ: Environ, start_response: StartResponse) -> Endless:
        stream = int(environ["PATH_INFO"].strip("/"))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        made[stream] = Endless(stream)
        return made[stream]

    adapter = WSGIToASGI(endless_app, pool=pool)
    failures: list[str] = []

    async def one(stream: int) -> None:
        client = Client(leave_after=1 + stream % 13)
        # send() raising because the client left is the server's own business.
        with contextlib.suppress(OSError):
            await adapter(http_scope(f"/{stream}"), client.receive, client.send)
        failures.extend(client.problems(stream))
        if not is_prefix(client.body, chunks(stream, len(client.body) // 32 + 1)):
            failures.append(f"stream {stream}: received bytes are not an in-order prefix")

    try:
        await gather_bounded([one(stream) for stream in range(streams)], concurrency=16)
        # Every app was stopped and its iterable closed exactly once, in its worker.
        await asyncio.wait_for(_until_idle(pool), TIMEOUT)
        for stream, iterable in made.items():
            if iterable.closed_in != [iterable.worker]:
                failures.append(f"stream {stream}: close() calls {iterable.closed_in}")
            if iterable.index >= 100_000:
                failures.append(f"stream {stream}: the app was never stopped")
    finally:
        pool.shutdown()
    assert len(made) == streams
    assert not failures, f"{len(failures)} bad streams, first: {failures[:5]}"


async def _until_idle(pool: ThreadPool) -> None:
    while pool.pending:
        await asyncio.sleep(0.01)


async def test_a_client_leaving_mid_stream_stops_and_closes_the_app_every_time() -> None:
    await disconnect_stress(streams=150)


@pytest.mark.soak
async def test_a_client_leaving_mid_stream_stops_and_closes_the_app_every_time_soak() -> None:
    await disconnect_stress(streams=1500)
