"""Which interface a callable speaks, and ``to_asgi`` / ``to_wsgi`` built on that.

Detection, in order: an explicit mark (``wsgi_app`` / ``asgi_app``, or the
``interface=`` argument); our own adapters; a coroutine function (or object whose
``__call__`` is one) is ASGI 3; otherwise the number of positional parameters decides:
two is WSGI (``environ, start_response``), one is ASGI 2 (``scope``), three is ASGI 3
returning an awaitable. Anything else is ambiguous and raises, never guesses.

It also holds the construction-time checks every adapter calls (``require_interface``,
``require_int``), so misuse fails at once with the fix in the message instead of as a
bare 500 at request time. It imports no adapter at module level, so adapters can
import it.
"""

from __future__ import annotations

import inspect
from typing import Any, Literal, TypeVar

from asgiref.compatibility import guarantee_single_callable

from bridge._types import ASGIApp, WSGIApp

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
    # Our adapters need no special case: WSGIToASGI carries the mark on its class, and
    # ASGIToWSGI's __call__(environ, start_response) is detected as WSGI.
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
    from bridge._asgi_to_wsgi import ASGIToWSGI  # here: adapters import this module
    from bridge._wsgi_to_asgi import WSGIToASGI

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
    from bridge._asgi_to_wsgi import ASGIToWSGI  # here: adapters import this module
    from bridge._wsgi_to_asgi import WSGIToASGI

    kind = interface or interface_of(app)
    if kind == "wsgi":
        return app  # type: ignore[no-any-return]
    if isinstance(app, WSGIToASGI) and not options:
        return app.app
    return ASGIToWSGI(app, **options)


def _describe(app: object) -> str:
    kind = type(app)
    name = (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )
    text = repr(app)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} (a {name})"


def require_interface(app: object, expected: Literal["wsgi", "asgi"], adapter_name: str) -> None:
    """Raise ``TypeError`` unless ``app`` can be what the adapter ``adapter_name`` wraps.

    ``expected`` is the interface the adapter takes: ``"wsgi"`` (``WSGIToASGI``) or
    ``"asgi"`` (``ASGIToWSGI``; ASGI 3 or ASGI 2). The message names what was passed,
    what was expected and the call that fixes it. An app detected as the other
    interface is refused, and so is an adapter wrapped in its own kind (``WSGIToASGI(
    WSGIToASGI(app))``). An app whose interface cannot be detected (``*args``, no
    signature) is accepted: the caller chose this adapter for it.
    """
    if not callable(app):
        raise TypeError(
            f"{adapter_name}() needs a {'WSGI' if expected == 'wsgi' else 'ASGI'} app, "
            f"got {_describe(app)}, which is not callable"
        )
    try:
        kind = interface_of(app)
    except TypeError:
        return  # undetectable: trust the explicit choice of adapter
    if expected == "wsgi" and kind != "wsgi":
        if type(app).__name__ == adapter_name:
            hint = (
                f"it is already a {adapter_name}; pass the WSGI app itself: "
                f"{adapter_name}(adapter.app), or use the adapter as it is"
            )
        else:
            hint = (
                "it is already an ASGI app, so serve it directly (bridge.to_asgi(app) "
                "returns ASGI apps unchanged); to mount a Flask app pass flask_app, "
                "not flask_app.asgi_app or an ASGI wrapper of it"
            )
        raise TypeError(
            f"{adapter_name}() needs a WSGI app (environ, start_response), got "
            f"{_describe(app)}, an ASGI app: {hint}"
        )
    if expected == "asgi" and kind == "wsgi":
        if type(app).__name__ == adapter_name:
            hint = (
                f"it is already a {adapter_name}; pass the ASGI app itself: "
                f"{adapter_name}(adapter.app), or use the adapter as it is"
            )
        else:
            hint = (
                "it is already a WSGI app, so serve it directly (bridge.to_wsgi(app) "
                "returns WSGI apps unchanged); for a Flask app use flask_app.wsgi_app "
                "or flask_app itself with a WSGI server"
            )
        raise TypeError(
            f"{adapter_name}() needs an ASGI app (scope, receive, send), got "
            f"{_describe(app)}, a WSGI app: {hint}"
        )


def require_int(
    value: object,
    option: str,
    adapter_name: str,
    *,
    unit: str = "",
    minimum: int = 0,
    optional: bool = False,
) -> None:
    """Raise ``TypeError`` unless ``value`` is an ``int`` (``None`` too when ``optional``),
    and ``ValueError`` when it is below ``minimum``; the message says what to pass.

    ``bool`` is refused although it is an ``int`` subclass: ``max_body_size=True`` is a
    mistake, not one byte.
    """
    if value is None and optional:
        return
    if type(value) is bool or not isinstance(value, int):
        what = f"an int{f' number of {unit}' if unit else ''}{' or None' if optional else ''}"
        example = "10 * 1024 * 1024" if unit == "bytes" else str(max(minimum, 1))
        raise TypeError(
            f"{adapter_name}({option}={value!r}): expected {what}, got "
            f"{type(value).__name__}; pass an int, e.g. {option}={example}"
        )
    if value < minimum:
        raise ValueError(f"{adapter_name}({option}={value!r}): must be at least {minimum}")
