"""Time ``sklearn_em.BayesianGaussianMixture`` against scikit-learn's, and check
they agree.

Cases: three-Gaussian data (2-D) at 1e4, 1e5 and 1e6 rows, every covariance
type with the Dirichlet-process prior, and for 'full' also the Dirichlet
distribution prior and 6 components (an upper bound above the 3 clusters);
``make_blobs(n_features=32, centers=16)`` with 16 components, 'full' and
'diag'. Both libraries get the same ``random_state`` and ``init_params``
(they draw the same start; ``'random'`` by default: its cost is small and
steady, where a k-means start's varying time would blur the difference
below), ``tol=0`` and a fixed ``max_iter``. The time per
iteration is ``(t(max_iter=N) - t(max_iter=1)) / (N - 1)`` of interleaved
repeats (median over the repeats of each repeat's difference): the
difference leaves out input validation, the initialisation and the final
labels pass. Every case is timed with the default BLAS threads and under
``threadpool_limits(1)``, both interleaved in the same repeats.

Peak memory (``tracemalloc`` during ``fit``, ``X`` excluded, and the growth of
``ru_maxrss``), each library in a fresh process as in ``bench_memory.py``:
one fit from the initialisation, then one warm-started fit (iterations and
the labels pass only).

Exit status 1 if a lower bound differs from scikit-learn's by more than
``--rtol`` (relative, 1e-8), if ``n_iter_`` is not the ``max_iter`` asked
for, or if a call raises; speed is never asserted (the speed-up at 1e6
rows, ``target_size``, against the 15x target is a NOTE).

Examples
--------
::

    python benchmarks/bench_bayesian.py            # 1e4 1e5 1e6 rows, wide 1e5
    python benchmarks/bench_bayesian.py --quick    # tiny sizes, < 20 s
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from sklearn.datasets import make_blobs
from sklearn.mixture import BayesianGaussianMixture as SkBayesianGaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

from sklearn_em import BayesianGaussianMixture as OurBayesianGaussianMixture
from sklearn_em.datasets import make_three_gaussians

DP, DIRICHLET = "dirichlet_process", "dirichlet_distribution"
CLASSES = {"ours": OurBayesianGaussianMixture, "sklearn": SkBayesianGaussianMixture}
BLAS = ("default", "1")  # BLAS/OpenMP threads: as found, or threadpool_limits(1)
DEFAULTS = {
    "sizes": [10_000, 100_000, 1_000_000], "covariance_types": list(h.COVARIANCE_TYPES),
    "wide_size": 100_000, "memory_sizes": [100_000, 1_000_000], "blas": list(BLAS),
    "init_params": "random", "n_iter": 10, "repeats": 3, "n_jobs": None,
    "rtol": 1e-8, "threads": None, "timeout": None, "speedup_target": 15.0,
    "target_size": 1_000_000,
}  # fmt: skip
QUICK = {
    "sizes": [2_000], "wide_size": 1_000, "memory_sizes": [5_000], "n_iter": 4,
    "repeats": 1,
}  # fmt: skip


def estimator(lib, case, max_iter, seed, n_jobs=None, **extra):
    """Unfitted BayesianGaussianMixture of ``lib`` for ``case``, ``tol=0``."""
    if lib == "ours":
        extra["n_jobs"] = n_jobs
    return CLASSES[lib](
        n_components=case["n_components"],
        covariance_type=case["covariance_type"],
        weight_concentration_prior_type=case["prior"],
        init_params=case["init_params"],
        tol=0.0,
        max_iter=max_iter,
        random_state=seed,
        **extra,
    )


def lower_bound(est):
    """``lower_bound_`` as a float (sklearn's is an array of shape (1,) for
    'tied')."""
    return np.asarray(est.lower_bound_, dtype=np.float64).item()


def variants(blas):
    """Timed variants: ``name -> (library, BLAS limit)``; ``ours``/``sklearn``
    with the default threads, ``*_blas1`` under ``threadpool_limits(1)``."""
    return {
        lib + ("" if mode == "default" else "_blas1"): (lib, mode)
        for mode in blas
        for lib in CLASSES
    }


def limiter(mode):
    """Context holding BLAS and OpenMP to one thread (``mode == "1"``)."""
    if mode == "default":
        return nullcontext()
    from threadpoolctl import threadpool_limits

    return threadpool_limits(1)


def time_case(X, case, cfg):
    """Fits of ``max_iter=1`` and ``max_iter=N`` of every variant, interleaved.

    Records per variant the fit times, the per-iteration times of each repeat
    ``(t_N - t_1) / (N - 1)`` and their median, and ``n_iter_`` and the lower
    bound of both fits; per BLAS mode the speed-up (sklearn / ours) and the
    relative difference of the lower bounds.
    """
    n_iter, seed = cfg["n_iter"], cfg["seed"]
    named = variants(cfg["blas"])

    def fit(name, iters, rows):
        lib, mode = named[name]
        est = estimator(lib, case, iters, seed, cfg["n_jobs"])
        with limiter(mode):
            return est.fit(rows)

    # First calls pay for lazy imports and thread start-up: not in repeat 0.
    h.interleaved({k: lambda k=k: fit(k, 2, X[:2_000]) for k in named}, 1)
    calls = {(k, i): lambda k=k, i=i: fit(k, i, X) for k in named for i in (1, n_iter)}
    times, fitted, errors = h.interleaved(calls, cfg["repeats"])
    n, d = X.shape
    case = {"n": n, "n_features": d, **case, "n_iter_expected": n_iter}
    case.update(variants=list(named), errors=errors)
    for name, (lib, mode) in named.items():
        t1, tn = times[name, 1], times[name, n_iter]
        per_iter = [(b - a) / (n_iter - 1) for a, b in zip(t1, tn, strict=False)]
        entry = case[name] = {"library": lib, "blas": mode}
        entry.update(times_s_1=t1, times_s_n=tn, s_per_iter=per_iter)
        entry.update(median_s_per_iter=h.median(per_iter), median_fit_s=h.median(tn))
        if lib == "ours":
            entry["n_jobs"] = cfg["n_jobs"]
            entry["n_jobs_effective"] = h.threads_of_ours(
                cfg["n_jobs"], n, case["n_components"], d, case["covariance_type"]
            )
        for iters, suffix in ((1, "_1"), (n_iter, "")):
            est = fitted.get((name, iters))
            entry["n_iter" + suffix] = None if est is None else int(est.n_iter_)
            entry["lower_bound" + suffix] = None if est is None else lower_bound(est)
    for mode in cfg["blas"]:
        ours, sk = (case[k] for k in named if named[k][1] == mode)
        case[f"speedup_blas_{mode}"] = h.ratio(
            sk["median_s_per_iter"], ours["median_s_per_iter"]
        )
    case["speedup"] = case.get("speedup_blas_default")
    for suffix in ("_1", ""):
        case["lower_bound_rel_diff" + suffix] = max(
            (rel_diff(case, mode, suffix) for mode in cfg["blas"]), default=None
        )
    return case


def rel_diff(case, mode, suffix=""):
    """Relative difference of ours' and sklearn's lower bounds in ``mode``
    (``suffix`` ``"_1"``: after one iteration); inf when one is missing."""
    pair = [
        case[k]["lower_bound" + suffix]
        for k in case["variants"]
        if case[k]["blas"] == mode
    ]
    if None in pair:
        return float("inf")
    return h.relative_difference(*pair)


def cases_of(cfg):
    """``(data, case)`` pairs, data made once per size; case without ``n``."""
    seed = cfg["seed"]
    for n in cfg["sizes"]:
        X, _ = make_three_gaussians(n, random_state=seed)
        specs = [(cov, DP, 3) for cov in cfg["covariance_types"]]
        if "full" in cfg["covariance_types"]:
            specs += [("full", DIRICHLET, 3), ("full", DP, 6)]
        for cov, prior, k in specs:
            yield "sizes", X, dict(covariance_type=cov, prior=prior, n_components=k)
    X, _ = make_blobs(cfg["wide_size"], n_features=32, centers=16, random_state=seed)
    for cov in ("full", "diag"):
        yield "wide", X, dict(covariance_type=cov, prior=DP, n_components=16)


def memory_worker(spec):
    """In a fresh process: the memory of one fit from the initialisation and
    of one warm-started fit (``X`` excluded: tracing starts after loading it)."""
    import tracemalloc

    X = np.load(spec["data"])
    args = (spec[k] for k in ("lib", "case", "n_iter", "seed", "n_jobs"))
    make = functools.partial(estimator, *args)
    out = {}
    from threadpoolctl import threadpool_limits

    threads = spec["threads"]  # --threads, as in the parent's timed section
    with threadpool_limits(threads) if threads else nullcontext():
        h.timed(lambda: make().fit(X[:1_000]))
        gc.collect()
        rss, maxrss = h.rss_mib(), h.maxrss_mib()
        est = make()
        for phase, warm in (("fit", False), ("warm", True)):
            est.set_params(warm_start=warm)
            tracemalloc.start()
            seconds, _ = h.timed(functools.partial(est.fit, X))
            current, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            out[phase] = {
                "tracemalloc_peak_mib": peak / h.MIB,
                "tracemalloc_end_mib": current / h.MIB,
                "n_iter": int(est.n_iter_),
                "lower_bound": lower_bound(est),
                "fit_s_traced": seconds,
            }
            if phase == "fit":
                after = h.maxrss_mib()
                known = None not in (rss, maxrss, after)
                out[phase]["maxrss_growth_mib"] = after - maxrss if known else None
                out[phase]["maxrss_headroom_mib"] = (
                    max(0.0, maxrss - rss) if known else None
                )
    return out


def in_fresh_process(spec, timeout):
    """:func:`memory_worker` in a new interpreter (through ``/bin/sh``, which
    forks it: Linux carries ``ru_maxrss`` across the ``exec`` of ``subprocess``,
    see ``bench_memory.py``); ``{"error": ...}`` if it fails."""
    args = [sys.executable, str(Path(__file__).resolve()), "--worker", json.dumps(spec)]
    shell = Path("/bin/sh")
    if shell.exists():
        args = [str(shell), "-c", '"$0" "$@"; exit $?', *args]
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if done.returncode:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-500:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def memory_cases(cfg, tmp):
    """Both libraries at every memory size, 'full', k=3, the prior default."""
    data = Path(tmp) / "X.npy"
    case = {"covariance_type": "full", "prior": DP, "n_components": 3}
    case["init_params"] = cfg["init_params"]
    out = []
    for n in cfg["memory_sizes"]:
        X, _ = make_three_gaussians(n, random_state=cfg["seed"])
        np.save(data, X)
        row = {"n": n, "x_mib": X.nbytes / h.MIB, **case, "errors": []}
        row["n_iter_expected"] = cfg["n_iter"]
        del X
        for lib in CLASSES:
            spec = {k: cfg[k] for k in ("n_iter", "n_jobs", "threads", "seed")}
            spec.update(lib=lib, data=str(data), case=case)
            row[lib] = in_fresh_process(spec, cfg["timeout"])
            if "error" in row[lib]:
                row["errors"].append(f"{lib}: {row[lib]['error']}")
            h.progress(f"memory n={n} {lib}")
        for phase in ("fit", "warm"):
            got = [row[lib].get(phase) for lib in CLASSES]
            if None in got:
                continue
            ours, sk = got
            row[f"{phase}_peak_ratio"] = h.ratio(
                sk["tracemalloc_peak_mib"], ours["tracemalloc_peak_mib"]
            )
            row[f"{phase}_lower_bound_rel_diff"] = h.relative_difference(
                ours["lower_bound"], sk["lower_bound"]
            )
        out.append(row)
    return out


def gate(cases, memory, rtol):
    """Failures: lower bounds beyond ``rtol``, ``n_iter_`` not as asked, errors."""
    out = []
    for c in cases:
        tag = f"{c['suite']} n={c['n']} {c['covariance_type']} {c['prior']}"
        tag += f" k={c['n_components']}"
        out += [f"{tag}: {e}" for e in c["errors"]]
        for name in c["variants"]:
            for suffix, want in (("_1", 1), ("", c["n_iter_expected"])):
                got = c[name]["n_iter" + suffix]
                if got != want:
                    out.append(f"{tag}: {name}: n_iter_ = {got}, expected {want}")
        for mode in {c[k]["blas"] for k in c["variants"]}:
            for suffix, when in (("_1", "after 1 iteration"), ("", "")):
                rel = rel_diff(c, mode, suffix)
                if not rel <= rtol:
                    out.append(
                        f"{tag}: BLAS {mode}: lower bounds differ by {rel:.3e} "
                        f"relative (> {rtol:.0e}) {when}".rstrip()
                    )
    for m in memory:
        tag = f"memory n={m['n']}"
        out += [f"{tag}: {e}" for e in m["errors"]]
        for phase in ("fit", "warm"):
            rel = m.get(f"{phase}_lower_bound_rel_diff")
            if rel is not None and not rel <= rtol:
                out.append(f"{tag}: {phase}: lower bounds differ by {rel:.3e}")
            for lib in CLASSES:
                r = m[lib].get(phase)
                if r and r["n_iter"] != m["n_iter_expected"]:
                    out.append(f"{tag}: {lib} {phase}: n_iter_ = {r['n_iter']}")
    return out


def measure(cfg):
    """Every timed case, the memory cases, the gate and the speed-up notes."""
    import tempfile

    cases = []
    for suite, X, spec in cases_of(cfg):
        spec = {"suite": suite, **spec, "init_params": cfg["init_params"]}
        cases.append(time_case(X, spec, cfg))
        h.progress(
            f"{suite} n={len(X)} {spec['covariance_type']} {spec['prior']} "
            f"k={spec['n_components']}"
        )
    with tempfile.TemporaryDirectory(prefix="bench_bayesian-") as tmp:
        memory = memory_cases(cfg, tmp)
    notes = []
    for c in cases:
        if c["suite"] == "sizes" and c["n"] == cfg["target_size"]:
            met = (c["speedup"] or 0.0) >= cfg["speedup_target"]
            c["speedup_target_met"] = met
            notes.append(
                f"n={c['n']} {c['covariance_type']} {c['prior']} "
                f"k={c['n_components']}: speed-up {h.fmt(c['speedup'], 'x')} "
                f"({'meets' if met else 'BELOW'} the {cfg['speedup_target']:g}x "
                "target)"
            )
    failures = gate(cases, memory, cfg["rtol"])
    return {"cases": cases, "memory": memory, "failures": failures, "notes": notes}


PRIOR = {DP: "DP", DIRICHLET: "Dirichlet"}


def report(results, cfg):
    """Markdown: per-iteration times and speed-ups, agreement, memory."""
    blas = cfg["blas"]
    header = ["<suite", "n", "d", "k", "<covariance_type", "<prior"]
    for mode in blas:
        tag = "" if mode == "default" else " (BLAS 1)"
        header += [f"ours s/iter{tag}", f"sklearn s/iter{tag}", f"speed-up{tag}"]
    header += ["n_jobs ours", "lower bound ours", "rel diff", "rel diff 1 iter"]
    rows = []
    for c in results["cases"]:
        row = [c["suite"], c["n"], c["n_features"], c["n_components"]]
        row += [c["covariance_type"], PRIOR[c["prior"]]]
        for mode in blas:
            names = [k for k in c["variants"] if c[k]["blas"] == mode]
            row += [h.fmt(c[k]["median_s_per_iter"]) for k in names]
            row.append(h.fmt(c[f"speedup_blas_{mode}"], "x"))
        row.append(c["ours"]["n_jobs_effective"] if "ours" in c else "—")
        row.append(h.fmt(c[c["variants"][0]]["lower_bound"], ".10f"))
        row += [h.fmt(c["lower_bound_rel_diff" + s], ".1e") for s in ("", "_1")]
        rows.append(row)
    parts = [
        f"Seconds per iteration: (t(max_iter={cfg['n_iter']}) - t(max_iter=1)) / "
        f"{cfg['n_iter'] - 1}, median of {cfg['repeats']} interleaved repeats; "
        f"init_params={cfg['init_params']!r}, tol=0; speed-up = sklearn / ours; "
        "rel diff: lower bounds after max_iter (and 1) iterations.",
        "",
        h.table(header, rows),
    ]
    if results["memory"]:
        parts += ["", memory_table(results["memory"])]
    return "\n".join(parts)


def memory_table(memory):
    """Peak memory beyond X, one row per size."""
    header = ["n", "X MiB"]
    for phase in ("fit", "warm"):
        header += [f"{phase} peak ours", f"{phase} peak sklearn", "sklearn/ours"]
    header += ["maxrss growth ours", "maxrss growth sklearn", "rel diff"]
    rows = []
    for m in memory:
        row = [m["n"], h.fmt(m["x_mib"], ".1f")]
        for phase in ("fit", "warm"):
            row += [
                h.fmt(m[lib].get(phase, {}).get("tracemalloc_peak_mib"), ".2f")
                for lib in CLASSES
            ]
            row.append(h.fmt(m.get(f"{phase}_peak_ratio"), "x"))
        row += [
            h.fmt(m[lib].get("fit", {}).get("maxrss_growth_mib"), ".1f")
            for lib in CLASSES
        ]
        rels = [m.get(f"{p}_lower_bound_rel_diff") for p in ("fit", "warm")]
        row.append(h.fmt(max((r for r in rels if r is not None), default=None), ".1e"))
        rows.append(row)
    return (
        h.table(header, rows)
        + "\n\nMiB, each library in a fresh process; 'fit': tracemalloc peak of "
        "fit() from the initialisation (X excluded); 'warm': of a warm-started "
        "fit() (iterations and the labels pass only); maxrss growth: of 'fit'."
    )


def main(argv=None):
    """Run the benchmark (or, with ``--worker``, one memory measurement)."""
    p = h.parser(
        "Benchmark sklearn_em.BayesianGaussianMixture against scikit-learn's.",
        *("repeats", "n_iter", "n_jobs", "rtol"),
    )
    p.add_argument("--sizes", type=h.size, nargs="+", help="three-Gaussian rows")
    p.add_argument("--covariance-types", nargs="+", choices=h.COVARIANCE_TYPES)
    p.add_argument("--wide-size", type=h.size, help="rows of the d=32, k=16 set")
    p.add_argument("--memory-sizes", type=h.size, nargs="*", help="rows (none: skip)")
    p.add_argument("--blas", nargs="+", choices=BLAS, help="BLAS thread settings")
    p.add_argument(
        "--init-params", choices=("kmeans", "k-means++", "random", "random_from_data")
    )
    p.add_argument("--timeout", type=float, help="seconds before a worker is killed")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(memory_worker(json.loads(args.worker))))
        return 0
    cfg = h.settings(args, DEFAULTS, QUICK)
    if cfg["n_iter"] < 2:
        p.error("--n-iter must be at least 2 (time per iteration is a difference)")
    output = h.default_output("bench_bayesian", cfg)
    return h.run("bench_bayesian", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
