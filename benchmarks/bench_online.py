"""Stream a data set that is never held in memory through ``partial_fit``.

Batch ``i`` of ``--batch-size`` rows is ``make_three_gaussians(size,
random_state=seed + i)``, fed to one ``GaussianMixture.partial_fit`` and
dropped before the next is drawn. Reported: the stream's time; its peak
memory (tracemalloc in a second, traced pass, and ``ru_maxrss``) against one
batch and the whole data set; the errors against the true parameters of the
online model and of batch ``fit`` (``tol=1e-3`` and ``1e-6``), with held-out
log-likelihoods. The exit status is 1 if a step raises, if the two passes
differ, if ``n_iter_`` is not the number of batches, or if (from 4 batches
on) the tracemalloc peak is not below the size of the data set.

Examples
--------
::

    python benchmarks/bench_online.py           # 2e7 rows, batches of 1e5
    python benchmarks/bench_online.py --quick   # 2e5 rows, batches of 1e4
"""

from __future__ import annotations

import functools
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

from sklearn_em import GaussianMixture as OurGaussianMixture
from sklearn_em.datasets import make_three_gaussians, three_gaussians_params

DEFAULTS = {
    "n_rows": 20_000_000, "batch_size": 100_000, "holdout_size": 100_000,
    "batch_fit_size": 1_000_000, "learning_decay": None, "learning_offset": None,
    "threads": None,
}  # fmt: skip
QUICK = {"n_rows": 200_000, "batch_size": 10_000, "holdout_size": 10_000,
         "batch_fit_size": 100_000}  # fmt: skip
PARAMETERS = ("weights", "means", "covariances")
BYTES_PER_ROW = 2 * 8  # two float64 features


def batch_sizes(n_rows, batch_size):
    """Sizes of the batches; the last holds the remainder (0 or >= 3 rows)."""
    n_full, rest = divmod(n_rows, batch_size)
    if 0 < rest < 3:  # the generator draws a row of every component
        raise ValueError(f"{n_rows} rows leave a last batch of {rest} row(s)")
    return [batch_size] * n_full + ([rest] if rest else [])


def against_truth(model, truth):
    """Max abs errors against the true parameters, and the matched parameters."""
    order = h.match_components(model.means_, truth["means"])
    fitted = {k: getattr(model, k + "_")[order] for k in PARAMETERS}
    out = {
        f"max_abs_err_{k}": float(np.max(np.abs(fitted[k] - truth[k])))
        for k in PARAMETERS
    }
    return {**out, "params": {k: v.tolist() for k, v in fitted.items()}}


def true_log_likelihood(X, truth):
    """Mean log-likelihood of ``X`` under the true mixture."""
    parts = zip(*(truth[k] for k in PARAMETERS), strict=True)
    logs = [np.log(w) + multivariate_normal(m, c).logpdf(X) for w, m, c in parts]
    return float(logsumexp(np.column_stack(logs), axis=1).mean())


def online_model(cfg):
    """The streaming estimator, with the chosen learning-rate parameters."""
    rates = ("learning_decay", "learning_offset")
    extra = {k: cfg[k] for k in rates if cfg[k] is not None}
    return OurGaussianMixture(3, random_state=cfg["seed"], **extra)


def stream(cfg, truth=None, trace=False):
    """Draw the batches one at a time and feed them to ``partial_fit``.

    Returns the model, the times (``total_s``, ``generate_s``,
    ``partial_fit_s``), with ``truth`` the errors after 1, 2, 5, 10, 20, ...
    updates and the last, and with ``trace`` (tracing on) the tracemalloc
    peaks in MiB: ``stream`` above the start, and the largest of
    ``generate``, ``first_update`` (it initialises) and ``update``, each
    above the memory before it.
    """
    sizes = batch_sizes(cfg["n_rows"], cfg["batch_size"])
    marks = {m * 10**e for e in range(12) for m in (1, 2, 5)} | {len(sizes)}
    model, seed = online_model(cfg), cfg["seed"]
    clock = {"generate_s": 0.0, "partial_fit_s": 0.0}
    peaks = dict.fromkeys(("stream", "generate", "first_update", "update"), 0.0)
    start = tracemalloc.get_traced_memory()[0] if trace else 0

    def step(key, fn):
        if trace:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
        seconds, value = h.timed(fn)
        clock["generate_s" if key == "generate" else "partial_fit_s"] += seconds
        if trace:
            peak = tracemalloc.get_traced_memory()[1]
            peaks[key] = max(peaks[key], (peak - before) / h.MIB)
            peaks["stream"] = max(peaks["stream"], (peak - start) / h.MIB)
        return value

    trajectory, seen, t0 = [], 0, time.perf_counter()
    for i, size in enumerate(sizes):
        draw = functools.partial(make_three_gaussians, size, random_state=seed + i)
        X, _ = step("generate", draw)
        step("update" if i else "first_update", functools.partial(model.partial_fit, X))
        del X  # only one batch is ever alive
        seen += size
        if truth is not None and i + 1 in marks:
            errors = against_truth(model, truth)
            del errors["params"]
            trajectory.append({"n_updates": i + 1, "n_rows_seen": seen, **errors})
    clock["total_s"] = time.perf_counter() - t0
    return model, clock, trajectory, peaks


