"""``ThreadPool`` under race stress: every accepted job runs exactly once, every refused
job never runs, and the pool's counters return to rest."""

from __future__ import annotations

import threading

import pytest

from bridge import ThreadPool


def pool_stress(submitters: int, jobs_each: int) -> None:
    pool = ThreadPool(4, max_queue=16)
    ran: list[tuple[int, int]] = []
    over_cap: list[int] = []
    accepted: list[tuple[int, int]] = []
    refused: list[tuple[int, int]] = []
    cap = pool.max_workers + pool.max_queue
    start = threading.Barrier(submitters)

    def job(key: tuple[int, int]) -> None:
        ran.append(key)  # list.append is atomic under the GIL
        if pool.pending > cap:
            over_cap.append(pool.pending)

    def submit_all(submitter: int) -> None:
        start.wait()
        for index in range(jobs_each):
            key = (submitter, index)
            (accepted if pool.submit(job, key) else refused).append(key)

    threads = [threading.Thread(target=submit_all, args=(n,)) for n in range(submitters)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    pool.shutdown(wait=True)

    assert len(accepted) + len(refused) == submitters * jobs_each
    assert sorted(ran) == sorted(accepted), "a job ran twice, never, or despite a refusal"
    assert not over_cap, f"pending went above {cap}: {over_cap[:5]}"
    assert pool.pending == 0
    assert pool.threads <= pool.max_workers


def test_every_accepted_job_runs_exactly_once_and_refused_ones_never() -> None:
    pool_stress(submitters=8, jobs_each=400)


@pytest.mark.soak
def test_every_accepted_job_runs_exactly_once_and_refused_ones_never_soak() -> None:
    pool_stress(submitters=8, jobs_each=8000)


def test_submitting_while_workers_finish_reuses_idle_workers_without_losing_jobs() -> None:
    # One submitter racing the workers' "I am idle" bookkeeping: nothing is refused
    # while capacity exists, and no more threads start than are ever busy at once.
    pool = ThreadPool(2, max_queue=10_000)
    done = threading.Semaphore(0)
    total = 3000
    for _ in range(total):
        assert pool.submit(done.release)
    for _ in range(total):
        assert done.acquire(timeout=60)
    pool.shutdown(wait=True)
    assert pool.threads <= 2
    assert pool.pending == 0
