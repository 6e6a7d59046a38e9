"""Benchmark ``sklearn_em.GaussianMixture`` against scikit-learn's.

The benchmark is organised in *suites*, chosen with ``--suite``:

``sizes`` (the default)
    The three-Gaussian data set (2-D) at n = 1e2 ... 1e6 rows (1e7 with
    ``--full``), every covariance type, float64 and float32. Both estimators
    start from the same initial parameters (``weights_init``, ``means_init``,
    ``precisions_init``) and run the same fixed number of EM iterations
    (``tol=0``, ``max_iter=N``); the figure is the median fit time divided by
    ``n_iter_`` (seconds per EM iteration). For float32 each library's fit is
    also compared with *our float64 fit* of the same data values from the same
    init (max abs error of ``means_`` and ``covariances_``).
``wide``
    Synthetic blobs (``sklearn.datasets.make_blobs``, fixed seed) with d=32
    features and k=16 components, 1e5 rows, 'full' and 'diag'; otherwise as
    ``sizes``.
``default_fit``
    The whole default ``fit()`` (k-means initialisation, EM to convergence,
    final E-step) of both libraries with their default parameters except
    ``n_components=3`` and ``random_state=seed``, at 1e6 rows (1e5 with
    ``--quick``). The same ``random_state`` gives the same k-means start, so
    ``n_iter_`` and ``lower_bound_`` must match.
``predict``
    ``predict``, ``predict_proba`` and ``score_samples`` on 1e6 fresh rows
    (1e4 with ``--quick``) of models fitted from the same init; outputs must
    agree.
``threads``
    Ours with ``n_jobs=1`` and ``n_jobs=2`` against scikit-learn, 'full'
    covariance, 1e5 and 1e6 rows, fixed EM iterations as in ``sizes``.

Each timed call is timed with :func:`time.perf_counter`; the libraries are
interleaved within every repeat (rotating which one goes first) so that
machine noise hits all of them, and the median over repeats is reported.

The script is also a correctness gate: it exits with status 1 if any lower
bound differs beyond ``--rtol`` (relative; default 1e-8 for float64, 1e-4 for
float32), if predictions differ (labels exactly, probabilities and
log-likelihoods beyond ``rtol``), if ``n_iter_`` is not as expected or
differs between the libraries, or if a fit raises. Speed is reported, never
asserted.

Examples
--------
Default suite (``sizes``, 1e2 ... 1e6 rows, float64 and float32)::

    python benchmarks/bench_fit.py

Every suite, with 1e7 rows in ``sizes``::

    python benchmarks/bench_fit.py --suite all --full

Quick correctness run of every suite at tiny sizes, as in CI::

    python benchmarks/bench_fit.py --quick
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import joblib
import numpy as np
from sklearn.cluster import kmeans_plusplus
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

# Run as a script or imported from its file path (tests), so this directory
# is not necessarily on sys.path: put it there for the shared helpers, which
# also make sklearn_em importable from this checkout when it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

from sklearn_em import GaussianMixture as OurGaussianMixture
from sklearn_em.datasets import make_three_gaussians

SUITES = ("sizes", "wide", "default_fit", "predict", "threads")
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DTYPES = ("float64", "float32")
N_COMPONENTS = 3
WIDE_N_FEATURES, WIDE_N_COMPONENTS = 32, 16
WIDE_COVARIANCE_TYPES = ("full", "diag")
PREDICT_METHODS = ("predict", "predict_proba", "score_samples")
THREADS_N_JOBS = (1, 2)
RESULTS_DIR = Path(__file__).resolve().parent / "results"
# init_params of the fixed-iteration fits (all initial values are given).
INIT_PARAMS = "random_from_data"

FULL_DEFAULTS = {
    "suites": ["sizes"],
    "sizes": [100, 1_000, 10_000, 100_000, 1_000_000],
    "full_extra_sizes": [10_000_000],  # added by --full
    "wide_size": 100_000,
    "default_fit_size": 1_000_000,
    "predict_size": 1_000_000,
    "threads_sizes": [100_000, 1_000_000],
    "repeats": 5,
    "n_iter": 20,
}
QUICK_DEFAULTS = {
    "suites": list(SUITES),
    "sizes": [1_000, 10_000],
    "full_extra_sizes": [],
    "wide_size": 2_000,
    "default_fit_size": 100_000,
    "predict_size": 10_000,
    "threads_sizes": [1_000, 10_000],
    "repeats": 2,
    "n_iter": 10,
}
# Default relative tolerance of the lower-bound gate, per dtype. float32
# arithmetic cannot agree to 1e-8 between two different implementations.
DEFAULT_RTOL = {"float64": 1e-8, "float32": 1e-4}
# Initial parameters are stored in the JSON only up to this many numbers.
MAX_INIT_JSON = 2_000


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------


def effective_n_jobs(n_jobs):
    """Number of threads ``sklearn_em.GaussianMixture(n_jobs=n_jobs)`` uses.

    Parameters
    ----------
    n_jobs : int or None
        The estimator's ``n_jobs``; ``None`` lets it choose by E-step size.

    Returns
    -------
    threads : int or str
        ``"auto"`` for ``None`` (every core for large E-steps, else one),
        ``joblib.cpu_count()`` for -1, else ``n_jobs``.
    """
    if n_jobs is None:
        return "auto"
    if n_jobs < 0:
        return max(1, joblib.cpu_count() + 1 + n_jobs)
    return n_jobs


# --------------------------------------------------------------------------
# Data and shared initialisation
# --------------------------------------------------------------------------


def make_wide_blobs(n, random_state=0):
    """Synthetic blobs with d=32 features and 16 centres (``make_blobs``).

    Parameters
    ----------
    n : int
        Number of rows.
    random_state : int, default=0
        Seed of ``make_blobs``.

    Returns
    -------
    X : ndarray of shape (n, 32)
        The rows, float64.
    """
    X, _ = make_blobs(
        n_samples=n,
        n_features=WIDE_N_FEATURES,
        centers=WIDE_N_COMPONENTS,
        random_state=random_state,
    )
    return np.ascontiguousarray(X, dtype=np.float64)


def _kmeans_labels(X, n_clusters, random_state, n_lloyd=10, max_rows=5_000):
    """Cheap deterministic k-means: k-means++ seeding plus Lloyd steps.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, float64.
    n_clusters : int
        Number of clusters.
    random_state : int
        Seed for the subsample and the k-means++ seeding.
    n_lloyd : int, default=10
        Number of Lloyd iterations run on the subsample.
    max_rows : int, default=5000
        Size of the subsample the centres are computed on.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Index of the nearest final centre for every row of ``X``.
    """
    rng = np.random.default_rng(random_state)
    if X.shape[0] > max_rows:
        sub = X[rng.choice(X.shape[0], size=max_rows, replace=False)]
    else:
        sub = X
    centers, _ = kmeans_plusplus(sub, n_clusters, random_state=random_state)
    for _ in range(n_lloyd):
        labels = _nearest(sub, centers)
        for k in range(n_clusters):
            members = sub[labels == k]
            if len(members):
                centers[k] = members.mean(axis=0)
    return _nearest(X, centers)


def _nearest(X, centers, block=65_536):
    """Return the index of the nearest centre for every row of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    centers : ndarray of shape (n_clusters, n_features)
        Cluster centres.
    block : int, default=65536
        Rows handled at once (bounds the temporary memory).

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Index of the nearest centre (squared Euclidean distance).
    """
    labels = np.empty(X.shape[0], dtype=np.intp)
    for start in range(0, X.shape[0], block):
        rows = X[start : start + block]
        d2 = ((rows[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
        labels[start : start + block] = d2.argmin(axis=1)
    return labels


def initial_parameters(
    X, covariance_type, random_state=0, reg=1e-6, n_components=N_COMPONENTS
):
    """Compute shared initial EM parameters from a hard k-means partition.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data (any float dtype; the computation is done in float64).
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance type; fixes the shape of ``precisions_init``.
    random_state : int, default=0
        Seed of the k-means subsample and seeding.
    reg : float, default=1e-6
        Added to the diagonal of every covariance before inversion.
    n_components : int, default=3
        Number of mixture components.

    Returns
    -------
    init : dict
        ``weights_init`` (n_components,), ``means_init``
        (n_components, n_features) and ``precisions_init`` whose shape
        follows scikit-learn's convention for ``covariance_type``; all
        float64.
    """
    X = np.asarray(X, dtype=np.float64)
    n, d = X.shape
    labels = _kmeans_labels(X, n_components, random_state)
    nk = np.bincount(labels, minlength=n_components) + 10 * np.finfo(np.float64).eps
    weights = nk / n
    means = np.empty((n_components, d))
    covs = np.empty((n_components, d, d))
    for k in range(n_components):
        members = X[labels == k]
        means[k] = members.sum(axis=0) / nk[k]
        diff = members - means[k]
        covs[k] = diff.T @ diff / nk[k]
    eye = np.eye(d)
    if covariance_type == "full":
        precisions = np.stack([np.linalg.inv(c + reg * eye) for c in covs])
        # inv() is symmetric only up to round-off; the estimators check it.
        precisions = (precisions + precisions.transpose(0, 2, 1)) / 2
    elif covariance_type == "tied":
        tied = np.tensordot(weights, covs, axes=1)
        precisions = np.linalg.inv(tied + reg * eye)
        precisions = (precisions + precisions.T) / 2
    elif covariance_type == "diag":
        precisions = 1.0 / (np.diagonal(covs, axis1=1, axis2=2) + reg)
    elif covariance_type == "spherical":
        precisions = 1.0 / (np.diagonal(covs, axis1=1, axis2=2).mean(axis=1) + reg)
    else:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


def _init_json(init):
    """JSON form of an initialisation, or ``None`` when it is large.

    Parameters
    ----------
    init : dict
        Output of :func:`initial_parameters`.

    Returns
    -------
    init : dict or None
        Nested lists, or ``None`` above ``MAX_INIT_JSON`` numbers in all (the
        init is reproducible from the seed with :func:`initial_parameters`).
    """
    if sum(np.size(v) for v in init.values()) > MAX_INIT_JSON:
        return None
    return {k: np.asarray(v).tolist() for k, v in init.items()}


# --------------------------------------------------------------------------
# Timing helpers
# --------------------------------------------------------------------------


def default_libraries(n_jobs=None):
    """The two estimators compared by most suites.

    Parameters
    ----------
    n_jobs : int or None, default=None
        ``n_jobs`` of ours (scikit-learn's has no such parameter).

    Returns
    -------
    libs : dict
        ``name -> (estimator class, extra constructor parameters)`` for
        ``"ours"`` and ``"sklearn"``; ``"sklearn"`` is the reference the
        others are compared with.
    """
    return {
        "ours": (OurGaussianMixture, {"n_jobs": n_jobs}),
        "sklearn": (SkGaussianMixture, {}),
    }


def _rotation(names, r):
    """Order of the libraries in repeat ``r``: a rotation of ``names``.

    Parameters
    ----------
    names : list of str
        Library names.
    r : int
        Repeat index.

    Returns
    -------
    order : list of str
        ``names`` rotated by ``r``; for two libraries the order alternates.
    """
    s = r % len(names)
    return list(names[s:]) + list(names[:s])


def _timed(fn):
    """Call ``fn()`` with ConvergenceWarning silenced and time it.

    Parameters
    ----------
    fn : callable
        Zero-argument callable.

    Returns
    -------
    seconds : float
        Wall-clock time of the call (:func:`time.perf_counter`).
    value : object
        What ``fn`` returned.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        t0 = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t0
    return seconds, value


def _fit_fixed(cls, extra, X, covariance_type, n_iter, init, random_state):
    """Build an estimator for exactly ``n_iter`` EM iterations from ``init``.

    Parameters
    ----------
    cls : type
        Estimator class (ours or scikit-learn's).
    extra : dict
        Extra constructor parameters (e.g. ``n_jobs`` of ours).
    X : ndarray of shape (n_samples, n_features)
        Data.
    covariance_type : str
        Covariance type.
    n_iter : int
        ``max_iter``; ``tol`` is 0 so every iteration runs.
    init : dict
        Output of :func:`initial_parameters`.
    random_state : int
        Passed to the estimator (unused with full explicit initialisation).

    Returns
    -------
    seconds : float
        Wall-clock time of the whole ``fit`` call.
    estimator : object
        The fitted estimator.
    """
    est = cls(
        n_components=len(init["weights_init"]),
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=n_iter,
        n_init=1,
        # Every initial value is given, so no initialisation is needed; but
        # scikit-learn still computes initial responsibilities from
        # init_params, and its default 'kmeans' runs a k-means on all of X
        # inside every fit (ours skips that). 'random_from_data' is the
        # cheapest choice for both.
        init_params=INIT_PARAMS,
        random_state=random_state,
        **init,
        **extra,
    )
    seconds, _ = _timed(lambda: est.fit(X))
    return seconds, est


def relative_difference(a, b):
    """Symmetric relative difference ``|a - b| / max(|a|, |b|)``.

    Parameters
    ----------
    a, b : float
        Values to compare.

    Returns
    -------
    rel : float
        0 when both are zero; ``inf`` or ``nan`` propagate.
    """
    scale = max(abs(a), abs(b))
    if scale == 0.0:
        return 0.0
    return abs(a - b) / scale


def max_relative_difference(a, b):
    """Largest elementwise :func:`relative_difference` of two arrays.

    Parameters
    ----------
    a, b : array-like
        Arrays of the same shape.

    Returns
    -------
    rel : float
        ``max |a - b| / max(|a|, |b|)`` (0 where both are 0); ``inf`` if the
        shapes differ, ``nan`` if any value is not finite in one but not the
        other.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    if a.size == 0:
        return 0.0
    same = a == b  # also equal infinities
    scale = np.maximum(np.abs(a), np.abs(b))
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(same, 0.0, np.abs(a - b) / np.where(same, 1.0, scale))
    if np.isnan(rel).any():
        return float("nan")
    return float(rel.max())


# --------------------------------------------------------------------------
# Suite cases
# --------------------------------------------------------------------------


def run_case(
    X,
    covariance_type,
    n_iter,
    repeats,
    random_state=0,
    *,
    n_components=N_COMPONENTS,
    init=None,
    libs=None,
    reference=None,
):
    """Time every library's ``fit`` on one case, from one shared init.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data, already in the benchmark dtype.
    covariance_type : str
        Covariance type.
    n_iter : int
        Number of EM iterations each fit must run.
    repeats : int
        Number of timed fits per library.
    random_state : int, default=0
        Seed for the shared initialisation.
    n_components : int, default=3
        Number of components (used when ``init`` is computed here).
    init : dict, optional
        Shared initial parameters; default :func:`initial_parameters` of
        ``X``.
    libs : dict, optional
        ``name -> (class, extra parameters)``; default
        :func:`default_libraries`. The library named ``"sklearn"`` is the
        reference of the lower-bound comparison and of the speed-ups.
    reference : estimator, optional
        A fitted estimator (our float64 fit of the same data values from the
        same init); when given, each library's max abs error of ``means_``
        and ``covariances_`` against it is recorded.

    Returns
    -------
    case : dict
        Raw per-repeat times, medians per iteration, ``n_iter_`` and
        ``lower_bound_`` of every library, speed-ups over scikit-learn, the
        largest relative lower-bound difference to scikit-learn and any
        error messages.
    """
    if init is None:
        init = initial_parameters(
            X, covariance_type, random_state=random_state, n_components=n_components
        )
    libs = default_libraries() if libs is None else libs
    names = list(libs)
    times = {name: [] for name in names}
    fitted = {}
    errors = []
    failed = set()  # a library that raised once is not retried in this case

    # Untimed warm-up on a small slice: first-call costs (lazy imports,
    # allocator growth, thread start-up) should not land in repeat 0.
    warm = X[: max(1_000, 100 * len(init["weights_init"]))]
    for name, (cls, extra) in libs.items():
        try:
            _fit_fixed(cls, extra, warm, covariance_type, 2, init, random_state)
        except Exception as exc:
            errors.append(f"{name}: warm-up fit raised {type(exc).__name__}: {exc}")
            failed.add(name)

    for r in range(repeats):
        for name in _rotation(names, r):
            if name in failed:
                continue
            cls, extra = libs[name]
            try:
                seconds, est = _fit_fixed(
                    cls, extra, X, covariance_type, n_iter, init, random_state
                )
            except Exception as exc:
                errors.append(f"{name}: fit raised {type(exc).__name__}: {exc}")
                failed.add(name)
                continue
            times[name].append(seconds)
            fitted[name] = est

    case = {
        "n": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "n_components": len(init["weights_init"]),
        "covariance_type": covariance_type,
        "dtype": str(X.dtype),
        "n_iter_requested": n_iter,
        "init_params": INIT_PARAMS,
        "repeats": repeats,
        "libraries": names,
        "init_dtype": str(np.asarray(init["means_init"]).dtype),
        "init": _init_json(init),
    }
    for name in names:
        est = fitted.get(name)
        n_iter_ = int(est.n_iter_) if est is not None else None
        if est is not None and n_iter_ != n_iter:
            errors.append(f"{name}: n_iter_ = {n_iter_}, expected {n_iter}")
        med = _common.median(times[name])
        entry = {
            "params": {k: v for k, v in libs[name][1].items()},
            "times_s": times[name],
            "median_fit_s": med,
            "n_iter": n_iter_,
            "median_s_per_iter": med / n_iter_ if med is not None and n_iter_ else None,
            "lower_bound": float(est.lower_bound_) if est is not None else None,
            "converged": bool(est.converged_) if est is not None else None,
        }
        if "n_jobs" in entry["params"]:
            entry["n_jobs_effective"] = effective_n_jobs(entry["params"]["n_jobs"])
        if reference is not None and est is not None:
            entry["max_abs_err_means"] = _max_abs_err(est.means_, reference.means_)
            entry["max_abs_err_covariances"] = _max_abs_err(
                est.covariances_, reference.covariances_
            )
        case[name] = entry

    sk = case.get("sklearn")
    case["speedups"] = {
        name: _common.ratio(
            sk and sk["median_s_per_iter"], case[name]["median_s_per_iter"]
        )
        for name in names
        if name != "sklearn"
    }
    case["speedup"] = case["speedups"].get("ours")
    rels = [
        relative_difference(case[name]["lower_bound"], sk["lower_bound"])
        for name in names
        if name != "sklearn"
        and sk is not None
        and sk["lower_bound"] is not None
        and case[name]["lower_bound"] is not None
    ]
    case["lower_bound_rel_diff"] = max(rels) if rels else None
    if reference is not None:
        case["accuracy_reference"] = (
            "ours, float64, on the same data values (X.astype(float64)), same init "
            "and n_iter"
        )
        ours, sk = case.get("ours", {}), case.get("sklearn", {})
        keys = ("max_abs_err_means", "max_abs_err_covariances")
        if all(k in ours and k in sk for k in keys):
            case["ours_closer_to_float64"] = all(ours[k] <= sk[k] for k in keys)
        else:
            case["ours_closer_to_float64"] = None
    case["errors"] = errors
    return case


def _max_abs_err(values, reference):
    """Largest absolute difference, computed in float64.

    Parameters
    ----------
    values, reference : array-like
        Arrays of the same shape.

    Returns
    -------
    err : float
        ``max |values - reference|``.
    """
    values = np.asarray(values, dtype=np.float64)
    return float(np.max(np.abs(values - np.asarray(reference, dtype=np.float64))))


def run_default_fit_case(X, repeats, random_state=0, n_jobs=None):
    """Time the whole default ``fit()`` of both libraries.

    Both use their default parameters except ``n_components=3`` and
    ``random_state`` (and ``n_jobs`` of ours when given): k-means
    initialisation, EM until the lower bound changes by less than
    ``tol=1e-3`` (at most 100 iterations), then the final E-step.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    repeats : int
        Timed fits per library.
    random_state : int, default=0
        ``random_state`` of both estimators.
    n_jobs : int or None, default=None
        ``n_jobs`` of ours.

    Returns
    -------
    case : dict
        Per-repeat and median fit times, ``n_iter_``, ``lower_bound_`` and
        ``converged_`` of both, the speed-up (sklearn / ours), whether
        ``n_iter_`` matches, the relative lower-bound difference and errors.
    """
    makers = {
        "ours": lambda: OurGaussianMixture(
            n_components=N_COMPONENTS, random_state=random_state, n_jobs=n_jobs
        ),
        "sklearn": lambda: SkGaussianMixture(
            n_components=N_COMPONENTS, random_state=random_state
        ),
    }
    times = {name: [] for name in makers}
    fitted, errors, failed = {}, [], set()
    for name, make in makers.items():
        try:
            _timed(lambda make=make: make().fit(X[:1_000]))
        except Exception as exc:
            errors.append(f"{name}: warm-up fit raised {type(exc).__name__}: {exc}")
            failed.add(name)
    for r in range(repeats):
        for name in _rotation(list(makers), r):
            if name in failed:
                continue
            est = makers[name]()
            try:
                seconds, _ = _timed(lambda est=est: est.fit(X))
            except Exception as exc:
                errors.append(f"{name}: fit raised {type(exc).__name__}: {exc}")
                failed.add(name)
                continue
            times[name].append(seconds)
            fitted[name] = est

    case = {
        "n": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "n_components": N_COMPONENTS,
        "dtype": str(X.dtype),
        "repeats": repeats,
        "random_state": random_state,
        "params": {
            "ours": fitted["ours"].get_params() if "ours" in fitted else None,
            "sklearn": fitted["sklearn"].get_params() if "sklearn" in fitted else None,
        },
    }
    for name in makers:
        est = fitted.get(name)
        case[name] = {
            "times_s": times[name],
            "median_fit_s": _common.median(times[name]),
            "n_iter": int(est.n_iter_) if est is not None else None,
            "lower_bound": float(est.lower_bound_) if est is not None else None,
            "converged": bool(est.converged_) if est is not None else None,
        }
    case["ours"]["n_jobs_effective"] = effective_n_jobs(n_jobs)
    ours, sk = case["ours"], case["sklearn"]
    case["speedup"] = _common.ratio(sk["median_fit_s"], ours["median_fit_s"])
    case["n_iter_match"] = (
        ours["n_iter"] == sk["n_iter"]
        if None not in (ours["n_iter"], sk["n_iter"])
        else None
    )
    if case["n_iter_match"] is False:
        errors.append(f"n_iter_ differs: ours {ours['n_iter']}, sklearn {sk['n_iter']}")
    case["lower_bound_rel_diff"] = (
        relative_difference(ours["lower_bound"], sk["lower_bound"])
        if None not in (ours["lower_bound"], sk["lower_bound"])
        else None
    )
    case["errors"] = errors
    return case


def run_predict_case(X_train, X_test, n_iter, repeats, random_state=0, n_jobs=None):
    """Time ``predict``, ``predict_proba`` and ``score_samples`` of both.

    Both estimators are first fitted on ``X_train`` from the same init for
    ``n_iter`` iterations (untimed, 'full' covariance); then every method is
    timed on ``X_test``, libraries interleaved within each repeat.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, n_features)
        Training rows.
    X_test : ndarray of shape (n_test, n_features)
        Rows the methods are timed on.
    n_iter : int
        EM iterations of the fits.
    repeats : int
        Timed calls per method and library.
    random_state : int, default=0
        Seed of the shared initialisation.
    n_jobs : int or None, default=None
        ``n_jobs`` of ours.

    Returns
    -------
    case : dict
        For every method, the per-repeat and median times of both, the
        speed-up (sklearn / ours) and how much the outputs differ (label
        mismatches for ``predict``, max relative difference otherwise); the
        lower bounds of the two fits; errors.
    """
    init = initial_parameters(X_train, "full", random_state=random_state)
    libs = default_libraries(n_jobs)
    fitted, errors = {}, []
    for name, (cls, extra) in libs.items():
        try:
            _, fitted[name] = _fit_fixed(
                cls, extra, X_train, "full", n_iter, init, random_state
            )
        except Exception as exc:
            errors.append(f"{name}: fit raised {type(exc).__name__}: {exc}")
    case = {
        "n_train": int(X_train.shape[0]),
        "n": int(X_test.shape[0]),
        "n_features": int(X_test.shape[1]),
        "n_components": N_COMPONENTS,
        "covariance_type": "full",
        "dtype": str(X_test.dtype),
        "n_iter_fit": n_iter,
        "repeats": repeats,
        "n_jobs": n_jobs,
        "n_jobs_effective": effective_n_jobs(n_jobs),
        "init": _init_json(init),
        "methods": {},
    }
    if len(fitted) < len(libs):
        case["errors"] = errors
        return case
    case["lower_bound"] = {
        name: float(est.lower_bound_) for name, est in fitted.items()
    }
    case["lower_bound_rel_diff"] = relative_difference(
        fitted["ours"].lower_bound_, fitted["sklearn"].lower_bound_
    )

    for est in fitted.values():  # warm-up
        for method in PREDICT_METHODS:
            getattr(est, method)(X_test[:1_000])
    times = {m: {name: [] for name in libs} for m in PREDICT_METHODS}
    outputs = {m: {} for m in PREDICT_METHODS}
    for r in range(repeats):
        for method in PREDICT_METHODS:
            for name in _rotation(list(libs), r):
                fn = getattr(fitted[name], method)
                seconds, out = _timed(lambda fn=fn: fn(X_test))
                times[method][name].append(seconds)
                outputs[method][name] = out

    for method in PREDICT_METHODS:
        ours_out, sk_out = outputs[method]["ours"], outputs[method]["sklearn"]
        entry = {
            name: {
                "times_s": times[method][name],
                "median_s": _common.median(times[method][name]),
            }
            for name in libs
        }
        entry["speedup"] = _common.ratio(
            entry["sklearn"]["median_s"], entry["ours"]["median_s"]
        )
        if method == "predict":
            entry["n_mismatch"] = (
                int(np.count_nonzero(ours_out != sk_out))
                if ours_out.shape == sk_out.shape
                else int(X_test.shape[0])
            )
        else:
            entry["max_rel_diff"] = max_relative_difference(ours_out, sk_out)
        case["methods"][method] = entry
    case["errors"] = errors
    return case


# --------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------


def suite_sizes(cfg):
    """Run the ``sizes`` suite.

    Parameters
    ----------
    cfg : dict
        Resolved settings (see :func:`main`).

    Returns
    -------
    suite : dict
        ``settings`` and ``cases`` (output of :func:`run_case`).
    """
    libs = default_libraries(cfg["n_jobs"])
    cases = []
    for n in cfg["sizes"]:
        X64, _ = make_three_gaussians(n, random_state=cfg["seed"])
        for dtype in cfg["dtypes"]:
            X = np.ascontiguousarray(X64, dtype=dtype)
            X_ref = X.astype(np.float64) if dtype != "float64" else None
            for cov in cfg["covariance_types"]:
                t0 = time.perf_counter()
                init = initial_parameters(X, cov, random_state=cfg["seed"])
                reference = None
                if X_ref is not None:
                    # Initial values in the data's dtype: scikit-learn computes
                    # in float64 whenever its parameters are float64.
                    init = {k: v.astype(dtype) for k, v in init.items()}
                    init_ref = {k: v.astype(np.float64) for k, v in init.items()}
                    # float32 weights sum to 1 only to float32 precision.
                    init_ref["weights_init"] /= init_ref["weights_init"].sum()
                    _, reference = _fit_fixed(
                        *libs["ours"], X_ref, cov, cfg["n_iter"], init_ref, cfg["seed"]
                    )
                case = run_case(
                    X,
                    cov,
                    cfg["n_iter"],
                    cfg["repeats"],
                    random_state=cfg["seed"],
                    init=init,
                    libs=libs,
                    reference=reference,
                )
                cases.append(case)
                _common.progress(
                    f"sizes n={n} {cov} {dtype}: {time.perf_counter() - t0:.2f} s"
                )
            del X, X_ref
    return {
        "description": (
            "three-Gaussian data (2-D); same init, tol=0, fixed n_iter; "
            "median s/iter = median fit time / n_iter_; float32 cases also "
            "compare means_/covariances_ with our float64 fit of the same data "
            "values from the same init"
        ),
        "settings": {
            "sizes": cfg["sizes"],
            "covariance_types": cfg["covariance_types"],
            "dtypes": cfg["dtypes"],
            "n_components": N_COMPONENTS,
            "n_iter": cfg["n_iter"],
            "repeats": cfg["repeats"],
            "n_jobs": cfg["n_jobs"],
        },
        "cases": cases,
    }


def suite_wide(cfg):
    """Run the ``wide`` suite (d=32, k=16 blobs; full and diag).

    Parameters
    ----------
    cfg : dict
        Resolved settings (see :func:`main`).

    Returns
    -------
    suite : dict
        ``settings`` and ``cases`` (output of :func:`run_case`).
    """
    X = make_wide_blobs(cfg["wide_size"], random_state=cfg["seed"])
    cases = []
    for cov in WIDE_COVARIANCE_TYPES:
        t0 = time.perf_counter()
        cases.append(
            run_case(
                X,
                cov,
                cfg["n_iter"],
                cfg["repeats"],
                random_state=cfg["seed"],
                n_components=WIDE_N_COMPONENTS,
                libs=default_libraries(cfg["n_jobs"]),
            )
        )
        _common.progress(f"wide n={X.shape[0]} {cov}: {time.perf_counter() - t0:.2f} s")
    return {
        "description": (
            f"make_blobs(n_features={WIDE_N_FEATURES}, "
            f"centers={WIDE_N_COMPONENTS}, random_state=seed); "
            f"n_components={WIDE_N_COMPONENTS}; same init, tol=0, fixed n_iter"
        ),
        "settings": {
            "n": cfg["wide_size"],
            "n_features": WIDE_N_FEATURES,
            "n_components": WIDE_N_COMPONENTS,
            "covariance_types": list(WIDE_COVARIANCE_TYPES),
            "n_iter": cfg["n_iter"],
            "repeats": cfg["repeats"],
            "n_jobs": cfg["n_jobs"],
        },
        "cases": cases,
    }


def suite_default_fit(cfg):
    """Run the ``default_fit`` suite.

    Parameters
    ----------
    cfg : dict
        Resolved settings (see :func:`main`).

    Returns
    -------
    suite : dict
        ``settings`` and ``cases`` (output of :func:`run_default_fit_case`).
    """
    X, _ = make_three_gaussians(cfg["default_fit_size"], random_state=cfg["seed"])
    t0 = time.perf_counter()
    case = run_default_fit_case(
        X, cfg["repeats"], random_state=cfg["seed"], n_jobs=cfg["n_jobs"]
    )
    _common.progress(f"default_fit n={X.shape[0]}: {time.perf_counter() - t0:.2f} s")
    return {
        "description": (
            "whole default fit() (k-means init, EM to convergence, final E-step), "
            "both libraries' defaults except n_components=3, random_state=seed"
        ),
        "settings": {
            "n": cfg["default_fit_size"],
            "repeats": cfg["repeats"],
            "random_state": cfg["seed"],
            "n_jobs": cfg["n_jobs"],
        },
        "cases": [case],
    }


def suite_predict(cfg):
    """Run the ``predict`` suite.

    Parameters
    ----------
    cfg : dict
        Resolved settings (see :func:`main`).

    Returns
    -------
    suite : dict
        ``settings`` and ``cases`` (output of :func:`run_predict_case`).
    """
    n = cfg["predict_size"]
    X_train, _ = make_three_gaussians(n, random_state=cfg["seed"])
    X_test, _ = make_three_gaussians(n, random_state=cfg["seed"] + 1)
    t0 = time.perf_counter()
    case = run_predict_case(
        X_train,
        X_test,
        cfg["n_iter"],
        cfg["repeats"],
        random_state=cfg["seed"],
        n_jobs=cfg["n_jobs"],
    )
    _common.progress(f"predict n={n}: {time.perf_counter() - t0:.2f} s")
    return {
        "description": (
            "predict / predict_proba / score_samples on n fresh rows "
            "(make_three_gaussians(n, random_state=seed + 1)) of models fitted "
            "on n rows from the same init (full, tol=0, fixed n_iter)"
        ),
        "settings": {
            "n": n,
            "methods": list(PREDICT_METHODS),
            "n_iter_fit": cfg["n_iter"],
            "repeats": cfg["repeats"],
            "n_jobs": cfg["n_jobs"],
        },
        "cases": [case],
    }


def suite_threads(cfg):
    """Run the ``threads`` suite: ours n_jobs=1, n_jobs=2 and sklearn.

    Parameters
    ----------
    cfg : dict
        Resolved settings (see :func:`main`).

    Returns
    -------
    suite : dict
        ``settings`` and ``cases`` (output of :func:`run_case`).
    """
    libs = {
        f"ours_n_jobs_{j}": (OurGaussianMixture, {"n_jobs": j}) for j in THREADS_N_JOBS
    }
    libs["sklearn"] = (SkGaussianMixture, {})
    cases = []
    for n in cfg["threads_sizes"]:
        X, _ = make_three_gaussians(n, random_state=cfg["seed"])
        t0 = time.perf_counter()
        cases.append(
            run_case(
                X,
                "full",
                cfg["n_iter"],
                cfg["repeats"],
                random_state=cfg["seed"],
                libs=libs,
            )
        )
        _common.progress(f"threads n={n}: {time.perf_counter() - t0:.2f} s")
    return {
        "description": (
            "three-Gaussian data, 'full'; ours with n_jobs=1 and n_jobs=2 vs "
            "sklearn; same init, tol=0, fixed n_iter"
        ),
        "settings": {
            "sizes": cfg["threads_sizes"],
            "n_jobs": list(THREADS_N_JOBS),
            "n_iter": cfg["n_iter"],
            "repeats": cfg["repeats"],
        },
        "cases": cases,
    }


SUITE_RUNNERS = {
    "sizes": suite_sizes,
    "wide": suite_wide,
    "default_fit": suite_default_fit,
    "predict": suite_predict,
    "threads": suite_threads,
}


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def markdown_table(cases):
    """Timing table of ``sizes``/``wide`` cases (ours vs sklearn).

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_case` with libraries ``ours`` and ``sklearn``.

    Returns
    -------
    table : str
        Markdown table, one row per case.
    """
    header = [
        "n", "d", "k", "<covariance_type", "<dtype", "ours s/iter", "sklearn s/iter",
        "speed-up", "lower bound ours", "lower bound sklearn", "rel diff",
    ]  # fmt: skip
    rows = [
        [
            c["n"],
            c["n_features"],
            c["n_components"],
            c["covariance_type"],
            c["dtype"],
            _common.fmt(c["ours"]["median_s_per_iter"], ".3e"),
            _common.fmt(c["sklearn"]["median_s_per_iter"], ".3e"),
            _common.fx(c["speedup"]),
            _common.fmt(c["ours"]["lower_bound"], ".10f"),
            _common.fmt(c["sklearn"]["lower_bound"], ".10f"),
            _common.fmt(c["lower_bound_rel_diff"], ".1e"),
        ]
        for c in cases
    ]
    return _common.table(header, rows)


def accuracy_table(cases):
    """float32 accuracy table: errors against our float64 fit.

    Parameters
    ----------
    cases : list of dict
        ``sizes`` cases that carry ``max_abs_err_*`` entries.

    Returns
    -------
    table : str
        Markdown table, or ``""`` when no case has errors to report.
    """
    rows = [
        [
            c["n"],
            c["covariance_type"],
            c["dtype"],
            _common.fmt(c["ours"].get("max_abs_err_means"), ".2e"),
            _common.fmt(c["sklearn"].get("max_abs_err_means"), ".2e"),
            _common.fmt(c["ours"].get("max_abs_err_covariances"), ".2e"),
            _common.fmt(c["sklearn"].get("max_abs_err_covariances"), ".2e"),
            {True: "yes", False: "NO", None: "—"}[c.get("ours_closer_to_float64")],
        ]
        for c in cases
        if "accuracy_reference" in c
    ]
    if not rows:
        return ""
    header = [
        "n", "<covariance_type", "<dtype", "means err ours", "means err sklearn",
        "cov err ours", "cov err sklearn", "<ours closer",
    ]  # fmt: skip
    return _common.table(header, rows)


def default_fit_table(cases):
    """Table of the ``default_fit`` suite.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_default_fit_case`.

    Returns
    -------
    table : str
        Markdown table.
    """
    header = [
        "n", "ours fit s", "sklearn fit s", "speed-up", "n_iter ours",
        "n_iter sklearn", "lower bound ours", "lower bound sklearn", "rel diff",
    ]  # fmt: skip
    rows = [
        [
            c["n"],
            _common.fmt(c["ours"]["median_fit_s"], ".3e"),
            _common.fmt(c["sklearn"]["median_fit_s"], ".3e"),
            _common.fx(c["speedup"]),
            _common.fmt(c["ours"]["n_iter"], "d"),
            _common.fmt(c["sklearn"]["n_iter"], "d"),
            _common.fmt(c["ours"]["lower_bound"], ".10f"),
            _common.fmt(c["sklearn"]["lower_bound"], ".10f"),
            _common.fmt(c["lower_bound_rel_diff"], ".1e"),
        ]
        for c in cases
    ]
    return _common.table(header, rows)


def predict_table(cases):
    """Table of the ``predict`` suite.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_predict_case`.

    Returns
    -------
    table : str
        Markdown table, one row per method.
    """
    header = ["n", "<method", "ours s", "sklearn s", "speed-up", "<outputs differ by"]
    rows = []
    for c in cases:
        for method, m in c["methods"].items():
            diff = (
                f"{m['n_mismatch']} label(s)"
                if "n_mismatch" in m
                else f"{_common.fmt(m['max_rel_diff'], '.1e')} rel"
            )
            rows.append(
                [
                    c["n"],
                    method,
                    _common.fmt(m["ours"]["median_s"], ".3e"),
                    _common.fmt(m["sklearn"]["median_s"], ".3e"),
                    _common.fx(m["speedup"]),
                    diff,
                ]
            )
    return _common.table(header, rows)


def threads_table(cases):
    """Table of the ``threads`` suite.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_case` with ours at ``n_jobs=1``, ``n_jobs=2``
        and sklearn.

    Returns
    -------
    table : str
        Markdown table, one row per size.
    """
    ours = [f"ours_n_jobs_{j}" for j in THREADS_N_JOBS]
    header = ["n", "<covariance_type"]
    header += [f"ours n_jobs={j} s/iter" for j in THREADS_N_JOBS]
    header += ["sklearn s/iter"]
    header += [f"speed-up n_jobs={j}" for j in THREADS_N_JOBS]
    header += ["n_jobs=2 / n_jobs=1", "max rel diff"]
    rows = []
    for c in cases:
        row = [c["n"], c["covariance_type"]]
        row += [_common.fmt(c[name]["median_s_per_iter"], ".3e") for name in ours]
        row += [_common.fmt(c["sklearn"]["median_s_per_iter"], ".3e")]
        row += [_common.fx(c["speedups"][name]) for name in ours]
        row += [
            _common.fx(
                _common.ratio(
                    c[ours[0]]["median_s_per_iter"], c[ours[1]]["median_s_per_iter"]
                )
            ),
            _common.fmt(c["lower_bound_rel_diff"], ".1e"),
        ]
        rows.append(row)
    return _common.table(header, rows)


def suite_report(name, suite):
    """Markdown report of one suite.

    Parameters
    ----------
    name : str
        Suite name.
    suite : dict
        Output of the suite's runner.

    Returns
    -------
    text : str
        Title, description and table(s).
    """
    cases = suite["cases"]
    parts = [f"## {name}", "", suite["description"], ""]
    if name in ("sizes", "wide"):
        parts.append(markdown_table(cases))
        acc = accuracy_table(cases)
        if acc:
            parts += [
                "",
                "float32: max abs error of means_ / covariances_ against our "
                "float64 fit of the same data values from the same init:",
                "",
                acc,
            ]
    elif name == "default_fit":
        parts.append(default_fit_table(cases))
    elif name == "predict":
        parts.append(predict_table(cases))
    elif name == "threads":
        parts.append(threads_table(cases))
    return "\n".join(parts)


def _fit_failures(tag, case, rtol):
    """Gate failures of one fixed-iteration or default-fit case.

    Parameters
    ----------
    tag : str
        Prefix naming the case.
    case : dict
        Output of :func:`run_case` or :func:`run_default_fit_case`.
    rtol : float
        Maximum allowed relative lower-bound difference.

    Returns
    -------
    failures : list of str
        Empty when the case passed.
    """
    out = [f"{tag}: {e}" for e in case["errors"]]
    rel = case.get("lower_bound_rel_diff")
    if rel is None:
        if not case["errors"]:
            out.append(f"{tag}: no lower bound to compare")
    elif not rel <= rtol:
        names = case.get("libraries", ["ours", "sklearn"])
        bounds = ", ".join(f"{n} {case[n]['lower_bound']!r}" for n in names)
        out.append(
            f"{tag}: lower bounds differ by {rel:.3e} relative (> {rtol:.0e}): {bounds}"
        )
    return out


def suite_failures(name, suite, rtol):
    """List human-readable failures of the correctness gate for one suite.

    Parameters
    ----------
    name : str
        Suite name.
    suite : dict
        Output of the suite's runner.
    rtol : dict
        Tolerance per dtype (``"float64"``, ``"float32"``); the float64 one
        also bounds the prediction differences.

    Returns
    -------
    failures : list of str
        Empty when every case passed.
    """
    out = []
    for c in suite["cases"]:
        if name == "predict":
            tag = f"predict n={c['n']}"
            out.extend(f"{tag}: {e}" for e in c["errors"])
            rel = c.get("lower_bound_rel_diff")
            if rel is not None and not rel <= rtol["float64"]:
                out.append(f"{tag}: fitted lower bounds differ by {rel:.3e} relative")
            for method, m in c["methods"].items():
                if m.get("n_mismatch", 0):
                    out.append(f"{tag}: {method}: {m['n_mismatch']} labels differ")
                diff = m.get("max_rel_diff", 0.0)
                if not diff <= rtol["float64"]:
                    out.append(
                        f"{tag}: {method}: outputs differ by {diff:.3e} relative "
                        f"(> {rtol['float64']:.0e})"
                    )
            if not c["methods"] and not c["errors"]:
                out.append(f"{tag}: no outputs to compare")
        else:
            tag = f"{name} n={c['n']}"
            if "covariance_type" in c:
                tag += f" covariance_type={c['covariance_type']}"
            tag += f" dtype={c['dtype']}"
            out.extend(_fit_failures(tag, c, rtol[c["dtype"]]))
    return out


def suite_warnings(name, suite):
    """Notes that do not fail the run (float32 accuracy).

    Parameters
    ----------
    name : str
        Suite name.
    suite : dict
        Output of the suite's runner.

    Returns
    -------
    notes : list of str
        One entry per float32 case where ours is not at least as close to
        the float64 answer as scikit-learn's float32 fit.
    """
    return [
        f"{name} n={c['n']} covariance_type={c['covariance_type']} dtype={c['dtype']}: "
        "ours is not closer to the float64 answer than sklearn "
        f"(means {c['ours']['max_abs_err_means']:.2e} vs "
        f"{c['sklearn']['max_abs_err_means']:.2e}, covariances "
        f"{c['ours']['max_abs_err_covariances']:.2e} vs "
        f"{c['sklearn']['max_abs_err_covariances']:.2e})"
        for c in suite["cases"]
        if c.get("ours_closer_to_float64") is False
    ]


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


# Command-line sample size (argparse type).
_size = functools.partial(_common.parse_size, minimum=2)


def _n_jobs(text):
    """Parse ``n_jobs``: a non-zero integer (``-1`` = every core).

    Parameters
    ----------
    text : str
        Command-line token.

    Returns
    -------
    value : int
        The parsed integer.
    """
    value = int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("n_jobs must not be 0")
    return value


def build_parser():
    """Build the command-line parser.

    Returns
    -------
    parser : argparse.ArgumentParser
        Parser for :func:`main`.
    """
    p = argparse.ArgumentParser(
        description=(
            "Benchmark sklearn_em.GaussianMixture against "
            "sklearn.mixture.GaussianMixture. Suites: " + ", ".join(SUITES) + "."
        )
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        action="store_true",
        help="every suite (unless --suite) at tiny sizes, 2 repeats, 10 "
        "iterations: the CI correctness gate",
    )
    mode.add_argument(
        "--full", action="store_true", help="also 1e7 rows in the sizes suite"
    )
    p.add_argument(
        "--suite",
        nargs="+",
        choices=(*SUITES, "all"),
        help="suite(s) to run (default: sizes; with --quick: all)",
    )
    p.add_argument(
        "--sizes",
        type=_size,
        nargs="+",
        help="sizes suite: numbers of rows, e.g. 1e4 1e5 "
        "(default 1e2 ... 1e6, 1e7 with --full; quick: 1e3 1e4)",
    )
    p.add_argument(
        "--covariance-types",
        nargs="+",
        choices=COVARIANCE_TYPES,
        default=list(COVARIANCE_TYPES),
        help="sizes suite: covariance types (default: all four)",
    )
    p.add_argument(
        "--dtype",
        nargs="+",
        choices=DTYPES,
        default=list(DTYPES),
        help="sizes suite: dtypes (default: float64 float32)",
    )
    p.add_argument(
        "--wide-size", type=_size, help="wide suite: rows (default 1e5; quick 2e3)"
    )
    p.add_argument(
        "--default-fit-size",
        type=_size,
        help="default_fit suite: rows (default 1e6; quick 1e5)",
    )
    p.add_argument(
        "--predict-size",
        type=_size,
        help="predict suite: rows (default 1e6; quick 1e4)",
    )
    p.add_argument(
        "--threads-sizes",
        type=_size,
        nargs="+",
        help="threads suite: rows (default 1e5 1e6; quick 1e3 1e4)",
    )
    p.add_argument(
        "--n-iter",
        type=_common.positive_int,
        help="EM iterations per fixed-iteration fit, max_iter with tol=0 "
        "(default 20; quick 10)",
    )
    p.add_argument(
        "--repeats",
        type=_common.positive_int,
        help="timed calls per library and case (default 5; quick 2)",
    )
    p.add_argument(
        "--n-jobs",
        type=_n_jobs,
        help="n_jobs of ours outside the threads suite (default None = all cores)",
    )
    p.add_argument(
        "--threads",
        type=_common.positive_int,
        help="wrap the timings in threadpoolctl.threadpool_limits(THREADS)",
    )
    p.add_argument(
        "--rtol",
        type=float,
        help="max relative lower-bound / output difference "
        "(default 1e-8; 1e-4 for float32 lower bounds)",
    )
    p.add_argument("--seed", type=int, default=0, help="data and init seed")
    p.add_argument(
        "--output",
        type=Path,
        help="JSON path (default benchmarks/results/bench_fit-SUITES[-quick].json)",
    )
    return p


def resolve_settings(args):
    """Turn parsed arguments into the settings the suites run with.

    Parameters
    ----------
    args : argparse.Namespace
        Output of :func:`build_parser`.

    Returns
    -------
    cfg : dict
        Suites (in canonical order), sizes per suite, dtypes, covariance
        types, n_iter, repeats, n_jobs, threads, seed, rtol per dtype and
        the output path.
    """
    d = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    chosen = args.suite or d["suites"]
    suites = list(SUITES) if "all" in chosen else [s for s in SUITES if s in chosen]
    sizes = args.sizes or d["sizes"] + (d["full_extra_sizes"] if args.full else [])
    rtol = (
        dict.fromkeys(DTYPES, args.rtol)
        if args.rtol is not None
        else dict(DEFAULT_RTOL)
    )
    tag = "all" if suites == list(SUITES) else "+".join(suites)
    output = args.output or RESULTS_DIR / (
        f"bench_fit-{tag}" + ("-quick" if args.quick else "") + ".json"
    )
    return {
        "quick": args.quick,
        "full": args.full,
        "suites": suites,
        "sizes": sizes,
        "covariance_types": list(args.covariance_types),
        "dtypes": [t for t in DTYPES if t in args.dtype],
        "wide_size": args.wide_size or d["wide_size"],
        "default_fit_size": args.default_fit_size or d["default_fit_size"],
        "predict_size": args.predict_size or d["predict_size"],
        "threads_sizes": args.threads_sizes or d["threads_sizes"],
        "n_iter": args.n_iter or d["n_iter"],
        "repeats": args.repeats or d["repeats"],
        "n_jobs": args.n_jobs,
        "n_jobs_effective": effective_n_jobs(args.n_jobs),
        "threads": args.threads,
        "seed": args.seed,
        "rtol": rtol,
        "output": Path(output),
    }


def main(argv=None) -> int:
    """Run the chosen suites, print markdown tables and write the JSON results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 if every case ran as expected and every lower bound and output
        agrees within ``rtol``; 1 otherwise.
    """
    args = build_parser().parse_args(argv)
    cfg = resolve_settings(args)

    env = _common.environment_info(thread_pools=True)
    limits = threadpool_limits(cfg["threads"]) if cfg["threads"] else nullcontext()
    suites = {}
    t_start = time.perf_counter()
    with limits:
        # Pools as they are while timing (differs from the default pools in
        # env["threadpool_info"] only when --threads is given).
        env["threadpool_info_timed"] = _common.threadpools()
        print(
            f"# bench_fit: suites={cfg['suites']} quick={cfg['quick']} "
            f"full={cfg['full']} n_iter={cfg['n_iter']} repeats={cfg['repeats']} "
            f"n_jobs={cfg['n_jobs']} (ours uses {cfg['n_jobs_effective']} threads) "
            f"blas/openmp threads={cfg['threads'] or 'default'}"
        )
        print(_common.environment_line(env))
        for pool in env["threadpool_info_timed"]:
            print(
                f"#   {pool['user_api']}/{pool['internal_api']} "
                f"num_threads={pool['num_threads']} ({Path(pool['filepath']).name})"
            )
        for name in cfg["suites"]:
            suites[name] = SUITE_RUNNERS[name](cfg)
    env["loadavg_after"] = _common.loadavg()
    elapsed = time.perf_counter() - t_start

    failures, notes = [], []
    for name, suite in suites.items():
        failures += suite_failures(name, suite, cfg["rtol"])
        notes += suite_warnings(name, suite)
        print()
        print(suite_report(name, suite))
    print()

    settings = {k: v for k, v in cfg.items() if k != "output"}
    settings["init_params_fixed_iteration_fits"] = INIT_PARAMS
    settings["timing"] = (
        "wall time (time.perf_counter) of each whole call; libraries interleaved "
        "per repeat, order rotating; median over repeats; s/iter = median fit "
        "time / n_iter_"
    )
    result = {
        **_common.result_header("bench_fit", argv, elapsed),
        "settings": settings,
        "environment": env,
        "suites": suites,
        "failures": failures,
        "notes": notes,
        "ok": not failures,
    }
    output = cfg["output"]
    _common.write_result(result, output, elapsed)
    _common.warn_if_busy(env, " (the correctness checks are unaffected)")
    for note in notes:
        print(f"NOTE: {note}", file=sys.stderr)

    n_cases = sum(len(s["cases"]) for s in suites.values())
    if failures:
        print(
            f"\nFAILED: {len(failures)} problem(s) (rtol {cfg['rtol']}):",
            file=sys.stderr,
        )
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print(
        f"OK: all {n_cases} cases of {len(suites)} suite(s) agree "
        f"(rtol float64 {cfg['rtol']['float64']:.0e}, "
        f"float32 {cfg['rtol']['float32']:.0e})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
