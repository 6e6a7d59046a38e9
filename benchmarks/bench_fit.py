"""Time ``sklearn_em.GaussianMixture`` against scikit-learn's, and check they agree.

Suites (``--suite``; default ``sizes``, with ``--quick`` all): ``sizes``
(three-Gaussian data, 1e2 ... 1e6 rows, 1e7 with ``--full``, every covariance
type, float64 and float32), ``wide`` (d=32, k=16; d=64, k=8), ``shapes``
(d = 8 and 16 with k = 4 and 16, 'full' and 'diag', float64 and float32),
``default_fit`` (the whole
default ``fit()``), ``predict`` (inference on fresh rows) and ``threads``
(ours at ``n_jobs=1`` and ``2``, every covariance type). Fits start from the
same parameters and run exactly ``--n-iter`` iterations; each library is
timed ``--repeats`` times, interleaved, and medians are reported (see
``benchmarks/README.md``); beside them the fastest repeat, the speed-up of
fastest against fastest and each library's spread (slowest / fastest repeat),
a case marked ``*`` (``noisy``) when some spread exceeds 1.25
(``_harness.NOISY_SPREAD``): its repeats fell in two groups.

Ours runs once per E-step engine (``--engine``; by default both when numba,
the ``fast`` extra, is installed): ``ours`` is the numpy kernel and
``ours_numba`` the compiled one, each pinned with ``config_context``, the
compiled kernels loaded before any timing. The ``sizes`` and ``threads``
suites also time the *floor* of an E-step beside each case: ``n*k`` ``exp``
and ``n`` ``log`` by numpy's loops (SIMD where numpy has them for the CPU:
float64 ``exp`` needs AVX-512) plus one read of ``X``, on one core.

This is the CI correctness gate: the exit status is 1 if a lower bound
differs from scikit-learn's by more than ``--rtol`` (relative; 1e-8, 1e-4 for
float32), if ``n_iter_`` is not as expected, if predictions differ, or if a
call raises.

Examples
--------
::

    python benchmarks/bench_fit.py                      # sizes, 1e2 ... 1e6
    python benchmarks/bench_fit.py --suite all --full   # everything, with 1e7
    python benchmarks/bench_fit.py --quick              # CI gate, < 1 minute
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.mixture import GaussianMixture as SkGaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

from sklearn_em import GaussianMixture as OurGaussianMixture
from sklearn_em import _kmeans, config_context
from sklearn_em._covariance import get_covariance
from sklearn_em._data import TrainingData
from sklearn_em._engine import numba_installed
from sklearn_em._kmeans import kmeans_labels
from sklearn_em.datasets import make_three_gaussians

SUITES = ("sizes", "wide", "shapes", "default_fit", "predict", "threads")
# (n_features, n_components) of the shapes suite.
SHAPES = ((8, 4), (16, 4), (8, 16), (16, 16))
DTYPES = ("float64", "float32")
METHODS = ("predict", "predict_proba", "score_samples")
RECORDED = ("n_iter", "lower_bound", "converged", "median_s_per_iter")
# float32 arithmetic of two implementations cannot agree to 1e-8.
RTOL = {"float64": 1e-8, "float32": 1e-4}
DEFAULTS = {
    "suite": ["sizes"], "sizes": [100, 1_000, 10_000, 100_000, 1_000_000],
    "covariance_types": list(h.COVARIANCE_TYPES), "dtype": list(DTYPES),
    "wide_size": 100_000, "shapes_size": 100_000, "default_fit_size": 1_000_000,
    "predict_size": 1_000_000,
    "threads_sizes": [100_000, 1_000_000], "n_iter": 20, "repeats": 5,
    "n_jobs": None, "threads": None, "rtol": None,
    "engine": ["numpy", "numba"] if numba_installed() else ["numpy"],
}  # fmt: skip
QUICK = {
    "suite": list(SUITES), "sizes": [1_000, 10_000], "wide_size": 2_000,
    "shapes_size": 2_000,
    "default_fit_size": 100_000, "predict_size": 10_000,
    "threads_sizes": [1_000, 10_000], "n_iter": 10, "repeats": 2,
}  # fmt: skip
FULL = {"sizes": [*DEFAULTS["sizes"], 10_000_000]}


ENGINE_NAMES = {"numpy": "ours", "numba": "ours_numba"}


def pinned(engine):
    """Our estimator with every call under ``config_context(engine=...)``."""

    class Pinned(OurGaussianMixture):
        def _run(self, method, *args, **kwargs):
            with config_context(engine=engine):
                return getattr(super(), method)(*args, **kwargs)

        def fit(self, *args, **kwargs):
            return self._run("fit", *args, **kwargs)

        def predict(self, X):
            return self._run("predict", X)

        def predict_proba(self, X):
            return self._run("predict_proba", X)

        def score_samples(self, X):
            return self._run("score_samples", X)

    Pinned.__name__ = f"GaussianMixture[{engine}]"
    if engine == "numba":
        with config_context(engine="numba"):  # load the kernels before timing
            for dtype in DTYPES:
                X = np.random.RandomState(0).randn(50, 2).astype(dtype)
                OurGaussianMixture(2, random_state=0).fit(X).predict(X)
    return Pinned


def libraries(n_jobs, engines=("numpy",), jobs_in_name=False):
    """The estimators compared: ``name -> (class, extra parameters)``."""
    libs = {}
    for engine in engines:
        for j in n_jobs if jobs_in_name else [n_jobs]:
            name = ENGINE_NAMES[engine] + (f"_n_jobs_{j}" if jobs_in_name else "")
            libs[name] = (pinned(engine), {"n_jobs": j})
    libs["sklearn"] = (SkGaussianMixture, {})
    return libs


def floor_seconds(X, n_components, repeats, compiled=False):
    """Median time of an E-step's floor on one core: ``n * k`` exp and ``n``
    log and one read of ``X``. By numpy's loops, or with ``compiled`` by our
    compiled kernel's own ``exp`` and ``log`` (vectorised by LLVM for the
    CPU), where numpy's float64 ``exp`` runs a scalar loop without AVX-512:
    a floor that means the same on every CPU (``None`` without numba)."""
    if compiled and not numba_installed():
        return None
    exp_log = _compiled_exp_log() if compiled else _numpy_exp_log
    n = len(X)
    a, b = np.full(n_components * n, -1.0), np.full(n, 2.0)
    out_a, out_b = np.empty_like(a), np.empty_like(b)
    flat = X.reshape(-1)

    def floor():
        exp_log(a, out_a, b, out_b)
        flat.sum()

    floor()
    times, _, _ = h.interleaved({"floor": floor}, max(repeats, 5))
    return h.median(times["floor"])


def _numpy_exp_log(a, out_a, b, out_b):
    np.exp(a, out=out_a)
    np.log(b, out=out_b)


@functools.lru_cache(maxsize=1)
def _compiled_exp_log():
    """:func:`_numpy_exp_log` by the compiled kernel's own functions
    (compiled once per process)."""
    import numba

    from sklearn_em import _numba_kernels as kernels

    @numba.njit(nogil=True, error_model="numpy", fastmath={"contract"})
    def exp_log(a, out_a, b, out_b):
        for i in range(a.shape[0]):
            out_a[i] = kernels._exp(a[i])
        for i in range(b.shape[0]):
            out_b[i] = kernels._log(b[i])

    return exp_log


def compare(X, makers, cfg, info, n_iter=None, reference=None):
    """Time ``fit`` of every library on ``X``, interleaved; record what it found.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Data.
    makers : dict
        ``name -> callable`` making an unfitted estimator; ``"sklearn"`` is
        the reference of speed-ups and lower bounds.
    cfg, info : dict
        Settings (``repeats``); what to record (``covariance_type`` and
        ``n_components`` at least).
    n_iter : int, optional
        Iterations every fit must run; by default as many as sklearn's.
    reference : estimator, optional
        Our float64 fit of the same values from the same start, to record
        the max abs error of ``means_`` and ``covariances_`` against.

    Returns
    -------
    case : dict
        ``info``, and per library ``times_s``, ``median_fit_s``,
        ``median_s_per_iter``, ``n_iter``, ``lower_bound``, ``converged``
        (``n_jobs``, ``n_jobs_effective`` for ours); ``speedups`` (sklearn
        / each), ``speedup`` (ours), ``lower_bound_rel_diff``, ``errors``;
        the fastest repeats' figures of :func:`fastest_figures`.
    fitted : dict
        ``name -> fitted estimator``.
    """
    # First calls pay for lazy imports and thread start-up: not in repeat 0.
    h.interleaved({k: lambda m=m: m().fit(X[:2_000]) for k, m in makers.items()}, 1)
    calls = {k: lambda m=m: m().fit(X) for k, m in makers.items()}
    times, fitted, errors = h.interleaved(calls, cfg["repeats"])
    n, d = X.shape
    case = {"n": n, "n_features": d, "dtype": str(X.dtype), **info}
    case.update(libraries=list(makers), n_iter_expected=n_iter, errors=errors)
    for name in makers:
        est, med = fitted.get(name), h.median(times[name])
        entry = case[name] = {"times_s": times[name], "median_fit_s": med}
        entry.update(dict.fromkeys(RECORDED))
        if name.startswith("ours"):
            entry["n_jobs"] = makers[name]().n_jobs
            entry["n_jobs_effective"] = h.threads_of_ours(
                entry["n_jobs"],
                n,
                info["n_components"],
                d,
                info["covariance_type"],
                compiled=name.startswith(ENGINE_NAMES["numba"]),
            )
        if est is None:
            continue
        entry.update(n_iter=int(est.n_iter_), lower_bound=float(est.lower_bound_))
        entry.update(converged=bool(est.converged_))
        entry["median_s_per_iter"] = h.ratio(med, entry["n_iter"])
        if reference is not None:
            for attr in ("means", "covariances"):
                got, want = getattr(est, attr + "_"), getattr(reference, attr + "_")
                err = np.max(np.abs(np.asarray(got, dtype=np.float64) - want))
                entry[f"max_abs_err_{attr}"] = float(err)
    sk = case["sklearn"]
    others = [k for k in makers if k != "sklearn"]
    case["speedups"] = {
        k: h.ratio(sk["median_fit_s"], case[k]["median_fit_s"]) for k in others
    }
    case["speedup"] = case["speedups"].get("ours")
    fastest_figures(case)
    rels = [
        h.relative_difference(case[k]["lower_bound"], sk["lower_bound"])
        for k in others
        if None not in (case[k]["lower_bound"], sk["lower_bound"])
    ]
    case["lower_bound_rel_diff"] = max(rels, default=None)
    if reference is not None:
        keys = ("max_abs_err_means", "max_abs_err_covariances")
        closer = [
            case[lib][k] <= sk[k]
            for lib in others
            for k in keys
            if k in case[lib] and k in sk
        ]
        case["ours_closer_to_float64"] = all(closer) if closer else None
    return case, fitted


def fastest_figures(case, threshold=h.NOISY_SPREAD):
    """Add to ``case`` (of :func:`compare`) what its fastest repeats show.

    Per library ``min_fit_s``, ``min_s_per_iter`` (``None`` without
    ``n_iter``) and ``spread`` (slowest / fastest repeat); ``speedups_fastest``
    (sklearn's fastest / each one's fastest) and ``speedup_fastest`` (ours),
    beside the medians' ``speedups`` and ``speedup``; ``noisy``, whether any
    library's spread exceeds ``noisy_threshold`` (:func:`_harness.noisy`: one
    library's slow group is enough to skew a ratio of medians). Returns
    ``case``.
    """
    libs = case["libraries"]
    for name in libs:
        entry, times = case[name], case[name]["times_s"]
        entry.update(min_fit_s=h.fastest(times), spread=h.spread(times))
        entry["min_s_per_iter"] = h.ratio(entry["min_fit_s"], entry["n_iter"])
    sk = case["sklearn"]["min_fit_s"]
    case["speedups_fastest"] = {
        k: h.ratio(sk, case[k]["min_fit_s"]) for k in libs if k != "sklearn"
    }
    case["speedup_fastest"] = case["speedups_fastest"].get("ours")
    case["noisy"] = h.noisy([case[k]["times_s"] for k in libs], threshold)
    case["noisy_threshold"] = threshold
    return case


def fixed_case(X, covariance_type, init, cfg, libs, reference=None):
    """:func:`compare` of fits from ``init`` for exactly ``n_iter`` iterations."""
    args = (init, covariance_type, cfg["n_iter"], cfg["seed"])
    makers = {
        name: functools.partial(h.fixed_iterations, cls, *args, **extra)
        for name, (cls, extra) in libs.items()
    }
    small = sum(np.size(v) for v in init.values()) <= 2_000  # keep the JSON readable
    info = {
        "covariance_type": covariance_type,
        "n_components": len(init["weights_init"]),
        "init_dtype": str(init["means_init"].dtype),
        "init_params": "random_from_data",
        "init": {k: v.tolist() for k, v in init.items()} if small else None,
    }
    return compare(X, makers, cfg, info, cfg["n_iter"], reference)


def suite_sizes(cfg):
    """Three-Gaussian data (2-D), every size, covariance type and dtype;
    same start, tol=0, fixed n_iter; s/iter = median fit time / n_iter_;
    float32 cases also compared with our float64 fit of the same values;
    floor_s: n*k exp + n log + one read of X, one core, same run."""
    libs = libraries(cfg["n_jobs"], cfg["engine"])
    seed, cases = cfg["seed"], []
    for n in cfg["sizes"]:
        X64, _ = make_three_gaussians(n, random_state=seed)
        for dtype in [t for t in DTYPES if t in cfg["dtype"]]:
            X = X64.astype(dtype)
            for cov in cfg["covariance_types"]:
                init = in_dtype(h.same_start(X, cov, 3, seed), dtype)
                reference = None
                if dtype != "float64":
                    init64 = {k: v.astype(np.float64) for k, v in init.items()}
                    est = h.fixed_iterations(
                        OurGaussianMixture, init64, cov, cfg["n_iter"], seed
                    )
                    _, reference = h.timed(
                        lambda est=est, X=X: est.fit(X.astype(np.float64))
                    )
                case = fixed_case(X, cov, init, cfg, libs, reference)[0]
                case["floor_s"] = floor_seconds(X, 3, cfg["repeats"])
                cases.append(case)
                h.progress(f"sizes n={n} {cov} {dtype}")
    return cases


def in_dtype(init, dtype):
    """Initial parameters ``init`` in ``dtype`` (float64 ones as they are)."""
    if dtype == "float64":
        return init
    # sklearn < 1.8 wants float32 weights to sum to 1 within 1e-8: on a
    # 2**-20 grid their float32 sum is exactly 1.
    w = np.round(init["weights_init"] * 2**20) / 2**20
    init = {**init, "weights_init": np.append(w[:-1], 1 - w[:-1].sum())}
    # With float64 initial values sklearn would compute in float64.
    return {k: v.astype(dtype) for k, v in init.items()}


def suite_shapes(cfg):
    """make_blobs(n_features=d, centers=k, random_state=seed), n_components=k,
    for (d, k) in (8, 4), (16, 4), (8, 16), (16, 16): 'full' and 'diag',
    float64 and float32; same start, tol=0, fixed n_iter."""
    seed, cases = cfg["seed"], []
    libs = libraries(cfg["n_jobs"], cfg["engine"])
    for d, k in SHAPES:
        X64, _ = make_blobs(
            cfg["shapes_size"], n_features=d, centers=k, random_state=seed
        )
        for dtype in [t for t in DTYPES if t in cfg["dtype"]]:
            X = X64.astype(dtype)
            for cov in ("full", "diag"):
                init = in_dtype(h.same_start(X, cov, k, seed), dtype)
                cases.append(fixed_case(X, cov, init, cfg, libs)[0])
                h.progress(f"shapes n={len(X)} d={d} k={k} {cov} {dtype}")
    return cases


def suite_wide(cfg):
    """make_blobs(n_features=32, centers=16, random_state=seed),
    n_components=16, 'full' and 'diag'; and make_blobs(n_features=64,
    centers=8), 'full' (the direct form: no feature rows at d >= 56); same
    start, tol=0, fixed n_iter."""
    seed, cases = cfg["seed"], []
    for d, k, types in ((32, 16, ("full", "diag")), (64, 8, ("full",))):
        X, _ = make_blobs(cfg["wide_size"], n_features=d, centers=k, random_state=seed)
        for cov in types:
            init = h.same_start(X, cov, k, seed)
            libs = libraries(cfg["n_jobs"], cfg["engine"])
            cases.append(fixed_case(X, cov, init, cfg, libs)[0])
            h.progress(f"wide n={len(X)} d={d} {cov}")
    return cases


def suite_threads(cfg):
    """Three-Gaussian data, every covariance type; ours (each engine) with
    n_jobs=1 and n_jobs=2 against sklearn; same start, tol=0, fixed n_iter;
    floor_s: n*k exp + n log + one read of X, one core, same run, by numpy;
    floor_compiled_s: the same by our compiled exp and log."""
    libs = libraries((1, 2), cfg["engine"], jobs_in_name=True)
    cases = []
    for n in cfg["threads_sizes"]:
        X, _ = make_three_gaussians(n, random_state=cfg["seed"])
        for cov in cfg["covariance_types"]:
            init = h.same_start(X, cov, 3, cfg["seed"])
            case = fixed_case(X, cov, init, cfg, libs)[0]
            case["floor_s"] = floor_seconds(X, 3, cfg["repeats"])
            case["floor_compiled_s"] = floor_seconds(
                X, 3, cfg["repeats"], compiled=True
            )
            cases.append(case)
            h.progress(f"threads n={n} {cov}")
    return cases


def suite_default_fit(cfg):
    """Whole default fit() (k-means init, EM to convergence, final E-step),
    n_components=3 and random_state=seed for both: the same k-means start.
    kmeans_s: that start alone, scikit-learn's KMeans(n_init=1), which
    scikit-learn and our numpy engine run; ours_kmeans_s: the same k-means on
    our compiled kernel (sklearn_em._kmeans), which the compiled engine runs,
    timed in the same run and checked to give KMeans's labels."""
    seed = cfg["seed"]
    X, _ = make_three_gaussians(cfg["default_fit_size"], random_state=seed)
    makers = {
        name: functools.partial(cls, 3, random_state=seed, **extra)
        for name, (cls, extra) in libraries(cfg["n_jobs"], cfg["engine"]).items()
    }
    info = {"covariance_type": "full", "n_components": 3, "random_state": seed}
    h.progress(f"default_fit n={len(X)}")
    case = compare(X, makers, cfg, info)[0]
    kmeans = KMeans(n_clusters=3, n_init=1, random_state=seed)
    starts = {"kmeans": functools.partial(kmeans.fit, X)}
    if "numba" in cfg["engine"]:
        with config_context(engine="numba"):
            source = TrainingData(
                X, None, get_covariance("full"), 3, n_jobs=cfg["n_jobs"]
            )

        def ours():
            return kmeans_labels(source, 3, np.random.RandomState(seed))

        starts["ours_kmeans"] = ours
    times, values, errors = h.interleaved(starts, cfg["repeats"])
    case["errors"] += errors
    for name in starts:
        if times.get(name):
            case[f"{name}_s"] = h.median(times[name])
    if "ours_kmeans" in values and "kmeans" in values:
        if not np.array_equal(values["ours_kmeans"], values["kmeans"].labels_):
            case["errors"].append("ours_kmeans: labels differ from KMeans's")
        # Whether the timing is the compiled k-means's, or KMeans's after a
        # tie handed the run back.
        rerun = _kmeans._on_compiled(
            source, 3, np.random.RandomState(seed), _kmeans._kmeans
        )
        case["ours_kmeans_handed_back"] = rerun is None
    return [case]


