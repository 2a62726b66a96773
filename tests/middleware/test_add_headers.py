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
    app_headers = [(b"content-type", b"text/plain"), (spelling, b"app")]
    ways = ["wsgi", "wsgi_on_asgi"] if spelling != spelling.lower() else None
    kept = run(_make(AddHeaders(EXTRA)), headers=app_headers, **({"ways": ways} if ways else {}))
    for way, result in kept.items():
        assert result.header(b"x-one") == b"app", way
        assert result.header(b"x-two") == b"2", way
    replaced = run(
        _make(AddHeaders(EXTRA, replace=True)),
        headers=app_headers,
        **({"ways": ways} if ways else {}),
    )
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


def test_the_names_are_those_of_the_headers() -> None:
    assert AddHeaders(EXTRA).names == frozenset({b"x-one", b"x-two"})
    assert repr(AddHeaders(EXTRA[:1])) == "AddHeaders([(b'x-one', b'1')], replace=False)"
