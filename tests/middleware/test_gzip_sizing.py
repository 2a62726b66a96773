"""GZip compresses a whole body with a deflate state sized for it, and the same bytes.

``middleware._encodings.gzip_parameters`` picks a window and memLevel smaller than
zlib's defaults for a body of known length; its rules come from zlib's deflate.c and
promise output identical to ``zlib.compress(body, level, 31)``. These tests hold it to
that on bodies of many kinds and sizes, through both interfaces.
"""

from __future__ import annotations

import functools
import json
import random
import sys
import zlib
from collections.abc import Callable
from typing import Any

import pytest

from middleware import GZip
from middleware._encodings import EncoderSpec, gzip_parameters
from tests.middleware.harness import Reply, Request, run_both

# zlib-ng (a drop-in some distributions ship) makes other choices than zlib's deflate.c,
# whatever the parameters: there only the round trip is promised.
MADLER_ZLIB = "ng" not in zlib.ZLIB_RUNTIME_VERSION
GZIP = (("Accept-Encoding", "gzip"),)
DEFAULT_WBITS = 16 + zlib.MAX_WBITS


def zlib_default(body: bytes, level: int) -> bytes:
    """zlib's gzip output with its default state: ``zlib.compress(body, level, 31)``, or
    on Python 3.10 (no third argument) a compressor object, as GZip uses there. (At
    level 0 the two split stored blocks differently.)"""
    if sys.version_info >= (3, 11):
        return zlib.compress(body, level, DEFAULT_WBITS)
    z = zlib.compressobj(level, zlib.DEFLATED, DEFAULT_WBITS)  # pragma: no cover
    return z.compress(body) + z.flush()  # pragma: no cover


def _json(size: int, rng: random.Random) -> bytes:
    records: list[dict[str, Any]] = []
    while 40 * len(records) < size:  # each record is over 40 bytes of JSON
        records.append(
            {"id": rng.randrange(10**6), "name": f"item {len(records)}", "tags": ["a", "b"]}
        )
    return json.dumps(records).encode()[:size]


def _html(size: int, rng: random.Random) -> bytes:
    rows = []
    while 40 * len(rows) < size:  # each row is over 40 bytes
        n = rng.randrange(10**4)
        rows.append(f'<tr class="r{n % 2}"><td><a href="/items/{n}">Item {n}</a></td></tr>\n')
    return ("<!doctype html><table>\n" + "".join(rows)).encode()[:size]


WORDS = ("the", "of", "and", "to", "in", "is", "it", "that", "was", "for", "on", "with")


def _text(size: int, rng: random.Random) -> bytes:
    words: list[str] = []
    while 2 * len(words) < size:  # a word and its space are at least 2 bytes
        words.append(rng.choice(WORDS))
    return " ".join(words).encode()[:size]


def _random(size: int, rng: random.Random) -> bytes:
    return rng.randbytes(size)


def _repeated(size: int, rng: random.Random) -> bytes:
    return (b"abcabcabd" * (size // 9 + 1))[:size]


KINDS: dict[str, Callable[[int, random.Random], bytes]] = {
    "json": _json,
    "html": _html,
    "text": _text,
    "random": _random,
    "repeated": _repeated,
}
# Around every edge of the rules: the chain budgets (32 at level 6, 1024 at level 9),
# window and buffer powers of two, the largest sized body (16,122 B) and zlib's window.
SIZES = [100, 500, 1024, 1029, 1786, 1787, 4096, 8000, 16122, 16123, 32768, 65536]
LEVELS = [1, 6, 9]


@functools.cache
def body_for(kind: str, size: int) -> bytes:
    return KINDS[kind](size, random.Random(f"{kind}-{size}"))


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_gzip_sends_zlibs_default_output_for_whole_bodies_on_both_interfaces(
    kind: str, size: int, level: int
) -> None:
    body = body_for(kind, size)
    reply = Reply(headers=(("Content-Type", "text/plain"),), chunks=(body,), content_length=True)
    wrap = lambda app: GZip(app, minimum_size=0, compresslevel=level)  # noqa: E731
    for result in run_both(wrap, reply, Request(headers=GZIP)):
        assert result.header("content-encoding") == "gzip"
        assert result.header("content-length") == str(len(result.body))
        assert result.decoded == body
        if MADLER_ZLIB:
            assert result.body == zlib_default(body, level)


@pytest.mark.skipif(not MADLER_ZLIB, reason="the byte-for-byte promise is zlib's deflate.c")
@pytest.mark.parametrize("level", range(10))
def test_one_shot_output_is_zlibs_default_output_at_every_level(level: int) -> None:
    spec = EncoderSpec("gzip", level)
    for kind in KINDS:
        for size in [0, 1, 2, 3, 4, 5, 8, 9, 33, 256, 257, *SIZES]:
            body = body_for(kind, size)
            assert spec.one_shot(body) == zlib_default(body, level), (kind, size)


@pytest.mark.parametrize("level", range(10))
def test_sized_parameters_keep_every_bound_deflate_depends_on(level: int) -> None:
    budget = {0: 16122, 1: 4, 2: 8, 3: 32, 4: 4, 5: 8, 6: 32, 7: 64, 8: 256, 9: 1024}[level]
    for size in range(0, 17000, 7):
        wbits, mem_level = gzip_parameters(size, level)
        assert 16 + 9 <= wbits <= DEFAULT_WBITS
        assert 1 <= mem_level <= zlib.DEF_MEM_LEVEL
        if (wbits, mem_level) == (DEFAULT_WBITS, zlib.DEF_MEM_LEVEL):
            continue
        assert 1 << (wbits - 16) >= size + 262  # no match distance cut short
        assert 1 << (mem_level + 6) >= size + 2  # no block ended early
        if mem_level < zlib.DEF_MEM_LEVEL:
            assert size <= budget  # a smaller hash table never exhausts a chain search


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The arguments of every ``zlib.compressobj`` call from now on."""
    calls: list[tuple[int, ...]] = []
    real = zlib.compressobj

    def spy(*args: int) -> Any:
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(zlib, "compressobj", spy)
    return calls


def test_a_1_kib_body_at_level_9_gets_a_2_kib_window_and_memlevel_5(
    made: list[tuple[int, ...]],
) -> None:
    spec = EncoderSpec("gzip", 9)
    spec.one_shot(body_for("json", 1024))
    spec.one_shot(body_for("json", 65536))  # zlib's defaults (3.10: three arguments)
    assert [args for args in made if len(args) == 4] == [(9, zlib.DEFLATED, 16 + 11, 5)]


@pytest.mark.parametrize("level", range(10))
def test_one_shot_uses_the_parameters_gzip_parameters_gives(
    made: list[tuple[int, ...]], level: int
) -> None:
    spec = EncoderSpec("gzip", level)
    sizes = [*range(0, 1100), *range(1100, 16123, 97), 16122]
    for size in sizes:
        spec.one_shot(bytes(size))
    assert made == [(level, zlib.DEFLATED, *gzip_parameters(size, level)) for size in sizes]
