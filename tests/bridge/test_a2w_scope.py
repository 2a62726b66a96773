"""``bridge._a2w_scope``: the memoised scope equals ``http_scope``'s, hit or miss, and
its memos stay bounded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bridge import _a2w_scope
from bridge._a2w_scope import MEMO_ENTRIES, MEMO_KEY_CHARS, a2w_scope
from bridge._scope import ScopeError, http_scope
from tests.environs import plain_environ


@pytest.fixture(autouse=True)
def _empty_memos() -> Iterator[None]:
    _a2w_scope._templates.clear()
    _a2w_scope._header_plans.clear()
    yield
    _a2w_scope._templates.clear()
    _a2w_scope._header_plans.clear()


def environ(**overrides: Any) -> dict[str, Any]:
    return plain_environ(**{"HTTP_HOST": "example.com:8080", "HTTP_ACCEPT": "*/*", **overrides})


# Each differs from the base in what one memo or the other keys on (or in per-request
# values that a hit must still read afresh).
VARIANTS: list[dict[str, Any]] = [
    {},
    {"PATH_INFO": "/a/b", "QUERY_STRING": "x=1&y=%20"},
    {"SCRIPT_NAME": "/app", "PATH_INFO": "/caf\xc3\xa9"},
    {"PATH_INFO": "/a b", "RAW_URI": "/a%20b?q"},
    {"PATH_INFO": "/a b", "REQUEST_URI": "/a%20b"},
    {"PATH_INFO": "/x", "RAW_URI": "http://h/x"},
    {"REQUEST_METHOD": "head", "SERVER_PROTOCOL": "HTTP/1.0"},
    {"wsgi.url_scheme": "https", "SERVER_PORT": ""},
    {"SERVER_PORT": None, "SERVER_NAME": None},
    {"REMOTE_PORT": None},
    {"REMOTE_ADDR": None},
    {"REMOTE_PORT": "54321", "HTTP_ACCEPT": "text/html"},
    {"CONTENT_TYPE": "text/plain", "CONTENT_LENGTH": "5"},
    {"CONTENT_TYPE": "", "CONTENT_LENGTH": "", "HTTP_CONTENT_TYPE": "x/y"},
    {"HTTP_COOKIE": "a=1; b=2", "HTTP_X_CUSTOM_THING": "\xe9t\xe9"},
    {"HTTP_ACCEPT": None, "HTTP_ACCEPT_LANGUAGE": "en"},
    {"QUERY_STRING": "\u20ac"},
    {"SERVER_PORT": 8080},
]


def expected(env: dict[str, Any]) -> dict[str, Any]:
    return http_scope(env, state={"s": 1}, extensions={"e": {}})


@pytest.mark.parametrize("overrides", VARIANTS)
def test_scope_equals_http_scope_on_a_miss_and_on_every_hit(overrides: dict[str, Any]) -> None:
    for _ in range(3):  # miss, then hits
        env = environ(**overrides)
        assert a2w_scope(env, {"s": 1}, {"e": {}}) == expected(env)


def test_a_hit_reads_the_per_request_values_afresh() -> None:
    a2w_scope(environ(), {}, {})
    env = environ(REMOTE_PORT="1234", HTTP_HOST="other", HTTP_ACCEPT="x/y", CONTENT_LENGTH="3")
    state: dict[str, Any] = {"k": "v"}
    extensions: dict[str, dict[object, object]] = {"x": {}}
    scope = a2w_scope(env, state, extensions)
    assert scope["client"] == ("10.0.0.1", 1234)
    assert scope["headers"] == [
        (b"host", b"other"),
        (b"accept", b"x/y"),
        (b"content-length", b"3"),
    ]
    assert scope["state"] is state
    assert scope["extensions"] is extensions


def test_scopes_from_one_template_share_no_mutable_part() -> None:
    first = a2w_scope(environ(), {}, {})
    second = a2w_scope(environ(), {}, {})
    assert first is not second
    assert first["asgi"] is not second["asgi"]
    assert first["headers"] is not second["headers"]
    first["path"] = "/changed"
    first["asgi"]["version"] = "2.0"
    third = a2w_scope(environ(), {}, {})
    assert third["path"] == "/"
    assert third["asgi"] == {"version": "3.0", "spec_version": "2.4"}


def test_values_equal_to_a_stored_key_but_of_another_type_are_not_confused() -> None:
    # 1 == True and their hashes agree; http_scope gives them different servers.
    first = environ(SERVER_PORT=1)
    second = environ(SERVER_PORT=True)
    for env in (first, second, second):
        assert a2w_scope(env, {"s": 1}, {"e": {}}) == expected(env)
    assert a2w_scope(first, {}, {})["server"] == ("example.com", 1)
    assert a2w_scope(second, {}, {})["server"] == ("example.com", 80)
    assert not _a2w_scope._templates  # neither was stored


def test_unhashable_values_fall_back_to_http_scope() -> None:
    env = environ(PATH_INFO="/", SERVER_NAME=["not", "a", "str"])
    assert a2w_scope(env, {}, {}) == http_scope(env, state={}, extensions={})


def test_undecodable_paths_raise_scope_error_every_time() -> None:
    a2w_scope(environ(), {}, {})
    for _ in range(2):
        with pytest.raises(ScopeError):
            a2w_scope(environ(PATH_INFO="/\xff"), {}, {})


def test_memos_are_bounded_in_entries() -> None:
    for n in range(3 * MEMO_ENTRIES):
        env = environ(PATH_INFO=f"/{n}", **{f"HTTP_X_{n}": "v"})
        assert a2w_scope(env, {"s": 1}, {"e": {}}) == expected(env)
        assert len(_a2w_scope._templates) <= MEMO_ENTRIES
        assert len(_a2w_scope._header_plans) <= MEMO_ENTRIES


def test_long_client_chosen_keys_are_never_stored() -> None:
    long_path = "/" + "a" * MEMO_KEY_CHARS
    long_header = "HTTP_X_" + "B" * MEMO_KEY_CHARS
    env = environ(PATH_INFO=long_path, **{long_header: "v"})
    for _ in range(2):
        assert a2w_scope(env, {"s": 1}, {"e": {}}) == expected(env)
    assert not _a2w_scope._templates
    assert not _a2w_scope._header_plans


def test_stored_templates_keep_no_request_values() -> None:
    a2w_scope(environ(HTTP_COOKIE="secret"), {"s": 1}, {"e": {}})
    (template,) = _a2w_scope._templates.values()
    for name in ("headers", "client", "state", "extensions", "asgi"):
        assert template[name] is None


def test_alternating_targets_of_one_shape_each_get_their_own_scope() -> None:
    # The last stored entry answers a repeat; the memo answers the one before it.
    first = environ(PATH_INFO="/a", CONTENT_TYPE="text/plain", CONTENT_LENGTH="")
    second = environ(PATH_INFO="/b", CONTENT_TYPE="", CONTENT_LENGTH="7")
    for env in (first, second, first, first, second, second, first):
        assert a2w_scope(env, {"s": 1}, {"e": {}}) == expected(env)


def test_the_last_entry_is_always_one_the_memo_holds() -> None:
    for n in range(2 * MEMO_ENTRIES + 1):
        a2w_scope(environ(PATH_INFO=f"/{n}"), {}, {})
        last = _a2w_scope._last[3]
        assert any(last is template for template in _a2w_scope._templates.values())
    env = environ(HTTP_ACCEPT="x/y")
    assert a2w_scope(env, {"s": 1}, {"e": {}}) == expected(env)
