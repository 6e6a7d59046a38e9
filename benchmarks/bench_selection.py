"""Model selection: ``GaussianMixtureIC`` against ``GridSearchCV`` and R's mclust.

Suites (``--suite``; default both):

``gridsearch``
    Three-Gaussian data (1,500 and 1e5 rows): ``GaussianMixtureIC(
    n_components=K, random_state=seed)`` against ``GridSearchCV`` over the
    same grid (``n_components`` 1..K x the 4 covariance types) with a BIC
    scorer (``-est.bic(X)``) and ``cv=[(all rows, all rows)]``, so that every
    candidate is scored on the rows it was fitted on, once with scikit-learn's
    ``GaussianMixture(random_state=seed)`` and once with ours as the grid's
    estimator (``n_jobs=None``, ``refit=True``: the plain use). Interleaved
    repeats, medians; the choices and every cell's BIC are compared.
``mclust``
    The choice of ``GaussianMixtureIC(criterion='bic')`` against R's
    ``Mclust(X, G=1:K, modelNames=c("VVV","EEE","VVI","VII"))`` (full, tied,
    diag, spherical) on the three-Gaussian set (1,500 rows), iris, wine
    (standardised) and R's ``faithful``, through ``Rscript``; skipped (and
    recorded as such) when ``Rscript`` or mclust is missing. mclust's BIC is
    ``2 loglik - df log n``: ours is compared with its negation, cell by cell,
    and our parameter counts with mclust's ``nMclustParams``.

Everything runs under ``threadpoolctl.threadpool_limits(1)`` unless
``--threads N`` or ``--no-thread-limit`` is given: at these sizes our
estimator uses no threads of its own, so one BLAS thread makes the timings
single-threaded for all (and less sensitive to a busy machine).

The exit status is 1 if a call raises, if ``GaussianMixtureIC`` chooses
another (k, covariance type) than either ``GridSearchCV``, if a cell's BIC
differs from the ``GridSearchCV`` over our estimator by more than ``--rtol``
(each cell is documented to be that fit), if mclust fails on installed R, or
if a parameter count differs from mclust's ``df``. Choices that differ from
mclust's are reported, not failed: its initialisation (model-based
hierarchical agglomeration) is not our k-means.

Examples
--------
::

    python benchmarks/bench_selection.py                   # both suites
    python benchmarks/bench_selection.py --suite mclust    # mclust only
    python benchmarks/bench_selection.py --quick           # K=3, 1,500 rows, < 20 s
"""

from __future__ import annotations

import csv
import math
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from sklearn.model_selection import GridSearchCV

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

from sklearn_em import GaussianMixture as OurGaussianMixture
from sklearn_em import GaussianMixtureIC
from sklearn_em.datasets import make_three_gaussians

SUITES = ("gridsearch", "mclust")
DATASETS = ("three_gaussians", "iris", "wine_std", "faithful")
MCLUST_MODELS = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
# Log-likelihoods closer than this (absolute) count as the same optimum: a BIC
# difference of 0.02 cannot change a choice unless two cells are that close.
SAME_LOGLIK = 0.01
VARIANTS = {
    "tol=1e-6": {"tol": 1e-6},
    "tol=1e-6 n_init=10": {"tol": 1e-6, "n_init": 10},
}
CALLS = ("ic", "gridsearch_sklearn", "gridsearch_ours")
DEFAULTS = {
    "suite": list(SUITES), "sizes": [1_500, 100_000], "max_components": 9,
    "datasets": list(DATASETS), "repeats": 3, "threads": 1,
    "no_thread_limit": False, "rtol": 1e-8, "r_timeout": 600.0,
}  # fmt: skip
QUICK = {"sizes": [1_500], "max_components": 3, "repeats": 1}


def bic_scorer(estimator, X, y=None):
    """GridSearchCV maximises: minus the BIC."""
    return -estimator.bic(X)


