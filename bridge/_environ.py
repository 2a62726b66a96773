"""Pure translation of an ASGI HTTP scope into a PEP 3333 environ.

No threads, loops or sockets here. The rules, from PEP 3333 and the ASGI HTTP spec:

- every environ value is a native ``str`` holding the latin-1 view of the bytes on the
  wire ("bytes-as-unicode"), so ``PATH_INFO`` is the UTF-8 path re-read as latin-1;
- ``SCRIPT_NAME`` is the scope's ``root_path``; it is cut from ``path`` only at a path
  segment boundary (a root of ``/app`` never eats ``/application``);
- header names with ``_`` are dropped: ``X_Forwarded_For`` would otherwise arrive as
  ``HTTP_X_FORWARDED_FOR`` and spoof the proxy's own header;
- repeated headers are joined with ``,`` (RFC 9110 5.3), cookies with ``; `` (RFC 6265),
  in linear time (collected, then joined once), and no field may exceed
  ``MAX_FIELD_BYTES`` once joined (431);
- nothing is read from ``os.environ``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any, Final
from urllib.parse import unquote_to_bytes

from bridge._types import Environ, Scope

_ERRORS_LOGGER = logging.getLogger("bridge.wsgi.errors")

_DROP: Final = ""  # cache marker for header names that never reach the environ
_SPECIAL_KEYS: Final = {b"content-type": "CONTENT_TYPE", b"content-length": "CONTENT_LENGTH"}
_KEY_CACHE: dict[bytes, str] = {}
_KEY_CACHE_LIMIT: Final = 2048
# Memory is bounded in bytes, not entries: clients choose header names, and uvicorn with
# httptools accepts a 16 MiB one. Names longer than this are converted on every request
# (linear in their size, which the client pays to send) and never stored. Registered
# header names are at most 40 bytes ("Cross-Origin-Embedder-Policy-Report-Only").
MAX_CACHED_NAME: Final = 64
MAX_FIELD_BYTES: Final = 1024 * 1024
"""The most bytes one request header field may hold once its repeats are joined."""
# A server's listening (host, port) -> (SERVER_NAME, SERVER_PORT): a server has a few,
# and a lookup beats making two strings per request. Bounded all the same.
_SERVER_CACHE: dict[tuple[Any, ...], tuple[str, str]] = {}
_SERVER_CACHE_LIMIT: Final = 64
_DEFAULT_PORTS: Final = {"http": "80", "https": "443", "ws": "80", "wss": "443"}
_MISSING: Final[Any] = object()


class RequestRejected(Exception):
    """The request cannot be handed to the app; answer ``status`` with ``reason``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class ErrorStream:
    """``wsgi.errors``: whatever the app writes becomes ``logging`` records, one per line."""

    # The partial line written so far. A class default, not set in an __init__: one is
    # made for every request and few are written to, and a Python __init__ frame cost
    # more than the rest of making it (callgrind: ~1.4k -> ~0.5k instructions).
    _pending = ""

    def write(self, text: str) -> int:
        lines = (self._pending + text).split("\n")
        self._pending = lines.pop()
        for line in lines:
            _ERRORS_LOGGER.error("%s", line)
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        if self._pending:
            _ERRORS_LOGGER.error("%s", self._pending)
            self._pending = ""


def environ_key(name: bytes) -> str:
    """The environ key for header ``name``, or ``""`` when the header must be dropped."""
    key = _KEY_CACHE.get(name)
    if key is None:
        lower = name.lower()
        if b"_" in lower:
            key = _DROP
        else:
            key = _SPECIAL_KEYS.get(lower) or (
                "HTTP_" + lower.decode("latin-1").upper().replace("-", "_")
            )
        if len(name) <= MAX_CACHED_NAME and len(_KEY_CACHE) < _KEY_CACHE_LIMIT:
            _KEY_CACHE[name] = key
    return key


def _path_bytes(scope: Scope) -> bytes:
    """The percent-decoded request path as bytes, as exact as the scope allows.

    ``path`` is already decoded; servers replace undecodable UTF-8 with U+FFFD, so in
    that case only ``raw_path`` still holds the client's bytes.
    """
    path: str = scope["path"]
    if "\ufffd" in path:
        raw = scope.get("raw_path")
        if raw:
            exact = unquote_to_bytes(raw.split(b"?", 1)[0])
            decoded = exact.decode("utf-8", "replace")
            if decoded == path:
                return exact
            if decoded.endswith(path):
                return exact[len(exact) - len(path.encode("utf-8", "replace")) :]
    return path.encode("utf-8", "surrogateescape")


def split_path(scope: Scope) -> tuple[str, str]:
    """``(SCRIPT_NAME, PATH_INFO)`` for the scope, both latin-1 views of UTF-8 bytes."""
    path = _path_bytes(scope)
    root = scope.get("root_path", "").encode("utf-8", "surrogateescape").rstrip(b"/")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == 0x2F):
        path = path[len(root) :]
    return root.decode("latin-1"), path.decode("latin-1")


def _server(scope: Scope, host_header: str | None) -> tuple[str, str]:
    scheme = scope.get("scheme", "http")
    server = scope.get("server")
    if server is not None:
        name, port = server
        return str(name), str(port) if port is not None else _DEFAULT_PORTS.get(scheme, "80")
    if host_header:
        name, sep, port = host_header.rpartition(":")
        if sep and port.isdigit() and not name.endswith(":"):
            return name.strip("[]"), port
        return host_header.strip("[]"), _DEFAULT_PORTS.get(scheme, "80")
    return "localhost", _DEFAULT_PORTS.get(scheme, "80")


