"""The thread pool's queue: a deadline for waiting requests (503 + Retry-After), a count
cap for memory, and bursts served rather than shed at the defaults."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from bridge import ThreadPool, WSGIToASGI
from bridge._pool import DEFAULT_MAX_QUEUE, DEFAULT_QUEUE_TIMEOUT, Job
from bridge._types import Environ, StartResponse
from tests.bridge.harness import Exchange, http_scope, pool_idle


def test_a_submitted_job_starts_as_one_made_by_its_init() -> None:
    # submit() fills a job's fields without running Job.__init__: none may be missed.
    pool = ThreadPool(1)
    release = threading.Event()
    try:
        pool.submit(release.wait)
        job = pool.submit(print, "x")  # queued: no worker takes it while we look
        assert job is not None
        made = Job(print, ("x",), True)
        assert {name: getattr(job, name) for name in Job.__slots__} == {
            name: getattr(made, name) for name in Job.__slots__
        }
        assert pool.expire(job)
    finally:
        release.set()
        pool.shutdown(wait=True)


def test_a_job_expired_before_a_worker_takes_it_never_runs() -> None:
    pool = ThreadPool(1, queue_timeout=5)
    release = threading.Event()
    ran: list[str] = []
    try:
        first = pool.submit(release.wait)
        second = pool.submit(ran.append, "second")
        assert first is not None
        assert second is not None
        assert not first.queued
        assert second.queued
        assert pool.expire(second)
        assert not pool.expire(second)  # only once
        assert pool.pending == 1
        release.set()
        third = pool.submit(ran.append, "third")
        assert third is not None
    finally:
        pool.shutdown(wait=True)
    assert ran == ["third"]
    assert pool.pending == 0


def test_a_running_job_cannot_be_expired() -> None:
    pool = ThreadPool(1)
    started, release = threading.Event(), threading.Event()

    def job() -> None:
        started.set()
        release.wait(30)

    try:
        taken = pool.submit(job)
        assert taken is not None
        assert started.wait(30)
        assert not pool.expire(taken)
    finally:
        release.set()
        pool.shutdown(wait=True)


def test_defaults_bound_waiting_by_time_and_count() -> None:
    pool = ThreadPool()
    assert (pool.max_workers, pool.max_queue, pool.queue_timeout) == (40, 16_384, 30.0)
    assert (DEFAULT_MAX_QUEUE, DEFAULT_QUEUE_TIMEOUT) == (16_384, 30.0)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ("5s", TypeError, r"ThreadPool\(queue_timeout='5s'\): expected a number of seconds"),
        (True, TypeError, r"ThreadPool\(queue_timeout=True\): expected a number of seconds"),
        (0, ValueError, r"ThreadPool\(queue_timeout=0\): must be positive"),
    ],
)
def test_queue_timeout_must_be_a_positive_number_or_none(
    value: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        ThreadPool(queue_timeout=value)


class Blocking:
    """A WSGI app whose ``/block`` requests hold their worker until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.blocked = threading.Event()
        self.served: Counter[str] = Counter()

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        self.served[environ["PATH_INFO"]] += 1
        if environ["PATH_INFO"] == "/block":
            self.blocked.set()
            self.release.wait(60)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]


async def test_a_request_queued_past_the_deadline_gets_503_with_retry_after_and_never_runs() -> (
    None
):
    app = Blocking()
    pool = ThreadPool(1, queue_timeout=0.3, retry_after=7)
    adapter = WSGIToASGI(app, pool=pool)
    try:
        holder = asyncio.ensure_future(Exchange().run(adapter, http_scope("/block")))
        assert await asyncio.to_thread(app.blocked.wait, 30)
        started = time.monotonic()
        queued = await asyncio.wait_for(Exchange().run(adapter, http_scope("/late")), 30)
        waited = time.monotonic() - started
        assert queued.status == 503
        assert queued.header(b"retry-after") == b"7"
        assert queued.body == b"Service Unavailable"
        assert 0.27 <= waited < 10
        app.release.set()
        assert (await asyncio.wait_for(holder, 30)).body == b"ok"
        # A later request runs normally; the expired one never did.
        assert (await Exchange().run(adapter, http_scope("/later"))).body == b"ok"
        assert app.served == {"/block": 1, "/later": 1}
        assert await pool_idle(pool)
    finally:
        app.release.set()
        pool.shutdown(wait=True)


async def test_a_queued_request_whose_task_is_cancelled_never_runs() -> None:
    app = Blocking()
    pool = ThreadPool(1, queue_timeout=None)
    adapter = WSGIToASGI(app, pool=pool)
    try:
        holder = asyncio.ensure_future(Exchange().run(adapter, http_scope("/block")))
        assert await asyncio.to_thread(app.blocked.wait, 30)
        queued = asyncio.ensure_future(Exchange().run(adapter, http_scope("/gone")))
        while pool.pending < 2:
            await asyncio.sleep(0.01)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
        assert pool.pending == 1
        app.release.set()
        await asyncio.wait_for(holder, 30)
        assert (await Exchange().run(adapter, http_scope("/later"))).body == b"ok"
        assert app.served == {"/block": 1, "/later": 1}
    finally:
        app.release.set()
        pool.shutdown(wait=True)


def wsgi_echo(environ: Environ, start_response: StartResponse) -> list[bytes]:
    body = environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


@pytest.mark.slow
async def test_a2wsgis_burst_of_10100_concurrent_posts_has_no_errors_at_the_defaults() -> None:
    # a2wsgi's own benchmark shape: 10,100 POSTs at once, in process, through httpx.
    adapter = WSGIToASGI(wsgi_echo, pool=ThreadPool())  # the defaults, in a pool of its own
    transport = httpx.ASGITransport(app=adapter)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            responses = await asyncio.wait_for(
                asyncio.gather(
                    *(client.post("/", content=b"%d hello" % index) for index in range(10_100))
                ),
                600,
            )
    finally:
        adapter.pool.shutdown(wait=True)
    wrong = [
        (index, response.status_code)
        for index, response in enumerate(responses)
        if response.status_code != 200 or response.content != b"%d hello" % index
    ]
    assert not wrong, f"{len(wrong)} of 10,100 failed, first: {wrong[:5]}"
