"""Pure translation for ``ASGIToWSGI``: a WSGI environ in, an ASGI HTTP scope out, and an
ASGI ``http.response.start`` message back out as a WSGI status line and header list.

Implements the ASGI HTTP connection scope (ASGI spec "HTTP & WebSocket", version 2.4)
from the CGI variables of PEP 3333. Rules this file keeps:

* No I/O, no threads, no event loops: everything here is a function of its arguments,
  so every edge case is a row in ``tests/bridge/test_scope.py``.
* PEP 3333 environ strings are latin-1 "bytes in disguise"; ASGI wants real text for
  ``path`` (UTF-8) and bytes for ``raw_path``, ``query_string`` and headers. A path that
  is not UTF-8 cannot be represented in a scope: that is the client's fault, reported as
  ``ScopeError`` so the adapter answers 400 instead of crashing.
* ``root_path`` is ``SCRIPT_NAME`` and ``path`` *includes* it (the ASGI convention since
  spec 2.x clarified it; Starlette's and Django's routers strip ``root_path`` themselves).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote_from_bytes, unquote_to_bytes

from bridge._http import (
    HOP_BY_HOP,
    InvalidResponse,
    invalid_value_bytes,
    is_token_bytes,
    status_line,
)
from bridge._types import Environ, Headers, Scope

ASGI_VERSION = {"version": "3.0", "spec_version": "2.4"}

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}

# SERVER_PROTOCOL -> scope["http_version"]; the spec allows "1.0", "1.1" and "2".
_HTTP_VERSIONS = {
    "HTTP/1.1": "1.1",
    "HTTP/1.0": "1.0",
    "HTTP/2": "2",
    "HTTP/2.0": "2",
    "HTTP/3": "3",
    "HTTP/3.0": "3",
}

# Environ key -> ASGI header name (None for keys that are no header: CGI variables,
# wsgi.*, server extras), memoised because the same few dozen keys arrive on every
# request. Bounded so that clients inventing header names cannot grow it forever.
_HEADER_NAMES: dict[str, bytes | None] = {}
_UNSEEN = b"<unseen>"  # compared by identity
_HEADER_NAMES_MAX = 1024
# ... and bounded in bytes: a longer key (registered header names are at most 40 bytes,
# "HTTP_" adds 5) is converted on every request and never stored, so that one request
# with a huge invented name cannot pin its size for the life of the process.
_MAX_CACHED_NAME = 64
# PEP 3333 moves these out of the HTTP_ namespace; they are read from the CGI names,
# where an empty value means "absent". A server's extra HTTP_CONTENT_* copy is ignored.
_SHADOWED = ("HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH")
# Response header name -> its WSGI str (None: hop-by-hop, dropped); valid names only.
_RESPONSE_NAMES: dict[bytes, str | None] = {}
_NOT_CACHED = "<not cached>"  # compared by identity
_STATUS_LINES: dict[int, str] = {}
# Characters that may appear unescaped in a path (RFC 3986 pchar plus "/").
_PATH_SAFE = "/:@!$&'()*+,;=-._~"
_PATH_SAFE_BYTES = (
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + _PATH_SAFE.encode()
)


class ScopeError(ValueError):
    """The request cannot be expressed as an ASGI scope; the client's fault (answer 400)."""


def http_version(server_protocol: str) -> str:
    """``scope["http_version"]`` for a ``SERVER_PROTOCOL`` value (unknown -> ``"1.1"``)."""
    return _HTTP_VERSIONS.get(server_protocol.upper(), "1.1")


def _header_name(key: str) -> bytes | None:
    """The ASGI header name for environ key ``key``, or ``None`` when it is no header."""
    name = None
    if key[:5] == "HTTP_" and key not in _SHADOWED:
        name = key[5:].replace("_", "-").lower().encode("latin-1")
    if len(key) <= _MAX_CACHED_NAME and len(_HEADER_NAMES) < _HEADER_NAMES_MAX:
        _HEADER_NAMES[key] = name
    return name


def request_headers(environ: Mapping[str, Any]) -> list[tuple[bytes, bytes]]:
    """The request headers as lowercase ``(name, value)`` bytes pairs.

    Values are str of latin-1 code points per PEP 3333, so ``encode("latin-1")`` gives
    back the bytes the client sent.
    """
    # Every environ key is looked up once in the memo (header name, or None for the
    # CGI and wsgi.* keys): cheaper per key than testing its prefix.
    known = _HEADER_NAMES.get
    headers = []
    for key, value in environ.items():
        name = known(key, _UNSEEN)
        if name is None:
            continue
        if name is _UNSEEN:
            name = _header_name(key)
            if name is None:
                continue
        headers.append((name, value.encode("latin-1")))
    value = environ.get("CONTENT_TYPE")
    if value:
        headers.append((b"content-type", value.encode("latin-1")))
    value = environ.get("CONTENT_LENGTH")
    if value:
        headers.append((b"content-length", value.encode("latin-1")))
    return headers


