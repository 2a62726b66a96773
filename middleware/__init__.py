"""Middleware written once as protocol-neutral cores, run natively on WSGI and ASGI.

Each class is constructed as ``X(app, **options)`` and gives back an app of the same
interface as ``app``: a WSGI app for a WSGI app, an ASGI 3 app for an ASGI 3 app (an
ASGI app is a coroutine function or an object whose ``__call__`` is one; pass
``interface="wsgi"`` or ``"asgi"`` when that test is ambiguous). Nothing converts
between the interfaces: the ASGI driver starts no threads, the WSGI driver no loops.

* :class:`CORS` - cross-origin resource sharing (Starlette's options).
* :class:`GZip` - gzip only, a drop-in for Starlette's ``GZipMiddleware``;
  :class:`Compress` - the same rules, negotiating zstd, br and gzip (br and zstd when the
  optional ``brotli`` / ``zstandard`` packages are installed: :data:`AVAILABLE_ENCODINGS`).
* :class:`AccessLog` - one ``logging`` record per request, gunicorn's format atoms.
* :class:`ProxyHeaders` - client, scheme, host, port and prefix from trusted proxies;
  :class:`TrustedHost` - 400 for a ``Host`` not ours; :class:`HTTPSRedirect` - 308 to
  https; :class:`RequestID` - read, make, hand on and echo a request id;
  :class:`SecurityHeaders` - HSTS, nosniff, Referrer-Policy, framing, CSP.
* :class:`Stack` of :class:`Middleware` entries - composition, first = outermost.
* :class:`BodyLimit` - 413 before the app reads more request body than allowed
  (:class:`RequestBodyTooLarge` is what the app's read raises when it would);
  :class:`StaticFiles` - a directory served next to the app (ETag, Range, precompressed).

Write your own the same way with :mod:`middleware.api` (see
``docs/writing-middleware.md``) and test it with :mod:`middleware.testing`.
"""

from __future__ import annotations

from middleware._access_log import AccessLog
from middleware._body_limit import BodyLimit, RequestBodyTooLarge
from middleware._compress import Compress
from middleware._compression import DEFAULT_EXCLUDED_CONTENT_TYPES
from middleware._cors import CORS
from middleware._encodings import AVAILABLE as AVAILABLE_ENCODINGS
from middleware._gzip import GZip
from middleware._https_redirect import HTTPSRedirect
from middleware._proxy_headers import ProxyHeaders
from middleware._request_id import RequestID
from middleware._security_headers import SecurityHeaders
from middleware._stack import Middleware, Stack
from middleware._static_files import StaticFiles
from middleware._trusted_host import TrustedHost

__all__ = [
    "AVAILABLE_ENCODINGS",
    "CORS",
    "DEFAULT_EXCLUDED_CONTENT_TYPES",
    "AccessLog",
    "BodyLimit",
    "Compress",
    "GZip",
    "HTTPSRedirect",
    "Middleware",
    "ProxyHeaders",
    "RequestBodyTooLarge",
    "RequestID",
    "SecurityHeaders",
    "Stack",
    "StaticFiles",
    "TrustedHost",
]
