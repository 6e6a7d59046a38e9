"""``sklearn_em.GaussianMixture`` on data with missing values (NaN).

Three-Gaussian data, every covariance type, complete and with 10 % and 30 %
of its values NaN (never a whole row). Speed: ours on each variant, fixed
iterations from the same parameters (s/iter) and the default ``fit``, with the
ratios NaN / complete. Accuracy: against ours on the complete data (from
``same_start``, ``tol=--accuracy-tol``), ours on the NaN data and column-mean
imputation + scikit-learn from the same start (gated), and fully default fits
of both (reported). The exit status is 1 if a fit raises or if ours on the
NaN data is not closer than imputation in some case.

Examples
--------
::

    python benchmarks/bench_missing.py           # 1e4, 1e5, 1e6 rows
    python benchmarks/bench_missing.py --quick   # 1e3, 1e4 rows
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture as SkGaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

from sklearn_em import GaussianMixture as OurGaussianMixture
from sklearn_em._covariance import get_covariance
from sklearn_em.datasets import make_three_gaussians

DEFAULTS = {
    "sizes": [10_000, 100_000, 1_000_000],
    "covariance_types": list(h.COVARIANCE_TYPES),
    "fractions": [0.1, 0.3], "n_iter": 20, "repeats": 5, "accuracy_tol": 1e-6,
    "threads": None,
}  # fmt: skip
QUICK = {"sizes": [1_000, 10_000], "n_iter": 10, "repeats": 2}
ACCURACY_FITS = ("ours_nan", "impute_sklearn")
ERRORS = ("max_abs_err_weights", "max_abs_err_means", "max_abs_err_covariances")


def missing_mask(shape, fraction, seed):
    """Boolean mask of exactly ``round(fraction * n * d)`` cells of ``shape``,
    uniform among those outside one random kept column per row."""
    n, d = shape
    n_missing = round(fraction * n * d)
    if not 0 <= n_missing <= n * (d - 1):
        raise ValueError(f"cannot mark {fraction:g} of {n} x {d} values missing")
    rng = np.random.default_rng(seed)
    allowed = np.ones((n, d), dtype=bool)
    allowed[np.arange(n), rng.integers(d, size=n)] = False  # one kept per row
    mask = np.zeros((n, d), dtype=bool)
    mask.flat[rng.choice(np.flatnonzero(allowed), n_missing, replace=False)] = True
    return mask


def full_covariances(model):
    """Covariances as a (k, d, d) stack, so components permute alike for every
    type (a 'tied' matrix repeats)."""
    k, d = model.means_.shape
    cov = get_covariance(model.covariance_type)
    return cov.full_covariances(model.covariances_, k, d)


def summary(model, reference, seconds=None):
    """Max abs errors of weights, means and covariances against the reference
    (components matched), and the fit's time and convergence."""
    order = h.match_components(model.means_, reference.means_)
    got = (model.weights_[order], model.means_[order], full_covariances(model)[order])
    want = (reference.weights_, reference.means_, full_covariances(reference))
    pairs = zip(ERRORS, got, want, strict=True)
    return {
        **{k: float(np.max(np.abs(a - b))) for k, a, b in pairs},
        "fit_s": seconds,
        "n_iter": int(model.n_iter_),
        "converged": bool(model.converged_),
        "lower_bound": float(model.lower_bound_),
    }


def measure_one(n, covariance_type, cfg):
    """Time and compare the fits of one size and covariance type.

    Returns one case per missing fraction: the mask's counts, ``complete``
    and ``nan`` timings (the complete ones shared by the fractions), their
    ratios, ``accuracy`` (``reference``, ``ours_nan``, ``impute_sklearn``,
    ``ours_nan_default``, ``impute_sklearn_default``), ``ours_more_accurate``
    and ``errors``.
    """
    seed = cfg["seed"]
    X, _ = make_three_gaussians(n, random_state=seed)
    variants = {"complete": X}
    for fraction in cfg["fractions"]:
        mask = missing_mask(X.shape, fraction, [seed, round(fraction * 1e6)])
        variants[fraction] = np.where(mask, np.nan, X)
    params = {"covariance_type": covariance_type, "random_state": seed}
    start = h.same_start(X, covariance_type, 3, seed)
    tight = {**start, **params, "tol": cfg["accuracy_tol"], "max_iter": 1_000}
    # Untimed: the reference (it also warms up caches and lazy imports).
    ref_s, reference = h.timed(lambda: OurGaussianMixture(3, **tight).fit(X))
    fixed = {k + "_init": getattr(reference, k + "_") for k in ("weights", "means")}
    fixed.update(precisions_init=reference.precisions_, tol=0.0, max_iter=cfg["n_iter"])

    calls = {}
    for v, data in variants.items():
        fixed_fit = OurGaussianMixture(3, **fixed, **params).fit
        calls[v, "fixed"] = functools.partial(fixed_fit, data)
        calls[v, "default"] = lambda d=data: OurGaussianMixture(3, **params).fit(d)
    times, fitted, errors = h.interleaved(calls, cfg["repeats"])

    def timing(v):
        fixed_model, model = fitted.get((v, "fixed")), fitted.get((v, "default"))
        fixed_n_iter = None if fixed_model is None else int(fixed_model.n_iter_)
        return {
            "fixed_times_s": times[v, "fixed"],
            "fixed_n_iter": fixed_n_iter,
            "median_s_per_iter": h.ratio(h.median(times[v, "fixed"]), fixed_n_iter),
            "fit_times_s": times[v, "default"],
            "median_fit_s": h.median(times[v, "default"]),
            "n_iter": None if model is None else int(model.n_iter_),
        }

    complete, cases, per_iter = timing("complete"), [], "median_s_per_iter"
    for fraction in cfg["fractions"]:
        X_nan = variants[fraction]
        nan = timing(fraction)
        isnan = np.isnan(X_nan)
        case = {
            "n": n,
            "n_features": X.shape[1],
            "covariance_type": covariance_type,
            "missing_fraction": fraction,
            "n_missing_values": int(isnan.sum()),
            "n_rows_with_missing": int(isnan.any(axis=1).sum()),
            "complete": complete,
            "nan": nan,
            "s_per_iter_ratio": h.ratio(nan[per_iter], complete[per_iter]),
            "fit_ratio": h.ratio(nan["median_fit_s"], complete["median_fit_s"]),
            "errors": [
                e for e in errors if e.startswith(("('complete', ", f"({fraction}, "))
            ],
        }
        acc = case["accuracy"] = {"reference": summary(reference, reference, ref_s)}
        imputed = np.where(isnan, np.nanmean(X_nan, axis=0), X_nan)
        fits = {
            "ours_nan": lambda d=X_nan: OurGaussianMixture(3, **tight).fit(d),
            "impute_sklearn": lambda d=imputed: SkGaussianMixture(3, **tight).fit(d),
            "impute_sklearn_default": (
                lambda d=imputed: SkGaussianMixture(3, **params).fit(d)
            ),
        }
        t, models, errs = h.interleaved(fits, 1)
        case["errors"] += errs
        acc.update({k: summary(m, reference, t[k][0]) for k, m in models.items()})
        if (fraction, "default") in fitted:
            acc["ours_nan_default"] = summary(
                fitted[fraction, "default"], reference, nan["median_fit_s"]
            )
        case["ours_more_accurate"] = (
            all(acc["ours_nan"][k] < acc["impute_sklearn"][k] for k in ERRORS[1:])
            if "ours_nan" in acc and "impute_sklearn" in acc
            else None
        )
        cases.append(case)
    return cases


