"""ProxyHeaders (minimal): the client, scheme and host a trusted proxy saw.

A sketch of what the public API allows, written with public names only: when the
direct peer is one of ``trusted`` it takes the last ``X-Forwarded-For`` address, and
``X-Forwarded-Proto``, ``X-Forwarded-Host`` and ``X-Forwarded-Prefix``, so
``url_for(..., _external=True)`` in Flask and ``request.url_for`` in FastAPI build the
public URL. The full middleware (hop counts, networks, ``Forwarded``) is issue #13's.
"""

from __future__ import annotations

from collections.abc import Collection

from middleware.api import Core, CoreMiddleware, RequestHead

__all__ = ["ProxyHeaders"]


class _ProxyHeadersCore(Core):
    __slots__ = ("_trusted",)

    def __init__(self, trusted: frozenset[str]) -> None:
        self._trusted = trusted

    def on_request(self, head: RequestHead) -> None:
        client = head.client
        if client is None or client[0] not in self._trusted:
            return  # only what a trusted proxy says counts
        forwarded_for = head.header(b"x-forwarded-for")
        if forwarded_for is not None:
            # The rightmost entry is the one our proxy added; the rest is client-made.
            head.set_client(forwarded_for.rsplit(b",", 1)[-1].strip().decode("latin-1"), None)
        proto = head.header(b"x-forwarded-proto")
        if proto is not None and proto.strip() in (b"http", b"https"):
            head.set_scheme(proto.strip().decode("ascii"))
        host = head.header(b"x-forwarded-host")
        if host is not None:
            head.set_header(b"host", host.rsplit(b",", 1)[-1].strip())
        prefix = head.header(b"x-forwarded-prefix")
        if prefix is not None and prefix.startswith(b"/"):
            head.set_root_path(prefix.decode("latin-1").rstrip("/"))
        return  # the response is left alone


class ProxyHeaders(CoreMiddleware):
    """``ProxyHeaders(app, trusted=("127.0.0.1",))`` for a WSGI or an ASGI app."""

    def __init__(
        self,
        app: object,
        *,
        trusted: Collection[str] = ("127.0.0.1",),
        interface: str | None = None,
    ) -> None:
        super().__init__(app, _ProxyHeadersCore(frozenset(trusted)), interface=interface)
