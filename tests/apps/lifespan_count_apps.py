"""An ASGI app that records every lifespan event with the thread it ran in, behind
``ASGIToWSGI`` in both loop modes, for ``tests/e2e/test_asgi_to_wsgi_lifespan_servers.py``.

Events go to the file named by ``LIFESPAN_COUNT_LOG`` as ``<event> <pid> <thread>``;
``/thread`` answers the name of the thread that served it, after a pause long enough
for concurrent requests to occupy different server threads.
"""

from __future__ import annotations

import asyncio
import os
import threading

from bridge._asgi_to_wsgi import ASGIToWSGI
from bridge._types import Receive, Scope, Send


def _record(event: str) -> None:
    with open(os.environ["LIFESPAN_COUNT_LOG"], "a") as file:
        file.write(f"{event} {os.getpid()} {threading.current_thread().name}\n")


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _record("startup")
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                _record("shutdown")
                await send({"type": "lifespan.shutdown.complete"})
                return
    await asyncio.sleep(0.5)
    name = threading.current_thread().name.encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": name})


application = ASGIToWSGI(app)
application_shared = ASGIToWSGI(app, loop_mode="shared")
