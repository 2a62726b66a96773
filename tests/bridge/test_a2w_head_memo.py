"""``ASGIToWSGI``'s memo of response heads: a hit gives what ``response_head`` and
``content_length`` give, invalid heads are refused every time, and it stays bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bridge import _a2w_exchange
from bridge._a2w_exchange import HEAD_MEMO_ENTRIES, HEAD_MEMO_KEY_BYTES, _response_head
from bridge._framing import content_length
from bridge._http import InvalidResponse
from bridge._scope import response_head


@pytest.fixture(autouse=True)
def _empty_memo() -> Iterator[None]:
    _a2w_exchange._HEADS.clear()
    yield
    _a2w_exchange._HEADS.clear()


def start(status: Any = 200, headers: Any = None) -> dict[str, Any]:
    if headers is None:
        headers = [(b"content-type", b"text/plain"), (b"content-length", b" 5 ")]
    return {"type": "http.response.start", "status": status, "headers": headers}


def expected(message: dict[str, Any]) -> tuple[str, list[tuple[str, str]], int | None]:
    line, headers = response_head(message)
    headers, length = content_length(headers)
    return line, headers, length


@pytest.mark.parametrize(
    "message",
    [
        start(),
        start(404, [(b"Content-Length", b"0"), (b"Connection", b"close")]),
        start(204, ()),
        start(200, ((b"x-a", b"1"), (b"x-a", b"2"), (b"content-length", b"3"))),
        start(301, [(b"location", b"/\xe9")]),
    ],
)
def test_a_hit_equals_the_uncached_head(message: dict[str, Any]) -> None:
    for _ in range(3):
        assert _response_head(message) == expected(message)
    assert len(_a2w_exchange._HEADS) == 1


def test_each_hit_hands_out_its_own_header_list() -> None:
    first = _response_head(start())[1]
    first.append(("Date", "now"))  # servers may add to the list they are given
    assert _response_head(start())[1] == [("content-type", "text/plain"), ("content-length", "5")]


@pytest.mark.parametrize(
    "message",
    [
        start(200.0),  # equal to 200, and hashes alike, but not an int
        start(True),
        start(200, [(b"x", "not bytes")]),
        start(200, [(b"x", b"a\r\nb")]),
        start(200, [(b"content-length", b"5"), (b"content-length", b"6")]),
        start(200, [(b"x", b"1", b"extra")]),
    ],
)
def test_invalid_heads_are_refused_every_time_even_after_a_valid_equal_one(
    message: dict[str, Any],
) -> None:
    _response_head(start(200, [(b"x", b"1")]))
    _response_head(start(200))
    for _ in range(2):
        with pytest.raises(InvalidResponse):
            _response_head(message)


def test_unhashable_and_lazy_headers_are_served_without_the_memo() -> None:
    lists = start(200, [[b"x-a", b"1"]])
    assert _response_head(lists) == expected(start(200, [(b"x-a", b"1")]))
    lazy = start(200, iter([(b"x-b", b"2")]))
    assert _response_head(lazy)[1] == [("x-b", "2")]
    assert not _a2w_exchange._HEADS


def test_the_memo_is_bounded_in_entries_and_key_bytes() -> None:
    for n in range(3 * HEAD_MEMO_ENTRIES):
        _response_head(start(200, [(b"x-n", str(n).encode())]))
        assert len(_a2w_exchange._HEADS) <= HEAD_MEMO_ENTRIES
    _a2w_exchange._HEADS.clear()
    big = start(200, [(b"x-big", b"v" * HEAD_MEMO_KEY_BYTES)])
    assert _response_head(big)[1] == [("x-big", "v" * HEAD_MEMO_KEY_BYTES)]
    assert not _a2w_exchange._HEADS
