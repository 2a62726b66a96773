"""``environ["bridge.disconnected"]``: how a WSGI view under ``WSGIToASGI`` learns its client left.

Long views (reports, slow queries) otherwise run to the end for nobody. The signal is
read-only for the view: the adapter sets it, once, when the client is gone.

It costs nothing until a view uses it: the adapter only listens for the server's
``http.disconnect`` after the first call to any of its methods (so the first
``is_set()`` of a view that polls is always ``False``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

logger = logging.getLogger("bridge.wsgi_to_asgi")


def _run_callbacks(callbacks: list[Callable[[], object]]) -> None:
    for callback in callbacks:
        try:
            callback()
        except Exception:
            logger.exception("a disconnect callback raised")


class DisconnectSignal:
    """Set when the client of a request served by ``WSGIToASGI`` has gone.

    Found in ``environ["bridge.disconnected"]``. The client is gone when the ASGI server
    reports ``http.disconnect``, when sending to it fails, or when the server cancels
    the request. Read-only: only the adapter sets it, and never clears it.

    The adapter starts listening at the first call to any method, and cannot while
    the view leaves more than 1 MiB of request body unread, or before it reads the
    body of an ``Expect: 100-continue`` request (listening would ask the client for it).
    """

    __slots__ = ("_callbacks", "_event", "_listen", "_lock", "_set")

    def __init__(self, listen: Callable[[], None], lock: threading.Lock) -> None:
        # Made for every request, asked about by few: only what is needed up front, and
        # the lock is the request's own (never held while this one is taken).
        # WSGIToASGI's exchange sets these same fields without calling this: keep the
        # two in step.
        self._listen: Callable[[], None] | None = listen
        self._lock = lock
        self._set = False
        self._event: threading.Event | None = None  # made for the first wait()
        self._callbacks: list[Callable[[], object]] | None = None

    def _start_listening(self) -> None:
        listen, self._listen = self._listen, None
        if listen is not None:
            listen()

    def _detach(self) -> None:
        """The request is over: never start listening (and drop the adapter's callable)."""
        self._listen = None

    def is_set(self) -> bool:
        """Whether the client has gone (a cheap poll)."""
        if self._listen is not None:
            self._start_listening()
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the client has gone or ``timeout`` seconds passed; ``is_set()``."""
        if self._listen is not None:
            self._start_listening()
        with self._lock:
            if self._set:
                return True
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        return event.wait(timeout)

    def add_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once when the client goes, e.g. to cancel a database query.

        Callbacks run in a short-lived thread of their own (never the event loop's,
        never the view's), in the order they were added; one that raises is logged and
        the others still run. Added after the client went, it runs at once, in the
        caller's thread.
        """
        if not callable(callback):
            raise TypeError(f"add_callback() needs a callable, got {callback!r}")
        if self._listen is not None:
            self._start_listening()
        with self._lock:
            if not self._set:
                if self._callbacks is None:
                    self._callbacks = []
                self._callbacks.append(callback)
                return
        _run_callbacks([callback])

    def _fire(self) -> None:
        """The adapter's side: the client has gone (idempotent)."""
        with self._lock:
            if self._set:
                return
            self._set = True
            event, callbacks, self._callbacks = self._event, self._callbacks, None
        if event is not None:
            event.set()
        if callbacks:
            threading.Thread(
                target=_run_callbacks,
                args=(callbacks,),
                name="bridge-disconnect-callbacks",
                daemon=True,
            ).start()

    def __repr__(self) -> str:
        return f"<DisconnectSignal {'set' if self._set else 'not set'}>"
