"""Threads: the shared worker pool, the BLAS limit and the ``n_jobs`` policy.

Every kernel runs its chunks on one process-wide pool and holds BLAS to one
thread while it does: the products of one chunk are small, BLAS threads do not
pay on them, and on top of our own threads (or a busy machine) they
oversubscribe the cores, which was measured to slow a d=32 fit down tenfold.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache

import threadpoolctl
from joblib import cpu_count
from threadpoolctl import ThreadpoolController

# Rows x components x features per E-step above which ``n_jobs=None`` uses
# threads. Measured on 2 cores: 0.9x at 1e5 x 2-D rows, 1.7x at 1e5 x 32-D
# rows with 16 full components.
THREADS_MIN_WORK = 5e7
# The same for the compiled kernel, which has no numpy call overhead per chunk
# to share between threads. What threads cost is the hand-over: a task's
# round trip through the pool took 88 us on this 2-core VM, and a whole EM
# iteration on two threads ~150 us more than on one. Per iteration, 2-D data
# with 3 full components (work 18 per row), one / two threads: 3e4 rows 0.34
# / 0.37 ms, 1e5 rows 1.01 / 0.81 ms, 3e5 rows 2.86 / 1.72 ms ('diag': 3e4
# 0.29 / 0.35, 1e5 0.86 / 0.68). But in bench_fit.py's sizes suite, where
# scikit-learn's BLAS threads run between our fits, 1e5 rows on two threads
# took 1.47 ms against 1.33 on one in the previous run: around 1e5 rows it is
# a wash here, so two threads start from 3e6 (1.7e5 such rows).
THREADS_MIN_WORK_COMPILED = 3e6


def n_threads(
    n_jobs: int | None, n_rows: int, work_per_row: int, compiled: bool = False
) -> int:
    """Worker threads for an E-step of ``n_rows`` rows.

    ``work_per_row`` is components times feature rows; ``compiled`` whether
    the compiled kernel runs it. joblib's conventions for negative values,
    but our own threads: not ``joblib.effective_n_jobs``, which assumes
    processes and warns in a child process.
    """
    cores = _cores()
    if n_jobs is None:
        least = THREADS_MIN_WORK_COMPILED if compiled else THREADS_MIN_WORK
        return cores if n_rows * work_per_row >= least else 1
    if n_jobs < 0:
        return max(1, cores + 1 + n_jobs)
    return int(n_jobs)


@lru_cache(maxsize=1)
def _cores() -> int:
    """joblib's count of usable cores (cgroup and affinity limits included),
    looked up once: it reads files under /sys and /proc, a few hundred
    microseconds that every data source would pay again."""
    return cpu_count()


@lru_cache(maxsize=1)
def executor() -> ThreadPoolExecutor:
    """One pool for the process: starting threads at every E-step costs more
    than a small E-step."""
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="sklearn_em")


# A forked child inherits the pool object but none of its threads: start afresh.
if hasattr(os, "register_at_fork"):  # no fork on Windows
    os.register_at_fork(after_in_child=executor.cache_clear)


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    """Inspecting the loaded libraries is slow; do it once per process."""
    return ThreadpoolController()


def hold_across_forks(*locks: threading.Lock, in_child=None) -> None:
    """Have every fork of the process take ``locks`` (in this order) first,
    and release them after it, in the parent and in the child (there after
    ``in_child()``, if given).

    A child forked while another thread held one of them would find it held
    for ever, by a thread it does not have. Only the locks a fork took are
    released (a ``KeyboardInterrupt`` may cut its wait short). A fork runs
    the hooks of later registrations first, holding nothing of earlier ones.
    """
    if not hasattr(os, "register_at_fork"):  # no fork on Windows
        return
    # Per forking thread: two threads forking at once each release their own.
    state = threading.local()

    def before():
        state.held = []
        for lock in locks:
            lock.acquire()
            state.held.append(lock)

    def after():
        held = getattr(state, "held", [])
        while held:
            held.pop().release()

    def after_in_child():
        try:
            if in_child is not None:
                in_child()
        finally:
            after()

    os.register_at_fork(
        before=before, after_in_parent=after, after_in_child=after_in_child
    )


# threadpoolctl 3.8 lets one thread at a time set OpenBLAS's (process-wide,
# on its pthreads layer) limit: the first to set it, until that thread ends
# or lets go; calls from any other thread do nothing, silently. Each change
# of ours lets go at once, or else, after one fit on the main thread, fits
# on other threads ran BLAS unlimited under our own threads, and
# overlapping fits on two threads (the first in not the last out) left the
# process's BLAS at one thread. Not within a ``threadpool_limits`` block of
# the caller's own, though: that block owns the control, and lets go as it
# ends. Older threadpoolctl sets the limit from any thread.
_OpenBLAS = getattr(threadpoolctl, "OpenBLASController", None)
_clear_control = getattr(_OpenBLAS, "clear_controlling_thread", None)
_ownership = getattr(threadpoolctl, "CONTROLLING_THREAD_OWNERSHIP", None)


def _let_go() -> None:
    if _clear_control is not None and getattr(_ownership, "count", 0) <= 0:
        _clear_control()


def _limit_blas():
    limiter = _controller().limit(limits=1, user_api="blas")
    _let_go()
    return limiter


def _restore_blas(limiter) -> None:
    limiter.restore_original_limits()
    _let_go()


_lock = threading.Lock()
_holders = 0
_limiter = None
# Forks so far into this process (see _forget_limits).
_generation = 0


def _forget_limits() -> None:
    """In a child forked while the parent ran a kernel: lift the BLAS limit
    that it inherited without the thread that would lift it, and count no
    holders. A ``single_threaded_blas`` block that the fork crossed (a
    callback of the forking thread's fit that forks) ends in the child as of
    another generation: it leaves the count alone, and the rest of that fit
    runs with BLAS as the child found it."""
    global _holders, _limiter, _generation
    limiter, _holders, _limiter = _limiter, 0, None
    _generation += 1
    if limiter is not None:
        # The child's only thread: threadpoolctl's lock, which a thread of
        # the parent may have held at the fork, is taken afresh.
        shared = getattr(_OpenBLAS, "_SHARED_STATE", None)
        if shared is not None and hasattr(shared, "lock"):
            shared.lock = threading.Lock()
        _restore_blas(limiter)


hold_across_forks(_lock, in_child=_forget_limits)


@contextmanager
def single_threaded_blas():
    """Hold BLAS to one thread for the duration, re-entrant across threads.

    BLAS thread counts are process-wide, so overlapping limits from concurrent
    calls must not each save and restore them: the first call in sets the
    limit and the last one out restores what was there before, so no call
    leaves the process with fewer BLAS threads than it found.
    """
    global _holders, _limiter
    with _lock:
        if _holders == 0:
            _limiter = _limit_blas()
        _holders += 1
        generation = _generation
    try:
        yield
    finally:
        with _lock:
            if generation == _generation:
                _holders -= 1
                if _holders == 0:
                    _restore_blas(_limiter)
                    _limiter = None
