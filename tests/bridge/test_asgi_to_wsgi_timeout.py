"""``ASGIToWSGI(request_timeout=...)``: an app that never answers does not hold its WSGI
thread forever. Before the head: the task is cancelled and the request answered 504.
After it: the task is cancelled and the iterable raises ``RequestTimeout`` so that the
server aborts the connection. On real servers:
``tests/e2e/test_asgi_to_wsgi_timeout_servers.py``.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any

import pytest

from bridge import RequestTimeout
from bridge._asgi_to_wsgi import ASGIToWSGI
from bridge._types import Receive, Scope, Send
from tests.bridge.test_asgi_to_wsgi import call, make_environ

LOGGER = "bridge.asgi_to_wsgi"


class Hung:
    """An ASGI app that hangs in the given way and records its cancellation."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.cancelled = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            if self.how == "never-answers":
                await asyncio.Event().wait()
            elif self.how == "waits-on-receive":
                while (await receive())["type"] == "http.request":
                    pass  # the body is read; the next receive() waits for a disconnect
                raise AssertionError("receive() reported a disconnect before the timeout")
            else:
                await send(
                    {
                        "type": "http.response.start",
                        "status": 200,
                        "headers": [(b"content-type", b"text/plain")],
                    }
                )
                await send({"type": "http.response.body", "body": b"part", "more_body": True})
                await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@pytest.mark.parametrize("how", ["never-answers", "waits-on-receive"])
def test_an_app_that_never_answers_gets_a_504_and_is_cancelled(
    make: Any, loop_mode: str, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = Hung(how)
    began = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        response = call(
            make(app, loop_mode=loop_mode, request_timeout=0.2),
            make_environ(method="POST", body=b"data"),
        )
    elapsed = time.monotonic() - began
    assert response.status == "504 Gateway Timeout"
    assert response.body == b"Gateway Timeout"
    assert app.cancelled.wait(5)
    assert 0.2 <= elapsed < 5
    [record] = [r for r in caplog.records if r.name == LOGGER]
    assert record.levelno == logging.WARNING
    assert "within request_timeout: POST /" in record.getMessage()


def test_an_app_that_hangs_after_its_head_is_aborted_and_cancelled(
    make: Any, loop_mode: str
) -> None:
    app = Hung("hangs-after-head")
    heads: list[str] = []
    result = make(app, loop_mode=loop_mode, request_timeout=0.2)(
        make_environ(), lambda status, *_: heads.append(status)
    )
    iterator = iter(result)
    try:
        assert next(iterator) == b"part"
        with pytest.raises(RequestTimeout, match="request_timeout"):
            next(iterator)
    finally:
        result.close()
    assert heads == ["200 OK"]
    assert app.cancelled.wait(5)


def test_a_response_that_ends_in_time_is_untouched(make: Any, loop_mode: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for index in range(3):
            await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": b"x", "more_body": index < 2})

    response = call(make(app, loop_mode=loop_mode, request_timeout=5), validate=False)
    assert (response.status, response.body) == ("200 OK", b"xxx")


def test_request_timeout_is_off_by_default(make: Any) -> None:
    assert make(Hung("never-answers")).request_timeout is None


@pytest.mark.parametrize("value", ["5", True, [1]])
def test_request_timeout_must_be_a_number(value: Any) -> None:
    with pytest.raises(TypeError, match="expected a number of seconds"):
        ASGIToWSGI(Hung("never-answers"), request_timeout=value)


@pytest.mark.parametrize("value", [0, -1.0, float("nan")])
def test_request_timeout_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match=r"request_timeout=.*must be positive"):
        ASGIToWSGI(Hung("never-answers"), request_timeout=value)
