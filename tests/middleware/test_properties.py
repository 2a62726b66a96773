"""Properties: any chunking of any body decodes to the same bytes, on both interfaces."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from middleware import CORS, AccessLog, Compress
from tests.middleware.harness import Reply, Request, run_both

chunks = st.lists(st.binary(max_size=700) | st.just(b"a" * 300), max_size=8)
codings = st.sampled_from(["gzip", "br", "zstd", "identity", "gzip;q=0, br;q=0.1", "*"])


@settings(max_examples=60, deadline=None)
@given(chunks=chunks, accept=codings, minimum_size=st.integers(0, 1200), declared=st.booleans())
def test_any_chunking_round_trips_through_compression_on_both_interfaces(
    chunks: list[bytes], accept: str, minimum_size: int, declared: bool
) -> None:
    def wrap(app: Any) -> Any:
        return AccessLog(CORS(Compress(app, minimum_size=minimum_size), allow_origins=["*"]))

    reply = Reply(chunks=tuple(chunks), content_length=declared)
    via_wsgi, via_asgi = run_both(wrap, reply, Request(headers=(("Accept-Encoding", accept),)))
    body = b"".join(chunks)
    assert via_wsgi.decoded == via_asgi.decoded == body
    # minimum_size decides only for a body whose length is known when its first bytes
    # arrive; a stream is never held back to find out. An ASGI message with
    # more_body=False says it is the whole body; a WSGI iterator cannot say so.
    nonempty = [chunk for chunk in chunks if chunk]
    whole_in_asgi = len(nonempty) == 1 and bool(chunks[-1])
    if declared or not whole_in_asgi:
        assert via_wsgi.header("content-encoding") == via_asgi.header("content-encoding")
        assert via_wsgi.header("vary") == via_asgi.header("vary")
    if len(body) < minimum_size and (declared or not nonempty):
        assert via_wsgi.header("content-encoding") is None
    if len(body) < minimum_size and (declared or whole_in_asgi or not nonempty):
        assert via_asgi.header("content-encoding") is None
    if not declared and len(nonempty) > 1:
        assert via_asgi.header("content-encoding") == via_wsgi.header("content-encoding")
    for result in (via_wsgi, via_asgi):
        length = result.header("content-length")
        if length is not None:
            assert int(length) == len(result.body)
