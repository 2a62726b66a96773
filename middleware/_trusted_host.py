"""TrustedHost: answer 400 to any request whose ``Host`` is not one of ours.

Options follow Starlette's ``TrustedHostMiddleware``: ``allowed_hosts`` holds exact
names and ``*.example.com`` wildcards (any name ending in ``.example.com``, not
``example.com`` itself), ``"*"`` allows every host; with ``www_redirect`` a request for
``example.com`` is redirected (307) to ``www.example.com`` when only the latter is
allowed. The check runs before the app, so the app never sees a forged ``Host`` (cache
poisoning, password-reset links to an attacker's domain, DNS rebinding).

Decisions: names compare case-insensitively and without the port (``[v6]:port`` is
understood); a request with no ``Host`` or a malformed one is refused, as Starlette does.
Behind a proxy that rewrites ``Host``, put :class:`ProxyHeaders` (with ``x_host``)
outside this middleware so the forwarded host is the one checked.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any
from urllib.parse import quote

from middleware.api import Core, CoreMiddleware, RequestHead, Response

__all__ = ["TrustedHost"]

_HOST = re.compile(r"(?:\[[0-9a-f:.]+\]|[a-z0-9._~!$&'()*+;=%-]+)(?::[0-9]{1,5})?")
_BODY = b"Invalid host header"
_REFUSED = Response(
    400,
    [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(_BODY)).encode()),
    ],
    _BODY,
)
_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_QUERY_SAFE = "/?!$&'()*+,;=:@-._~%[]"


def _hostname(host: str) -> str:
    """The name without the port; brackets dropped from an IPv6 literal."""
    if host.startswith("["):
        return host[1 : host.find("]")]
    return host.partition(":")[0]


_ALLOW, _REFUSE, _WWW = 0, 1, 2
# Verdicts are remembered per raw Host value; the client chooses that value, so the
# memory is bounded in entries and in key length.
_CACHE_SIZE = 1024
_MAX_CACHED_HOST = 255


class _TrustedHostCore(Core):
    __slots__ = ("_exact", "_suffixes", "_verdicts", "_www")
    websocket_handshakes = True  # a handshake names a host too

    def __init__(self, exact: frozenset[str], suffixes: tuple[str, ...], www: bool) -> None:
        self._exact = exact
        self._suffixes = suffixes
        self._www = www
        self._verdicts: dict[bytes | None, int] = {}

    def _decide(self, raw: bytes | None) -> int:
        host = "" if raw is None else raw.decode("latin-1").lower()
        if _HOST.fullmatch(host) is None:
            return _REFUSE
        name = _hostname(host)
        if name in self._exact or any(name.endswith(suffix) for suffix in self._suffixes):
            return _ALLOW
        return _WWW if self._www and ("www." + name) in self._exact else _REFUSE

    def on_request(self, head: RequestHead) -> Response | None:
        raw = head.header(b"host")
        verdicts = self._verdicts
        verdict = verdicts.get(raw)
        if verdict is None:
            verdict = self._decide(raw)
            if raw is None or len(raw) <= _MAX_CACHED_HOST:
                if len(verdicts) >= _CACHE_SIZE:
                    verdicts.clear()
                verdicts[raw] = verdict
        if verdict == _ALLOW:
            return None
        if verdict == _REFUSE or raw is None:
            return _REFUSED
        target = quote(head.path, safe=_PATH_SAFE)
        if head.query:
            target += "?" + quote(head.query.decode("latin-1"), safe=_QUERY_SAFE)
        host = raw.decode("latin-1").lower()
        location = f"{head.scheme}://www.{host}{target}".encode("latin-1")
        return Response(307, [(b"location", location), (b"content-length", b"0")])


class TrustedHost(CoreMiddleware):
    """400 for a request whose ``Host`` is not in ``allowed_hosts`` (Starlette's options).

    ``allowed_hosts``: names, ``*.example.com`` wildcards, or ``"*"`` for any host
    (the default, which checks nothing). ``www_redirect``: redirect ``example.com`` to
    ``www.example.com`` when only the latter is allowed.
    """

    def __init__(
        self,
        app: Any,
        allowed_hosts: Collection[str] | None = None,
        www_redirect: bool = True,
        *,
        interface: str | None = None,
    ) -> None:
        hosts = ["*"] if allowed_hosts is None else allowed_hosts
        if isinstance(hosts, str) or not isinstance(hosts, Collection):
            raise TypeError("allowed_hosts must be a collection of host names, such as ['a.com']")
        exact: set[str] = set()
        suffixes: list[str] = []
        for pattern in hosts:
            if not isinstance(pattern, str) or not pattern:
                raise ValueError(f"allowed_hosts holds an empty or non-string entry: {pattern!r}")
            lowered = pattern.lower()
            if lowered.startswith("[") and lowered.endswith("]"):
                lowered = lowered[1:-1]  # an IPv6 literal compares without brackets
            if lowered.startswith("*."):
                suffixes.append(lowered[1:])
            elif "*" in lowered and lowered != "*":
                raise ValueError(
                    f"allowed_hosts: {pattern!r}: a wildcard is only allowed as '*' or '*.domain'"
                )
            else:
                exact.add(lowered)
        core: Core = (
            _AllowAll()
            if "*" in exact
            else _TrustedHostCore(frozenset(exact), tuple(suffixes), bool(www_redirect))
        )
        super().__init__(app, core, interface=interface)


class _AllowAll(Core):
    """``allowed_hosts=["*"]``: nothing to check."""

    __slots__ = ()

    def on_request(self, head: RequestHead) -> None:
        return None
