"""Which interface a callable speaks, and ``to_asgi`` / ``to_wsgi`` built on that.

Detection, in order: an explicit mark (``wsgi_app`` / ``asgi_app``, or the
``interface=`` argument); our own adapters; a coroutine function (or object whose
``__call__`` is one) is ASGI 3; otherwise the number of positional parameters decides:
two is WSGI (``environ, start_response``), one is ASGI 2 (``scope``), three is ASGI 3
returning an awaitable. Anything else is ambiguous and raises, never guesses.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal, TypeVar

from asgiref.compatibility import guarantee_single_callable

from bridge._asgi_to_wsgi import ASGIToWSGI
from bridge._types import ASGIApp, WSGIApp
from bridge._wsgi_to_asgi import WSGIToASGI

Interface = Literal["wsgi", "asgi3", "asgi2"]
_MARK = "__bridge_interface__"
_AppT = TypeVar("_AppT")


def wsgi_app(app: _AppT) -> _AppT:
    """Declare that ``app`` is a WSGI app (for callables detection cannot tell apart)."""
    setattr(app, _MARK, "wsgi")
    return app


def asgi_app(app: _AppT) -> _AppT:
    """Declare that ``app`` is an ASGI 3 app (for callables detection cannot tell apart)."""
    setattr(app, _MARK, "asgi3")
    return app


def _positional_count(app: Any) -> int | None:
    target = app.__init__ if inspect.isclass(app) else app
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    count = 0
    for parameter in signature.parameters.values():
        if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
            return None
        if parameter.kind in (
            inspect.Parameter.POSITIONAL_ONLY,
            inspect.Parameter.POSITIONAL_OR_KEYWORD,
        ) and (parameter.default is inspect.Parameter.empty):
            count += 1
    if inspect.isclass(app):
        count -= 1  # self
    return count


def interface_of(app: object) -> Interface:
    """``"wsgi"``, ``"asgi3"`` or ``"asgi2"``; raises ``TypeError`` when it cannot tell."""
    declared = getattr(app, _MARK, None)
    if declared in ("wsgi", "asgi3", "asgi2"):
        return declared  # type: ignore[no-any-return]
    if not callable(app):
        raise TypeError(f"{app!r} is not callable, so it is neither a WSGI nor an ASGI app")
    if isinstance(app, WSGIToASGI):
        return "asgi3"
    if isinstance(app, ASGIToWSGI):
        return "wsgi"
    # A class is called once per request, so its own __call__ says nothing here:
    # its constructor's parameters decide (ASGI 2: scope; WSGI: environ, start_response).
    if not inspect.isclass(app) and (
        inspect.iscoroutinefunction(app) or inspect.iscoroutinefunction(type(app).__call__)
    ):
        return "asgi3"
    count = _positional_count(app)
    if count == 2:
        return "wsgi"
    if count == 1:
        return "asgi2"
    if count == 3:
        return "asgi3"
    raise TypeError(
        f"cannot tell whether {app!r} is a WSGI or an ASGI app; declare it with "
        "bridge.wsgi_app(app) or bridge.asgi_app(app), or pass interface='wsgi'/'asgi3'"
    )


def to_asgi(app: Any, *, interface: Interface | None = None, **options: Any) -> ASGIApp:
    """``app`` as an ASGI 3 app: WSGI apps are wrapped in :class:`WSGIToASGI` (with
    ``options``), ASGI 2 apps made single-callable, ASGI 3 apps returned unchanged.

    An ``ASGIToWSGI`` is unwrapped rather than adapted twice.
    """
    kind = interface or interface_of(app)
    if kind == "asgi3":
        return app  # type: ignore[no-any-return]
    if kind == "asgi2":
        return guarantee_single_callable(app)  # type: ignore[no-untyped-call,no-any-return]
    if isinstance(app, ASGIToWSGI) and not options:
        return to_asgi(app.app)
    return WSGIToASGI(app, **options)


def to_wsgi(app: Any, *, interface: Interface | None = None, **options: Any) -> WSGIApp:
    """``app`` as a WSGI app: ASGI apps are wrapped in ``ASGIToWSGI`` (with ``options``),
    WSGI apps returned unchanged; a :class:`WSGIToASGI` is unwrapped, not adapted twice.
    """
    kind = interface or interface_of(app)
    if kind == "wsgi":
        return app  # type: ignore[no-any-return]
    if isinstance(app, WSGIToASGI) and not options:
        return app.app
    return ASGIToWSGI(app, **options)
