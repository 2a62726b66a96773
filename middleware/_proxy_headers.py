"""ProxyHeaders: the client, scheme, host, port and prefix as the trusted proxies saw them.

Options follow the two middleware people migrate from: ``trusted_hosts`` as in
uvicorn's ``ProxyHeadersMiddleware`` (addresses, CIDR networks, literals such as a unix
socket path, or ``"*"``; default ``127.0.0.1``) and the per-header hop counts of
werkzeug's ``ProxyFix`` (``x_for=1, x_proto=1, x_host=0, x_port=0, x_prefix=0``: how many
values, counted from the right, the proxies in front of the app append; 0 ignores the
header). ``forwarded=True`` reads RFC 7239 ``Forwarded`` instead of ``X-Forwarded-For``,
``-Proto`` and ``-Host``.

Decisions:

* Nothing is read unless the direct peer is trusted: anybody else could write them.
* Each proxy appends its peer on the right, so the client address is found by walking
  ``X-Forwarded-For`` from the right, at most ``x_for`` entries, stopping at the first
  one that is not itself a trusted proxy. A client that prepends values only adds
  entries left of where the walk stops.
* A header with fewer values than its hop count is ignored (werkzeug's rule): some
  proxy in the chain did not set it, so the value that is there may be the client's.
* Values go to the app only when well-formed: the client must be an IP address (its
  port 0 when the proxy gave none: ASGI servers format the port as an int), the
  scheme ``http``/``https``, the host a host name or IP with an optional port, the port
  digits, the prefix an absolute path. A malformed value leaves that part alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Collection
from typing import Any
from urllib.parse import unquote

from middleware.api import Core, CoreMiddleware, RequestHead

__all__ = ["ProxyHeaders"]

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Bounds on what a client can make us remember: the address cache is keyed by
# addresses from X-Forwarded-For, which is client-written.
_CACHE_SIZE = 4096
_MAX_ADDRESS = 64  # the longest IPv6 text with a zone is well under this
_HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+;=%-]+)(?::[0-9]{1,5})?")
_PREFIX = re.compile(rb"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
_SCHEMES = {b"http": "http", b"https": "https", b"ws": "http", b"wss": "https"}


def _split_address(value: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` as ``(host, port)``."""
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return value, None
        rest = value[end + 1 :]
        port = int(rest[1:]) if rest[:1] == ":" and rest[1:].isdigit() else None
        return value[1:end], port
    if value.count(":") == 1:
        host, _, digits = value.partition(":")
        return host, int(digits) if digits.isdigit() else None
    return value, None


class _Trust:
    """Who counts as one of our proxies: addresses, networks, literals or everybody."""

    __slots__ = ("_addresses", "_everybody", "_literals", "_networks", "cache", "exact")

    def __init__(self, trusted: str | Collection[str]) -> None:
        raw = trusted.split(",") if isinstance(trusted, str) else list(trusted)
        for item in raw:
            if not isinstance(item, str) or not item.strip():
                raise ValueError(f"trusted_hosts holds an empty or non-string entry: {item!r}")
        items = [item.strip() for item in raw]
        self._everybody = "*" in items
        self.exact = frozenset(items)  # entries as written: the usual peer, one set lookup
        self._addresses: set[_IPAddress] = set()
        self._networks: list[_IPNetwork] = []
        self._literals: set[str] = set()
        for item in items:
            try:
                if "/" in item:
                    self._networks.append(ipaddress.ip_network(item, strict=False))
                else:
                    self._addresses.add(ipaddress.ip_address(item))
            except ValueError:
                self._literals.add(item)  # a unix socket path, a host name
        self.cache: dict[str, bool | None] = {}

    def check(self, host: str) -> bool | None:
        """True: a trusted proxy; False: an IP address we do not trust; None: not an IP
        address (and not a trusted literal)."""
        cache = self.cache
        if host in cache:
            return cache[host]
        if host in self._literals:
            return True
        if len(host) > _MAX_ADDRESS:
            return None
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            verdict: bool | None = None
        else:
            verdict = (
                self._everybody
                or ip in self._addresses
                or any(ip in network for network in self._networks)
            )
        if len(cache) >= _CACHE_SIZE:
            cache.clear()  # bounded; refilled by the addresses actually seen
        cache[host] = verdict
        return verdict

    @property
    def everybody(self) -> bool:
        return self._everybody


def _values(raw: bytes) -> list[bytes]:
    return [item.strip() for item in raw.split(b",")]


