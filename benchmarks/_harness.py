"""What the benchmark scripts share, so that each holds only its cases.

Command line (:func:`parser`, :func:`settings`), the record of the machine
(:func:`environment`), interleaved timing (:func:`interleaved`) and what its
repeats show (:func:`fastest`, :func:`spread`, :func:`noisy`), one start for
every estimator (:func:`same_start`), component matching, markdown tables, and
:func:`run`: thread limits, the measurement, JSON and the exit status. Scripts
put this directory on ``sys.path``; importing this module makes ``sklearn_em``
importable from the checkout when it is not installed.
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
from sklearn.exceptions import ConvergenceWarning

try:
    import sklearn_em
except ImportError:  # not installed: use the checkout this file lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import sklearn_em

from sklearn_em._covariance import get_covariance
from sklearn_em._threads import (
    THREADS_MIN_WORK,
    THREADS_MIN_WORK_COMPILED,
    n_threads,
)

RESULTS_DIR = Path(__file__).resolve().parent / "results"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
MIB = 2.0**20


def integer(minimum, what="an integer"):
    """An argparse type: integers >= ``minimum``, written ``10000`` or ``1e4``."""

    def parse(text):
        try:
            value = float(text)
            ok = value == int(value) and value >= minimum
        except (ValueError, OverflowError):  # not a number, nan, inf
            ok = False
        if not ok:
            raise argparse.ArgumentTypeError(f"not {what} >= {minimum}: {text!r}")
        return int(value)

    return parse


size = integer(3, "a row count")  # one row per component of the test data
positive = integer(1)


def _n_jobs(text):
    """n_jobs: a non-zero integer (-1: every core)."""
    if int(text) == 0:
        raise argparse.ArgumentTypeError("n_jobs must not be 0")
    return int(text)


# Options a script may opt into. Every option defaults to None, so that
# settings() can tell "not given" from the --quick/--full presets.
OPTIONS = {
    "repeats": dict(type=positive, help="timed calls per library and case"),
    "n_iter": dict(type=positive, help="EM iterations of fixed-iteration fits"),
    "n_jobs": dict(type=_n_jobs, help="n_jobs of ours (default None)"),
    "rtol": dict(type=float, help="relative tolerance of the correctness gate"),
}


def parser(description, *options, full=None):
    """Parser with ``--quick``, ``--threads``, ``--seed``, ``--output``, the
    keys of :data:`OPTIONS` named in ``options``, and ``--full`` when ``full``
    (its help) is given; the script adds its own options."""
    p = argparse.ArgumentParser(description=description)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    if full:
        mode.add_argument("--full", action="store_true", help=full)
    for name in options:
        p.add_argument("--" + name.replace("_", "-"), **OPTIONS[name])
    p.add_argument("--threads", type=positive, help="threadpool_limits(THREADS)")
    p.add_argument("--seed", type=int, default=0, help="data and init seed (0)")
    p.add_argument("--output", type=Path, help="JSON path (default under results/)")
    return p


def settings(args, defaults, quick, full=None):
    """Settings: ``defaults``, updated by the ``quick`` or ``full`` preset when
    that flag is given, then by every option given on the command line."""
    cfg = {"full": False, **defaults}
    cfg.update(quick if args.quick else full if getattr(args, "full", False) else {})
    cfg.update({k: v for k, v in vars(args).items() if v is not None})
    cfg.setdefault("output", None)
    return cfg


def default_output(name, cfg):
    """``results/NAME[-quick].json``, unless ``--output`` was given."""
    quick = "-quick" if cfg["quick"] else ""
    return cfg["output"] or RESULTS_DIR / f"{name}{quick}.json"


def cpu_model():
    """CPU model from ``/proc/cpuinfo``, else ``platform.processor()`` or None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def cpu_vector_flags():
    """Which of ``avx2``, ``fma``, ``avx512f`` ``/proc/cpuinfo`` shows (a
    virtual machine may hide AVX-512 on a CPU that has it, and numpy's and
    the compiled kernel's speed both depend on it), else None."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("flags"):
                    shown = set(line.split(":", 1)[1].split())
                    return [x for x in ("avx2", "fma", "avx512f") if x in shown]
    except OSError:
        pass
    return None


def loadavg():
    """1, 5 and 15 minute load averages, or ``None`` where not reported."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def threadpools():
    """BLAS and OpenMP pools (API, threads, version, file) seen by threadpoolctl."""
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "num_threads", "version", "threading_layer")
    return [
        {**{k: p[k] for k in keys if k in p}, "file": Path(p["filepath"]).name}
        for p in threadpool_info()
    ]


