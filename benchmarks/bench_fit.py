"""Benchmark ``sklearn_em.GaussianMixture.fit`` against scikit-learn's.

Both estimators are fitted on the same three-Gaussian data set, from the same
initial parameters (``weights_init``, ``means_init``, ``precisions_init``),
for the same fixed number of EM iterations (``tol=0``, ``max_iter=N``). Each
whole ``fit`` call is timed with :func:`time.perf_counter`; the two libraries
are interleaved within every repeat (alternating which one goes first) so
that machine noise hits both. The report gives the median seconds per EM
iteration, the speed-up (sklearn / ours), and the final ``lower_bound_`` of
both estimators with their relative difference.

The lower bounds act as a correctness gate: the script exits with status 1
if any case's lower bounds differ by more than ``--rtol`` (relative), if a
fit raises, or if a fit does not run exactly ``N`` iterations. Speed is
reported, never asserted.

Examples
--------
Full run (sizes 1e4, 1e5, 1e6; all covariance types; float64)::

    python benchmarks/bench_fit.py

Quick correctness run, as in CI::

    python benchmarks/bench_fit.py --quick
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import scipy
import sklearn
from sklearn.cluster import kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_info, threadpool_limits

try:
    from sklearn_em import GaussianMixture as OurGaussianMixture
    from sklearn_em.datasets import make_three_gaussians
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from sklearn_em import GaussianMixture as OurGaussianMixture
    from sklearn_em.datasets import make_three_gaussians

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
N_COMPONENTS = 3
RESULTS_DIR = Path(__file__).resolve().parent / "results"

FULL_DEFAULTS = {"sizes": [10_000, 100_000, 1_000_000], "repeats": 5, "n_iter": 20}
QUICK_DEFAULTS = {"sizes": [1_000, 10_000], "repeats": 2, "n_iter": 10}
# Default relative tolerance of the lower-bound gate, per dtype. float32
# arithmetic cannot agree to 1e-8 between two different implementations.
DEFAULT_RTOL = {"float64": 1e-8, "float32": 1e-4}


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------


def _cpu_model():
    """Return the CPU model name from ``/proc/cpuinfo``, if available.

    Returns
    -------
    model : str or None
        The first ``model name`` entry, or ``platform.processor()`` (which may
        be empty) when ``/proc/cpuinfo`` does not exist or has no such entry.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _sklearn_em_version():
    """Return ``sklearn_em.__version__``, or ``None`` if it is not defined.

    Returns
    -------
    version : str or None
        The version string of the installed ``sklearn_em`` package.
    """
    import sklearn_em

    return getattr(sklearn_em, "__version__", None)


def environment_info():
    """Collect machine, library and thread-pool information.

    Returns
    -------
    info : dict
        JSON-serialisable description of the platform, CPU, library versions
        and of the BLAS / OpenMP thread pools as reported by
        :func:`threadpoolctl.threadpool_info` (at call time, i.e. the
        defaults when called outside ``threadpool_limits``).
    """
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.replace("\n", " "),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "sklearn_em": _sklearn_em_version(),
        "threadpool_info": _threadpools(),
        "loadavg_before": _loadavg(),
    }


def _loadavg():
    """Return the 1, 5 and 15 minute load averages, if the OS reports them.

    Returns
    -------
    loadavg : list of float or None
        ``os.getloadavg()``; a load well above 0 before or after a run means
        other processes competed for the CPUs and the timings are suspect.
    """
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def _threadpools():
    """Summarise the thread pools currently loaded.

    Returns
    -------
    pools : list of dict
        One entry per pool with ``user_api``, ``internal_api``,
        ``num_threads``, ``version``, ``filepath`` and, for BLAS pools,
        ``threading_layer`` and ``architecture``.
    """
    keys = (
        "user_api",
        "internal_api",
        "num_threads",
        "version",
        "threading_layer",
        "architecture",
        "filepath",
    )
    return [{k: pool.get(k) for k in keys if k in pool} for pool in threadpool_info()]


# --------------------------------------------------------------------------
# Data and shared initialisation
# --------------------------------------------------------------------------


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


