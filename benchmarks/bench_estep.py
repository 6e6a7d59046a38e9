"""One E-step of ``sklearn_em`` on complete data and on data with NaN.

The seam's own measure of the missing-value kernel: the time of one
statistics pass (``TrainingData.stats`` on a source built once, as in a fit)
and the peak traced memory beyond ``X`` of building a source and making one
pass (so its buffers count), on the same rows without and with missing
values. Cases:

* 200k x 16, full, one NaN per row (16 frequent patterns);
* 1e6 x 2, full, 10 % of the values NaN (19 % of the rows incomplete);
* 1e4 x 16, full, 30 % of the values NaN (nearly every row its own pattern).

Ratios NaN / complete come from medians of interleaved repeats in one run,
on one thread. Speed is not gated; the exit status is 1 only if a pass fails.

Examples
--------
::

    python benchmarks/bench_estep.py           # the three cases
    python benchmarks/bench_estep.py --quick   # the same shapes, 1/10 rows
"""

from __future__ import annotations

import sys
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

from sklearn_em import GaussianMixture
from sklearn_em._data import TrainingData
from sklearn_em._threads import single_threaded_blas

CASES = [  # label, rows, features, kind of missingness, fraction
    ("one NaN per row", 200_000, 16, "one", 0.0),
    ("10% NaN", 1_000_000, 2, "random", 0.1),
    ("30% NaN, many patterns", 10_000, 16, "random", 0.3),
]
DEFAULTS = {"repeats": 7, "threads": 1, "scale": 1.0, "n_components": 3}
QUICK = {"repeats": 3, "scale": 0.1}


def rows(n, d, kind, fraction, seed):
    """Three shifted Gaussian clusters, and the same rows with NaN."""
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d) + 3.0 * rng.randint(0, 3, n)[:, None]
    X_nan = X.copy()
    if kind == "one":
        X_nan[np.arange(n), rng.randint(0, d, n)] = np.nan
    else:
        mask = rng.rand(n, d) < fraction
        mask[mask.all(axis=1), 0] = False  # keep a value in every row
        X_nan[mask] = np.nan
    return X, X_nan


def one_pass(X, model):
    """One statistics pass with a fresh source: (seconds, peak MiB)."""
    tracemalloc.start()
    seconds, _ = h.timed(lambda: source(X, model).stats(model))
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return seconds, peak


def source(X, model):
    return TrainingData(X, None, model.covariance, model.n_components, n_jobs=1)


def measure(cfg):
    cases, failures = [], []
    for label, n, d, kind, fraction in CASES:
        n = max(1000, int(n * cfg["scale"]))
        h.progress(f"{label}: {n} x {d}")
        X, X_nan = rows(n, d, kind, fraction, cfg["seed"])
        start = GaussianMixture(
            cfg["n_components"], max_iter=2, random_state=cfg["seed"]
        ).fit(X[:5000])
        model = start._fitted_model()
        with single_threaded_blas():
            # Timed: the pass alone, on sources built once (as in a fit).
            sources = {"complete": source(X, model), "nan": source(X_nan, model)}
            calls = {
                name: lambda s=data, m=model: s.stats(m)
                for name, data in sources.items()
            }
            times, _, errors = h.interleaved(calls, cfg["repeats"])
            peaks = {name: one_pass(data, model)[1] for name, data in
                     (("complete", X), ("nan", X_nan))}  # fmt: skip
        failures += [f"{label}: {e}" for e in errors]
        medians = {name: h.median(t) for name, t in times.items()}
        cases.append(
            {
                "case": label,
                "n": n,
                "d": d,
                "incomplete_rows": float(np.isnan(X_nan).any(axis=1).mean()),
                "median_s": medians,
                "time_ratio": h.ratio(medians["nan"], medians["complete"]),
                "peak_mib": peaks,
                "peak_ratio": h.ratio(peaks["nan"], peaks["complete"]),
                "x_mib": X.nbytes / 2**20,
            }
        )
    return {"cases": cases, "failures": failures}


HEADER = [
    "<case", "rows x d", "incomplete rows", "complete ms", "NaN ms", "ratio",
    "complete peak MiB", "NaN peak MiB", "ratio", "X MiB",
]  # fmt: skip


def report(results, cfg):
    body = [
        [
            c["case"],
            f"{c['n']:.0e} x {c['d']}",
            f"{c['incomplete_rows']:.0%}",
            h.fmt(1e3 * c["median_s"]["complete"], ".1f"),
            h.fmt(1e3 * c["median_s"]["nan"], ".1f"),
            h.fmt(c["time_ratio"], ".2f"),
            h.fmt(c["peak_mib"]["complete"], ".2f"),
            h.fmt(c["peak_mib"]["nan"], ".2f"),
            h.fmt(c["peak_ratio"], ".2f"),
            h.fmt(c["x_mib"], ".1f"),
        ]
        for c in results["cases"]
    ]
    return (
        "## One E-step (statistics pass), full covariance, k = "
        f"{cfg['n_components']}\n\nMedian of {cfg['repeats']} interleaved "
        "repeats of the pass; peak traced memory of a fresh source and one pass.\n\n"
        + h.table(HEADER, body)
    )


def main(argv=None):
    """Run the benchmark; return 0 unless a pass fails."""
    p = h.parser("One E-step on complete data and on data with NaN.", "repeats")
    p.add_argument("--scale", type=float, help="fraction of each case's rows")
    cfg = h.settings(p.parse_args(argv), DEFAULTS, QUICK)
    output = h.default_output("bench_estep", cfg)
    return h.run("bench_estep", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
