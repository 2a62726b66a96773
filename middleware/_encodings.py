"""Content codings: ``Accept-Encoding`` negotiation and incremental compressors.

Pure code: no I/O. RFC 9110 12.5.3 (Accept-Encoding) and 12.4.2 (quality values)
decide the parsing; 8.4.1 lists the codings (``x-gzip`` is an alias of ``gzip``).

Compressors are shaped like httpx's decoders, for one response each:

* ``compress(chunk) -> bytes`` returns everything needed to decode the body up to the
  end of ``chunk`` (a sync flush), so a streamed response is never held back;
* ``flush(chunk=b"") -> bytes`` compresses a last chunk and ends the stream.

``br`` (module ``brotli``) and ``zstd`` (module ``zstandard``) are optional extras;
:data:`AVAILABLE` lists what this interpreter can produce.
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
import zlib
from collections.abc import Callable, Sequence
from typing import Any, Protocol

__all__ = [
    "AVAILABLE",
    "Compressor",
    "EncoderSpec",
    "gzip_parameters",
    "negotiate",
    "parse_accept_encoding",
]


def _optional(module: str) -> Any:
    """The module, or ``None`` when the optional extra is not installed."""
    try:
        return importlib.import_module(module)
    except ImportError:  # pragma: no cover - tested in a subprocess (test_encodings)
        return None


_brotli = _optional("brotli")  # optional extra "brotli"
_zstandard = _optional("zstandard")  # optional extra "zstd"


class Compressor(Protocol):
    """An incremental compressor for one response body."""

    def compress(self, chunk: bytes) -> bytes: ...
    def flush(self, chunk: bytes = b"") -> bytes: ...


class _Gzip:
    __slots__ = ("_z",)

    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)

    def compress(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        z = self._z
        return z.compress(chunk) + z.flush(zlib.Z_SYNC_FLUSH)

    def flush(self, chunk: bytes = b"") -> bytes:
        z = self._z
        return z.compress(chunk) + z.flush() if chunk else z.flush()


class _Brotli:
    __slots__ = ("_c",)

    def __init__(self, quality: int) -> None:
        assert _brotli is not None
        self._c = _brotli.Compressor(quality=quality)

    def compress(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        c = self._c
        out: bytes = c.process(chunk) + c.flush()
        return out

    def flush(self, chunk: bytes = b"") -> bytes:
        c = self._c
        out: bytes = (c.process(chunk) if chunk else b"") + c.finish()
        return out


class _Zstd:
    __slots__ = ("_c",)

    def __init__(self, level: int) -> None:
        assert _zstandard is not None
        self._c = _zstandard.ZstdCompressor(level=level).compressobj()

    def compress(self, chunk: bytes) -> bytes:
        if not chunk:
            return b""
        assert _zstandard is not None
        c = self._c
        out: bytes = c.compress(chunk) + c.flush(_zstandard.COMPRESSOBJ_FLUSH_BLOCK)
        return out

    def flush(self, chunk: bytes = b"") -> bytes:
        c = self._c
        out: bytes = (c.compress(chunk) if chunk else b"") + c.flush()
        return out


# Deflate's state sized for a whole body of known length (zlib's deflate.c, 1.2.x-1.3.x).
# zlib's defaults (32 KiB window, memLevel 8) allocate about 256 KiB per stream and zero
# a 64 KiB hash table. Where glibc hands that memory back after each body and faults it
# in again on the next (a small process: 18 page faults), the setup costs five times the
# compressing of 1 KiB; in a warmed-up heap it costs little time, but still a third of
# the instructions. A smaller state gives byte-identical output when nothing deflate
# decides can tell the difference:
# * window (2**wbits): matches reach back min(position, window - 262) bytes, 262 being
#   MIN_LOOKAHEAD; a window of at least size + 262 never cuts a match short;
# * memLevel sets the symbol buffer to 2**(memLevel + 6) entries, and a block is ended
#   when it holds that many less one: at least size + 2 entries ends no block early;
# * memLevel also sets the hash table to 2**(memLevel + 7) heads. A smaller table only
#   adds colliding strings to each hash chain, which longest_match skips (they never
#   match) but counts against its chain budget; a search sees every real candidate, as
#   with the default table, if a chain cannot outgrow the budget: size <= budget.
_MIN_LOOKAHEAD = 262
# The largest body a window under zlib's 32 KiB fits (2**14 - 262); a longer one gets
# zlib's defaults, since its window must be 32 KiB and its symbol buffer 16 Ki entries.
_SIZED_MAX = (1 << (zlib.MAX_WBITS - 1)) - _MIN_LOOKAHEAD
# Per level, the longest body whose every hash-chain search runs to the chain's end:
# zlib's max_chain (configuration_table), quartered for the lazy levels 4-9 since
# longest_match quarters it once it holds a good match. Level 0 stores, never searches.
_FULL_SEARCH = (_SIZED_MAX, 4, 8, 32, 16 >> 2, 32 >> 2, 128 >> 2, 256 >> 2, 1024 >> 2, 4096 >> 2)


def gzip_parameters(size: int, level: int) -> tuple[int, int]:
    """``(wbits, memLevel)`` for a gzip stream of a ``size``-byte body at ``level``: the
    smallest deflate state that gives the same bytes as zlib's defaults (see above)."""
    if size > _SIZED_MAX:
        return 16 + zlib.MAX_WBITS, zlib.DEF_MEM_LEVEL
    wbits = max(9, (size + _MIN_LOOKAHEAD - 1).bit_length())  # 2**wbits >= size + 262
    if size > _FULL_SEARCH[level]:
        return 16 + wbits, zlib.DEF_MEM_LEVEL  # the default hash table: same chains
    return 16 + wbits, max(1, (size + 1).bit_length() - 6)  # 2**(m + 6) >= size + 2