def _nearest(X, centers):
    """Return the index of the nearest centre for every row of ``X``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    centers : ndarray of shape (n_clusters, n_features)
        Cluster centres.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Index of the nearest centre (squared Euclidean distance).
    """
    d2 = ((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2)
    return d2.argmin(axis=1)


def initial_parameters(X, covariance_type, random_state=0, reg=1e-6):
    """Compute shared initial EM parameters from a hard k-means partition.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance type; fixes the shape of ``precisions_init``.
    random_state : int, default=0
        Seed of the k-means subsample and seeding.
    reg : float, default=1e-6
        Added to the diagonal of every covariance before inversion.

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
    labels = _kmeans_labels(X, N_COMPONENTS, random_state)
    resp = np.zeros((n, N_COMPONENTS))
    resp[np.arange(n), labels] = 1.0
    nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
    weights = nk / n
    means = (resp.T @ X) / nk[:, None]
    covs = np.empty((N_COMPONENTS, d, d))
    for k in range(N_COMPONENTS):
        diff = X - means[k]
        covs[k] = (resp[:, k] * diff.T) @ diff / nk[k]
    eye = np.eye(d)
    if covariance_type == "full":
        precisions = np.stack([np.linalg.inv(c + reg * eye) for c in covs])
    elif covariance_type == "tied":
        tied = np.tensordot(weights, covs, axes=1)
        precisions = np.linalg.inv(tied + reg * eye)
    elif covariance_type == "diag":
        precisions = 1.0 / (np.diagonal(covs, axis1=1, axis2=2) + reg)
    elif covariance_type == "spherical":
        precisions = 1.0 / (np.diagonal(covs, axis1=1, axis2=2).mean(axis=1) + reg)
    else:
        raise ValueError(f"unknown covariance_type {covariance_type!r}")
    return {"weights_init": weights, "means_init": means, "precisions_init": precisions}


# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


def _fit_once(cls, X, covariance_type, n_iter, init, random_state):
    """Fit one estimator for exactly ``n_iter`` EM iterations and time it.

    Parameters
    ----------
    cls : type
        Estimator class (ours or scikit-learn's).
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
        n_components=N_COMPONENTS,
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=n_iter,
        n_init=1,
        random_state=random_state,
        **init,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        t0 = time.perf_counter()
        est.fit(X)
        seconds = time.perf_counter() - t0
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


def run_case(X, covariance_type, n_iter, repeats, random_state=0):
    """Time ours and scikit-learn's ``fit`` on one (n, covariance_type) case.

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

    Returns
    -------
    case : dict
        Raw per-repeat times, medians per iteration, ``n_iter_`` and
        ``lower_bound_`` of both libraries and any error messages.
    """
    init = initial_parameters(X, covariance_type, random_state=random_state)
    libs = {"ours": OurGaussianMixture, "sklearn": SkGaussianMixture}
    times = {name: [] for name in libs}
    bounds = {name: [] for name in libs}
    fitted = {}
    errors = []
    failed = set()  # a library that raised once is not retried in this case

    # Untimed warm-up on a small slice: first-call costs (lazy imports,
    # allocator growth) should not land in repeat 0 of whichever runs first.
    for name, cls in libs.items():
        try:
            _fit_once(cls, X[:1000], covariance_type, 2, init, random_state)
        except Exception as exc:
            errors.append(f"{name}: warm-up fit raised {type(exc).__name__}: {exc}")
            failed.add(name)

    for r in range(repeats):
        order = list(libs) if r % 2 == 0 else list(libs)[::-1]
        for name in order:
            if name in failed:
                continue
            try:
                seconds, est = _fit_once(
                    libs[name], X, covariance_type, n_iter, init, random_state
                )
            except Exception as exc:
                errors.append(f"{name}: fit raised {type(exc).__name__}: {exc}")
                failed.add(name)
                continue
            times[name].append(seconds)
            bounds[name].append(float(est.lower_bound_))
            fitted[name] = est

    case = {
        "n": int(X.shape[0]),
        "n_features": int(X.shape[1]),
        "covariance_type": covariance_type,
        "dtype": str(X.dtype),
        "n_iter_requested": n_iter,
        "repeats": repeats,
        "init": {k: np.asarray(v).tolist() for k, v in init.items()},
    }
    for name in libs:
        est = fitted.get(name)
        n_iter_ = int(est.n_iter_) if est is not None else None
        if est is not None and n_iter_ != n_iter:
            errors.append(f"{name}: n_iter_ = {n_iter_}, expected {n_iter}")
        med = statistics.median(times[name]) if times[name] else None
        per_iter = med / n_iter_ if med is not None and n_iter_ else None
        case[name] = {
            "times_s": times[name],
            "median_fit_s": med,
            "n_iter": n_iter_,
            "median_s_per_iter": per_iter,
            "lower_bound": float(est.lower_bound_) if est is not None else None,
            "lower_bound_per_repeat": bounds[name],
            "converged": bool(est.converged_) if est is not None else None,
        }
    ours, sk = case["ours"], case["sklearn"]
    case["speedup"] = (
        sk["median_s_per_iter"] / ours["median_s_per_iter"]
        if ours["median_s_per_iter"] and sk["median_s_per_iter"]
        else None
    )
    case["lower_bound_rel_diff"] = (
        relative_difference(ours["lower_bound"], sk["lower_bound"])
        if ours["lower_bound"] is not None and sk["lower_bound"] is not None
        else None
    )
    case["errors"] = errors
    return case


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def _fmt(value, spec):
    """Format ``value`` with ``spec``, or return ``"—"`` for ``None``.

    Parameters
    ----------
    value : float or None
        Value to format.
    spec : str
        Format specification, e.g. ``".3e"``.

    Returns
    -------
    text : str
        Formatted value.
    """
    return "—" if value is None else format(value, spec)


def markdown_table(cases):
    """Render the benchmark cases as a markdown table.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_case`.

    Returns
    -------
    table : str
        Markdown table, one row per case.
    """
    header = (
        "| n | covariance_type | dtype | ours s/iter | sklearn s/iter | speed-up "
        "| lower bound ours | lower bound sklearn | rel diff |"
    )
    lines = [header, "|" + "---:|" * 1 + "---|---|" + "---:|" * 6]
    for c in cases:
        speedup = c["speedup"]
        lines.append(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |".format(
                c["n"],
                c["covariance_type"],
                c["dtype"],
                _fmt(c["ours"]["median_s_per_iter"], ".3e"),
                _fmt(c["sklearn"]["median_s_per_iter"], ".3e"),
                "—" if speedup is None else f"{speedup:.2f}x",
                _fmt(c["ours"]["lower_bound"], ".10f"),
                _fmt(c["sklearn"]["lower_bound"], ".10f"),
                _fmt(c["lower_bound_rel_diff"], ".1e"),
            )
        )
    return "\n".join(lines)


def _failures(cases, rtol):
    """List human-readable failures of the correctness gate.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_case`.
    rtol : float
        Maximum allowed relative difference of the lower bounds.

    Returns
    -------
    failures : list of str
        Empty when every case passed.
    """
    out = []
    for c in cases:
        tag = f"n={c['n']} covariance_type={c['covariance_type']} dtype={c['dtype']}"
        out.extend(f"{tag}: {e}" for e in c["errors"])
        rel = c["lower_bound_rel_diff"]
        if rel is None:
            if not c["errors"]:
                out.append(f"{tag}: no lower bound to compare")
        elif not rel <= rtol:
            out.append(
                f"{tag}: lower bounds differ by {rel:.3e} relative (> {rtol:.0e}): "
                f"ours {c['ours']['lower_bound']!r}, "
                f"sklearn {c['sklearn']['lower_bound']!r}"
            )
    return out


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _size(text):
    """Parse a sample size such as ``10000`` or ``1e4``.

    Parameters
    ----------
    text : str
        Command-line token.

    Returns
    -------
    n : int
        Positive integer size.
    """
    value = float(text)
    if value != int(value) or value < 2:
        raise argparse.ArgumentTypeError(f"not a valid sample size: {text!r}")
    return int(value)


def _positive_int(text):
    """Parse a strictly positive integer.

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
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
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
            "Benchmark sklearn_em.GaussianMixture.fit against "
            "sklearn.mixture.GaussianMixture (same init, same fixed number of "
            "EM iterations)."
        )
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="sizes 1e3 1e4, 2 repeats, 10 iterations (the CI correctness gate)",
    )
    p.add_argument(
        "--sizes",
        type=_size,
        nargs="+",
        help="numbers of rows, e.g. 1e4 1e5 (default: 1e4 1e5 1e6; quick: 1e3 1e4)",
    )
    p.add_argument(
        "--covariance-types",
        nargs="+",
        choices=COVARIANCE_TYPES,
        default=list(COVARIANCE_TYPES),
        help="covariance types to run (default: all four)",
    )
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument(
        "--n-iter",
        type=_positive_int,
        help="EM iterations per fit, max_iter with tol=0 (default 20; quick 10)",
    )
    p.add_argument(
        "--repeats",
        type=_positive_int,
        help="timed fits per library and case (default 5; quick 2)",
    )
    p.add_argument(
        "--threads",
        type=_positive_int,
        help="wrap the timings in threadpoolctl.threadpool_limits(THREADS)",
    )
    p.add_argument(
        "--rtol",
        type=float,
        help="max relative lower-bound difference (default 1e-8; 1e-4 for float32)",
    )
    p.add_argument("--seed", type=int, default=0, help="data and init seed")
    p.add_argument(
        "--output",
        type=Path,
        help="JSON path (default benchmarks/results/bench_fit[-quick].json)",
    )
    return p


def main(argv=None) -> int:
    """Run the benchmark, print a markdown table and write the JSON results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 if every case ran ``n_iter`` iterations for both libraries and the
        lower bounds agree within ``rtol``; 1 otherwise.
    """
    args = build_parser().parse_args(argv)
    defaults = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    sizes = args.sizes or defaults["sizes"]
    repeats = args.repeats or defaults["repeats"]
    n_iter = args.n_iter or defaults["n_iter"]
    rtol = args.rtol if args.rtol is not None else DEFAULT_RTOL[args.dtype]
    output = args.output or RESULTS_DIR / (
        "bench_fit-quick.json" if args.quick else "bench_fit.json"
    )
    dtype = np.dtype(args.dtype)

    env = environment_info()
    limits = threadpool_limits(args.threads) if args.threads else nullcontext()
    cases = []
    with limits:
        # Pools as they are while timing (differs from the default pools in
        # env["threadpool_info"] only when --threads is given).
        env["threadpool_info_timed"] = _threadpools()
        print(
            f"# bench_fit: sizes={sizes} covariance_types={args.covariance_types} "
            f"dtype={dtype} n_iter={n_iter} repeats={repeats} "
            f"threads={args.threads or 'default'}"
        )
        print(
            f"# {env['cpu_model']} ({env['cpu_count']} CPUs), {env['platform']}, "
            f"python {platform.python_version()}, numpy {env['numpy']}, "
            f"scipy {env['scipy']}, sklearn {env['sklearn']}, "
            f"sklearn_em {env['sklearn_em']}; load average {env['loadavg_before']}"
        )
        for pool in env["threadpool_info_timed"]:
            print(
                f"#   {pool['user_api']}/{pool['internal_api']} "
                f"num_threads={pool['num_threads']} ({Path(pool['filepath']).name})"
            )
        for n in sizes:
            X, _ = make_three_gaussians(n, random_state=args.seed)
            X = np.ascontiguousarray(X, dtype=dtype)
            for cov in args.covariance_types:
                t0 = time.perf_counter()
                case = run_case(X, cov, n_iter, repeats, random_state=args.seed)
                cases.append(case)
                print(
                    f"#   n={n} {cov}: done in {time.perf_counter() - t0:.2f} s",
                    file=sys.stderr,
                    flush=True,
                )

    env["loadavg_after"] = _loadavg()
    failures = _failures(cases, rtol)
    table = markdown_table(cases)
    print()
    print(table)
    print()

    result = {
        "benchmark": "bench_fit",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "settings": {
            "quick": args.quick,
            "sizes": sizes,
            "covariance_types": args.covariance_types,
            "dtype": str(dtype),
            "n_components": N_COMPONENTS,
            "n_iter": n_iter,
            "repeats": repeats,
            "threads": args.threads,
            "seed": args.seed,
            "rtol": rtol,
            "timing": (
                "whole fit() wall time (time.perf_counter); ours and sklearn "
                "interleaved per repeat, order alternating; s/iter = median "
                "fit time / n_iter_"
            ),
        },
        "environment": env,
        "cases": cases,
        "failures": failures,
        "ok": not failures,
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {output}")
    before, after, ncpu = env["loadavg_before"], env["loadavg_after"], env["cpu_count"]
    # Heuristic: busy before we started, or more runnable threads than CPUs
    # afterwards (this run alone accounts for at most ~cpu_count of that).
    if before and after and ncpu and (before[0] > 0.25 * ncpu or after[0] > ncpu + 0.5):
        print(
            f"WARNING: load average {before[0]} before / {after[0]} after the run "
            f"on {ncpu} CPUs: other processes may have competed for the CPUs, "
            "so the timings may be inflated (the lower-bound check is unaffected)",
            file=sys.stderr,
        )

    if failures:
        print(
            f"\nFAILED: {len(failures)} problem(s) "
            f"(lower-bound rtol {rtol:.0e}, n_iter {n_iter}):",
            file=sys.stderr,
        )
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print(f"OK: all {len(cases)} cases agree (lower-bound rel diff <= {rtol:.0e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