def suite_predict(cfg):
    """predict, predict_proba and score_samples on n fresh rows, of models
    fitted on n rows from the same start ('full', fixed n_iter)."""
    n, seed = cfg["predict_size"], cfg["seed"]
    X_train, _ = make_three_gaussians(n, random_state=seed)
    X_test, _ = make_three_gaussians(n, random_state=seed + 1)
    init = h.same_start(X_train, "full", 3, seed)
    libs = libraries(cfg["n_jobs"], cfg["engine"])
    case, fitted = fixed_case(X_train, "full", init, {**cfg, "repeats": 1}, libs)
    case["methods"] = {}
    if len(fitted) < len(libs):
        return [case]
    for est in fitted.values():  # warm-up
        for method in METHODS:
            getattr(est, method)(X_test[:1_000])
    calls = {
        (method, lib): functools.partial(getattr(est, method), X_test)
        for method in METHODS
        for lib, est in fitted.items()
    }
    times, out, errors = h.interleaved(calls, cfg["repeats"])
    case["errors"] += errors
    # Each call also run back to back with itself: interleaved, every call
    # follows another library's, which leaves X and the memory for the output
    # cold on this machine (a fixed cost that weighs on the short calls);
    # back to back shows the calls' own speed. Both are recorded.
    warm = {}
    for key, call in calls.items():
        if any(e.startswith(f"{key}: ") for e in errors):
            continue
        call()  # the first after another library's call is the cold one
        warm[key] = [h.timed(call)[0] for _ in range(cfg["repeats"])]
    for method in METHODS:
        runs = {lib: times[method, lib] for lib in fitted}
        m = {lib: {"times_s": t, "median_s": h.median(t)} for lib, t in runs.items()}
        for lib, t in runs.items():
            m[lib].update(min_s=h.fastest(t), spread=h.spread(t))
        for lib in fitted:
            t = warm.get((method, lib), [])
            m[lib].update(times_back_to_back_s=t, median_back_to_back_s=h.median(t))
        b = out.get((method, "sklearn"))
        for lib in [k for k in fitted if k != "sklearn"]:
            entry, a = m[lib], out.get((method, lib))
            entry["speedup"] = h.ratio(m["sklearn"]["median_s"], entry["median_s"])
            entry["speedup_fastest"] = h.ratio(m["sklearn"]["min_s"], entry["min_s"])
            entry["speedup_back_to_back"] = h.ratio(
                m["sklearn"]["median_back_to_back_s"], entry["median_back_to_back_s"]
            )
            if a is None or b is None:
                continue
            if method == "predict":
                entry["n_mismatch"] = (
                    int(np.count_nonzero(a != b)) if a.shape == b.shape else n
                )
            else:
                entry["max_rel_diff"] = h.relative_difference(a, b)
        m["speedup"] = m["ours"]["speedup"]
        m["speedup_fastest"] = m["ours"]["speedup_fastest"]
        # The interleaved repeats only, of which the speed-ups are.
        m["noisy"] = h.noisy(runs.values(), case["noisy_threshold"])
        case["methods"][method] = m
    h.progress(f"predict n={n}")
    return [case]


