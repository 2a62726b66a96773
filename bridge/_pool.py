"""A bounded pool of worker threads for running WSGI apps off the event loop.

Unlike ``concurrent.futures.ThreadPoolExecutor`` its queue is bounded: when every
worker is busy and ``max_queue`` requests already wait, ``submit`` says no at once,
and the adapter answers 503 instead of letting work pile up without limit.

Threads start lazily, on demand, so constructing a pool (even at import time, even
before a pre-fork server forks) starts nothing; a child process forgets the parent's
threads and starts its own.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any

from bridge._interface import require_int

logger = logging.getLogger("bridge.pool")

_Job = tuple[Callable[..., object], tuple[Any, ...]]
_POOLS: weakref.WeakSet[ThreadPool] = weakref.WeakSet()


class ThreadPool:
    """At most ``max_workers`` threads; at most ``max_queue`` requests waiting for one.

    ``max_queue=0`` rejects (503) as soon as every worker is busy; a larger value lets
    bursts wait their turn. ``retry_after`` is the Retry-After (seconds) of those 503s.
    """

    def __init__(
        self,
        max_workers: int = 40,
        *,
        max_queue: int | None = None,
        retry_after: int = 1,
        name: str = "bridge-worker",
    ) -> None:
        require_int(max_workers, "max_workers", "ThreadPool", minimum=1)
        require_int(max_queue, "max_queue", "ThreadPool", optional=True)
        require_int(retry_after, "retry_after", "ThreadPool", unit="seconds")
        if max_queue is None:
            max_queue = 4 * max_workers
        self.max_workers = max_workers
        self.max_queue = max_queue
        self.retry_after = retry_after
        self._name = name
        self._lock = threading.Lock()
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = 0
        self._pending = 0  # submitted and not yet finished
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs running or waiting for a worker."""
        return self._pending

    @property
    def threads(self) -> int:
        """Worker threads started so far."""
        return len(self._threads)

    def submit(self, fn: Callable[..., object], *args: Any) -> bool:
        """Run ``fn(*args)`` on a worker; ``False`` (nothing queued) when saturated."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the thread pool is shut down")
            if self._pending >= self.max_workers + self.max_queue:
                return False
            self._pending += 1
            if self._idle:
                self._idle -= 1
                spawn = False
            else:
                spawn = len(self._threads) < self.max_workers
                if spawn:
                    thread = threading.Thread(
                        target=self._work,
                        name=f"{self._name}-{len(self._threads)}",
                        daemon=True,
                    )
                    self._threads.append(thread)
        self._queue.put((fn, args))
        if spawn:
            thread.start()
        return True

    def _work(self) -> None:
        get = self._queue.get
        while (job := get()) is not None:
            fn, args = job
            try:
                fn(*args)
            except BaseException:
                # Jobs handle their own errors; anything here is a bug worth seeing.
                logger.exception("unhandled error in a worker thread")
            finally:
                del job, fn, args
                with self._lock:
                    self._pending -= 1
                    self._idle += 1

    def shutdown(self, wait: bool = True) -> None:
        """Stop the workers once the queued work is done; ``wait`` to join them."""
        with self._lock:
            self._closed = True
            threads = list(self._threads)
        for _ in threads:
            self._queue.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()


_default: ThreadPool | None = None
_default_lock = threading.Lock()


def default_pool() -> ThreadPool:
    """The pool every adapter shares unless given its own (40 workers, 160 waiting)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = ThreadPool()
    return _default


def _after_fork_in_child() -> None:
    # Threads do not survive fork(); a child starts its own on demand.
    for pool in list(_POOLS):
        pool._lock = threading.Lock()
        pool._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