def cell_key(k, covariance_type):
    """``"k/type"``, the JSON key of a grid cell."""
    return f"{int(k)}/{covariance_type}"


def ic_cells(ic):
    """``criteria_`` of a fitted ``GaussianMixtureIC`` as ``{"k/type": row}``."""
    c, cells = ic.criteria_, {}
    for i in range(len(c["n_components"])):
        cells[cell_key(c["n_components"][i], c["covariance_type"][i])] = {
            "bic": float(c["bic"][i]),
            "log_likelihood": float(c["log_likelihood"][i]),
            "n_parameters": float(c["n_parameters"][i]),
            "converged": bool(c["converged"][i]),
            "n_iter": int(c["n_iter"][i]),
            "error": c["error"][i],
        }
    return cells


def search_cells(search):
    """BIC of every candidate of a fitted ``GridSearchCV``: ``{"k/type": bic}``."""
    res = search.cv_results_
    return {
        cell_key(p["n_components"], p["covariance_type"]): -float(score)
        for p, score in zip(res["params"], res["mean_test_score"], strict=True)
    }


def rel(a, b):
    """``|a - b| / |b|``; nan unless both are finite."""
    if not (math.isfinite(a) and math.isfinite(b)):
        return float("nan")
    return 0.0 if a == b else abs(a - b) / abs(b)


def max_rel(cells_a, cells_b):
    """Largest relative difference over the cells both have finite, with its
    cell, the median and the number of cells compared."""
    diffs = {k: rel(cells_a[k], cells_b[k]) for k in cells_a if k in cells_b}
    diffs = {k: v for k, v in diffs.items() if not math.isnan(v)}
    if not diffs:
        return {"max": None, "cell": None, "median": None, "n_cells": 0}
    worst = max(diffs, key=diffs.get)
    return {
        "max": diffs[worst],
        "cell": worst,
        "median": float(np.median(list(diffs.values()))),
        "n_cells": len(diffs),
    }


# -- gridsearch ---------------------------------------------------------------


def gridsearch_makers(n, max_components, seed):
    """The three estimators timed: ``name -> zero-argument maker``."""
    grid = {
        "n_components": list(range(1, max_components + 1)),
        "covariance_type": list(h.COVARIANCE_TYPES),
    }
    everything = np.arange(n)
    cv = [(everything, everything)]

    def search(cls):
        return lambda: GridSearchCV(
            cls(random_state=seed), grid, scoring=bic_scorer, cv=cv
        )

    return {
        "ic": lambda: GaussianMixtureIC(n_components=max_components, random_state=seed),
        "gridsearch_sklearn": search(SkGaussianMixture),
        "gridsearch_ours": search(OurGaussianMixture),
    }


