"""The base class a middleware made from a core derives from; picks the driver per app.

``X(app, **options)`` returns an app of ``app``'s interface: an instance of ``X.WSGI``
for a WSGI app, of ``X.ASGI`` for an ASGI 3 app. Both are subclasses of ``X`` made once
when ``X`` is defined, each mixing in one driver, because servers tell the interfaces
apart by looking at the class (``async def __call__`` means ASGI 3) and one class cannot
answer both ways. So ``isinstance(m, X)`` holds, ``type(m)`` is ``X.WSGI`` or ``X.ASGI``
(never ``X`` itself) and ``m.interface`` says which. Nothing converts between interfaces.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, overload

from middleware._asgi_driver import ASGIDriver
from middleware._core import AddHeaders, Core, Handler, RequestHead, Response, detect_interface
from middleware._wsgi_driver import WSGIDriver

if TYPE_CHECKING:
    from typing_extensions import Self

    from bridge._types import Environ, Receive, Scope, Send, StartResponse

__all__ = ["CoreMiddleware"]


class CoreMiddleware:
    """Subclass this, and call ``super().__init__(app, core, interface=interface)``.

    ``core`` is the :class:`middleware.api.Core` that decides every request; the
    instance is a WSGI app for a WSGI app and an ASGI 3 app for an ASGI app (see the
    module docstring for exactly what ``X(app)`` returns).
    """

    WSGI: ClassVar[type[Any]]
    """The subclass ``X(wsgi_app)`` returns: ``X`` with the WSGI driver."""
    ASGI: ClassVar[type[Any]]
    """The subclass ``X(asgi_app)`` returns: ``X`` with the ASGI driver."""
    _variant_of: ClassVar[type[Any] | None] = None
    app: Any
    """The wrapped app."""
    interface: str
    """``"wsgi"`` or ``"asgi"``: the interface of the wrapped app, and of this middleware."""
    _core: Core
    _on_request: Callable[[RequestHead], Handler | Response | AddHeaders | None]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_variant_of" in cls.__dict__:
            return
        for interface, driver in (("ASGI", ASGIDriver), ("WSGI", WSGIDriver)):
            namespace = {
                "__module__": cls.__module__,
                "__qualname__": f"{cls.__qualname__}.{interface}",
                "__doc__": cls.__doc__,
                "_variant_of": cls,
            }
            setattr(cls, interface, type(cls.__name__, (driver, cls), namespace))

    def __new__(cls, app: Any, *args: Any, interface: str | None = None, **kwargs: Any) -> Self:
        if cls is CoreMiddleware:
            raise TypeError("CoreMiddleware is a base class: subclass it (see docs)")
        base = cls._variant_of or cls
        chosen = base.ASGI if detect_interface(app, interface) == "asgi" else base.WSGI
        variant: type[Self] = chosen
        return object.__new__(variant)

    def __init__(self, app: Any, core: Core, *, interface: str | None = None) -> None:
        if not isinstance(core, Core):
            raise TypeError(f"{type(self).__name__}: core must be a middleware.api.Core")
        self.app = app
        self._core = core
        # Bound once: the drivers call it per request.
        self._on_request = core.on_request
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
