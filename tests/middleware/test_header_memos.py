"""The drivers' per-pair header memos: lenient on what apps hand over, bounded in bytes."""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import pytest

from middleware import CORS, GZip
from middleware import _asgi_driver as asgi_driver
from middleware import _wsgi_driver as wsgi_driver

ORIGIN = "https://app.example.com"
BODY = b"x" * 600  # over GZip's minimum_size


def wrap(kind: str, app: Any) -> Any:
    if kind == "cors":
        return CORS(app, allow_origins=[ORIGIN])
    return GZip(app)


async def run_asgi(app: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "query_string": b"",
        "headers": [(b"origin", ORIGIN.encode()), (b"accept-encoding", b"gzip")],
    }
    await app(scope, receive, send)
    return sent


@pytest.mark.parametrize("kind", ["cors", "gzip"])
async def test_asgi_headers_from_a_generator_of_lists_all_arrive(kind: str) -> None:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        def headers() -> Iterator[list[bytes]]:
            # Iterable pairs (lists, unhashable) from a one-shot iterable: the memo
            # cannot take them and must not lose any.
            yield [b"Content-Type", b"text/plain"]
            yield [b"x-one", b"1"]
            yield [b"x-two", b"2"]

        await send({"type": "http.response.start", "status": 200, "headers": headers()})
        await send({"type": "http.response.body", "body": BODY})

    sent = await run_asgi(wrap(kind, app))
    names = [name for name, _ in sent[0]["headers"]]
    assert names[:3] == [b"content-type", b"x-one", b"x-two"]
    if kind == "cors":
        assert (b"access-control-allow-origin", ORIGIN.encode()) in sent[0]["headers"]
        assert sent[1]["body"] == BODY
    else:
        assert (b"content-encoding", b"gzip") in sent[0]["headers"]
        assert gzip.decompress(sent[1]["body"]) == BODY


@pytest.mark.parametrize("kind", ["cors", "gzip"])
def test_wsgi_headers_given_as_lists_all_arrive(kind: str) -> None:
    def app(environ: Any, start_response: Any) -> list[bytes]:
        start_response("200 OK", [["Content-Type", "text/plain"], ["X-One", "1"]])
        return [BODY]

    seen: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        seen.append((status, list(headers)))
        return None

    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/",
        "HTTP_ORIGIN": ORIGIN,
        "HTTP_ACCEPT_ENCODING": "gzip",
    }
    body = b"".join(wrap(kind, app)(environ, start_response))
    status, headers = seen[0]
    assert status == "200 OK"
    lowered = [(name.lower(), value) for name, value in headers]
    assert lowered[:2] == [("content-type", "text/plain"), ("x-one", "1")]
    if kind == "cors":
        assert ("access-control-allow-origin", ORIGIN) in lowered
        assert body == BODY
    else:
        assert ("content-encoding", "gzip") in lowered
        assert gzip.decompress(body) == BODY


def test_memos_are_bounded_in_entries_and_keep_no_long_pair() -> None:
    long_value = "v" * (wsgi_driver._MAX_CACHED_PAIR + 1)
    wsgi_driver._to_neutral_headers([("X-Long", long_value)])
    assert ("X-Long", long_value) not in wsgi_driver._PAIRS_IN
    wsgi_driver._to_wsgi_headers([(b"x-long", long_value.encode())])
    assert (b"x-long", long_value.encode()) not in wsgi_driver._PAIRS_OUT
    asgi_driver._neutral_headers([(b"X-Long", long_value.encode())])
    assert (b"X-Long", long_value.encode()) not in asgi_driver._LOWER

    for index in range(3 * wsgi_driver._PAIR_CACHE_SIZE):
        converted = wsgi_driver._to_neutral_headers([("X-N", str(index))])
        assert converted == [(b"x-n", str(index).encode())]
        back = wsgi_driver._to_wsgi_headers([(b"x-n", str(index).encode())])
        assert back == [("x-n", str(index))]
        lowered = asgi_driver._neutral_headers([(b"X-N", str(index).encode())])
        assert lowered == [(b"x-n", str(index).encode())]
        wsgi_driver._code(f"{200 + index % 300} Reason {index}")
    assert len(wsgi_driver._PAIRS_IN) <= wsgi_driver._PAIR_CACHE_SIZE
    assert len(wsgi_driver._PAIRS_OUT) <= wsgi_driver._PAIR_CACHE_SIZE
    assert len(asgi_driver._LOWER) <= asgi_driver._LOWER_CACHE_SIZE
    assert len(wsgi_driver._CODES) <= wsgi_driver._PAIR_CACHE_SIZE
