"""Which E-step kernel runs: numpy, or the compiled one of the ``fast`` extra.

The compiled kernels (:mod:`._numba_kernels`) need numba, and numba has two
fixed costs that a fit must never pay where it would not win them back:

* importing numba and loading the kernels from numba's disk cache takes
  0.5 s in a fresh process (0.25 s of it ``import numba``, 1.2 s when numba's
  files are not in the OS cache);
* compiling them, once per machine, takes ~14 s for float64 rows, half of
  it the whole-run loop ``em_rows`` (``benchmarks/bench_engine_load.py``),
  and ~7 s more for rows in read-only memory (typed apart by numba).

The compile is once per machine only where numba can cache the compiled
code: next to the package, in ``NUMBA_CACHE_DIR``, or in the user's cache
directory. Where none is writable (a read-only install run by a user without
a writable home, such as a container's non-root user), ``'numba'`` (and
:func:`preload`) compiles the kernels in memory in every process, and
``'auto'`` does not load them in the background (it still uses kernels
loaded so in the process); each says so once, naming ``NUMBA_CACHE_DIR``.

A fork waits for a load in progress to end (a child forked mid-load would
find the load's lock, and numba's, held by a thread it does not have): from
the cache 0.5 s, but tens of seconds during a machine's first compile.

So the engine is chosen per data source, by these rules:

``'numpy'``
    Always the numpy kernel (the reference).
``'numba'``
    Always the compiled kernel where it applies, loading (or compiling) it
    first if need be; an ImportError names the ``fast`` extra if numba is
    missing.
``'auto'`` (the default)
    The compiled kernel where it applies and is already loaded in this
    process. Where it would apply but is not loaded yet, and the E-step is big
    enough for it to matter, it is loaded on a background thread for later
    fits, and this one runs on numpy: a fit never waits for a compiler, and
    within one estimator call (``fit``, ``partial_fit``, a whole
    :class:`GaussianMixtureIC` grid) the kernel never changes (see
    :func:`pinned`), so results are reproducible.

"Where it applies": complete rows (missing values keep their own kernel) and
the feature-row form of the E-step (not the direct form of large ``d``). On
wide rows the compiled kernel still runs, in blocks whose feature rows are
read back from cache, not memory, and hands their matrix products to BLAS
where that pays on the CPU (``_numba_kernels._blas_pays``).

The engine is a setting, :func:`set_config` / :func:`config_context`, or the
environment variable ``SKLEARN_EM_ENGINE``; not an estimator parameter,
because it changes how, never what, is computed.
"""

from __future__ import annotations

import contextvars
import functools
import importlib.util
import os
import threading
import warnings
from contextlib import contextmanager
from functools import lru_cache
from types import ModuleType

import numpy as np

from ._threads import hold_across_forks

ENGINES = ("auto", "numpy", "numba")
_ENV = "SKLEARN_EM_ENGINE"

# Rows x (k * q) per E-step from which 'auto' starts loading the compiled
# kernel in the background: 1e7 is a ~10 ms numpy E-step (5.5e5 rows of 2-D
# data, k=3, full), where the kernel saves ~5 ms per iteration, so the ~0.4 s
# of one core that loading costs is repaid within about a hundred iterations;
# a process that never fits anything that large never imports numba.
WARM_UP_WORK = 1e7

_engine: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "sklearn_em_engine", default=None
)


def _checked(engine: str) -> str:
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}.")
    return engine


def get_config() -> dict:
    """The current settings of sklearn-em: ``{'engine': ...}``.

    Returns
    -------
    config : dict
        ``engine`` is ``'auto'``, ``'numpy'`` or ``'numba'`` (see
        :func:`set_config`).
    """
    engine = _engine.get()
    if engine is None:
        engine = _checked(os.environ.get(_ENV, "auto"))
    return {"engine": engine}


