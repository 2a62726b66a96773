"""A bounded pool of worker threads for running WSGI apps off the event loop.

Unlike ``concurrent.futures.ThreadPoolExecutor`` it bounds how long and how many jobs
wait: a job that waited ``queue_timeout`` seconds for a worker can be expired (the
adapter answers 503 and the job never runs), and when ``max_queue`` jobs already wait
``submit`` says no at once. The deadline is what sheds load; the count is a memory cap.

Threads start lazily, on demand, so constructing a pool (even at import time, even
before a pre-fork server forks) starts nothing; a child process forgets the parent's
threads and starts its own.
"""

from __future__ import annotations

import enum
import logging
import os
import queue
import threading
import weakref
from collections.abc import Callable
from typing import Any, Final

from bridge._interface import require_int

logger = logging.getLogger("bridge.pool")

_POOLS: weakref.WeakSet[ThreadPool] = weakref.WeakSet()

#: Default ``max_queue``: room for a burst of ten thousand requests (a2wsgi's benchmark
#: sends 10,100 at once) at a few KiB of bookkeeping each.
DEFAULT_MAX_QUEUE: Final = 16_384
#: Default ``queue_timeout`` in seconds (see ``ThreadPool``).
DEFAULT_QUEUE_TIMEOUT: Final = 30.0


class JobState(enum.Enum):
    WAITING = "waiting for a worker"
    RUNNING = "taken by a worker"
    EXPIRED = "expired before a worker took it"


# Plain module constants for the per-job code: on CPython 3.11 each ``JobState.X`` runs
# enum's Python-level descriptor (~0.3 µs).
_WAITING: Final = JobState.WAITING
_RUNNING: Final = JobState.RUNNING
_EXPIRED: Final = JobState.EXPIRED


_new: Final = object.__new__  # an instance without its __init__ (see submit())
_NOTHING: Final[Any] = object()  # no job taken (None is the sentinel that stops a worker)


class Job:
    """A submitted call. ``queued`` is true when no worker was free at submission, so
    the job waits behind others and may be expired with :meth:`ThreadPool.expire`."""

    __slots__ = ("args", "fn", "queued", "state")

    def __init__(self, fn: Callable[..., object], args: tuple[Any, ...], queued: bool) -> None:
        # ThreadPool.submit() sets these same fields without calling this: keep in step.
        self.fn: Callable[..., object] | None = fn
        self.args: tuple[Any, ...] = args
        self.queued = queued
        self.state = _WAITING


class ThreadPool:
    """At most ``max_workers`` threads; jobs wait for one at most ``queue_timeout``
    seconds, and at most ``max_queue`` of them at once.

    ``queue_timeout`` (default 30 s, ``None``: no deadline) is how long a request may
    wait for a worker before it gets 503; ``max_queue`` (default 16,384; 0 rejects as
    soon as every worker is busy) caps how many wait. ``retry_after`` is the
    Retry-After (seconds) of those 503s.
    """

    def __init__(
        self,
        max_workers: int = 40,
        *,
        max_queue: int | None = None,
        queue_timeout: float | None = DEFAULT_QUEUE_TIMEOUT,
        retry_after: int = 1,
        name: str = "bridge-worker",
    ) -> None:
        require_int(max_workers, "max_workers", "ThreadPool", minimum=1)
        require_int(max_queue, "max_queue", "ThreadPool", optional=True)
        require_int(retry_after, "retry_after", "ThreadPool", unit="seconds")
        if queue_timeout is not None and (
            type(queue_timeout) is bool or not isinstance(queue_timeout, (int, float))
        ):
            raise TypeError(
                f"ThreadPool(queue_timeout={queue_timeout!r}): expected a number of seconds "
                f"or None, got {type(queue_timeout).__name__}; pass e.g. queue_timeout=10.0"
            )
        if queue_timeout is not None and not queue_timeout > 0:
            raise ValueError(f"ThreadPool(queue_timeout={queue_timeout!r}): must be positive")
        self.max_workers = max_workers
        self.max_queue = DEFAULT_MAX_QUEUE if max_queue is None else max_queue
        self.queue_timeout = None if queue_timeout is None else float(queue_timeout)
        self.retry_after = retry_after
        self._name = name
        self._lock = threading.Lock()
        self._reset()
        _POOLS.add(self)

    def _reset(self) -> None:
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._waiting = 0  # submitted, not yet taken by a worker, not expired
        self._running = 0  # taken by a worker, not finished
        self._closed = False

    @property
    def pending(self) -> int:
        """Jobs running or waiting for a worker."""
        return self._waiting + self._running

    @property
    def threads(self) -> int:
        """Worker threads started so far."""
        return len(self._threads)

    def submit(self, fn: Callable[..., object], *args: Any) -> Job | None:
        """Run ``fn(*args)`` on a worker; ``None`` (nothing queued) when ``max_queue``
        jobs already wait."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the thread pool is shut down")
            busy = self._waiting + self._running
            if busy >= self.max_workers + self.max_queue:
                return None
            # Job.__init__'s fields, set without the class call and its frame (callgrind:
            # ~0.5k instructions a request, under the lock). Keep in step with __init__.
            job = _new(Job)
            job.fn = fn
            job.args = args
            job.queued = busy >= self.max_workers
            job.state = _WAITING
            self._waiting += 1
            # Every thread is running or reserved by a waiting job: start one more.
            spawn = busy >= len(self._threads) and len(self._threads) < self.max_workers
            if spawn:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
        self._queue.put(job)
        if spawn:
            thread.start()
        return job

    def expire(self, job: Job) -> bool:
        """Withdraw ``job`` if no worker has taken it yet; ``True`` when it was withdrawn
        (it will never run), ``False`` when it already runs or ran."""
        with self._lock:
            if job.state is not _WAITING:
                return False
            job.state = _EXPIRED
            job.fn, job.args = None, ()  # the queue keeps only an empty shell
            self._waiting -= 1
            return True

    def _work(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        empty = self._queue.empty
        lock = self._lock
        job = get()
        finished = False  # a job of ours ended and is still counted as running
        while job is not None:
            with lock:
                # A worker that just finished takes the next waiting job without
                # sleeping, and counts both in one locked step.
                if finished:
                    self._running -= 1
                    finished = False
                fn, args = job.fn, job.args
                if job.state is _WAITING and fn is not None:
                    job.state = _RUNNING
                    job.fn, job.args = None, ()
                    self._waiting -= 1
                    self._running += 1
                    finished = True
                else:
                    fn = None  # expired while it waited
            if fn is not None:
                try:
                    fn(*args)
                except BaseException:
                    # Jobs handle their own errors; anything here is a bug worth seeing.
                    logger.exception("unhandled error in a worker thread")
            del fn, args  # before sleeping: the job's objects are freed now
            # empty() first: get_nowait() on an empty queue raises, and raising and
            # catching Empty cost ~2.4k instructions (callgrind) where empty() costs ~0.1k.
            job = _NOTHING
            if not empty():
                try:
                    job = get_nowait()
                except queue.Empty:  # another worker took it in between
                    job = _NOTHING
            if job is _NOTHING:
                if finished:
                    with lock:
                        self._running -= 1
                    finished = False
                job = get()
        if finished:
            with lock:
                self._running -= 1

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
    """The pool every adapter shares unless given its own (40 workers; a request waits
    at most 30 s for one, and at most 16,384 wait)."""
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