def suite_gridsearch(cfg):
    """Three-Gaussian data; GaussianMixtureIC(n_components=K, random_state=seed)
    vs GridSearchCV(GaussianMixture(random_state=seed), n_components 1..K x 4
    covariance types, scoring=-bic, cv=[(all, all)], n_jobs=None, refit=True)
    of scikit-learn's and of our estimator; interleaved repeats, medians."""
    seed, kmax, cases = cfg["seed"], cfg["max_components"], []
    for n in cfg["sizes"]:
        X, _ = make_three_gaussians(n, random_state=seed)
        makers = gridsearch_makers(n, kmax, seed)
        # Warm-up (lazy imports, first BLAS calls): the grid on a few rows.
        small = X[: min(n, 300)]
        warm = gridsearch_makers(len(small), kmax, seed)
        h.interleaved({k: lambda m=m, x=small: m().fit(x) for k, m in warm.items()}, 1)
        calls = {k: lambda m=m, x=X: m().fit(x) for k, m in makers.items()}
        times, fitted, errors = h.interleaved(calls, cfg["repeats"])
        case = {
            "n": n,
            "n_features": X.shape[1],
            "max_components": kmax,
            "n_cells": kmax * len(h.COVARIANCE_TYPES),
            "n_jobs_effective_ours_largest_k": h.threads_of_ours(
                None, n, kmax, X.shape[1], "full"
            ),
            "errors": errors,
        }
        for name in CALLS:
            entry = case[name] = {"times_s": times[name], "median_s": None}
            entry["median_s"] = h.median(times[name])
            est = fitted.get(name)
            if est is None:
                continue
            if name == "ic":
                entry["choice"] = [int(est.n_components_), est.covariance_type_]
                entry["cells"] = ic_cells(est)
                entry["bic"] = {k: v["bic"] for k, v in entry["cells"].items()}
            else:
                best = est.best_params_
                entry["choice"] = [int(best["n_components"]), best["covariance_type"]]
                entry["bic"] = search_cells(est)
            entry["chosen_bic"] = entry["bic"][cell_key(*entry["choice"])]
        ic = case["ic"]
        case["ratios"] = {
            name: h.ratio(case[name]["median_s"], ic["median_s"]) for name in CALLS[1:]
        }
        case["ratio_sklearn_to_ours_grid"] = h.ratio(
            case["gridsearch_sklearn"]["median_s"], case["gridsearch_ours"]["median_s"]
        )
        choices = [tuple(case[k]["choice"]) for k in CALLS if "choice" in case[k]]
        case["same_choice"] = len(choices) == len(CALLS) and len(set(choices)) == 1
        case["cell_bic_rel_diff"] = {
            name: max_rel(ic["bic"], case[name]["bic"])
            for name in CALLS[1:]
            if "bic" in ic and "bic" in case[name]
        }
        cases.append(case)
        h.progress(f"gridsearch n={n}")
    return cases


def gridsearch_failures(cases, rtol):
    """Raised calls, choices that differ, cells that differ from our grid."""
    out = []
    for c in cases:
        tag = f"gridsearch n={c['n']}"
        out += [f"{tag}: {e}" for e in c["errors"]]
        ic = c["ic"].get("choice")
        for name in CALLS[1:]:
            other = c[name].get("choice")
            if ic is not None and other is not None and ic != other:
                out.append(f"{tag}: GaussianMixtureIC chose {ic}, {name} {other}")
        d = c["cell_bic_rel_diff"].get("gridsearch_ours")
        if d and d["max"] is not None and not d["max"] <= rtol:
            out.append(
                f"{tag}: cell {d['cell']}: BIC of GaussianMixtureIC and of "
                f"GaussianMixture fitted alone differ by {d['max']:.2e} relative"
            )
    return out


def gridsearch_table(cases):
    """Times, ratios and choices."""
    header = ["n", "cells", "IC s", "GridSearchCV sklearn s", "GridSearchCV ours s"]
    header += ["sklearn grid / IC", "ours grid / IC", "sklearn grid / ours grid"]
    header += ["<choice IC", "<choice grid sklearn", "<choice grid ours", "<same"]
    header += ["max rel diff cell BIC vs ours grid", "vs sklearn grid"]
    rows = []
    for c in cases:
        row = [c["n"], c["n_cells"]] + [h.fmt(c[k]["median_s"], ".3f") for k in CALLS]
        row += [h.fmt(c["ratios"][k], "x") for k in CALLS[1:]]
        row.append(h.fmt(c["ratio_sklearn_to_ours_grid"], "x"))
        row += [
            "{}/{}".format(*c[k]["choice"]) if "choice" in c[k] else "—" for k in CALLS
        ]
        row.append("yes" if c["same_choice"] else "NO")
        for k in ("gridsearch_ours", "gridsearch_sklearn"):
            d = c["cell_bic_rel_diff"].get(k, {})
            row.append(
                f"{h.fmt(d.get('max'), '.1e')} ({d['cell']})" if d.get("cell") else "—"
            )
        rows.append(row)
    return h.table(header, rows)


# -- mclust -------------------------------------------------------------------