def environment():
    """Machine, versions, thread pools and load: what makes timings comparable."""
    import joblib
    import scipy
    import sklearn

    return {
        "platform": platform.platform(),
        "cpu_model": cpu_model(),
        "cpu_vector_flags": cpu_vector_flags(),
        "cpu_count": os.cpu_count(),
        "joblib_cpu_count": joblib.cpu_count(),
        "python": sys.version.replace("\n", " "),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "sklearn_em": getattr(sklearn_em, "__version__", None),
        "threadpool_info": threadpools(),
        "sklearn_em_threads_min_work": THREADS_MIN_WORK,
        "sklearn_em_threads_min_work_compiled": THREADS_MIN_WORK_COMPILED,
        "loadavg_before": loadavg(),
    }


def threads_of_ours(
    n_jobs, n_rows, n_components, n_features, covariance_type, compiled=False
):
    """Threads ``sklearn_em`` uses for an E-step of this size, by its own
    policy (``compiled``: on the compiled kernel)."""
    from sklearn_em._dense import uses_direct

    cov = get_covariance(covariance_type)
    work = n_components * cov.n_features_total(n_features)
    # The compiled kernel runs the feature-row form only (see
    # sklearn_em/_engine.py).
    compiled = compiled and not uses_direct(cov, n_features)
    return n_threads(n_jobs, n_rows, work, compiled)


def maxrss_mib():
    """Peak resident set size of this process (``getrusage``) in MiB, or None."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / MIB if sys.platform == "darwin" else value / 1024  # B vs KiB


def rss_mib():
    """Current resident set size (``/proc/self/statm``, Linux) in MiB, or None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def timed(fn):
    """``(seconds, fn())``: wall time (perf_counter), ConvergenceWarning silenced."""
    # Fixed-iteration fits (tol=0) never "converge": the warning is noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        value = fn()
        return time.perf_counter() - t0, value


def interleaved(calls, repeats):
    """Time each of ``calls`` (name -> zero-argument callable) ``repeats`` times.

    Every call runs in every repeat, in an order that rotates between
    repeats, so that the slow phases of a noisy machine hit all alike.

    Returns
    -------
    times : dict
        ``name -> list of seconds``; report their medians.
    values : dict
        ``name -> what its last call returned``.
    errors : list of str
        ``"name: Error: message"`` per call that raised (not called again).
    """
    names = list(calls)
    times, values, errors = {n: [] for n in names}, {}, []
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            if any(e.startswith(f"{name}: ") for e in errors):
                continue
            try:
                seconds, values[name] = timed(calls[name])
            except Exception as exc:
                errors.append(f"{name}: {type(exc).__name__}: {exc}")
            else:
                times[name].append(seconds)
    return times, values, errors


def median(values):
    """Median of a list, ``None`` for an empty one."""
    return statistics.median(values) if values else None


def fastest(times):
    """Fastest repeat: the least of ``times``, ``None`` for an empty list."""
    return min(times) if times else None


def spread(times):
    """Slowest over fastest repeat (>= 1), ``None`` for an empty list.

    1 when every repeat took the same time (or there was one); 2 when the
    slowest took twice the fastest.
    """
    return ratio(max(times), min(times)) if times else None


