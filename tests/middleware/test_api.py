"""Public surface: __all__, construction, interface detection, validation, Stack."""

from __future__ import annotations

import inspect
import types
from collections.abc import Iterable
from typing import Any

import pytest

import middleware
import middleware.api
import middleware.testing
from middleware import CORS, AccessLog, Compress, GZip, Middleware, Stack
from tests.middleware.harness import Reply, Request, asgi_app, call_asgi, call_wsgi, wsgi_app


@pytest.mark.parametrize("module", [middleware, middleware.api])
def test_all_lists_exactly_the_public_names(module: types.ModuleType) -> None:
    assert sorted(module.__all__) == sorted(
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and name != "annotations"
        and not isinstance(value, types.ModuleType)  # submodules: middleware.api
    )
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_the_test_kit_exports_only_its_own_names() -> None:
    for name in middleware.testing.__all__:
        value = getattr(middleware.testing, name)
        assert getattr(value, "__module__", "middleware").startswith("middleware"), name


def plain_wsgi(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


async def plain_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class AsyncCallable:
    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await plain_asgi(scope, receive, send)


class SyncReturningCoroutine:
    """Ambiguous: a sync __call__ that returns a coroutine (only an override can tell)."""

    def __call__(self, scope: Any, receive: Any, send: Any) -> Any:
        return plain_asgi(scope, receive, send)


ALL = [GZip, Compress, CORS, AccessLog]


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize(
    ("app", "interface"),
    [(plain_wsgi, "wsgi"), (plain_asgi, "asgi"), (AsyncCallable(), "asgi")],
    ids=["function_is_wsgi", "coroutine_function_is_asgi", "async_call_is_asgi"],
)
def test_interface_is_detected_and_kept(cls: Any, app: Any, interface: str) -> None:
    wrapped = cls(app)
    assert isinstance(wrapped, cls)
    assert wrapped.interface == interface
    assert inspect.iscoroutinefunction(type(wrapped).__call__) is (interface == "asgi")
    assert cls(wrapped).interface == interface  # our own middleware detect as their app
    assert cls.__name__ in repr(wrapped)


@pytest.mark.parametrize("cls", ALL)
def test_an_explicit_interface_settles_an_ambiguous_callable(cls: Any) -> None:
    wrapped = cls(SyncReturningCoroutine(), interface="asgi")
    assert wrapped.interface == "asgi"
    assert call_asgi(wrapped, Request()).body == b"ok"


@pytest.mark.parametrize("cls", ALL)
def test_bad_interface_and_non_callables_are_refused(cls: Any) -> None:
    with pytest.raises(ValueError, match="interface"):
        cls(plain_wsgi, interface="rsgi")
    with pytest.raises(TypeError, match="callable"):
        cls("not an app")


@pytest.mark.parametrize(
    ("cls", "options", "error"),
    [
        (CORS, {"allow_origins": "https://a.example"}, TypeError),
        (CORS, {"allow_origins": ["a.example"]}, ValueError),
        (CORS, {"allow_origins": [1]}, TypeError),
        (CORS, {"allow_methods": "GET"}, TypeError),
        (CORS, {"allow_origin_regex": "("}, ValueError),
        (CORS, {"allow_origin_regex": 5}, TypeError),
        (CORS, {"max_age": -1}, ValueError),
        (CORS, {"max_age": True}, ValueError),
        (GZip, {"minimum_size": -1}, ValueError),
        (GZip, {"compresslevel": 10}, ValueError),
        (GZip, {"exclude_content_types": "text/html"}, TypeError),
        (GZip, {"exclude_content_types": ["html"]}, ValueError),
        (Compress, {"encodings": ("gzip", "deflate")}, ValueError),
        (Compress, {"encodings": ()}, ValueError),
        (Compress, {"encodings": ("gzip", "gzip")}, ValueError),
        (Compress, {"encodings": "gzip"}, TypeError),
        (Compress, {"brotli_quality": 12}, ValueError),
        (Compress, {"zstd_level": 99}, ValueError),
    ],
    ids=lambda value: value.__name__ if isinstance(value, type) else None,
)
def test_bad_configuration_is_refused_at_construction(
    cls: Any, options: dict[str, Any], error: type[Exception]
) -> None:
    with pytest.raises(error):
        cls(plain_wsgi, **options)


def tagging(tag: str) -> Any:
    """A middleware class (any callable taking the app) that records its order."""

    class Tag(GZip):
        def __init__(self, app: Any, **options: Any) -> None:
            super().__init__(app, **options)
            order.append(tag)

    return Tag


order: list[str] = []


def test_stack_applies_the_first_entry_outermost() -> None:
    order.clear()
    stack = Stack([Middleware(tagging("outer")), Middleware(tagging("inner"), minimum_size=1)])
    app = stack(plain_wsgi)
    assert order == ["inner", "outer"]
    assert app.app._core.minimum_size == 1
    assert "minimum_size=1" in repr(stack.middleware[1])


@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_stack_runs_on_either_interface(interface: str) -> None:
    stack = Stack([Middleware(AccessLog), Middleware(CORS, allow_origins=["*"]), Middleware(GZip)])
    reply = Reply(chunks=(b"a" * 1000,), content_length=True)
    request = Request(headers=(("Accept-Encoding", "gzip"), ("Origin", "https://x.example")))
    if interface == "wsgi":
        result = call_wsgi(stack(wsgi_app(reply)), request)
    else:
        result = call_asgi(stack(asgi_app(reply)), request)
    assert result.header("access-control-allow-origin") == "*"
    assert result.header("content-encoding") == "gzip"


def test_stack_hands_an_explicit_interface_to_every_layer() -> None:
    app = Stack([Middleware(CORS), Middleware(GZip)], interface="asgi")(SyncReturningCoroutine())
    assert app.interface == "asgi"
    assert app.app.interface == "asgi"


def test_stack_refuses_what_is_not_a_middleware_entry() -> None:
    with pytest.raises(TypeError, match="Middleware"):
        Stack([GZip])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="interface"):
        Stack([], interface="cgi")
    with pytest.raises(TypeError, match="middleware class"):
        Middleware("GZip")


