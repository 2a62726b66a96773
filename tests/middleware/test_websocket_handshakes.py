"""``Core.websocket_handshakes``: a core that opts in sees WebSocket handshakes.

On ASGI the driver runs the core on the ``websocket`` scope; on WSGI (the handshake a
WSGI app gets under ``WSGIToASGI``, a ``GET`` carrying ``environ["bridge.websocket"]``)
the WSGI driver does the same, so one core behaves alike on both. Driven in process
with the scripted client of the bridge's WebSocket tests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge import ThreadPool, WebSocket, WSGIToASGI
from bridge._types import Environ, StartResponse
from middleware.api import (
    ENVIRON_STATE_KEY,
    Core,
    CoreMiddleware,
    Handler,
    Head,
    HeaderList,
    RequestHead,
    Response,
    request_state,
)
from tests.bridge.ws_harness import Client, ws_scope

DENIAL = {"websocket.http.response": {}}
Seen = tuple[str, str, str, bytes | None]


class _Exploding(Handler):
    head_only = True

    def on_response_start(self, status: int, headers: HeaderList) -> Head:
        raise AssertionError("a handler is not used on a handshake")


class _Recorder(Core):
    """Records what it saw; changes the request; answers ``answer``."""

    websocket_handshakes = True

    def __init__(self, answer: Handler | Response | None = None) -> None:
        self.seen: list[Seen] = []
        self.answer = answer

    def on_request(self, head: RequestHead) -> Handler | Response | None:
        self.seen.append((head.method, head.scheme, head.path, head.header(b"host")))
        head.set_scheme("https")
        head.set_header(b"x-added", b"1")
        head.state["tag"] = "t"
        return self.answer


class _NotOptedIn(_Recorder):
    websocket_handshakes = False


class Mw(CoreMiddleware):
    def __init__(self, app: Any, core: Core) -> None:
        super().__init__(app, core)


@pytest.fixture
def pool() -> Iterator[ThreadPool]:
    pool = ThreadPool(4, max_queue=0, name="test-mw-websocket")
    yield pool
    pool.shutdown()


def _asgi_app(seen: list[dict[str, Any]]) -> Any:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        state = request_state.get(None)
        seen.append(
            {
                "scheme": scope["scheme"],
                "x-added": dict(scope["headers"]).get(b"x-added"),
                "state": dict(scope.get("state", {})),
                "contextvar": None if state is None else dict(state),
            }
        )
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close", "code": 1000})

    return app


def _wsgi_app(seen: list[dict[str, Any]]) -> Callable[[Environ, StartResponse], list[bytes]]:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        state = request_state.get(None)
        seen.append(
            {
                "scheme": {"http": "ws", "https": "wss"}[environ["wsgi.url_scheme"]],
                "x-added": environ.get("HTTP_X_ADDED", "").encode() or None,
                "state": dict(environ.get(ENVIRON_STATE_KEY, {})),
                "contextvar": None if state is None else dict(state),
            }
        )
        ws: WebSocket = environ["bridge.websocket"]
        ws.accept()
        ws.close(1000)
        return []

    return app


def _served(way: str, core: Core, seen: list[dict[str, Any]], pool: ThreadPool) -> Any:
    """The app a server would call: the middleware on ASGI, or on WSGI under WSGIToASGI."""
    if way == "asgi":
        return Mw(_asgi_app(seen), core)
    return WSGIToASGI(Mw(_wsgi_app(seen), core), websocket_pool=pool)


WAYS = ["asgi", "wsgi"]


@pytest.mark.parametrize("way", WAYS)
async def test_a_core_that_did_not_opt_in_never_sees_a_handshake(
    way: str, pool: ThreadPool
) -> None:
    core = _NotOptedIn()
    seen: list[dict[str, Any]] = []
    client = Client(_served(way, core, seen, pool)).connect()
    assert await client.accepted() == {"type": "websocket.accept"} | (
        {"subprotocol": None, "headers": []} if way == "wsgi" else {}
    )
    assert (await client.next())["type"] == "websocket.close"
    await client.finished()
    assert core.seen == []
    assert seen == [{"scheme": "ws", "x-added": None, "state": {}, "contextvar": None}]


@pytest.mark.parametrize("way", WAYS)
async def test_an_opted_in_core_sees_a_get_and_the_app_sees_its_changes(
    way: str, pool: ThreadPool
) -> None:
    core = _Recorder()
    seen: list[dict[str, Any]] = []
    client = Client(_served(way, core, seen, pool)).connect()
    await client.accepted()
    await client.finished()
    assert core.seen == [("GET", "http", "/ws", b"testserver")]
    assert seen == [
        {"scheme": "wss", "x-added": b"1", "state": {"tag": "t"}, "contextvar": {"tag": "t"}}
    ]


@pytest.mark.parametrize("way", WAYS)
async def test_a_handler_is_not_used_on_a_handshake(way: str, pool: ThreadPool) -> None:
    core = _Recorder(_Exploding())
    seen: list[dict[str, Any]] = []
    client = Client(_served(way, core, seen, pool)).connect()
    await client.accepted()
    await client.finished()
    assert len(seen) == 1


_REFUSAL = Response(
    307, [(b"location", b"https://elsewhere.test/ws"), (b"content-length", b"4")], b"away"
)


@pytest.mark.parametrize("way", WAYS)
async def test_a_response_refuses_with_the_denial_extension_location_in_ws_form(
    way: str, pool: ThreadPool
) -> None:
    core = _Recorder(_REFUSAL)
    seen: list[dict[str, Any]] = []
    client = Client(_served(way, core, seen, pool), ws_scope(extensions=DENIAL)).connect()
    start = await client.next()
    body = await client.next()
    await client.finished()
    assert seen == []  # the app never ran
    assert start == {
        "type": "websocket.http.response.start",
        "status": 307,
        "headers": [(b"location", b"wss://elsewhere.test/ws"), (b"content-length", b"4")],
    }
    assert body["type"] == "websocket.http.response.body"
    assert body["body"] == b"away"
    assert body.get("more_body", False) is False


@pytest.mark.parametrize("way", WAYS)
async def test_a_response_without_the_extension_closes_before_accept(
    way: str, pool: ThreadPool
) -> None:
    core = _Recorder(_REFUSAL)
    seen: list[dict[str, Any]] = []
    client = Client(_served(way, core, seen, pool)).connect()
    message = await client.next()
    await client.finished()
    assert seen == []
    # A close before accept: the server answers the handshake with 403.
    assert message["type"] == "websocket.close"
    assert client.outgoing.empty()


async def test_a_refusal_with_a_streamed_body_is_sent_whole_and_closed() -> None:
    closed: list[bool] = []

    class Body:
        def __iter__(self) -> Iterator[bytes]:
            return iter([b"no", b"pe"])

        def close(self) -> None:
            closed.append(True)

    core = _Recorder(Response(403, [(b"content-length", b"4")], Body()))
    client = Client(Mw(_asgi_app([]), core), ws_scope(extensions=DENIAL)).connect()
    assert (await client.next())["status"] == 403
    assert (await client.next())["body"] == b"nope"
    await client.finished()
    assert closed == [True]
