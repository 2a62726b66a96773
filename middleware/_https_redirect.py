"""HTTPSRedirect: answer every plain-HTTP request with a 308 to its ``https`` URL.

Starlette's ``HTTPSRedirectMiddleware`` behaviour, with 308 (the method and body are
kept, and the redirect may be cached) instead of its 307. The URL is rebuilt from the
request as the app would see it: ``Host`` (else the server address), root path, path
and query; the port is dropped when it is 80 or 443 and kept otherwise.

Behind a proxy that terminates TLS the request reaches us as ``http``; with
:class:`ProxyHeaders` outside this middleware, ``X-Forwarded-Proto: https`` from the
proxy makes the request ``https`` before it is checked (else every request would be
redirected, forever). With ProxyHeaders inside (found by following ``.app`` from the
wrapped app), it is applied here first, so the order does not matter. WebSocket
handshakes (``Upgrade: websocket``) are sent to ``wss``. A ``Host`` that is not a
well-formed host is answered 400 rather than echoed into ``Location``.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from middleware._proxy_headers import ProxyHeaders
from middleware.api import Core, CoreMiddleware, RequestHead, Response

__all__ = ["HTTPSRedirect"]

_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+;=%-]+)(?::[0-9]{1,5})?")
_MAX_DEPTH = 32  # how far down a middleware chain to look for ProxyHeaders
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_QUERY_SAFE = "/?!$&'()*+,;=:@-._~%[]"
_BODY = b"Invalid host header"
_BAD_HOST = Response(
    400,
    [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(_BODY)).encode()),
    ],
    _BODY,
)


def _authority(head: RequestHead) -> str | None:
    """``host[:port]`` for the https URL, the default ports dropped; ``None`` if malformed."""
    raw = head.header(b"host")
    if raw is not None:
        host = raw.decode("latin-1")
    else:
        server = head.server
        if server is None:
            return None
        name = f"[{server[0]}]" if ":" in server[0] else server[0]
        host = name if server[1] is None else f"{name}:{server[1]}"
    if _HOST.fullmatch(host) is None:
        return None
    end = host.rfind("]")
    colon = host.rfind(":")
    if colon > end and host[colon + 1 :] in ("80", "443"):
        host = host[:colon]
    return host


class _HTTPSRedirectCore(Core):
    __slots__ = ("_proxy",)
    websocket_handshakes = True  # ws -> wss

    def __init__(self, proxy: Core | None) -> None:
        self._proxy = proxy

    def on_request(self, head: RequestHead) -> Response | None:
        if head.scheme == "https":
            return None
        if self._proxy is not None:
            # ProxyHeaders sits inside us: apply it now (it reads only the headers and
            # the peer, so its own later run changes nothing) and decide on its result.
            self._proxy.on_request(head)
            if head.scheme == "https":
                return None
        authority = _authority(head)
        if authority is None:
            return _BAD_HOST
        target = quote(head.path, safe=_PATH_SAFE)
        if head.query:
            target += "?" + quote(head.query.decode("latin-1"), safe=_QUERY_SAFE)
        # A WebSocket handshake goes to wss (a WSGI app under WSGIToASGI sees one as a GET).
        upgrade = head.header(b"upgrade")
        scheme = "wss" if upgrade is not None and b"websocket" in upgrade.lower() else "https"
        location = f"{scheme}://{authority}{target}".encode("latin-1")
        return Response(308, [(b"location", location), (b"content-length", b"0")])


def _inner_proxy_headers(app: Any) -> Core | None:
    """The core of a ProxyHeaders among the middleware ``app`` wraps (``.app`` chains:
    ours, Starlette's, most others), if any."""
    for _ in range(_MAX_DEPTH):
        if isinstance(app, ProxyHeaders):
            core: Core = app._core
            return core
        app = getattr(app, "app", None)
        if app is None:
            return None
    return None


class HTTPSRedirect(CoreMiddleware):
    """Redirect (308) every ``http`` request to the same URL on ``https``.

    A :class:`ProxyHeaders` among the middleware it wraps is applied first, so either
    order works behind a TLS-terminating proxy (``add_middleware`` order is easy to get
    backwards)."""

    def __init__(self, app: Any, *, interface: str | None = None) -> None:
        core = _HTTPSRedirectCore(_inner_proxy_headers(app))
        super().__init__(app, core, interface=interface)
