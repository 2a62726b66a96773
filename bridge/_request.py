"""The request facts both interfaces share, read from an ``environ`` the way
``ASGIToWSGI`` turns it into a scope.

Pure functions of their argument (no I/O, no threads, no loops). The middleware drivers
read a WSGI request through these, so a request seen through WSGI reports the same
client, server, HTTP version and root path as the ASGI scope ``ASGIToWSGI`` would build
for it (``http_version`` ``"2"``, never ``"2.0"``; an unknown client port is ``None``,
never an invented ``0``). The scope side needs no helper: its fields are the facts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bridge._scope import _client, _server, http_version, request_headers

__all__ = [
    "environ_client",
    "environ_http_version",
    "environ_root_path",
    "environ_server",
    "request_headers",
]


def environ_client(environ: Mapping[str, Any]) -> tuple[str, int | None] | None:
    """``scope["client"]`` for an environ: ``REMOTE_ADDR`` and ``REMOTE_PORT`` (or ``None``)."""
    return _client(environ)


def environ_server(environ: Mapping[str, Any]) -> tuple[str, int | None] | None:
    """``scope["server"]``: ``SERVER_NAME`` and ``SERVER_PORT`` (the scheme's default port
    when the port is missing or not a number)."""
    return _server(environ, environ.get("wsgi.url_scheme", "http"))


def environ_http_version(environ: Mapping[str, Any]) -> str:
    """``scope["http_version"]``: ``"1.0"``, ``"1.1"``, ``"2"`` or ``"3"``."""
    return http_version(environ.get("SERVER_PROTOCOL", "HTTP/1.1"))


def environ_root_path(environ: Mapping[str, Any]) -> str:
    """``scope["root_path"]``: ``SCRIPT_NAME`` as text (PEP 3333 hands over the URL's
    UTF-8 bytes as latin-1 code points; undecodable bytes become U+FFFD)."""
    script_name: str = environ.get("SCRIPT_NAME", "")
    if script_name.isascii():
        return script_name
    return script_name.encode("latin-1").decode("utf-8", "replace")
