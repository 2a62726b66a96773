"""CORS: cross-origin resource sharing per the Fetch standard (section 3.2, "CORS protocol").

Option names and meanings follow Starlette's ``CORSMiddleware``. Every header set is
built in ``__init__``; a request only picks a branch and, when the origin must be
echoed, allocates one small handler.

Decisions, with the spec text that makes them:

* Preflight = ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``. It is
  answered here (200, or 400 with the reason) and never reaches the app.
* "``Access-Control-Allow-Origin: *`` ... cannot be used with credentials": with
  ``allow_credentials`` the origin is echoed instead.
* A disallowed origin gets no CORS headers at all, only ``Vary: Origin``.
* Whenever the answer depends on ``Origin``, ``Vary: Origin`` is sent, on responses
  without an ``Origin`` too (a shared cache must not serve them to a CORS request). In
  the public mode (``allow_origins=["*"]`` without credentials) the answer is ``*`` for
  everybody, so it is sent on every response and no ``Vary`` is needed.
* Private Network Access (WICG draft): ``Access-Control-Request-Private-Network: true``
  is answered with ``Access-Control-Allow-Private-Network: true`` only when enabled.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from middleware._headers import split_tokens
from middleware._origins import MAX_CACHED_KEY, OriginMatcher
from middleware.api import AddHeaders, Core, CoreMiddleware, HeaderList, RequestHead, Response

__all__ = ["CORS"]

ALL_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")
# Fetch: CORS-safelisted request headers need no permission.
SAFELISTED_HEADERS = frozenset({"accept", "accept-language", "content-language", "content-type"})

_ACAO = b"access-control-allow-origin"
_ACAC = b"access-control-allow-credentials"
_ACEH = b"access-control-expose-headers"
# Headers this middleware owns on simple responses: an app's own copies are replaced.
_OWNED = frozenset({_ACAO, _ACAC, _ACEH})
_HANDLER_CACHE_SIZE = 1024
_PREFLIGHT_VARY = (
    b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers, "
    b"Access-Control-Request-Private-Network"
)


def _strings(name: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Collection):
        raise TypeError(f"{name} must be a collection of strings, not {type(value).__name__}")
    for item in value:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold strings, found {item!r}")
    return tuple(value)


def _adding(extra: HeaderList, vary: bool) -> AddHeaders:
    """A fixed header set (the app's own CORS headers dropped: ours replace them), and
    ``Vary: Origin`` when the answer depends on it. Shared by every request that gets
    the same answer (one per allowed origin, one for everybody else); the drivers apply
    it with no handler."""
    return AddHeaders(extra, replace=True, remove=_OWNED, vary=[b"Origin"] if vary else [])


def _plain(status: int, text: bytes, headers: HeaderList) -> Response:
    return Response(
        status,
        [
            *headers,
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(text)).encode()),
        ],
        text,
    )


class _CORSCore(Core):
    __slots__ = (
        "_allow_all_headers",
        "_allow_any_method",
        "_allowed_headers",
        "_allowed_methods",
        "_by_origin",
        "_echo_extra",
        "_matcher",
        "_no_origin",
        "_preflight_extra",
        "_private_network",
        "_public",
        "_refused",
    )

    def __init__(
        self,
        *,
        allow_origins: tuple[str, ...],
        allow_methods: tuple[str, ...],
        allow_headers: tuple[str, ...],
        allow_credentials: bool,
        allow_origin_regex: str | None,
        expose_headers: tuple[str, ...],
        max_age: int,
        allow_private_network: bool,
    ) -> None:
        matcher = OriginMatcher(allow_origins, allow_origin_regex)
        self._matcher = matcher
        self._by_origin: dict[bytes, AddHeaders] = {}
        # Public mode: '*' for every response, nothing varies with Origin.
        public = matcher.allow_all and not allow_credentials
        self._public = public

        simple: HeaderList = []
        if allow_credentials:
            simple.append((_ACAC, b"true"))
        if expose_headers:
            simple.append((_ACEH, ", ".join(expose_headers).encode("latin-1")))
        self._echo_extra = simple
        if public:
            public_answer = _adding([(_ACAO, b"*"), *simple], vary=False)
            self._no_origin: AddHeaders = public_answer
            self._refused: AddHeaders = public_answer
        else:
            self._no_origin = self._refused = _adding([], vary=True)

        self._allow_any_method = "*" in allow_methods
        self._allowed_methods = frozenset(
            (m.upper() if m.upper() in ALL_METHODS else m).encode("latin-1") for m in allow_methods
        )
        self._allow_all_headers = "*" in allow_headers
        allowed_headers = SAFELISTED_HEADERS | {h.lower() for h in allow_headers if h != "*"}
        self._allowed_headers = frozenset(h.encode("latin-1") for h in allowed_headers)
        self._private_network = allow_private_network

        methods = ALL_METHODS if self._allow_any_method else allow_methods
        preflight: HeaderList = [
            (b"access-control-allow-methods", ", ".join(methods).encode("latin-1")),
            (b"access-control-max-age", str(max_age).encode()),
        ]
        if not self._allow_all_headers:
            preflight.append(
                (b"access-control-allow-headers", ", ".join(sorted(allowed_headers)).encode())
            )
        if allow_credentials:
            preflight.append((_ACAC, b"true"))
        self._preflight_extra = preflight

    def on_request(self, head: RequestHead) -> AddHeaders | Response:
        origin = head.header(b"origin")
        if origin is None:
            return self._no_origin
        if head.method == "OPTIONS":
            requested_method = head.header(b"access-control-request-method")
            if requested_method is not None:
                return self._preflight(head, origin, requested_method)
        handler = self._by_origin.get(origin)
        if handler is None:
            handler = self._handler_for(origin)
        return handler

    def _handler_for(self, origin: bytes) -> AddHeaders:
        """The (shareable) answer for one origin, memoised."""
        if not self._matcher(origin):
            handler = self._refused
        elif self._public:
            handler = self._no_origin
        else:
            handler = _adding([(_ACAO, origin), *self._echo_extra], vary=True)
        if len(origin) <= MAX_CACHED_KEY:  # bounded in bytes too: see _origins
            if len(self._by_origin) >= _HANDLER_CACHE_SIZE:
                self._by_origin.clear()  # bounded: origins are chosen by the client
            self._by_origin[origin] = handler
        return handler

    def _preflight(self, head: RequestHead, origin: bytes, method: bytes) -> Response:
        failures: list[str] = []
        allowed_origin = self._matcher(origin)
        if not allowed_origin:
            failures.append("origin")
        if not self._allow_any_method and method.strip() not in self._allowed_methods:
            failures.append("method")
        requested = head.header(b"access-control-request-headers")
        if (
            requested is not None
            and not self._allow_all_headers
            and not self._allowed_headers.issuperset(split_tokens(requested))
        ):
            failures.append("headers")
        vary = (b"vary", _PREFLIGHT_VARY)
        if failures:
            # Not required (the browser enforces CORS) but far easier to debug than a 200.
            return _plain(400, f"Disallowed CORS {', '.join(failures)}".encode(), [vary])
        headers: HeaderList = [vary, (_ACAO, b"*" if self._public else origin)]
        headers.extend(self._preflight_extra)
        if self._allow_any_method:
            headers[2] = (b"access-control-allow-methods", method.strip())
        if self._allow_all_headers and requested is not None:
            # '*' is not a wildcard for credentialed requests; echoing always works.
            headers.append((b"access-control-allow-headers", requested))
        if (
            self._private_network
            and head.header(b"access-control-request-private-network") == b"true"
        ):
            headers.append((b"access-control-allow-private-network", b"true"))
        return _plain(200, b"OK", headers)


class CORS(CoreMiddleware):
    """Cross-origin resource sharing for a WSGI or an ASGI app.

    Options mean what they mean in Starlette's ``CORSMiddleware``; ``allow_origins``
    also accepts wildcard entries such as ``"https://*.example.com"`` and
    ``allow_origin_regex`` must match the whole origin. ``allow_methods=["*"]`` and
    ``allow_headers=["*"]`` allow anything the browser asks for.
    """

    def __init__(
        self,
        app: Any,
        *,
        allow_origins: Collection[str] = (),
        allow_methods: Collection[str] = ("GET",),
        allow_headers: Collection[str] = (),
        allow_credentials: bool = False,
        allow_origin_regex: str | None = None,
        expose_headers: Collection[str] = (),
        max_age: int = 600,
        allow_private_network: bool = False,
        interface: str | None = None,
    ) -> None:
        if not isinstance(max_age, int) or isinstance(max_age, bool) or max_age < 0:
            raise ValueError(f"max_age must be a non-negative int, not {max_age!r}")
        if allow_origin_regex is not None and not isinstance(allow_origin_regex, str):
            raise TypeError("allow_origin_regex must be a str pattern or None")
        core = _CORSCore(
            allow_origins=_strings("allow_origins", allow_origins),
            allow_methods=_strings("allow_methods", allow_methods),
            allow_headers=_strings("allow_headers", allow_headers),
            allow_credentials=bool(allow_credentials),
            allow_origin_regex=allow_origin_regex,
            expose_headers=_strings("expose_headers", expose_headers),
            max_age=max_age,
            allow_private_network=bool(allow_private_network),
        )
        super().__init__(app, core, interface=interface)
