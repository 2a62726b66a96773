"""``ASGIToWSGI``'s scope per request: ``_scope.http_scope``, memoised by environ shape.

A WSGI server hands over the same environ shape request after request: the same keys in
the same order, and mostly the same target, method, scheme and server. ``http_scope``
recomputes all of it each time (a third of the adapter's own cost per request). Here
two bounded memos keep what it computed:

* by the tuple of environ keys (the shape): which keys are headers, under which ASGI
  names, and which of the target fields (``_TARGET``) are present;
* by the shape and the target fields' values: the scope without its per-request
  entries (headers, client, state, extensions, a fresh ``asgi`` dict).

Whatever misses (or has values a memo cannot hold) goes through ``http_scope``, which
defines the behaviour; a hit builds an equal scope (tests/bridge/test_a2w_scope.py
compares them). Both memos are bounded in entries and in the bytes a client controls,
and start over when full, so a client inventing targets or headers only causes misses.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from bridge._scope import _client, _header_name, http_scope
from bridge._types import Environ, Scope

# The environ values the scope's non-header, non-client entries depend on (http_scope
# reads nothing else for them).
_TARGET = (
    "SCRIPT_NAME",
    "PATH_INFO",
    "QUERY_STRING",
    "RAW_URI",
    "REQUEST_URI",
    "REQUEST_METHOD",
    "wsgi.url_scheme",
    "SERVER_PROTOCOL",
    "SERVER_NAME",
    "SERVER_PORT",
)
# The CGI names of the two headers PEP 3333 keeps out of the HTTP_ namespace.
_CGI_HEADERS = ((b"content-type", "CONTENT_TYPE"), (b"content-length", "CONTENT_LENGTH"))
# The scope entries that differ per request even for one target.
_PER_REQUEST = ("asgi", "headers", "client", "extensions", "state")

MEMO_ENTRIES = 256  # per memo
# A key whose strings add up to more characters than this is never stored: one entry
# pins at most this much client-chosen text (so each memo at most ~1 MiB).
MEMO_KEY_CHARS = 4096

_templates: dict[tuple[Any, ...], dict[str, Any]] = {}
# environ keys -> (environ key, ASGI name) of each header among them, in environ order;
# what reads the _TARGET values present among them; and the CGI headers among them.
_Shape = tuple[
    tuple[tuple[str, bytes], ...],
    Callable[[Environ], Any],
    tuple[tuple[bytes, str], ...],
]
_header_plans: dict[tuple[str, ...], _Shape] = {}
# The last stored (environ keys, shape, target values, template): a server sends one shape
# and a few targets over and over, and comparing a request's keys and values with the
# last ones costs less than hashing them for the memos (the strings are new each
# request, so their hashes are computed afresh). Read and replaced whole, so threads
# see a consistent entry; it only ever holds what the memos held.
_Last = tuple[tuple[Any, ...], _Shape | None, tuple[Any, ...], dict[str, Any] | None]
_NO_LAST: _Last = ((None,), None, (None,), None)
_last = _NO_LAST


def _storable(key: tuple[Any, ...]) -> bool:
    # str or None only: then no value of another type that compares equal (1 and True,
    # a bytes path) can ever hit an entry computed for different input.
    size = 0
    for item in key:
        if item is None:
            continue
        if type(item) is not str:
            return False
        size += len(item)
    return size <= MEMO_KEY_CHARS


def _store(memo: dict[Any, Any], key: tuple[Any, ...], value: Any) -> None:
    global _last
    if len(memo) >= MEMO_ENTRIES:
        memo.clear()  # start over: a client inventing keys only causes misses
        _last = _NO_LAST
    memo[key] = value


def _no_target(environ: Environ) -> tuple[()]:
    return ()


def _header_plan(keys: tuple[str, ...]) -> _Shape:
    """Which environ ``keys`` are headers, by ``request_headers``' own rule, and a
    reader of the ``_TARGET`` values among them."""
    plan = []
    for key in keys:
        name = _header_name(key)
        if name is not None:
            plan.append((key, name))
    present = [key for key in _TARGET if key in keys]
    if len(present) > 1:
        target: Callable[[Environ], Any] = operator.itemgetter(*present)
    elif present:
        only = present[0]
        target = lambda environ: (environ[only],)  # noqa: E731
    else:
        target = _no_target
    cgi = tuple((name, key) for name, key in _CGI_HEADERS if key in keys)
    return tuple(plan), target, cgi


def _template(scope: Scope) -> dict[str, Any]:
    # The per-request entries are set on every hit; not pinning this request's values
    # keeps the client-chosen bytes an entry holds to its key.
    template = dict(scope)
    for name in _PER_REQUEST:
        template[name] = None
    return template


def a2w_scope(
    environ: Environ, state: dict[str, Any], extensions: dict[str, dict[object, object]]
) -> Scope:
    """``http_scope(environ, state=state, extensions=extensions)``, from the memos when
    they know this environ's shape.

    Raises ``ScopeError`` as ``http_scope`` does.
    """
    global _last
    keys = tuple(environ)
    last = _last
    try:
        if keys == last[0] and _templates:  # (a memo cleared from outside: not last)
            shape = last[1]
            assert shape is not None  # stored together with its keys
            values = shape[1](environ)
            if values == last[2]:
                template = last[3]
            else:
                template = _templates.get((shape[1], values))
                if template is not None:
                    _last = (keys, shape, values, template)
        else:
            shape = _header_plans.get(keys)
            if shape is not None:
                # The reader is part of the key: it says which _TARGET keys are present.
                values = shape[1](environ)
                template = _templates.get((shape[1], values))
                if template is not None:
                    _last = (keys, shape, values, template)
            else:
                template = None
    except TypeError:  # an unhashable value: nothing to memoise
        return http_scope(environ, state=state, extensions=extensions)
    if template is None or shape is None:
        scope = http_scope(environ, state=state, extensions=extensions)
        if shape is None:
            if not _storable(keys):
                return scope
            shape = _header_plan(keys)
            _store(_header_plans, keys, shape)
        values = shape[1](environ)
        if _storable(values):
            template = _template(scope)
            _store(_templates, (shape[1], values), template)
            _last = (keys, shape, values, template)
        return scope
    headers = []
    for key, name in shape[0]:  # not a comprehension: that is one more call in 3.11
        headers.append((name, environ[key].encode("latin-1")))
    for name, cgi in shape[2]:  # only those among the keys: most requests have none
        value = environ[cgi]
        if value:
            headers.append((name, value.encode("latin-1")))
    scope = template.copy()
    scope["asgi"] = {"version": "3.0", "spec_version": "2.4"}  # fresh: apps may write
    scope["headers"] = headers
    try:  # subscripts, not environ.get(): no bound method and no calls
        host = environ["REMOTE_ADDR"]
        port = environ["REMOTE_PORT"]
    except KeyError:
        host = None  # _client() says what that means
    if host and type(port) is str and port.isdigit():
        scope["client"] = (host, int(port))
    else:
        scope["client"] = _client(environ)
    scope["extensions"] = extensions
    scope["state"] = state
    return scope