def _raw_path(environ: Mapping[str, Any], path_bytes: bytes) -> bytes:
    # RAW_URI (gunicorn) and REQUEST_URI (waitress, uWSGI, Apache) keep the request
    # target exactly as sent, percent-escapes included. Trust it only when it still
    # names the same path: a dispatcher or rewriting middleware may have changed
    # SCRIPT_NAME/PATH_INFO since the server built the environ.
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if target:
        raw = str(target).split("?", 1)[0].split("#", 1)[0]
        if "://" in raw:  # absolute-form (RFC 9112 3.2.2): keep the path part only
            raw = "/" + raw.split("://", 1)[1].partition("/")[2]
        try:
            raw_bytes = raw.encode("latin-1")
        except UnicodeEncodeError:
            raw_bytes = b""
        if raw_bytes == path_bytes or (
            b"%" in raw_bytes and unquote_to_bytes(raw_bytes) == path_bytes
        ):
            return raw_bytes
    if not path_bytes.rstrip(_PATH_SAFE_BYTES):
        return path_bytes  # nothing to escape (the common case)
    return quote_from_bytes(path_bytes, safe=_PATH_SAFE).encode("ascii")


def _server(environ: Mapping[str, Any], scheme: str) -> tuple[str, int | None] | None:
    name = environ.get("SERVER_NAME")
    if not name:
        return None
    port = str(environ.get("SERVER_PORT") or "")
    if port.isdigit():
        return (name, int(port))
    # Missing, empty or non-numeric: the scheme's default is what the client used.
    return (name, _DEFAULT_PORTS.get(scheme))


def _client(environ: Mapping[str, Any]) -> tuple[str, int | None] | None:
    host = environ.get("REMOTE_ADDR")
    if not host:
        return None
    port = str(environ.get("REMOTE_PORT") or "")
    # Unix sockets and some servers give no port: say "unknown" rather than invent 0.
    return (host, int(port) if port.isdigit() else None)


def http_scope(
    environ: Environ,
    *,
    state: dict[str, Any] | None = None,
    extensions: dict[str, dict[object, object]] | None = None,
) -> Scope:
    """The ASGI ``http`` scope for one WSGI request.

    Raises ``ScopeError`` when ``SCRIPT_NAME``/``PATH_INFO`` are not UTF-8 (answer 400).
    """
    # Runs for every ASGIToWSGI request, so the common shapes (ASCII path, numeric
    # ports, a raw target equal to the path) are handled inline; anything else goes
    # through the general helpers above, which define the behaviour.
    get = environ.get
    script_name: str = get("SCRIPT_NAME", "")
    path_info: str = get("PATH_INFO", "")
    full = script_name + path_info if script_name else path_info
    if full.isascii():
        # ASCII is its own latin-1 and UTF-8 form: the str is already the path.
        path = full
        path_bytes = full.encode("ascii")
        root_path = script_name
        target = get("RAW_URI") or get("REQUEST_URI")
        if not target:
            raw_path = path_bytes if not path_bytes.rstrip(_PATH_SAFE_BYTES) else None
        elif type(target) is str and target.partition("?")[0] == full and "#" not in full:
            # The server's raw target names this very path ("://" would have made the
            # absolute-form rule apply, so it must not be there either).
            raw_path = path_bytes if "://" not in full else None
        else:
            raw_path = None
        if raw_path is None:
            raw_path = _raw_path(environ, path_bytes)
    else:
        try:
            path_bytes = full.encode("latin-1")
            path = path_bytes.decode("utf-8")
            root_path = script_name.encode("latin-1").decode("utf-8") if script_name else ""
        except UnicodeError as exc:
            raise ScopeError(f"request path is not UTF-8: {full!r}") from exc
        raw_path = _raw_path(environ, path_bytes)
    query: str = get("QUERY_STRING", "")
    if query.isascii():
        query_string = query.encode("ascii")
    else:
        try:
            query_string = query.encode("latin-1")
        except UnicodeEncodeError:
            # Not PEP 3333 (the server decoded as something other than latin-1): keep
            # the characters rather than fail the request.
            query_string = query.encode("utf-8")
    scheme: str = get("wsgi.url_scheme", "http")
    protocol = get("SERVER_PROTOCOL", "HTTP/1.1")
    name = get("SERVER_NAME")
    port = get("SERVER_PORT")
    if name and type(port) is str and port.isdigit():
        server: tuple[str, int | None] | None = (name, int(port))
    else:
        server = _server(environ, scheme)
    host = get("REMOTE_ADDR")
    port = get("REMOTE_PORT")
    if host and type(port) is str and port.isdigit():
        client: tuple[str, int | None] | None = (host, int(port))
    else:
        client = _client(environ)
    scope: Scope = {
        "type": "http",
        # A fresh dict per scope: apps may write to scope dicts.
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": _HTTP_VERSIONS.get(protocol) or http_version(protocol),
        "method": get("REQUEST_METHOD", "GET").upper(),
        "scheme": scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": query_string,
        "root_path": root_path,
        "headers": request_headers(environ),
        "client": client,
        "server": server,
        "extensions": extensions if extensions is not None else {},
    }
    if state is not None:
        scope["state"] = state
    return scope


