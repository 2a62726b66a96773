"""``bridge._loops.TaskLoop``'s shortcuts: ``run_ready_once`` and ``call_soon_batched``."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bridge._loops import SharedLoop, TaskLoop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def loop() -> Iterator[TaskLoop]:
    made = TaskLoop(dedicated=True)
    yield made
    made.close()


def test_run_ready_once_runs_what_is_ready_once_without_polling(loop: TaskLoop) -> None:
    ran: list[str] = []

    def again() -> None:
        ran.append("again")

    def first() -> None:
        ran.append("first")
        loop.call_soon(again)  # scheduled now: for the next pass

    loop.call_soon(first)
    cancelled = loop.call_soon(ran.append, "cancelled")
    cancelled.cancel()
    loop.call_later(0, ran.append, "timer")  # timers are the real loop's business
    loop.run_ready_once()
    assert ran == ["first"]
    loop.run_ready_once()
    assert ran == ["first", "again"]
    assert asyncio._get_running_loop() is None


def test_run_ready_once_resumes_a_task_that_sees_its_loop_running(loop: TaskLoop) -> None:
    seen: list[Any] = []
    gate = loop.create_future()

    async def task() -> None:
        await gate
        seen.append(asyncio.get_running_loop())

    made = loop.start_task(task(), "t")
    gate.set_result(None)
    loop.run_ready_once()
    assert made.done()
    assert seen == [loop]


def test_call_soon_batched_runs_every_callback_in_order_in_its_callers_context() -> None:
    shared = SharedLoop("test-batched")
    loop = shared.get()
    ran: list[tuple[int, str]] = []
    done = threading.Event()
    try:
        # Held by a callback, the loop cannot wake: every caller after the first
        # rides on the first one's wake-up.
        release = threading.Event()
        loop.call_soon_threadsafe(release.wait, 5)

        def record(n: int) -> None:
            ran.append((n, var.get()))

        def caller(n: int) -> None:
            var.set(f"caller-{n}")
            loop.call_soon_batched(record, n)

        for n in range(5):
            thread = threading.Thread(target=caller, args=(n,))
            thread.start()
            thread.join()
        loop.call_soon_batched(done.set)
        release.set()
        assert done.wait(5)
        assert ran == [(n, f"caller-{n}") for n in range(5)]
        assert var.get() == "unset"
    finally:
        shared.stop()


def test_call_soon_batched_reports_a_failing_callback_and_runs_the_rest() -> None:
    shared = SharedLoop("test-batched-errors")
    loop = shared.get()
    reported: list[dict[str, Any]] = []
    done = threading.Event()
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        release = threading.Event()
        loop.call_soon_threadsafe(release.wait, 5)
        loop.call_soon_batched(lambda: 1 / 0)
        loop.call_soon_batched(done.set)
        release.set()
        assert done.wait(5)
        assert [type(context["exception"]) for context in reported] == [ZeroDivisionError]
    finally:
        shared.stop()
