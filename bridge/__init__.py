"""Adapters between WSGI (PEP 3333) and ASGI 3: each interface's apps on the other's servers."""

from __future__ import annotations

from bridge._http import ClientDisconnected

__all__ = ["ClientDisconnected"]
