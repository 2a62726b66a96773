"""StaticFiles: a directory served next to an app, on WSGI and ASGI.

Requests under ``prefix`` are answered from ``directory`` and never reach the app
(404 for a missing file, 405 with ``Allow: GET, HEAD`` for other methods, unless
``fallthrough=True`` hands requests for missing files to the app, as WhiteNoise does).
The file goes out by path (:class:`middleware.api.Response`): ``http.response.pathsend``
where the ASGI server offers it, ``wsgi.file_wrapper`` (``sendfile``) on WSGI, else
64 KiB reads; a byte range is always read in 64 KiB chunks.

* Validators: a strong ``ETag`` (modification time and size) and ``Last-Modified``;
  ``If-None-Match`` (weak comparison, ``*``) or else ``If-Modified-Since`` gives 304.
* ``Range`` on GET: one ``bytes=`` range gives 206 with ``Content-Range``; an
  unsatisfiable one 416 with ``Content-Range: bytes */size``; several ranges, a bad
  one or a stale ``If-Range`` get the whole file (200), as RFC 9110 allows.
* Precompressed siblings (``app.js.br``, ``app.js.gz``) are sent with
  ``Content-Encoding`` when ``Accept-Encoding`` allows (the higher ``q`` wins, br on a
  tie), with ``Vary: Accept-Encoding`` on every answer for that file. A range request
  gets the plain file.
* ``Cache-Control``: ``public, max-age=31536000, immutable`` for names with a content
  hash (``app.3f2a9c1b.js``, ``app-3f2a9c1b.css``: ``immutable`` pattern), else
  ``public, max-age=<max_age>`` (none when ``max_age`` is ``None``).
* No path escapes the directory: a path with a ``..`` or ``.`` segment, an empty
  segment, a backslash or a NUL (decoded, so ``%2f``/``%5c``/``%00`` too) is refused
  as 404 before the file system is asked, and a file whose real path (symlinks
  resolved) is outside the directory is 404.

* ``html=True``: ``dir/`` serves ``dir/index.html``, ``dir`` redirects (307) to
  ``dir/`` when that index exists, and a missing file gets ``404.html`` (status 404)
  when the directory has one.

``on_request`` reads file metadata (``stat``, once per request; ``realpath`` when a
file is first seen or changed; none for a known file with ``check_changes=False``): a
local metadata lookup of microseconds, the one I/O this core does, since the response
head depends on it. Each file's response heads are built once and kept until the file
changes (at most 4096 files, only files that exist). The body is never read here.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import re
import stat
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import quote, quote_from_bytes

from middleware.api import Core, CoreMiddleware, Handler, HeaderList, RequestHead, Response

__all__ = ["StaticFiles"]

IMMUTABLE_PATTERN = r"[.-][0-9a-fA-F]{8,}\.[^/]+$"
"""The default ``immutable`` pattern: a name with a hex content hash of 8+ digits."""

_YEAR = b"public, max-age=31536000, immutable"
_CACHE_LIMIT = 4096  # files remembered (only files that exist are)
_MEMO_KEY_LIMIT = 128  # bytes of Accept-Encoding worth memoising
_MEMO_ENTRIES = 256
_ENCODINGS = ((b"br", ".br"), (b"gzip", ".gz"))  # the order breaks q ties
_TEXT_TYPES = ("text/", "application/javascript")
_NOT_FOUND = b"Not Found"
_NOT_ALLOWED = b"Method Not Allowed"
_INDEX = "index.html"
_NOT_FOUND_PAGE = "404.html"
# What Location keeps unescaped: RFC 3986 path characters (quote() adds letters, digits, "-._").
_PATH_SAFE = "/:@!$&'()*+,;=~"
_QUERY_SAFE = "/?:@!$&'()*+,;=~%"


def _plain(status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> Response:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(body)).encode("ascii")),
        *extra,
    ]
    return Response(status, headers, body)


class _Variant(NamedTuple):
    """One representation of a file: the plain file or a precompressed sibling."""

    path: str
    size: int
    etag: bytes
    headers: HeaderList  # of a 200, Content-Length included
    key: tuple[int, int]  # size and mtime of the sibling, checked when it is sent
    get: Response  # the 200 to a GET and to a HEAD, given out where headers are
    head: Response  # never edited in place (WSGI: the driver converts them)


class _Entry(NamedTuple):
    key: tuple[int, int, int, int]  # dev, inode, size, mtime: the file is unchanged
    plain: _Variant
    encoded: tuple[tuple[bytes, _Variant], ...]  # (coding, variant), preference order
    mtime: int  # whole seconds, as Last-Modified says
    last_modified: bytes
    validators: HeaderList  # what a 304 repeats


def _etag(info: os.stat_result, suffix: bytes = b"") -> bytes:
    return b'"%x-%x%s"' % (info.st_mtime_ns, info.st_size, suffix)


def _content_type(name: str) -> bytes:
    kind, coding = mimetypes.guess_type(name, strict=False)
    if coding is not None or kind is None:
        # A requested "x.js.gz" is a gzip file to its client, not JavaScript.
        return b"application/octet-stream"
    if kind.startswith(_TEXT_TYPES):
        kind += "; charset=utf-8"
    return kind.encode("ascii")


def _safe(relative: str) -> bool:
    """No empty, ``.`` or ``..`` segment, no backslash, no NUL."""
    # Substring searches: about a quarter of the cost of splitting, on every request.
    probe = "/" + relative + "/"
    return not (
        "//" in probe or "/./" in probe or "/../" in probe or "\\" in relative or "\x00" in relative
    )


def _unchanged(variant: _Variant) -> bool:
    try:
        info = os.stat(variant.path)
    except OSError:
        return False
    return (info.st_size, info.st_mtime_ns) == variant.key


def _etag_matches(header: bytes, etag: bytes) -> bool:
    """``If-None-Match`` weak comparison (RFC 9110 13.1.2)."""
    if header.strip() == b"*":
        return True
    return any(tag.strip().removeprefix(b"W/") == etag for tag in header.split(b","))


def _parse_date(value: bytes) -> float | None:
    try:
        parsed = email.utils.parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        return None
    return parsed.timestamp()


def _accepted(header: bytes) -> dict[bytes, float]:
    """``Accept-Encoding`` as {coding: q}; ``*`` stands for every unlisted coding."""
    accepted: dict[bytes, float] = {}
    for item in header.lower().split(b","):
        coding, _, params = item.partition(b";")
        coding = coding.strip()
        if not coding:
            continue
        q = 1.0
        for param in params.split(b";"):
            name, _, value = param.partition(b"=")
            if name.strip() == b"q":
                try:
                    q = float(value.strip())
                except ValueError:
                    q = 0.0
        accepted[coding] = q
    return accepted


_UNSATISFIABLE = (-1, 0)


def _range(header: bytes, size: int) -> tuple[int, int] | None:
    """One ``bytes=`` range as (start, length); ``None``: serve the whole file;
    ``_UNSATISFIABLE``: answer 416."""
    unit, _, spec = header.partition(b"=")
    if unit.strip().lower() != b"bytes" or b"," in spec:
        return None  # another unit, or several ranges: the whole file is a valid answer
    first, dash, last = spec.strip().partition(b"-")
    if not dash or not (first or last) or not (first.isdigit() or not first):
        return None
    if last and not last.isdigit():
        return None
    if not first:  # the last N bytes
        suffix = int(last)
        if suffix == 0 or size == 0:
            return _UNSATISFIABLE
        start = max(size - suffix, 0)
        return start, size - start
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored
    if start >= size:
        return _UNSATISFIABLE
    end = size - 1 if not last else min(int(last), size - 1)
    return start, end - start + 1


class _StaticCore(Core):
    __slots__ = (
        "_accept_cache",
        "_cache",
        "_cache_control",
        "_check_changes",
        "_fallthrough",
        "_html",
        "_immutable",
        "_not_allowed",
        "_not_found",
        "_precompressed",
        "_prefix",
        "_root",
        "_root_slash",
        "share",
    )

    def __init__(
        self,
        root: str,
        *,
        prefix: str,
        max_age: int | None,
        immutable: Callable[[str], Any] | None,
        precompressed: bool,
        fallthrough: bool,
        html: bool,
        check_changes: bool,
    ) -> None:
        self._root = root
        self._root_slash = root.rstrip("/") + "/"
        self._prefix = prefix
        self._cache_control = None if max_age is None else b"public, max-age=%d" % max_age
        self._immutable = immutable
        self._precompressed = precompressed
        self._fallthrough = fallthrough
        self._html = html
        self._check_changes = check_changes
        self._cache: dict[str, _Entry] = {}
        self._accept_cache: dict[bytes, dict[bytes, float]] = {}
        self._not_found = _plain(404, _NOT_FOUND)
        self._not_allowed = _plain(405, _NOT_ALLOWED, ((b"allow", b"GET, HEAD"),))
        # Whether one Response may serve many requests: only where no one can edit its
        # header list in place (WSGI, whose driver converts it; an ASGI middleware
        # outside may edit the start message's list).
        self.share = False

    # --- the file system --------------------------------------------------------------
    def _inside(self, path: str) -> bool:
        return os.path.realpath(path).startswith(self._root_slash)

    def _entry(self, relative: str) -> _Entry | None:
        cached = self._cache.get(relative)
        if cached is None:
            if not _safe(relative):
                return None  # (only safe paths are ever cached)
        elif not self._check_changes:
            return cached
        path = self._root_slash + relative
        try:
            info = os.stat(path)
        except (OSError, ValueError):
            self._cache.pop(relative, None)
            return None
        key = (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns)
        if cached is not None and cached.key == key:
            return cached
        if not stat.S_ISREG(info.st_mode) or not self._inside(path):
            self._cache.pop(relative, None)
            return None
        entry = self._build(relative, path, info, key)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        self._cache[relative] = entry
        return entry

    def _build(
        self, relative: str, path: str, info: os.stat_result, key: tuple[int, int, int, int]
    ) -> _Entry:
        name = relative.rsplit("/", 1)[-1]
        mtime = int(info.st_mtime)
        last_modified = email.utils.formatdate(mtime, usegmt=True).encode("ascii")
        if self._immutable is not None and self._immutable(name):
            cache_control: bytes | None = _YEAR
        else:
            cache_control = self._cache_control
        encoded: list[tuple[bytes, str, os.stat_result]] = []
        if self._precompressed:
            for coding, suffix in _ENCODINGS:
                try:
                    sibling = os.stat(path + suffix)
                except OSError:
                    continue
                if stat.S_ISREG(sibling.st_mode) and self._inside(path + suffix):
                    encoded.append((coding, path + suffix, sibling))
        common: HeaderList = [(b"last-modified", last_modified)]
        if cache_control is not None:
            common.append((b"cache-control", cache_control))
        if encoded:
            common.append((b"vary", b"Accept-Encoding"))
        content_type = _content_type(name)

        def variant(file: str, facts: os.stat_result, coding: bytes | None) -> _Variant:
            etag = _etag(facts, b"" if coding is None else b"-" + coding)
            headers: HeaderList = [
                (b"content-type", content_type),
                (b"content-length", str(facts.st_size).encode("ascii")),
                (b"etag", etag),
                (b"accept-ranges", b"bytes"),
                *common,
            ]
            if coding is not None:
                headers.append((b"content-encoding", coding))
            return _Variant(
                file,
                facts.st_size,
                etag,
                headers,
                (facts.st_size, facts.st_mtime_ns),
                Response(200, headers, path=file),
                Response(200, headers),
            )

        return _Entry(
            key,
            variant(path, info, None),
            tuple((coding, variant(file, facts, coding)) for coding, file, facts in encoded),
            mtime,
            last_modified,
            common,
        )

    # --- a request --------------------------------------------------------------------
    def _negotiate(self, entry: _Entry, head: RequestHead) -> _Variant:
        header = head.header(b"accept-encoding")
        if not header:
            return entry.plain
        accepted = self._accept_cache.get(header)
        if accepted is None:
            accepted = _accepted(header)
            # Memoised only when short (as every memo keyed by request bytes here), so
            # unique huge values cannot pin memory.
            if len(header) <= _MEMO_KEY_LIMIT:
                if len(self._accept_cache) >= _MEMO_ENTRIES:
                    self._accept_cache.clear()
                self._accept_cache[header] = accepted
        best, best_q = entry.plain, 0.0
        for coding, variant in entry.encoded:
            q = accepted.get(coding, accepted.get(b"*", 0.0))
            if q > best_q:
                best, best_q = variant, q
        return best

    def on_request(self, head: RequestHead) -> Handler | Response | None:
        path = head.path
        root = head.root_path
        if root:
            if not path.startswith(root):
                return None
            path = path[len(root) :]
        prefix = self._prefix
        if not path.startswith(prefix):
            return None
        relative = path[len(prefix) :]
        indexed = False
        if relative[:1] != "/":
            if relative:
                return None  # "/staticfoo" is not under "/static"
            # Exactly the prefix ("/static"): its index is reached by a redirect.
        else:
            relative = relative[1:]
            if self._html and (not relative or relative[-1] == "/"):
                relative += _INDEX
                indexed = True
        method = head.method
        entry = self._entry(relative)
        if entry is None:
            return self._missing(head, relative, method, indexed)
        if method not in ("GET", "HEAD"):
            return self._not_allowed
        range_header = head.header(b"range") if method == "GET" else None
        chosen = entry.plain if range_header or not entry.encoded else self._negotiate(entry, head)
        if chosen is not entry.plain and self._check_changes and not _unchanged(chosen):
            # A sibling rewritten (or removed) after its file: learn the file again.
            self._cache.pop(relative, None)
            entry = self._entry(relative)
            if entry is None:
                return self._not_found
            chosen = self._negotiate(entry, head)
        none_match = head.header(b"if-none-match")
        if none_match is not None:
            if _etag_matches(none_match, chosen.etag):
                return Response(304, [(b"etag", chosen.etag), *entry.validators])
        else:
            since = head.header(b"if-modified-since")
            if since is not None:
                date = _parse_date(since)
                if date is not None and entry.mtime <= date:
                    return Response(304, [(b"etag", chosen.etag), *entry.validators])
        if range_header and self._range_applies(head, entry, chosen):
            return self._partial(entry, chosen, range_header)
        if self.share:
            return chosen.head if method == "HEAD" else chosen.get
        if method == "HEAD":
            return Response(200, list(chosen.headers))
        return Response(200, list(chosen.headers), path=chosen.path)

    def _missing(
        self, head: RequestHead, relative: str, method: str, indexed: bool
    ) -> Response | None:
        """No file at ``relative``: a directory's redirect, the app, 405, 404.html or 404."""
        get_or_head = method in ("GET", "HEAD")
        if self._html and get_or_head and not indexed:
            redirect = self._to_directory(head, relative)
            if redirect is not None:
                return redirect
        if self._fallthrough:
            return None
        if not get_or_head:
            return self._not_allowed
        if self._html:
            page = self._entry(_NOT_FOUND_PAGE)
            if page is not None:
                plain = page.plain
                headers: HeaderList = [
                    plain.headers[0],  # Content-Type (see _build)
                    (b"content-length", str(plain.size).encode("ascii")),
                ]
                return Response(404, headers, path=plain.path if method == "GET" else None)
        return self._not_found

    def _to_directory(self, head: RequestHead, relative: str) -> Response | None:
        """A 307 to ``path/`` when ``relative`` names a directory with an index file."""
        if relative and not _safe(relative):
            return None
        if not os.path.isdir(self._root_slash + relative):
            return None
        if self._entry(relative + "/" + _INDEX if relative else _INDEX) is None:
            return None
        location = quote(head.path, safe=_PATH_SAFE).encode("ascii") + b"/"
        if location.startswith(b"//"):
            return None  # would name another host
        query = head.query
        if query:
            location += b"?" + quote_from_bytes(query, safe=_QUERY_SAFE).encode("ascii")
        return Response(307, [(b"location", location), (b"content-length", b"0")])

    @staticmethod
    def _range_applies(head: RequestHead, entry: _Entry, chosen: _Variant) -> bool:
        if_range = head.header(b"if-range")
        if if_range is None:
            return True
        if_range = if_range.strip()
        if if_range.startswith((b'"', b"W/")):
            return if_range == chosen.etag  # strong comparison: a weak tag never matches
        return if_range == entry.last_modified

    @staticmethod
    def _partial(entry: _Entry, chosen: _Variant, header: bytes) -> Response:
        size = chosen.size
        part = _range(header, size)
        if part is None:
            return Response(200, list(chosen.headers), path=chosen.path)
        if part is _UNSATISFIABLE:
            headers: HeaderList = [
                (b"content-range", b"bytes */%d" % size),
                (b"content-length", b"0"),
                *entry.validators,
            ]
            return Response(416, headers)
        start, length = part
        headers = [
            (b"content-range", b"bytes %d-%d/%d" % (start, start + length - 1, size)),
            *(pair for pair in chosen.headers if pair[0] != b"content-length"),
            (b"content-length", str(length).encode("ascii")),
        ]
        return Response(206, headers, path=chosen.path, offset=start, length=length)


