"""Compose middleware, first = outermost, on either interface.

Ordering rules (first in the list sees the request first and the response last):

1. ``AccessLog`` outermost, so it times the whole stack and logs the status and the
   bytes the client really got (after compression, including CORS rejections).
2. ``CORS`` outside compression, so a preflight is answered before any other work and
   CORS headers are added to the compressed response's head unchanged.
3. ``GZip`` / ``Compress`` innermost, next to the app, so nothing after it needs to read
   the body in clear.

That is ``Stack([Middleware(AccessLog), Middleware(CORS, ...), Middleware(GZip)])``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar, cast

from middleware._core import detect_interface

__all__ = ["Middleware", "Stack"]

_App = TypeVar("_App", bound=Callable[..., object])

_FIX = {
    "wsgi": "bridge.to_asgi(stack(app)) outside the Stack",
    "asgi": "bridge.to_wsgi(stack(app)) outside the Stack",
}


class Middleware:
    """A middleware class and its options, applied later by :class:`Stack`."""

    __slots__ = ("cls", "options")

    def __init__(self, cls: Any, /, **options: Any) -> None:
        if not callable(cls):
            raise TypeError(f"Middleware() needs a middleware class, not {cls!r}")
        self.cls = cls
        self.options = options

    def __iter__(self) -> Iterator[Any]:
        # Starlette's Middleware unpacks as (cls, args, kwargs); so does ours.
        return iter((self.cls, (), self.options))

    def __repr__(self) -> str:
        options = "".join(f", {key}={value!r}" for key, value in self.options.items())
        return f"Middleware({getattr(self.cls, '__name__', self.cls)}{options})"


class Stack:
    """``Stack([Middleware(X, **options), ...])(app)``: the first entry is outermost.

    ``interface="wsgi"|"asgi"`` is handed to every layer when given; otherwise each layer
    detects it from what it wraps (our middleware keep the interface of their app).
    """

    __slots__ = ("_interface", "middleware")

    def __init__(self, middleware: Iterable[Middleware], *, interface: str | None = None) -> None:
        self.middleware = tuple(middleware)
        for entry in self.middleware:
            if not isinstance(entry, Middleware):
                raise TypeError(f"Stack() takes Middleware(...) entries, not {entry!r}")
        if interface not in (None, "wsgi", "asgi"):
            raise ValueError(f"interface must be 'wsgi' or 'asgi', not {interface!r}")
        self._interface = interface

    def __call__(self, app: _App) -> _App:
        """Wrap ``app`` in every layer; returns an app of the same interface (and, for
        type checkers, of the same type).

        Raises ``TypeError`` when an entry turns a WSGI app into an ASGI app or back
        (an adapter is not middleware): convert outside the stack instead.
        """
        wrapped: Any = app
        kind = detect_interface(app, self._interface)
        for entry in reversed(self.middleware):
            options = dict(entry.options)
            if self._interface is not None:
                options.setdefault("interface", self._interface)
            wrapped = entry.cls(wrapped, **options)
            after = getattr(wrapped, "interface", None)
            if after not in ("wsgi", "asgi"):
                after = detect_interface(wrapped, None)
            if after != kind:
                raise TypeError(
                    f"Stack entry {entry!r} turned the {kind.upper()} app into "
                    f"{after.upper()}; a Stack keeps its app's interface. "
                    f"Remove it from the Stack and use {_FIX[kind]}."
                )
        return cast(_App, wrapped)