def _forwarded_elements(raw: bytes) -> list[dict[bytes, bytes]]:
    """RFC 7239 ``Forwarded``: one dict of lower-case parameter -> value per element."""
    elements = []
    # Quoted values cannot hold "," or ";" in the forms proxies send (addresses,
    # host names, schemes), so plain splitting is enough; odd input parses to junk
    # that the well-formedness checks then reject.
    for element in raw.split(b","):
        pairs: dict[bytes, bytes] = {}
        for pair in element.split(b";"):
            name, sep, value = pair.partition(b"=")
            if sep:
                value = value.strip()
                if len(value) >= 2 and value[:1] == b'"' == value[-1:]:
                    value = value[1:-1]
                pairs[name.strip().lower()] = value
        elements.append(pairs)
    return elements


class _ProxyHeadersCore(Core):
    __slots__ = (
        "_cache",
        "_check",
        "_everybody",
        "_exact",
        "_forwarded",
        "_simple",
        "_trust",
        "_x_for",
        "_x_host",
        "_x_port",
        "_x_prefix",
        "_x_proto",
    )
    websocket_handshakes = True  # a handshake comes through the same proxies

    def __init__(
        self,
        trust: _Trust,
        *,
        x_for: int,
        x_proto: int,
        x_host: int,
        x_port: int,
        x_prefix: int,
        forwarded: bool,
    ) -> None:
        self._trust = trust
        self._check = trust.check
        self._cache = trust.cache
        self._everybody = trust.everybody
        self._exact = trust.exact
        self._x_for = x_for
        self._x_proto = x_proto
        self._x_host = x_host
        self._x_port = x_port
        self._x_prefix = x_prefix
        self._forwarded = forwarded
        # uvicorn's and ProxyFix's defaults (one proxy, client and scheme): inlined below.
        self._simple = (
            not forwarded and x_for <= 1 and x_proto <= 1 and not (x_host or x_port or x_prefix)
        )

    def on_request(self, head: RequestHead) -> None:
        client = head.client
        check = self._check
        if client is None:
            return
        peer = client[0]
        if peer not in self._exact and not self._everybody and check(peer) is not True:
            return  # only what a trusted proxy says counts
        if self._simple:
            # One proxy: its own entry is the last one, whether or not it is trusted.
            raw = head.header(b"x-forwarded-for") if self._x_for else None
            if raw is not None:
                value = raw[raw.rfind(b",") + 1 :].strip().decode("latin-1")
                host, port = (value, 0) if ":" not in value else _split_address(value)
                cache = self._cache  # check(host), without the call for a known address
                if (cache[host] if host in cache else check(host)) is not None:
                    head.set_client(host, port or 0)  # an IP address (or a trusted literal)
            raw = head.header(b"x-forwarded-proto") if self._x_proto else None
            if raw is not None:
                value_bytes = raw[raw.rfind(b",") + 1 :].strip()
                scheme = _SCHEMES.get(value_bytes) or _SCHEMES.get(value_bytes.lower())
                if scheme is not None:
                    head.set_scheme(scheme)
            return
        if self._forwarded:
            self._apply_forwarded(head)
        else:
            self._apply_x_forwarded(head)
        if self._x_port:
            self._apply_port(head)
        if self._x_prefix:
            raw = head.header(b"x-forwarded-prefix")
            if raw is not None:
                values = _values(raw)
                if len(values) >= self._x_prefix:
                    prefix = values[-self._x_prefix]
                    if _PREFIX.fullmatch(prefix):
                        head.set_root_path(unquote(prefix.decode("ascii")).rstrip("/"))

    def _walk(self, addresses: list[str]) -> str | None:
        """The client in a right-appended address chain (see the module docstring)."""
        depth = self._x_for
        if depth == 0 or len(addresses) < depth:
            return None
        check = self._check
        for index in range(1, depth + 1):
            candidate = addresses[-index]
            if check(_split_address(candidate)[0]) is not True:
                return candidate  # the first hop that is not one of our proxies
        return addresses[-depth]

    def _set_client(self, head: RequestHead, value: str) -> None:
        host, port = (value, None) if ":" not in value else _split_address(value)
        if self._check(host) is not None:  # an IP address (or a trusted literal)
            # ASGI's client port is an int (uvicorn formats it with %d): 0 when unknown,
            # as uvicorn's own proxy-headers middleware does.
            head.set_client(host, 0 if port is None else port)

    def _apply_x_forwarded(self, head: RequestHead) -> None:
        # x_for/x_proto = 1 (one proxy, the usual case) take the last value directly:
        # the walk over one entry ends there whether or not it is trusted.
        x_for = self._x_for
        if x_for:
            raw = head.header(b"x-forwarded-for")
            if raw is not None:
                if x_for == 1:
                    client: str | None = raw[raw.rfind(b",") + 1 :].strip().decode("latin-1")
                else:
                    client = self._walk(raw.decode("latin-1").replace(" ", "").split(","))
                if client:
                    self._set_client(head, client)
        x_proto = self._x_proto
        if x_proto:
            raw = head.header(b"x-forwarded-proto")
            if raw is not None:
                if x_proto == 1:
                    value: bytes | None = raw[raw.rfind(b",") + 1 :].strip()
                else:
                    values = _values(raw)
                    value = values[-x_proto] if len(values) >= x_proto else None
                if value is not None:
                    scheme = _SCHEMES.get(value) or _SCHEMES.get(value.lower())
                    if scheme is not None:
                        head.set_scheme(scheme)
        if self._x_host:
            raw = head.header(b"x-forwarded-host")
            if raw is not None:
                values = _values(raw)
                if len(values) >= self._x_host:
                    self._set_host(head, values[-self._x_host])

    def _apply_forwarded(self, head: RequestHead) -> None:
        raw = head.header(b"forwarded")
        if raw is None:
            return
        elements = _forwarded_elements(raw)
        if self._x_for:
            chain = [element.get(b"for", b"").decode("latin-1") for element in elements]
            client = self._walk(chain)
            if client is not None:
                self._set_client(head, client)
        if self._x_proto and len(elements) >= self._x_proto:
            scheme = _SCHEMES.get(elements[-self._x_proto].get(b"proto", b"").lower())
            if scheme is not None:
                head.set_scheme(scheme)
        if self._x_host and len(elements) >= self._x_host:
            host = elements[-self._x_host].get(b"host")
            if host is not None:
                self._set_host(head, host)

    def _set_host(self, head: RequestHead, host: bytes) -> None:
        if not _HOST.fullmatch(host):
            return
        head.set_header(b"host", host)
        name, port = _split_address(host.decode("ascii"))
        head.set_server(name, port)

    def _apply_port(self, head: RequestHead) -> None:
        raw = head.header(b"x-forwarded-port")
        if raw is None:
            return
        values = _values(raw)
        if len(values) < self._x_port:
            return
        port = values[-self._x_port]
        if not (port.isdigit() and 0 < int(port) < 65536):
            return
        host = head.header(b"host")
        if host is None:
            server = head.server
            if server is None:
                return
            host = server[0].encode("ascii", "replace")
        name, _ = _split_address(host.decode("latin-1"))
        bracketed = f"[{name}]" if ":" in name else name
        head.set_header(b"host", f"{bracketed}:{int(port)}".encode("latin-1"))
        head.set_server(name, int(port))


