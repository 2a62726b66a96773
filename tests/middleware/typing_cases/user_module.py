"""A user's module as mypy --strict sees it: no ignores, types kept through the API."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from typing_extensions import assert_type

from bridge._types import ASGIApp, WSGIApp
from middleware import GZip, Middleware, RequestID, Stack
from middleware.api import Core, Handler, Head, HeaderList, Outcome, RequestHead, Response


def wsgi_app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


async def asgi_app(scope: Any, receive: Any, send: Any) -> None:
    return None


class MyWSGIApp:
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        return wsgi_app(environ, start_response)


# Stack(...)(app) is typed as app's own type.
assert_type(Stack([Middleware(GZip)])(MyWSGIApp()), MyWSGIApp)
stacked_wsgi: WSGIApp = Stack([Middleware(RequestID)])(wsgi_app)
stacked_asgi: ASGIApp = Stack([Middleware(RequestID)])(asgi_app)
# X(app) is an app of either interface for a type checker.
wrapped_wsgi: WSGIApp = RequestID(wsgi_app)
wrapped_asgi: ASGIApp = GZip(asgi_app)


class Timing(Handler):
    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        return status, [*headers, (b"x-timing", b"1")]

    def on_complete(self, outcome: Outcome) -> None:
        assert_type(outcome, Outcome)


class Deny(Core):
    def on_request(self, head: RequestHead) -> Handler | Response | None:
        if head.client is not None and head.client[1] is None:
            return Response(403, [], b"")
        return Timing()
