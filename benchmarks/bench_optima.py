"""Better optima: ``init_params='multistart'`` against scikit-learn and mclust.

For every data set, covariance type and number of components ``k`` this fits

``sklearn``
    ``sklearn.mixture.GaussianMixture`` with its defaults (``n_init=1``);
``sklearn_n10``
    the same with ``n_init=10``;
``ours_kmeans``
    ``sklearn_em.GaussianMixture`` with scikit-learn's start (``'kmeans'``);
``ours_multistart``
    ``sklearn_em.GaussianMixture(init_params='multistart')``;
``mclust``
    R's ``Mclust`` (through ``Rscript``, when R and mclust are installed) for
    the matching model (VVV, EEE, VVI, VII for full, tied, diag, spherical),
    from its default model-based hierarchical start (computed once per data
    set and timed separately, ``hc_s``).

and records the final mean log-likelihood per sample of the training rows
(``score(X)``; mclust's ``loglik / n``) and the fit time. Every method runs
with its defaults otherwise (``tol=1e-3``, ``reg_covar=1e-6``; mclust is not
regularised), with ``random_state`` = ``--seed``, on one thread (BLAS held to
one thread, ``n_jobs=1``).

A method *ties* in a case when its log-likelihood is within ``--tie``
(1e-3 nats per sample) of the best of all methods, *wins* when it is more than
that above every other method, and *loses* otherwise. The summary gives the
counts, each method's worst case (its distance below the best), the cases in
which ``ours_multistart`` ends more than ``--tie`` below the best of
``sklearn_n10`` and ``mclust`` (the target of issue 14 is none), and time
ratios against ``sklearn_n10``.

Data sets, all standardised (zero mean, unit variance per feature):

``overlap``
    1000 rows, 2-D, four overlapping components of unequal weight
    (0.4, 0.3, 0.2, 0.1) and unequal, correlated covariances.
``elongated``
    1000 rows, 2-D: scikit-learn's anisotropic blobs (``make_blobs`` of
    unequal sizes 500/300/200, mapped by ``[[0.6, -0.6], [-0.4, 0.8]]``, as in
    the gallery example "Demonstration of k-means assumptions").
``outliers``
    1000 rows, 3-D: three components plus 5% of rows uniform over a box
    three times the data's extent.
``iris``, ``wine``, ``breast_cancer``
    scikit-learn's copies of the UCI data sets (4, 13 and 30 features).
``digits_pca5``
    scikit-learn's digits, first five principal components (1797 rows).
``overlap_10k``
    ``overlap`` with 10 000 rows (another draw), where the cost of an EM
    iteration, not of Python, dominates; mclust does not run on it (its
    hierarchical start is quadratic in the rows).
``faithful``
    Old Faithful eruptions (Azzalini & Bowman 1990; R's
    ``datasets::faithful``, 272 rows, 2-D), the classic test case of
    mixture-model software; read from R, so only when R is installed.

Usage::

    nice -n 10 python benchmarks/bench_optima.py            # the full table
    python benchmarks/bench_optima.py --quick               # < 60 s, 2 data sets

Unless ``--quick``, it also times one fit on ``--large-rows`` (1e6) rows with
``'kmeans'`` (the default) and with ``'multistart'``: the issue's condition
for making the new start the default is that it costs no more there.

The exit status is 0 when every method produced a finite result for every
case it ran (mclust may fail on a model; that is recorded, not failed).
"""

from __future__ import annotations

import argparse
import ast
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.mixture import GaussianMixture as SkGaussianMixture
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness  # puts the checkout's sklearn_em on the path

from sklearn_em import GaussianMixture, _engine, _optima, config_context

DATASETS = (
    "overlap",
    "elongated",
    "outliers",
    "iris",
    "wine",
    "breast_cancer",
    "digits_pca5",
    "faithful",
    "overlap_10k",
)
# Too many rows for mclust's hierarchical start (quadratic memory).
NO_MCLUST = ("overlap_10k",)
QUICK_DATASETS = ("overlap", "iris")
METHODS = ("sklearn", "sklearn_n10", "ours_kmeans", "ours_multistart", "mclust")
MCLUST_MODELS = {"full": "VVV", "tied": "EEE", "diag": "VVI", "spherical": "VII"}
DEFAULT_OUTPUT = _harness.RESULTS_DIR / "bench_optima.json"

