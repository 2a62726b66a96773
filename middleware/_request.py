"""The request as a core sees it, and the changes a core may make to it.

A :class:`RequestHead` reads the request head (the same values on both interfaces:
the WSGI side reads through ``bridge``'s environ translation, so HTTP/2 is ``"2"`` and
an unknown client port is ``None`` on both) and records changes for the app:

* ``set_client``, ``set_scheme``, ``set_server``, ``set_root_path``: what a proxy in
  front of the app saw (the WSGI driver writes ``REMOTE_ADDR``, ``wsgi.url_scheme``,
  ``SERVER_NAME``/``SERVER_PORT``, ``SCRIPT_NAME``; the ASGI driver ``client``,
  ``scheme``, ``server``, ``root_path`` and ``path``);
* ``set_header``, ``add_header``, ``remove_header``: the request headers the app sees;
* ``state``: per-request values for the app (``scope["state"]``, which Starlette and
  FastAPI show as ``request.state``; ``environ["middleware.state"]`` on WSGI; and the
  :data:`request_state` context variable while the app is called).

Changes apply at once to the request the app (and every inner middleware) will get,
and later reads see them. Only :meth:`Core.on_request` may make them: afterwards the
app already has the request.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Any

from bridge._http import invalid_value_bytes, is_token_bytes

__all__ = [
    "GOOD_NAMES",
    "STATE_KEY",
    "PlainHead",
    "RequestHead",
    "check_header",
    "request_state",
    "scan_header",
]

STATE_KEY = "middleware.state"
"""The environ key of the per-request state dict on WSGI."""

request_state: ContextVar[dict[str, Any]] = ContextVar("middleware.request_state")
"""The per-request state dict, set while the app is called when a core wrote to
:attr:`RequestHead.state` (on WSGI: while the app callable runs, not while a generator
body is iterated later by the server)."""

_SCHEMES = frozenset({"http", "https"})


def scan_header(raw: Any, name: bytes) -> bytes | None:
    """``name``'s value in a list of lower-case pairs, repeated fields joined by ``", "``
    (cookies by ``"; "``)."""
    # A linear scan beats building a dict: a request carries about ten headers and a
    # core asks for one or two of them.
    found: bytes | None = None
    more: list[bytes] | None = None
    for key, value in raw:
        if key == name:
            if found is None:
                found = value
            elif more is None:
                more = [found, value]
            else:
                more.append(value)  # joined once below: linear, not quadratic
    if more is None:
        return found
    # Cookies repeat as separate fields over HTTP/2 and join with "; " (RFC 9113 8.2.3),
    # as the adapters join them into HTTP_COOKIE; any other field joins with ", ".
    return (b"; " if name == b"cookie" else b", ").join(more)


# Names already found valid: a core sets the same few names on every request. Bounded,
# since a core might take a name from the request.
GOOD_NAMES: set[bytes] = set()
GOOD_NAMES_SIZE = 256


def check_header(name: bytes, value: bytes | None = None) -> None:
    """Refuse a header a core could not mean: not a lower-case token, or a value that
    would split the head (CR, LF, NUL)."""
    if type(name) is not bytes or name not in GOOD_NAMES:
        if not isinstance(name, bytes) or not is_token_bytes(name) or name != name.lower():
            raise ValueError(f"request header names are lower-case token bytes, not {name!r}")
        if len(GOOD_NAMES) >= GOOD_NAMES_SIZE:
            GOOD_NAMES.clear()
        if len(name) <= 64:
            GOOD_NAMES.add(name)
    if value is not None and (
        not isinstance(value, bytes) or (not value.isalnum() and invalid_value_bytes(value))
    ):
        # isalnum(): ids and tokens pass in one C call, the search only for the rest.
        raise ValueError(f"invalid value for request header {name!r}: {value!r}")


def check_scheme(scheme: str) -> str:
    if scheme not in _SCHEMES:
        raise ValueError(f"scheme must be 'http' or 'https', not {scheme!r}")
    return scheme


def check_root_path(root_path: str) -> str:
    if not isinstance(root_path, str) or (root_path and not root_path.startswith("/")):
        raise ValueError(f"root_path must be '' or start with '/', not {root_path!r}")
    return root_path.rstrip("/")


class RequestHead:
    """What a core knows about a request before the app runs, and its changes to it.

    Drivers subclass it over ``scope`` or ``environ`` and answer from there when asked,
    so a request costs one small object; :class:`PlainHead` holds given values.
    """

    __slots__ = ("_state", "method")

    method: str
    _state: dict[str, Any] | None

    # --- reading --------------------------------------------------------------------
    def header(self, name: bytes) -> bytes | None:
        """The value of header ``name`` (lower-case), repeated fields joined by ``", "``."""
        raise NotImplementedError

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        """Every header as ``(lower-case name, value)``; built on demand, so prefer
        :meth:`header` for a lookup."""
        raise NotImplementedError

    @property
    def path(self) -> str:
        """The decoded URL path (UTF-8) without the query, root path included."""
        raise NotImplementedError

    @property
    def root_path(self) -> str:
        """The prefix the app is mounted at (``SCRIPT_NAME``); ``""`` at the root."""
        raise NotImplementedError

    @property
    def query(self) -> bytes:
        """The raw query string, without ``?``."""
        raise NotImplementedError

    @property
    def scheme(self) -> str:
        """``"http"`` or ``"https"``."""
        raise NotImplementedError

    @property
    def client(self) -> tuple[str, int | None] | None:
        """The peer's ``(host, port)``; the port is ``None`` when unknown."""
        raise NotImplementedError

    @property
    def server(self) -> tuple[str, int | None] | None:
        """The ``(host, port)`` the request was received on, when known."""
        raise NotImplementedError

    @property
    def http_version(self) -> str:
        """``"1.0"``, ``"1.1"``, ``"2"`` or ``"3"``."""
        raise NotImplementedError

    @property
    def state(self) -> dict[str, Any]:
        """Per-request values handed to the app; created on first use."""
        raise NotImplementedError

    # --- changing the request the app sees --------------------------------------------
    def set_client(self, host: str, port: int | None = None) -> None:
        """The client address the app sees (``REMOTE_ADDR``/``scope["client"]``)."""
        raise NotImplementedError

    def set_scheme(self, scheme: str) -> None:
        """``"http"`` or ``"https"`` (``wsgi.url_scheme``/``scope["scheme"]``)."""
        raise NotImplementedError

    def set_server(self, host: str, port: int | None = None) -> None:
        """The server address (``SERVER_NAME``/``SERVER_PORT``, ``scope["server"]``).
        ``None`` for the port means the scheme's default."""
        raise NotImplementedError

    def set_root_path(self, root_path: str) -> None:
        """The prefix the app is mounted at, as a proxy stripped it (``X-Forwarded-Prefix``).

        The path below the old root stays the same: WSGI gets a new ``SCRIPT_NAME``
        and the same ``PATH_INFO``; ASGI a new ``root_path`` and ``path`` = root + rest.
        """
        raise NotImplementedError

    def set_header(self, name: bytes, value: bytes) -> None:
        """Replace every ``name`` header with one (lower-case ``name``)."""
        raise NotImplementedError

    def add_header(self, name: bytes, value: bytes) -> None:
        """Add a ``name`` header, keeping existing ones (WSGI joins them with ``", "``)."""
        raise NotImplementedError

    def remove_header(self, name: bytes) -> None:
        """Remove every ``name`` header."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.method} {self.path}>"


class PlainHead(RequestHead):
    """A request head from given values (for tests of a core and for the test kit)."""

    __slots__ = (
        "_client",
        "_headers",
        "_http_version",
        "_path",
        "_query",
        "_root_path",
        "_scheme",
        "_server",
    )

    def __init__(
        self,
        method: str,
        path: str,
        *,
        query: bytes = b"",
        headers: Sequence[tuple[bytes, bytes]] = (),
        scheme: str = "http",
        client: tuple[str, int | None] | None = None,
        server: tuple[str, int | None] | None = None,
        root_path: str = "",
        http_version: str = "1.1",
    ) -> None:
        self.method = method
        self._headers = list(headers)
        self._path = path
        self._root_path = root_path
        self._query = query
        self._scheme = scheme
        self._client = client
        self._server = server
        self._http_version = http_version
        self._state = None

    def header(self, name: bytes) -> bytes | None:
        return scan_header(self._headers, name)

    @property
    def headers(self) -> list[tuple[bytes, bytes]]:
        return list(self._headers)

    @property
    def path(self) -> str:
        return self._path

    @property
    def root_path(self) -> str:
        return self._root_path

    @property
    def query(self) -> bytes:
        return self._query

    @property
    def scheme(self) -> str:
        return self._scheme

    @property
    def client(self) -> tuple[str, int | None] | None:
        return self._client

    @property
    def server(self) -> tuple[str, int | None] | None:
        return self._server

    @property
    def http_version(self) -> str:
        return self._http_version

    @property
    def state(self) -> dict[str, Any]:
        if self._state is None:
            self._state = {}
        return self._state

    def set_client(self, host: str, port: int | None = None) -> None:
        self._client = (host, port)

    def set_scheme(self, scheme: str) -> None:
        self._scheme = check_scheme(scheme)

    def set_server(self, host: str, port: int | None = None) -> None:
        self._server = (host, port)

    def set_root_path(self, root_path: str) -> None:
        root_path = check_root_path(root_path)
        rest = self._path[len(self._root_path) :]
        self._root_path, self._path = root_path, root_path + rest

    def set_header(self, name: bytes, value: bytes) -> None:
        self.remove_header(name)
        self.add_header(name, value)

    def add_header(self, name: bytes, value: bytes) -> None:
        check_header(name, value)
        self._headers.append((name, value))

    def remove_header(self, name: bytes) -> None:
        check_header(name)
        self._headers = [pair for pair in self._headers if pair[0] != name]