SUITE_RUNNERS = {
    "sizes": suite_sizes,
    "wide": suite_wide,
    "shapes": suite_shapes,
    "default_fit": suite_default_fit,
    "predict": suite_predict,
    "threads": suite_threads,
}


def gate(suites, rtol):
    """Failures of the correctness gate, from the values of ``suites`` (JSON).

    A lower bound differs from sklearn's beyond ``rtol[dtype]`` (relative),
    ``n_iter_`` is not as expected, a label or (beyond the float64 ``rtol``)
    a probability or log-likelihood differs, or a call raised.
    """
    out = []
    for suite, body in suites.items():
        for c in body["cases"]:
            tag = f"{suite} n={c['n']} {c['covariance_type']} {c['dtype']}"
            out += [f"{tag}: {e}" for e in c["errors"]]
            sk, tol = c["sklearn"], rtol[c["dtype"]]
            want = c["n_iter_expected"] or sk["n_iter"]
            for lib in c["libraries"]:
                got = c[lib]
                if got["lower_bound"] is None or sk["lower_bound"] is None:
                    out.append(f"{tag}: {lib}: no lower bound to compare")
                    continue
                if got["n_iter"] != want:
                    out.append(
                        f"{tag}: {lib}: n_iter_ = {got['n_iter']}, expected {want}"
                    )
                rel = h.relative_difference(got["lower_bound"], sk["lower_bound"])
                if not rel <= tol:
                    out.append(
                        f"{tag}: {lib}: lower bounds differ by {rel:.3e} relative "
                        f"(> {tol:.0e}): {got['lower_bound']!r}, sklearn "
                        f"{sk['lower_bound']!r}"
                    )
            for method, m in c.get("methods", {}).items():
                for lib in [k for k in c["libraries"] if k != "sklearn"]:
                    got = m[lib]
                    if got.get("n_mismatch"):
                        out.append(
                            f"{tag}: {method} {lib}: {got['n_mismatch']} labels differ"
                        )
                    if not got.get("max_rel_diff", 0.0) <= rtol["float64"]:
                        out.append(
                            f"{tag}: {method} {lib}: outputs differ by "
                            f"{got['max_rel_diff']:.3e}"
                        )
    return out


