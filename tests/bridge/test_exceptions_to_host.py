"""A WSGI app's exception reaches the host (ASGI server, enclosing app, test client) as
itself, so the host's own error handling, debug pages and error trackers see it."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from flask import Flask

from bridge import ThreadPool, WSGIToASGI

with warnings.catch_warnings():
    # This Starlette asks for the "httpx2" package; httpx still works for its TestClient.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    from starlette.testclient import TestClient


class OrderMissing(LookupError):
    pass


@pytest.fixture
def api() -> Iterator[FastAPI]:
    flask_app = Flask(__name__)
    flask_app.config["PROPAGATE_EXCEPTIONS"] = True  # Flask re-raises, as in its tests

    @flask_app.get("/boom")
    def boom() -> str:
        raise OrderMissing("order 42 is missing")

    @flask_app.get("/ok")
    def ok() -> str:
        return "fine"

    pool = ThreadPool(2)
    api = FastAPI()
    api.mount("/legacy", WSGIToASGI(flask_app, pool=pool))
    yield api
    pool.shutdown()


def test_a_flask_view_error_reaches_fastapis_test_client_as_the_original_exception(
    api: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(api) as client:  # raise_server_exceptions=True
        with pytest.raises(OrderMissing, match="order 42 is missing"):
            client.get("/legacy/boom")
        assert client.get("/legacy/ok").text == "fine"
    assert not [r for r in caplog.records if r.name.startswith("bridge")]


def test_without_raising_the_host_answers_500_itself(api: FastAPI) -> None:
    with TestClient(api, raise_server_exceptions=False) as client:
        response = client.get("/legacy/boom")
    assert response.status_code == 500
    assert response.text == "Internal Server Error"  # Starlette's ServerErrorMiddleware


def test_the_adapter_logs_the_error_at_debug_only(
    api: FastAPI, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="bridge")
    with TestClient(api, raise_server_exceptions=False) as client:
        client.get("/legacy/boom")
    ours = [r for r in caplog.records if r.name.startswith("bridge")]
    assert [r.levelno for r in ours] == [logging.DEBUG]
    assert "raised to the ASGI server" in ours[0].getMessage()
