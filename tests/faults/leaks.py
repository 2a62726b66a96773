"""Snapshots of what a request may leak: threads, file descriptors, asyncio tasks, loops.

A test takes a :class:`Snapshot` before the scenario and calls :func:`assert_no_leaks`
after it. Cleanup may lag a few milliseconds (a worker thread posting its last message,
a loop thread joining), so the comparison polls until ``timeout`` before it fails, and
allows ``fd_slack`` extra descriptors (logging handlers, pytest's own capture files).

Workers of a :class:`bridge.ThreadPool` are not leaks: a pool keeps its threads for
the next request. They must be idle (``pool.pending == 0``), and are named after the
pool so they can be told apart from anything else.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from bridge import ThreadPool


def open_fds() -> set[int]:
    """Descriptors open in this process now (Linux ``/proc/self/fd``)."""
    fds = set()
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        # listdir itself holds one open while it reads; it is gone by now.
        try:
            os.fstat(fd)
        except OSError:
            continue
        fds.add(fd)
    return fds


def open_loops() -> list[asyncio.AbstractEventLoop]:
    """Event loops that exist and are not closed (found through the garbage collector)."""
    return [
        obj
        for obj in gc.get_objects()
        # type(), not isinstance(): isinstance asks a weakref.proxy for its __class__,
        # which raises ReferenceError once the proxied object is gone.
        if issubclass(type(obj), asyncio.AbstractEventLoop) and not obj.is_closed()
    ]


def pending_tasks(loop: asyncio.AbstractEventLoop | None = None) -> set[asyncio.Task[object]]:
    """Unfinished tasks on ``loop`` (default: the running loop, when there is one)."""
    if loop is None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return set()
    return {task for task in asyncio.all_tasks(loop) if not task.done()}


@dataclass(frozen=True)
class Snapshot:
    threads: frozenset[int]
    fds: frozenset[int]
    loops: frozenset[int]
    tasks: frozenset[int]

    @classmethod
    def take(cls) -> Snapshot:
        return cls(
            threads=frozenset(t.ident or 0 for t in threading.enumerate()),
            fds=frozenset(open_fds()),
            loops=frozenset(id(loop) for loop in open_loops()),
            tasks=frozenset(id(task) for task in pending_tasks()),
        )


def _is_pool_worker(thread: threading.Thread, pools: Iterable[ThreadPool]) -> bool:
    return any(thread.name.startswith(pool._name) for pool in pools)


def leaks(before: Snapshot, *, pools: Iterable[ThreadPool] = (), fd_slack: int = 2) -> list[str]:
    """What exists now that did not exist at ``before`` (empty when nothing leaked)."""
    pools = list(pools)
    problems = []
    extra_threads = [
        t
        for t in threading.enumerate()
        if (t.ident or 0) not in before.threads and not _is_pool_worker(t, pools)
    ]
    if extra_threads:
        problems.append(f"threads: {[t.name for t in extra_threads]}")
    for pool in pools:
        if pool.pending:
            problems.append(f"pool {pool._name!r} still has {pool.pending} pending job(s)")
    extra_fds = open_fds() - before.fds
    if len(extra_fds) > fd_slack:
        targets = []
        for fd in sorted(extra_fds):
            try:
                targets.append(os.readlink(f"/proc/self/fd/{fd}"))
            except OSError:
                targets.append(f"{fd}: gone")
        problems.append(f"fds: {targets}")
    extra_loops = [loop for loop in open_loops() if id(loop) not in before.loops]
    if extra_loops:
        problems.append(f"open event loops: {extra_loops}")
    extra_tasks = [task for task in pending_tasks() if id(task) not in before.tasks]
    if extra_tasks:
        problems.append(f"pending tasks: {extra_tasks}")
    return problems


def assert_no_leaks(
    before: Snapshot,
    *,
    pools: Iterable[ThreadPool] = (),
    fd_slack: int = 2,
    timeout: float = 5.0,
) -> None:
    """Poll until nothing leaked since ``before``; fail with the leftovers after ``timeout``."""
    pools = list(pools)
    deadline = time.monotonic() + timeout
    while True:
        problems = leaks(before, pools=pools, fd_slack=fd_slack)
        if not problems or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    assert not problems, "; ".join(problems)


async def assert_no_leaks_async(
    before: Snapshot,
    *,
    pools: Iterable[ThreadPool] = (),
    fd_slack: int = 2,
    timeout: float = 5.0,
) -> None:
    """:func:`assert_no_leaks` from a coroutine: polls with ``asyncio.sleep`` so the loop
    can run the cleanup it waits for."""
    pools = list(pools)
    deadline = time.monotonic() + timeout
    while True:
        problems = leaks(before, pools=pools, fd_slack=fd_slack)
        if not problems or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.01)
    assert not problems, "; ".join(problems)