def set_config(engine: str | None = None) -> None:
    """Set sklearn-em's settings for the current context.

    Parameters
    ----------
    engine : {'auto', 'numpy', 'numba'}, default=None
        The E-step kernel. ``'numpy'`` is the reference; ``'numba'`` the
        compiled kernel of the ``fast`` extra (``pip install
        "sklearn-em[fast]"``), loaded or compiled on first use; ``'auto'``
        uses the compiled kernel once it is loaded in the process and loads
        it in the background when a large fit could use it. ``None`` leaves
        the setting unchanged. The environment variable ``SKLEARN_EM_ENGINE``
        gives the default.
    """
    if engine is not None:
        _engine.set(_checked(engine))


@contextmanager
def config_context(*, engine: str | None = None):
    """Settings of :func:`set_config` within a ``with`` block only.

    Parameters
    ----------
    engine : {'auto', 'numpy', 'numba'}, default=None
        See :func:`set_config`.
    """
    token = _engine.set(_checked(engine)) if engine is not None else None
    try:
        yield
    finally:
        if token is not None:
            _engine.reset(token)


@lru_cache(maxsize=1)
def numba_installed() -> bool:
    """Whether the ``fast`` extra (numba) can be imported (looked up once:
    every data source asks, and the lookup touches the file system)."""
    return importlib.util.find_spec("numba") is not None


# ``_lock`` is held while kernels compile (seconds); ``_warm_lock`` only
# while the background thread is looked at, so that no fit ever waits on it.
_lock = threading.Lock()
_warm_lock = threading.Lock()
_kernels: ModuleType | None = None
_ready: set = set()
_warming: threading.Thread | None = None
_failed: list = []


def _compile(kernels: ModuleType, dtype, readonly: bool = False) -> None:
    """Compile (or load from disk) every kernel for rows of ``dtype``, by
    calling each on a few rows: float64 rows in float64 arithmetic, float32
    rows in float32 and in float64 (see :class:`._dense.DenseKernel`).
    ``readonly``: rows in read-only memory (a memory map, or what joblib
    hands its workers), which numba compiles separately."""

    def rows(values) -> np.ndarray:
        out = np.array(values, dtype=dtype)
        out.setflags(write=not readonly)
        return out

    x = rows(np.zeros((2, 1)))
    center = np.zeros(1)
    for arithmetic in {np.dtype(dtype), np.dtype(np.float64)}:
        f = np.empty((3, kernels.BLOCK), dtype=arithmetic)
        lp = np.empty((1, kernels.BLOCK), dtype=arithmetic)
        scratch = np.empty((3, kernels.BLOCK), dtype=arithmetic)
        w_matrix = np.zeros((1, 3), dtype=arithmetic)
        at = center.astype(arithmetic)
        for w in (np.empty(0), np.ones(2)):
            moments = np.zeros((1, 3))
            kernels.stats_rows(x, w, at, w_matrix, 0, moments, f, lp, scratch)
        kernels.log_prob_rows(x, at, w_matrix, 0, np.empty((1, 2)), f)
        scratch = np.empty((kernels.INFER_SCRATCH, kernels.BLOCK), dtype=arithmetic)
        no_resp = np.empty((0, 1), dtype=dtype)
        no_labels = np.empty(0, dtype=np.intp)
        log_norm, resp = np.empty(2), np.empty((2, 1), dtype=dtype)
        labels = np.empty(2, dtype=np.intp)
        for r, lab in ((no_resp, no_labels), (resp, no_labels), (no_resp, labels)):
            kernels.posterior_rows(x, at, w_matrix, 0, r, log_norm, lab, f, lp, scratch)
    if np.dtype(dtype) == np.float64:
        # k-means for the default initialisation (float64 rows only).
        y, centres, w = np.zeros(1), np.zeros((1, 1)), np.empty(0)
        sums, sizes, counts = np.zeros((1, 1)), np.zeros(1), np.zeros(1, np.intp)
        labels = np.zeros(2, dtype=np.int32)
        kernels.lloyd_rows(x, w, y, centres, labels, sums, sizes, counts, 0.0, 0.0)
        kernels.seeding_potentials(x, w, y, centres, centres, np.zeros(1))
        ids, found = np.zeros(1, np.intp), np.zeros(1, np.intp)
        kernels.seeding_search(x, w, y, centres, y, 0, y.copy(), found, ids, y.copy())
        kernels.weighted_choice(w, 2.0, 0.5)
        kernels.add_spread(x, w, y, np.zeros((3, 1)))
    # The M-step works in float64 whatever the rows: compiled once.
    moments = np.array([[2.0, 0.0, 2.0]])
    for kernel in (("m_step_matrix", False), ("m_step_vector", False)):
        for scale in (np.empty(0), np.ones(1)):
            kernels.m_step(
                kernel, moments, center[None], center, 0.0, scale, 1.0, 3, 1e6
            )
        # Whole EM runs (two iterations from a unit Gaussian), in each
        # arithmetic the rows may be computed in.
        for arithmetic in {np.dtype(dtype), np.dtype(np.float64)}:
            reg, b = kernels.em_buffers(kernel, 0.0, 1, 1, 3, 2, arithmetic)
            b["w_arith"][0] = [-0.9189385332046727, 0.0, -0.5]
            f = np.empty((3, kernels.BLOCK), dtype=arithmetic)
            lp = np.empty((1, kernels.BLOCK), dtype=arithmetic)
            scratch = np.empty((3, kernels.BLOCK), dtype=arithmetic)
            kernels.em_rows(
                rows([[-1.0], [1.0]]),
                False,
                np.empty(0),
                2,
                center.astype(arithmetic),
                center,
                0,
                f,
                lp,
                scratch,
                np.zeros((1, 3)),
                reg,
                np.empty(0),
                1.0,
                1e6,
                False,
                2.0,
                0.0,
                -np.inf,
                *(b[name] for name in kernels.EM_BUFFERS),
            )


