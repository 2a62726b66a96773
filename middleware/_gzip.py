"""GZip: gzip-only response compression, a drop-in for Starlette's ``GZipMiddleware``.

Same option names and meanings as Starlette's. The rules (what is never compressed,
``Vary``, ``Content-Length``, ``ETag``, streaming) live in :mod:`middleware._compression`;
:class:`middleware.Compress` adds ``br`` and ``zstd`` negotiation.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from middleware._compression import (
    DEFAULT_EXCLUDED_CONTENT_TYPES,
    CompressionCore,
    check_size,
    check_types,
)
from middleware._encodings import EncoderSpec
from middleware.api import CoreMiddleware

__all__ = ["GZip"]


class GZip(CoreMiddleware):
    """Gzip responses of at least ``minimum_size`` bytes for clients that accept it.

    ``compresslevel`` is zlib's 0-9; ``exclude_content_types`` lists media types left
    alone (``"video/*"`` matches a whole top-level type). ``minimum_size`` applies when
    the body's length is known; a stream is compressed and flushed chunk by chunk.
    """

    def __init__(
        self,
        app: Any,
        minimum_size: int = 500,
        compresslevel: int = 9,
        *,
        exclude_content_types: Collection[str] = DEFAULT_EXCLUDED_CONTENT_TYPES,
        interface: str | None = None,
    ) -> None:
        core = CompressionCore(
            [EncoderSpec("gzip", compresslevel)],
            check_size(minimum_size),
            check_types(exclude_content_types),
        )
        super().__init__(app, core, interface=interface)
