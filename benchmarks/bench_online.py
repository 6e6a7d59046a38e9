"""Stream a data set that is never held in memory through ``partial_fit``.

``--n-rows`` rows (default 2e7; ``--quick``: 2e5) of the three-Gaussian
mixture (2-D) are *generated in batches* of ``--batch-size`` rows (default
1e5; quick 1e4): batch ``i`` is ``make_three_gaussians(size,
random_state=seed + i)`` and is dropped before the next one is drawn, so at
most one batch is in memory. Each batch is fed to one
``sklearn_em.GaussianMixture(3, random_state=seed).partial_fit(batch)``
(stepwise online EM; ``learning_decay`` and ``learning_offset`` at their
defaults unless given). The whole data set, ``n_rows x 2`` float64, would
take 305 MiB at 2e7 rows.

Reported:

* time: total wall time of the stream, split into data generation and
  ``partial_fit``, rows per second, number of updates (``n_iter_``);
* peak memory of the stream, in MiB, next to the size of one batch and of
  the whole data set:

  - the :mod:`tracemalloc` peak (numpy reports its buffers to tracemalloc)
    above the traced memory at the start of the stream, measured in a
    second, identical pass (tracing slows Python down, so the timed pass
    is not traced; both passes must end with the same parameters);
  - ``ru_maxrss`` (:func:`resource.getrusage`) of the process after the
    timed pass, and its increase over its value at the start of the
    stream. On Linux the high-water mark is first reset by writing ``5``
    to ``/proc/self/clear_refs``, so it measures the stream only; where
    that is impossible it is the high-water mark of the whole process so
    far (the stream runs before anything else that is large) and the
    increase is taken over the resident set size at the stream's start;

* accuracy: max abs error of ``weights_``, ``means_`` and
  ``covariances_`` against the true parameters
  (:func:`sklearn_em.datasets.three_gaussians_params`; components matched
  with :func:`scipy.optimize.linear_sum_assignment` on the means) of the
  online model and of a batch ``fit`` (``GaussianMixture(3,
  random_state=seed)``) on ``--batch-fit-size`` rows (default 1e6; quick
  1e5), once with the default ``tol=1e-3`` and once with ``tol=1e-6``
  (the default stops EM a few iterations after the k-means start, visibly
  short of the maximum-likelihood fit), with the mean log-likelihood of
  these models, and of the true mixture, on a held-out batch of
  ``--holdout-size`` rows (default 1e5; quick 1e4). The held-out and
  batch-fit data use the seeds ``seed + n_batches`` and
  ``seed + n_batches + 1``, unused by the stream. The errors along the
  stream are recorded at a few checkpoints.

The script exits with status 1 if a step raises, if the two passes end with
different parameters, or if the tracemalloc peak is not below the size of
the whole data set (checked when the stream has at least 4 batches).

Examples
--------
Full run (2e7 rows in batches of 1e5)::

    python benchmarks/bench_online.py

Quick run (2e5 rows in batches of 1e4)::

    python benchmarks/bench_online.py --quick
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning

# Run as a script or imported from its file path (tests), so this directory
# is not necessarily on sys.path: put it there for the shared helpers, which
# also make sklearn_em importable from this checkout when it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

from sklearn_em import GaussianMixture as OurGaussianMixture
from sklearn_em.datasets import make_three_gaussians, three_gaussians_params

# Re-exported: the tests call it from this module.
match_components = _common.match_components

N_COMPONENTS = 3
N_FEATURES = 2
MIB = 2**20
RESULTS_DIR = Path(__file__).resolve().parent / "results"
FULL_DEFAULTS = {
    "n_rows": 20_000_000,
    "batch_size": 100_000,
    "holdout_size": 100_000,
    "batch_fit_size": 1_000_000,
}
QUICK_DEFAULTS = {
    "n_rows": 200_000,
    "batch_size": 10_000,
    "holdout_size": 10_000,
    "batch_fit_size": 100_000,
}
# A second batch fit runs EM to this tolerance: the default tol=1e-3 stops
# after a few iterations from k-means, well before the maximum-likelihood fit.
TIGHT_TOL, TIGHT_MAX_ITER = 1e-6, 1000
# The memory gate needs a stream of several batches to mean anything.
MIN_BATCHES_FOR_MEMORY_GATE = 4


# --------------------------------------------------------------------------
# Environment and memory probes
# --------------------------------------------------------------------------


def maxrss_mib():
    """Peak resident set size of this process, from ``getrusage``.

    Returns
    -------
    maxrss : float or None
        ``ru_maxrss`` in MiB (the kernel reports KiB on Linux, bytes on
        macOS); ``None`` where :mod:`resource` is unavailable.
    """
    try:
        import resource
    except ImportError:  # Windows
        return None
    value = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return value / MIB if sys.platform == "darwin" else value / 1024


def current_rss_mib():
    """Current resident set size of this process (Linux only).

    Returns
    -------
    rss : float or None
        Resident pages from ``/proc/self/statm`` in MiB, or ``None``.
    """
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            resident = int(f.read().split()[1])
        return resident * os.sysconf("SC_PAGE_SIZE") / MIB
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def reset_peak_rss():
    """Reset the kernel's peak-RSS mark of this process (Linux >= 4.0).

    Returns
    -------
    done : bool
        Whether ``5`` could be written to ``/proc/self/clear_refs``; after
        that ``ru_maxrss`` restarts from the current resident set size.
    """
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        return False
    return True


# --------------------------------------------------------------------------
# Parameters and errors
# --------------------------------------------------------------------------


def errors_vs_truth(model, truth):
    """Max abs errors of a fitted 'full' mixture against the true parameters.

    Parameters
    ----------
    model : GaussianMixture
        Fitted mixture with ``covariance_type='full'``.
    truth : dict
        Output of :func:`sklearn_em.datasets.three_gaussians_params`.

    Returns
    -------
    errors : dict
        ``max_abs_err_weights``, ``max_abs_err_means`` and
        ``max_abs_err_covariances`` after matching the components.
    """
    order = match_components(model.means_, truth["means"])
    return {
        "max_abs_err_weights": float(
            np.max(np.abs(model.weights_[order] - truth["weights"]))
        ),
        "max_abs_err_means": float(
            np.max(np.abs(model.means_[order] - truth["means"]))
        ),
        "max_abs_err_covariances": float(
            np.max(np.abs(model.covariances_[order] - truth["covariances"]))
        ),
    }


def matched_parameters(model, truth):
    """Fitted parameters reordered to match the true components.

    Parameters
    ----------
    model : GaussianMixture
        Fitted mixture with ``covariance_type='full'``.
    truth : dict
        Output of :func:`sklearn_em.datasets.three_gaussians_params`.

    Returns
    -------
    params : dict
        ``weights``, ``means`` and ``covariances`` as nested lists, in the
        order of the true components.
    """
    order = match_components(model.means_, truth["means"])
    return {
        "weights": model.weights_[order].tolist(),
        "means": model.means_[order].tolist(),
        "covariances": model.covariances_[order].tolist(),
    }


def true_mean_log_likelihood(X, truth):
    """Mean log-likelihood of ``X`` under the true mixture.

    Parameters
    ----------
    X : ndarray of shape (n_samples, 2)
        Rows.
    truth : dict
        Output of :func:`sklearn_em.datasets.three_gaussians_params`.

    Returns
    -------
    log_likelihood : float
        Mean over the rows of ``log sum_k w_k N(x | mu_k, Sigma_k)``.
    """
    log_dens = np.column_stack(
        [
            np.log(w) + multivariate_normal(mean=m, cov=c).logpdf(X)
            for w, m, c in zip(
                truth["weights"], truth["means"], truth["covariances"], strict=True
            )
        ]
    )
    return float(logsumexp(log_dens, axis=1).mean())


# --------------------------------------------------------------------------
# The stream
# --------------------------------------------------------------------------


def batch_sizes(n_rows, batch_size):
    """Sizes of the batches of a stream.

    Parameters
    ----------
    n_rows : int
        Rows in all.
    batch_size : int
        Rows per batch; the last batch holds the remainder.

    Returns
    -------
    sizes : list of int
        ``ceil(n_rows / batch_size)`` sizes summing to ``n_rows``.

    Raises
    ------
    ValueError
        If the last batch would hold fewer than 3 rows (the generator draws
        at least one row per component).
    """
    n_full, rest = divmod(n_rows, batch_size)
    if 0 < rest < 3:
        raise ValueError(
            f"n_rows={n_rows} leaves a last batch of {rest} row(s) with "
            f"batch_size={batch_size}; make it 0 or at least 3"
        )
    return [batch_size] * n_full + ([rest] if rest else [])


def _checkpoints(n_batches):
    """Update counts at which the errors along the stream are recorded.

    Parameters
    ----------
    n_batches : int
        Number of updates of the stream.

    Returns
    -------
    checkpoints : set of int
        1, 2, 5, 10, 20, 50, ... up to ``n_batches``, and ``n_batches``.
    """
    out = {n_batches}
    scale = 1
    while scale <= n_batches:
        out.update(m * scale for m in (1, 2, 5) if m * scale <= n_batches)
        scale *= 10
    return out


def new_online_model(cfg):
    """The online estimator of the stream.

    Parameters
    ----------
    cfg : dict
        Settings (``seed``, ``learning_decay``, ``learning_offset``).

    Returns
    -------
    model : GaussianMixture
        Unfitted ``GaussianMixture(3, random_state=seed)`` with the chosen
        learning-rate parameters.
    """
    extra = {
        k: cfg[k] for k in ("learning_decay", "learning_offset") if cfg[k] is not None
    }
    return OurGaussianMixture(N_COMPONENTS, random_state=cfg["seed"], **extra)


def run_stream(cfg, truth=None, trace=False):
    """Generate the batches and feed them to ``partial_fit``, one at a time.

    Parameters
    ----------
    cfg : dict
        Settings (``n_rows``, ``batch_size``, ``seed`` and the learning-rate
        parameters).
    truth : dict, optional
        True parameters; when given, the errors against them are recorded at
        the checkpoints of :func:`_checkpoints`.
    trace : bool, default=False
        Measure the :mod:`tracemalloc` peaks (tracing must be on); the peak
        is reset around every step, so the caller must not rely on it.

    Returns
    -------
    model : GaussianMixture
        The model after the last batch.
    timing : dict
        ``total_s`` (the whole loop), ``generate_s`` and ``partial_fit_s``.
    trajectory : list of dict
        ``n_updates``, ``n_rows_seen`` and the errors at each checkpoint
        (empty without ``truth``).
    peaks : dict
        With ``trace``, in MiB: ``stream`` (the peak of the whole loop above
        the traced memory at its start), ``generate`` (the largest peak of
        drawing one batch), ``first_update`` (the first ``partial_fit``,
        which also initialises the model) and ``update`` (the largest of the
        other updates); the last two above the traced memory just before
        the call, so without the batch itself. Empty without ``trace``.
    """
    sizes = batch_sizes(cfg["n_rows"], cfg["batch_size"])
    checkpoints = _checkpoints(len(sizes)) if truth is not None else set()
    model = new_online_model(cfg)
    generate_s = fit_s = 0.0
    trajectory = []
    peaks = {"stream": 0.0, "generate": 0.0, "first_update": 0.0, "update": 0.0}
    start = tracemalloc.get_traced_memory()[0] if trace else 0

    def phase_peak(before):
        # Peak of the step that just ran, above `before` and above `start`.
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        peaks["stream"] = max(peaks["stream"], (peak - start) / MIB)
        return (peak - before) / MIB

    seen = 0
    t_start = time.perf_counter()
    for i, size in enumerate(sizes):
        if trace:
            tracemalloc.reset_peak()
            before = tracemalloc.get_traced_memory()[0]
        t0 = time.perf_counter()
        X, _ = make_three_gaussians(size, random_state=cfg["seed"] + i)
        t1 = time.perf_counter()
        if trace:
            peaks["generate"] = max(peaks["generate"], phase_peak(before))
            before = tracemalloc.get_traced_memory()[0]
            t1 = time.perf_counter()
        model.partial_fit(X)
        t2 = time.perf_counter()
        if trace:
            key = "first_update" if i == 0 else "update"
            peaks[key] = max(peaks[key], phase_peak(before))
        del X  # only one batch is ever alive
        generate_s += t1 - t0
        fit_s += t2 - t1
        seen += size
        if i + 1 in checkpoints:
            trajectory.append(
                {
                    "n_updates": i + 1,
                    "n_rows_seen": seen,
                    **errors_vs_truth(model, truth),
                }
            )
    total_s = time.perf_counter() - t_start
    timing = {"total_s": total_s, "generate_s": generate_s, "partial_fit_s": fit_s}
    return model, timing, trajectory, (peaks if trace else {})


def warm_up(cfg):
    """Run ``partial_fit`` on two tiny batches with a throwaway model.

    Lazy imports and one-off caches are then paid for before any
    measurement, so that they do not count as memory of the stream.

    Parameters
    ----------
    cfg : dict
        Settings (``seed`` and the learning-rate parameters).
    """
    model = new_online_model(cfg)
    for i in range(2):
        X, _ = make_three_gaussians(300, random_state=cfg["seed"] + i)
        model.partial_fit(X)
    model.score(X)


def traced_peak_mib(fn, *args):
    """Run ``fn(*args)`` under :mod:`tracemalloc`; return its peak allocation.

    Parameters
    ----------
    fn : callable
        Function to run.
    *args
        Its arguments.

    Returns
    -------
    result : object
        What ``fn`` returns.
    peak : float
        Peak traced memory during the call above the traced memory at its
        start, in MiB. If tracing was already on, it is left on (its peak is
        reset first), else it is stopped afterwards.
    """
    was_tracing = tracemalloc.is_tracing()
    if was_tracing:
        tracemalloc.reset_peak()
    else:
        tracemalloc.start()
    try:
        start, _ = tracemalloc.get_traced_memory()
        result = fn(*args)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        if not was_tracing:
            tracemalloc.stop()
    return result, (peak - start) / MIB


def _difference(a, b):
    """``a - b``, or ``None`` if either is ``None``.

    Parameters
    ----------
    a, b : float or None
        Operands.

    Returns
    -------
    difference : float or None
        The difference.
    """
    return None if a is None or b is None else a - b


def _same_parameters(a, b):
    """Whether two fitted mixtures have bit-identical parameters.

    Parameters
    ----------
    a, b : GaussianMixture
        Fitted mixtures.

    Returns
    -------
    same : bool
        ``weights_``, ``means_`` and ``covariances_`` are exactly equal.
    """
    return all(
        np.array_equal(getattr(a, k), getattr(b, k))
        for k in ("weights_", "means_", "covariances_")
    )


def run_benchmark(cfg):
    """Run the streaming passes, the batch fit and the held-out scoring.

    Parameters
    ----------
    cfg : dict
        Settings from :func:`resolve_settings`.

    Returns
    -------
    results : dict
        ``stream`` (timing, updates, rows/s), ``memory`` (MiB figures),
        ``online``, ``batch_fit`` and ``batch_fit_tight`` (errors vs truth,
        fitted parameters, held-out log-likelihood), ``truth``,
        ``trajectory`` and ``errors``.
    """
    truth = three_gaussians_params()
    n_rows, batch_size, seed = cfg["n_rows"], cfg["batch_size"], cfg["seed"]
    sizes = batch_sizes(n_rows, batch_size)
    n_batches = len(sizes)
    bytes_per_row = N_FEATURES * np.dtype(np.float64).itemsize
    errors = []
    warm_up(cfg)

    # Pass 1, timed and untraced; peak RSS of the stream.
    _common.progress(f"stream: {n_rows} rows in {n_batches} batches (timed pass)")
    rss_reset = reset_peak_rss()
    rss_start = current_rss_mib()
    maxrss_start = maxrss_mib()
    model, timing, trajectory, _ = run_stream(cfg, truth)
    maxrss_end = maxrss_mib()

    # Pass 2, traced: the tracemalloc peak of the same stream.
    _common.progress("stream: traced pass (tracemalloc)")
    (model_traced, timing_traced, _, peaks), _ = traced_peak_mib(
        lambda: run_stream(cfg, trace=True)
    )
    traced_peak = peaks["stream"]
    deterministic = _same_parameters(model, model_traced)
    if not deterministic:
        errors.append("the traced pass ended with other parameters than the timed one")

    # Held-out data and the batch fit, after the stream (so they cannot
    # raise the process's peak RSS before it is read).
    X_holdout, _ = make_three_gaussians(
        cfg["holdout_size"], random_state=seed + n_batches
    )
    _common.progress(f"batch fit on {cfg['batch_fit_size']} rows")
    X_train, _ = make_three_gaussians(
        cfg["batch_fit_size"], random_state=seed + n_batches + 1
    )
    batch_models, batch_fit_s = {}, {}
    batch_params = {
        "batch_fit": {},
        "batch_fit_tight": {"tol": TIGHT_TOL, "max_iter": TIGHT_MAX_ITER},
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for key, params in batch_params.items():
            batch_models[key] = OurGaussianMixture(
                N_COMPONENTS, random_state=seed, **params
            )
            t0 = time.perf_counter()
            batch_models[key].fit(X_train)
            batch_fit_s[key] = time.perf_counter() - t0
        _, batch_fit_peak = traced_peak_mib(
            OurGaussianMixture(N_COMPONENTS, random_state=seed).fit,
            X_train,
        )
    del X_train

    data_mib = n_rows * bytes_per_row / MIB
    batch_mib = batch_size * bytes_per_row / MIB
    memory = {
        "dataset_mib": data_mib,
        "batch_mib": batch_mib,
        "tracemalloc_peak_mib": traced_peak,
        "tracemalloc_peak_in_batches": traced_peak / batch_mib,
        "tracemalloc_peak_fraction_of_dataset": traced_peak / data_mib,
        "tracemalloc_peak_below_dataset": traced_peak < data_mib,
        "tracemalloc_peak_generate_batch_mib": peaks["generate"],
        "tracemalloc_peak_first_update_mib": peaks["first_update"],
        "tracemalloc_peak_update_mib": peaks["update"],
        "ru_maxrss_reset": rss_reset,
        "rss_at_stream_start_mib": rss_start,
        "ru_maxrss_at_stream_start_mib": maxrss_start,
        "ru_maxrss_after_stream_mib": maxrss_end,
        # After a reset, ru_maxrss started from the RSS at the stream's start
        # (same source, same rounding); otherwise compare with the RSS.
        "ru_maxrss_increase_mib": _difference(
            maxrss_end, maxrss_start if rss_reset else rss_start
        ),
        "batch_fit_tracemalloc_peak_mib": batch_fit_peak,
        "batch_fit_data_mib": cfg["batch_fit_size"] * bytes_per_row / MIB,
    }
    if n_batches >= MIN_BATCHES_FOR_MEMORY_GATE and not traced_peak < data_mib:
        errors.append(
            f"tracemalloc peak {traced_peak:.1f} MiB is not below the data set "
            f"({data_mib:.1f} MiB): the stream is not bounded by the batch"
        )

    stream = {
        "n_rows": n_rows,
        "batch_size": batch_size,
        "n_batches": n_batches,
        "n_updates": int(model.n_iter_),
        **timing,
        "rows_per_s": n_rows / timing["total_s"],
        "rows_per_s_partial_fit": n_rows / timing["partial_fit_s"],
        "traced_pass_total_s": timing_traced["total_s"],
        "deterministic": deterministic,
        "learning_decay": model.learning_decay,
        "learning_offset": model.learning_offset,
    }
    if model.n_iter_ != n_batches:
        errors.append(f"n_iter_ = {model.n_iter_} after {n_batches} batches")
    online = {
        **errors_vs_truth(model, truth),
        "rows_seen": n_rows,
        "fit_s": timing["partial_fit_s"],
        "holdout_mean_log_likelihood": float(model.score(X_holdout)),
        "params": matched_parameters(model, truth),
    }
    batch = {
        key: {
            **errors_vs_truth(m, truth),
            "rows_seen": cfg["batch_fit_size"],
            "fit_s": batch_fit_s[key],
            "tol": m.tol,
            "n_iter": int(m.n_iter_),
            "converged": bool(m.converged_),
            "holdout_mean_log_likelihood": float(m.score(X_holdout)),
            "params": matched_parameters(m, truth),
        }
        for key, m in batch_models.items()
    }
    return {
        "stream": stream,
        "memory": memory,
        "online": online,
        **batch,
        "truth": {
            "weights": truth["weights"].tolist(),
            "means": truth["means"].tolist(),
            "covariances": truth["covariances"].tolist(),
            "holdout_mean_log_likelihood": true_mean_log_likelihood(X_holdout, truth),
        },
        "trajectory": trajectory,
        "errors": errors,
    }


# --------------------------------------------------------------------------
# Reporting
# --------------------------------------------------------------------------


def stream_table(res):
    """Table of the stream's size, time and throughput.

    Parameters
    ----------
    res : dict
        Output of :func:`run_benchmark`.

    Returns
    -------
    table : str
        Markdown table.
    """
    s = res["stream"]
    rows = [
        ["rows", f"{s['n_rows']:,}"],
        ["batch size", f"{s['batch_size']:,}"],
        ["updates (n_iter_)", f"{s['n_updates']:,}"],
        ["total time (s)", f"{s['total_s']:.2f}"],
        ["  generating batches (s)", f"{s['generate_s']:.2f}"],
        ["  partial_fit (s)", f"{s['partial_fit_s']:.2f}"],
        ["rows/s (total)", f"{s['rows_per_s']:,.0f}"],
        ["rows/s (partial_fit only)", f"{s['rows_per_s_partial_fit']:,.0f}"],
        ["traced pass total time (s)", f"{s['traced_pass_total_s']:.2f}"],
        ["both passes end identical", "yes" if s["deterministic"] else "NO"],
    ]
    return _common.table(["<stream", "value"], rows)


def memory_table(res):
    """Table of the peak memory of the stream against batch and data sizes.

    Parameters
    ----------
    res : dict
        Output of :func:`run_benchmark`.

    Returns
    -------
    table : str
        Markdown table.
    """
    m = res["memory"]
    batch, data = m["batch_mib"], m["dataset_mib"]

    def row(name, mib, ratios=True):
        if mib is None:
            return [name, "—", "—", "—"]
        if not ratios:  # absolute process sizes: ratios would mislead
            return [name, f"{mib:.2f}", "—", "—"]
        return [name, f"{mib:.2f}", f"{mib / batch:.1f}", f"{mib / data:.4f}"]

    reset = "reset at stream start" if m["ru_maxrss_reset"] else "process lifetime"
    rows = [
        row("one batch (X, float64)", batch),
        row("whole data set (X, float64; never allocated)", data),
        row("tracemalloc peak of the stream", m["tracemalloc_peak_mib"]),
        row(
            "  peak while drawing one batch (X, y, temporaries)",
            m["tracemalloc_peak_generate_batch_mib"],
        ),
        row(
            "  peak of the first partial_fit (k-means init), beyond its X",
            m["tracemalloc_peak_first_update_mib"],
        ),
        row(
            "  peak of a later partial_fit, beyond its X",
            m["tracemalloc_peak_update_mib"],
        ),
        row("RSS at stream start", m["rss_at_stream_start_mib"], ratios=False),
        row(
            f"ru_maxrss after the stream ({reset})",
            m["ru_maxrss_after_stream_mib"],
            ratios=False,
        ),
        row("ru_maxrss increase over the stream's start", m["ru_maxrss_increase_mib"]),
        row(
            f"for contrast: batch fit data ({res['batch_fit']['rows_seen']:,} rows)",
            m["batch_fit_data_mib"],
        ),
        row(
            "for contrast: tracemalloc peak of that fit",
            m["batch_fit_tracemalloc_peak_mib"],
        ),
    ]
    return _common.table(["<memory", "MiB", "x batch", "x data set"], rows)


def accuracy_table(res):
    """Table of errors against the truth and held-out log-likelihoods.

    Parameters
    ----------
    res : dict
        Output of :func:`run_benchmark`.

    Returns
    -------
    table : str
        Markdown table.
    """
    rows = []
    models = (
        ("online partial_fit", "online"),
        (f"batch fit (tol={res['batch_fit']['tol']:g})", "batch_fit"),
        (f"batch fit (tol={res['batch_fit_tight']['tol']:g})", "batch_fit_tight"),
    )
    for name, key in models:
        r = res[key]
        rows.append(
            [
                name,
                f"{r['rows_seen']:,}",
                _common.fmt(r["fit_s"], ".2f"),
                _common.fmt(r["max_abs_err_weights"], ".2e"),
                _common.fmt(r["max_abs_err_means"], ".2e"),
                _common.fmt(r["max_abs_err_covariances"], ".2e"),
                _common.fmt(r["holdout_mean_log_likelihood"], ".6f"),
            ]
        )
    ll = res["truth"]["holdout_mean_log_likelihood"]
    rows.append(["true parameters", "—", "—", "0", "0", "0", f"{ll:.6f}"])
    header = [
        "<model", "rows seen", "fit s", "weights err", "means err", "cov err",
        "held-out mean log-lik",
    ]  # fmt: skip
    return _common.table(header, rows)


def trajectory_table(res):
    """Table of the online model's errors along the stream.

    Parameters
    ----------
    res : dict
        Output of :func:`run_benchmark`.

    Returns
    -------
    table : str
        Markdown table.
    """
    rows = [
        [
            t["n_updates"],
            f"{t['n_rows_seen']:,}",
            f"{t['max_abs_err_weights']:.2e}",
            f"{t['max_abs_err_means']:.2e}",
            f"{t['max_abs_err_covariances']:.2e}",
        ]
        for t in res["trajectory"]
    ]
    header = ["updates", "rows seen", "weights err", "means err", "cov err"]
    return _common.table(header, rows)


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


# Command-line sample size (argparse type).
_size = functools.partial(
    _common.parse_size,
    minimum=3,
    noun="row count",
    too_small="not a valid row count (>= 3)",
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
            "Stream batches of the three-Gaussian mixture through "
            "sklearn_em.GaussianMixture.partial_fit: time, peak memory, accuracy."
        )
    )
    p.add_argument(
        "--quick", action="store_true", help="2e5 rows in batches of 1e4 (see below)"
    )
    p.add_argument(
        "--n-rows", type=_size, help="rows streamed (default 2e7; quick 2e5)"
    )
    p.add_argument("--batch-size", type=_size, help="rows per batch (1e5; quick 1e4)")
    p.add_argument(
        "--holdout-size", type=_size, help="held-out rows (default 1e5; quick 1e4)"
    )
    p.add_argument(
        "--batch-fit-size",
        type=_size,
        help="rows of the batch fit compared with (default 1e6; quick 1e5)",
    )
    p.add_argument(
        "--learning-decay", type=float, help="partial_fit learning_decay (default 0.7)"
    )
    p.add_argument(
        "--learning-offset", type=float, help="partial_fit learning_offset (default 10)"
    )
    p.add_argument("--seed", type=int, default=0, help="data and model seed (>= 0)")
    p.add_argument(
        "--output",
        type=Path,
        help="JSON path (default benchmarks/results/bench_online[-quick].json)",
    )
    return p


def resolve_settings(args):
    """Turn parsed arguments into the settings of the run.

    Parameters
    ----------
    args : argparse.Namespace
        Output of :func:`build_parser`.

    Returns
    -------
    cfg : dict
        Row counts, batch size, learning-rate parameters (``None`` = the
        estimator's default), seed and the output path.
    """
    d = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    output = args.output or RESULTS_DIR / (
        "bench_online" + ("-quick" if args.quick else "") + ".json"
    )
    cfg = {
        "quick": args.quick,
        "n_rows": args.n_rows or d["n_rows"],
        "batch_size": args.batch_size or d["batch_size"],
        "holdout_size": args.holdout_size or d["holdout_size"],
        "batch_fit_size": args.batch_fit_size or d["batch_fit_size"],
        "learning_decay": args.learning_decay,
        "learning_offset": args.learning_offset,
        "seed": args.seed,
        "output": Path(output),
    }
    batch_sizes(cfg["n_rows"], cfg["batch_size"])  # validates the split
    return cfg


def main(argv=None) -> int:
    """Run the benchmark, print markdown tables and write the JSON results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 if every step ran, both passes agree and the stream's tracemalloc
        peak is below the data set's size; 1 otherwise.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    try:
        cfg = resolve_settings(args)
    except ValueError as exc:
        parser.error(str(exc))
    env = _common.environment_info()
    print(
        f"# bench_online: n_rows={cfg['n_rows']} batch_size={cfg['batch_size']} "
        f"holdout_size={cfg['holdout_size']} batch_fit_size={cfg['batch_fit_size']} "
        f"seed={cfg['seed']}"
    )
    print(_common.environment_line(env))
    t_start = time.perf_counter()
    try:
        res = run_benchmark(cfg)
    except Exception as exc:  # still write what we know
        res = {"errors": [f"{type(exc).__name__}: {exc}"]}
    elapsed = time.perf_counter() - t_start
    env["loadavg_after"] = _common.loadavg()

    if "stream" in res:
        print()
        print("## Stream\n")
        print(stream_table(res))
        print()
        print("## Peak memory of the stream\n")
        print(memory_table(res))
        print()
        print("## Accuracy against the true parameters\n")
        print(accuracy_table(res))
        print()
        print("## Online errors along the stream\n")
        print(trajectory_table(res))
        print()

    failures = res["errors"]
    settings = {k: v for k, v in cfg.items() if k != "output"}
    settings["n_batches"] = math.ceil(cfg["n_rows"] / cfg["batch_size"])
    settings["data"] = (
        "batch i = make_three_gaussians(size, random_state=seed + i); held-out: "
        "seed + n_batches; batch fit: seed + n_batches + 1"
    )
    result = {
        **_common.result_header("bench_online", argv, elapsed),
        "settings": settings,
        "environment": env,
        **{k: v for k, v in res.items() if k != "errors"},
        "failures": failures,
        "ok": not failures,
    }
    output = cfg["output"]
    _common.write_result(result, output, elapsed)
    _common.warn_if_busy(env)
    if failures:
        _common.report_failures(failures)
        return 1
    m = res["memory"]
    print(
        f"OK: {cfg['n_rows']:,} rows streamed; tracemalloc peak "
        f"{m['tracemalloc_peak_mib']:.1f} MiB = {m['tracemalloc_peak_in_batches']:.1f} "
        f"batches, {m['tracemalloc_peak_fraction_of_dataset']:.2%} of the "
        f"{m['dataset_mib']:.0f} MiB data set"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
