"""Telling WSGI from ASGI apps, and ``to_asgi`` / ``to_wsgi``."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from bridge import (
    ASGIToWSGI,
    ThreadPool,
    WSGIToASGI,
    asgi_app,
    interface_of,
    to_asgi,
    to_wsgi,
    wsgi_app,
)
from bridge._interface import require_interface


def a_wsgi_app(environ: Any, start_response: Any) -> list[bytes]:
    return []


async def an_asgi_app(scope: Any, receive: Any, send: Any) -> None:
    pass


class WSGIClass:
    def __call__(self, environ: Any, start_response: Any) -> list[bytes]:
        return []


class ASGIClass:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        pass


class ASGI2App:
    def __init__(self, scope: Any) -> None:
        self.scope = scope

    async def __call__(self, receive: Any, send: Any) -> None:
        pass


def ambiguous(*args: Any) -> Any:
    return None


@pytest.mark.parametrize(
    ("app", "expected"),
    [
        pytest.param(a_wsgi_app, "wsgi", id="wsgi-function"),
        pytest.param(WSGIClass(), "wsgi", id="wsgi-instance"),
        pytest.param(an_asgi_app, "asgi3", id="asgi-function"),
        pytest.param(ASGIClass(), "asgi3", id="asgi-instance"),
        pytest.param(functools.partial(an_asgi_app), "asgi3", id="asgi-partial"),
        pytest.param(ASGI2App, "asgi2", id="asgi2-class"),
        pytest.param(WSGIToASGI(a_wsgi_app), "asgi3", id="our-adapter"),
    ],
)
def test_interfaces_are_detected(app: Any, expected: str) -> None:
    assert interface_of(app) == expected


def test_ambiguous_callables_must_be_declared() -> None:
    with pytest.raises(TypeError, match="cannot tell"):
        interface_of(ambiguous)
    assert interface_of(wsgi_app(lambda *a: None)) == "wsgi"
    assert interface_of(asgi_app(lambda *a: None)) == "asgi3"


def test_non_callables_are_refused() -> None:
    with pytest.raises(TypeError, match="not callable"):
        interface_of(42)


def test_to_asgi_wraps_wsgi_and_returns_asgi_unchanged() -> None:
    wrapped = to_asgi(a_wsgi_app, max_body_size=10)
    assert isinstance(wrapped, WSGIToASGI)
    assert wrapped.app is a_wsgi_app
    assert to_asgi(an_asgi_app) is an_asgi_app
    assert isinstance(to_asgi(ambiguous, interface="wsgi"), WSGIToASGI)


def test_to_wsgi_returns_wsgi_unchanged_and_unwraps_our_adapter() -> None:
    assert to_wsgi(a_wsgi_app) is a_wsgi_app
    assert to_wsgi(WSGIToASGI(a_wsgi_app)) is a_wsgi_app


async def test_to_asgi_makes_asgi2_apps_single_callable() -> None:
    app = to_asgi(ASGI2App)
    assert app is not ASGI2App
    await app({"type": "http"}, an_asgi_app, an_asgi_app)  # type: ignore[arg-type]


def test_to_wsgi_wraps_asgi_apps_and_to_asgi_unwraps_them_again() -> None:
    wrapped = to_wsgi(an_asgi_app, loop_mode="shared")
    assert isinstance(wrapped, ASGIToWSGI)
    assert to_asgi(wrapped) is an_asgi_app
    assert interface_of(wrapped) == "wsgi"


def test_the_public_api_is_exactly_what_all_lists() -> None:
    import bridge

    public = {name for name in dir(bridge) if not name.startswith("_")} - {"annotations"}
    assert public == set(bridge.__all__)
    assert sorted(bridge.__all__) == bridge.__all__


# -- misuse caught at construction (issue 11) ------------------------------------------


def test_wsgi_to_asgi_refuses_an_asgi_app_naming_it_and_the_fix() -> None:
    from fastapi import FastAPI

    fastapi_app = FastAPI()
    with pytest.raises(TypeError) as caught:
        WSGIToASGI(fastapi_app)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("WSGIToASGI() needs a WSGI app (environ, start_response), got ")
    assert "fastapi.applications.FastAPI" in message
    assert "an ASGI app" in message
    assert "bridge.to_asgi(app)" in message


def test_wsgi_to_asgi_refuses_itself_and_says_to_pass_the_wsgi_app() -> None:
    inner = WSGIToASGI(a_wsgi_app)
    with pytest.raises(TypeError, match=r"already a WSGIToASGI; pass the WSGI app itself: "):
        WSGIToASGI(inner)  # type: ignore[arg-type]


def test_wsgi_to_asgi_accepts_a_round_trip_and_undetectable_callables() -> None:
    assert WSGIToASGI(ASGIToWSGI(an_asgi_app)).app.app is an_asgi_app  # type: ignore[attr-defined]
    assert WSGIToASGI(ambiguous).app is ambiguous


def test_wsgi_to_asgi_refuses_a_non_callable() -> None:
    with pytest.raises(TypeError, match=r"got 42 \(a int\), which is not callable"):
        WSGIToASGI(42)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        pytest.param(
            {"max_body_size": "10MB"},
            "WSGIToASGI(max_body_size='10MB'): expected an int number of bytes or None, "
            "got str; pass an int, e.g. max_body_size=10 * 1024 * 1024",
            id="max_body_size-str",
        ),
        pytest.param(
            {"max_body_size": 1.5},
            "WSGIToASGI(max_body_size=1.5): expected an int number of bytes or None, got float",
            id="max_body_size-float",
        ),
        pytest.param(
            {"max_body_size": True},
            "WSGIToASGI(max_body_size=True): expected an int number of bytes or None, got bool",
            id="max_body_size-bool",
        ),
        pytest.param(
            {"max_header_repeats": "100"},
            "WSGIToASGI(max_header_repeats='100'): expected an int, got str",
            id="max_header_repeats-str",
        ),
        pytest.param(
            {"max_chunks_in_flight": None},
            "WSGIToASGI(max_chunks_in_flight=None): expected an int, got NoneType",
            id="max_chunks_in_flight-None",
        ),
        pytest.param(
            {"pool": 40},
            "WSGIToASGI(pool=40): expected a bridge.ThreadPool or None, got int",
            id="pool-int",
        ),
    ],
)
def test_wsgi_to_asgi_refuses_options_of_the_wrong_type(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError) as caught:
        WSGIToASGI(a_wsgi_app, **options)
    assert str(caught.value).startswith(message)


def test_out_of_range_int_options_are_value_errors() -> None:
    with pytest.raises(ValueError, match=r"WSGIToASGI\(max_body_size=-1\): must be at least 0"):
        WSGIToASGI(a_wsgi_app, max_body_size=-1)
    with pytest.raises(ValueError, match=r"ThreadPool\(max_workers=0\): must be at least 1"):
        ThreadPool(0)


def test_thread_pool_refuses_options_of_the_wrong_type() -> None:
    with pytest.raises(TypeError, match=r"ThreadPool\(max_workers='4'\): expected an int, got str"):
        ThreadPool("4")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"ThreadPool\(retry_after=1.5\): expected an int number"):
        ThreadPool(retry_after=1.5)  # type: ignore[arg-type]


def test_require_interface_for_asgi_adapters_refuses_wsgi_apps() -> None:
    from flask import Flask

    flask_app = Flask(__name__)
    with pytest.raises(TypeError) as caught:
        require_interface(flask_app, "asgi", "ASGIToWSGI")
    message = str(caught.value)
    assert message.startswith("ASGIToWSGI() needs an ASGI app (scope, receive, send), got ")
    assert "flask.app.Flask" in message
    assert "a WSGI app" in message
    require_interface(an_asgi_app, "asgi", "ASGIToWSGI")
    require_interface(ASGI2App, "asgi", "ASGIToWSGI")
    require_interface(WSGIToASGI(a_wsgi_app), "asgi", "ASGIToWSGI")
