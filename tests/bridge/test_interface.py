"""Telling WSGI from ASGI apps, and ``to_asgi`` / ``to_wsgi``."""

from __future__ import annotations

import functools
from typing import Any

import pytest

from bridge import ASGIToWSGI, WSGIToASGI, asgi_app, interface_of, to_asgi, to_wsgi, wsgi_app


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
