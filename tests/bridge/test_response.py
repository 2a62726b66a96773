"""``start_response`` as a state machine, header validation, and ``wsgi.file_wrapper``."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest

from bridge import InvalidResponse
from bridge._response import FileWrapper, Phase, ResponseHead, encode_headers, parse_status


def head() -> ResponseHead:
    return ResponseHead(lambda data: None)


def exc_info() -> tuple[type[BaseException], BaseException, object]:
    try:
        raise KeyError("boom")
    except KeyError:
        info = sys.exc_info()
    assert info[0] is not None
    return info  # type: ignore[return-value]


def test_start_response_records_status_and_lowercase_headers() -> None:
    response = head()
    write = response.start_response("201 Created", [("X-Thing", "v"), ("Content-Length", "4")])
    assert write is response.write
    assert response.phase is Phase.HEADERS_PENDING
    assert response.status == 201
    assert response.headers == [(b"x-thing", b"v"), (b"content-length", b"4")]
    assert response.content_length == 4


def test_a_second_call_without_exc_info_is_an_error() -> None:
    response = head()
    response.start_response("200 OK", [])
    with pytest.raises(RuntimeError, match="second time"):
        response.start_response("200 OK", [])


def test_exc_info_before_the_headers_are_sent_replaces_them() -> None:
    response = head()
    response.start_response("200 OK", [("X-A", "1")])
    response.start_response("500 Internal Server Error", [("X-B", "2")], exc_info())  # type: ignore[arg-type]
    assert (response.status, response.headers) == (500, [(b"x-b", b"2")])


def test_exc_info_after_the_headers_are_sent_reraises_the_apps_error() -> None:
    response = head()
    response.start_response("200 OK", [])
    response.mark_sent()
    with pytest.raises(KeyError, match="boom"):
        response.start_response("500 Internal Server Error", [], exc_info())  # type: ignore[arg-type]


def test_body_before_start_response_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="before calling start_response"):
        head().mark_sent()


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([("X-Bad", "a\r\nSet-Cookie: evil=1")], id="crlf-in-value"),
        pytest.param([("X-Bad", "a\nb")], id="lf-in-value"),
        pytest.param([("X-Bad", "a\x00b")], id="nul-in-value"),
        pytest.param([("X-Bad", "\u20ac")], id="non-latin1-value"),
        pytest.param([("X Bad", "v")], id="space-in-name"),
        pytest.param([("X-Bad:", "v")], id="colon-in-name"),
        pytest.param([("", "v")], id="empty-name"),
        pytest.param([(b"X-Bytes", "v")], id="bytes-name"),
        pytest.param([("X-Bytes", b"v")], id="bytes-value"),
        pytest.param([("X-A", "1", "extra")], id="three-tuple"),
        pytest.param("X-A: 1", id="not-a-list"),
        pytest.param([("Content-Length", "12a")], id="bad-content-length"),
        pytest.param([("Content-Length", "1"), ("Content-Length", "2")], id="two-lengths"),
    ],
)
def test_invalid_headers_are_refused_when_the_app_sets_them(headers: object) -> None:
    with pytest.raises(InvalidResponse):
        head().start_response("200 OK", headers)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", ["2000 OK", "OK 200", "20 OK", "100 Continue", "200 O\r\nK"])
def test_invalid_status_lines_are_refused(status: str) -> None:
    with pytest.raises(InvalidResponse):
        parse_status(status)


def test_headers_given_as_lists_are_accepted_like_tuples() -> None:
    response = head()
    response.start_response("200 OK", [["X-Colour", "Blue"], ("X-Size", "2")])  # type: ignore[list-item]
    assert response.headers == [(b"x-colour", b"Blue"), (b"x-size", b"2")]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([["X-Bad", "a\r\nSet-Cookie: evil=1"]], id="crlf-in-list-value"),
        pytest.param([["X-Bad", "\u20ac"]], id="non-latin1-list-value"),
        pytest.param([["X-A", "1", "extra"]], id="three-item-list"),
    ],
)
def test_headers_given_as_lists_are_still_validated(headers: object) -> None:
    with pytest.raises(InvalidResponse):
        head().start_response("200 OK", headers)  # type: ignore[arg-type]


def test_exc_info_may_be_passed_by_keyword() -> None:
    response = head()
    response.start_response("200 OK", [("X-A", "1")])
    response.start_response("500 Internal Server Error", [], exc_info=exc_info())  # type: ignore[arg-type]
    assert response.status == 500
    response.mark_sent()
    with pytest.raises(KeyError, match="boom"):
        response.start_response("500 Internal Server Error", [], exc_info=exc_info())  # type: ignore[arg-type]


def test_latin1_header_values_round_trip_to_bytes() -> None:
    headers, _ = encode_headers([("X-Name", "caf\u00e9\tend")])
    assert headers == [(b"x-name", b"caf\xe9\tend")]


def test_hop_by_hop_headers_are_dropped() -> None:
    headers, _ = encode_headers(
        [("Connection", "close"), ("Transfer-Encoding", "chunked"), ("X-A", "1")]
    )
    assert headers == [(b"x-a", b"1")]


def test_file_wrapper_iterates_in_blocks_and_closes_the_file() -> None:
    file = io.BytesIO(b"abcdefghij")
    wrapper = FileWrapper(file, 4)
    assert list(wrapper) == [b"abcd", b"efgh", b"ij"]
    wrapper.close()
    assert file.closed


def test_a_file_opened_by_absolute_path_can_be_sent_by_path(tmp_path: Path) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"x" * 100)
    with target.open("rb") as file:
        assert FileWrapper(file).sendable_path(None) == str(target)
        assert FileWrapper(file).sendable_path(100) == str(target)
        assert FileWrapper(file).sendable_path(50) is None  # a slice: read it through
        file.read(1)
        assert FileWrapper(file).sendable_path(None) is None  # not from the start


def test_a_file_without_a_path_is_read_through_python() -> None:
    assert FileWrapper(io.BytesIO(b"x")).sendable_path(None) is None


def test_parsed_statuses_are_remembered_within_a_bound_and_bad_ones_never() -> None:
    from bridge import _response

    for code in range(200, 600):
        assert _response.parse_status(f"{code} Reason {code}") == code
        assert _response.parse_status(f"{code} Reason {code}") == code
    assert len(_response._STATUS_CACHE) <= _response._STATUS_CACHE_LIMIT
    assert _response.parse_status("299 x" * 20) == 299  # longer than cached: still parsed
    assert "299 x" * 20 not in _response._STATUS_CACHE
    for bad in ("200\r\nX: y", "20 OK", "100 Continue"):
        with pytest.raises(InvalidResponse):
            _response.parse_status(bad)
        assert bad not in _response._STATUS_CACHE


def test_header_pairs_seen_before_still_declare_and_conflict_on_content_length() -> None:
    for _ in range(2):  # the second time from the memo of validated pairs
        headers, length = encode_headers([("Content-Type", "text/plain"), ("Content-Length", "5")])
        assert headers == [(b"content-type", b"text/plain"), (b"content-length", b"5")]
        assert length == 5
        with pytest.raises(InvalidResponse, match="conflicting"):
            encode_headers([("Content-Length", "5"), ("Content-Length", "6")])


def test_a_refused_header_pair_is_refused_every_time() -> None:
    for _ in range(2):
        with pytest.raises(InvalidResponse):
            encode_headers([("X-Bad", "a\r\nb")])
        with pytest.raises(InvalidResponse):
            encode_headers([("X-List", ["not", "a", "str"])])