def _gzip_one_shot(level: int) -> Callable[[bytes], bytes]:
    compressobj = zlib.compressobj
    deflated = zlib.DEFLATED
    largest = _SIZED_MAX
    if sys.version_info >= (3, 11):
        # One C call and no compressor object for a body that needs zlib's defaults.
        # Positional arguments: zlib.compress parses keywords the slow way.
        compress = zlib.compress
        default_wbits = 16 + zlib.MAX_WBITS

        def large(data: bytes) -> bytes:
            return compress(data, level, default_wbits)

    else:  # pragma: no cover - Python 3.10

        def large(data: bytes) -> bytes:
            return _Gzip(level).flush(data)

    # gzip_parameters as two lookups by bit length, in the caller's frame (a frame and a
    # tuple less per body; test_gzip_sizing checks both agree at every size).
    searched = _FULL_SEARCH[level]
    wbits_for = tuple(16 + max(9, bits) for bits in range(zlib.MAX_WBITS))
    mem_level_for = tuple(max(1, bits - 6) for bits in range(zlib.MAX_WBITS))
    default_mem_level = zlib.DEF_MEM_LEVEL

    def one_shot(data: bytes) -> bytes:
        size = len(data)
        if size > largest:
            return large(data)
        z = compressobj(
            level,
            deflated,
            wbits_for[(size + _MIN_LOOKAHEAD - 1).bit_length()],
            mem_level_for[(size + 1).bit_length()] if size <= searched else default_mem_level,
        )
        return z.compress(data) + z.flush()

    return one_shot


# Whole bodies up to this size reuse their thread's ZstdCompressor: making one costs
# twice the compressing of 1 KiB JSON at level 3. Bigger ones get their own, so a thread
# keeps at most the workspace of a body this size (about 330 KB at level 3, 630 KB at
# level 19 and up).
_ZSTD_REUSED_MAX = 16384


def _zstd_one_shot(level: int) -> Callable[[bytes], bytes]:
    assert _zstandard is not None
    new = _zstandard.ZstdCompressor
    # Per thread, never shared: one_shot runs start to end in C with no await between,
    # so an event loop's requests take turns on the loop thread's compressor.
    local = threading.local()

    def one_shot(data: bytes) -> bytes:
        if len(data) > _ZSTD_REUSED_MAX:
            return bytes(new(level=level).compress(data))
        try:
            compressor = local.compressor
        except AttributeError:
            compressor = local.compressor = new(level=level)
        return bytes(compressor.compress(data))

    return one_shot