def _shown(name: bytes) -> str:
    """A header name for a log line: the client chose its length."""
    shown = repr(name[:MAX_CACHED_NAME].decode("latin-1"))
    return shown + "..." if len(name) > MAX_CACHED_NAME else shown


# The keys every environ has (PEP 3333's required ones and ours), in one table that
# build_environ copies: it overwrites every placeholder.
_TEMPLATE: Final[Environ] = {
    "REQUEST_METHOD": "",
    "SCRIPT_NAME": "",
    "PATH_INFO": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "",
    "SERVER_PORT": "",
    "SERVER_PROTOCOL": "",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.input": None,
    "wsgi.input_terminated": True,
    "wsgi.errors": None,
    "wsgi.multithread": True,
    "wsgi.multiprocess": True,
    "wsgi.run_once": False,
    "asgi.scope": None,
}


class _Repeated:
    """A header field seen more than once: its parts, joined once at the end."""

    __slots__ = ("parts", "size")

    def __init__(self, first: str) -> None:
        self.parts = [first]
        self.size = len(first)


def build_environ(
    scope: Scope,
    body: object,
    *,
    max_header_repeats: int,
    max_field_bytes: int = MAX_FIELD_BYTES,
) -> Environ:
    """Translate an ASGI ``http`` scope into a WSGI environ whose input stream is ``body``.

    Raises :class:`RequestRejected` (431) when one header repeats more than
    ``max_header_repeats`` times or holds more than ``max_field_bytes`` bytes once its
    repeats are joined.
    """
    path: str = scope["path"]
    if path.isascii() and not scope.get("root_path"):
        # The usual request: no root to split off, and an ASCII path is its own
        # latin-1 view of its UTF-8 bytes (no U+FFFD either, so no raw_path lookup).
        script_name, path_info = "", path
    else:
        script_name, path_info = split_path(scope)
    # A copy of a template with every key a request always has, filled in: cheaper
    # than a literal grown key by key (callgrind: 24.4k -> 22.9k instructions a call).
    environ: Environ = _TEMPLATE.copy()
    environ["REQUEST_METHOD"] = scope["method"]
    environ["SCRIPT_NAME"] = script_name
    environ["PATH_INFO"] = path_info
    query: bytes = scope.get("query_string", b"")
    environ["QUERY_STRING"] = query.decode("latin-1") if query else ""
    environ["SERVER_PROTOCOL"] = "HTTP/" + scope.get("http_version", "1.1")
    if scope.get("scheme") in ("https", "wss"):
        environ["wsgi.url_scheme"] = "https"
    environ["wsgi.input"] = body
    environ["wsgi.errors"] = ErrorStream()
    environ["asgi.scope"] = scope
    # Repeated fields are collected and joined once at the end: joining as they come
    # copies the growing value every time (99 repeats of 512 KiB took seconds).
    repeated: dict[str, _Repeated] | None = None
    for name, value in scope["headers"]:
        key = _KEY_CACHE.get(name) or environ_key(name)
        if not key:
            continue
        if len(value) > max_field_bytes:
            raise RequestRejected(431, f"Header {_shown(name)} too large")
        text = value.decode("latin-1")
        existing = environ.get(key, _MISSING)
        if existing is _MISSING:
            environ[key] = text
            continue
        if repeated is None:
            repeated = {}
        field = repeated.get(key)
        if field is None:
            field = repeated[key] = _Repeated(existing)
        field.parts.append(text)
        if len(field.parts) > max_header_repeats:
            raise RequestRejected(431, f"Header {_shown(name)} repeated too often")
        field.size += 2 + len(text)  # counting the longer separator keeps this simple
        if field.size > max_field_bytes:
            raise RequestRejected(431, f"Header {_shown(name)} too large")
    if repeated is not None:
        for key, field in repeated.items():
            environ[key] = ("; " if key == "HTTP_COOKIE" else ",").join(field.parts)

    raw_path = scope.get("raw_path")
    if raw_path:
        # RAW_URI (gunicorn) / REQUEST_URI (uWSGI, Apache): the request target as sent,
        # so "%2F" survives where PATH_INFO has decoded it to "/".
        target = raw_path.decode("latin-1")
        if "?" not in target and environ["QUERY_STRING"]:
            target += "?" + environ["QUERY_STRING"]
        environ["RAW_URI"] = environ["REQUEST_URI"] = target
    server = scope.get("server")
    try:
        named = _SERVER_CACHE.get(server) if type(server) is tuple else None
    except TypeError:  # an unhashable part: left to the general case below
        named = None
    if named is not None:  # the usual scope: a listening address seen before
        environ["SERVER_NAME"], environ["SERVER_PORT"] = named
    elif server is not None and type(server[1]) is int:
        named = str(server[0]), str(server[1])
        # Only a pair of str and int is surely hashable (a list is not, nor is a tuple
        # holding one; ASGI allows a list).
        if (
            type(server) is tuple
            and len(server) == 2
            and type(server[0]) is str
            and len(_SERVER_CACHE) < _SERVER_CACHE_LIMIT
        ):
            _SERVER_CACHE[server] = named
        environ["SERVER_NAME"], environ["SERVER_PORT"] = named
    else:
        environ["SERVER_NAME"], environ["SERVER_PORT"] = _server(scope, environ.get("HTTP_HOST"))
    client = scope.get("client")
    if client is not None:
        host = client[0]
        environ["REMOTE_ADDR"] = host if type(host) is str else str(host)
        if client[1] is not None:
            environ["REMOTE_PORT"] = str(client[1])
    return environ
