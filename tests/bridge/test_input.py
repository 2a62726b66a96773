"""``wsgi.input`` over a body that arrives in chunks: every PEP 3333 read method."""

from __future__ import annotations

import io
import itertools
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import BodyTooLarge, ClientDisconnected
from bridge._input import BodyStream

BODY = b"line one\nline two\n\nlast line without newline"
CHUNKINGS = {
    "one-message": [BODY],
    "byte-by-byte": [BODY[i : i + 1] for i in range(len(BODY))],
    "split-in-lines": [b"line o", b"ne\nline", b" two\n", b"", b"\nlast line", b" without newline"],
}


def stream_of(
    chunks: list[bytes], *, disconnect: bool = False, limit: int | None = None
) -> BodyStream:
    rest = list(chunks[1:])

    def pull() -> tuple[bytes, bool]:
        if not rest:
            raise ClientDisconnected("gone")
        data = rest.pop(0)
        return data, bool(rest) or disconnect

    return BodyStream(chunks[0], len(chunks) > 1 or disconnect, pull, limit=limit)


READERS: dict[str, Callable[[BodyStream], list[bytes]]] = {
    "read()": lambda s: [s.read()],
    "read(None)": lambda s: [s.read(None)],
    "read(5)-loop": lambda s: list(iter(lambda: s.read(5), b"")),
    "readline()-loop": lambda s: list(iter(s.readline, b"")),
    "readline(4)-loop": lambda s: list(iter(lambda: s.readline(4), b"")),
    "readlines()": lambda s: s.readlines(),
    "iteration": list,
}


@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_every_read_method_returns_the_whole_body_whatever_the_chunking(
    chunks: list[bytes], reader: Callable[[BodyStream], list[bytes]]
) -> None:
    assert b"".join(reader(stream_of(chunks))) == BODY


@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
def test_lines_split_exactly_at_newlines(chunks: list[bytes]) -> None:
    assert stream_of(chunks).readlines() == [
        b"line one\n",
        b"line two\n",
        b"\n",
        b"last line without newline",
    ]


@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
def test_readline_with_a_limit_never_returns_more(chunks: list[bytes]) -> None:
    stream = stream_of(chunks)
    assert stream.readline(4) == b"line"
    assert stream.readline(100) == b" one\n"
    assert stream.readline(0) == b""
    assert stream.read(4) == b"line"


def test_read_n_returns_exactly_n_until_the_end() -> None:
    stream = stream_of(CHUNKINGS["byte-by-byte"])
    assert stream.read(3) == b"lin"
    assert stream.read(0) == b""
    assert stream.read(len(BODY)) == BODY[3:]
    assert stream.read() == b""
    assert stream.read(10) == b""


def test_readlines_stops_after_the_hint() -> None:
    assert stream_of([BODY]).readlines(5) == [b"line one\n"]


def test_a_disconnect_mid_upload_raises_and_never_looks_like_the_end() -> None:
    stream = stream_of([b"part", b"ial"], disconnect=True)
    assert stream.read(7) == b"partial"
    with pytest.raises(ClientDisconnected):
        stream.read()


def test_a_body_over_the_limit_raises_body_too_large() -> None:
    stream = stream_of([b"12345", b"67890"], limit=8)
    with pytest.raises(BodyTooLarge):
        stream.read()
    with pytest.raises(BodyTooLarge):
        stream_of([b"123456789"], limit=8)


def test_a_read_across_chunks_that_fails_keeps_what_it_had_read_for_the_next_read() -> None:
    stream = stream_of([b"abcdef", b"gh", b"ijklmnop"], limit=10)
    assert stream.read(2) == b"ab"  # the first chunk is kept, two bytes into it
    with pytest.raises(BodyTooLarge):
        stream.read(20)  # its rest, b"gh", then a chunk over the limit
    assert stream.read() == b"cdefgh"


def test_a_read_across_chunks_keeps_the_chunk_it_ends_in_for_the_next_reads() -> None:
    stream = stream_of([b"abcdef", b"ghijkl", b"mn"])
    assert stream.read(4) == b"abcd"
    assert stream.read(4) == b"efgh"
    assert stream.read(3) == b"ijk"
    assert stream.read(5) == b"lmn"
    assert stream.read() == b""


def test_a_body_at_the_limit_is_accepted() -> None:
    assert stream_of([b"1234", b"5678"], limit=8).read() == b"12345678"


@pytest.mark.parametrize("more", [False, True])
def test_a_read_of_the_whole_first_chunk_hands_it_over_without_a_copy(more: bool) -> None:
    first = b"x" * 65536
    stream = BodyStream(first, more, lambda: (b"tail", False))
    assert stream.read(len(first)) is first
    assert stream.read() == (b"tail" if more else b"")


def test_a_read_past_a_complete_first_chunk_or_of_all_of_it_hands_it_over_as_is() -> None:
    first = b"whole body"
    assert BodyStream(first, False, None).read(1 << 20) is first
    assert BodyStream(first, False, None).read() is first


@pytest.mark.parametrize("chunks", CHUNKINGS.values(), ids=CHUNKINGS.keys())
def test_mixed_reads_after_a_partial_first_read_keep_every_byte_in_order(
    chunks: list[bytes],
) -> None:
    stream = stream_of(chunks)
    parts = [stream.read(0), stream.read(3), stream.readline(), stream.read(7)]
    parts += [stream.readline(2), stream.read()]
    assert parts[0] == b""
    assert b"".join(parts) == BODY
    assert parts[1:4] == [b"lin", b"e one\n", b"line tw"]


@given(
    body=st.binary(max_size=300),
    cuts=st.lists(st.integers(0, 300), max_size=8),
    ops=st.lists(
        st.tuples(st.sampled_from(["read", "readline"]), st.integers(-1, 120)), max_size=20
    ),
)
@settings(max_examples=300, deadline=None)
def test_any_mix_of_reads_over_any_chunking_reads_what_a_file_would(
    body: bytes, cuts: list[int], ops: list[tuple[str, int]]
) -> None:
    # Pieces of a kept chunk, a chunk moved into the buffer mid-way, and reads across
    # chunk boundaries must all agree with io.BytesIO over the same bytes.
    points = sorted({0, len(body), *(cut for cut in cuts if cut <= len(body))})
    chunks = [body[a:b] for a, b in itertools.pairwise(points)] or [b""]
    stream, reference = stream_of(chunks), io.BytesIO(body)
    for op, size in ops:
        assert getattr(stream, op)(size) == getattr(reference, op)(size), (op, size)
    assert stream.read() == reference.read()
