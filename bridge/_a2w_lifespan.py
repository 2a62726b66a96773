"""The ASGI lifespan protocol ("Lifespan" 2.0) for ``ASGIToWSGI``, on one event loop.

``startup()`` runs once before the loop's first request and ``shutdown()`` at close;
``state`` is what the app stored for its requests' scopes. "auto" mode recognises an
app without lifespan support (it raises, or answers the scope as if it were HTTP).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from enum import Enum, auto
from typing import Any, Literal

from bridge._scope import ASGI_VERSION
from bridge._types import ASGIApp, Message, Scope

logger = logging.getLogger("bridge.asgi_to_wsgi")

LifespanMode = Literal["auto", "on", "off"]

# How long a cancelled lifespan task may take to unwind before it is abandoned.
CANCEL_GRACE = 5.0


class LifespanStartupFailed(RuntimeError):
    """The ASGI app reported (or raised) a lifespan startup failure."""


def _resolve(future: asyncio.Future[Any], value: Any = None) -> None:
    if not future.done():
        future.set_result(value)


class LifespanUnsupported(Exception):
    """Raised into an app that sends a non-lifespan message on the lifespan scope."""


class LifespanPhase(Enum):
    NOT_STARTED = auto()
    READY = auto()  # startup complete (or lifespan off / unsupported)
    FAILED = auto()
    SHUT_DOWN = auto()


class Lifespan:
    """The lifespan protocol on one event loop: startup once, shutdown at close."""

    def __init__(
        self,
        app: ASGIApp,
        mode: LifespanMode,
        timeout: float,
        on_unsupported: Callable[[BaseException | None], None],
    ) -> None:
        self.app = app
        self.mode = mode
        self.timeout = timeout
        self.on_unsupported = on_unsupported
        self._unsupported = False
        self.phase = LifespanPhase.NOT_STARTED
        self.state: dict[str, Any] = {}
        self.failure = ""
        self._task: asyncio.Task[None] | None = None
        self._inbox: asyncio.Queue[Message] | None = None
        self._started: asyncio.Future[str | None] | None = None
        self._stopped: asyncio.Future[str | None] | None = None
        self._error: BaseException | None = None

    async def startup(self) -> None:
        if self.phase is not LifespanPhase.NOT_STARTED:
            return
        if self.mode == "off":
            self.phase = LifespanPhase.READY
            return
        loop = asyncio.get_running_loop()
        self._inbox = asyncio.Queue()
        self._started = loop.create_future()
        self._stopped = loop.create_future()
        self._task = loop.create_task(self._main())
        self._inbox.put_nowait({"type": "lifespan.startup"})
        waiters: list[asyncio.Future[Any]] = [self._started, self._task]
        await asyncio.wait(
            waiters,
            timeout=self.timeout,
            return_when=asyncio.FIRST_COMPLETED,
        )
        if self._unsupported or (self._task.done() and not self._started.done()):
            if self.mode == "auto":
                # ASGI lifespan spec: an app that raises on this scope (or, like uvicorn
                # and hypercorn accept, answers it as if it were HTTP) does not support it.
                self.on_unsupported(self._error)
                await self._stop_task()
                self.phase = LifespanPhase.READY
            else:
                self._fail("the app's lifespan handler ended before startup completed")
        elif self._started.done():
            failure = self._started.result()
            if failure is None:
                self.phase = LifespanPhase.READY
                return
            self._fail(f"the app sent lifespan.startup.failed: {failure}")
        else:
            self._fail(f"lifespan startup did not complete within {self.timeout}s")
            await self._stop_task()

    def _fail(self, reason: str) -> None:
        self.phase = LifespanPhase.FAILED
        self.failure = reason
        logger.error(
            "ASGI lifespan startup failed; requests will be answered 500: %s",
            reason,
            exc_info=self._error,
        )

    async def _main(self) -> None:
        assert self._inbox is not None
        scope: Scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": self.state}
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:  # reported by startup()/shutdown(), which know the context
            self._error = exc

    async def _receive(self) -> Message:
        assert self._inbox is not None
        return await self._inbox.get()

    async def _send(self, message: Message) -> None:
        assert self._started is not None
        assert self._stopped is not None
        kind = message["type"]
        if kind == "lifespan.startup.complete":
            _resolve(self._started, None)
        elif kind == "lifespan.startup.failed":
            _resolve(self._started, str(message.get("message", "")) or "no message")
        elif kind == "lifespan.shutdown.complete":
            _resolve(self._stopped, None)
        elif kind == "lifespan.shutdown.failed":
            _resolve(self._stopped, str(message.get("message", "")) or "no message")
        elif self.mode == "auto" and not self._started.done():
            # Not a lifespan message: the app treats every scope as HTTP.
            self._unsupported = True
            _resolve(self._started, None)
            self._error = LifespanUnsupported(f"the app sent {kind!r} on the lifespan scope")
            raise self._error
        else:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r}")

    async def shutdown(self) -> None:
        was_ready = self.phase is LifespanPhase.READY
        self.phase = LifespanPhase.SHUT_DOWN
        task, inbox, stopped = self._task, self._inbox, self._stopped
        if task is None or inbox is None or stopped is None:
            return  # never started, unsupported, or already shut down
        if was_ready and not task.done():
            inbox.put_nowait({"type": "lifespan.shutdown"})
            waiters: list[asyncio.Future[Any]] = [stopped, task]
            await asyncio.wait(waiters, timeout=self.timeout, return_when=asyncio.FIRST_COMPLETED)
            if not stopped.done():
                logger.error("ASGI lifespan shutdown did not complete", exc_info=self._error)
            elif (failure := stopped.result()) is not None:
                logger.error("ASGI lifespan shutdown failed: %s", failure)
        await self._stop_task()

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        if not task.done():
            task.cancel()
            await asyncio.wait([task], timeout=CANCEL_GRACE)
        if task.done() and not task.cancelled():
            task.result()