def reset_peak_rss():
    """Restart ``ru_maxrss`` from the current RSS (Linux >= 4.0); whether done."""
    try:
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


def measure(cfg):
    """The two passes, the batch fits and the held-out scores; the gate."""
    truth, seed, errors = three_gaussians_params(), cfg["seed"], []
    n_batches = len(batch_sizes(cfg["n_rows"], cfg["batch_size"]))
    # Lazy imports and caches must not count as memory of the stream.
    warm = online_model(cfg)
    for i in range(2):
        X, _ = make_three_gaussians(300, random_state=seed + i)
        warm.partial_fit(X)
    warm.score(X)

    h.progress(f"stream: {cfg['n_rows']} rows in {n_batches} batches (timed)")
    rss_reset = reset_peak_rss()
    rss_start, maxrss_start = h.rss_mib(), h.maxrss_mib()
    model, clock, trajectory, _ = stream(cfg, truth)
    maxrss_end = h.maxrss_mib()
    h.progress("stream: traced pass")
    tracemalloc.start()
    traced, traced_clock, _, peaks = stream(cfg, trace=True)
    tracemalloc.stop()
    same = all(
        np.array_equal(getattr(model, k + "_"), getattr(traced, k + "_"))
        for k in PARAMETERS
    )
    if not same:
        errors.append("the traced pass ended with other parameters than the timed one")
    if model.n_iter_ != n_batches:
        errors.append(f"n_iter_ = {model.n_iter_} after {n_batches} batches")

    # After the stream, so that they cannot raise its peak RSS.
    X_holdout, _ = make_three_gaussians(
        cfg["holdout_size"], random_state=seed + n_batches
    )
    h.progress(f"batch fits on {cfg['batch_fit_size']} rows")
    X_train, _ = make_three_gaussians(
        cfg["batch_fit_size"], random_state=seed + n_batches + 1
    )
    results = {
        "online": {
            **against_truth(model, truth),
            "rows_seen": cfg["n_rows"],
            "fit_s": clock["partial_fit_s"],
            "holdout_mean_log_likelihood": float(model.score(X_holdout)),
        }
    }
    # The default tol=1e-3 stops a few iterations after the k-means start.
    for key, params in (
        ("batch_fit", {}),
        ("batch_fit_tight", {"tol": 1e-6, "max_iter": 1000}),
    ):
        est = OurGaussianMixture(3, random_state=seed, **params)
        seconds, _ = h.timed(functools.partial(est.fit, X_train))
        results[key] = {
            **against_truth(est, truth),
            "rows_seen": cfg["batch_fit_size"],
            "fit_s": seconds,
            "tol": est.tol,
            "n_iter": int(est.n_iter_),
            "converged": bool(est.converged_),
            "holdout_mean_log_likelihood": float(est.score(X_holdout)),
        }
    tracemalloc.start()
    h.timed(functools.partial(OurGaussianMixture(3, random_state=seed).fit, X_train))
    batch_fit_peak = tracemalloc.get_traced_memory()[1] / h.MIB
    tracemalloc.stop()

    data_mib = cfg["n_rows"] * BYTES_PER_ROW / h.MIB
    batch_mib = cfg["batch_size"] * BYTES_PER_ROW / h.MIB
    peak = peaks["stream"]
    if n_batches >= 4 and not peak < data_mib:
        errors.append(
            f"tracemalloc peak {peak:.1f} MiB is not below the data set "
            f"({data_mib:.1f} MiB): the stream is not bounded by the batch"
        )
    results["stream"] = {
        "n_rows": cfg["n_rows"],
        "batch_size": cfg["batch_size"],
        "n_batches": n_batches,
        "n_updates": int(model.n_iter_),
        **clock,
        "rows_per_s": cfg["n_rows"] / clock["total_s"],
        "rows_per_s_partial_fit": cfg["n_rows"] / clock["partial_fit_s"],
        "traced_pass_total_s": traced_clock["total_s"],
        "deterministic": same,
        "learning_decay": model.learning_decay,
        "learning_offset": model.learning_offset,
    }
    results["memory"] = {
        "dataset_mib": data_mib,
        "batch_mib": batch_mib,
        "tracemalloc_peak_mib": peak,
        "tracemalloc_peak_generate_batch_mib": peaks["generate"],
        "tracemalloc_peak_first_update_mib": peaks["first_update"],
        "tracemalloc_peak_update_mib": peaks["update"],
        "ru_maxrss_reset": rss_reset,
        "rss_at_stream_start_mib": rss_start,
        "ru_maxrss_after_stream_mib": maxrss_end,
        # After a reset ru_maxrss restarted from the RSS; else compare with it.
        "ru_maxrss_increase_mib": (
            None
            if None in (maxrss_end, rss_start, maxrss_start)
            else maxrss_end - (maxrss_start if rss_reset else rss_start)
        ),
        "batch_fit_tracemalloc_peak_mib": batch_fit_peak,
        "batch_fit_data_mib": cfg["batch_fit_size"] * BYTES_PER_ROW / h.MIB,
    }
    results["truth"] = {k: truth[k].tolist() for k in PARAMETERS}
    results["truth"]["holdout_mean_log_likelihood"] = true_log_likelihood(
        X_holdout, truth
    )
    return {**results, "trajectory": trajectory, "failures": errors}


