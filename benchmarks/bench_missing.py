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
import functools
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

# Run as a script or imported from its file path (tests), so this directory
# is not necessarily on sys.path: put it there for the shared helpers, which
# also make sklearn_em importable from this checkout when it is not installed.
sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

from sklearn_em import GaussianMixture as OurGaussianMixture
from sklearn_em.datasets import make_three_gaussians

# Re-exported: the tests call it from this module.
match_components = _common.match_components

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
            "median_s_per_iter": _common.ratio(
                _common.median(timings[v]["fixed_times_s"]), fixed_n_iter.get(v)
            ),
            "fit_times_s": timings[v]["fit_times_s"],
            "median_fit_s": _common.median(timings[v]["fit_times_s"]),
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
            "s_per_iter_ratio": _common.ratio(
                nan["median_s_per_iter"], complete["median_s_per_iter"]
            ),
            "fit_ratio": _common.ratio(nan["median_fit_s"], complete["median_fit_s"]),
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
            _common.fmt(c["complete"]["median_s_per_iter"], ".3e"),
            _common.fmt(c["nan"]["median_s_per_iter"], ".3e"),
            _common.fx(c["s_per_iter_ratio"]),
            _common.fmt(c["complete"]["median_fit_s"], ".3e"),
            _common.fmt(c["nan"]["median_fit_s"], ".3e"),
            _common.fx(c["fit_ratio"]),
            _common.fmt(c["complete"]["n_iter"], "d"),
            _common.fmt(c["nan"]["n_iter"], "d"),
        ]
        for c in cases
    ]
    return _common.table(header, rows)


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
                _common.fmt(ours.get("max_abs_err_means"), ".2e"),
                _common.fmt(imp.get("max_abs_err_means"), ".2e"),
                _common.fmt(ours.get("max_abs_err_covariances"), ".2e"),
                _common.fmt(imp.get("max_abs_err_covariances"), ".2e"),
                {True: "yes", False: "NO", None: "—"}[c["ours_more_accurate"]],
                f"{_common.fmt(ours_d.get('max_abs_err_means'), '.2e')} / "
                f"{_common.fmt(imp_d.get('max_abs_err_means'), '.2e')}",
                f"{_common.fmt(ours_d.get('max_abs_err_covariances'), '.2e')} / "
                f"{_common.fmt(imp_d.get('max_abs_err_covariances'), '.2e')}",
            ]
        )
    return _common.table(header, rows)


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


# Command-line sample size (argparse type).
_size = functools.partial(
    _common.parse_size, minimum=10, too_small="not a valid sample size (>= 10)"
)


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
        type=_common.positive_int,
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
        type=_common.positive_int,
        default=1000,
        help="max_iter of the reference and the gated accuracy fits (default 1000)",
    )
    p.add_argument(
        "--repeats",
        type=_common.positive_int,
        help="timed calls per fit (default 5; quick 2)",
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
    env = _common.environment_info()
    print(
        f"# bench_missing: sizes={cfg['sizes']} fractions={cfg['fractions']} "
        f"covariance_types={cfg['covariance_types']} n_iter={cfg['n_iter']} "
        f"repeats={cfg['repeats']} seed={cfg['seed']}"
    )
    print(_common.environment_line(env))
    t_start = time.perf_counter()
    cases = []
    for n in cfg["sizes"]:
        for cov in cfg["covariance_types"]:
            print(f"#   n={n} covariance_type={cov}", file=sys.stderr, flush=True)
            cases += run_size_covariance(n, cov, cfg)
    elapsed = time.perf_counter() - t_start
    env["loadavg_after"] = _common.loadavg()

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
        **_common.result_header("bench_missing", argv, elapsed),
        "settings": settings,
        "environment": env,
        "cases": cases,
        "failures": failures,
        "ok": not failures,
    }
    output = cfg["output"]
    _common.write_result(result, output, elapsed)
    _common.warn_if_busy(env)
    if failures:
        _common.report_failures(failures)
        return 1
    print(
        f"OK: {len(cases)} cases; ours on the NaN data is closer to the "
        "complete-data fit than mean imputation in every case"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
