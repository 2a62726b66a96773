"""Smoke test of ``examples/flask_in_fastapi.py``, the README's demo, run as users run it.

The example starts as ``python examples/flask_in_fastapi.py`` with ``PORT`` set; the
tests browse it with httpx: FastAPI's home page, the Flask pages under ``/legacy`` and
their ``url_for`` links, the guestbook form (Post/Redirect/Get), and the middleware
stack around it all.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

import httpx
import pytest

from tests.servers import ROOT, free_port, serve

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "examples" / "flask_in_fastapi.py"


@pytest.fixture(scope="module")
def demo() -> Iterator[str]:
    port = free_port()
    with serve([sys.executable, str(EXAMPLE)], port, env={"PORT": str(port)}) as url:
        yield url


@pytest.fixture
def client(demo: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=demo, timeout=10) as client:
        yield client


def between(text: str, start: str, end: str) -> str:
    """The part of ``text`` from ``start`` to ``end``, both included."""
    first = text.index(start)
    return text[first : text.index(end, first) + len(end)]


def test_fastapi_home_page_links_to_the_legacy_site(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert between(response.text, "<body>", "</body>") == (
        "<body>\n"
        "<h1>FastAPI</h1>\n"
        '<p>The old site lives on at <a href="/legacy/">/legacy/</a>;\n'
        'new endpoints such as <a href="/api/greeting?name=you">/api/greeting</a> are FastAPI.'
        "</p>\n"
        "</body>"
    )


def test_fastapi_json_endpoint_next_to_the_mount(client: httpx.Client) -> None:
    response = client.get("/api/greeting", params={"name": "Ada"})
    assert response.status_code == 200
    assert response.json() == {"message": "Hello, Ada!"}


def test_flask_index_is_served_under_legacy_with_prefixed_links(client: httpx.Client) -> None:
    response = client.get("/legacy/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "<title>Home · legacy site</title>" in response.text
    assert between(response.text, "<nav>", "</nav>") == (
        '<nav><a href="/legacy/">Home</a><a href="/legacy/guestbook">Guestbook</a>'
        '<a href="/">Back to FastAPI</a></nav>'
    )
    assert between(response.text, "<main>", "</main>") == (
        "<main>\n"
        "<h1>The legacy site</h1>\n"
        "<p>This page is rendered by Flask, mounted at <code>/legacy</code>.</p>\n"
        '<p>Sign the <a href="/legacy/guestbook">guestbook</a>.</p>\n'
        "</main>"
    )


def test_guestbook_form_is_signed_and_shown_escaped(client: httpx.Client) -> None:
    form = (
        "<main>\n"
        "<h1>Guestbook</h1>\n"
        '<form method="post" action="/legacy/guestbook">\n'
        '<input name="name" placeholder="Your name" required>\n'
        '<input name="message" placeholder="Say hello" required>\n'
        "<button>Sign</button>\n"
        "</form>\n"
    )
    empty = client.get("/legacy/guestbook")
    assert empty.status_code == 200
    assert between(empty.text, "<main>", "</main>") == (
        form + "<ul>\n<li>Nobody has signed yet.</li>\n</ul>\n</main>"
    )

    signed = client.post(
        "/legacy/guestbook", data={"name": "<b>Zoë</b>", "message": "Still works & fast"}
    )
    assert signed.status_code == 303
    assert signed.headers["location"] == "/legacy/guestbook"

    page = client.get(signed.headers["location"])
    assert page.status_code == 200
    assert between(page.text, "<main>", "</main>") == (
        form + "<ul>\n"
        "<li><b>&lt;b&gt;Zoë&lt;/b&gt;</b>: Still works &amp; fast</li>\n"
        "</ul>\n</main>"
    )


def test_middleware_stack_wraps_flask_and_fastapi_alike(client: httpx.Client) -> None:
    origin = {"Origin": "http://localhost:3000", "Accept-Encoding": "gzip"}
    legacy = client.get("/legacy/", headers=origin)
    assert legacy.headers["content-encoding"] == "gzip"
    assert legacy.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "<h1>The legacy site</h1>" in legacy.text

    api = client.get("/api/greeting", headers=origin)
    assert api.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert "content-encoding" not in api.headers  # 25 bytes: below GZip's minimum_size

    stranger = client.get("/api/greeting", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in stranger.headers
    assert stranger.headers["vary"] == "Origin"