def test_middleware_entries_unpack_like_starlettes() -> None:
    cls, args, kwargs = Middleware(GZip, minimum_size=3)
    assert (cls, args, kwargs) == (GZip, (), {"minimum_size": 3})


def test_the_bridge_interface_marks_decide_for_ambiguous_callables() -> None:
    import inspect

    from bridge import asgi_app, wsgi_app
    from middleware import GZip

    def ambiguous(*args: object) -> object:
        return None

    assert inspect.iscoroutinefunction(type(GZip(asgi_app(ambiguous))).__call__)
    assert not inspect.iscoroutinefunction(type(GZip(wsgi_app(lambda *a: None))).__call__)


def test_repeated_cookie_fields_read_as_one_cookie_header_on_every_way() -> None:
    # HTTP/2 clients send each cookie as its own field; a core reading the Cookie header
    # gets them joined with "; " (RFC 9113 8.2.3), as the app's HTTP_COOKIE has them.
    seen: list[bytes | None] = []

    class ReadsCookies(middleware.api.Core):
        def on_request(self, head: middleware.api.RequestHead) -> None:
            seen.append(head.header(b"cookie"))

    class Cookies(middleware.api.CoreMiddleware):
        def __init__(self, app: Any, *, interface: str | None = None) -> None:
            super().__init__(app, ReadsCookies(), interface=interface)

    request = middleware.testing.PlainRequest(headers=((b"cookie", b"a=1"), (b"cookie", b"b=2")))
    results = middleware.testing.run(Cookies, request)
    assert {way: result.status for way, result in results.items()} == dict.fromkeys(
        middleware.testing.WAYS, 200
    )
    assert seen == [b"a=1; b=2"] * len(middleware.testing.WAYS)
