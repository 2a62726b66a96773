"""AccessLog: gunicorn's atoms, structured fields, exclusions, on both interfaces."""

from __future__ import annotations

import base64
import logging
import os
import re
from collections.abc import Sequence
from typing import Any

import pytest

from middleware import AccessLog, GZip
from middleware._access_log import DEFAULT_FORMAT, _escape
from middleware._core import Outcome, PlainHead
from tests.middleware.harness import Reply, Request, asgi_app, call_asgi, call_wsgi, wsgi_app

REQUEST = Request(
    "POST",
    "/items/7",
    "page=2",
    (
        ("User-Agent", "curl/8.0"),
        ("Referer", "https://ref.example/"),
        ("Authorization", "Basic " + base64.b64encode(b"alice:secret").decode()),
        ("X-Request-Id", "abc-123"),
    ),
)
REPLY = Reply(headers=(("Content-Type", "text/plain"), ("X-Cache", "miss")), chunks=(b"ab", b"cde"))


def call(interface: str, app: Any, request: Request = REQUEST) -> None:
    if interface == "wsgi":
        call_wsgi(app, request)
    else:
        call_asgi(app, request)


def build(interface: str, reply: Reply = REPLY) -> Any:
    return wsgi_app(reply) if interface == "wsgi" else asgi_app(reply)