def _flavour(dtype, readonly: bool) -> str:
    """The name under which the kernels for such rows are loaded."""
    return np.dtype(dtype).name + ("-readonly" if readonly else "")


# Where numba finds no writable cache directory (see _numba_kernels.CACHED).
_UNCACHED = (
    "numba finds no writable directory to cache sklearn-em's compiled kernels "
    "in (set NUMBA_CACHE_DIR to one)"
)
_uncached_said: set = set()
_said_lock = threading.Lock()


class _Uncached(RuntimeError):
    """A background load declined: the kernels could not be cached."""


def _say_uncached(what: str) -> None:
    """Warn once per process about ``what`` happens without a cache."""
    with _said_lock:
        if what in _uncached_said:
            return
        _uncached_said.add(what)
    warnings.warn(f"{_UNCACHED}: {what}.", UserWarning, stacklevel=2)


def _load(dtype, readonly: bool = False, uncached: bool = True) -> ModuleType:
    """The kernels module with the kernels for ``dtype`` rows (read-only
    ones where ``readonly``) compiled. Where numba cannot cache them they
    are compiled in memory, with a warning, or, unless ``uncached``, not at
    all (:class:`_Uncached`)."""
    global _kernels
    with _lock:
        if _kernels is None:
            from . import _numba_kernels

            _kernels = _numba_kernels
        key = _flavour(dtype, readonly)
        if key not in _ready:
            if not _kernels.CACHED:
                if not uncached:
                    raise _Uncached(_UNCACHED)
                _say_uncached(
                    "they are compiled in this process (tens of seconds) "
                    "and not kept for the next"
                )
            _compile(_kernels, dtype, readonly)
            _ready.add(key)
        return _kernels


# A child forked mid-load would find these locks, and numba's compiler lock
# (perhaps ``import numba`` half done), held by a thread it does not have,
# and hang at its first use of the kernels: a fork waits for the load to end
# (0.5 s from the cache; a machine's first compile tens of seconds) and the
# child gets the kernels whole. _load's order: _lock, then _said_lock
# (_warm_lock is never held with another). Registered after _threads' hook,
# so this wait comes first, with none of _threads' locks held.
hold_across_forks(_lock, _warm_lock, _said_lock)


