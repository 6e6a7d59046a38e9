"""Peak memory of ``GaussianMixture.fit``: sklearn_em against scikit-learn.

Every fit runs in a fresh Python subprocess (this script started again with
``--worker``), so that neither library inherits the other's heap, caches or
high-water mark. The parent draws the three-Gaussian data set, computes one
shared initialisation ('full' covariance, the k-means start of
``bench_fit.py``) and writes both to a temporary directory; each worker then

1. imports everything and loads ``X`` (``np.load`` of a ``.npy`` file reads
   straight into the array, so loading leaves no high-water mark above ``X``);
2. runs an untimed warm-up fit on 1,000 rows (lazy imports, thread pools);
3. starts :mod:`tracemalloc` (``X`` is therefore *not* counted), records
   ``ru_maxrss``, fits for exactly ``--n-iter`` EM iterations (``tol=0``)
   from the shared init, and reads the tracemalloc peak and ``ru_maxrss``
   again.

Reported, in MiB:

* **tracemalloc peak**: the largest amount of memory allocated during the
  fit beyond what was allocated before (``X`` included). NumPy reports its
  array buffers to tracemalloc, so temporaries of both libraries count;
  memory allocated outside Python's and NumPy's allocators (BLAS work
  buffers, OpenMP thread stacks) does not.
* **ru_maxrss growth**: how much the process's peak resident set size grew
  during the fit (``resource.getrusage``): what the operating system saw,
  allocator slack included; 0 when the fit's peak stays below the process's
  earlier high-water mark.

The lower bounds of the two fits must agree (``--rtol``, default 1e-8) and
each fit must run ``--n-iter`` iterations, otherwise the script exits with
status 1.

Examples
--------
::

    python benchmarks/bench_memory.py           # 1e4, 1e5, 1e6 rows
    python benchmarks/bench_memory.py --full    # also 1e7
    python benchmarks/bench_memory.py --quick   # 1e4, 1e5
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# Run as a script or imported from its file path (tests), so this directory
# is not necessarily on sys.path: put it there for the shared helpers.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
LIBRARIES = ("ours", "sklearn")
FULL_SIZES = [10_000, 100_000, 1_000_000]
FULL_EXTRA_SIZES = [10_000_000]
QUICK_SIZES = [10_000, 100_000]
N_ITER = 10
HEADROOM_NOTE_MIB = 2.0
MIB = 1024.0 * 1024.0


# --------------------------------------------------------------------------
# Worker (runs in the fresh subprocess)
# --------------------------------------------------------------------------


def _maxrss_bytes():
    """Peak resident set size of this process so far, in bytes.

    Returns
    -------
    maxrss : int or None
        ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` converted to bytes
        (it is in KiB on Linux, bytes on macOS); ``None`` where the
        :mod:`resource` module does not exist (Windows).
    """
    try:
        import resource
    except ImportError:
        return None
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(value) if sys.platform == "darwin" else int(value) * 1024


def _current_rss_bytes():
    """Current resident set size, from ``/proc/self/status`` (Linux only).

    Returns
    -------
    rss : int or None
        ``VmRSS`` in bytes, or ``None`` where it is not available.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return None


def _mib(value):
    """Bytes to MiB, passing ``None`` through.

    Parameters
    ----------
    value : int or None
        Number of bytes.

    Returns
    -------
    mib : float or None
        ``value / 2**20``.
    """
    return None if value is None else value / MIB


def worker(spec):
    """Fit one estimator and measure its memory (subprocess entry point).

    Parameters
    ----------
    spec : dict
        ``lib`` ("ours" or "sklearn"), ``data`` (path of the ``.npy`` file of
        ``X``), ``init`` (path of the ``.npz`` file of the initial
        parameters), ``n_iter``, ``n_jobs`` (ours only) and ``seed``.

    Returns
    -------
    result : dict
        tracemalloc peak and current (end of fit) in MiB, ``ru_maxrss``
        before and after the fit and its growth in MiB, the current RSS
        before the fit, ``X``'s size, ``n_iter_``, ``lower_bound_`` and the
        fit's wall time (inflated by tracemalloc).
    """
    import gc
    import tracemalloc
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    try:
        from sklearn_em import GaussianMixture as OurGaussianMixture
    except ImportError:  # not installed: use the checkout this script lives in
        sys.path.insert(0, str(HERE.parent))
        from sklearn_em import GaussianMixture as OurGaussianMixture

    if spec["lib"] == "ours":
        cls, extra = OurGaussianMixture, {"n_jobs": spec["n_jobs"]}
    else:
        cls, extra = SkGaussianMixture, {}
    X = np.load(spec["data"])
    with np.load(spec["init"]) as f:
        init = {k: f[k] for k in f.files}

    def make(n_iter):
        return cls(
            n_components=len(init["weights_init"]),
            covariance_type="full",
            tol=0.0,
            max_iter=n_iter,
            n_init=1,
            # With every initial value given, 'random_from_data' is the
            # cheapest init_params: scikit-learn's default 'kmeans' would run
            # a k-means on X inside fit() although its result is not used.
            init_params="random_from_data",
            random_state=spec["seed"],
            **init,
            **extra,
        )

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=ConvergenceWarning)
        make(2).fit(X[:1_000])  # warm-up: lazy imports, thread pools
        est = make(spec["n_iter"])
        gc.collect()
        rss_now = _current_rss_bytes()
        maxrss_before = _maxrss_bytes()
        tracemalloc.start()
        t0 = time.perf_counter()
        est.fit(X)
        seconds = time.perf_counter() - t0
        traced_current, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        maxrss_after = _maxrss_bytes()

    growth = None
    if maxrss_before is not None and maxrss_after is not None:
        growth = maxrss_after - maxrss_before
    return {
        "lib": spec["lib"],
        "n": int(X.shape[0]),
        "x_mib": _mib(X.nbytes),
        "tracemalloc_peak_mib": _mib(traced_peak),
        "tracemalloc_end_mib": _mib(traced_current),
        "rss_before_fit_mib": _mib(rss_now),
        "maxrss_before_fit_mib": _mib(maxrss_before),
        "maxrss_after_fit_mib": _mib(maxrss_after),
        "maxrss_growth_mib": _mib(growth),
        # ru_maxrss already above the current RSS before the fit: the growth
        # may be underestimated by up to this much.
        "maxrss_headroom_before_fit_mib": _mib(
            None
            if None in (maxrss_before, rss_now)
            else max(0, maxrss_before - rss_now)
        ),
        "n_iter": int(est.n_iter_),
        "lower_bound": float(est.lower_bound_),
        "fit_s_traced": seconds,
    }


# --------------------------------------------------------------------------
# Parent
# --------------------------------------------------------------------------


def _bench_fit():
    """Import ``bench_fit`` from this directory (environment, init helpers).

    Returns
    -------
    module : module
        The ``bench_fit`` module.
    """
    if str(HERE) not in sys.path:
        sys.path.insert(0, str(HERE))
    import bench_fit

    return bench_fit


def run_worker(spec, timeout=None):
    """Run :func:`worker` in a fresh Python subprocess.

    Parameters
    ----------
    spec : dict
        See :func:`worker`.
    timeout : float, optional
        Seconds before the subprocess is killed.

    Returns
    -------
    result : dict
        The worker's result, or ``{"error": message}`` when it failed.
    """
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    if os.name == "posix" and Path("/bin/sh").exists():
        # A child started straight from this (large) process inherits its
        # high-water mark as ru_maxrss (Linux carries it across exec, and
        # subprocess uses vfork); a shell that forks the worker gives it a
        # clean start.
        cmd = ["/bin/sh", "-c", '"$0" "$@"; exit $?', *cmd]
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = proc.stderr.strip().splitlines()[-5:]
        return {"error": f"worker exited with {proc.returncode}: " + " | ".join(tail)}
    return json.loads(lines[-1])


def run_size(n, tmpdir, n_iter, seed, n_jobs, timeout=None):
    """Measure both libraries at one size, each fit in its own subprocess.

    Parameters
    ----------
    n : int
        Number of rows of the three-Gaussian data set.
    tmpdir : path-like
        Directory for the data and init files.
    n_iter : int
        EM iterations per fit.
    seed : int
        Data and init seed.
    n_jobs : int or None
        ``n_jobs`` of ours.
    timeout : float, optional
        Per-worker timeout in seconds.

    Returns
    -------
    case : dict
        ``n``, ``x_mib``, one worker result per library, the ratios
        sklearn / ours of both measures, the relative lower-bound difference
        and any errors.
    """
    bench_fit = _bench_fit()
    X, _ = bench_fit.make_three_gaussians(n, random_state=seed)
    X = np.ascontiguousarray(X, dtype=np.float64)
    init = bench_fit.initial_parameters(X, "full", random_state=seed)
    data_path, init_path = Path(tmpdir) / f"X-{n}.npy", Path(tmpdir) / f"init-{n}.npz"
    np.save(data_path, X)
    np.savez(init_path, **init)
    x_mib = X.nbytes / MIB
    del X

    case = {
        "n": n,
        "x_mib": x_mib,
        "n_iter_requested": n_iter,
        "errors": [],
        "notes": [],
    }
    for lib in LIBRARIES:
        spec = {
            "lib": lib,
            "data": str(data_path),
            "init": str(init_path),
            "n_iter": n_iter,
            "n_jobs": n_jobs,
            "seed": seed,
        }
        t0 = time.perf_counter()
        result = run_worker(spec, timeout=timeout)
        print(
            f"#   n={n} {lib}: {time.perf_counter() - t0:.2f} s",
            file=sys.stderr,
            flush=True,
        )
        if "error" in result:
            case["errors"].append(f"{lib}: {result['error']}")
        elif (result["maxrss_headroom_before_fit_mib"] or 0.0) > HEADROOM_NOTE_MIB:
            case["notes"].append(
                f"{lib}: ru_maxrss was already "
                f"{result['maxrss_headroom_before_fit_mib']:.1f} MiB above the RSS "
                "before the fit; its growth may be underestimated by up to that"
            )
        if "error" not in result and result["n_iter"] != n_iter:
            case["errors"].append(
                f"{lib}: n_iter_ = {result['n_iter']}, expected {n_iter}"
            )
        case[lib] = result
    data_path.unlink()
    init_path.unlink()

    ours, sk = case["ours"], case["sklearn"]
    for key in ("tracemalloc_peak_mib", "maxrss_growth_mib"):
        a, b = ours.get(key), sk.get(key)
        case[f"{key}_ratio"] = b / a if a and b is not None else None
    lb_a, lb_b = ours.get("lower_bound"), sk.get("lower_bound")
    case["lower_bound_rel_diff"] = (
        bench_fit.relative_difference(lb_a, lb_b) if None not in (lb_a, lb_b) else None
    )
    return case


def markdown_table(cases):
    """Render the memory cases as a markdown table.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_size`.

    Returns
    -------
    table : str
        One row per size.
    """

    def f(value, spec=".1f"):
        return "—" if value is None else format(value, spec)

    def x(value):
        return "—" if value is None else f"{value:.1f}x"

    lines = [
        "| n | X MiB | tracemalloc peak ours | tracemalloc peak sklearn | sklearn/ours "
        "| maxrss growth ours | maxrss growth sklearn | lower bound rel diff |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in cases:
        ours, sk = c["ours"], c["sklearn"]
        lines.append(
            f"| {c['n']} | {f(c['x_mib'])} "
            f"| {f(ours.get('tracemalloc_peak_mib'), '.2f')} "
            f"| {f(sk.get('tracemalloc_peak_mib'), '.2f')} "
            f"| {x(c['tracemalloc_peak_mib_ratio'])} "
            f"| {f(ours.get('maxrss_growth_mib'))} "
            f"| {f(sk.get('maxrss_growth_mib'))} "
            f"| {f(c['lower_bound_rel_diff'], '.1e')} |"
        )
    return "\n".join(lines)


def _failures(cases, rtol):
    """Correctness failures: worker errors and lower-bound mismatches.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_size`.
    rtol : float
        Maximum allowed relative lower-bound difference.

    Returns
    -------
    failures : list of str
        Empty when every case passed.
    """
    out = []
    for c in cases:
        out.extend(f"n={c['n']}: {e}" for e in c["errors"])
        rel = c["lower_bound_rel_diff"]
        if rel is not None and not rel <= rtol:
            out.append(
                f"n={c['n']}: lower bounds differ by {rel:.3e} relative (> {rtol:.0e})"
            )
        elif rel is None and not c["errors"]:
            out.append(f"n={c['n']}: no lower bound to compare")
    return out


# Command-line sample size (argparse type).
_size = functools.partial(
    _common.parse_size, minimum=1_000, too_small="sizes must be integers >= 1000"
)


def build_parser():
    """Build the command-line parser.

    Returns
    -------
    parser : argparse.ArgumentParser
        Parser for :func:`main`.
    """
    p = argparse.ArgumentParser(
        description=(
            "Peak memory of GaussianMixture.fit ('full', fixed iterations, same "
            "init), sklearn_em vs scikit-learn, each fit in a fresh subprocess."
        )
    )
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="sizes 1e4 1e5 only")
    mode.add_argument("--full", action="store_true", help="also 1e7 rows")
    p.add_argument(
        "--sizes",
        type=_size,
        nargs="+",
        help="numbers of rows (default 1e4 1e5 1e6; --full adds 1e7; quick 1e4 1e5)",
    )
    p.add_argument("--n-iter", type=int, default=N_ITER, help="EM iterations (10)")
    p.add_argument("--n-jobs", type=int, help="n_jobs of ours (default None = all)")
    p.add_argument("--seed", type=int, default=0, help="data and init seed")
    p.add_argument("--rtol", type=float, default=1e-8, help="lower-bound gate")
    p.add_argument(
        "--timeout", type=float, help="seconds before a worker is killed (none)"
    )
    p.add_argument(
        "--output",
        type=Path,
        help="JSON path (default benchmarks/results/bench_memory[-quick].json)",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    return p


def main(argv=None) -> int:
    """Run the memory benchmark, print a table and write the JSON results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 if every worker succeeded and the lower bounds agree; 1 otherwise.
    """
    args = build_parser().parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0

    bench_fit = _bench_fit()
    sizes = args.sizes or (
        QUICK_SIZES
        if args.quick
        else FULL_SIZES + (FULL_EXTRA_SIZES if args.full else [])
    )
    output = args.output or RESULTS_DIR / (
        "bench_memory-quick.json" if args.quick else "bench_memory.json"
    )
    env = _common.environment_info(thread_pools=True)
    n_jobs_eff = bench_fit.effective_n_jobs(args.n_jobs)
    print(
        f"# bench_memory: sizes={sizes} covariance_type=full n_iter={args.n_iter} "
        f"n_jobs={args.n_jobs} (ours uses {n_jobs_eff} threads); one fresh "
        "subprocess per fit"
    )
    print(
        f"# {env['cpu_model']} ({env['cpu_count']} CPUs), {env['platform']}, "
        f"python {platform.python_version()}, numpy {env['numpy']}, "
        f"sklearn {env['sklearn']}, sklearn_em {env['sklearn_em']}"
    )
    t_start = time.perf_counter()
    cases = []
    with tempfile.TemporaryDirectory(prefix="bench_memory-") as tmpdir:
        for n in sizes:
            cases.append(
                run_size(
                    n, tmpdir, args.n_iter, args.seed, args.n_jobs, timeout=args.timeout
                )
            )
    elapsed = time.perf_counter() - t_start
    failures = _failures(cases, args.rtol)
    print()
    print(markdown_table(cases))
    print()
    print(
        "tracemalloc peak: memory allocated during fit() beyond X (tracing "
        "starts after X is loaded); maxrss growth: ru_maxrss after - before "
        "fit(); MiB"
    )

    result = {
        **_common.result_header("bench_memory", argv, elapsed),
        "settings": {
            "quick": args.quick,
            "full": args.full,
            "sizes": sizes,
            "covariance_type": "full",
            "n_components": 3,
            "n_iter": args.n_iter,
            "n_jobs": args.n_jobs,
            "n_jobs_effective": n_jobs_eff,
            "seed": args.seed,
            "rtol": args.rtol,
            "method": (
                "one fresh subprocess per fit; X loaded from .npy, warm-up fit "
                "on 1000 rows, then tracemalloc.start() and ru_maxrss before "
                "fit(X); tracemalloc peak and ru_maxrss after"
            ),
        },
        "environment": {**env, "loadavg_after": _common.loadavg()},
        "cases": cases,
        "failures": failures,
        "ok": not failures,
    }
    output = Path(output)
    _common.write_result(result, output, elapsed)
    for c in cases:
        for note in c["notes"]:
            print(f"NOTE: n={c['n']}: {note}", file=sys.stderr)
    if failures:
        _common.report_failures(failures)
        return 1
    print(f"OK: all {len(cases)} sizes agree (lower-bound rel diff <= {args.rtol:.0e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