# A stolen core (another guest of a shared VM, in bursts) slows a whole fit by
# 1.3-2x, while the repeats of a quiet run agree within a few percent (spread
# 1.03-1.08 in bench_fit's records): 1.25 sits between the two. The test is
# slowest/fastest, not where the median fell: the median of [1, 1, 1, 2, 2]
# is in the fast group, but one more slow repeat would move it.
NOISY_SPREAD = 1.25


def noisy(series, threshold=NOISY_SPREAD):
    """Whether the repeats of any of ``series`` (lists of seconds) spread
    beyond ``threshold`` (:func:`spread`), so that they fell in two groups.

    Parameters
    ----------
    series : iterable of list of float
        Every timed call's repeats behind a ratio (all its libraries).
    threshold : float, default=NOISY_SPREAD
        Largest slowest/fastest taken as one group.

    Returns
    -------
    flag : bool
        True when some list's slowest repeat took more than ``threshold``
        times its fastest. A median of such repeats may come from either
        group; the ratio of two medians may mix them. One repeat is never
        flagged: it cannot tell.
    """
    return any((spread(t) or 1.0) > threshold for t in series)


def same_start(X, covariance_type, n_components, seed, reg_covar=1e-6):
    """Initial weights, means and precisions from a cheap deterministic k-means.

    Every estimator of a case starts here, so that their results must agree
    and their times cover the same EM iterations. k-means runs on at most
    5,000 rows (10 Lloyd steps); every row then goes to its nearest centre
    and the parameters are the moments of that partition, turned into
    precisions by the library's covariance class (the maths of an M-step,
    with no branch on the covariance type here).

    Returns
    -------
    init : dict
        ``weights_init``, ``means_init`` and ``precisions_init`` (float64),
        the shape of the last set by ``covariance_type``.
    """
    from sklearn.cluster import KMeans

    X = np.asarray(X, dtype=np.float64)
    rng = np.random.default_rng(seed)
    sub = X[rng.choice(len(X), 5_000, replace=False)] if len(X) > 5_000 else X
    kmeans = KMeans(n_components, n_init=1, max_iter=10, random_state=seed).fit(sub)
    labels = kmeans.predict(X)
    cov = get_covariance(covariance_type)
    # An empty component would divide by zero; sklearn adds the same.
    nk = np.bincount(labels, minlength=n_components) + 10 * np.finfo(np.float64).eps
    centre = X.mean(axis=0)  # moments about the mean: no cancellation far away
    means = np.zeros((n_components, X.shape[1]))
    second = np.zeros((n_components, cov.n_second_order(X.shape[1])))
    for k in range(n_components):
        y = X[labels == k] - centre
        means[k] = y.sum(axis=0) / nk[k]
        second[k] = cov.second_order_of(y.T @ y)
    covariances = cov.covariances_from_moments(nk, means, second, reg_covar)
    chol = cov.precisions_cholesky(covariances)
    return {
        "weights_init": nk / nk.sum(),
        "means_init": means + centre,
        "precisions_init": cov.precisions_from_cholesky(chol),
    }


def fixed_iterations(cls, init, covariance_type, n_iter, seed, **extra):
    """Unfitted ``cls`` that runs exactly ``n_iter`` EM iterations from ``init``."""
    return cls(
        n_components=len(init["weights_init"]),
        covariance_type=covariance_type,
        tol=0.0,
        max_iter=n_iter,
        # With every initial value given, scikit-learn still draws initial
        # responsibilities: its default 'kmeans' would run a k-means on all
        # of X inside every timed fit; 'random_from_data' costs least.
        init_params="random_from_data",
        random_state=seed,
        **init,
        **extra,
    )


