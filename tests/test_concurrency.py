"""Threads and forks: BLAS limits set and lifted whatever thread runs a
kernel, and no lock held, in a forked child, by a thread it lacks.

``multiprocessing``'s default start method on Linux (before Python 3.14) is
``fork``: the child gets the parent's memory but only the forking thread. A
lock that another thread held at that moment stays held in the child for
ever. Two of ours can be held for long: the compiled kernels' lock, for the
whole of a background load (tens of seconds on a machine's first compile),
and the BLAS limit of a kernel running on another thread.

BLAS's thread count is process-wide, and threadpoolctl (3.8) lets only one
thread at a time change OpenBLAS's. Each test runs in a fresh interpreter
with OpenBLAS at two threads.
"""

import os
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork"), reason="os.fork exists on POSIX systems only"
)

# In the parent: an alarm that ends it (with a traceback) where it hangs.
_PARENT = """
import faulthandler, signal
faulthandler.register(signal.SIGALRM, chain=True)
signal.alarm(120)
"""

# In the child: a watchdog that exits (printing the stacks) where it hangs.
# Only there: faulthandler's watchdog thread, armed before the fork, would
# be waited for in the child, where it does not exist.
_CHILD = """
import faulthandler
faulthandler.dump_traceback_later(60, exit=True)
"""


def _run(code: str, **environ: str) -> str:
    env = dict(os.environ, **environ)
    env.pop("SKLEARN_EM_ENGINE", None)
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PARENT + textwrap.dedent(code)],
            capture_output=True,
            text=True,
            env=env,
            timeout=300,
        )
    except subprocess.TimeoutExpired as hung:
        pytest.fail(f"hung: {hung.stdout} {hung.stderr}")
    assert done.returncode == 0, done.stdout + done.stderr
    if "no BLAS of two threads here" in done.stdout:
        pytest.skip("OpenBLAS does not run two threads here: nothing to limit")
    if "BLAS on OpenMP here" in done.stdout:
        # Its limits are per thread: threadpoolctl sets the calling thread's
        # only, not those of the pool that runs the chunks (a gap of its own).
        pytest.skip("OpenBLAS built on OpenMP takes per-thread limits")
    return done.stdout


_BLAS = """
import os, threading
from threadpoolctl import threadpool_info
from sklearn_em._threads import single_threaded_blas

def blas_threads():
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]

before = blas_threads()
if any(i["threading_layer"] == "openmp" for i in threadpool_info()
       if i["internal_api"] == "openblas"):
    print("BLAS on OpenMP here")
    raise SystemExit(0)
if not before or min(before) < 2:
    print("no BLAS of two threads here", before)
    raise SystemExit(0)
"""


def _run_blas(code: str) -> str:
    return _run(_BLAS + textwrap.dedent(code), OPENBLAS_NUM_THREADS="2")


def test_a_kernel_on_another_thread_holds_blas_to_one_thread_after_the_main_one():
    out = _run_blas(
        """
        with single_threaded_blas():
            assert max(blas_threads()) == 1
        assert blas_threads() == before
        seen = []

        def kernel():
            with single_threaded_blas():
                seen.append(blas_threads())

        thread = threading.Thread(target=kernel)
        thread.start()
        thread.join()
        print("on another thread", max(seen[0]), blas_threads() == before)
        """
    )
    assert "on another thread 1 True" in out, out


def test_overlapping_kernels_on_two_threads_leave_blas_as_they_found_it():
    # The first in is not the last out, and stays alive (as a pool's thread).
    out = _run_blas(
        """
        a_in, b_in, a_out, done = (threading.Event() for _ in range(4))
        seen = []

        def first():
            with single_threaded_blas():
                a_in.set()
                b_in.wait()
            a_out.set()
            done.wait()

        def last():
            a_in.wait()
            with single_threaded_blas():
                b_in.set()
                a_out.wait()
                seen.append(max(blas_threads()))

        a = threading.Thread(target=first)
        b = threading.Thread(target=last)
        a.start(); b.start(); b.join()
        print("held", seen, "after", blas_threads() == before)
        done.set(); a.join()
        """
    )
    assert "held [1] after True" in out, out


def test_a_fork_during_a_kernel_load_waits_for_it_and_the_child_can_load_more():
    # numba is not needed: the load is a stand-in that takes a second.
    out = _run(
        """
        import os, threading, time, types
        import numpy as np
        from sklearn_em import _engine

        _engine._kernels = types.SimpleNamespace(CACHED=True)
        from sklearn_em._threads import single_threaded_blas

        loading, kernel_ran, load_saw = threading.Event(), threading.Event(), []

        def slow_compile(kernels, dtype, readonly=False):
            loading.set()
            # Ends once a kernel on another thread has held BLAS meanwhile:
            # the fork waits without any lock that kernels take.
            load_saw.append(kernel_ran.wait(30))

        def kernel():
            time.sleep(0.5)  # the fork is waiting by now
            with single_threaded_blas():
                kernel_ran.set()

        _engine._compile = slow_compile
        _engine._warm_up(np.float64)
        assert loading.wait(30)
        assert _engine._lock.locked()
        threading.Thread(target=kernel, daemon=True).start()
        pid = os.fork()
        if pid == 0:
        """
        + textwrap.indent(_CHILD, " " * 12)
        + """
            # The fork waited for the load: the child has its result...
            ok = "float64" in _engine._ready and load_saw == [True]
            # ... and its locks are free: it loads more, and warms up.
            _engine._load(np.float32)
            _engine._warm_up(np.float64, True)
            _engine.wait_for_warm_up()
            ok = ok and {"float32", "float64-readonly"} <= _engine._ready
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert "child 0" in out, out


def test_a_fork_while_a_kernel_holds_blas_to_one_thread_leaves_the_child_free():
    out = _run_blas(
        """
        inside, leave = threading.Event(), threading.Event()

        def kernel():
            with single_threaded_blas():
                inside.set()
                leave.wait()

        thread = threading.Thread(target=kernel, daemon=True)
        thread.start()
        assert inside.wait(30)
        assert max(blas_threads()) == 1
        pid = os.fork()
        if pid == 0:
        """
        + textwrap.indent(_CHILD, " " * 12)
        + """
            # No thread of the child holds the limit: it is lifted...
            free = blas_threads() == before
            # ... and a kernel of the child sets and lifts its own.
            with single_threaded_blas():
                held = max(blas_threads()) == 1
            os._exit(0 if free and held and blas_threads() == before else 1)
        _, status = os.waitpid(pid, 0)
        leave.set()
        thread.join()
        assert blas_threads() == before
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    assert "child 0" in out, out
