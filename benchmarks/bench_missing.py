"""Benchmark ``sklearn_em.GaussianMixture`` on data with missing values (NaN).

The three-Gaussian data set (2-D) at n = 1e4, 1e5, 1e6 rows (``--quick``:
1e3, 1e4) is fitted by ours, for every covariance type, once complete and
once with a fraction (10 % and 30 % by default) of its values set to NaN.
The missing cells are drawn uniformly at random among the cells that keep
at least one observed value in every row (so no row is entirely missing);
their number is exactly ``round(fraction * n * d)``.

Speed
    Two calls are timed, median over ``--repeats`` (5; quick 2) with the
    data variants interleaved (rotating order) in every repeat:

    * *fixed iterations*: ``tol=0, max_iter=N`` (20; quick 10) from the same
      initial parameters for the complete and the NaN data (the parameters
      of the accuracy reference below; the cost of an iteration does not
      depend on them); the figure is seconds per EM iteration,
      fit time divided by ``n_iter_``;
    * *default fit*: ``GaussianMixture(3, covariance_type=...,
      random_state=seed).fit(X)``, i.e. k-means initialisation (on the
      column-mean imputed data for the NaN variant), EM to convergence and
      the final E-step; the figure is the total fit time (and ``n_iter_``).

    The ratios NaN / complete of both figures are reported.
Accuracy
    The reference is ours' fit of the *complete* data, from the k-means start
    of a default fit (``random_state=seed``; obtained with ``max_iter=0``)
    run to a tight tolerance (``--accuracy-tol``, default 1e-6; the default
    ``tol=1e-3`` stops EM on the flat likelihood ridges of the misspecified
    'diag'/'spherical' models up to ~0.3 away from the optimum, more than
    the differences measured here). Against it, the max abs error of
    ``weights_``, ``means_`` and ``covariances_`` is reported for (a) ours'
    fit of the NaN data (exact EM on the observed coordinates) and (b)
    column-mean imputation of the NaN data followed by
    ``sklearn.mixture.GaussianMixture``, both from the same start with the
    same tolerance, so that only the treatment of the missing values
    differs. Fully default fits of (a) and (b) (their own k-means start on
    the imputed data, ``tol=1e-3``) are reported too (``*_default``), not
    gated: from another start a misspecified model can reach another local
    optimum. Components are matched to the reference with
    :func:`scipy.optimize.linear_sum_assignment` on the squared distances
    between means ('tied' covariances are shared and not permuted).

The script exits with status 1 if a fit raises or if, in some case, ours on
the NaN data is not closer to the reference than the imputation (in both
means and covariances, same start). Speed is reported, never asserted.

Examples
--------
Full run (1e4, 1e5, 1e6 rows)::

    python benchmarks/bench_missing.py

Quick run (1e3, 1e4 rows, 2 repeats)::

    python benchmarks/bench_missing.py --quick
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
from pathlib import Path

import numpy as np
import scipy
import sklearn
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

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

FULL_DEFAULTS = {
    "sizes": [10_000, 100_000, 1_000_000],
    "repeats": 5,
    "n_iter": 20,
}
QUICK_DEFAULTS = {
    "sizes": [1_000, 10_000],
    "repeats": 2,
    "n_iter": 10,
}
DEFAULT_FRACTIONS = (0.1, 0.3)


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


def environment_info():
    """Collect machine and library information.

    Returns
    -------
    info : dict
        JSON-serialisable description of the platform, CPU, library versions
        and the load average before the run.
    """
    import sklearn_em

    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.replace("\n", " "),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "sklearn": sklearn.__version__,
        "sklearn_em": getattr(sklearn_em, "__version__", None),
        "loadavg_before": _loadavg(),
    }


# --------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------


def missing_mask(shape, fraction, random_state=0):
    """Draw a mask of missing cells that never covers a whole row.

    Every row gets one *protected* column, drawn at random, that stays
    observed; exactly ``round(fraction * n * d)`` cells are then drawn
    uniformly without replacement among the other ``n * (d - 1)`` cells.

    Parameters
    ----------
    shape : tuple of int
        ``(n_samples, n_features)`` of the data.
    fraction : float
        Fraction of all ``n * d`` values to mark missing, in
        ``[0, (d - 1) / d]``.
    random_state : int or sequence of int, default=0
        Seed of :func:`numpy.random.default_rng`.

    Returns
    -------
    mask : ndarray of shape ``shape``, dtype bool
        ``True`` where the value is to be set to NaN.

    Raises
    ------
    ValueError
        If ``fraction`` is out of range, in particular if the data has a
        single feature (a missing value would be a missing row).
    """
    n, d = shape
    n_missing = round(fraction * n * d)
    if not 0 <= n_missing <= n * (d - 1):
        raise ValueError(
            f"cannot mark {fraction:g} of the values of a {n} x {d} array missing "
            "without emptying a row"
        )
    rng = np.random.default_rng(random_state)
    allowed = np.ones((n, d), dtype=bool)
    allowed[np.arange(n), rng.integers(d, size=n)] = False
    chosen = rng.choice(np.flatnonzero(allowed), size=n_missing, replace=False)
    mask = np.zeros((n, d), dtype=bool)
    mask.flat[chosen] = True
    return mask


def _mask_seed(seed, fraction):
    """Seed of the missing-value mask for one fraction.

    Parameters
    ----------
    seed : int
        The run's ``--seed``.
    fraction : float
        Missing fraction.

    Returns
    -------
    seed : list of int
        Entropy for :func:`numpy.random.default_rng`: the same data and
        fraction always give the same mask.
    """
    return [seed, round(fraction * 1_000_000)]


def mean_impute(X):
    """Replace every NaN by the mean of the observed values of its column.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data with NaN.

    Returns
    -------
    X_imputed : ndarray of shape (n_samples, n_features)
        A copy without NaN.
    """
    return np.where(np.isnan(X), np.nanmean(X, axis=0), X)


# --------------------------------------------------------------------------
# Fits and errors
# --------------------------------------------------------------------------


def _timed_fit(estimator, X, notes):
    """Fit ``estimator`` on ``X`` and time the call.

    Parameters
    ----------
    estimator : estimator
        Unfitted Gaussian mixture (ours or scikit-learn's).
    X : ndarray of shape (n_samples, n_features)
        Data.
    notes : list of str
        Warnings other than ``ConvergenceWarning`` raised by the fit are
        appended here (as ``"Category: message"``).

    Returns
    -------
    estimator : estimator
        The fitted estimator.
    seconds : float
        Wall time of ``fit`` (:func:`time.perf_counter`).
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        estimator.fit(X)
        seconds = time.perf_counter() - t0
    # Fixed-iteration fits (tol=0) never "converge": ConvergenceWarning is noise.
    notes += [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if not issubclass(w.category, ConvergenceWarning)
    ]
    return estimator, seconds


def match_components(means, reference_means):
    """Permutation of components that best matches a reference.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)
        Means to reorder.
    reference_means : ndarray of shape (n_components, n_features)
        Reference means.

    Returns
    -------
    order : ndarray of shape (n_components,)
        ``means[order]`` is matched row by row with ``reference_means``
        (minimum total squared distance,
        :func:`scipy.optimize.linear_sum_assignment`).
    """
    cost = ((reference_means[:, None, :] - means[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


def parameter_errors(model, reference, covariance_type):
    """Max abs errors of a fitted mixture against a reference fit.

    Parameters
    ----------
    model : estimator
        Fitted mixture with ``weights_``, ``means_`` and ``covariances_``.
    reference : estimator
        Fitted reference mixture, same ``covariance_type``.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance type ('tied' covariances are not permuted).

    Returns
    -------
    errors : dict
        ``max_abs_err_weights``, ``max_abs_err_means`` and
        ``max_abs_err_covariances`` after matching the components.
    """
    order = match_components(model.means_, reference.means_)
    cov = model.covariances_ if covariance_type == "tied" else model.covariances_[order]
    return {
        "max_abs_err_weights": float(
            np.max(np.abs(model.weights_[order] - reference.weights_))
        ),
        "max_abs_err_means": float(
            np.max(np.abs(model.means_[order] - reference.means_))
        ),
        "max_abs_err_covariances": float(np.max(np.abs(cov - reference.covariances_))),
    }


def _median(values):
    """Median of a list, or ``None`` if it is empty.

    Parameters
    ----------
    values : list of float
        Values.

    Returns
    -------
    median : float or None
        :func:`statistics.median` of ``values``.
    """
    return statistics.median(values) if values else None


def _ratio(num, den):
    """``num / den``, or ``None`` if either is missing or ``den`` is 0.

    Parameters
    ----------
    num, den : float or None
        Numerator and denominator.

    Returns
    -------
    ratio : float or None
        The quotient.
    """
    if num is None or den is None or den == 0:
        return None
    return num / den


def _fit_summary(model, reference, covariance_type, seconds):
    """Errors against the reference and convergence facts of one fit.

    Parameters
    ----------
    model : estimator
        Fitted mixture.
    reference : estimator
        Fitted reference mixture.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance type.
    seconds : float
        Fit time.

    Returns
    -------
    summary : dict
        :func:`parameter_errors` plus ``fit_s``, ``n_iter``, ``converged``
        and ``lower_bound``.
    """
    return {
        **parameter_errors(model, reference, covariance_type),
        "fit_s": seconds,
        "n_iter": int(model.n_iter_),
        "converged": bool(model.converged_),
        "lower_bound": float(model.lower_bound_),
    }


def run_size_covariance(n, covariance_type, cfg):
    """Time and compare the fits of one size and covariance type.

    Parameters
    ----------
    n : int
        Number of rows of the three-Gaussian data.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Covariance type.
    cfg : dict
        Settings from :func:`resolve_settings` (``fractions``, ``repeats``,
        ``n_iter``, ``accuracy_tol``, ``accuracy_max_iter``, ``seed``).

    Returns
    -------
    cases : list of dict
        One case per missing fraction. Each holds ``n``,
        ``covariance_type``, ``missing_fraction``, the actual number of
        missing values and of rows with a missing value, ``complete`` and
        ``nan`` (timings of ours; ``complete`` is measured once per size and
        covariance type and shared by the fractions), the ratios NaN /
        complete, ``accuracy`` (errors against the reference of
        ``ours_nan`` and ``impute_sklearn``, both from the reference's
        start with ``tol=accuracy_tol``, and of ``ours_nan_default`` and
        ``impute_sklearn_default``, fully default fits), whether ours is
        more accurate (same start; means and covariances), ``errors``
        (exceptions raised) and ``notes`` (warnings other than
        ``ConvergenceWarning``).
    """
    seed, repeats, n_iter = cfg["seed"], cfg["repeats"], cfg["n_iter"]
    X, _ = make_three_gaussians(n, random_state=seed)
    variants = {"complete": X}
    masks = {}
    for fraction in cfg["fractions"]:
        mask = missing_mask(X.shape, fraction, _mask_seed(seed, fraction))
        X_nan = X.copy()
        X_nan[mask] = np.nan
        masks[fraction] = mask
        variants[fraction] = X_nan
    common = {"covariance_type": covariance_type, "random_state": seed}
    notes = []

    # The k-means start of a default fit of the complete data (max_iter=0
    # returns the initial parameters), shared by the accuracy fits.
    start, _ = _timed_fit(
        OurGaussianMixture(N_COMPONENTS, max_iter=0, **common), X, notes
    )
    same_start = {
        "weights_init": start.weights_,
        "means_init": start.means_,
        "precisions_init": start.precisions_,
        "tol": cfg["accuracy_tol"],
        "max_iter": cfg["accuracy_max_iter"],
        **common,
    }
    # Untimed: the reference (also warms up caches and lazy imports).
    reference, reference_s = _timed_fit(
        OurGaussianMixture(N_COMPONENTS, **same_start), X, notes
    )
    fixed = {
        "weights_init": reference.weights_,
        "means_init": reference.means_,
        "precisions_init": reference.precisions_,
        "tol": 0.0,
        "max_iter": n_iter,
        **common,
    }

    names = list(variants)
    timings = {v: {"fixed_times_s": [], "fit_times_s": []} for v in names}
    errors = {v: [] for v in names}
    fixed_n_iter, default_models = {}, {}
    for r in range(repeats):
        for v in names[r % len(names) :] + names[: r % len(names)]:
            try:
                model, t = _timed_fit(
                    OurGaussianMixture(N_COMPONENTS, **fixed), variants[v], notes
                )
                timings[v]["fixed_times_s"].append(t)
                fixed_n_iter[v] = int(model.n_iter_)
                model, t = _timed_fit(
                    OurGaussianMixture(N_COMPONENTS, **common), variants[v], notes
                )
                timings[v]["fit_times_s"].append(t)
                default_models[v] = model
            except Exception as exc:  # reported, fails the run
                errors[v].append(f"ours: {type(exc).__name__}: {exc}")

    def summary(v):
        model = default_models.get(v)
        return {
            "fixed_times_s": timings[v]["fixed_times_s"],
            "fixed_n_iter": fixed_n_iter.get(v),
            "median_s_per_iter": _ratio(
                _median(timings[v]["fixed_times_s"]), fixed_n_iter.get(v)
            ),
            "fit_times_s": timings[v]["fit_times_s"],
            "median_fit_s": _median(timings[v]["fit_times_s"]),
            "n_iter": None if model is None else int(model.n_iter_),
            "converged": None if model is None else bool(model.converged_),
            "lower_bound": None if model is None else float(model.lower_bound_),
        }

    complete = summary("complete")
    cases = []
    for fraction in cfg["fractions"]:
        mask = masks[fraction]
        nan = summary(fraction)
        case = {
            "n": n,
            "n_features": X.shape[1],
            "n_components": N_COMPONENTS,
            "covariance_type": covariance_type,
            "missing_fraction": fraction,
            "n_missing_values": int(mask.sum()),
            "n_rows_with_missing": int(mask.any(axis=1).sum()),
            "complete": complete,
            "nan": nan,
            "s_per_iter_ratio": _ratio(
                nan["median_s_per_iter"], complete["median_s_per_iter"]
            ),
            "fit_ratio": _ratio(nan["median_fit_s"], complete["median_fit_s"]),
            "accuracy": {
                "reference": {
                    "fit_s": reference_s,
                    "n_iter": int(reference.n_iter_),
                    "converged": bool(reference.converged_),
                    "lower_bound": float(reference.lower_bound_),
                }
            },
            "ours_more_accurate": None,
            "errors": [f"complete data, {e}" for e in errors["complete"]]
            + [f"NaN data, {e}" for e in errors[fraction]],
        }
        acc = case["accuracy"]
        case_notes = list(notes)
        imputed = mean_impute(variants[fraction])
        accuracy_fits = {
            "ours_nan": (OurGaussianMixture, same_start, variants[fraction]),
            "impute_sklearn": (SkGaussianMixture, same_start, imputed),
            "impute_sklearn_default": (SkGaussianMixture, common, imputed),
        }
        for name, (cls, params, data) in accuracy_fits.items():
            try:
                model, t = _timed_fit(cls(N_COMPONENTS, **params), data, case_notes)
                acc[name] = _fit_summary(model, reference, covariance_type, t)
            except Exception as exc:  # reported, fails the run
                case["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
        if fraction in default_models:
            acc["ours_nan_default"] = _fit_summary(
                default_models[fraction],
                reference,
                covariance_type,
                nan["median_fit_s"],
            )
        if "ours_nan" in acc and "impute_sklearn" in acc:
            case["ours_more_accurate"] = all(
                acc["ours_nan"][k] < acc["impute_sklearn"][k]
                for k in ("max_abs_err_means", "max_abs_err_covariances")
            )
        case["notes"] = sorted(set(case_notes))
        cases.append(case)
    return cases


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


def _fx(value):
    """Format a ratio such as ``2.31x`` (``"—"`` for ``None``).

    Parameters
    ----------
    value : float or None
        Ratio.

    Returns
    -------
    text : str
        Formatted value.
    """
    return "—" if value is None else f"{value:.2f}x"


def _table(header, rows):
    """Render a markdown table.

    Parameters
    ----------
    header : list of str
        Column titles; a title starting with ``<`` is left-aligned (the
        ``<`` is dropped), every other column right-aligned.
    rows : list of list of str
        Cells.

    Returns
    -------
    table : str
        Markdown table.
    """
    titles = [h.lstrip("<") for h in header]
    align = ["---" if h.startswith("<") else "---:" for h in header]
    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def timing_table(cases):
    """Speed table: ours on complete vs NaN data.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_size_covariance`.

    Returns
    -------
    table : str
        Markdown table, one row per case.
    """
    header = [
        "n", "<covariance_type", "missing", "complete s/iter", "NaN s/iter",
        "ratio", "complete fit s", "NaN fit s", "ratio", "n_iter complete",
        "n_iter NaN",
    ]  # fmt: skip
    rows = [
        [
            c["n"],
            c["covariance_type"],
            f"{c['missing_fraction']:.0%}",
            _fmt(c["complete"]["median_s_per_iter"], ".3e"),
            _fmt(c["nan"]["median_s_per_iter"], ".3e"),
            _fx(c["s_per_iter_ratio"]),
            _fmt(c["complete"]["median_fit_s"], ".3e"),
            _fmt(c["nan"]["median_fit_s"], ".3e"),
            _fx(c["fit_ratio"]),
            _fmt(c["complete"]["n_iter"], "d"),
            _fmt(c["nan"]["n_iter"], "d"),
        ]
        for c in cases
    ]
    return _table(header, rows)


def accuracy_table(cases):
    """Accuracy table: errors against ours on the complete data.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_size_covariance`.

    Returns
    -------
    table : str
        Markdown table, one row per case.
    """
    header = [
        "n", "<covariance_type", "missing", "means err ours NaN",
        "means err impute+sklearn", "cov err ours NaN", "cov err impute+sklearn",
        "<ours better", "default fits: means err ours / impute",
        "default fits: cov err ours / impute",
    ]  # fmt: skip
    rows = []
    for c in cases:
        acc = c["accuracy"]
        ours, imp = acc.get("ours_nan", {}), acc.get("impute_sklearn", {})
        ours_d = acc.get("ours_nan_default", {})
        imp_d = acc.get("impute_sklearn_default", {})
        rows.append(
            [
                c["n"],
                c["covariance_type"],
                f"{c['missing_fraction']:.0%}",
                _fmt(ours.get("max_abs_err_means"), ".2e"),
                _fmt(imp.get("max_abs_err_means"), ".2e"),
                _fmt(ours.get("max_abs_err_covariances"), ".2e"),
                _fmt(imp.get("max_abs_err_covariances"), ".2e"),
                {True: "yes", False: "NO", None: "—"}[c["ours_more_accurate"]],
                f"{_fmt(ours_d.get('max_abs_err_means'), '.2e')} / "
                f"{_fmt(imp_d.get('max_abs_err_means'), '.2e')}",
                f"{_fmt(ours_d.get('max_abs_err_covariances'), '.2e')} / "
                f"{_fmt(imp_d.get('max_abs_err_covariances'), '.2e')}",
            ]
        )
    return _table(header, rows)


def failures_of(cases):
    """List the problems that fail the run.

    Parameters
    ----------
    cases : list of dict
        Output of :func:`run_size_covariance`.

    Returns
    -------
    failures : list of str
        Exceptions raised, and cases where ours on the NaN data is not
        closer to the reference than mean imputation + scikit-learn.
    """
    out = []
    for c in cases:
        tag = (
            f"n={c['n']} covariance_type={c['covariance_type']} "
            f"missing={c['missing_fraction']:g}"
        )
        out += [f"{tag}: {e}" for e in c["errors"]]
        if c["ours_more_accurate"] is False:
            out.append(f"{tag}: ours on the NaN data is not closer than imputation")
        elif c["ours_more_accurate"] is None and not c["errors"]:
            out.append(f"{tag}: no accuracy to compare")
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
        Integer size of at least 10.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a valid sample size: {text!r}") from None
    if value != int(value) or value < 10:
        raise argparse.ArgumentTypeError(f"not a valid sample size (>= 10): {text!r}")
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


def _fraction(text):
    """Parse a missing fraction in ``(0, 0.5]``.

    Parameters
    ----------
    text : str
        Command-line token.

    Returns
    -------
    fraction : float
        The parsed fraction (at most 0.5: 2-D rows keep one value).
    """
    value = float(text)
    if not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"must be in (0, 0.5], got {text!r}")
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
            "Fit time and accuracy of sklearn_em.GaussianMixture on data with "
            "missing values, against complete data and mean imputation + sklearn."
        )
    )
    p.add_argument(
        "--quick", action="store_true", help="1e3 and 1e4 rows, 2 repeats, 10 iter"
    )
    p.add_argument(
        "--sizes",
        type=_size,
        nargs="+",
        help="numbers of rows (default 1e4 1e5 1e6; quick 1e3 1e4)",
    )
    p.add_argument(
        "--covariance-types",
        nargs="+",
        choices=COVARIANCE_TYPES,
        default=list(COVARIANCE_TYPES),
        help="covariance types (default: all four)",
    )
    p.add_argument(
        "--fractions",
        type=_fraction,
        nargs="+",
        default=list(DEFAULT_FRACTIONS),
        help="fractions of the values set to NaN (default 0.1 0.3)",
    )
    p.add_argument(
        "--n-iter",
        type=_positive_int,
        help="EM iterations of the fixed-iteration fits (default 20; quick 10)",
    )
    p.add_argument(
        "--accuracy-tol",
        type=float,
        default=1e-6,
        help="tol of the reference and of the gated accuracy fits (default 1e-6)",
    )
    p.add_argument(
        "--accuracy-max-iter",
        type=_positive_int,
        default=1000,
        help="max_iter of the reference and the gated accuracy fits (default 1000)",
    )
    p.add_argument(
        "--repeats", type=_positive_int, help="timed calls per fit (default 5; quick 2)"
    )
    p.add_argument("--seed", type=int, default=0, help="data, mask and fit seed")
    p.add_argument(
        "--output",
        type=Path,
        help="JSON path (default benchmarks/results/bench_missing[-quick].json)",
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
        Sizes, covariance types, fractions, n_iter, accuracy tol and
        max_iter, repeats, seed and the output path.
    """
    d = QUICK_DEFAULTS if args.quick else FULL_DEFAULTS
    output = args.output or RESULTS_DIR / (
        "bench_missing" + ("-quick" if args.quick else "") + ".json"
    )
    return {
        "quick": args.quick,
        "sizes": args.sizes or d["sizes"],
        "covariance_types": [t for t in COVARIANCE_TYPES if t in args.covariance_types],
        "fractions": sorted(set(args.fractions)),
        "n_iter": args.n_iter or d["n_iter"],
        "accuracy_tol": args.accuracy_tol,
        "accuracy_max_iter": args.accuracy_max_iter,
        "repeats": args.repeats or d["repeats"],
        "seed": args.seed,
        "output": Path(output),
    }


def main(argv=None) -> int:
    """Run the benchmark, print markdown tables and write the JSON results.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 if every fit ran and ours on the NaN data is closer to the
        complete-data fit than mean imputation in every case; 1 otherwise.
    """
    args = build_parser().parse_args(argv)
    cfg = resolve_settings(args)
    env = environment_info()
    print(
        f"# bench_missing: sizes={cfg['sizes']} fractions={cfg['fractions']} "
        f"covariance_types={cfg['covariance_types']} n_iter={cfg['n_iter']} "
        f"repeats={cfg['repeats']} seed={cfg['seed']}"
    )
    print(
        f"# {env['cpu_model']} ({env['cpu_count']} CPUs), {env['platform']}, "
        f"python {platform.python_version()}, numpy {env['numpy']}, "
        f"scipy {env['scipy']}, sklearn {env['sklearn']}, "
        f"sklearn_em {env['sklearn_em']}; load average {env['loadavg_before']}"
    )
    t_start = time.perf_counter()
    cases = []
    for n in cfg["sizes"]:
        for cov in cfg["covariance_types"]:
            print(f"#   n={n} covariance_type={cov}", file=sys.stderr, flush=True)
            cases += run_size_covariance(n, cov, cfg)
    elapsed = time.perf_counter() - t_start
    env["loadavg_after"] = _loadavg()

    print()
    print(
        "## Speed: ours on complete vs NaN data\n\n"
        f"s/iter: median time of {cfg['n_iter']} EM iterations (tol=0) from the "
        "same init / n_iter_; fit s: median default fit (k-means init, EM to "
        "convergence); ratio = NaN / complete.\n"
    )
    print(timing_table(cases))
    print()
    print(
        "## Accuracy against ours on the complete data\n\n"
        "Max abs error after matching components (linear_sum_assignment on "
        "means): ours on the NaN data vs column-mean imputation + "
        "sklearn.mixture.GaussianMixture, both from the reference's k-means "
        f"start with tol={cfg['accuracy_tol']:g}; last two columns: fully default "
        "fits (own k-means start on the imputed data, tol=1e-3; not gated).\n"
    )
    print(accuracy_table(cases))
    print()

    failures = failures_of(cases)
    settings = {k: v for k, v in cfg.items() if k != "output"}
    settings["timing"] = (
        "wall time (time.perf_counter) of each fit; data variants interleaved per "
        "repeat, order rotating; median over repeats. s/iter: fixed-iteration fit "
        "(tol=0, max_iter=n_iter, init = the accuracy reference's parameters) / "
        "n_iter_. fit: default fit (k-means init, random_state=seed). The "
        "'complete' timings are measured once per size and covariance type and "
        "shared by the fractions."
    )
    settings["mask"] = (
        "exactly round(fraction*n*d) cells, uniformly among the cells outside one "
        "randomly protected column per row (no row entirely missing); "
        "default_rng([seed, round(fraction*1e6)])"
    )
    result = {
        "benchmark": "bench_missing",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "elapsed_s": elapsed,
        "settings": settings,
        "environment": env,
        "cases": cases,
        "failures": failures,
        "ok": not failures,
    }
    output = cfg["output"]
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {output} ({elapsed:.1f} s)")
    before, after, ncpu = env["loadavg_before"], env["loadavg_after"], env["cpu_count"]
    if before and after and ncpu and (before[0] > 0.25 * ncpu or after[0] > ncpu + 0.5):
        print(
            f"WARNING: load average {before[0]} before / {after[0]} after the run "
            f"on {ncpu} CPUs: other processes may have competed for the CPUs, "
            "so the timings may be inflated",
            file=sys.stderr,
        )
    if failures:
        print(f"\nFAILED: {len(failures)} problem(s):", file=sys.stderr)
        for f in failures:
            print(f"  - {f}", file=sys.stderr)
        return 1
    print(
        f"OK: {len(cases)} cases; ours on the NaN data is closer to the "
        "complete-data fit than mean imputation in every case"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