def _response_name(name: bytes) -> str | None:
    if not is_token_bytes(name):
        raise InvalidResponse(f"header name {name!r} is not an HTTP token")
    text = name.decode("latin-1")
    result = None if text.lower() in HOP_BY_HOP else text
    if len(name) <= _MAX_CACHED_NAME and len(_RESPONSE_NAMES) < _HEADER_NAMES_MAX:
        _RESPONSE_NAMES[name] = result
    return result


def response_head(message: Mapping[str, Any]) -> tuple[str, Headers]:
    """WSGI ``(status, headers)`` for an ASGI ``http.response.start`` message.

    Raises ``InvalidResponse`` for a status that is not an int in 200-999 (WSGI cannot
    send 1xx) or a header that is not a bytes token name with a CR/LF/NUL-free value.
    Hop-by-hop headers are dropped: PEP 3333 reserves them for the server (wsgiref
    asserts on them).
    """
    status = message.get("status")
    if type(status) is not int or not 200 <= status <= 999:
        raise InvalidResponse(f"invalid status {status!r} in http.response.start")
    headers: Headers = []
    raw_headers: Iterable[Any] = message.get("headers", ())
    for item in raw_headers:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise InvalidResponse(f"header {item!r} is not a (name, value) pair") from None
        if not isinstance(value, bytes):
            raise InvalidResponse(
                f"header {name!r} value {value!r} is not bytes free of CR, LF, NUL"
            )
        text = value.decode("latin-1")
        # A printable str has no control character at all (checked in C); anything else
        # (a tab, bytes 0x80-0xA0) gets the exact test.
        if not text.isprintable() and invalid_value_bytes(value):
            raise InvalidResponse(
                f"header {name!r} value {value!r} is not bytes free of CR, LF, NUL"
            )
        if type(name) is not bytes:
            raise InvalidResponse(f"header name {name!r} is not bytes")
        text_name = _RESPONSE_NAMES.get(name, _NOT_CACHED)
        if text_name is _NOT_CACHED:
            text_name = _response_name(name)
        if text_name is not None:
            headers.append((text_name, text))
    line = _STATUS_LINES.get(status)
    if line is None:
        line = _STATUS_LINES[status] = status_line(status)
    return line, headers


def early_hint_headers(message: Mapping[str, Any]) -> Headers:
    """WSGI ``wsgi.early_hints`` headers (one ``Link`` each) for an ASGI
    ``http.response.early_hint`` message.

    Raises ``InvalidResponse`` unless ``links`` is an iterable of bytes free of CR, LF
    and NUL: a 103 is written to the wire like any head.
    """
    links = message.get("links", ())
    if isinstance(links, (bytes, str)):  # one value, not an iterable of values
        raise InvalidResponse(f"http.response.early_hint 'links' must be a list, not {links!r}")
    try:
        values = list(links)
    except TypeError:
        raise InvalidResponse(f"http.response.early_hint 'links' {links!r}: not a list") from None
    headers: Headers = []
    for item in values:
        value = bytes(item) if isinstance(item, (bytearray, memoryview)) else item
        if type(value) is not bytes or invalid_value_bytes(value):
            raise InvalidResponse(
                f"http.response.early_hint link {item!r} is not bytes free of CR, LF, NUL"
            )
        value = value.strip(b" \t")
        if value:
            headers.append(("Link", value.decode("latin-1")))
    return headers
