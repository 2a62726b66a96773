"""``environ["bridge.disconnected"]`` in process: a WSGI view learns that its client left."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bridge import DisconnectSignal, ThreadPool, WSGIToASGI
from bridge._types import Environ, StartResponse
from tests.bridge.harness import Exchange, http_scope, request

TEXT = [("Content-Type", "text/plain")]


async def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


class SlowView:
    """A view that works for up to ``budget`` seconds unless its client leaves first."""

    def __init__(self, budget: float = 10.0, *, use: str = "poll") -> None:
        self.budget = budget
        self.use = use
        self.started = threading.Event()
        self.finished = threading.Event()
        self.stopped_early: bool | None = None
        self.elapsed = 0.0
        self.signal: Any = None

    def __call__(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        signal = self.signal = environ["bridge.disconnected"]
        began = time.monotonic()
        self.started.set()
        try:
            if self.use == "wait":
                self.stopped_early = signal.wait(self.budget)
            else:
                while not signal.is_set() and time.monotonic() - began < self.budget:
                    time.sleep(0.01)
                self.stopped_early = signal.is_set()
            self.elapsed = time.monotonic() - began
        finally:
            self.finished.set()
        start_response("200 OK", TEXT)
        return [b"done"]


async def run_until_started(app: Any, exchange: Exchange, view: SlowView) -> asyncio.Task[Any]:
    task = asyncio.ensure_future(exchange.run(app, http_scope()))
    await wait_until(view.started.is_set)
    return task


@pytest.mark.parametrize("use", ["poll", "wait"])
async def test_a_slow_view_stops_early_when_its_client_leaves(use: str) -> None:
    pool = ThreadPool(2)
    view = SlowView(use=use)
    exchange = Exchange()
    task = await run_until_started(WSGIToASGI(view, pool=pool), exchange, view)
    await asyncio.sleep(0.1)
    assert not view.finished.is_set()
    exchange.disconnect()
    await asyncio.wait_for(task, 5)
    await wait_until(lambda: pool.pending == 0)
    assert view.stopped_early is True
    assert view.elapsed < view.budget / 2
    assert view.signal.is_set()
    # The response after the client left goes nowhere.
    assert exchange.messages == []


async def test_wait_times_out_false_while_the_client_stays() -> None:
    view = SlowView(0.05, use="wait")
    exchange = await request(WSGIToASGI(view, pool=ThreadPool(2)))
    assert view.stopped_early is False
    assert exchange.body == b"done"
    assert not view.signal.is_set()


async def test_callbacks_run_once_in_a_thread_of_their_own() -> None:
    calls: list[tuple[str, int]] = []
    view_thread: list[int] = []
    all_called = threading.Event()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        view_thread.append(threading.get_ident())
        signal = environ["bridge.disconnected"]
        signal.add_callback(lambda: calls.append(("first", threading.get_ident())))
        signal.add_callback(lambda: calls.append(("second", threading.get_ident())))
        signal.add_callback(all_called.set)
        signal.wait(10)
        return []

    exchange = Exchange()
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app, pool=ThreadPool(2)), http_scope()))
    await wait_until(lambda: bool(view_thread))
    await asyncio.sleep(0.05)
    exchange.disconnect()
    await asyncio.wait_for(task, 5)
    await wait_until(all_called.is_set)
    await asyncio.sleep(0.1)  # a second firing would have happened by now
    assert [name for name, _ in calls] == ["first", "second"]
    threads = {thread for _, thread in calls}
    assert len(threads) == 1
    assert threads.isdisjoint({threading.get_ident(), view_thread[0]})


async def test_a_callback_added_after_the_disconnect_runs_at_once_in_the_caller() -> None:
    late: list[int] = []
    caller: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signal = environ["bridge.disconnected"]
        assert signal.wait(10)
        caller.append(threading.get_ident())
        signal.add_callback(lambda: late.append(threading.get_ident()))
        return []

    exchange = Exchange()
    task = asyncio.ensure_future(exchange.run(WSGIToASGI(app, pool=ThreadPool(2)), http_scope()))
    await asyncio.sleep(0.1)
    exchange.disconnect()
    await asyncio.wait_for(task, 5)
    assert late == caller
    assert len(late) == 1


async def test_a_failing_callback_is_logged_and_the_others_still_run(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ran = threading.Event()

    def broken() -> None:
        raise ValueError("callback broke")

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signal = environ["bridge.disconnected"]
        signal.add_callback(broken)
        signal.add_callback(ran.set)
        signal.wait(10)
        return []

    exchange = Exchange()
    with caplog.at_level(logging.ERROR, logger="bridge.wsgi_to_asgi"):
        task = asyncio.ensure_future(
            exchange.run(WSGIToASGI(app, pool=ThreadPool(2)), http_scope())
        )
        await asyncio.sleep(0.1)
        exchange.disconnect()
        await asyncio.wait_for(task, 5)
        await wait_until(ran.is_set)
    errors = [r for r in caplog.records if r.message == "a disconnect callback raised"]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], ValueError)


async def test_not_set_when_the_response_completes_or_the_app_fails() -> None:
    signals: list[Any] = []
    fired: list[str] = []

    def ok(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signal = environ["bridge.disconnected"]
        signal.add_callback(lambda: fired.append("ok"))
        signals.append(signal)
        start_response("200 OK", TEXT)
        return [b"fine"]

    def failing(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signal = environ["bridge.disconnected"]
        signal.add_callback(lambda: fired.append("failing"))
        signals.append(signal)
        raise LookupError("the app's own error")

    exchange = await request(WSGIToASGI(ok, pool=ThreadPool(2)))
    assert exchange.body == b"fine"
    with pytest.raises(LookupError):
        await request(WSGIToASGI(failing, pool=ThreadPool(2)))
    await asyncio.sleep(0.1)
    assert [signal.is_set() for signal in signals] == [False, False]
    assert fired == []


async def test_not_set_by_a_disconnect_reported_while_the_last_message_is_sent() -> None:
    """hypercorn reports http.disconnect for a finished response inside that send()."""
    signals: list[Any] = []

    def ok(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signal = environ["bridge.disconnected"]
        signal.is_set()
        signals.append(signal)
        time.sleep(0.05)  # the listener is waiting in receive() by now
        start_response("200 OK", TEXT)
        return [b"fine"]

    class Hypercornish(Exchange):
        async def send(self, message: dict[str, Any]) -> None:
            await super().send(message)
            if message["type"] == "http.response.body" and not message["more_body"]:
                self.disconnect()
                await asyncio.sleep(0.05)  # the listener runs before send() returns

    exchange = Hypercornish()
    await exchange.run(WSGIToASGI(ok, pool=ThreadPool(2)), http_scope())
    assert exchange.body == b"fine"
    assert exchange.receive_calls == 2
    assert not signals[0].is_set()


def endless(signals: list[Any]) -> Any:
    """A streaming view that looks at the signal (so the adapter listens) and never ends."""

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        signal = environ["bridge.disconnected"]
        signal.is_set()
        signals.append(signal)
        start_response("200 OK", TEXT)
        while True:
            time.sleep(0.01)
            yield b"tick\n"

    return app


async def test_set_when_sending_to_the_client_fails() -> None:
    signals: list[Any] = []
    exchange = Exchange(send_error=(3, OSError("connection reset")))
    app = WSGIToASGI(endless(signals), pool=ThreadPool(2))
    with pytest.raises(OSError, match="connection reset"):
        await asyncio.wait_for(exchange.run(app, http_scope()), 5)
    assert signals[0].is_set()


async def test_set_when_the_server_cancels_the_request() -> None:
    pool = ThreadPool(2)
    signals: list[Any] = []
    exchange = Exchange(client_reads=asyncio.Event())  # a client that never reads
    app = WSGIToASGI(endless(signals), pool=pool)
    task = asyncio.ensure_future(exchange.run(app, http_scope()))
    await wait_until(lambda: bool(signals))
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert signals[0].is_set()
    await wait_until(lambda: pool.pending == 0)


async def test_nothing_listens_until_the_view_asks() -> None:
    seen: list[int] = []

    def view(ask: bool) -> Any:
        def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
            if ask:
                environ["bridge.disconnected"].is_set()
            time.sleep(0.1)  # long enough for a listener to have called receive() again
            seen.append(exchange.receive_calls)
            start_response("200 OK", TEXT)
            return [b"ok"]

        return app

    exchange = Exchange()
    await exchange.run(WSGIToASGI(view(ask=False)), http_scope())
    exchange = Exchange()
    await exchange.run(WSGIToASGI(view(ask=True)), http_scope())
    assert seen == [1, 2]


async def test_asking_after_the_request_ended_starts_no_listener() -> None:
    signals: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signals.append(environ["bridge.disconnected"])  # e.g. handed to a background job
        start_response("200 OK", TEXT)
        return [b"ok"]

    exchange = Exchange()
    await exchange.run(WSGIToASGI(app), http_scope())
    calls = exchange.receive_calls
    assert signals[0].is_set() is False
    await asyncio.sleep(0.05)
    assert exchange.receive_calls == calls


async def test_expect_100_continue_is_not_answered_by_asking_about_the_client() -> None:
    seen: list[int] = []

    exchange = Exchange(body_chunks=[b"body"])

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environ["bridge.disconnected"].is_set()
        time.sleep(0.1)
        seen.append(exchange.receive_calls)
        start_response("200 OK", TEXT)
        return [b"not read"]

    scope = http_scope(method="POST", headers=[(b"host", b"t"), (b"expect", b"100-continue")])
    await exchange.run(WSGIToASGI(app), scope)
    # receive() would make the server send "100 Continue": the app never read the body.
    assert seen == [0]
    assert exchange.receive_calls == 0


async def test_an_unread_body_over_1_mib_pauses_listening_until_the_view_reads() -> None:
    chunk = b"x" * 600_000
    seen: list[int] = []
    signals: list[Any] = []
    exchange = Exchange(body_chunks=[chunk] * 4)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signal = environ["bridge.disconnected"]
        signals.append(signal)
        signal.is_set()
        time.sleep(0.1)
        seen.append(exchange.receive_calls)  # the first chunk, then two stashed: 1.2 MB
        body = environ["wsgi.input"].read()
        seen.append(len(body))
        return [] if signal.wait(10) else [b"the client stayed"]

    task = asyncio.ensure_future(
        exchange.run(WSGIToASGI(app, pool=ThreadPool(2)), http_scope(method="POST"))
    )
    await wait_until(lambda: len(seen) == 2)
    await asyncio.sleep(0.05)
    exchange.disconnect()  # listened for again once the body was read
    await asyncio.wait_for(task, 5)
    assert seen == [3, 4 * len(chunk)]
    assert signals[0].is_set()


async def test_the_signal_is_public_and_read_only() -> None:
    signals: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signals.append(environ["bridge.disconnected"])
        start_response("200 OK", TEXT)
        return []

    await request(WSGIToASGI(app))
    signal = signals[0]
    assert type(signal) is DisconnectSignal
    assert not hasattr(signal, "set")
    assert not hasattr(signal, "clear")
    with pytest.raises(TypeError, match="needs a callable"):
        signal.add_callback("not callable")
    assert repr(signal) == "<DisconnectSignal not set>"


def test_the_signal_works_under_trio() -> None:
    trio = pytest.importorskip("trio")
    view = SlowView(use="wait")
    gone = trio.Event()
    sent: list[Any] = []

    async def receive() -> dict[str, Any]:
        if not hasattr(receive, "called"):
            receive.called = True  # type: ignore[attr-defined]
            return {"type": "http.request", "body": b"", "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def main() -> None:
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(
                    WSGIToASGI(view, pool=ThreadPool(2)), http_scope(), receive, send
                )
                await trio.to_thread.run_sync(view.started.wait, 5)
                await trio.sleep(0.05)
                gone.set()

    trio.run(main)
    assert view.finished.wait(5)
    assert view.stopped_early is True
    assert view.elapsed < view.budget / 2
    assert sent == []


async def test_the_adapters_signal_starts_as_one_made_by_its_init() -> None:
    # The exchange fills a signal's fields without running __init__: none may be missed.
    seen: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        signal = environ["bridge.disconnected"]
        seen.append({name: getattr(signal, name) for name in DisconnectSignal.__slots__})
        start_response("200 OK", TEXT)
        return [b"ok"]

    await request(WSGIToASGI(app, pool=ThreadPool(2)))
    made = DisconnectSignal(lambda: None, threading.Lock())
    fields = {name: getattr(made, name) for name in DisconnectSignal.__slots__}
    assert seen[0].keys() == fields.keys()
    for name in ("_callbacks", "_event", "_set"):
        assert seen[0][name] == fields[name]
    assert seen[0]["_listen"] is not None