def fit_table(cases):
    """Timing and lower-bound table of fit cases (any libraries)."""
    libs = cases[0]["libraries"]
    others = [k for k in libs if k != "sklearn"]
    per_iter = cases[0]["n_iter_expected"] is not None
    key, unit = (
        ("median_s_per_iter", "s/iter") if per_iter else ("median_fit_s", "fit s")
    )
    header = ["n", "d", "k", "<covariance_type", "<dtype"]
    header += [f"{k} {unit}" for k in libs] + [f"speed-up {k}" for k in others]
    header += [f"fastest speed-up {k}" for k in others] + ["max spread"]
    if len(others) == 2:
        header.append(f"{others[0]} s / {others[1]} s")
    floor = "floor_s" in cases[0]
    if floor:
        header += ["floor s/iter"] + [f"{k} / floor" for k in others]
    compiled_floor = cases[0].get("floor_compiled_s") is not None
    if compiled_floor:
        header += ["compiled floor s/iter"]
        header += [f"{k} / compiled floor" for k in others]
    header += [f"n_iter {k}" for k in libs] + [f"lower bound {k}" for k in libs]
    header.append("rel diff")
    rows = []
    for c in cases:
        row = [c[k] for k in ("n", "n_features", "n_components")]
        row += [c["covariance_type"], c["dtype"]]
        row += [h.fmt(c[k][key]) for k in libs]
        star = "*" if c["noisy"] else ""  # on the ratios of medians
        row += [h.fmt(c["speedups"][k], "x") + star for k in others]
        row += [h.fmt(c["speedups_fastest"][k], "x") for k in others]
        spreads = [c[k]["spread"] for k in libs if c[k]["spread"] is not None]
        row.append(h.fmt(max(spreads, default=None), ".2f"))
        if len(others) == 2:
            ratio = h.ratio(c[others[0]][key], c[others[1]][key])
            row.append(h.fmt(ratio, "x") + star)
        if floor:
            row.append(h.fmt(c["floor_s"]))
            row += [h.fmt(h.ratio(c[k][key], c["floor_s"]), "x") for k in others]
        if compiled_floor:
            row.append(h.fmt(c["floor_compiled_s"]))
            row += [
                h.fmt(h.ratio(c[k][key], c["floor_compiled_s"]), "x") for k in others
            ]
        row += [h.fmt(c[k]["n_iter"], "d") for k in libs]
        row += [h.fmt(c[k]["lower_bound"], ".10f") for k in libs]
        rows.append([*row, h.fmt(c["lower_bound_rel_diff"], ".1e")])
    flags = [c["noisy"] for c in cases]
    return h.table(header, rows) + noisy_note(flags, cases[0]["noisy_threshold"])