R_CHECK = """
suppressPackageStartupMessages(library(mclust))
write.table(datasets::faithful, commandArgs(trailingOnly = TRUE)[1], sep = ",",
            row.names = FALSE, col.names = FALSE)
cat(R.version.string, "\\n", as.character(packageVersion("mclust")), "\\n", sep = "")
"""

R_MCLUST = """
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
G <- seq_len(as.integer(args[2]))
models <- strsplit(args[3], ",")[[1]]
suppressPackageStartupMessages(library(mclust))
for (name in strsplit(args[4], ",")[[1]]) {
  X <- as.matrix(read.csv(file.path(dir, paste0(name, ".csv")), header = FALSE))
  elapsed <- system.time(
    fit <- Mclust(X, G = G, modelNames = models, verbose = FALSE)
  )[["elapsed"]]
  cells <- expand.grid(G = G, model = models, stringsAsFactors = FALSE)
  B <- fit$BIC
  cells$bic <- mapply(function(g, m) B[as.character(g), m], cells$G, cells$model)
  cells$df <- mapply(function(g, m) nMclustParams(m, ncol(X), g), cells$G,
                     cells$model)
  cells$loglik <- (cells$bic + cells$df * log(nrow(X))) / 2
  write.csv(cells, file.path(dir, paste0(name, ".cells.csv")), row.names = FALSE)
  choice <- data.frame(G = fit$G, model = fit$modelName, loglik = fit$loglik,
                       df = fit$df, bic = fit$bic, n = fit$n, elapsed = elapsed)
  write.csv(choice, file.path(dir, paste0(name, ".choice.csv")), row.names = FALSE)
}
"""


