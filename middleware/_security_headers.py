"""SecurityHeaders: the response headers that switch on browsers' own defences.

Defaults are the ones that protect without breaking a working site:

=============================  ==================================  ===================
header                         default                             option
=============================  ==================================  ===================
Strict-Transport-Security      ``max-age=31536000`` (https only)   ``hsts``
X-Content-Type-Options         ``nosniff``                         ``content_type_options``
Referrer-Policy                ``strict-origin-when-cross-origin`` ``referrer_policy``
X-Frame-Options                ``DENY``                            ``frame_options``
Content-Security-Policy        ``frame-ancestors 'none'``          ``content_security_policy``
Permissions-Policy             (none)                              ``permissions_policy``
=============================  ==================================  ===================

``None`` leaves a header out. ``frame_options`` (``"DENY"`` or ``"SAMEORIGIN"``) is also
written as CSP ``frame-ancestors`` (``'none'``/``'self'``), the modern form browsers
prefer, unless the given policy already says ``frame-ancestors``. HSTS goes only on
``https`` responses (RFC 6797 7.2: a browser ignores it over plain HTTP); put
:class:`ProxyHeaders` outside this middleware behind a TLS-terminating proxy. A header
the app set itself is kept unless ``overwrite=True``.
"""

from __future__ import annotations

from typing import Any

from middleware.api import AddHeaders, Core, CoreMiddleware, HeaderList, RequestHead

__all__ = ["SecurityHeaders"]

_FRAME_ANCESTORS = {"DENY": "'none'", "SAMEORIGIN": "'self'"}


class _SecurityHeadersCore(Core):
    __slots__ = ("_http", "_https")

    def __init__(self, http: AddHeaders | None, https: AddHeaders | None) -> None:
        # One AddHeaders per scheme, made once: the drivers add them without a handler.
        self._http = http
        self._https = https

    def on_request(self, head: RequestHead) -> AddHeaders | None:
        return self._https if head.scheme == "https" else self._http


def _value(name: str, value: Any) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or not value.isprintable():
        raise ValueError(f"{name} must be a printable ASCII str or None, not {value!r}")
    return value.encode("ascii")


class SecurityHeaders(CoreMiddleware):
    """Add HSTS (https only), ``X-Content-Type-Options``, ``Referrer-Policy``,
    ``X-Frame-Options``/``frame-ancestors``, CSP and ``Permissions-Policy``.

    Each option is the header's value, or ``None`` to leave it out; see the module
    docstring for the defaults. The app's own header wins unless ``overwrite=True``.
    """

    def __init__(
        self,
        app: Any,
        *,
        hsts: str | None = "max-age=31536000",
        content_type_options: str | None = "nosniff",
        referrer_policy: str | None = "strict-origin-when-cross-origin",
        frame_options: str | None = "DENY",
        content_security_policy: str | None = None,
        permissions_policy: str | None = None,
        overwrite: bool = False,
        interface: str | None = None,
    ) -> None:
        if frame_options is not None and (
            not isinstance(frame_options, str) or frame_options.upper() not in _FRAME_ANCESTORS
        ):
            raise ValueError(f"frame_options: 'DENY', 'SAMEORIGIN' or None, not {frame_options!r}")
        policy = content_security_policy
        if frame_options is not None:
            ancestors = "frame-ancestors " + _FRAME_ANCESTORS[frame_options.upper()]
            if policy is None:
                policy = ancestors
            elif "frame-ancestors" not in policy.lower():
                policy = policy.rstrip("; ") + "; " + ancestors
        both: HeaderList = []
        for name, value in (
            (b"x-content-type-options", _value("content_type_options", content_type_options)),
            (b"referrer-policy", _value("referrer_policy", referrer_policy)),
            (
                b"x-frame-options",
                None if frame_options is None else frame_options.upper().encode(),
            ),
            (b"content-security-policy", _value("content_security_policy", policy)),
            (b"permissions-policy", _value("permissions_policy", permissions_policy)),
        ):
            if value is not None:
                both.append((name, value))
        hsts_value = _value("hsts", hsts)
        secure = both if hsts_value is None else [(b"strict-transport-security", hsts_value), *both]
        core = _SecurityHeadersCore(
            AddHeaders(both, replace=bool(overwrite)) if both else None,
            AddHeaders(secure, replace=bool(overwrite)) if secure else None,
        )
        super().__init__(app, core, interface=interface)
