"""An ASGI app under ``ASGIToWSGI`` that reports the forwarding headers it was given.

Served by real WSGI servers in ``tests/faults/test_underscore_headers.py`` to show which
servers turn ``X_Forwarded_For`` into ``HTTP_X_FORWARDED_FOR`` (and so into the ASGI
app's ``x-forwarded-for``).
"""

from __future__ import annotations

import json
from typing import Any

from bridge import ASGIToWSGI


async def _report(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    seen = [
        [name.decode("latin-1"), value.decode("latin-1")]
        for name, value in scope["headers"]
        if b"forwarded" in name.replace(b"_", b"-")
    ]
    body = json.dumps(seen).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


application = ASGIToWSGI(_report, lifespan="off")
