"""``bridge._loops.TaskLoop``'s shortcuts: ``run_ready_once`` and ``call_soon_batched``."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from bridge._a2w_lifespan import Lifespan
from bridge._a2w_runners import ThreadRunner
from bridge._loops import SharedLoop, TaskLoop, close_loop

var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")


@pytest.fixture
def loop() -> Iterator[TaskLoop]:
    made = TaskLoop(dedicated=True)
    yield made
    close_loop(made)  # cancels run_first_step's spare task too


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


# --- run_first_step: the app's first step without a task of its own ----------------------


def test_a_coroutine_finished_in_its_first_step_needs_no_task_and_sees_a_current_one(
    loop: TaskLoop,
) -> None:
    seen: list[Any] = []

    async def app() -> None:
        seen.append(asyncio.current_task())
        seen.append(asyncio.get_running_loop())
        var.set("set in the step")

    assert loop.run_first_step(app()) is None
    assert isinstance(seen[0], asyncio.Task)
    assert seen[1] is loop
    assert var.get() == "unset"  # the step ran in a copy of the caller's context
    assert asyncio._get_running_loop() is None
    assert asyncio.current_task(loop) is None


def test_the_task_seen_in_the_first_step_is_the_one_that_runs_the_rest(
    loop: TaskLoop,
) -> None:
    seen: list[Any] = []

    async def app() -> None:
        seen.append(asyncio.current_task())
        var.set("set in the step")
        # As asyncio.timeout() and anyio do: bind to current_task() now, cancel it later.
        task = asyncio.current_task()
        assert task is not None
        asyncio.get_running_loop().call_later(0.01, task.cancel)
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append("timed out")
        seen.append(asyncio.current_task())
        seen.append(var.get())

    task = loop.run_first_step(app())
    assert task is not None
    loop.run_until_complete(task)
    assert seen == [task, "timed out", task, "set in the step"]
    assert var.get() == "unset"


def test_first_steps_that_return_raise_or_wait_each_leave_the_next_one_working(
    loop: TaskLoop,
) -> None:
    # One driver of first steps serves every step that returns; a step that raises or
    # waits takes it along (the task that took over drives it to its end).
    async def returns() -> None:
        return None

    async def raises() -> None:
        raise LookupError("app error")

    results: list[Any] = []

    async def waits() -> None:
        await asyncio.sleep(0.001)
        await returns()
        results.append("done")

    for _ in range(2):
        assert loop.run_first_step(returns()) is None
    with pytest.raises(LookupError, match="app error"):
        loop.run_first_step(raises())
    assert loop.run_first_step(returns()) is None
    task = loop.run_first_step(waits())
    assert task is not None
    assert loop.run_first_step(returns()) is None  # while the other still waits
    loop.run_until_complete(task)
    assert task.exception() is None
    assert results == ["done"]
    assert loop.run_first_step(returns()) is None


def test_a_request_that_leaves_work_behind_does_not_share_its_task_with_the_next(
    loop: TaskLoop,
) -> None:
    tasks: list[Any] = []

    async def leaves_a_cancel_behind() -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        asyncio.get_running_loop().call_soon(task.cancel)  # runs after the step

    async def waits() -> None:
        tasks.append(asyncio.current_task())
        await asyncio.sleep(0)
        tasks.append("finished")

    assert loop.run_first_step(leaves_a_cancel_behind()) is None
    task = loop.run_first_step(waits())
    assert task is not None
    loop.run_until_complete(task)
    assert tasks[1] is not tasks[0]
    assert tasks[2] == "finished"


def test_an_app_that_cancels_itself_then_awaits_sees_the_cancellation(loop: TaskLoop) -> None:
    seen: list[str] = []
    gate = loop.create_future()

    async def app() -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await gate
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = loop.run_first_step(app())
    assert task is not None
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert seen == ["cancelled"]
    assert gate.cancelled()  # what it awaited was cancelled, as a task does


def test_a_task_that_took_over_can_be_cancelled_where_it_waits(loop: TaskLoop) -> None:
    seen: list[str] = []

    async def app() -> None:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    task = loop.run_first_step(app())
    assert task is not None
    loop.run_ready_once()  # the task takes over, and waits
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        loop.run_until_complete(task)
    assert seen == ["cancelled"]


def test_a_timer_set_and_cancelled_in_the_step_keeps_the_spare_a_live_one_retires_it(
    loop: TaskLoop,
) -> None:
    tasks: list[Any] = []

    async def guarded() -> None:  # asyncio.timeout around work that never waits
        tasks.append(asyncio.current_task())
        handle = asyncio.get_running_loop().call_later(10, ran.append, "never")
        handle.cancel()

    async def leaves_a_cancel_behind() -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.append(task)
        asyncio.get_running_loop().call_later(0, task.cancel)

    async def waits() -> None:
        tasks.append(asyncio.current_task())
        await asyncio.sleep(0.01)
        tasks.append("finished")

    ran: list[str] = []
    assert loop.run_first_step(guarded()) is None
    assert loop.run_first_step(guarded()) is None
    assert tasks[0] is tasks[1]  # one spare served both
    assert loop.run_first_step(leaves_a_cancel_behind()) is None
    assert tasks[2] is tasks[1]
    task = loop.run_first_step(waits())
    assert task is not None
    assert tasks[3] is not tasks[2]
    loop.run_until_complete(task)  # the timer fires meanwhile: it cancels the old spare
    assert tasks[4] == "finished"
    assert ran == []


def test_wake_ups_beyond_one_read_of_the_self_pipe_are_all_drained() -> None:
    # TaskLoop reads its self-pipe once per wake-up (4096 bytes at most); a backlog
    # larger than that must wake the selector again until it is empty, not hang.
    shared = SharedLoop(name="test-self-pipe")
    loop = shared.get()
    try:
        gate = threading.Event()
        loop.call_soon_threadsafe(gate.wait)  # the loop thread blocks: writes pile up
        ran: list[int] = []
        for n in range(3 * 4096):
            loop.call_soon_threadsafe(ran.append, n)
        gate.set()
        assert shared.run(asyncio.sleep(0, "woke"), timeout=10) == "woke"
        assert ran == list(range(3 * 4096))
        # Nothing left in the pipe: the next wake-up from another thread still lands.
        assert shared.run(asyncio.sleep(0.01, "again"), timeout=10) == "again"
    finally:
        shared.stop()


def test_on_a_running_loop_the_first_step_leaves_the_loop_running_and_its_task_goes_on() -> None:
    # The shared loop runs each request's first step in a callback on the running loop.
    shared = SharedLoop(name="test-on-loop")
    loop = shared.get()
    seen: list[Any] = []

    async def quick() -> None:
        seen.append(("quick", asyncio.current_task() is not None))

    async def waits() -> None:
        first = asyncio.current_task()
        await asyncio.sleep(0.01)
        seen.append(("waits", asyncio.current_task() is first))

    def start_both(done: concurrent.futures.Future[Any]) -> None:
        tasks = [loop.run_first_step(quick(), on_loop=True)]
        seen.append(("still running", asyncio.get_running_loop() is loop))
        tasks.append(loop.run_first_step(waits(), on_loop=True))
        done.set_result(tasks)

    try:
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        loop.call_soon_threadsafe(start_both, done)
        finished, task = done.result(timeout=10)
        assert finished is None
        assert task is not None
        shared.run(asyncio.wait_for(asyncio.shield(task), 10), timeout=10)  # type: ignore[arg-type]
        assert seen == [("quick", True), ("still running", True), ("waits", True)]
    finally:
        shared.stop()


def test_requests_on_every_threads_loop_get_links_of_one_class() -> None:
    # A class per loop made the interpreter's type-specialised lookups on the link miss
    # whenever the server's threads took turns (callgrind: about 2k instructions a request).
    runner = ThreadRunner(lambda: Lifespan(_no_lifespan, "off", 1.0, lambda error: None))
    links: list[Any] = []

    def serve() -> None:
        links.append(runner.ready().link())

    threads = [threading.Thread(target=serve) for _ in range(2)]
    for thread in threads:
        thread.start()
        thread.join()
    runner.close(1.0)
    assert links[0].loop is not links[1].loop
    assert type(links[0]) is type(links[1])


async def _no_lifespan(scope: Any, receive: Any, send: Any) -> None:
    return None
