"""Drop-in use in real frameworks: Starlette and FastAPI ``add_middleware``, Flask ``wsgi_app``."""

from __future__ import annotations

import logging
import zlib

import httpx
import pytest
from fastapi import FastAPI
from flask import Flask, stream_with_context
from flask import Response as FlaskResponse
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from middleware import CORS, AccessLog, Compress, GZip

PAYLOAD = {"items": [{"id": i, "name": "item"} for i in range(200)]}
HEADERS = {"Accept-Encoding": "gzip", "Origin": "https://app.example.com"}


def starlette_app() -> Starlette:
    async def items(request: StarletteRequest) -> JSONResponse:
        return JSONResponse(PAYLOAD)

    async def stream(request: StarletteRequest) -> StreamingResponse:
        async def chunks():  # type: ignore[no-untyped-def]
            for i in range(50):
                yield f"line {i}\n".encode() * 20

        return StreamingResponse(chunks(), media_type="text/plain")

    async def boom(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse("nope", status_code=404)

    app = Starlette(
        routes=[Route("/items", items), Route("/stream", stream), Route("/missing", boom)]
    )
    app.add_middleware(GZip, minimum_size=100)
    app.add_middleware(CORS, allow_origins=["https://app.example.com"], allow_methods=["*"])
    app.add_middleware(AccessLog)
    return app


def fastapi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items")
    async def items() -> dict[str, object]:
        return PAYLOAD

    app.add_middleware(Compress)
    app.add_middleware(CORS, allow_origins=["https://*.example.com"], allow_credentials=True)
    return app


async def test_starlette_add_middleware_compresses_and_adds_cors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "middleware.access")
    transport = httpx.ASGITransport(app=starlette_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/items", headers=HEADERS)
        streamed = await client.get("/stream", headers=HEADERS)
        missing = await client.get("/missing", headers=HEADERS)
        preflight = await client.options(
            "/items",
            headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "PUT"},
        )
    assert response.headers["content-encoding"] == "gzip"
    assert response.json() == PAYLOAD
    assert response.headers["access-control-allow-origin"] == "https://app.example.com"
    assert streamed.headers["content-encoding"] == "gzip"
    assert "content-length" not in streamed.headers
    assert streamed.text.startswith("line 0\n")
    assert missing.status_code == 404
    assert missing.headers["access-control-allow-origin"] == "https://app.example.com"
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-methods"] == "PUT"
    assert [r.http["status"] for r in caplog.records] == [200, 200, 404, 200]  # type: ignore[attr-defined]


async def test_fastapi_add_middleware_negotiates_and_echoes_credentials() -> None:
    transport = httpx.ASGITransport(app=fastapi_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get(
            "/items",
            headers={"Accept-Encoding": "br, gzip", "Origin": "https://shop.example.com"},
        )
    assert response.headers["content-encoding"] == "br"
    assert response.json() == PAYLOAD
    assert response.headers["access-control-allow-origin"] == "https://shop.example.com"
    assert response.headers["access-control-allow-credentials"] == "true"


def flask_app() -> Flask:
    app = Flask(__name__)

    @app.get("/items")
    def items() -> dict[str, object]:
        return PAYLOAD

    @app.get("/stream")
    def stream() -> FlaskResponse:
        def chunks():  # type: ignore[no-untyped-def]
            for i in range(50):
                yield f"line {i}\n" * 20

        return FlaskResponse(stream_with_context(chunks()), mimetype="text/plain")

    app.wsgi_app = GZip(app.wsgi_app)  # type: ignore[method-assign]
    app.wsgi_app = CORS(app.wsgi_app, allow_origins=["https://app.example.com"])  # type: ignore[method-assign]
    return app


def test_flask_wsgi_app_assignment_compresses_and_adds_cors() -> None:
    client = flask_app().test_client()
    response = client.get("/items", headers=HEADERS)
    assert response.headers["Content-Encoding"] == "gzip"
    assert response.headers["Content-Length"] == str(len(response.data))
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert response.headers["Vary"] == "Accept-Encoding, Origin"
    assert zlib.decompress(response.data, 31).startswith(b'{"items"')
    streamed = client.get("/stream", headers=HEADERS)
    assert streamed.headers["Content-Encoding"] == "gzip"
    assert zlib.decompress(streamed.data, 31).startswith(b"line 0\n")


def test_flask_through_httpx_wsgi_transport() -> None:
    transport = httpx.WSGITransport(app=flask_app())
    with httpx.Client(transport=transport, base_url="http://test") as client:
        response = client.get("/items", headers=HEADERS)
    assert response.json() == PAYLOAD
    assert response.headers["content-encoding"] == "gzip"