class EncoderSpec:
    """One coding at one level: makes compressors and compresses whole bodies."""

    __slots__ = ("coded_tail", "level", "name", "one_shot", "streaming", "token")

    def __init__(self, name: str, level: int) -> None:
        self.name = name
        self.token = name.encode("ascii")  # the Content-Encoding value
        # What ends the head of a body coded here (when the app set no Vary of its own).
        self.coded_tail: tuple[tuple[bytes, bytes], ...] = (
            (b"content-encoding", self.token),
            (b"vary", b"Accept-Encoding"),
        )
        self.level = level
        self.streaming: Callable[[], Compressor]
        self.one_shot: Callable[[bytes], bytes]
        if name == "gzip":
            if not 0 <= level <= 9:
                raise ValueError(f"gzip compresslevel must be 0..9, not {level}")
            self.streaming = lambda: _Gzip(level)
            self.one_shot = _gzip_one_shot(level)
        elif name == "br":
            if _brotli is None:  # pragma: no cover - tested in a subprocess (test_encodings)
                raise ValueError("'br' needs the brotli package (pip install brotli)")
            if not 0 <= level <= 11:
                raise ValueError(f"brotli_quality must be 0..11, not {level}")
            compress = _brotli.compress
            self.streaming = lambda: _Brotli(level)
            self.one_shot = lambda data: bytes(compress(data, quality=level))
        elif name == "zstd":
            if _zstandard is None:  # pragma: no cover - tested in a subprocess (test_encodings)
                raise ValueError("'zstd' needs the zstandard package (pip install zstandard)")
            if not -7 <= level <= 22:
                raise ValueError(f"zstd_level must be -7..22, not {level}")
            # A ZstdCompressor must not be shared between threads: one per stream.
            self.streaming = lambda: _Zstd(level)
            self.one_shot = _zstd_one_shot(level)
        else:
            raise ValueError(f"unknown content coding {name!r}; known: gzip, br, zstd")


AVAILABLE: tuple[str, ...] = tuple(
    name
    for name, module in (("zstd", _zstandard), ("br", _brotli), ("gzip", zlib))
    if module is not None
)
"""Codings this interpreter can produce, in the default order of preference."""


def _qvalue(text: str) -> float | None:
    # RFC 9110 12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
    # Accept anything float() reads within [0, 1]; anything else is malformed.
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isnan(value) or not 0.0 <= value <= 1.0:
        return None
    return value


def parse_accept_encoding(value: str) -> dict[str, float]:
    """Codings and their weights from an ``Accept-Encoding`` value.

    Names are lower-cased (``x-gzip`` becomes ``gzip``); an element with a malformed
    weight is ignored, as if it was not sent; the first mention of a coding wins.
    """
    result: dict[str, float] = {}
    for element in value.split(","):
        coding, _, params = element.partition(";")
        coding = coding.strip().lower()
        if not coding or " " in coding:
            continue
        weight: float | None = 1.0
        if params:
            for param in params.split(";"):
                key, _, text = param.partition("=")
                if key.strip().lower() == "q":
                    weight = _qvalue(text.strip())
        if weight is None:
            continue
        if coding == "x-gzip":
            coding = "gzip"
        result.setdefault(coding, weight)
    return result


def negotiate(accept: dict[str, float], offered: Sequence[str]) -> str | None:
    """The best of ``offered`` for ``accept``; ``None`` means send the body as is.

    Highest weight wins, ties go to the earlier entry of ``offered``; ``*`` stands for
    any coding not named. Identity wins only when named with a higher weight, since
    RFC 9110 makes an unnamed identity merely acceptable, not preferred.
    """
    star = accept.get("*", 0.0)
    best: str | None = None
    best_weight = 0.0
    for coding in offered:
        weight = accept.get(coding, star)
        if weight > best_weight:
            best, best_weight = coding, weight
    identity = accept.get("identity")
    if best is not None and identity is not None and identity > best_weight:
        return None
    return best
