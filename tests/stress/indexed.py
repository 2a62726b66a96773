"""Chunks that carry their stream and index, so a corrupted byte says where it came from."""

from __future__ import annotations

from collections.abc import Sequence

CHUNK_SIZE = 32


def chunk(stream: int, index: int, size: int = CHUNK_SIZE) -> bytes:
    """``size`` bytes naming ``stream`` and ``index``: ``s000012:i000034|....``."""
    head = b"s%06d:i%06d|" % (stream, index)
    return head + b"." * (size - len(head))


def chunks(stream: int, count: int, size: int = CHUNK_SIZE) -> list[bytes]:
    return [chunk(stream, index, size) for index in range(count)]


def first_difference(stream: int, got: bytes, expected: Sequence[bytes]) -> str | None:
    """``None`` when ``got`` is exactly ``expected`` joined, else where it first differs."""
    want = b"".join(expected)
    if got == want:
        return None
    size = len(expected[0]) if expected else CHUNK_SIZE
    for index in range(max(len(got), len(want)) // size + 1):
        mine = got[index * size : (index + 1) * size]
        theirs = want[index * size : (index + 1) * size]
        if mine != theirs:
            return (
                f"stream {stream}: chunk {index} is {mine[:16]!r}, expected {theirs[:16]!r} "
                f"({len(got)} bytes received, {len(want)} expected)"
            )
    return f"stream {stream}: lengths differ ({len(got)} vs {len(want)})"


def is_prefix(got: bytes, expected: Sequence[bytes]) -> bool:
    """``got`` is whole chunks from the start of ``expected``, in order, none repeated."""
    size = len(expected[0])
    if len(got) % size:
        return False
    return got == b"".join(expected[: len(got) // size])