def noisy_note(flags, threshold):
    """Footnote of the ``*`` of a table whose rows are ``noisy`` as ``flags``
    say (``""`` when none is)."""
    if not any(flags):
        return ""
    return (
        f"\n\n\\* noisy ({sum(flags)} of {len(flags)}): a library's slowest "
        f"repeat took over {threshold:g}x its fastest; a median may come from "
        "either group: compare the fastest speed-up."
    )


def float32_table(cases):
    """Max abs errors against our float64 fit of the same values, every
    library ("" if none)."""
    cases = [c for c in cases if "ours_closer_to_float64" in c]
    if not cases:
        return ""
    libs = cases[0]["libraries"]
    rows = [
        [c["n"], c["covariance_type"]]
        + [
            h.fmt(c[lib].get(f"max_abs_err_{a}"), ".2e")
            for a in ("means", "covariances")
            for lib in libs
        ]
        + [{True: "yes", False: "NO", None: "—"}[c["ours_closer_to_float64"]]]
        for c in cases
    ]
    header = ["n", "<covariance_type"]
    header += [f"{a} err {lib}" for a in ("means", "cov") for lib in libs]
    return h.table(header + ["<ours closer"], rows)


def predict_table(cases):
    """Per method and library: median time, speed-up, how far outputs differ."""
    rows = []
    for c in cases:
        for method, m in c["methods"].items():
            sk = h.fmt(m["sklearn"]["median_s"])
            for lib in [k for k in c["libraries"] if k != "sklearn"]:
                got = m[lib]
                diff = (
                    f"{got['n_mismatch']} label(s)"
                    if "n_mismatch" in got
                    else f"{h.fmt(got.get('max_rel_diff'), '.1e')} rel"
                )
                speedup = h.fmt(got["speedup"], "x") + ("*" if m["noisy"] else "")
                fast = h.fmt(got["speedup_fastest"], "x")
                warm = h.fmt(got.get("speedup_back_to_back"), "x")
                rows.append(
                    [c["n"], method, lib, h.fmt(got["median_s"]), sk, speedup]
                    + [fast, warm, diff]
                )
    header = ["n", "<method", "<ours", "ours s", "sklearn s", "speed-up"]
    header += ["fastest speed-up", "back to back", "<differ by"]
    flags = [m["noisy"] for c in cases for m in c["methods"].values()]
    return h.table(header, rows) + noisy_note(flags, cases[0]["noisy_threshold"])


