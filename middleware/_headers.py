"""Small pure helpers over neutral header lists (lower-case ``bytes`` names).

RFC 9110 12.5.5 (Vary) and 5.3 (a list-valued field may be split over several lines,
and recipients combine them with commas) decide the merging rules here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # at run time this module imports nothing: _core uses it too
    from middleware.api import HeaderList

__all__ = ["add_vary", "all_known", "find", "split_tokens"]


def find(headers: HeaderList, name: bytes) -> bytes | None:
    """The first value of ``name`` in ``headers``, or ``None``."""
    for key, value in headers:
        if key == name:
            return value
    return None


def all_known(pairs: Iterable[Any], known: set[Any]) -> bool:
    """Whether every pair's name is in ``known`` (``False`` for a malformed pair).

    Both drivers ask this of an app's response headers before adding theirs: names
    already seen to need no merge. A plain loop is cheaper than
    ``set.issuperset(map(...))`` for a head's few names.
    """
    try:
        for pair in pairs:
            if pair[0] not in known:
                return False
    except (TypeError, IndexError):  # an unhashable or malformed pair
        return False
    return True


def split_tokens(value: bytes) -> list[bytes]:
    """A comma-separated list field as lower-case tokens, empty elements dropped."""
    return [item.strip().lower() for item in value.split(b",") if item.strip()]


def add_vary(headers: HeaderList, token: bytes, token_lower: bytes) -> None:
    """Add ``token`` to ``Vary`` in place unless it (or ``*``) is already listed.

    The token joins the first existing ``Vary`` line rather than adding a second one,
    so caches and humans see one list.
    """
    first = -1
    for index, (key, value) in enumerate(headers):
        if key == b"vary":
            lowered = value.lower()
            if token_lower in lowered or b"*" in value:
                # Substring test first (cheap); confirm on the split list.
                tokens = split_tokens(lowered)
                if token_lower in tokens or b"*" in tokens:
                    return
            if first < 0:
                first = index
    if first < 0:
        headers.append((b"vary", token))
    else:
        value = headers[first][1]
        headers[first] = (b"vary", value + b", " + token if value.strip() else token)