@pytest.fixture(params=["wsgi", "asgi"])
def interface(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _Records(Sequence[logging.LogRecord]):
    """The records of the current test phase (caplog swaps its list between phases)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    def __getitem__(self, index: Any) -> Any:
        return self._caplog.records[index]

    def __len__(self) -> int:
        return len(self._caplog.records)


@pytest.fixture
def records(caplog: pytest.LogCaptureFixture) -> Sequence[logging.LogRecord]:
    caplog.set_level(logging.INFO, "middleware.access")
    return _Records(caplog)


def test_the_default_line_is_gunicorns_default_format(
    interface: str, records: Sequence[logging.LogRecord]
) -> None:
    call(interface, AccessLog(build(interface)))
    (record,) = records
    assert record.name == "middleware.access"
    assert record.levelno == logging.INFO
    assert re.fullmatch(
        r"10\.0\.0\.7 - alice \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "
        r'"POST /items/7\?page=2 HTTP/1\.1" 200 5 "https://ref\.example/" "curl/8\.0"',
        record.getMessage(),
    )


def test_every_atom_is_formatted(interface: str, records: Sequence[logging.LogRecord]) -> None:
    fmt = (
        "%(h)s|%(l)s|%(u)s|%(r)s|%(s)s|%(m)s|%(U)s|%(q)s|%(H)s|%(b)s|%(B)s|%(f)s|%(a)s|"
        "%(T)s|%(D)s|%(M)s|%(L)s|%(p)s|%({x-request-id}i)s|%({x-cache}o)s|%({missing}i)s"
    )
    call(interface, AccessLog(build(interface), format=fmt))
    parts = records[0].getMessage().split("|")
    assert parts[:13] == [
        "10.0.0.7",
        "-",
        "alice",
        "POST /items/7?page=2 HTTP/1.1",
        "200",
        "POST",
        "/items/7",
        "page=2",
        "HTTP/1.1",
        "5",
        "5",
        "https://ref.example/",
        "curl/8.0",
    ]
    seconds, micros, millis, decimal, pid = parts[13:18]
    assert int(seconds) == 0
    assert int(millis) == int(micros) // 1000
    assert re.fullmatch(r"0\.\d{6}", decimal)
    assert re.fullmatch(r"<\d+>", pid)
    assert parts[18:] == ["abc-123", "miss", "-"]


def test_structured_fields_ride_on_the_record(
    interface: str, records: Sequence[logging.LogRecord]
) -> None:
    call(interface, AccessLog(build(interface)))
    http = records[0].http  # type: ignore[attr-defined]
    assert {k: http[k] for k in ("method", "path", "query", "status", "bytes", "client")} == {
        "method": "POST",
        "path": "/items/7",
        "query": "page=2",
        "status": 200,
        "bytes": 5,
        "client": "10.0.0.7",
    }
    assert http["user_agent"] == "curl/8.0"
    assert http["referer"] == "https://ref.example/"
    assert http["outcome"] == "completed"
    assert 0 <= http["ttfb"] <= http["duration"]


def test_bytes_are_counted_after_compression(
    interface: str, records: Sequence[logging.LogRecord]
) -> None:
    reply = Reply(chunks=(b"z" * 10_000,), content_length=True)
    gzip_request = Request(headers=(("Accept-Encoding", "gzip"),))
    call(interface, AccessLog(GZip(build(interface, reply))), gzip_request)
    assert 0 < records[0].http["bytes"] < 200  # type: ignore[attr-defined]


def test_excluded_paths_are_not_logged(
    interface: str, records: Sequence[logging.LogRecord]
) -> None:
    call(interface, AccessLog(build(interface), exclude_paths=["/health"]), Request(path="/health"))
    call(interface, AccessLog(build(interface), exclude_paths=["/health"]), Request(path="/x"))
    assert [r.http["path"] for r in records] == ["/x"]  # type: ignore[attr-defined]


def test_nothing_is_built_when_the_logger_is_disabled(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "middleware.access")
    call(interface, AccessLog(build(interface)))
    assert not caplog.records


def test_a_custom_logger_and_level_are_used(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "my.access")
    call(interface, AccessLog(build(interface), logger="my.access", level=logging.DEBUG))
    call(interface, AccessLog(build(interface), logger=logging.getLogger("my.access")))
    assert [(r.name, r.levelno) for r in caplog.records] == [
        ("my.access", logging.DEBUG),
        ("my.access", logging.INFO),
    ]


def test_formatting_is_left_to_logging(records: Sequence[logging.LogRecord]) -> None:
    call("asgi", AccessLog(build("asgi")))
    assert records[0].msg == DEFAULT_FORMAT


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({"format": "%(zz)s"}, ValueError),
        ({"format": "%(h)d"}, ValueError),
        ({"format": 5}, TypeError),
        ({"logger": 5}, TypeError),
        ({"exclude_paths": "/health"}, TypeError),
        ({"level": "INFO"}, TypeError),
    ],
    ids=["unknown_atom", "bad_conversion", "format_not_str", "bad_logger", "str_paths", "level"],
)
def test_bad_options_are_refused_at_construction(options: dict[str, Any], error: type) -> None:
    with pytest.raises(error):
        AccessLog(build("wsgi"), **options)


def test_a_malformed_basic_authorization_logs_no_user(records: Sequence[logging.LogRecord]) -> None:
    request = Request(headers=(("Authorization", "Basic !!!"),))
    call("wsgi", AccessLog(build("wsgi"), format="%(u)s"), request)
    call(
        "wsgi",
        AccessLog(build("wsgi"), format="%(u)s"),
        Request(headers=(("Authorization", "Bearer x"),)),
    )
    assert [r.getMessage() for r in records] == ["-", "-"]


def test_a_request_cannot_forge_a_log_line(
    interface: str, records: Sequence[logging.LogRecord]
) -> None:
    path = '/a\n10.0.0.1 - admin [x] "GET /admin HTTP/1.1" 200 0'
    if interface == "wsgi":
        path = path.encode().decode("latin-1")
    request = Request("GET", path, "q=\x7f", (("User-Agent", 'ua\r\n"x"\\'),))
    call(interface, AccessLog(build(interface), format='%(r)s "%(a)s" %(U)s %(q)s'), request)
    message = records[0].getMessage()
    assert "\n" not in message
    assert "\r" not in message
    assert "\x7f" not in message
    assert message == (
        "GET /a\\x0A10.0.0.1 - admin [x] \\x22GET /admin HTTP/1.1\\x22 200 0?q=\\x7F HTTP/1.1 "
        '"ua\\x0D\\x0A\\x22x\\x22\\x5C" '
        "/a\\x0A10.0.0.1 - admin [x] \\x22GET /admin HTTP/1.1\\x22 200 0 q=\\x7F"
    )
    # The structured fields keep the real values; JSON encoders escape them.
    assert records[0].http["path"] == '/a\n10.0.0.1 - admin [x] "GET /admin HTTP/1.1" 200 0'  # type: ignore[attr-defined]


# What a client can send to disguise a log line: bidi overrides and isolates (a line
# that reads backwards), zero-width and format characters, C1 controls (NEL is a
# newline to some readers), a non-ASCII space, the field delimiters, and a lone
# surrogate (which would make a UTF-8 log handler fail).
TEXT_PAYLOAD = 'a\u202eb\u2066c\u200bd\ufeffe\x85f\x9bg\xa0h\xadi"j\\k\U000e0041l\u2028m\ud800n'
TEXT_ESCAPED = (
    "a\\u202Eb\\u2066c\\u200Bd\\uFEFFe\\x85f\\x9Bg\\xA0h\\xADi\\x22j\\x5Ck\\U000E0041l"
    "\\u2028m\\uD800n"
)
# Header values and the query are bytes, read as latin-1 (so at most U+00FF).
BYTES_PAYLOAD = b'a\x85b\x9bc\xa0d\xade"f\\g\x1bh\x7fi'
BYTES_ESCAPED = "a\\x85b\\x9Bc\\xA0d\\xADe\\x22f\\x5Cg\\x1Bh\\x7Fi"
# A user name arrives base64-encoded, so it may hold any encodable character.
USER_PAYLOAD = TEXT_PAYLOAD.replace("\ud800", "")
USER_ESCAPED = TEXT_ESCAPED.replace("\\uD800", "")


def _basic(user: str) -> bytes:
    return b"Basic " + base64.b64encode(user.encode() + b":pw")


@pytest.mark.parametrize(
    ("atom", "head", "response_headers", "expected"),
    [
        ("%(h)s", {"client": (TEXT_PAYLOAD, 1)}, [], TEXT_ESCAPED),
        ("%(u)s", {"headers": [(b"authorization", _basic(USER_PAYLOAD))]}, [], USER_ESCAPED),
        ("%(r)s", {"path": TEXT_PAYLOAD}, [], f"GET {TEXT_ESCAPED} HTTP/1.1"),
        ("%(m)s", {"method": TEXT_PAYLOAD}, [], TEXT_ESCAPED),
        ("%(U)s", {"path": TEXT_PAYLOAD}, [], TEXT_ESCAPED),
        ("%(q)s", {"query": BYTES_PAYLOAD}, [], BYTES_ESCAPED),
        ("%(H)s", {"http_version": TEXT_PAYLOAD}, [], "HTTP/" + TEXT_ESCAPED),
        ("%(f)s", {"headers": [(b"referer", BYTES_PAYLOAD)]}, [], BYTES_ESCAPED),
        ("%(a)s", {"headers": [(b"user-agent", BYTES_PAYLOAD)]}, [], BYTES_ESCAPED),
        (
            "%({x-forwarded-for}i)s",
            {"headers": [(b"x-forwarded-for", BYTES_PAYLOAD)]},
            [],
            BYTES_ESCAPED,
        ),
        ("%({x-echo}o)s", {}, [(b"x-echo", BYTES_PAYLOAD)], BYTES_ESCAPED),
    ],
    ids=lambda value: value if isinstance(value, str) and value.startswith("%") else "",
)
def test_every_atom_a_client_can_influence_is_escaped(
    records: Sequence[logging.LogRecord],
    atom: str,
    head: dict[str, Any],
    response_headers: list[tuple[bytes, bytes]],
    expected: str,
) -> None:
    core = AccessLog(lambda environ, start_response: [], format=atom)._core
    method = head.pop("method", "GET")
    path = head.pop("path", "/")
    handler = core.on_request(PlainHead(method, path, **head))
    handler.on_response_start(200, response_headers)
    handler.on_body(b"", False)
    handler.on_complete(Outcome.COMPLETED)
    (record,) = records
    assert record.getMessage() == expected
    assert record.getMessage().isprintable()


@pytest.mark.parametrize(
    "text",
    ["plain ascii", "caf\u00e9 \u65e5\u672c", "emoji \U0001f600", "\u0645\u0631\u062d\u0628\u0627"],
)
def test_printable_text_in_any_script_is_logged_as_it_is(text: str) -> None:
    assert _escape(text) == text


def test_a_record_has_what_logger_make_record_would_give_it(
    interface: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Records come from a per-logger template, not LogRecord.__init__: same attributes,
    # same values but for the time, and the thread of the request.
    import threading
    import time

    caplog.set_level(logging.INFO, "middleware.access")
    before = time.time()
    call(interface, AccessLog(build(interface)))
    (record,) = [r for r in caplog.records if r.name == "middleware.access"]
    logger = logging.getLogger("middleware.access")
    expected = logger.makeRecord(
        logger.name,
        logging.INFO,
        record.pathname,
        0,
        DEFAULT_FORMAT,
        (record.args,),
        None,
        "AccessLog",
        {"http": record.http},  # type: ignore[attr-defined]
    )
    # Formatting (caplog's handler) adds message and asctime to the record it got.
    # taskName (Python 3.12+) names the asyncio task that logged: the request's on ASGI,
    # none where this test builds the expected record.
    timed = {"created", "msecs", "relativeCreated", "message", "asctime", "taskName"}
    assert set(vars(record)) - timed == set(vars(expected)) - timed
    if "taskName" in vars(expected):
        assert (record.taskName is not None) == (interface == "asgi")
    assert {k: v for k, v in vars(record).items() if k not in timed} == {
        k: v for k, v in vars(expected).items() if k not in timed
    }
    assert before <= record.created <= time.time()
    # What LogRecord (3.10-3.12) derives from the time, here computed in floats alone.
    assert record.msecs == int((record.created - int(record.created)) * 1000) + 0.0
    assert record.thread == threading.get_ident()
    assert record.getMessage() == expected.getMessage()


def test_a_programs_record_factory_is_honoured(caplog: pytest.LogCaptureFixture) -> None:
    old = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = old(*args, **kwargs)
        record.tenant = "acme"  # type: ignore[attr-defined]
        return record

    logging.setLogRecordFactory(factory)
    try:
        caplog.set_level(logging.INFO, "middleware.access")
        call("wsgi", AccessLog(build("wsgi")))
    finally:
        logging.setLogRecordFactory(old)
    (record,) = [r for r in caplog.records if r.name == "middleware.access"]
    assert record.tenant == "acme"  # type: ignore[attr-defined]
    assert record.http["status"] == 200  # type: ignore[attr-defined]


def _default_line_args(head: PlainHead, *, generic: bool, status: int = 200) -> dict[str, Any]:
    core = AccessLog(lambda environ, start_response: [])._core
    if generic:
        core._default = False  # the per-atom getters every other format uses
    logger = logging.getLogger("middleware.access")
    seen: list[logging.LogRecord] = []

    class _Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(record)

    keep = _Keep()
    logger.addHandler(keep)
    old_level = logger.level
    logger.setLevel(logging.INFO)
    try:
        handler = core.on_request(head)
        assert handler is not None
        handler.on_response_start(status, [])
        handler.on_body(b"abc", False)
        handler.on_complete(Outcome.COMPLETED)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(old_level)
    (record,) = seen
    assert record.msg == DEFAULT_FORMAT
    args = dict(record.args)  # type: ignore[call-overload]
    args.pop("t")  # the clock's second: may differ between the two calls
    return args


def _hostile_head(method: str, http_version: str = "1.1") -> PlainHead:
    """Everything a client can influence in gunicorn's default line, hostile."""
    return PlainHead(
        method,
        TEXT_PAYLOAD,
        query=BYTES_PAYLOAD,
        client=(TEXT_PAYLOAD, 1),
        headers=[
            (b"authorization", _basic(USER_PAYLOAD)),
            (b"referer", BYTES_PAYLOAD),
            (b"user-agent", BYTES_PAYLOAD),
        ],
        http_version=http_version,
    )


@pytest.mark.parametrize(
    "head",
    [
        PlainHead("GET", "/"),
        PlainHead(
            "POST",
            "/items/7",
            query=b"page=2",
            client=("10.0.0.1", 4242),
            headers=[
                (b"user-agent", b"curl/8.0"),
                (b"referer", b"https://ref.example/"),
                (b"authorization", _basic("alice")),
            ],
            http_version="2",
        ),
        PlainHead("GET", "/", headers=[(b"authorization", b"Bearer x")]),
        _hostile_head(TEXT_PAYLOAD, http_version=TEXT_PAYLOAD),
    ],
    ids=["bare", "full", "bearer", "hostile"],
)
def test_the_default_line_is_built_as_the_atoms_build_it(head: PlainHead) -> None:
    # gunicorn's default format has its own code path (built in one frame): it must
    # give every atom exactly what the per-atom getters give, escaping included.
    fast = _default_line_args(head, generic=False)
    assert fast == _default_line_args(head, generic=True)
    assert all(str(value).isprintable() for value in fast.values())


def test_the_default_line_escapes_what_a_client_sent(records: Sequence[logging.LogRecord]) -> None:
    head = _hostile_head("GET")
    core = AccessLog(lambda environ, start_response: [])._core
    handler = core.on_request(head)
    assert handler is not None
    handler.on_response_start(200, [])
    handler.on_body(b"abc", False)
    handler.on_complete(Outcome.COMPLETED)
    (record,) = records
    stamp = record.args["t"]  # type: ignore[call-overload,index]
    assert record.getMessage() == (
        f'{TEXT_ESCAPED} - {USER_ESCAPED} {stamp} "GET {TEXT_ESCAPED}?{BYTES_ESCAPED} '
        f'HTTP/1.1" 200 3 "{BYTES_ESCAPED}" "{BYTES_ESCAPED}"'
    )


def _log_one(core: Any) -> None:
    handler = core.on_request(PlainHead("GET", "/"))
    handler.on_response_start(200, [])
    handler.on_body(b"", False)
    handler.on_complete(Outcome.COMPLETED)


def test_a_record_names_the_thread_that_logged_by_its_current_name(
    records: Sequence[logging.LogRecord],
) -> None:
    # Each thread's Thread object is kept between records; its name is read each time.
    import threading

    core = AccessLog(lambda environ, start_response: [])._core

    def work() -> None:
        _log_one(core)
        threading.current_thread().name = "renamed"
        _log_one(core)

    worker = threading.Thread(target=work, name="worker-7")
    worker.start()
    worker.join()
    _log_one(core)
    assert [(r.threadName, r.thread) for r in records] == [
        ("worker-7", worker.ident),
        ("renamed", worker.ident),
        (threading.current_thread().name, threading.get_ident()),
    ]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_a_forked_worker_logs_its_own_pid(caplog: pytest.LogCaptureFixture) -> None:
    # The record template (pid, process name) is made again after a fork, found by an
    # at-fork hook rather than a getpid() per record.
    caplog.set_level(logging.INFO, "middleware.access")
    core = AccessLog(lambda environ, start_response: [])._core
    _log_one(core)  # the template is in use before the fork
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            _log_one(core)
            os.write(write, str(caplog.records[-1].process).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        reported = pipe.read()
    os.waitpid(pid, 0)
    assert reported == str(pid)
    assert caplog.records[0].process == os.getpid()
