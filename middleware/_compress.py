"""Compress: response compression negotiated between zstd, br and gzip.

``br`` needs the ``brotli`` package and ``zstd`` the ``zstandard`` package (optional
extras). By default every coding available here is offered, in the order
``zstd, br, gzip``; naming an unavailable coding explicitly is a configuration error.
The rules shared with :class:`middleware.GZip` live in :mod:`middleware._compression`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from middleware._compression import (
    DEFAULT_EXCLUDED_CONTENT_TYPES,
    CompressionCore,
    check_size,
    check_types,
)
from middleware._encodings import AVAILABLE, EncoderSpec
from middleware.api import CoreMiddleware

__all__ = ["Compress"]


class Compress(CoreMiddleware):
    """Compress responses with the best coding the client accepts.

    ``encodings`` is the server's preference order (ties in the client's weights go to
    the earlier one); ``None`` offers every available coding. ``compresslevel`` is for
    gzip (0-9), ``brotli_quality`` for br (0-11), ``zstd_level`` for zstd.
    """

    def __init__(
        self,
        app: Any,
        minimum_size: int = 500,
        compresslevel: int = 9,
        *,
        encodings: Sequence[str] | None = None,
        brotli_quality: int = 4,
        zstd_level: int = 3,
        exclude_content_types: Collection[str] = DEFAULT_EXCLUDED_CONTENT_TYPES,
        interface: str | None = None,
    ) -> None:
        if encodings is None:
            encodings = AVAILABLE
        elif isinstance(encodings, str) or not isinstance(encodings, Sequence):
            raise TypeError("encodings must be a sequence such as ('zstd', 'br', 'gzip')")
        if not encodings:
            raise ValueError("encodings must name at least one coding")
        if len(set(encodings)) != len(encodings):
            raise ValueError(f"encodings lists a coding twice: {encodings!r}")
        levels = {"gzip": compresslevel, "br": brotli_quality, "zstd": zstd_level}
        specs = [EncoderSpec(name, levels.get(name, 0)) for name in encodings]
        core = CompressionCore(specs, check_size(minimum_size), check_types(exclude_content_types))
        super().__init__(app, core, interface=interface)