def report(results, cfg):
    """Markdown: one section per suite."""
    parts = []
    for name, suite in results["suites"].items():
        cases = suite["cases"]
        parts += [f"## {name}", "", suite["description"], "", fit_table(cases)]
        if name == "predict":
            parts += ["", predict_table(cases)]
        for c in cases:
            if "kmeans_s" in c:
                kmeans_s = c["kmeans_s"]
                share = ", ".join(
                    f"{lib} {h.ratio(kmeans_s, c[lib]['median_fit_s']):.0%}"
                    for lib in c["libraries"]
                    if "numba" not in lib  # the compiled engine runs its own
                )
                parts += ["", f"k-means start: {h.fmt(kmeans_s)} s ({share} of fit)"]
            if "ours_kmeans_s" in c and "kmeans_s" in c:
                ours_s = c["ours_kmeans_s"]
                parts += [
                    "",
                    f"the same k-means on our compiled kernel: {h.fmt(ours_s)} s "
                    f"({h.ratio(c['kmeans_s'], ours_s):.1f}x faster than KMeans)"
                    + (
                        "; it handed this run back to KMeans (a tie)"
                        if c.get("ours_kmeans_handed_back")
                        else ""
                    ),
                ]
        if float32_table(cases):
            parts += ["", "float32: max abs error against our float64 fit:", ""]
            parts += [float32_table(cases)]
        parts.append("")
    return "\n".join(parts)


