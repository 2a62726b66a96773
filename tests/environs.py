"""A plain WSGI environ for table tests of the environ -> scope translation."""

from __future__ import annotations

import io
from typing import Any


def plain_environ(**overrides: Any) -> dict[str, Any]:
    """A GET / environ from ``10.0.0.1:40000`` to ``example.com:8080`` over HTTP/1.1,
    with ``overrides`` applied; an override of ``None`` removes that key."""
    base: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/",
        "QUERY_STRING": "",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "8080",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.1",
        "REMOTE_PORT": "40000",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
    }
    for key, value in overrides.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base