def find_mclust(workdir, timeout):
    """``(Rscript, versions)`` if R with mclust can run, else ``(None, reason)``;
    writes R's ``faithful`` to ``workdir/faithful.csv`` on the way."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None, "Rscript not found on PATH"
    script = Path(workdir, "check.R")
    script.write_text(R_CHECK, "utf-8")
    try:
        proc = subprocess.run(
            [rscript, "--vanilla", str(script), str(Path(workdir, "faithful.csv"))],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"Rscript could not run: {type(exc).__name__}: {exc}"
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or ["?"]
        error = next((x for x in lines if "Error" in x), lines[-1])
        return None, f"R package mclust not usable: {error.strip()}"
    r_version, mclust_version = proc.stdout.strip().splitlines()[:2]
    return rscript, {"r": r_version, "mclust": mclust_version}


def load_dataset(name, seed, workdir):
    """``(X, description)`` of a data set of the comparison."""
    from sklearn.datasets import load_iris, load_wine
    from sklearn.preprocessing import StandardScaler

    if name == "three_gaussians":
        return make_three_gaussians(1_500, random_state=seed)[0], "make_three_gaussians"
    if name == "iris":
        return load_iris().data, "sklearn load_iris (4 features)"
    if name == "wine_std":
        X = StandardScaler().fit_transform(load_wine().data)
        return X, "sklearn load_wine, StandardScaler (13 features)"
    if name == "faithful":
        X = np.loadtxt(Path(workdir, "faithful.csv"), delimiter=",", ndmin=2)
        return X, "R datasets::faithful (eruptions, waiting)"
    raise ValueError(name)


def read_csv(path):
    """Rows of a CSV written by R as dicts, ``NA`` as nan, numbers as float."""

    def value(text):
        if text == "NA":
            return float("nan")
        try:
            return float(text)
        except ValueError:
            return text

    with open(path, newline="", encoding="utf-8") as f:
        return [{k: value(v) for k, v in row.items()} for row in csv.DictReader(f)]


def run_mclust(rscript, workdir, names, max_components, timeout):
    """Run Mclust on ``workdir/NAME.csv`` of each name, in one R process.

    Returns ``{name: {"cells": {"k/type": {bic, df, loglik}}, "choice": ...}}``
    with mclust's own sign of BIC (higher is better).
    """
    script = Path(workdir, "mclust.R")
    script.write_text(R_MCLUST, "utf-8")
    types = {v: k for k, v in MCLUST_MODELS.items()}
    proc = subprocess.run(
        [
            rscript, "--vanilla", str(script), str(workdir), str(max_components),
            ",".join(MCLUST_MODELS.values()), ",".join(names),
        ],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed ({proc.returncode}): {proc.stderr[-2000:]}")
    out = {}
    for name in names:
        cells = {
            cell_key(r["G"], types[r["model"]]): {
                "bic": r["bic"], "df": int(r["df"]), "loglik": r["loglik"],
            }
            for r in read_csv(Path(workdir, f"{name}.cells.csv"))
        }  # fmt: skip
        choice = read_csv(Path(workdir, f"{name}.choice.csv"))[0]
        out[name] = {
            "cells": cells,
            "choice": [int(choice["G"]), types[choice["model"]]],
            "chosen": {k: choice[k] for k in ("loglik", "df", "bic", "n")},
            "elapsed_s": choice["elapsed"],
        }
    return out


def against_mclust(cells, m):
    """Cell-by-cell comparison of our ``cells`` with mclust's ``m["cells"]``:
    BIC relative differences (ours against -BIC_mclust) and the cells where
    ours reached a log-likelihood higher or lower by more than
    :data:`SAME_LOGLIK`."""
    bic = {k: v["bic"] for k, v in cells.items()}
    neg = {k: -v["bic"] for k, v in m["cells"].items()}
    diffs = {
        k: cells[k]["log_likelihood"] - m["cells"][k]["loglik"]
        for k in cells
        if k in m["cells"]
    }
    finite = {k: d for k, d in diffs.items() if math.isfinite(d)}
    return {
        "bic_rel_diff": max_rel(bic, neg),
        "loglik_higher": sorted(k for k, d in finite.items() if d > SAME_LOGLIK),
        "loglik_lower": sorted(k for k, d in finite.items() if d < -SAME_LOGLIK),
        "loglik_same": sum(abs(d) <= SAME_LOGLIK for d in finite.values()),
        "loglik_diff": diffs,
    }


def explain(case):
    """Why the choices differ, from the log-likelihoods of the two cells.

    Per cell: which fit reached the higher log-likelihood with the default
    ``tol``, and whether ours at ``tol=1e-6`` (stopped short) or with more
    starts (another local optimum) reaches mclust's.
    """
    ours, theirs = cell_key(*case["ours_choice"]), cell_key(*case["mclust_choice"])
    o, m = case["ours_cells"], case["mclust_cells"]
    if any(
        o[c]["n_parameters"] != m[c]["df"]
        for c in (ours, theirs)
        if math.isfinite(o[c]["n_parameters"])
    ):
        return "parameter counts differ"
    parts = []
    for cell, who in ((theirs, "mclust's choice"), (ours, "our choice")):
        diff = o[cell]["log_likelihood"] - m[cell]["loglik"]
        others = {k: v["loglik_diff"][cell] for k, v in case["variants"].items()}
        numbers = ", ".join(f"{k}: {v:+.3f}" for k, v in others.items())
        if not math.isfinite(diff):
            what = "not fitted by one of them"
        elif abs(diff) <= SAME_LOGLIK:
            what = "same log-likelihood"
        elif diff > 0:
            what = "ours reached the higher log-likelihood"
        else:
            what = "mclust's reached the higher log-likelihood"
            reach = [k for k, v in others.items() if v >= -SAME_LOGLIK]
            if reach and reach[0] == "tol=1e-6":
                what += ": ours stopped short at the default tol (tol=1e-6 reaches it)"
            elif reach:
                what += f": another local optimum ({reach[0]} reaches it)"
            else:
                what += ": another local optimum"
        parts.append(f"{who} {cell}: {what} (ours - mclust = {diff:+.3f}; {numbers})")
    return "; ".join(parts)


def fit_ic(X, kmax, seed, **params):
    """``(fitted GaussianMixtureIC, seconds)``, convergence warnings silenced."""
    ic = GaussianMixtureIC(
        n_components=kmax, criterion="bic", random_state=seed, **params
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        ic.fit(X)
        return ic, time.perf_counter() - t0


def suite_mclust(cfg):
    """GaussianMixtureIC(n_components=K, criterion='bic', random_state=seed)
    vs R mclust's Mclust(X, G=1:K, modelNames=c('VVV','EEE','VVI','VII')) on
    three-Gaussian (1,500 rows), iris, standardised wine and R's faithful;
    ours is compared with -BIC_mclust (mclust: 2 loglik - df log n). Also
    ours with tol=1e-6 (mclust iterates to a relative 1e-5 of the
    log-likelihood, ours by default to 1e-3 of its mean) and with tol=1e-6,
    n_init=10: a difference that survives both is another local optimum."""
    kmax, seed = cfg["max_components"], cfg["seed"]
    with tempfile.TemporaryDirectory(prefix="sel_mclust_", dir="/tmp") as workdir:
        rscript, found = find_mclust(workdir, cfg["r_timeout"])
        if rscript is None:
            h.progress(f"mclust skipped: {found}")
            return {"skipped": found, "cases": []}
        data = {}
        for name in cfg["datasets"]:
            X, description = load_dataset(name, seed, workdir)
            np.savetxt(Path(workdir, f"{name}.csv"), X, delimiter=",", fmt="%.17g")
            data[name] = X, description
        try:
            mclust = run_mclust(rscript, workdir, list(data), kmax, cfg["r_timeout"])
        except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
            error = f"{type(exc).__name__}: {exc}"
            return {"skipped": None, "versions": found, "error": error, "cases": []}
    cases = []
    for name, (X, description) in data.items():
        ic, elapsed = fit_ic(X, kmax, seed)
        m = mclust[name]
        ours_cells = ic_cells(ic)
        ours_bic = {k: v["bic"] for k, v in ours_cells.items()}
        mclust_neg = {k: -v["bic"] for k, v in m["cells"].items()}
        ours_choice = [int(ic.n_components_), ic.covariance_type_]
        counts = [
            (k, v["n_parameters"], m["cells"][k]["df"])
            for k, v in ours_cells.items()
            if k in m["cells"] and math.isfinite(v["n_parameters"])
        ]
        case = {
            "dataset": name,
            "description": description,
            "n": X.shape[0],
            "n_features": X.shape[1],
            "ours_choice": ours_choice,
            "mclust_choice": m["choice"],
            "same_choice": ours_choice == m["choice"],
            "ours_s": elapsed,
            "mclust_s": m["elapsed_s"],
            "mclust_chosen": m["chosen"],
            "ours_cells": ours_cells,
            "mclust_cells": m["cells"],
            **against_mclust(ours_cells, m),
            "n_parameters_checked": len(counts),
            "n_parameters_mismatch": [
                {"cell": k, "ours": p, "mclust_df": df}
                for k, p, df in counts
                if p != df
            ],
            "cells_not_fitted": {
                "ours": sorted(k for k, v in ours_bic.items() if not math.isfinite(v)),
                "mclust": sorted(
                    k for k, v in mclust_neg.items() if not math.isfinite(v)
                ),
            },
            "variants": {},
        }
        for who, cell in (("ours", ours_choice), ("mclust", m["choice"])):
            key = cell_key(*cell)
            case[f"bic_of_{who}_choice"] = {
                "ours": ours_bic.get(key), "mclust_negated": mclust_neg.get(key),
            }  # fmt: skip
        for label, params in VARIANTS.items():
            variant, seconds = fit_ic(X, kmax, seed, **params)
            cells = ic_cells(variant)
            choice = [int(variant.n_components_), variant.covariance_type_]
            case["variants"][label] = {
                "params": params,
                "choice": choice,
                "same_choice": choice == m["choice"],
                "seconds": seconds,
                "cells": cells,
                **against_mclust(cells, m),
            }
        case["why"] = None if case["same_choice"] else explain(case)
        cases.append(case)
        h.progress(f"mclust {name}")
    return {"skipped": None, "versions": found, "error": None, "cases": cases}


def mclust_failures(suite):
    """An R failure with mclust installed, or a parameter count that differs."""
    out = [f"mclust: {suite['error']}"] if suite.get("error") else []
    for c in suite["cases"]:
        out += [
            f"mclust {c['dataset']} {x['cell']}: {x['ours']:g} parameters, "
            f"mclust df {x['mclust_df']}"
            for x in c["n_parameters_mismatch"]
        ]
    return out


def mclust_label(choice):
    """``"k/type (MODEL)"``."""
    return f"{choice[0]}/{choice[1]} ({MCLUST_MODELS[choice[1]]})"


def mclust_tables(suite):
    """Choices with the BIC of both, and the parameter-count check."""
    rows, counts, lines = [], [], []
    for c in suite["cases"]:
        o, m = c["bic_of_ours_choice"], c["bic_of_mclust_choice"]
        rows.append([
            c["dataset"], c["n"], c["n_features"],
            "{}/{}".format(*c["ours_choice"]),
            mclust_label(c["mclust_choice"]),
            "yes" if c["same_choice"] else "NO",
            h.fmt(o["ours"], ".2f"), h.fmt(m["ours"], ".2f"),
            h.fmt(o["mclust_negated"], ".2f"), h.fmt(m["mclust_negated"], ".2f"),
        ])  # fmt: skip
        for label, v in [("default", c), *c["variants"].items()]:
            d = v["bic_rel_diff"]
            choice = v["choice"] if label != "default" else c["ours_choice"]
            cells = v["cells"] if label != "default" else c["ours_cells"]
            lines.append([
                c["dataset"], label, "{}/{}".format(*choice),
                "yes" if choice == c["mclust_choice"] else "NO",
                h.fmt(cells[cell_key(*choice)]["bic"], ".2f"),
                h.fmt(cells[cell_key(*c["mclust_choice"])]["bic"], ".2f"),
                h.fmt(-c["mclust_chosen"]["bic"], ".2f"),
                f"{h.fmt(d['max'], '.1e')} ({d['cell']})", h.fmt(d["median"], ".1e"),
                v["loglik_same"], len(v["loglik_higher"]), len(v["loglik_lower"]),
            ])  # fmt: skip
        nf = c["cells_not_fitted"]
        counts.append([
            c["dataset"], c["n_parameters_checked"], len(c["n_parameters_mismatch"]),
            ", ".join(nf["ours"]) or "—", ", ".join(nf["mclust"]) or "—",
            h.fmt(c["ours_s"], ".2f"), h.fmt(c["mclust_s"], ".2f"),
        ])  # fmt: skip
    header = ["<data", "n", "d", "<ours", "<mclust", "<same"]
    header += ["ours BIC @ours", "ours BIC @mclust's"]
    header += ["-mclust BIC @ours", "-mclust BIC @mclust's"]
    parts = [h.table(header, rows)]
    header = ["<data", "<ours fit", "<choice", "<same as mclust"]
    header += ["ours BIC @its choice", "ours BIC @mclust's", "-mclust BIC @mclust's"]
    header += ["max rel diff BIC (cell)", "median rel diff"]
    header += ["cells same loglik", "ours higher", "mclust's higher"]
    parts += [
        "",
        f"Every fit of ours against mclust, cell by cell (log-likelihoods within "
        f"{SAME_LOGLIK} count as the same; the JSON lists the cells):",
        "",
    ]
    parts.append(h.table(header, lines))
    why = [f"- {c['dataset']}: {c['why']}" for c in suite["cases"] if c["why"]]
    if why:
        parts += ["", "Where the choices differ:", "", *why]
    header = ["<data", "cells checked", "n_parameters != df"]
    header += ["<not fitted ours", "<NA in mclust", "ours IC s", "mclust s"]
    parts += ["", h.table(header, counts)]
    return "\n".join(parts)


# -- the run ------------------------------------------------------------------


def source():
    """Git commit of the checkout and whether ``sklearn_em/`` differs from it
    (``None`` outside a git checkout)."""
    root = Path(__file__).resolve().parents[1]

    def git(*args):
        proc = subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    try:
        commit = git("rev-parse", "HEAD")
        status = git("status", "--porcelain", "--", "sklearn_em")
    except OSError:
        return {"commit": None, "sklearn_em_modified": None}
    return {
        "commit": commit,
        "sklearn_em_modified": None if status is None else bool(status),
    }


def measure(cfg):
    """Run the chosen suites and collect the failures."""
    suites, failures = {}, []
    if "gridsearch" in cfg["suite"]:
        cases = suite_gridsearch(cfg)
        suites["gridsearch"] = {
            "description": " ".join(suite_gridsearch.__doc__.split()),
            "cases": cases,
        }
        failures += gridsearch_failures(cases, cfg["rtol"])
    if "mclust" in cfg["suite"]:
        suite = suite_mclust(cfg)
        suites["mclust"] = {
            "description": " ".join(suite_mclust.__doc__.split()),
            **suite,
        }
        failures += mclust_failures(suite)
    notes = []
    if suites.get("mclust", {}).get("skipped"):
        notes.append(f"mclust suite skipped: {suites['mclust']['skipped']}")
    return {
        "source": source(),
        "suites": suites,
        "failures": failures,
        "notes": notes,
    }


def report(results, cfg):
    """Markdown: one section per suite."""
    parts = []
    threads = cfg["threads"] or "default (no limit)"
    for name, suite in results["suites"].items():
        parts += [f"## {name}", "", suite["description"], ""]
        if name == "gridsearch":
            parts += [f"BLAS/OpenMP threads: {threads}.", ""]
            parts.append(gridsearch_table(suite["cases"]))
        elif suite.get("skipped"):
            parts.append(f"skipped: {suite['skipped']}")
        elif suite.get("error"):
            parts.append(f"failed: {suite['error']}")
        else:
            v = suite["versions"]
            parts += [f"{v['r']}, mclust {v['mclust']}.", ""]
            parts.append(mclust_tables(suite))
        parts.append("")
    return "\n".join(parts)


def main(argv=None):
    """Run the benchmark; 0 when every check passes, else 1."""
    p = h.parser(
        "GaussianMixtureIC against GridSearchCV and R's mclust.", "repeats", "rtol"
    )
    p.add_argument("--suite", nargs="+", choices=(*SUITES, "all"))
    p.add_argument("--sizes", type=h.size, nargs="+", help="gridsearch: rows")
    p.add_argument("--max-components", type=h.positive, help="K: grid 1..K (9)")
    p.add_argument("--datasets", nargs="+", choices=DATASETS, help="mclust: data")
    p.add_argument("--r-timeout", type=float, help="seconds per Rscript call")
    p.add_argument(
        "--no-thread-limit",
        action="store_true",
        default=None,
        help="leave BLAS/OpenMP threads at their default (else --threads or 1)",
    )
    cfg = h.settings(p.parse_args(argv), DEFAULTS, QUICK)
    cfg["suite"] = [s for s in SUITES if s in cfg["suite"] or "all" in cfg["suite"]]
    if cfg["no_thread_limit"]:
        cfg["threads"] = None
    tag = "all" if cfg["suite"] == list(SUITES) else "+".join(cfg["suite"])
    name = "bench_selection" + ("" if tag == "all" else f"-{tag}")
    output = h.default_output(name, cfg)
    return h.run("bench_selection", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
