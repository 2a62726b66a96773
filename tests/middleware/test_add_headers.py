"""``AddHeaders``: a core adds response headers with no handler, on every way."""

from __future__ import annotations

from typing import Any

import pytest

from middleware.api import AddHeaders, Core, CoreMiddleware, RequestHead
from middleware.testing import PlainRequest, run

EXTRA = [(b"x-one", b"1"), (b"x-two", b"2")]


class _Adding(Core):
    def __init__(self, add: AddHeaders) -> None:
        self.add = add

    def on_request(self, head: RequestHead) -> AddHeaders:
        return self.add


def _make(add: AddHeaders) -> Any:
    core = _Adding(add)

    class Adding(CoreMiddleware):
        def __init__(self, app: Any) -> None:
            super().__init__(app, core)

    return Adding


def _lowered(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [(name.lower(), value) for name, value in headers]


def test_the_headers_follow_the_apps_own_in_order_and_the_body_is_untouched() -> None:
    add = AddHeaders(EXTRA)
    for way, result in run(_make(add), chunks=[b"he", b"llo"]).items():
        assert result.status == 200, way
        headers = _lowered(result.headers)
        assert headers[headers.index((b"content-type", b"text/plain")) :][:3] == [
            (b"content-type", b"text/plain"),
            *EXTRA,
        ], way
        assert result.body == b"hello", way
    assert add.headers == EXTRA  # never changed by a driver


@pytest.mark.parametrize("spelling", [b"x-one", b"X-One"])
def test_a_header_the_app_set_wins_unless_replace(spelling: bytes) -> None:
    # ASGI requires lower-case names; one that is not is still recognised.
    app_headers = [(b"content-type", b"text/plain"), (spelling, b"app")]
    kept = run(_make(AddHeaders(EXTRA)), headers=app_headers)
    for way, result in kept.items():
        assert result.header(b"x-one") == b"app", way
        assert result.header(b"x-two") == b"2", way
    replaced = run(_make(AddHeaders(EXTRA, replace=True)), headers=app_headers)
    for way, result in replaced.items():
        assert result.header(b"x-one") == b"1", way
        assert result.header(b"x-two") == b"2", way
        assert [v for k, v in _lowered(result.headers) if k == b"x-one"] == [b"1"], way


def test_a_per_request_object_and_a_shared_one_both_work_across_requests() -> None:
    shared = AddHeaders([(b"x-id", b"same")], replace=True)
    for _ in range(3):  # the WSGI form is made once and reused
        for way, result in run(_make(shared), request=PlainRequest()).items():
            assert result.header(b"x-id") == b"same", way


def test_the_500_for_an_app_that_raised_before_its_head_carries_them_on_asgi() -> None:
    import asyncio

    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    scope = PlainRequest().scope()
    with pytest.raises(RuntimeError, match="boom"):
        asyncio.run(_make(AddHeaders(EXTRA))(app)(scope, receive, send))
    assert sent[0]["status"] == 500
    assert sent[0]["headers"][-2:] == EXTRA


def test_the_names_are_those_that_make_a_difference() -> None:
    assert AddHeaders(EXTRA).names == frozenset({b"x-one", b"x-two"})
    assert AddHeaders(EXTRA, remove=[b"x-gone"], vary=[b"Origin"]).names == frozenset(
        {b"x-one", b"x-two", b"x-gone", b"vary"}
    )
    assert repr(AddHeaders(EXTRA[:1])) == (
        "AddHeaders([(b'x-one', b'1')], replace=False, remove=[], vary=[])"
    )


@pytest.mark.parametrize(
    ("app_headers", "expected"),
    [
        # None of ours: appended after the app's, Vary as one new line.
        ([(b"content-type", b"text/plain")], [(b"x-one", b"1"), (b"vary", b"Origin")]),
        # The app's Vary gets the token; a removed header goes; ours replace theirs.
        (
            [(b"vary", b"Accept"), (b"x-gone", b"bye"), (b"x-one", b"app")],
            [(b"vary", b"Accept, Origin"), (b"x-one", b"1")],
        ),
        # Already varying on it (or on everything): left as it is.
        ([(b"vary", b"origin")], [(b"vary", b"origin"), (b"x-one", b"1")]),
        ([(b"vary", b"*")], [(b"vary", b"*"), (b"x-one", b"1")]),
    ],
    ids=["none_of_ours", "merge_remove_replace", "already_varying", "vary_star"],
)
def test_remove_and_vary(
    app_headers: list[tuple[bytes, bytes]], expected: list[tuple[bytes, bytes]]
) -> None:
    add = AddHeaders([(b"x-one", b"1")], replace=True, remove=[b"x-gone"], vary=[b"Origin"])
    for way, result in run(_make(add), headers=app_headers).items():
        mine = [
            (k, v)
            for k, v in _lowered(result.headers)
            if k in (b"vary", b"x-one", b"x-gone", b"content-type")
        ]
        assert [p for p in mine if p[0] != b"content-type"] == expected, way


def test_what_a_shared_object_learnt_from_clean_heads_never_hides_a_later_conflict() -> None:
    # The ASGI driver remembers app header names that needed no merge; a later head
    # that adds one of ours, or a name in upper case, must still be merged.
    add = AddHeaders([(b"x-one", b"1")], replace=True, vary=[b"Origin"])
    heads = [
        [(b"content-type", b"text/plain")],
        [(b"content-type", b"text/plain"), (b"x-one", b"app")],
        [(b"content-type", b"text/plain"), (b"Vary", b"Accept")],
        [(b"content-type", b"text/plain")],
    ]
    expected = [
        [(b"x-one", b"1"), (b"vary", b"Origin")],
        [(b"x-one", b"1"), (b"vary", b"Origin")],
        [(b"vary", b"Accept, Origin"), (b"x-one", b"1")],
        [(b"x-one", b"1"), (b"vary", b"Origin")],
    ]
    for app_headers, want in zip(heads, expected, strict=True):
        for way, result in run(_make(add), headers=app_headers).items():
            mine = [(k, v) for k, v in _lowered(result.headers) if k in (b"vary", b"x-one")]
            assert mine == want, (way, app_headers)


def test_what_the_drivers_learn_about_app_header_names_is_bounded() -> None:
    from middleware import _asgi_driver, _wsgi_driver

    add = AddHeaders([(b"x-one", b"1")])
    many = [(b"x-app-%d" % i, b"v") for i in range(500)]
    many.append((b"x-" + b"a" * 5000, b"long"))
    for way, result in run(_make(add), headers=many).items():
        assert result.header(b"x-one") == b"1", way
        assert result.header(b"x-app-499") == b"v", way
    assert add._plan.asgi is not None
    assert add._plan.wsgi is not None
    assert len(add._plan.asgi) <= _asgi_driver._CLEAN_SIZE
    assert all(len(name) <= _asgi_driver._MAX_CLEAN_NAME for name in add._plan.asgi)
    assert 0 < len(add._plan.wsgi) <= _wsgi_driver._CLEAN_SIZE
    assert all(len(name) <= _wsgi_driver._MAX_CLEAN_NAME for name in add._plan.wsgi)


def test_with_values_keeps_the_names_and_options_and_changes_only_the_values() -> None:
    template = AddHeaders(EXTRA, replace=True, remove=[b"x-gone"], vary=[b"Origin"])
    copy = template.with_values(b"a", b"b")
    assert copy.headers == [(b"x-one", b"a"), (b"x-two", b"b")]
    assert (copy.replace, copy.remove, copy.vary) == (True, (b"x-gone",), (b"Origin",))
    assert copy.names == template.names
    assert template.headers == EXTRA  # the template is unchanged
    assert copy.merged([(b"x-one", b"app"), (b"x-gone", b"bye")]) == [
        (b"x-one", b"a"),
        (b"x-two", b"b"),
        (b"vary", b"Origin"),
    ]
    with pytest.raises(ValueError, match="2 values expected, got 1"):
        template.with_values(b"a")


def test_with_value_is_with_values_for_a_template_of_one_header() -> None:
    template = AddHeaders([(b"x-id", b"-")], replace=True, vary=[b"Origin"])
    copy = template.with_value(b"a")
    same = template.with_values(b"a")
    assert (copy.headers, copy.replace, copy.remove, copy.vary) == (
        same.headers,
        same.replace,
        same.remove,
        same.vary,
    )
    assert copy.merged([(b"x-id", b"app")]) == same.merged([(b"x-id", b"app")])
    for headers in ([], EXTRA):
        with pytest.raises(ValueError, match="not 1"):
            AddHeaders(headers).with_value(b"a")


@pytest.mark.parametrize("one", [True, False], ids=["with_value", "with_values"])
def test_copies_from_with_values_go_out_on_every_way(one: bool) -> None:
    template = AddHeaders([(b"x-id", b"-")], replace=True)
    for value in (b"first", b"second"):
        add = template.with_value(value) if one else template.with_values(value)
        headers = [(b"content-type", b"text/plain"), (b"x-id", b"app")]
        for way, result in run(_make(add), headers=headers).items():
            assert [v for k, v in _lowered(result.headers) if k == b"x-id"] == [value], way


def test_a_wsgi_app_s_bytes_header_names_still_pass_through_as_before() -> None:
    # Not PEP 3333 (names are str), but servers such as wsgiref tolerate them: the
    # driver stays lenient, adds its headers and hands the app's on unchanged.
    add = AddHeaders([(b"x-one", b"1")])
    seen: list[list[Any]] = []

    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [(b"X-Raw", b"v"), ("Content-Type", "text/plain")])
        return [b"ok"]

    def start_response(status: str, headers: list[Any], exc_info: Any = None) -> Any:
        seen.append(headers)
        return None

    wrapped = _make(add)(app)
    for _ in range(2):
        body = wrapped({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, start_response)
        assert list(body) == [b"ok"]
    assert seen == [[(b"X-Raw", b"v"), ("Content-Type", "text/plain"), ("x-one", "1")]] * 2