MEMORY_ROWS = {  # key -> label; absolute process sizes get no ratios
    "batch_mib": "one batch (X, float64)",
    "dataset_mib": "whole data set (never allocated)",
    "tracemalloc_peak_mib": "tracemalloc peak of the stream",
    "tracemalloc_peak_generate_batch_mib": "  drawing one batch (X, y, temporaries)",
    "tracemalloc_peak_first_update_mib": "  first partial_fit (k-means), beyond its X",
    "tracemalloc_peak_update_mib": "  a later partial_fit, beyond its X",
    "rss_at_stream_start_mib": "RSS at stream start",
    "ru_maxrss_after_stream_mib": "ru_maxrss after the stream",
    "ru_maxrss_increase_mib": "ru_maxrss increase over the stream",
    "batch_fit_data_mib": "for contrast: batch fit data",
    "batch_fit_tracemalloc_peak_mib": "for contrast: tracemalloc peak of that fit",
}


def report(res, cfg):
    """Stream, memory, accuracy and trajectory tables."""
    s, m = res["stream"], res["memory"]
    stream_rows = [
        ["rows, batch size", f"{s['n_rows']:,}, {s['batch_size']:,}"],
        ["updates (n_iter_)", f"{s['n_updates']:,}"],
        ["total s", f"{s['total_s']:.2f}"],
        ["  generating batches s", f"{s['generate_s']:.2f}"],
        ["  partial_fit s", f"{s['partial_fit_s']:.2f}"],
        ["rows/s (total)", f"{s['rows_per_s']:,.0f}"],
        ["rows/s (partial_fit only)", f"{s['rows_per_s_partial_fit']:,.0f}"],
        ["traced pass total s", f"{s['traced_pass_total_s']:.2f}"],
        ["both passes end identical", "yes" if s["deterministic"] else "NO"],
    ]
    memory = []
    reset = "reset at stream start" if m["ru_maxrss_reset"] else "process lifetime"
    for key, label in MEMORY_ROWS.items():
        label += f" ({reset})" if key == "ru_maxrss_after_stream_mib" else ""
        mib, absolute = m[key], key.startswith(("rss", "ru_maxrss_after"))
        shown = [h.ratio(mib, m[k]) for k in ("batch_mib", "dataset_mib")]
        shown = [None, None] if absolute else shown
        memory.append([label, h.fmt(mib, ".2f"), *map(h.fmt, shown, (".1f", ".4f"))])
    models = {"online partial_fit": res["online"]}
    for key in ("batch_fit", "batch_fit_tight"):
        models[f"batch fit (tol={res[key]['tol']:g})"] = res[key]
    accuracy = [
        [name, f"{r['rows_seen']:,}", h.fmt(r["fit_s"], ".2f")]
        + [h.fmt(r[f"max_abs_err_{k}"], ".2e") for k in PARAMETERS]
        + [h.fmt(r["holdout_mean_log_likelihood"], ".6f")]
        for name, r in models.items()
    ]
    ll = res["truth"]["holdout_mean_log_likelihood"]
    accuracy.append(["true parameters", "—", "—", "0", "0", "0", f"{ll:.6f}"])
    trajectory = [
        [t["n_updates"], f"{t['n_rows_seen']:,}"]
        + [h.fmt(t[f"max_abs_err_{k}"], ".2e") for k in PARAMETERS]
        for t in res["trajectory"]
    ]
    errs = ["weights err", "means err", "cov err"]
    return "\n\n".join(
        [
            "## Stream",
            h.table(["<stream", "value"], stream_rows),
            "## Peak memory of the stream",
            h.table(["<memory", "MiB", "x batch", "x data set"], memory),
            "## Accuracy against the true parameters",
            h.table(
                ["<model", "rows seen", "fit s", *errs, "held-out log-lik"], accuracy
            ),
            "## Online errors along the stream",
            h.table(["updates", "rows seen", *errs], trajectory),
        ]
    )


def main(argv=None):
    """Run the benchmark; return 0 when every check passes, else 1."""
    p = h.parser("Stream batches through sklearn_em.GaussianMixture.partial_fit.")
    for name in ("n-rows", "batch-size", "holdout-size", "batch-fit-size"):
        p.add_argument(f"--{name}", type=h.size)
    p.add_argument("--learning-decay", type=float, help="of partial_fit (0.7)")
    p.add_argument("--learning-offset", type=float, help="of partial_fit (10)")
    cfg = h.settings(p.parse_args(argv), DEFAULTS, QUICK)
    try:
        batch_sizes(cfg["n_rows"], cfg["batch_size"])
    except ValueError as exc:
        p.error(str(exc))
    output = h.default_output("bench_online", cfg)
    return h.run("bench_online", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
