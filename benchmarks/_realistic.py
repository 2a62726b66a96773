"""A realistic Flask app through each way of serving it, against concurrency.

The app (:func:`flask_app`) does what a small real page does: reads and updates a
signed session cookie, runs a small sqlite query (a file database made at start, one
connection per worker thread, as a pool would give) and renders a Jinja template that
extends a base layout and loops over the rows (about 3 KiB of HTML). The same app is
served three ways: through ``WSGIToASGI`` on uvicorn (ours), through a2wsgi on uvicorn
(the alternative), and natively on gunicorn gthread (one worker, the usual home of a
Flask app). Every request carries the session cookie, so each one decodes, verifies and
re-signs it. Load: ``wrk --latency`` at 1, 16 and 64 keep-alive connections.
"""

from __future__ import annotations

import http.client
import os
import sqlite3
import tempfile
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from benchmarks._apps import a2wsgi_available
from benchmarks._config import Config
from benchmarks._curves import Point, concurrency_plot, latency_load
from benchmarks._measure import median
from benchmarks._report import Section, Table, fmt
from benchmarks._servers import GTHREAD_THREADS, Server, running

LEVELS = (1, 16, 64)
QUICK_LEVELS = (1, 16)
CONTENDERS = [
    ("WSGIToASGI:realistic", "uvicorn"),
    ("a2wsgi WSGIMiddleware:realistic", "uvicorn"),
    ("native WSGI:realistic", "gunicorn"),
]

_BASE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{% block title %}{% endblock %}</title>
<link rel="stylesheet" href="/static/site.css"></head>
<body><header><nav><a href="/">Shop</a> | visits: {{ visits }}</nav></header>
<main>{% block content %}{% endblock %}</main><footer>&copy; Example</footer></body></html>
"""
_PAGE = """{% extends "base.html" %}
{% block title %}Products under {{ limit }}{% endblock %}
{% block content %}
<h1>Products under {{ limit }}</h1>
<table><thead><tr><th>#</th><th>Name</th><th>Price</th></tr></thead><tbody>
{% for product in products %}
<tr class="{{ loop.cycle('odd', 'even') }}"><td>{{ product.id }}</td>
<td><a href="/products/{{ product.id }}">{{ product.name | title }}</a></td>
<td>{{ "%.2f" | format(product.price) }}</td></tr>
{% endfor %}
</tbody></table>
{% endblock %}
"""


def _database() -> str:
    """A small products table in a file, made once per serving process."""
    path = os.path.join(tempfile.mkdtemp(prefix="bench-realistic-"), "shop.db")
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        db.executemany(
            "INSERT INTO products (name, price) VALUES (?, ?)",
            [(f"product number {i}", (i * 37 % 1000) / 10) for i in range(500)],
        )
        db.execute("CREATE INDEX products_price ON products (price)")
    return path


def flask_app() -> Any:
    """The realistic Flask app (see the module docstring)."""
    from flask import Flask, render_template, session
    from jinja2 import DictLoader

    app = Flask("realistic")
    app.secret_key = b"benchmark-only secret, not for production"
    app.jinja_loader = DictLoader({"base.html": _BASE, "page.html": _PAGE})
    path = _database()
    local = threading.local()

    def connection() -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(local, "db", None)
        if db is None:
            db = local.db = sqlite3.connect(path)
            db.row_factory = sqlite3.Row
        return db

    @app.get("/")
    def products() -> str:
        visits = session.get("visits", 0) + 1
        session["visits"] = visits
        limit = 50.0
        rows = connection().execute(
            "SELECT id, name, price FROM products WHERE price < ? ORDER BY price LIMIT 20",
            (limit,),
        )
        return render_template("page.html", products=rows.fetchall(), limit=limit, visits=visits)

    return app


def _session_cookie(url: str) -> str:
    """A valid session cookie from the app, sent by every load request."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        cookie = response.getheader("Set-Cookie") or ""
    finally:
        conn.close()
    if not cookie.startswith("session="):
        raise RuntimeError(f"the realistic app set no session cookie: {cookie!r}")
    return cookie.split(";", 1)[0]


def run(cfg: Config) -> Section:
    started = time.monotonic()
    levels = QUICK_LEVELS if cfg.quick else LEVELS
    rounds = 1 if cfg.quick else 2
    contenders = [(s, k) for s, k in CONTENDERS if a2wsgi_available() or "a2wsgi" not in s]
    servers = [Server(spec, kind) for spec, kind in contenders]
    section = Section(
        "realistic",
        "A realistic Flask app (templates, session cookie, sqlite)",
        "Requests/s and p50/p99 latency of one Flask page (session cookie read and re-signed, "
        "a 20-row sqlite query, a Jinja template with a base layout: see "
        "`benchmarks/_realistic.py`) through `WSGIToASGI` and a2wsgi on uvicorn and natively "
        f"on gunicorn gthread (one worker, {GTHREAD_THREADS} threads), at "
        f"{', '.join(map(str, levels))} keep-alive connections; {rounds} round(s) of "
        f"{fmt(cfg.duration)} s points, contenders in turn, medians.",
    )
    if cfg.loadgen != "wrk":
        section.notes.append("No wrk here: latencies are not measured (n/a), no cookie sent.")
    points: dict[str, dict[int, list[Point]]] = {
        s.spec: {level: [] for level in levels} for s in servers
    }
    with running(servers, cfg.logs):
        cookie = _session_cookie(servers[-1].url)
        headers = [f"Cookie: {cookie}"]
        if not cfg.quick:  # warm up: imports, template compilation, connections
            for server in servers:
                latency_load(server.url + "/", 16, 1.0, cfg.loadgen, headers=headers)
        for index in range(rounds):
            for level in levels:
                shift = (index + level) % len(servers)
                for server in servers[shift:] + servers[:shift]:
                    points[server.spec][level].append(
                        latency_load(
                            server.url + "/", level, cfg.duration, cfg.loadgen, headers=headers
                        )
                    )
    native = servers[-1].spec
    table = Table(
        ["contender", "connections", "req/s", "÷ native on gunicorn", "p50 ms", "p99 ms", "errors"],
        [],
    )
    data: dict[str, dict[str, list[float]]] = {}
    for server in servers:
        label = f"{server.spec.partition(':')[0]} on {server.kind}"
        row: dict[str, list[float]] = {"rate": [], "p50_ms": [], "p99_ms": []}
        for level in levels:
            runs = points[server.spec][level]
            rate = median([p.rate for p in runs])
            base = median([p.rate for p in points[native][level]])
            row["rate"].append(rate)
            row["p50_ms"].append(median([p.p50_ms for p in runs]))
            row["p99_ms"].append(median([p.p99_ms for p in runs]))
            table.rows.append(
                [
                    label,
                    str(level),
                    fmt(rate),
                    f"{fmt(rate / base)}x" if base > 0 else "n/a",
                    fmt(row["p50_ms"][-1]),
                    fmt(row["p99_ms"][-1]),
                    str(sum(p.errors + p.non2xx for p in runs)),
                ]
            )
        data[label] = row
    section.tables.append(table)
    section.data = {"levels": list(levels), **data}
    section.plots.append(
        concurrency_plot(
            cfg.out,
            "realistic",
            "Realistic Flask page: ours, a2wsgi and native gunicorn against concurrency",
            levels,
            data,
        )
    )
    section.seconds = time.monotonic() - started
    return section
