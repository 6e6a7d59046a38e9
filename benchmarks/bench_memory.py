"""Peak memory of one ``fit``: sklearn_em against scikit-learn, fresh process each.

Three-Gaussian data, 'full', the same start, exactly ``--n-iter`` iterations:
given initial parameters, or with ``--default-init`` the default
``init_params='kmeans'`` from the same ``random_state`` (scikit-learn's
``KMeans`` copies ``X``; our compiled engine runs its own k-means, which does
not).
Every fit runs in a fresh process (this script with ``--worker``), so that no
library inherits the other's heap or high-water mark; it reports the
tracemalloc peak during ``fit`` (``X`` excluded: tracing starts after it is
loaded) and the growth of ``ru_maxrss``. The lower bounds must agree
(``--rtol``) and both fits run ``--n-iter`` iterations, else the exit status
is 1.

Examples
--------
::

    python benchmarks/bench_memory.py           # 1e4, 1e5, 1e6 rows
    python benchmarks/bench_memory.py --full    # also 1e7
    python benchmarks/bench_memory.py --quick   # 1e4, 1e5
    python benchmarks/bench_memory.py --default-init  # k-means start included
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from contextlib import nullcontext
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

from sklearn_em.datasets import make_three_gaussians

DEFAULTS = {
    "sizes": [10_000, 100_000, 1_000_000], "n_iter": 10, "n_jobs": None,
    "rtol": 1e-8, "timeout": None, "threads": None, "default_init": False,
}  # fmt: skip
QUICK = {"sizes": [10_000, 100_000]}
FULL = {"sizes": [*DEFAULTS["sizes"], 10_000_000]}
HEADROOM_NOTE_MIB = 2.0


def worker(spec):
    """Fit one library and measure its memory, in the fresh process.

    ``spec``: ``lib`` ("ours" or "sklearn"), ``data`` and ``init`` (paths),
    ``n_iter``, ``n_jobs``, ``threads``, ``seed``. Returns the MiB figures
    (tracemalloc peak and end, RSS and ru_maxrss before, ru_maxrss after,
    growth, headroom), ``n_iter``, ``lower_bound`` and ``fit_s_traced``.
    """
    import gc
    import tracemalloc

    from sklearn.mixture import GaussianMixture as SkGaussianMixture
    from threadpoolctl import threadpool_limits

    from sklearn_em import GaussianMixture as OurGaussianMixture

    ours = spec["lib"] == "ours"
    cls = OurGaussianMixture if ours else SkGaussianMixture
    extra = {"n_jobs": spec["n_jobs"]} if ours else {}
    X = np.load(spec["data"])
    with np.load(spec["init"]) as f:
        init = {k: f[k] for k in f.files}

    def fit(n_iter, rows):
        if spec.get("default_init"):
            est = cls(3, tol=0.0, max_iter=n_iter, random_state=spec["seed"], **extra)
        else:
            est = h.fixed_iterations(cls, init, "full", n_iter, spec["seed"], **extra)
        return h.timed(lambda: est.fit(rows))

    threads = spec["threads"]
    with threadpool_limits(threads) if threads else nullcontext():
        fit(2, X[:1_000])
        if ours:
            from sklearn_em import _engine

            # The kernel a large fit would load in the background, loaded now:
            # numba's import and code are a one-off per process, not the fit's.
            _engine.preload(X.dtype)
        gc.collect()
        rss, maxrss = h.rss_mib(), h.maxrss_mib()
        tracemalloc.start()
        seconds, est = fit(spec["n_iter"], X)
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        after = h.maxrss_mib()
    known = None not in (rss, maxrss, after)
    return {
        "tracemalloc_peak_mib": peak / h.MIB,
        "tracemalloc_end_mib": current / h.MIB,
        "rss_before_fit_mib": rss,
        "maxrss_before_fit_mib": maxrss,
        "maxrss_after_fit_mib": after,
        "maxrss_growth_mib": after - maxrss if known else None,
        # A high-water mark already above the RSS hides that much growth.
        "maxrss_headroom_before_fit_mib": max(0.0, maxrss - rss) if known else None,
        "n_iter": int(est.n_iter_),
        "lower_bound": float(est.lower_bound_),
        "fit_s_traced": seconds,
    }


def run_worker(spec, timeout=None):
    """Run :func:`worker` in a fresh process; ``{"error": ...}`` if it fails."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    if os.name == "posix" and Path("/bin/sh").exists():
        # Linux carries ru_maxrss across exec, and subprocess uses vfork: a
        # child of this large process would start at its high-water mark.
        # A shell that forks the worker gives it a clean one.
        cmd = ["/bin/sh", "-c", '"$0" "$@"; exit $?', *cmd]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"worker timed out after {timeout} s"}
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        tail = " | ".join(proc.stderr.strip().splitlines()[-5:])
        return {"error": f"worker exited with {proc.returncode}: {tail}"}
    return json.loads(lines[-1])


