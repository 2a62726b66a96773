"""Type aliases for both interfaces, shared by every module of the toolkit.

The ASGI aliases are structural (``MutableMapping[str, Any]`` messages) rather than
asgiref's TypedDicts so that our apps type-check wherever Starlette and FastAPI accept
an ``ASGIApp``: their aliases have exactly this shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from types import TracebackType
from typing import Any, Protocol, TypeAlias

# --- ASGI 3 -------------------------------------------------------------------------
Scope: TypeAlias = MutableMapping[str, Any]
Message: TypeAlias = MutableMapping[str, Any]
Receive: TypeAlias = Callable[[], Awaitable[Message]]
Send: TypeAlias = Callable[[Message], Awaitable[None]]
ASGIApp: TypeAlias = Callable[[Scope, Receive, Send], Awaitable[None]]

# --- WSGI (PEP 3333) ------------------------------------------------------------------
Environ: TypeAlias = dict[str, Any]
ExcInfo: TypeAlias = tuple[type[BaseException], BaseException, TracebackType]
OptExcInfo: TypeAlias = ExcInfo | tuple[None, None, None]
Headers: TypeAlias = list[tuple[str, str]]


class StartResponse(Protocol):
    """The ``start_response`` callable a WSGI server hands to an application."""

    def __call__(
        self, status: str, headers: Headers, exc_info: OptExcInfo | None = ..., /
    ) -> Callable[[bytes], object]: ...


WSGIApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]