def _hops(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} is a hop count (an int >= 0), not {value!r}")
    return value


class ProxyHeaders(CoreMiddleware):
    """The client address, scheme, host, port and root path as trusted proxies saw them.

    ``trusted_hosts``: the proxies whose headers count (IP addresses, CIDR networks,
    other literals, or ``"*"``; a list or a comma-separated string). ``x_for``,
    ``x_proto``, ``x_host``, ``x_port``, ``x_prefix``: how many proxies set each
    ``X-Forwarded-*`` header (0: ignore it). ``forwarded=True`` reads RFC 7239
    ``Forwarded`` instead of ``X-Forwarded-For/-Proto/-Host``. Put it outermost, or at
    least outside everything that looks at the client, scheme or host.
    """

    def __init__(
        self,
        app: Any,
        trusted_hosts: str | Collection[str] = "127.0.0.1",
        *,
        x_for: int = 1,
        x_proto: int = 1,
        x_host: int = 0,
        x_port: int = 0,
        x_prefix: int = 0,
        forwarded: bool = False,
        interface: str | None = None,
    ) -> None:
        core = _ProxyHeadersCore(
            _Trust(trusted_hosts),
            x_for=_hops("x_for", x_for),
            x_proto=_hops("x_proto", x_proto),
            x_host=_hops("x_host", x_host),
            x_port=_hops("x_port", x_port),
            x_prefix=_hops("x_prefix", x_prefix),
            forwarded=bool(forwarded),
        )
        super().__init__(app, core, interface=interface)