def measure(cfg):
    """Both libraries at every size, each fit in its own process."""
    cases, notes = [], []
    with tempfile.TemporaryDirectory(prefix="bench_memory-") as tmp:
        data, init = Path(tmp) / "X.npy", Path(tmp) / "init.npz"
        for n in cfg["sizes"]:
            X, _ = make_three_gaussians(n, random_state=cfg["seed"])
            np.save(data, X)
            np.savez(init, **h.same_start(X, "full", 3, cfg["seed"]))
            case = {"n": n, "x_mib": X.nbytes / h.MIB, "errors": []}
            del X
            for lib in ("ours", "sklearn"):
                keys = ("n_iter", "n_jobs", "threads", "seed", "default_init")
                spec = {k: cfg[k] for k in keys}
                spec.update(lib=lib, data=str(data), init=str(init))
                r = case[lib] = run_worker(spec, cfg["timeout"])
                h.progress(f"n={n} {lib}")
                if "error" in r:
                    case["errors"].append(f"{lib}: {r['error']}")
                    continue
                if r["n_iter"] != cfg["n_iter"]:
                    case["errors"].append(f"{lib}: n_iter_ = {r['n_iter']}")
                if (r["maxrss_headroom_before_fit_mib"] or 0.0) > HEADROOM_NOTE_MIB:
                    notes.append(
                        f"n={n} {lib}: ru_maxrss was already "
                        f"{r['maxrss_headroom_before_fit_mib']:.1f} MiB above the RSS "
                        "before the fit; its growth may be underestimated by that"
                    )
            ours, sk = case["ours"], case["sklearn"]
            for key in ("tracemalloc_peak_mib", "maxrss_growth_mib"):
                case[f"{key}_ratio"] = h.ratio(sk.get(key), ours.get(key))
            bounds = ours.get("lower_bound"), sk.get("lower_bound")
            rel = None if None in bounds else h.relative_difference(*bounds)
            case["lower_bound_rel_diff"] = rel
            if rel is not None and not rel <= cfg["rtol"]:
                case["errors"].append(f"lower bounds differ by {rel:.3e} relative")
            cases.append(case)
    failures = [f"n={c['n']}: {e}" for c in cases for e in c["errors"]]
    return {"cases": cases, "failures": failures, "notes": notes}


def report(results, cfg):
    """Markdown table, one row per size."""
    header = ["n", "X MiB", "tracemalloc peak ours", "tracemalloc peak sklearn"]
    header += ["sklearn/ours", "maxrss growth ours", "maxrss growth sklearn"]
    rows = []
    for c in results["cases"]:
        ours, sk = c["ours"], c["sklearn"]
        rows.append(
            [c["n"], h.fmt(c["x_mib"], ".1f")]
            + [h.fmt(r.get("tracemalloc_peak_mib"), ".2f") for r in (ours, sk)]
            + [h.fmt(c["tracemalloc_peak_mib_ratio"], "x")]
            + [h.fmt(r.get("maxrss_growth_mib"), ".1f") for r in (ours, sk)]
            + [h.fmt(c["lower_bound_rel_diff"], ".1e")]
        )
    return (
        h.table([*header, "lower bound rel diff"], rows)
        + "\n\nMiB; tracemalloc peak: allocated during fit() beyond X; maxrss "
        "growth: ru_maxrss after minus before fit()"
    )


def main(argv=None):
    """Run the benchmark (or, with ``--worker``, one fit); return the status."""
    p = h.parser(
        "Peak memory of GaussianMixture.fit, sklearn_em vs scikit-learn, "
        "each fit in a fresh process.",
        *("n_iter", "n_jobs", "rtol"),
        full="also 1e7 rows",
    )
    p.add_argument("--sizes", type=h.size, nargs="+", help="rows")
    p.add_argument("--timeout", type=float, help="seconds before a worker is killed")
    p.add_argument(
        "--default-init",
        action="store_true",
        default=None,
        help="fit from init_params='kmeans' (the default) instead of given values",
    )
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    cfg = h.settings(args, DEFAULTS, QUICK, FULL)
    name = "bench_memory-default_init" if cfg["default_init"] else "bench_memory"
    output = h.default_output(name, cfg)
    return h.run("bench_memory", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