def measure(cfg):
    """Every size and covariance type; the gate."""
    cases = []
    for n in cfg["sizes"]:
        for cov in cfg["covariance_types"]:
            h.progress(f"n={n} covariance_type={cov}")
            cases += measure_one(n, cov, cfg)
    failures = []
    for c in cases:
        tag = f"n={c['n']} {c['covariance_type']} missing={c['missing_fraction']:g}"
        failures += [f"{tag}: {e}" for e in c["errors"]]
        if not c["ours_more_accurate"]:
            failures.append(
                f"{tag}: ours on the NaN data is not closer than imputation"
            )
    return {"cases": cases, "failures": failures}


SPEED_HEADER = [
    "n", "<covariance_type", "missing", "complete s/iter", "NaN s/iter", "ratio",
    "complete fit s", "NaN fit s", "ratio", "n_iter complete", "n_iter NaN",
]  # fmt: skip
ACCURACY_HEADER = [
    "n", "<covariance_type", "missing", "means err ours / impute",
    "cov err ours / impute", "<ours better", "default fits: means err",
    "default fits: cov err",
]  # fmt: skip


def report(results, cfg):
    """Speed and accuracy tables."""
    speed, accuracy = [], []
    for c in results["cases"]:
        key = [c["n"], c["covariance_type"], f"{c['missing_fraction']:.0%}"]
        both = ("complete", "nan")
        speed.append(
            key
            + [h.fmt(c[v]["median_s_per_iter"]) for v in both]
            + [h.fmt(c["s_per_iter_ratio"], "x")]
            + [h.fmt(c[v]["median_fit_s"]) for v in both]
            + [h.fmt(c["fit_ratio"], "x")]
            + [h.fmt(c[v]["n_iter"], "d") for v in both]
        )
        a = c["accuracy"]
        cells = [
            " / ".join(h.fmt(a.get(m, {}).get(k), ".2e") for m in models)
            for models in (ACCURACY_FITS, [m + "_default" for m in ACCURACY_FITS])
            for k in ERRORS[1:]
        ]
        better = {True: "yes", False: "NO", None: "—"}[c["ours_more_accurate"]]
        accuracy.append([*key, *cells[:2], better, *cells[2:]])
    return (
        "## Speed: ours on complete vs NaN data\n\n"
        f"s/iter: {cfg['n_iter']} EM iterations (tol=0) from the same start; "
        "fit s: default fit; ratio = NaN / complete.\n\n"
        + h.table(SPEED_HEADER, speed)
        + "\n\n## Accuracy against ours on the complete data\n\n"
        "Max abs error after matching components, ours on the NaN data / "
        "column-mean imputation + sklearn: same start with "
        f"tol={cfg['accuracy_tol']:g} (gated), and fully default fits.\n\n"
        + h.table(ACCURACY_HEADER, accuracy)
    )


def main(argv=None):
    """Run the benchmark; return 0 when every check passes, else 1."""
    p = h.parser(
        "Fit time and accuracy of sklearn_em.GaussianMixture on data with NaN.",
        *("repeats", "n_iter"),
    )
    p.add_argument("--sizes", type=h.size, nargs="+", help="rows")
    p.add_argument("--covariance-types", nargs="+", choices=h.COVARIANCE_TYPES)
    p.add_argument("--fractions", type=float, nargs="+", help="NaN fractions")
    p.add_argument("--accuracy-tol", type=float, help="tol of the gated fits")
    cfg = h.settings(p.parse_args(argv), DEFAULTS, QUICK)
    if not all(0 < f <= 0.5 for f in cfg["fractions"]):  # 2-D rows keep a value
        p.error("--fractions must be in (0, 0.5]")
    output = h.default_output("bench_missing", cfg)
    return h.run("bench_missing", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
