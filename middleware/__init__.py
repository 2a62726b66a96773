"""Middleware written once as protocol-neutral cores, run natively on WSGI and ASGI."""

from __future__ import annotations

__all__: list[str] = []