def measure(cfg):
    """Run the chosen suites and the gate."""
    suites = {}
    for name in cfg["suite"]:
        runner = SUITE_RUNNERS[name]
        description = " ".join(runner.__doc__.split())  # the docstring, one line
        suites[name] = {"description": description, "cases": runner(cfg)}
    notes = [
        f"{name} n={c['n']} {c['covariance_type']} {c['dtype']}: ours is not closer "
        "to the float64 fit than sklearn"
        for name, suite in suites.items()
        for c in suite["cases"]
        if c.get("ours_closer_to_float64") is False
    ]
    return {"suites": suites, "failures": gate(suites, cfg["rtol"]), "notes": notes}


def main(argv=None):
    """Run the benchmark; return 0 when the correctness gate passes, else 1."""
    p = h.parser(
        "Benchmark sklearn_em.GaussianMixture against scikit-learn's.",
        *("repeats", "n_iter", "n_jobs", "rtol"),
        full="also 1e7 rows in sizes",
    )
    p.add_argument("--suite", nargs="+", choices=(*SUITES, "all"))
    p.add_argument("--sizes", type=h.size, nargs="+", help="sizes: rows")
    p.add_argument("--covariance-types", nargs="+", choices=h.COVARIANCE_TYPES)
    p.add_argument("--dtype", nargs="+", choices=DTYPES, help="sizes, shapes: dtypes")
    for suite in ("wide", "shapes", "default_fit", "predict"):
        p.add_argument(f"--{suite.replace('_', '-')}-size", type=h.size)
    p.add_argument("--threads-sizes", type=h.size, nargs="+")
    p.add_argument("--engine", nargs="+", choices=tuple(ENGINE_NAMES))
    cfg = h.settings(p.parse_args(argv), DEFAULTS, QUICK, FULL)
    cfg["suite"] = [s for s in SUITES if s in cfg["suite"] or "all" in cfg["suite"]]
    rtol = cfg["rtol"]
    cfg["rtol"] = dict(RTOL) if rtol is None else dict.fromkeys(DTYPES, rtol)
    tag = "all" if cfg["suite"] == list(SUITES) else "+".join(cfg["suite"])
    output = h.default_output(f"bench_fit-{tag}", cfg)
    return h.run("bench_fit", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