R_MCLUST = """
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]
G <- as.integer(strsplit(args[2], ",")[[1]])
models <- strsplit(args[3], ",")[[1]]
suppressPackageStartupMessages(library(mclust))
out <- NULL
for (name in strsplit(args[4], ",")[[1]]) {
  X <- as.matrix(read.csv(file.path(dir, paste0(name, ".csv")), header = FALSE))
  hc_s <- system.time(hcp <- hc(X, modelName = mclust.options("hcModelName"),
                                use = mclust.options("hcUse")))[["elapsed"]]
  for (m in models) for (g in G) {
    t <- system.time(fit <- Mclust(X, G = g, modelNames = m, verbose = FALSE,
                                   initialization = list(hcPairs = hcp)))[["elapsed"]]
    ll <- if (is.null(fit)) NA else fit$loglik
    out <- rbind(out, data.frame(name = name, G = g, model = m, loglik = ll,
                                 n = nrow(X), elapsed = t, hc = hc_s))
  }
}
write.csv(out, file.path(dir, "mclust.csv"), row.names = FALSE)
cat(R.version.string, "\\n", as.character(packageVersion("mclust")), "\\n", sep = "")
"""

R_FAITHFUL = """
write.table(datasets::faithful, commandArgs(trailingOnly = TRUE)[1], sep = ",",
            row.names = FALSE, col.names = FALSE)
"""


def standardised(X):
    X = np.asarray(X, dtype=np.float64)
    return (X - X.mean(axis=0)) / X.std(axis=0)


def load_dataset(name, rscript, workdir):
    """``(X, description)`` of a data set, standardised; ``None`` for
    ``faithful`` without R."""
    from sklearn import datasets
    from sklearn.decomposition import PCA

    rng = np.random.RandomState(20140)
    if name in ("overlap", "overlap_10k"):
        n = 1000 if name == "overlap" else 10_000
        if name == "overlap_10k":
            rng = np.random.RandomState(20141)
        weights = np.array([0.4, 0.3, 0.2, 0.1])
        means = np.array([[0.0, 0.0], [2.0, 0.5], [0.5, 2.0], [2.5, 2.5]])
        covs = [
            [[1.0, 0.3], [0.3, 0.6]],
            [[0.5, -0.2], [-0.2, 0.8]],
            [[0.3, 0.0], [0.0, 1.2]],
            [[0.2, 0.1], [0.1, 0.2]],
        ]
        labels = rng.choice(4, size=n, p=weights)
        X = np.array([rng.multivariate_normal(means[j], covs[j]) for j in labels])
        what = f"4 overlapping 2-D Gaussians, weights 0.4/0.3/0.2/0.1, {n} rows"
    elif name == "elongated":
        X, _ = datasets.make_blobs(
            n_samples=[500, 300, 200], random_state=170, cluster_std=1.0
        )
        X = X @ np.array([[0.6, -0.6], [-0.4, 0.8]])
        what = "make_blobs 500/300/200 mapped by [[0.6,-0.6],[-0.4,0.8]]"
    elif name == "outliers":
        means = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
        labels = rng.choice(3, size=950, p=[0.5, 0.3, 0.2])
        inliers = means[labels] + rng.standard_normal((950, 3)) * [1.0, 0.7, 0.5]
        low, high = inliers.min(axis=0), inliers.max(axis=0)
        middle, extent = (low + high) / 2, high - low
        outliers = middle + (rng.uniform(size=(50, 3)) - 0.5) * 3 * extent
        X = np.vstack([inliers, outliers])
        what = "3 Gaussians in 3-D (950 rows) + 50 uniform outliers"
    elif name == "iris":
        X, what = datasets.load_iris().data, "sklearn load_iris (150 x 4)"
    elif name == "wine":
        X, what = datasets.load_wine().data, "sklearn load_wine (178 x 13)"
    elif name == "breast_cancer":
        X = datasets.load_breast_cancer().data
        what = "sklearn load_breast_cancer (569 x 30)"
    elif name == "digits_pca5":
        X = PCA(5, random_state=0).fit_transform(datasets.load_digits().data)
        what = "sklearn load_digits, first 5 principal components (1797 x 5)"
    elif name == "faithful":
        if rscript is None:
            return None
        path = Path(workdir, "faithful_raw.csv")
        script = Path(workdir, "faithful.R")
        script.write_text(R_FAITHFUL, "utf-8")
        subprocess.run(
            [rscript, "--vanilla", str(script), str(path)], check=True, timeout=120
        )
        X = np.loadtxt(path, delimiter=",", ndmin=2)
        what = "R datasets::faithful (272 x 2: eruptions, waiting)"
    else:
        raise ValueError(name)
    return standardised(X), what + ", standardised"


