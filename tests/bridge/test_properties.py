"""Property-based tests (hypothesis) for the pure WSGI-side translations."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge import InvalidResponse
from bridge._environ import build_environ, environ_key, split_path
from bridge._input import BodyStream
from bridge._response import encode_headers
from tests.bridge.harness import http_scope

segment = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="/?#"), min_size=1, max_size=8
)
paths = st.lists(segment, max_size=4).map(lambda parts: "/" + "/".join(parts))


@given(root=paths, rest=paths)
def test_script_name_plus_path_info_is_the_whole_path_as_latin1(root: str, rest: str) -> None:
    root = "" if root == "/" else root
    full = root + rest
    script_name, path_info = split_path(http_scope(full, root_path=root))
    assert (script_name + path_info).encode("latin-1") == full.encode("utf-8")
    assert script_name == root.encode("utf-8").decode("latin-1")
    assert path_info == "" or path_info.startswith("/")


@given(st.binary(min_size=1, max_size=30))
def test_header_names_map_to_cgi_keys_or_are_dropped(name: bytes) -> None:
    key = environ_key(name)
    if b"_" in name:
        assert key == ""
    else:
        assert key.upper() == key
        assert "-" not in key
        assert key in ("CONTENT_TYPE", "CONTENT_LENGTH") or key.startswith("HTTP_")


header_values = st.binary(max_size=20).filter(lambda v: b"\r" not in v and b"\n" not in v)


@given(
    st.lists(st.tuples(st.sampled_from([b"x-a", b"x-b", b"cookie"]), header_values), max_size=12)
)
def test_every_request_header_value_survives_in_order(headers: list[tuple[bytes, bytes]]) -> None:
    environ = build_environ(http_scope(headers=headers), None, max_header_repeats=100)
    for name in {n for n, _ in headers}:
        values = [v.decode("latin-1") for n, v in headers if n == name]
        separator = "; " if name == b"cookie" else ","
        assert environ[environ_key(name)] == separator.join(values)


@given(st.text(max_size=20), st.text(max_size=20))
def test_response_headers_are_either_refused_or_safe_on_the_wire(name: str, value: str) -> None:
    try:
        encoded, _ = encode_headers([(name, value)])
    except InvalidResponse:
        return
    for raw_name, raw_value in encoded:
        assert raw_name == raw_name.lower()
        assert not set(raw_value) & {0, 10, 13}
        assert raw_value.decode("latin-1") == value


reads = st.lists(
    st.one_of(
        st.tuples(st.just("read"), st.integers(-1, 12)),
        st.tuples(st.just("readline"), st.integers(-1, 12)),
    ),
    max_size=20,
)


@settings(max_examples=300)
@given(
    body=st.binary(max_size=60).map(lambda b: b.replace(b"\x00", b"\n")),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    ops=reads,
)
def test_any_mix_of_reads_yields_the_body_in_order(
    body: bytes, cuts: list[int], ops: list[tuple[str, int]]
) -> None:
    edges = sorted({min(c, len(body)) for c in cuts} | {0, len(body)})
    chunks = [body[a:b] for a, b in itertools.pairwise(edges)] or [b""]
    rest = chunks[1:]

    def pull() -> tuple[bytes, bool]:
        return rest.pop(0), bool(rest)

    stream = BodyStream(chunks[0], len(chunks) > 1, pull)
    out = b""
    for op, size in ops:
        piece = stream.read(size) if op == "read" else stream.readline(size)
        if size >= 0:
            assert len(piece) <= size
        if op == "readline":
            assert b"\n" not in piece[:-1]  # never more than one line
            if piece and not piece.endswith(b"\n"):
                # a line cut short only by the limit or the end of the body
                assert len(piece) == size or len(out) + len(piece) == len(body)
        out += piece
    out += stream.read()
    assert out == body


@pytest.mark.parametrize("query", [b"", b"a=%20b&c=\xe9\xff", b"x" * 4096])
def test_query_strings_round_trip_to_bytes(query: bytes) -> None:
    environ = build_environ(http_scope(query_string=query), None, max_header_repeats=100)
    assert environ["QUERY_STRING"].encode("latin-1") == query
