"""WebSocket handshakes for the deployment middleware, on the public API alone.

The drivers run cores on HTTP requests only and pass ``websocket`` scopes through, yet
a handshake comes through the same proxy and names the same host as any request:
ProxyHeaders must rewrite it, TrustedHost refuse it, HTTPSRedirect send ``ws`` to
``wss``. :class:`HandshakeAware` (through :func:`websocket_aware`) gives such a
middleware's ASGI variant, and its subclasses', a ``__call__``
that runs the core on a :class:`HandshakeHead` (the scope read as a ``GET`` with scheme
``http``/``https``, changes written back as ``ws``/``wss``); HTTP goes on to the driver.

A :class:`~middleware.api.Response` from the core refuses the handshake: with the
server's ``websocket.http.response`` extension the client gets that response (its
``Location`` in ``ws``/``wss`` form), otherwise a ``websocket.close`` before accept,
which servers answer with 403. A handler from the core is not used on a handshake (the
ones here only edit HTTP response heads).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from middleware.api import Core, CoreMiddleware, RequestHead, Response

__all__ = ["HandshakeAware", "HandshakeHead", "websocket_aware"]

_TO_HTTP = {"ws": "http", "wss": "https", "http": "http", "https": "https"}
_TO_WS = {"http": "ws", "https": "wss"}
_DEFAULT_PORTS = {"http": 80, "https": 443}


class HandshakeHead(RequestHead):
    """A request head over a ``websocket`` scope; changes go into the scope."""

    __slots__ = ("_scope",)

    def __init__(self, scope: dict[str, Any]) -> None:
        self.method = "GET"
        self._scope = scope
        self._state = None

    def header(self, name: bytes) -> bytes | None:
        values = [value for key, value in self._scope["headers"] if key == name]
        return None if not values else values[0] if len(values) == 1 else b", ".join(values)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return [(bytes(key), bytes(value)) for key, value in self._scope["headers"]]

    @property
    def path(self) -> str:
        path: str = self._scope["path"]
        return path

    @property
    def root_path(self) -> str:
        root_path: str = self._scope.get("root_path", "")
        return root_path

    @property
    def query(self) -> bytes:
        query: bytes = self._scope.get("query_string", b"")
        return query

    @property
    def scheme(self) -> str:
        return _TO_HTTP.get(self._scope.get("scheme", "ws"), "http")

    @property
    def client(self) -> tuple[str, int | None] | None:
        client = self._scope.get("client")
        return None if client is None else (client[0], client[1])

    @property
    def server(self) -> tuple[str, int | None] | None:
        server = self._scope.get("server")
        return None if server is None else (server[0], server[1])

    @property
    def http_version(self) -> str:
        version: str = self._scope.get("http_version", "1.1")
        return version

    @property
    def state(self) -> dict[str, Any]:
        if self._state is None:
            self._state = self._scope.setdefault("state", {})
        return self._state

    def set_client(self, host: str, port: int | None = None) -> None:
        self._scope["client"] = (host, 0 if port is None else port)  # ASGI: an int

    def set_scheme(self, scheme: str) -> None:
        if scheme not in _TO_WS:
            raise ValueError(f"scheme must be 'http' or 'https', not {scheme!r}")
        self._scope["scheme"] = _TO_WS[scheme]

    def set_server(self, host: str, port: int | None = None) -> None:
        self._scope["server"] = (host, _DEFAULT_PORTS[self.scheme] if port is None else port)

    def set_root_path(self, root_path: str) -> None:
        if root_path and not root_path.startswith("/"):
            raise ValueError(f"root_path must be '' or start with '/', not {root_path!r}")
        root_path = root_path.rstrip("/")
        scope = self._scope
        old_root, path = self.root_path, self.path
        rest = path[len(old_root) :] if path.startswith(old_root) else path
        scope["root_path"], scope["path"] = root_path, root_path + rest
        raw = scope.get("raw_path")
        if raw is not None:
            old_raw = quote(old_root).encode("ascii")
            if raw.startswith(old_raw):
                scope["raw_path"] = quote(root_path).encode("ascii") + raw[len(old_raw) :]
            else:
                del scope["raw_path"]

    def set_header(self, name: bytes, value: bytes) -> None:
        headers = [pair for pair in self._scope["headers"] if pair[0] != name]
        self._scope["headers"] = [*headers, (name, value)]

    def add_header(self, name: bytes, value: bytes) -> None:
        self._scope["headers"] = [*self._scope["headers"], (name, value)]

    def remove_header(self, name: bytes) -> None:
        self._scope["headers"] = [pair for pair in self._scope["headers"] if pair[0] != name]


def _ws_location(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    out = []
    for name, value in headers:
        if name == b"location" and value.startswith(b"https://"):
            out.append((name, b"wss://" + value[8:]))
        elif name == b"location" and value.startswith(b"http://"):
            out.append((name, b"ws://" + value[7:]))
        else:
            out.append((name, value))
    return out


async def _refuse(scope: dict[str, Any], send: Any, response: Response) -> None:
    if "websocket.http.response" not in (scope.get("extensions") or {}):
        await send({"type": "websocket.close", "code": 1008})  # before accept: a 403
        return
    body = response.body if isinstance(response.body, bytes) else b"".join(response.body)
    await send(
        {
            "type": "websocket.http.response.start",
            "status": response.status,
            "headers": _ws_location(response.headers),
        }
    )
    await send({"type": "websocket.http.response.body", "body": body})


def websocket_aware(cls: Any) -> None:
    """Make ``cls.ASGI`` run the instance's ``_handshake`` core on WebSocket handshakes."""
    http_call = cls.ASGI.__call__

    async def __call__(self: Any, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "websocket":
            await http_call(self, scope, receive, send)
            return
        core: Core = self._handshake
        answer = core.on_request(HandshakeHead(scope))
        if isinstance(answer, Response):
            await _refuse(scope, send, answer)
            return
        await self.app(scope, receive, send)

    __call__.__qualname__ = f"{cls.ASGI.__qualname__}.__call__"
    cls.ASGI.__call__ = __call__


class HandshakeAware(CoreMiddleware):
    """A :class:`CoreMiddleware` whose ASGI variant runs ``self._handshake`` (a core the
    subclass sets in ``__init__``) on WebSocket handshakes; subclasses keep it."""

    _handshake: Core

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "ASGI" in cls.__dict__:  # a middleware class, not one of its variants
            websocket_aware(cls)
