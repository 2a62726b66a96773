"""The scope -> environ translation, case by case (PEP 3333 and the ASGI HTTP spec)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bridge._environ import ErrorStream, RequestRejected, build_environ, split_path
from tests.bridge.harness import http_scope


def environ_for(**kwargs: Any) -> dict[str, Any]:
    path = kwargs.pop("path", "/")
    return build_environ(http_scope(path, **kwargs), None, max_header_repeats=100)


@pytest.mark.parametrize(
    ("root_path", "path", "expected"),
    [
        pytest.param("", "/x", ("", "/x"), id="no-root"),
        pytest.param("/app", "/app/x", ("/app", "/x"), id="root-cut-at-slash"),
        pytest.param("/app", "/app", ("/app", ""), id="root-is-whole-path"),
        pytest.param("/app", "/application", ("/app", "/application"), id="root-not-at-boundary"),
        pytest.param("/app/", "/app/x", ("/app", "/x"), id="trailing-slash-root"),
        pytest.param("/", "/x", ("", "/x"), id="root-slash-is-empty"),
        pytest.param("/app", "/x", ("/app", "/x"), id="path-without-root-prefix"),
        pytest.param("/caf\u00e9", "/caf\u00e9/p", ("/caf\u00c3\u00a9", "/p"), id="utf8-root"),
    ],
)
def test_script_name_is_split_from_root_path_at_a_segment_boundary(
    root_path: str, path: str, expected: tuple[str, str]
) -> None:
    assert split_path(http_scope(path, root_path=root_path)) == expected


def test_path_info_is_the_latin1_view_of_the_utf8_bytes() -> None:
    environ = environ_for(path="/caf\u00e9/\u20ac")
    assert environ["PATH_INFO"] == "/caf\u00e9/\u20ac".encode().decode("latin-1")
    assert environ["PATH_INFO"].encode("latin-1").decode("utf-8") == "/caf\u00e9/\u20ac"


def test_undecodable_path_bytes_are_recovered_from_raw_path() -> None:
    environ = environ_for(path="/a\ufffdb", raw_path=b"/a%FFb")
    assert environ["PATH_INFO"] == "/a\xffb"


def test_query_string_is_passed_raw() -> None:
    environ = environ_for(query_string=b"a=1&b=%20&c=\xe9")
    assert environ["QUERY_STRING"] == "a=1&b=%20&c=\xe9"


def test_repeated_headers_are_joined_with_commas_and_cookies_with_semicolons() -> None:
    environ = environ_for(
        headers=[
            (b"accept", b"text/html"),
            (b"accept", b"application/json"),
            (b"cookie", b"a=1"),
            (b"cookie", b"b=2"),
        ]
    )
    assert environ["HTTP_ACCEPT"] == "text/html,application/json"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


def test_headers_with_underscores_are_dropped_so_they_cannot_spoof_others() -> None:
    environ = environ_for(
        headers=[(b"x-forwarded-for", b"10.0.0.1"), (b"x_forwarded_for", b"6.6.6.6")]
    )
    assert environ["HTTP_X_FORWARDED_FOR"] == "10.0.0.1"
    assert [k for k, v in environ.items() if k.isupper() and "6.6.6.6" in v] == []


def test_content_type_and_length_have_no_http_prefix() -> None:
    environ = environ_for(headers=[(b"content-type", b"text/plain"), (b"content-length", b"3")])
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "3"
    assert "HTTP_CONTENT_TYPE" not in environ
    assert "HTTP_CONTENT_LENGTH" not in environ


def test_a_header_repeated_too_often_is_rejected_with_431() -> None:
    scope = http_scope(headers=[(b"x-a", b"1")] * 5)
    assert build_environ(scope, None, max_header_repeats=5)["HTTP_X_A"] == "1,1,1,1,1"
    with pytest.raises(RequestRejected) as caught:
        build_environ(http_scope(headers=[(b"x-a", b"1")] * 6), None, max_header_repeats=5)
    assert caught.value.status == 431


def test_server_and_client_addresses_are_strings() -> None:
    environ = environ_for()
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("127.0.0.1", "8000")
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == ("127.0.0.1", "51000")


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        pytest.param(["testserver", 80], ("testserver", "80"), id="list-as-starlette-testclient"),
        pytest.param(("10.0.0.1", 8443), ("10.0.0.1", "8443"), id="tuple"),
        pytest.param((["odd"], 81), ("['odd']", "81"), id="tuple-holding-a-list"),
    ],
)
def test_server_address_is_the_same_every_time_whatever_its_shape(
    server: Any, expected: tuple[str, str]
) -> None:
    # Twice: the second request finds the first one's strings cached (when it can be).
    for _ in range(2):
        environ = environ_for(server=server)
        assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == expected


@pytest.mark.parametrize(
    ("host", "scheme", "expected"),
    [
        (b"example.com:8080", "http", ("example.com", "8080")),
        (b"example.com", "https", ("example.com", "443")),
        (b"[::1]:9000", "http", ("::1", "9000")),
    ],
)
def test_server_falls_back_to_the_host_header(
    host: bytes, scheme: str, expected: tuple[str, str]
) -> None:
    environ = environ_for(headers=[(b"host", host)], server=None, scheme=scheme, client=None)
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == expected
    assert "REMOTE_ADDR" not in environ


def test_url_scheme_protocol_and_wsgi_keys() -> None:
    environ = environ_for(scheme="https", http_version="2")
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.multithread"] is True


def test_the_scope_is_reachable_from_the_environ() -> None:
    scope = http_scope("/x")
    assert build_environ(scope, None, max_header_repeats=100)["asgi.scope"] is scope


def test_nothing_leaks_in_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_X_SPOOFED", "yes")
    monkeypatch.setenv("SECRET_TOKEN", "hunter2")
    environ = environ_for()
    assert "HTTP_X_SPOOFED" not in environ
    assert "SECRET_TOKEN" not in environ
    assert "hunter2" not in repr(environ)


def test_every_cgi_value_is_a_native_str() -> None:
    environ = environ_for(headers=[(b"x-latin", b"caf\xe9")])
    for key, value in environ.items():
        if key.isupper():
            assert type(value) is str, key
    assert environ["HTTP_X_LATIN"] == "caf\xe9"


def test_wsgi_errors_writes_become_log_records_line_by_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = ErrorStream()
    with caplog.at_level(logging.ERROR, logger="bridge.wsgi.errors"):
        stream.write("first line\nsecond ")
        stream.writelines(["half\n", "tail"])
        assert [r.getMessage() for r in caplog.records] == ["first line", "second half"]
        stream.flush()
    assert [r.getMessage() for r in caplog.records] == ["first line", "second half", "tail"]


@pytest.mark.parametrize(
    ("raw_path", "query", "expected"),
    [
        pytest.param(b"/a/b%2Fc", b"", "/a/b%2Fc", id="escaped-slash-kept"),
        pytest.param(b"/a/b%2Fc", b"x=%2F&y", "/a/b%2Fc?x=%2F&y", id="with-query"),
        pytest.param(b"/caf%C3%A9", b"", "/caf%C3%A9", id="escapes-as-sent"),
        pytest.param(b"/p?q=1", b"q=1", "/p?q=1", id="server-put-the-query-in-raw-path"),
    ],
)
def test_raw_uri_and_request_uri_are_the_request_target_as_sent(
    raw_path: bytes, query: bytes, expected: str
) -> None:
    environ = environ_for(path="/a/b/c", raw_path=raw_path, query_string=query)
    assert environ["RAW_URI"] == expected
    assert environ["REQUEST_URI"] == expected


def test_without_raw_path_there_is_no_raw_uri() -> None:
    scope = http_scope("/x")
    del scope["raw_path"]
    environ = build_environ(scope, None, max_header_repeats=100)
    assert "RAW_URI" not in environ
    assert "REQUEST_URI" not in environ
