"""Pure origin handling for CORS: normalisation and the allow-list matcher.

An origin is ``scheme "://" host [ ":" port ]`` (RFC 6454 6.2, the Fetch standard's
serialisation). Browsers send it normalised already; other clients may not, so both the
configured and the received origins are compared in normal form: lower-case scheme and
host, default port (:80 for http/ws, :443 for https/wss) dropped.

Rules that keep an allow-list safe, each tested:

* Regular expressions match the whole origin (``re.fullmatch``), never a prefix, so
  ``https://.*\\.example\\.com`` cannot let ``https://x.example.com.attacker.net`` in.
* A wildcard entry ``https://*.example.com`` matches one or more DNS labels before
  ``.example.com`` with the same scheme and port, never ``https://example.com.evil.net``
  and never the bare ``https://example.com``.
* A malformed origin (path, userinfo, odd characters, ``*`` itself, a port above
  65535, with a leading zero or longer than five digits) matches nothing,
  not even ``allow_origins=["*"]``, a wildcard entry or a regex: with credentials the
  origin is echoed, and an echoed ``*`` would be the wildcard the Fetch standard forbids
  with credentials.
"""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["MAX_CACHED_KEY", "OriginMatcher", "normalize_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*\Z")
_HOST = re.compile(
    r"(?:[a-z0-9](?:[a-z0-9\-_]*[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9\-_]*[a-z0-9])?)*\Z"
)
_IPV6 = re.compile(r"\[[0-9a-f:.]+\]\Z")
_CACHE_SIZE = 1024
# Memory is bounded in bytes, not entries: a client chooses the key. Real origins are
# short (scheme, host, port: well under 100 bytes); a longer one is matched again on
# every request (linear in its size, which the client pays to send) and never stored,
# so the memo holds at most _CACHE_SIZE * MAX_CACHED_KEY bytes of keys (128 KiB).
MAX_CACHED_KEY = 128
_MAX_PORT = 65535


def _port(text: str) -> int | None:
    """A port as browsers serialise it (1-5 ASCII digits, no leading zero, at most
    65535), or ``None``: anything else makes the whole origin malformed."""
    if not 0 < len(text) <= 5 or not text.isascii() or not text.isdigit():
        return None
    if len(text) > 1 and text[0] == "0":
        return None
    port = int(text)
    return port if port <= _MAX_PORT else None


def _split(origin: str) -> tuple[str, str, int | None] | None:
    scheme, sep, rest = origin.partition("://")
    if not sep:
        return None
    scheme = scheme.lower()
    if _SCHEME.match(scheme) is None:
        return None
    rest = rest.lower()
    port: int | None = None
    if rest.startswith("["):
        host, bracket, tail = rest.partition("]")
        host += bracket
        if tail:
            if not tail.startswith(":"):
                return None
            port = _port(tail[1:])
            if port is None:
                return None
        if _IPV6.match(host) is None:
            return None
    else:
        host, colon, port_text = rest.partition(":")
        if colon:
            port = _port(port_text)
            if port is None:
                return None
        if _HOST.match(host) is None:
            return None
    if port == _DEFAULT_PORTS.get(scheme):
        port = None
    return scheme, host, port


def normalize_origin(origin: str) -> str | None:
    """``origin`` in normal form, ``"null"`` unchanged, or ``None`` when it is malformed."""
    if origin == "null":
        return origin
    parts = _split(origin.strip())
    if parts is None:
        return None
    scheme, host, port = parts
    return f"{scheme}://{host}" if port is None else f"{scheme}://{host}:{port}"


class OriginMatcher:
    """Decides whether an ``Origin`` header value is allowed; results are memoised."""

    __slots__ = ("_cache", "_exact", "_raw", "_regex", "_wildcards", "allow_all")

    def __init__(self, origins: Collection[str], regex: str | None = None) -> None:
        self.allow_all = "*" in origins
        exact: set[str] = set()
        wildcards: list[tuple[str, str, int | None]] = []
        for entry in origins:
            if entry == "*":
                continue
            if "*" in entry:
                wildcards.append(_parse_wildcard(entry))
                continue
            normal = normalize_origin(entry)
            if normal is None:
                raise ValueError(
                    f"allow_origins: {entry!r} is not an origin (scheme://host[:port])"
                )
            exact.add(normal)
        self._exact = frozenset(exact)
        # Browsers send the normal form, so most lookups end at this set.
        self._raw = frozenset(item.encode("latin-1") for item in exact)
        self._wildcards = tuple(wildcards)
        try:
            self._regex = None if regex is None else re.compile(regex)
        except re.error as exc:
            raise ValueError(f"allow_origin_regex {regex!r} does not compile: {exc}") from None
        self._cache: dict[bytes, bool] = {}

    def __call__(self, origin: bytes) -> bool:
        if origin in self._raw:
            return True
        cached = self._cache.get(origin)
        if cached is None:
            cached = self._match(origin.decode("latin-1"))
            if len(origin) <= MAX_CACHED_KEY:
                if len(self._cache) >= _CACHE_SIZE:
                    self._cache.clear()  # bounded: origins are attacker-chosen
                self._cache[origin] = cached
        return cached

    def _match(self, origin: str) -> bool:
        normal = normalize_origin(origin)
        if normal is None:
            # Not an origin at all (``*``, a path...): never echoed, even under "*".
            return False
        if self.allow_all or normal in self._exact:
            return True
        if normal != "null":
            scheme, host, port = _split(normal) or ("", "", None)
            for w_scheme, w_suffix, w_port in self._wildcards:
                # endswith(".example.com") leaves at least one full label in front,
                # and _HOST already refused empty labels.
                if (
                    scheme == w_scheme
                    and port == w_port
                    and host.endswith(w_suffix)
                    and len(host) > len(w_suffix)
                ):
                    return True
        regex = self._regex
        return regex is not None and (
            regex.fullmatch(origin) is not None or regex.fullmatch(normal) is not None
        )


def _parse_wildcard(entry: str) -> tuple[str, str, int | None]:
    scheme, sep, rest = entry.partition("://")
    if not sep or not rest.startswith("*.") or "*" in rest[1:]:
        raise ValueError(
            f"allow_origins: {entry!r}: a wildcard must be the first label, "
            "as in 'https://*.example.com'"
        )
    parts = _split(f"{scheme}://{rest[2:]}")
    if parts is None:
        raise ValueError(f"allow_origins: {entry!r} is not an origin pattern")
    w_scheme, host, port = parts
    return w_scheme, "." + host, port