class StaticFiles(CoreMiddleware):
    """Serve ``directory`` under ``prefix`` next to ``app`` (see the module docstring).

    ``max_age``: seconds of ``Cache-Control`` for files without a content hash in their
    name (``None``: no header); ``immutable``: a regular expression (or a function of
    the file name) for names that never change content (``None``: none);
    ``precompressed``: look for ``.br``/``.gz`` siblings; ``fallthrough``: send
    requests for missing files to the app instead of answering 404.

    ``html=True`` (Starlette's option) serves a directory's ``index.html`` for
    ``prefix/dir/`` (and ``prefix/``), answers ``prefix/dir`` with a 307 to
    ``prefix/dir/`` when that index exists, and sends ``404.html`` from the directory's
    top, with status 404, for a missing file when there is one.

    ``check_changes=False`` learns a file's facts (size, time, headers, siblings) the
    first time it is served and never looks at it again: no ``stat`` per request, as
    WhiteNoise's default (``autorefresh=False``). Only for files that stay as they are
    while the app runs: a file rewritten later goes out with its old headers, and a
    removed one fails the request. New files are still found.
    """

    def __init__(
        self,
        app: Any,
        *,
        directory: str | os.PathLike[str],
        prefix: str = "/static",
        max_age: int | None = 60,
        immutable: str | re.Pattern[str] | Callable[[str], Any] | None = IMMUTABLE_PATTERN,
        precompressed: bool = True,
        fallthrough: bool = False,
        html: bool = False,
        check_changes: bool = True,
        interface: str | None = None,
    ) -> None:
        root = os.path.realpath(os.fspath(directory))
        if not os.path.isdir(root):
            raise ValueError(f"StaticFiles(directory={directory!r}): not a directory")
        if not isinstance(prefix, str) or (prefix and not prefix.startswith("/")):
            raise ValueError(f"StaticFiles(prefix={prefix!r}): must be '' or start with '/'")
        if max_age is not None and (type(max_age) is not int or max_age < 0):
            raise ValueError(f"StaticFiles(max_age={max_age!r}): seconds (int >= 0) or None")
        if isinstance(immutable, str):
            immutable = re.compile(immutable)
        matcher = immutable.search if isinstance(immutable, re.Pattern) else immutable
        core = _StaticCore(
            root,
            prefix=prefix.rstrip("/"),
            max_age=max_age,
            immutable=matcher,
            precompressed=precompressed,
            fallthrough=fallthrough,
            html=html,
            check_changes=check_changes,
        )
        super().__init__(app, core, interface=interface)
        core.share = self.interface == "wsgi"
        self.directory = root
        self.prefix = prefix.rstrip("/")