def lscpu_model():
    """``Model name`` as ``lscpu`` reports it, or None."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    except OSError:
        return None
    for line in out.splitlines():
        if line.startswith("Model name:"):
            return line.split(":", 1)[1].strip()
    return None


def find_rscript():
    """``(Rscript, None)`` if R with mclust runs, else ``(None, reason)``."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        return None, "Rscript not found on PATH"
    proc = subprocess.run(
        [rscript, "--vanilla", "-e", "library(mclust)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if proc.returncode != 0:
        return None, "R package mclust not usable: " + proc.stderr.strip()[-300:]
    return rscript, None


def run_mclust(rscript, workdir, data, ks, covariance_types):
    """mclust per case: ``{(name, cov, k): (loglik_per_sample, seconds)}``,
    per data set its hierarchical start's seconds, and R's versions."""
    for name, X in data.items():
        np.savetxt(Path(workdir, f"{name}.csv"), X, delimiter=",", fmt="%.17g")
    script = Path(workdir, "mclust.R")
    script.write_text(R_MCLUST, "utf-8")
    models = [MCLUST_MODELS[c] for c in covariance_types]
    proc = subprocess.run(
        [
            rscript, "--vanilla", str(script), str(workdir),
            ",".join(map(str, ks)), ",".join(models), ",".join(data),
        ],
        capture_output=True, text=True, timeout=3600,
    )  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"Rscript failed: {proc.stderr[-2000:]}")
    r_version, mclust_version = proc.stdout.strip().splitlines()[-2:]
    types = {v: k for k, v in MCLUST_MODELS.items()}
    cases, hc = {}, {}
    lines = Path(workdir, "mclust.csv").read_text("utf-8").splitlines()
    header = [h.strip('"') for h in lines[0].split(",")]
    for line in lines[1:]:
        row = dict(zip(header, (v.strip('"') for v in line.split(",")), strict=True))
        loglik = float("nan") if row["loglik"] == "NA" else float(row["loglik"])
        key = (row["name"], types[row["model"]], int(row["G"]))
        cases[key] = (loglik / float(row["n"]), float(row["elapsed"]))
        hc[row["name"]] = float(row["hc"])
    return cases, hc, {"r": r_version, "mclust": mclust_version}


def fit_python(method, X, covariance_type, k, seed):
    """``(mean log-likelihood per sample, seconds)`` of one fit."""
    if method == "sklearn":
        model = SkGaussianMixture(k, covariance_type=covariance_type, random_state=seed)
    elif method == "sklearn_n10":
        model = SkGaussianMixture(
            k, covariance_type=covariance_type, n_init=10, random_state=seed
        )
    else:
        init = "kmeans" if method == "ours_kmeans" else "multistart"
        model = GaussianMixture(
            k,
            covariance_type=covariance_type,
            init_params=init,
            random_state=seed,
            n_jobs=1,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence, degenerate components
        start = time.perf_counter()
        model.fit(X)
        seconds = time.perf_counter() - start
    return float(model.score(X)), seconds


def large_cost(n_rows, seed):
    """The issue's condition for a default: the cost of one fit at ``n_rows``
    rows (``overlap``'s mixture, 2-D), ``'kmeans'`` against ``'multistart'``,
    for a few (k, covariance type); threads as ``n_jobs=None`` chooses. On
    each engine, pinned (``'numba'`` loaded first, when installed): under
    ``'auto'`` the first large fit would start loading the compiled kernel
    and later fits would switch to it mid-table."""
    rng = np.random.RandomState(seed)
    means = np.array([[0.0, 0.0], [2.0, 0.5], [0.5, 2.0], [2.5, 2.5]])
    labels = rng.choice(4, size=n_rows, p=[0.4, 0.3, 0.2, 0.1])
    X = means[labels] + rng.standard_normal((n_rows, 2)) * 0.6
    engines = ("numpy", "numba") if _engine.numba_installed() else ("numpy",)
    out = []
    for engine in engines:
        with config_context(engine=engine):
            if engine == "numba":
                _engine.preload()
            for k, cov in ((4, "full"), (8, "full"), (8, "diag")):
                row = {"engine": engine, "k": k, "covariance_type": cov}
                for init in ("kmeans", "multistart"):
                    gmm = GaussianMixture(
                        k, covariance_type=cov, init_params=init, random_state=seed
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        start = time.perf_counter()
                        gmm.fit(X)
                        seconds = time.perf_counter() - start
                    row[init] = {
                        "seconds": seconds,
                        "n_iter": gmm.n_iter_,
                        "loglik": gmm.score(X),
                    }
                out.append(row)
                _harness.progress(f"{n_rows} rows, {engine}, k={k} {cov}: done")
    return out


def summarise(cases, methods, tie):
    """Wins, ties, losses and the worst case per method; the target check;
    time ratios against ``sklearn_n10``."""
    per_method = {
        m: {"wins": 0, "ties": 0, "losses": 0, "worst": None} for m in methods
    }
    misses = []
    for case in cases:
        ll = {m: case[m]["loglik"] for m in methods if m in case}
        ll = {m: v for m, v in ll.items() if v is not None and math.isfinite(v)}
        best = max(ll.values())
        for m, v in ll.items():
            gap = v - best
            others = [u for n, u in ll.items() if n != m]
            if others and v > max(others) + tie:
                per_method[m]["wins"] += 1
            elif gap >= -tie:
                per_method[m]["ties"] += 1
            else:
                per_method[m]["losses"] += 1
            worst = per_method[m]["worst"]
            if worst is None or gap < worst["below_best"]:
                per_method[m]["worst"] = {"below_best": gap, "case": case["case"]}
        references = [ll[m] for m in ("sklearn_n10", "mclust") if m in ll]
        if "ours_multistart" in ll and references:
            gap = ll["ours_multistart"] - max(references)
            if gap < -tie:
                misses.append({"case": case["case"], "below": gap})
    ratios = [
        c["ours_multistart"]["seconds"] / c["sklearn_n10"]["seconds"] for c in cases
    ]
    by_dataset = {}
    for c, r in zip(cases, ratios, strict=True):
        by_dataset.setdefault(c["case"].split("/")[0], []).append(r)
    total = {
        m: sum(c[m]["seconds"] for c in cases if m in c and c[m]["seconds"])
        for m in methods
    }
    return {
        "per_method": per_method,
        "target_misses": misses,
        "time_ratio_multistart_over_sklearn_n10": {
            "median": statistics.median(ratios),
            "max": max(ratios),
            "min": min(ratios),
            "total": total["ours_multistart"] / total["sklearn_n10"],
            "median_by_dataset": {
                name: statistics.median(r) for name, r in by_dataset.items()
            },
        },
        "total_seconds": total,
    }


def report(result):
    s = result["summary"]
    rows = []
    for m, r in s["per_method"].items():
        worst = r["worst"]
        rows.append(
            [
                m,
                r["wins"],
                r["ties"],
                r["losses"],
                "—" if worst is None else f"{worst['below_best']:.4f}",
                "—" if worst is None else worst["case"],
                f"{s['total_seconds'][m]:.1f}",
            ]
        )
    print(
        _harness.table(
            ["<method", "wins", "ties", "losses", "worst", "<worst case", "total s"],
            rows,
        )
    )
    t = s["time_ratio_multistart_over_sklearn_n10"]
    print(
        f"\nours_multistart / sklearn_n10 time: median {t['median']:.3f}, "
        f"max {t['max']:.3f}, total {t['total']:.3f}"
    )
    print(
        "median by data set: "
        + ", ".join(f"{n} {r:.2f}" for n, r in t["median_by_dataset"].items())
    )
    for row in result["default_cost"]["cases"]:
        km, ms = row["kmeans"], row["multistart"]
        print(
            f"{result['default_cost']['n_rows']} rows, {row.get('engine', 'auto')}, "
            f"k={row['k']} "
            f"{row['covariance_type']}: kmeans {km['seconds']:.2f} s "
            f"({km['loglik']:.4f}), multistart {ms['seconds']:.2f} s "
            f"({ms['loglik']:.4f})"
        )
    misses = s["target_misses"]
    print(
        f"cases where ours_multistart ends > {result['config']['tie']:g} nats/sample "
        f"below the best of sklearn_n10 and mclust: {len(misses)}"
    )
    for miss in misses:
        print(f"  {miss['case']}: {miss['below']:.4f}")


def search_override(text):
    """``(name, value)`` of ``NAME=VALUE``, set on :mod:`sklearn_em._optima`
    (the value a Python literal)."""
    name, _, value = text.partition("=")
    if not hasattr(_optima, name) or not name.isupper():
        raise SystemExit(f"--search: {name!r} is not a constant of sklearn_em._optima")
    parsed = ast.literal_eval(value)
    setattr(_optima, name, parsed)
    return name, parsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 data sets, k=2..3")
    parser.add_argument("--datasets", nargs="+", choices=DATASETS)
    parser.add_argument("--k-max", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tie", type=float, default=1e-3)
    parser.add_argument("--no-mclust", action="store_true")
    parser.add_argument(
        "--large-rows",
        type=int,
        default=1_000_000,
        help="rows of the default-cost check (0: skip; skipped in --quick)",
    )
    parser.add_argument(
        "--engine",
        choices=("auto", "numpy", "numba"),
        default="auto",
        help="our E-step engine (numba: the kernels are loaded before timing)",
    )
    parser.add_argument(
        "--search",
        nargs="+",
        default=[],
        metavar="NAME=VALUE",
        help="override constants of the search (sklearn_em._optima), e.g. "
        "'ROUNDS=((None, 4), (12, 8), (6, 16))', to measure a change",
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    overrides = dict(search_override(text) for text in args.search)
    names = args.datasets or (QUICK_DATASETS if args.quick else DATASETS)
    ks = list(range(2, (3 if args.quick else args.k_max) + 1))
    types = _harness.COVARIANCE_TYPES
    output = args.output or (None if args.quick else DEFAULT_OUTPUT)

    rscript, why_not = (None, "--no-mclust") if args.no_mclust else find_rscript()
    env = _harness.environment()
    env["lscpu_model"] = lscpu_model()
    env["uptime_before"] = subprocess.run(
        ["uptime"], capture_output=True, text=True
    ).stdout.strip()
    with tempfile.TemporaryDirectory() as workdir:
        data, described = {}, {}
        for name in names:
            loaded = load_dataset(name, rscript, workdir)
            if loaded is not None:
                data[name], described[name] = loaded
        mclust, hc = {}, {}
        if rscript is not None:
            _harness.progress("mclust ...")
            small = {n: X for n, X in data.items() if n not in NO_MCLUST}
            mclust, hc, env["mclust"] = run_mclust(rscript, workdir, small, ks, types)
    methods = METHODS if rscript is not None else METHODS[:-1]

    cases = []
    with threadpool_limits(limits=1), config_context(engine=args.engine):
        if args.engine == "numba":
            _engine.preload()  # compile or load now, not in a timed fit
        for name, X in data.items():
            _harness.progress(f"{name} {X.shape}")
            for cov in types:
                for k in ks:
                    case = {"case": f"{name}/{cov}/k={k}"}
                    for method in methods[:4]:
                        ll, seconds = fit_python(method, X, cov, k, args.seed)
                        case[method] = {"loglik": ll, "seconds": seconds}
                    if (name, cov, k) in mclust:
                        ll, seconds = mclust[(name, cov, k)]
                        ll = ll if math.isfinite(ll) else None
                        case["mclust"] = {"loglik": ll, "seconds": seconds}
                    cases.append(case)
    large_rows = 0 if args.quick else args.large_rows
    large = large_cost(large_rows, args.seed) if large_rows else []
    env["loadavg_after"] = _harness.loadavg()
    env["uptime_after"] = subprocess.run(
        ["uptime"], capture_output=True, text=True
    ).stdout.strip()
    failures = [
        f"{c['case']}: {m}"
        for c in cases
        for m in methods[:4]
        if not math.isfinite(c[m]["loglik"])
    ]
    result = {
        "benchmark": "bench_optima",
        "config": {
            "datasets": described,
            "k": ks,
            "covariance_types": list(types),
            "seed": args.seed,
            "engine": args.engine,
            "search": {name: repr(value) for name, value in overrides.items()},
            "tie": args.tie,
            "quick": args.quick,
            "mclust": "used" if rscript is not None else why_not,
            "mclust_hc_seconds": hc,
        },
        "environment": env,
        "summary": summarise(cases, methods, args.tie),
        "default_cost": {"n_rows": large_rows, "cases": large},
        "cases": cases,
        "failures": failures,
        "ok": not failures,
    }
    report(result)
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(result, indent=1) + "\n", "utf-8")
        _harness.progress(f"wrote {output}")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
