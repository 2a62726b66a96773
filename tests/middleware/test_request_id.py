"""RequestID: a behaviour table run through all four ways, and its AccessLog fields."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest

from middleware import AccessLog, Middleware, RequestID, Stack
from middleware.testing import PlainRequest, run

HEX32 = re.compile(rb"[0-9a-f]{32}")

# (incoming X-Request-ID or None, kept?)
CASES: list[tuple[bytes | None, bool]] = [
    (b"req-42", True),
    (b"A.b_c-9", True),
    (b"x" * 128, True),
    (b"x" * 129, False),  # too long
    (None, False),
    (b"", False),
    (b"a b", False),
    (b"a\tb", False),
    (b"req\x1b[31m", False),  # a terminal escape
    (b"a%0d%0ab", False),
    (b'a"b', False),
    (b"\xc3\xa9t\xc3\xa9", False),
    ("a\u202eb".encode(), False),  # a bidi override (UTF-8 bytes)
    # The letters-digits-dashes shortcut and the pattern behind it agree:
    (b"---", True),
    (b"x" * 127 + b"-", True),
    (b"x-" * 64 + b"x", False),  # letters and dashes, one too many
    (b"\xb2\xb9", False),  # superscript digits in latin-1: digits to str, not to bytes
    (b"a\x00b", False),
]


@pytest.mark.parametrize(("given", "kept"), CASES)
def test_behaviour_table(given: bytes | None, kept: bool) -> None:
    headers = [] if given is None else [(b"x-request-id", given)]
    for way, result in run(RequestID, PlainRequest(headers=headers)).items():
        echoed = result.header(b"x-request-id")
        assert echoed is not None, way
        if kept:
            assert echoed == given, way
        else:
            assert HEX32.fullmatch(echoed), way
        seen = result.seen
        assert seen is not None, way
        assert seen.state == {"request_id": echoed.decode()}, way
        assert seen.header(b"x-request-id") == echoed, way  # the app reads the id in use
        assert result.body == b"hello", way


def test_each_request_gets_its_own_id() -> None:
    ids = {run(RequestID, ways=["asgi"])["asgi"].header(b"x-request-id") for _ in range(20)}
    assert len(ids) == 20


def test_options() -> None:
    counter = iter(range(100))
    make: Any = lambda app: RequestID(  # noqa: E731
        app,
        "X-Correlation-ID",
        generator=lambda: f"gen-{next(counter)}",
        max_length=8,
        validator=lambda value: value.startswith("ok"),
    )
    good = PlainRequest(headers=[(b"x-correlation-id", b"ok:1/2")])
    bad = PlainRequest(headers=[(b"x-correlation-id", b"nope")])
    for way, result in run(make, good).items():
        assert result.header(b"x-correlation-id") == b"ok:1/2", way
        assert result.header(b"x-request-id") is None, way
    for way, result in run(make, bad).items():
        assert (result.header(b"x-correlation-id") or b"").startswith(b"gen-"), way


def test_untrusted_incoming_ids_and_no_echo() -> None:
    request = PlainRequest(headers=[(b"x-request-id", b"given")])
    make: Any = lambda app: RequestID(app, trust_incoming=False, echo=False)  # noqa: E731
    for way, result in run(make, request, headers=[(b"x-request-id", b"app's")]).items():
        assert result.header(b"x-request-id") == b"app's", way  # untouched without echo
        assert result.seen is not None, way
        assert HEX32.fullmatch(result.seen.state["request_id"].encode()), way
        # The app's request header is the id in use, the client's one replaced.
        assert result.seen.header(b"x-request-id") == result.seen.state["request_id"].encode()


def test_the_id_replaces_one_the_app_set() -> None:
    request = PlainRequest(headers=[(b"x-request-id", b"given")])
    for way, result in run(RequestID, request, headers=[(b"x-request-id", b"app")]).items():
        assert result.headers.count((b"x-request-id", b"given")) == 1, way
        assert result.header(b"x-request-id") == b"given", way


def test_a_generator_making_unsafe_ids_is_a_bug_reported_loudly() -> None:
    make: Any = lambda app: RequestID(app, generator=lambda: "bad id\n")  # noqa: E731
    with pytest.raises(ValueError, match="generator"):
        run(make, ways=["wsgi"])


def test_access_log_has_the_id_in_its_record_and_atom(caplog: pytest.LogCaptureFixture) -> None:
    stack = Stack([Middleware(AccessLog, format="%(r)s id=%(request_id)s"), Middleware(RequestID)])
    request = PlainRequest(headers=[(b"x-request-id", b"req-7")])
    with caplog.at_level(logging.INFO, logger="middleware.access"):
        results = run(stack, request)
    records = [r for r in caplog.records if r.name == "middleware.access"]
    assert len(records) == len(results)
    for record in records:
        assert record.getMessage() == "GET / HTTP/1.1 id=req-7"
        assert record.http["state"] == {"request_id": "req-7"}  # type: ignore[attr-defined]


def test_without_request_id_the_atom_is_a_dash(caplog: pytest.LogCaptureFixture) -> None:
    make: Any = lambda app: AccessLog(app, format="id=%(request_id)s")  # noqa: E731
    with caplog.at_level(logging.INFO, logger="middleware.access"):
        run(make, ways=["wsgi", "asgi"])
    assert [r.getMessage() for r in caplog.records] == ["id=-", "id=-"]


@pytest.mark.parametrize(
    "kwargs", [{"header": "X Request"}, {"max_length": 0}, {"generator": "uuid"}]
)
def test_bad_options_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError), match=r"header|max_length|generator"):
        RequestID(lambda e, s: [], **kwargs)
