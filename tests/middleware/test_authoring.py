"""The public authoring API, each capability run through all four ways (test kit)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from middleware import AccessLog, GZip, Middleware, Stack
from middleware.api import (
    Core,
    CoreMiddleware,
    Handler,
    Head,
    HeaderList,
    Outcome,
    ProtocolError,
    RequestHead,
    Response,
)
from middleware.testing import WAYS, PlainHead, PlainRequest, run


def make(core: Core) -> Callable[[Any], Any]:
    """A one-off middleware class around ``core``."""

    class Custom(CoreMiddleware):
        def __init__(self, app: Any, *, interface: str | None = None) -> None:
            super().__init__(app, core, interface=interface)

    return Custom


class _Rewrite(Core):
    def on_request(self, head: RequestHead) -> None:
        head.set_client("203.0.113.9", 4321)
        head.set_scheme("https")
        head.set_server("public.example", 443)
        head.set_root_path("/prefix")
        head.set_header(b"host", b"public.example")
        head.add_header(b"x-added", b"1")
        head.remove_header(b"x-secret")
        head.state["request_id"] = "abc"


def test_a_core_changes_the_request_the_app_sees_on_every_interface() -> None:
    request = PlainRequest(path="/users", headers=[(b"x-secret", b"s"), (b"x-keep", b"k")])
    results = run(make(_Rewrite()), request)
    assert set(results) == set(WAYS)
    for way, result in results.items():
        seen = result.seen
        assert seen is not None, way
        assert seen.client == ("203.0.113.9", 4321), way
        assert seen.scheme == "https", way
        assert seen.server == ("public.example", 443), way
        assert (seen.root_path, seen.path) == ("/prefix", "/prefix/users"), way
        assert seen.header(b"host") == b"public.example", way
        assert seen.header(b"x-added") == b"1", way
        assert seen.header(b"x-secret") is None, way
        assert seen.header(b"x-keep") == b"k", way
        assert seen.state == {"request_id": "abc"}, way
        assert (result.status, result.body) == (200, b"hello"), way


def test_state_is_in_the_contextvar_while_a_native_app_runs() -> None:
    results = run(make(_Rewrite()))
    # Behind an adapter the app runs on another thread or loop, outside the context.
    for way in ("wsgi", "asgi"):
        seen = results[way].seen
        assert seen is not None
        assert seen.context_state == {"request_id": "abc"}, way


class _Reader(Core):
    """Reads every fact of the head into the response, to compare the interfaces."""

    def on_request(self, head: RequestHead) -> Response:
        facts = (
            head.method,
            head.path,
            head.root_path,
            head.query,
            head.scheme,
            head.client,
            head.server,
            head.http_version,
            head.header(b"x-a"),
        )
        return Response(200, [], repr(facts).encode())


@pytest.mark.parametrize("version", ["1.0", "1.1", "2"])
def test_the_request_head_reads_the_same_on_both_interfaces(version: str) -> None:
    request = PlainRequest(
        method="POST",
        path="/a/b",
        root_path="/r",
        query=b"x=1",
        headers=[(b"x-a", b"1")],
        http_version=version,
        client=("10.0.0.7", 5000),
    )
    bodies = {way: result.body for way, result in run(make(_Reader()), request).items()}
    expected = (
        "POST",
        "/r/a/b",
        "/r",
        b"x=1",
        "http",
        ("10.0.0.7", 5000),
        ("testserver", 80),
        version,
        b"1",
    )
    assert bodies == dict.fromkeys(WAYS, repr(expected).encode())


def test_an_unknown_client_port_is_none_on_wsgi_too() -> None:
    from middleware._wsgi_driver import EnvironHead

    head = EnvironHead({"REQUEST_METHOD": "GET", "REMOTE_ADDR": "/tmp/sock"})
    assert head.client == ("/tmp/sock", None)
    assert EnvironHead({"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/2.0"}).http_version == "2"


class _ShortCircuit(Core):
    def __init__(self, body: Any = b"", path: str | None = None) -> None:
        self.body, self.path = body, path

    def on_request(self, head: RequestHead) -> Response:
        return Response(403, [(b"x-by", b"core")], self.body, self.path)


def _chunks() -> Iterator[bytes]:
    yield b"a"
    yield b"b"
    yield b"c"


@pytest.mark.parametrize("body", [b"abc", [b"a", b"b", b"c"]], ids=["bytes", "iterable"])
def test_a_core_answers_itself_and_the_app_is_never_called(body: Any) -> None:
    for way, result in run(make(_ShortCircuit(body))).items():
        assert (result.status, result.header(b"x-by"), result.body) == (403, b"core", b"abc"), way
        assert result.seen is None, way


def test_a_streamed_short_circuit_body_goes_out_chunk_by_chunk() -> None:
    from middleware.testing import call_asgi, call_wsgi, wsgi_echo_app

    class Gen(Core):
        def on_request(self, head: RequestHead) -> Response:
            return Response(200, [], _chunks())

    cls = make(Gen())
    assert call_wsgi(cls(wsgi_echo_app([])), PlainRequest()).chunks == [b"a", b"b", b"c"]

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("not called")

    assert call_asgi(cls(asgi), PlainRequest()).chunks == [b"a", b"b", b"c"]


def test_a_short_circuit_can_send_a_file_by_path(tmp_path: Path) -> None:
    file = tmp_path / "f.txt"
    file.write_bytes(b"x" * 100_000)
    for way, result in run(make(_ShortCircuit(path=str(file)))).items():
        assert result.body == b"x" * 100_000, way


class _BodyCounter(Handler):
    def __init__(self, log: list[tuple[bytes, bool]]) -> None:
        self.log = log

    def on_request_body(self, chunk: bytes, more: bool) -> bytes:
        self.log.append((chunk, more))
        return chunk.upper()


def test_a_handler_sees_and_transforms_the_request_body_as_the_app_reads_it() -> None:
    log: list[tuple[bytes, bool]] = []

    class Upper(Core):
        def on_request(self, head: RequestHead) -> Handler:
            return _BodyCounter(log)

    for way in WAYS:
        result = run(make(Upper()), PlainRequest(method="POST", body=b"abc"), ways=[way])[way]
        assert result.seen is not None
        assert result.seen.body == b"ABC", way
        assert b"".join(chunk for chunk, _ in log) == b"abc", way
        assert [more for _, more in log][-1] is False, way  # told when the body ended
        assert [more for _, more in log].count(False) == 1, way
        log.clear()


class _Recorder(Handler):
    def __init__(self, outcomes: list[Outcome]) -> None:
        self.outcomes = outcomes

    def on_response_start(self, status: int, headers: HeaderList) -> Head:
        return status, [*headers, (b"x-seen", str(status).encode())]

    def on_body(self, chunk: bytes, more: bool) -> bytes:
        return chunk[::-1]

    def on_complete(self, outcome: Outcome) -> None:
        self.outcomes.append(outcome)


def test_a_handler_transforms_the_response_and_learns_the_outcome_once() -> None:
    outcomes: list[Outcome] = []

    class Rev(Core):
        def on_request(self, head: RequestHead) -> Handler:
            return _Recorder(outcomes)

    for way in WAYS:
        result = run(make(Rev()), chunks=(b"abc",), ways=[way])[way]
        assert (result.header(b"x-seen"), result.body) == (b"200", b"cba"), way
        assert outcomes == [Outcome.COMPLETED], way
        outcomes.clear()


class _HoldsWhileHeadOnly(Handler):
    head_only = True

    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        return None


class _NeverReleases(Handler):
    def on_response_start(self, status: int, headers: HeaderList) -> Head | None:
        return None

    def pending_head(self) -> Head | None:
        return None


@pytest.mark.parametrize("handler", [_HoldsWhileHeadOnly, _NeverReleases])
@pytest.mark.parametrize("way", ["wsgi", "asgi"])
def test_a_broken_conversation_raises_protocol_error(handler: type[Handler], way: str) -> None:
    class Broken(Core):
        def on_request(self, head: RequestHead) -> Handler:
            return handler()

    with pytest.raises(ProtocolError, match=handler.__name__):
        run(make(Broken()), ways=[way])


def test_invalid_request_changes_are_refused_with_the_reason() -> None:
    head = PlainHead("GET", "/")
    with pytest.raises(ValueError, match="lower-case"):
        head.set_header(b"X-Upper", b"1")
    with pytest.raises(ValueError, match="invalid value"):
        head.set_header(b"x-a", b"1\r\nx-b: 2")
    with pytest.raises(ValueError, match="scheme"):
        head.set_scheme("ftp")
    with pytest.raises(ValueError, match="root_path"):
        head.set_root_path("nope")


def test_what_x_of_app_returns_is_what_the_docs_say() -> None:
    cls = make(_Rewrite())

    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        return []

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        return None

    assert (type(cls(wsgi)), type(cls(asgi))) == (cls.WSGI, cls.ASGI)
    assert isinstance(cls(wsgi), cls)
    assert isinstance(cls(asgi), cls)
    assert cls.WSGI.__qualname__.endswith("Custom.WSGI")
    with pytest.raises(TypeError, match="subclass"):
        CoreMiddleware(wsgi, _Rewrite())
    with pytest.raises(TypeError, match="Core"):
        CoreMiddleware.__init__(cls(wsgi), wsgi, object())  # type: ignore[arg-type]


def test_state_reaches_access_log_through_a_stack(caplog: pytest.LogCaptureFixture) -> None:
    stack = Stack(
        [Middleware(AccessLog, format="%(r)s"), Middleware(make(_Rewrite())), Middleware(GZip)]
    )
    with caplog.at_level(logging.INFO, "middleware.access"):
        results = run(stack)
    assert all(result.body == b"hello" for result in results.values())


def test_a_stack_entry_that_changes_the_interface_is_refused_with_the_fix() -> None:
    from bridge import ASGIToWSGI, WSGIToASGI

    def wsgi(environ: Any, start_response: Any) -> list[bytes]:
        return []

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        return None

    with pytest.raises(
        TypeError, match=r"Middleware\(WSGIToASGI\) turned the WSGI app into ASGI.*to_asgi"
    ):
        Stack([Middleware(GZip), Middleware(WSGIToASGI)])(wsgi)
    with pytest.raises(TypeError, match=r"turned the ASGI app into WSGI.*bridge.to_wsgi"):
        Stack([Middleware(ASGIToWSGI, lifespan="off")])(asgi)


def test_the_guide_s_request_id_example_runs_on_every_way() -> None:
    from middleware import RequestID

    request = PlainRequest(headers=[(b"x-request-id", b"abc")])
    for way, result in run(RequestID, request).items():
        assert result.header(b"x-request-id") == b"abc", way
        assert result.seen is not None
        assert result.seen.state == {"request_id": "abc"}, way
    for way, result in run(lambda app: RequestID(app, header="X-Trace")).items():
        made = result.header(b"x-trace")
        assert made is not None
        assert len(made) == 32, way
        assert result.seen is not None
        assert result.seen.header(b"x-trace") == made, way  # the app sees the id it echoes


class _ReleasesTwice(Handler):
    def on_opaque_body(self) -> Head | None:
        return 200, []


def test_releasing_the_head_twice_raises_protocol_error(tmp_path: Path) -> None:
    from middleware.testing import call_wsgi

    file = tmp_path / "f"
    file.write_bytes(b"data")

    class Twice(Core):
        def on_request(self, head: RequestHead) -> Handler:
            return _ReleasesTwice()

    class FileWrapper:
        def __init__(self, filelike: Any, blksize: int = 8192) -> None:
            self.filelike = filelike

        def __iter__(self) -> Iterator[bytes]:
            return iter([self.filelike.read()])

        def close(self) -> None:
            self.filelike.close()

    def app(environ: Any, start_response: Any) -> Any:
        start_response("200 OK", [])
        return environ["wsgi.file_wrapper"](file.open("rb"))

    class WithWrapper(PlainRequest):
        def environ(self) -> dict[str, Any]:
            return {**super().environ(), "wsgi.file_wrapper": FileWrapper}

    with pytest.raises(ProtocolError, match="_ReleasesTwice released the head twice"):
        call_wsgi(make(Twice())(app), WithWrapper())


@pytest.mark.parametrize(
    "module", ["_gzip", "_compress", "_compression", "_cors", "_access_log", "_headers"]
)
def test_our_middleware_use_the_public_api_alone(module: str) -> None:
    import ast

    import middleware

    source = (Path(middleware.__file__).parent / f"{module}.py").read_text()
    internals = {"_core", "_base", "_asgi_driver", "_wsgi_driver", "_request", "_conversation"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert node.module.split(".")[-1] not in internals, (module, node.module)
