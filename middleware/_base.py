"""The base class of every middleware: picks the WSGI or ASGI driver at construction.

``X(app, **options)`` returns an instance of a subclass of ``X`` that mixes in the
driver for ``app``'s interface, so the result is a WSGI app for a WSGI app and an ASGI 3
app (with a real ``async def __call__``, which servers inspect) for an ASGI app, while
``isinstance(result, X)`` still holds. Nothing here converts between the interfaces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, overload

from middleware._asgi_driver import ASGIDriver
from middleware._core import Core, detect_interface
from middleware._wsgi_driver import WSGIDriver

if TYPE_CHECKING:
    from typing_extensions import Self

    from bridge._types import Environ, Receive, Scope, Send, StartResponse

__all__ = ["MiddlewareBase"]


class MiddlewareBase:
    """Common construction for the middleware classes; not meant to be subclassed by users."""

    _variants: ClassVar[dict[str, type[Any]]]
    app: Any
    _core: Core
    interface: str
    """``"wsgi"`` or ``"asgi"``: the interface of the wrapped app, and of this middleware."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_variant_of" in cls.__dict__:
            return
        cls._variants = {}
        for interface, driver in (("asgi", ASGIDriver), ("wsgi", WSGIDriver)):
            namespace = {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "__doc__": cls.__doc__,
                "_variant_of": cls,
            }
            cls._variants[interface] = type(cls.__name__, (driver, cls), namespace)

    def __new__(cls, app: Any, *args: Any, interface: str | None = None, **kwargs: Any) -> Self:
        variant: type[Self] = cls._variants[detect_interface(app, interface)]
        return object.__new__(variant)

    def _setup(self, app: Any, core: Core, interface: str | None) -> None:
        self.app = app
        self._core = core
        self.interface = detect_interface(app, interface)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.app!r}, interface={self.interface!r})"

    if TYPE_CHECKING:  # the driver mixins provide the real __call__

        @overload
        def __call__(
            self, environ: Environ, start_response: StartResponse, /
        ) -> Iterable[bytes]: ...
        @overload
        def __call__(self, scope: Scope, receive: Receive, send: Send, /) -> Awaitable[None]: ...
        def __call__(self, *args: Any) -> Any: ...