def _load_in_background(dtype, readonly: bool) -> None:
    try:
        # Tens of seconds of a core in every process, where they cannot be
        # cached, is more than 'auto' may spend behind the user's back.
        _load(dtype, readonly, uncached=False)
    except _Uncached as error:
        _failed.append(error)
        # Said from this thread, as soon as it is known (a script may make
        # only the one large fit that started this load).
        _say_uncached(
            "engine='auto' stays on numpy rather than compile them (tens of "
            "seconds) in every process; engine='numba' compiles them in this one"
        )
    except Exception as error:
        # A kernel that cannot be built (a numba that does not support this
        # platform, say) must not break anything: 'auto' stays on numpy, and
        # engine='numba' will raise the error where it is asked for.
        _failed.append(error)


def _warm_up(dtype, readonly: bool = False) -> None:
    global _warming
    with _warm_lock:
        if _failed or (_warming is not None and _warming.is_alive()):
            return
        _warming = threading.Thread(
            target=_load_in_background,
            args=(dtype, readonly),
            name="sklearn_em-compile",
            daemon=True,
        )
        _warming.start()


def preload(dtype=np.float64, readonly: bool = False) -> None:
    """Load the compiled kernels for ``dtype`` rows (read-only ones where
    ``readonly``) now, where the engine setting may use them (numba
    installed, engine not ``'numpy'``), and wait for any background load:
    afterwards no fit starts one (tests that trace memory allocations need
    that). Where numba cannot cache them they are compiled in memory, with
    a warning."""
    if get_config()["engine"] != "numpy" and numba_installed():
        _load(dtype, readonly)
    wait_for_warm_up()


# The kernels 'auto' may use, frozen for the duration of one estimator call
# (see pinned); None outside such a call.
_pinned: contextvars.ContextVar = contextvars.ContextVar(
    "sklearn_em_pinned_kernels", default=None
)


@contextmanager
def pinned():
    """Within the block, ``'auto'`` uses the compiled kernels that were loaded
    when it began, and no others.

    An estimator call that builds several data sources (the grid of
    :class:`GaussianMixtureIC`, the search of ``init_params='multistart'``
    beside the main fit) then runs all of them on the same kernel, even if a
    background load finishes meanwhile. Without it, on data where EM's path
    is chaotic (collapsing components, ties between rows), sources of one
    call on different kernels gave visibly different results, depending on
    when the load finished. Nested blocks keep the outermost snapshot.
    """
    token = None
    if _pinned.get() is None:
        token = _pinned.set(frozenset(_ready))
    try:
        yield
    finally:
        if token is not None:
            _pinned.reset(token)


def pinning(method):
    """Decorate an estimator method so that its whole call runs in
    :func:`pinned`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with pinned():
            return method(*args, **kwargs)

    return wrapper


def wait_for_warm_up() -> None:
    """Block until a background load of the compiled kernels (if any) is done."""
    thread = _warming
    if thread is not None:
        thread.join()


def select(
    dtype,
    n_rows: int,
    products: int,
    direct: bool,
    readonly: bool = False,
) -> ModuleType | None:
    """The compiled kernels to use for a source, or ``None`` for numpy.

    Parameters
    ----------
    dtype : dtype
        Of the rows.
    n_rows : int
        Rows of the source.
    products : int
        Components times feature rows, ``k * q``.
    direct : bool
        Whether the numpy kernel works without feature rows (large ``d``).
    readonly : bool, default=False
        Whether the rows are in read-only memory: numba compiles its kernels
        for those apart, and ``'auto'`` waits for them as for a dtype.
    """
    engine = get_config()["engine"]
    if engine == "numpy":
        return None
    applies = not direct
    if engine == "numba":
        if not numba_installed():
            raise ImportError(
                "engine='numba' needs numba: pip install 'sklearn-em[fast]'."
            )
        return _load(dtype, readonly) if applies else None
    if not applies or not numba_installed():
        return None
    pinned = _pinned.get()
    if _flavour(dtype, readonly) in (_ready if pinned is None else pinned):
        return _kernels
    if n_rows * products >= WARM_UP_WORK:
        _warm_up(dtype, readonly)
    return None
