"""The ASGI driver: pass-through of everything a core does not handle, errors, outcomes."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

import pytest

from middleware import CORS, AccessLog, GZip
from middleware.api import Core, CoreMiddleware, Handler, Head, HeaderList, Outcome, RequestHead
from tests.middleware.harness import Request, call_asgi_async, scope_for

BIG = b"x" * 5000
GZIP_ORIGIN = (("Accept-Encoding", "gzip"), ("Origin", "https://a.example"))


@pytest.fixture(autouse=True)
def _access_log_enabled(caplog: pytest.LogCaptureFixture) -> None:
    """AccessLog steps aside when its logger is disabled; these tests need it active."""
    caplog.set_level(logging.INFO, "middleware.access")


def recording_app(messages: list[dict[str, Any]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        for message in messages:
            await send(message)

    return app


def start(status: int = 200, **extra: Any) -> dict[str, Any]:
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(BIG)).encode())]
    return {"type": "http.response.start", "status": status, "headers": headers, **extra}


@pytest.mark.parametrize("scope_type", ["lifespan", "websocket"])
async def test_non_http_scopes_reach_the_app_with_the_servers_own_callables(
    scope_type: str,
) -> None:
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.extend([scope, receive, send])

    async def receive() -> dict[str, Any]:
        raise AssertionError

    async def send(message: dict[str, Any]) -> None:
        raise AssertionError

    scope = {"type": scope_type}
    for middleware in (GZip(app), CORS(app, allow_origins=["*"]), AccessLog(app)):
        seen.clear()
        await middleware(scope, receive, send)
        assert seen == [scope, receive, send]


async def test_pathsend_leaves_the_response_head_unchanged() -> None:
    messages = [start(), {"type": "http.response.pathsend", "path": "/srv/big.txt"}]
    result = await call_asgi_async(GZip(recording_app(messages)), Request(headers=GZIP_ORIGIN))
    assert result.messages[0]["headers"] == messages[0]["headers"]
    assert result.messages[1] == messages[1]


async def test_trailers_pass_through_and_the_start_keeps_its_trailers_flag() -> None:
    trailers = {"type": "http.response.trailers", "headers": [(b"x-sum", b"1")]}
    messages = [
        start(trailers=True),
        {"type": "http.response.body", "body": BIG, "more_body": False},
        trailers,
    ]
    result = await call_asgi_async(GZip(recording_app(messages)), Request(headers=GZIP_ORIGIN))
    assert result.messages[0]["trailers"] is True
    assert result.messages[-1] is trailers


@pytest.mark.parametrize(
    "message",
    [
        {"type": "http.response.informational", "status": 103, "headers": [(b"link", b"</a>")]},
        {"type": "http.response.early_hint", "links": ["</style.css>; rel=preload"]},
        {"type": "http.response.something_new", "payload": 1},
    ],
    ids=["informational", "early_hint", "unknown"],
)
async def test_messages_a_core_does_not_handle_pass_through_untouched(
    message: dict[str, Any],
) -> None:
    messages = [message, start(), {"type": "http.response.body", "body": BIG}]
    wrapped = CORS(GZip(AccessLog(recording_app(messages))), allow_origins=["*"])
    result = await call_asgi_async(wrapped, Request(headers=GZIP_ORIGIN))
    assert result.messages[0] is message
    assert result.header("content-encoding") == "gzip"


async def test_an_app_error_before_the_response_gets_a_500_with_cors_headers() -> None:
    error = ValueError("boom")

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise error

    with pytest.raises(ValueError, match="boom") as raised:
        await call_asgi_async(
            CORS(app, allow_origins=["https://a.example"]), Request(headers=GZIP_ORIGIN)
        )
    assert raised.value is error


async def test_the_500_is_what_the_client_sees(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise KeyError("boom")

    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    wrapped = AccessLog(CORS(app, allow_origins=["https://a.example"]))
    with caplog.at_level(logging.INFO, "middleware.access"), pytest.raises(KeyError):
        await wrapped(scope_for(Request(headers=GZIP_ORIGIN)), receive, send)
    assert sent[0]["status"] == 500
    assert (b"access-control-allow-origin", b"https://a.example") in sent[0]["headers"]
    assert sent[1]["body"] == b"Internal Server Error"
    assert caplog.records[0].http["status"] == 500  # type: ignore[attr-defined]
    assert caplog.records[0].http["outcome"] == "app_exception"  # type: ignore[attr-defined]


async def test_send_failing_with_oserror_counts_as_a_client_disconnect(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(start())
        await send({"type": "http.response.body", "body": b"a", "more_body": True})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            raise ConnectionResetError

    with caplog.at_level(logging.INFO, "middleware.access"), pytest.raises(ConnectionResetError):
        await AccessLog(app)(scope_for(Request()), receive, send)
    assert caplog.records[0].http["status"] == 499  # type: ignore[attr-defined]


async def test_a_disconnect_message_before_the_end_counts_as_499(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(start())
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await receive()
        message = await receive()
        assert message["type"] == "http.disconnect"

    with caplog.at_level(logging.INFO, "middleware.access"):
        await call_asgi_async(AccessLog(app), Request(), disconnect=True)
    assert caplog.records[0].http["status"] == 499  # type: ignore[attr-defined]
    assert caplog.records[0].http["outcome"] == "client_disconnected"  # type: ignore[attr-defined]


async def test_a_disconnect_after_a_complete_response_is_still_complete(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(start())
        await send({"type": "http.response.body", "body": BIG})
        await receive()
        await receive()

    with caplog.at_level(logging.INFO, "middleware.access"):
        await call_asgi_async(AccessLog(app), Request(), disconnect=True)
    assert caplog.records[0].http["status"] == 200  # type: ignore[attr-defined]


async def test_empty_intermediate_body_messages_are_not_forwarded() -> None:
    messages = [
        start(),
        {"type": "http.response.body", "body": b"", "more_body": True},
        {"type": "http.response.body", "body": BIG, "more_body": False},
    ]
    result = await call_asgi_async(AccessLog(recording_app(messages)), Request())
    bodies = [m for m in result.messages if m["type"] == "http.response.body"]
    assert [m["body"] for m in bodies] == [BIG]


async def test_the_asgi_driver_starts_no_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: threading.Thread) -> None:
        raise AssertionError("the ASGI driver must not start threads")

    monkeypatch.setattr(threading.Thread, "start", refuse)
    messages = [start(), {"type": "http.response.body", "body": BIG * 40}]
    result = await call_asgi_async(
        AccessLog(CORS(GZip(recording_app(messages)), allow_origins=["*"])),
        Request(headers=GZIP_ORIGIN),
    )
    assert result.decoded == BIG * 40


async def test_requests_are_independent_when_concurrent() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(start())
        await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": scope["path"].encode() * 1000})

    wrapped = CORS(GZip(app), allow_origins=["https://a.example", "https://b.example"])
    results = await asyncio.gather(
        *(
            call_asgi_async(
                wrapped,
                Request(
                    path=f"/{i}",
                    headers=(
                        ("Origin", f"https://{'ab'[i % 2]}.example"),
                        ("Accept-Encoding", "gzip"),
                    ),
                ),
            )
            for i in range(10)
        )
    )
    for i, result in enumerate(results):
        assert result.decoded == f"/{i}".encode() * 1000
        assert result.header("access-control-allow-origin") == f"https://{'ab'[i % 2]}.example"


async def test_a_head_only_core_forwards_body_messages_as_they_are() -> None:
    body = {"type": "http.response.body", "body": b"", "more_body": True}
    messages = [start(), body, {"type": "http.response.body", "body": BIG}]
    result = await call_asgi_async(CORS(recording_app(messages)), Request())
    assert result.messages[1] is body


async def test_a_cancelled_app_is_a_client_disconnect_without_a_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise asyncio.CancelledError

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request"}

    for wrapped in (AccessLog(app), CORS(app, allow_origins=["*"])):
        with pytest.raises(asyncio.CancelledError):
            await wrapped(scope_for(Request()), receive, send)
    assert sent == []
    assert caplog.records[0].http["status"] == 499  # type: ignore[attr-defined]


async def test_a_base_exception_is_logged_as_500_without_a_response(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise KeyboardInterrupt

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    with pytest.raises(KeyboardInterrupt):
        await AccessLog(app)(scope_for(Request()), lambda: None, send)
    assert sent == []
    assert caplog.records[0].http["status"] == 500  # type: ignore[attr-defined]


async def test_a_core_that_changes_nothing_forwards_the_apps_start_message() -> None:
    message = start()
    result = await call_asgi_async(
        AccessLog(recording_app([message, {"type": "http.response.body"}])), Request()
    )
    assert result.messages[0] is message


def test_a_scope_heads_header_joins_repeated_fields_and_says_none_when_absent() -> None:
    from middleware._asgi_driver import ScopeHead

    scope = {
        "type": "http",
        "method": "GET",
        "headers": [(b"x-a", b"1"), (b"host", b"h"), (b"x-a", b"2"), (b"x-a", b"3")],
    }
    head = ScopeHead(scope)
    assert head.header(b"x-a") == b"1, 2, 3"
    assert head.header(b"host") == b"h"
    assert head.header(b"x-b") is None


def test_a_scope_heads_set_header_replaces_every_field_and_a_refused_one_changes_nothing() -> None:
    from middleware._asgi_driver import ScopeHead

    served = [(b"x-a", b"1"), (b"host", b"h"), (b"x-a", b"2")]
    scope = {"type": "http", "method": "GET", "headers": served}
    head = ScopeHead(scope)
    head.set_header(b"x-a", b"new-1")
    assert scope["headers"] == [(b"host", b"h"), (b"x-a", b"new-1")]
    assert served == [(b"x-a", b"1"), (b"host", b"h"), (b"x-a", b"2")]  # the server's list
    with pytest.raises(ValueError, match="invalid value"):
        head.set_header(b"host", b"evil\r\nx-b: 1")
    assert scope["headers"] == [(b"host", b"h"), (b"x-a", b"new-1")]


class _Recording(Handler):
    """Holds the head, upper-cases the body, records every call in order."""

    __slots__ = ("calls",)

    def __init__(self, calls: list[Any]) -> None:
        self.calls = calls

    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        self.calls.append(("start", status))
        return None

    def on_body(self, chunk: bytes, more: bool) -> bytes:
        self.calls.append(("body", chunk, more))
        return chunk.upper()

    def pending_head(self) -> Head | None:
        return 201, [(b"x-core", b"yes")]

    def on_complete(self, outcome: Outcome) -> None:
        self.calls.append(("complete", outcome))


class _RecordingMiddleware(CoreMiddleware):
    def __init__(self, app: Any, calls: list[Any]) -> None:
        class _Core(Core):
            def on_request(self, head: RequestHead) -> Handler:
                return _Recording(calls)

        super().__init__(app, _Core())


async def test_a_full_handler_sees_the_same_conversation_on_every_request() -> None:
    """The first request of a handler class and later ones (which the driver takes by a
    shorter way) run the same conversation, answer and outcome."""
    calls: list[Any] = []
    app = recording_app(
        [
            {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]},
            {"type": "http.response.body", "body": b"hello"},
        ]
    )
    wrapped = _RecordingMiddleware(app, calls)
    for _ in range(2):
        calls.clear()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], sent: list[Any] = sent) -> None:
            sent.append(message)

        await wrapped(scope_for(Request()), _never_called, send)
        assert [(m["type"], m.get("status"), m.get("headers"), m.get("body")) for m in sent] == [
            ("http.response.start", 201, [(b"x-core", b"yes")], None),
            ("http.response.body", None, None, b"HELLO"),
        ]
        assert calls == [
            ("start", 200),
            ("body", b"hello", False),
            ("complete", Outcome.COMPLETED),
        ]


async def test_a_full_handler_hears_of_an_app_error_after_its_500_on_every_request() -> None:
    calls: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise KeyError("boom")

    wrapped = _RecordingMiddleware(app, calls)
    for _ in range(2):
        calls.clear()
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any], sent: list[Any] = sent) -> None:
            sent.append(message)

        with pytest.raises(KeyError, match="boom"):
            await wrapped(scope_for(Request()), _never_called, send)
        assert [m.get("status") for m in sent] == [201, None]
        assert sent[1]["body"] == b"INTERNAL SERVER ERROR"
        assert calls == [
            ("start", 500),
            ("body", b"Internal Server Error", False),
            ("complete", Outcome.APP_EXCEPTION),
        ]


async def _never_called() -> dict[str, Any]:
    raise AssertionError("the app does not read the request body here")