def match_components(means, reference_means):
    """Order ``o`` such that ``means[o]`` best matches the reference, row by row.

    The Hungarian method on squared distances between means.
    """
    from scipy.optimize import linear_sum_assignment

    cost = ((reference_means[:, None, :] - means[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def relative_difference(a, b):
    """Largest elementwise ``|a - b| / max(|a|, |b|)``: 0 where equal, inf if
    the shapes differ, nan where a value is not finite in one of them only."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    same = a == b  # equal infinities too
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(same, 0.0, np.abs(a - b) / np.maximum(np.abs(a), np.abs(b)))
    return float(np.max(rel, initial=0.0))


def fmt(value, spec=".3e"):
    """Table cell: ``"—"`` for ``None``; spec ``"x"`` writes a ratio, ``2.31x``."""
    if value is None:
        return "—"
    return f"{value:.2f}x" if spec == "x" else format(value, spec)


def ratio(num, den):
    """``num / den``, or ``None`` if either is missing or ``den`` is 0."""
    return None if num is None or not den else num / den


def table(header, rows):
    """Markdown table; titles starting with ``<`` are left-aligned, others right."""
    align = ["---" if t.startswith("<") else "---:" for t in header]
    lines = ["| " + " | ".join(t.lstrip("<") for t in header) + " |"]
    lines.append("|" + "|".join(align) + "|")
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def progress(message):
    """Progress line on stderr (stdout carries the tables)."""
    print(f"#   {message}", file=sys.stderr, flush=True)


def run(name, argv, cfg, measure, report, output):
    """Run a benchmark: thread limits, header, measurement, report, JSON, gate.

    Parameters
    ----------
    name, argv, cfg : str, list of str or None, dict
        Benchmark name, the arguments of the script's ``main`` and its
        settings, all recorded in the JSON.
    measure : callable
        ``measure(cfg) -> dict`` of results; its ``failures`` (list of str)
        decide the exit status, its optional ``notes`` are printed.
    report : callable
        ``report(results, cfg) -> str``, the markdown printed.
    output : path-like
        JSON file to write.

    Returns
    -------
    status : int
        0 without failures, else 1.
    """
    from threadpoolctl import threadpool_limits

    env = environment()
    shown = {k: v for k, v in cfg.items() if k != "output"}
    t0 = time.perf_counter()
    with threadpool_limits(cfg["threads"]) if cfg.get("threads") else nullcontext():
        env["threadpool_info_timed"] = threadpools()
        print(f"# {name}: " + " ".join(f"{k}={v}" for k, v in shown.items()))
        print(
            f"# {env['cpu_model']} ({env['cpu_count']} CPUs), {env['platform']}, "
            f"python {platform.python_version()}, numpy {env['numpy']}, "
            f"scipy {env['scipy']}, sklearn {env['sklearn']}, "
            f"sklearn_em {env['sklearn_em']}; load average {env['loadavg_before']}"
        )
        for pool in env["threadpool_info_timed"]:
            print(f"#   {pool['internal_api']} num_threads={pool['num_threads']}")
        results = measure(cfg)
    env["loadavg_after"] = loadavg()
    elapsed = time.perf_counter() - t0
    print("\n" + report(results, cfg) + "\n")

    failures, notes = results.pop("failures"), results.pop("notes", [])
    result = {
        "benchmark": name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "elapsed_s": elapsed,
        "settings": shown,
        "environment": env,
        **results,
        "failures": failures,
        "notes": notes,
        "ok": not failures,
    }
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", "utf-8")
    print(f"results written to {output} ({elapsed:.1f} s)")

    before, after, ncpu = env["loadavg_before"], env["loadavg_after"], env["cpu_count"]
    # Busy before we started, or more runnable threads than CPUs afterwards
    # (this run alone accounts for about cpu_count of that at most).
    if before and after and (before[0] > 0.25 * ncpu or after[0] > ncpu + 0.5):
        print(
            f"WARNING: load average {before[0]} before / {after[0]} after on "
            f"{ncpu} CPUs: other processes competed, timings may be inflated",
            file=sys.stderr,
        )
    print("".join(f"NOTE: {note}\n" for note in notes), end="", file=sys.stderr)
    if failures:
        listed = "".join(f"\n  - {f}" for f in failures)
        print(f"\nFAILED: {len(failures)} problem(s):{listed}", file=sys.stderr)
        return 1
    print(f"OK: {name} passed its checks")
    return 0
