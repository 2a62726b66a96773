"""The few event-loop services ``WSGIToASGI`` needs, on trio.

On asyncio the adapter uses the running loop itself. Under trio (hypercorn ``-k trio``,
Starlette's ``TestClient(backend="trio")``) this module stands in for it with the same
method names, so the exchange's code is one for both and asyncio pays nothing for trio:

- ``call_soon_threadsafe``: a worker thread schedules a call on the trio thread
  (``TrioToken.run_sync_soon``; once the run is over it raises ``RuntimeError``, as a
  closed asyncio loop does);
- ``create_future``: a one-shot waiter the loop awaits and a callback resolves;
- ``create_task`` / ``call_later``: background work with a ``cancel()`` handle, run as
  trio *system tasks*: a request's receiver and queue timer belong to no nursery of
  ours, and like an asyncio task they end when cancelled or when the run ends.

Imported only when no asyncio loop is running, so trio is never imported otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine, Generator
from typing import Any

import trio

logger = logging.getLogger("bridge.wsgi_to_asgi")


class _Waiter:
    """What the exchange needs of an ``asyncio.Future[None]``: await it, resolve it once."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = trio.Event()

    def done(self) -> bool:
        return self._event.is_set()

    def set_result(self, result: None, /) -> None:
        self._event.set()

    def __await__(self) -> Generator[Any, None, None]:
        return self._event.wait().__await__()


class _Background:
    """A system task's handle: ``done()`` once it has finished, ``cancel()`` to stop it."""

    __slots__ = ("_done", "scope")

    def __init__(self) -> None:
        self.scope = trio.CancelScope()
        self._done = False

    def done(self) -> bool:
        return self._done

    def cancel(self) -> None:
        self.scope.cancel()


async def _run(handle: _Background, coro: Coroutine[Any, Any, None]) -> None:
    try:
        with handle.scope:
            await coro
    except Exception:
        # As an asyncio task's unretrieved exception would be: logged, not raised into
        # the run (a system task's exception would crash the whole server).
        logger.exception("a background task of WSGIToASGI failed")
    finally:
        handle._done = True


async def _later(handle: _Background, delay: float, fn: Callable[..., object], args: Any) -> None:
    with handle.scope:
        await trio.sleep(delay)
        fn(*args)


class TrioLoop:
    """The methods of ``asyncio.AbstractEventLoop`` the exchange calls, on this trio run."""

    __slots__ = ("_token",)

    def __init__(self, token: trio.lowlevel.TrioToken) -> None:
        self._token = token

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:
        self._token.run_sync_soon(callback, *args)

    def create_future(self) -> _Waiter:
        return _Waiter()

    def create_task(self, coro: Coroutine[Any, Any, None]) -> _Background:
        handle = _Background()
        trio.lowlevel.spawn_system_task(_run, handle, coro, name="bridge-receiver")
        return handle

    def call_later(self, delay: float, callback: Callable[..., object], *args: Any) -> _Background:
        handle = _Background()
        trio.lowlevel.spawn_system_task(_later, handle, delay, callback, args, name="bridge-timer")
        return handle


def current_loop() -> TrioLoop:
    """The running trio run's stand-in loop; ``RuntimeError`` when trio is not running."""
    try:
        token = trio.lowlevel.current_trio_token()
    except RuntimeError:
        raise RuntimeError(
            "WSGIToASGI must be called from a running asyncio or trio event loop"
        ) from None
    return TrioLoop(token)


async def to_thread(fn: Callable[[], object]) -> object:
    """Run ``fn`` in a thread and wait for it (``asyncio.to_thread``'s trio twin)."""
    return await trio.to_thread.run_sync(fn)
