"""Time ``sklearn_em.GaussianMixture`` on GPU arrays against scikit-learn's
array-API path on the same arrays, and against the bandwidth floor.

Libraries: ``ours`` (the array-API engine with the fused Triton E-step where it
applies: torch on CUDA, few features), ``ours_gemm`` (the same engine held to
its matrix-product form) and ``sklearn`` (scikit-learn's array-API path).

Cases (issue 16's anchors), full covariance:

* ``d2_k3_f64``: d = 2, k = 3, 1e7 rows, float64;
* ``d2_k3_f32``: d = 2, k = 3, 1e8 rows, float32;
* ``d32_k16_f64``: d = 32, k = 16, 1e5 rows, float64.

Data are drawn on the device (three or sixteen Gaussian clusters). Every fit
starts from the same parameters (:func:`_harness.same_start` on a host sample
of at most 100,000 rows), with ``tol=0`` and a fixed ``max_iter``, both
libraries under ``sklearn.config_context(array_api_dispatch=True)``. The time
per EM iteration is ``(t(max_iter=N) - t(max_iter=1)) / (N - 1)`` of
interleaved repeats, each fit ended by a device synchronisation: validation,
the start and the final labels pass cancel out. The bandwidth floor is the
time of one read of ``X`` (``xp.sum(X)``, median of repeats): no E-step can
take less, since it reads every row once. Where the fused kernel applies, one
E-step call alone (parameters to the device, the launch, the sum of the
programs' partial sums and its copy to the host) is timed too.

Checks (exit status 1): ``n_iter_`` is ``N``; our lower bound agrees with
scikit-learn's array-API path (``--rtol``, relative: 1e-8 in float64, 1e-4
in float32, whose sums scikit-learn keeps in float32), and with scikit-learn
on the CPU (numpy) where ``n <= --cpu-max-rows``. Speed is reported, never
asserted; the issue's targets (20x scikit-learn's GPU path at d = 2, 5x at
d = 32, within 3x of the floor at 1e8 rows) are NOTEs.

Without a CUDA device, ``--device cuda`` (the default) exits with status 2
and says so. ``--device cpu --quick`` runs small sizes on torch CPU (or
``--namespace array_api_strict``), so the script is testable anywhere.

Examples
--------
::

    SCIPY_ARRAY_API=1 python benchmarks/bench_gpu.py              # the GPU run
    SCIPY_ARRAY_API=1 python benchmarks/bench_gpu.py --device cpu --quick
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from unittest import mock

# scikit-learn's dispatch wants SciPy's array-API mode, read at SciPy's import.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

import numpy as np
import sklearn
from sklearn.mixture import GaussianMixture as SkGaussianMixture

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

from sklearn_em import GaussianMixture as OurGaussianMixture
from sklearn_em import _array_api
from sklearn_em._array_api import to_numpy

CASES = {
    "d2_k3_f64": dict(n_features=2, n_components=3, dtype="float64"),
    "d2_k3_f32": dict(n_features=2, n_components=3, dtype="float32"),
    "d32_k16_f64": dict(n_features=32, n_components=16, dtype="float64"),
}
DEFAULTS = {
    "cases": list(CASES), "device": "cuda", "namespace": "torch",
    "sizes": {"d2_k3_f64": 10**7, "d2_k3_f32": 10**8, "d32_k16_f64": 10**5},
    "n_iter": 30, "repeats": 3, "rtol": None, "threads": None,
    "cpu_max_rows": 10**7, "libraries": ["ours", "ours_gemm", "sklearn"],
    "speedup_targets": {"d2_k3_f64": 20.0, "d2_k3_f32": 20.0, "d32_k16_f64": 5.0},
    "floor_target": 3.0,
}  # fmt: skip
QUICK = {
    "sizes": {"d2_k3_f64": 20_000, "d2_k3_f32": 20_000, "d32_k16_f64": 3_000},
    "n_iter": 3, "repeats": 1, "cpu_max_rows": 20_000,
}  # fmt: skip
HOST_SAMPLE = 100_000
CLASSES = {
    "ours": OurGaussianMixture,
    "ours_gemm": OurGaussianMixture,
    "sklearn": SkGaussianMixture,
}


def engine(lib):
    """The context a library's fits run in: ``ours_gemm`` never takes the
    fused kernel."""
    if lib == "ours_gemm":
        return mock.patch.object(_array_api, "_fused_wanted", lambda X: False)
    return contextlib.nullcontext()


def namespace_of(cfg):
    """``(xp, device, synchronise)`` for the namespace and device asked for."""
    if cfg["namespace"] == "array_api_strict":
        import array_api_strict as xp

        return xp, None, lambda: None
    import torch

    device = torch.device(cfg["device"])
    if device.type == "cuda":

        def sync():
            torch.cuda.synchronize(device)

        return torch, device, sync
    return torch, device, lambda: None


def cuda_missing(cfg) -> str | None:
    """Why the CUDA run cannot happen here, or None."""
    if cfg["device"] != "cuda":
        return None
    if cfg["namespace"] != "torch":
        return "--device cuda needs --namespace torch"
    try:
        import torch
    except ImportError:
        return "torch is not installed"
    if not torch.cuda.is_available():
        return "no CUDA device is visible to torch"
    return None


def device_name(cfg):
    if cfg["namespace"] == "torch" and cfg["device"] == "cuda":
        import torch

        return torch.cuda.get_device_name()
    return f"{cfg['namespace']} on {cfg['device']} ({h.cpu_model()})"


def make_data(xp, device, n, spec, seed):
    """Clusters of unit spread about centres 6 apart, drawn on the device."""
    d, k = spec["n_features"], spec["n_components"]
    rng = np.random.default_rng(seed)
    centres = 6.0 * rng.standard_normal((k, d))
    if xp.__name__ == "torch":
        g = xp.Generator(device=device).manual_seed(seed)
        labels = xp.randint(0, k, (n,), generator=g, device=device)
        X = xp.randn(n, d, generator=g, device=device, dtype=xp.float64)
        X += xp.asarray(centres, device=device)[labels]
        return X.to(getattr(xp, spec["dtype"]))
    X = centres[rng.integers(0, k, n)] + rng.standard_normal((n, d))
    return xp.asarray(X.astype(spec["dtype"]))


def host_sample(X, seed):
    """At most HOST_SAMPLE rows of ``X`` on the host, float64."""
    n = X.shape[0]
    if n > HOST_SAMPLE:
        step = n // HOST_SAMPLE
        X = X[: step * HOST_SAMPLE : step, :]
    return to_numpy(X).astype(np.float64)


def estimator(lib, init, n_iter, seed, like):
    """An unfitted estimator of ``lib`` running ``n_iter`` iterations from
    ``init``, given in ``like``'s namespace and dtype (scikit-learn's array-API
    path asks for that; its float32 path cannot mix in float64 values)."""
    from sklearn.externals import array_api_compat

    from sklearn_em._array_api import move_like

    xp = array_api_compat.array_namespace(like)
    params = {
        name: xp.astype(move_like(value, like), like.dtype)
        for name, value in init.items()
    }
    # As _harness.fixed_iterations, which takes len() of arrays that
    # array-api-strict's do not have.
    return CLASSES[lib](
        n_components=init["weights_init"].shape[0],
        covariance_type="full",
        tol=0.0,
        max_iter=n_iter,
        init_params="random_from_data",
        random_state=seed,
        **params,
    )


def lower_bound(est):
    return float(np.asarray(to_numpy(est.lower_bound_)).reshape(-1)[0])


def time_floor(xp, X, sync, repeats):
    """Median seconds of one read of ``X``."""
    times = []
    for _ in range(repeats + 1):  # the first pays for kernel compilation
        sync()
        t0 = time.perf_counter()
        total = xp.sum(X)
        sync()
        times.append(time.perf_counter() - t0)
        del total
    return h.median(times[1:])


def time_fused_call(X, fitted, repeats):
    """Median ms of one fused E-step call at ``fitted``'s parameters, or None
    where the fused kernel does not apply to ``X``."""
    from sklearn_em._covariance import get_covariance
    from sklearn_em._model import Mixture

    covariance = get_covariance("full")
    with sklearn.config_context(array_api_dispatch=True):
        source = _array_api.ArrayAPIData(
            X, None, covariance, int(fitted.weights_.shape[0])
        )
    if source._fused is None:
        return None
    model = Mixture(
        *(
            to_numpy(getattr(fitted, name)).astype(np.float64)
            for name in ("weights_", "means_", "covariances_", "precisions_cholesky_")
        ),
        covariance,
    )
    w_matrix = source.kernel.prepare(model).w_matrix
    times = []
    for _ in range(repeats + 1):  # the first may load the compiled kernel
        t0 = time.perf_counter()
        source._fused(w_matrix)  # ends with a copy to the host: synchronised
        times.append(time.perf_counter() - t0)
    return 1e3 * h.median(times[1:])


def measure_case(name, cfg):
    spec = CASES[name]
    n, n_iter, seed = cfg["sizes"][name], cfg["n_iter"], cfg["seed"]
    xp, device, sync = namespace_of(cfg)
    h.progress(f"{name}: {n} rows on {cfg['namespace']}/{cfg['device']}")
    X = make_data(xp, device, n, spec, seed)
    sync()
    init = h.same_start(host_sample(X, seed), "full", spec["n_components"], seed)

    def fit(lib, iters):
        with sklearn.config_context(array_api_dispatch=True), engine(lib):
            est = estimator(lib, init, iters, seed, X).fit(X)
        sync()
        return est

    libs = cfg["libraries"]
    # First calls pay for lazy imports and kernel compilation: not timed.
    h.interleaved({lib: lambda lib=lib: fit(lib, 1) for lib in libs}, 1)
    calls = {
        (lib, i): lambda lib=lib, i=i: fit(lib, i) for lib in libs for i in (1, n_iter)
    }
    times, fitted, errors = h.interleaved(calls, cfg["repeats"])
    floor = time_floor(xp, X, sync, cfg["repeats"])
    fused_ms = None
    if "ours" in libs and fitted.get(("ours", n_iter)) is not None:
        fused_ms = time_fused_call(X, fitted["ours", n_iter], 5 * cfg["repeats"])
    item = 4 if spec["dtype"] == "float32" else 8
    case = {
        "case": name, "n": n, **spec, "n_iter_expected": n_iter, "errors": errors,
        "floor_ms": 1e3 * floor, "bytes_of_X": n * spec["n_features"] * item,
        "floor_gb_per_s": n * spec["n_features"] * item / floor / 1e9,
        "fused_call_ms": fused_ms,
    }  # fmt: skip
    for lib in libs:
        t1, tn = times[lib, 1], times[lib, n_iter]
        per_iter = [(b - a) / (n_iter - 1) for a, b in zip(t1, tn, strict=False)]
        est = fitted.get((lib, n_iter))
        case[lib] = {
            "ms_per_iter": [1e3 * t for t in per_iter],
            "median_ms_per_iter": None if not per_iter else 1e3 * h.median(per_iter),
            "n_iter": None if est is None else int(est.n_iter_),
            "lower_bound": None if est is None else lower_bound(est),
        }
    ours, theirs = case["ours"], case.get("sklearn", {})
    gemm = case.get("ours_gemm", {})
    case["speedup_vs_sklearn"] = h.ratio(
        theirs.get("median_ms_per_iter"), ours["median_ms_per_iter"]
    )
    case["gemm_speedup_vs_sklearn"] = h.ratio(
        theirs.get("median_ms_per_iter"), gemm.get("median_ms_per_iter")
    )
    case["ours_over_floor"] = h.ratio(ours["median_ms_per_iter"], case["floor_ms"])
    if gemm.get("lower_bound") is not None and ours["lower_bound"] is not None:
        case["lower_bound_rel_diff_gemm"] = h.relative_difference(
            ours["lower_bound"], gemm["lower_bound"]
        )
    if theirs.get("lower_bound") is not None and ours["lower_bound"] is not None:
        case["lower_bound_rel_diff_sklearn"] = h.relative_difference(
            ours["lower_bound"], theirs["lower_bound"]
        )
    if n <= cfg["cpu_max_rows"] and ours["lower_bound"] is not None:
        # scikit-learn on the host, numpy, the same rows and start.
        Xh = to_numpy(X)
        cpu = h.fixed_iterations(SkGaussianMixture, init, "full", n_iter, seed)
        _, cpu = h.timed(lambda: cpu.fit(Xh))
        case["sklearn_cpu_lower_bound"] = lower_bound(cpu)
        case["lower_bound_rel_diff_sklearn_cpu"] = h.relative_difference(
            ours["lower_bound"], lower_bound(cpu)
        )
    return case


def gate(cases, cfg):
    failures, notes = [], []
    for c in cases:
        name = c["case"]
        rtol = cfg["rtol"] or (1e-4 if c["dtype"] == "float32" else 1e-8)
        # Ours must run; scikit-learn's path may not (e.g. out of memory).
        ours = [e for e in c["errors"] if e.startswith("('ours'")]
        failures += [f"{name}: {e}" for e in ours]
        notes += [f"{name}: {e}" for e in c["errors"] if e not in ours]
        for lib in cfg["libraries"]:
            got = c[lib]["n_iter"]
            if got is not None and got != c["n_iter_expected"]:
                failures.append(f"{name}: {lib} ran {got} iterations")
        for key in (
            "lower_bound_rel_diff_sklearn",
            "lower_bound_rel_diff_sklearn_cpu",
            "lower_bound_rel_diff_gemm",
        ):
            diff = c.get(key)
            if diff is not None and not diff <= rtol:
                failures.append(f"{name}: {key} = {diff:.3g} > {rtol:g}")
        target = cfg["speedup_targets"].get(name)
        speedup = c["speedup_vs_sklearn"]
        if target and speedup is not None and speedup < target:
            notes.append(
                f"{name}: {speedup:.1f}x scikit-learn's path, target {target}x"
            )
        if c["n"] >= 10**8 and (c["ours_over_floor"] or 0) > cfg["floor_target"]:
            notes.append(
                f"{name}: {c['ours_over_floor']:.1f}x the bandwidth floor, target "
                f"{cfg['floor_target']}x"
            )
    return failures, notes


def measure(cfg):
    cases = [measure_case(name, cfg) for name in cfg["cases"]]
    failures, notes = gate(cases, cfg)
    return {
        "device": device_name(cfg),
        "cases": cases,
        "failures": failures,
        "notes": notes,
    }


def report(results, cfg):
    header = [
        "<case", "rows", "ours ms/iter", "ours GEMM ms/iter", "sklearn xp ms/iter",
        "speed-up", "GEMM speed-up", "fused call ms", "floor ms", "ours / floor",
        "LB rel diff (xp)", "LB rel diff (CPU)",
    ]  # fmt: skip
    rows = [
        [
            c["case"],
            f"{c['n']:.0e}",
            h.fmt(c["ours"]["median_ms_per_iter"], ".3g"),
            h.fmt(c.get("ours_gemm", {}).get("median_ms_per_iter"), ".3g"),
            h.fmt(c.get("sklearn", {}).get("median_ms_per_iter"), ".3g"),
            h.fmt(c["speedup_vs_sklearn"], "x"),
            h.fmt(c["gemm_speedup_vs_sklearn"], "x"),
            h.fmt(c["fused_call_ms"], ".3g"),
            h.fmt(c["floor_ms"], ".3g"),
            h.fmt(c["ours_over_floor"], "x"),
            h.fmt(c.get("lower_bound_rel_diff_sklearn"), ".1e"),
            h.fmt(c.get("lower_bound_rel_diff_sklearn_cpu"), ".1e"),
        ]
        for c in results["cases"]
    ]
    return f"Device: {results['device']}\n\n" + h.table(header, rows)


def main(argv=None):
    p = h.parser(
        "GaussianMixture on GPU arrays: ours against scikit-learn's array-API path.",
        *("repeats", "n_iter", "rtol"),
    )
    p.add_argument("--device", choices=("cuda", "cpu"), help="where X lives (cuda)")
    p.add_argument(
        "--namespace", choices=("torch", "array_api_strict"), help="torch (default)"
    )
    p.add_argument("--cases", nargs="+", choices=list(CASES))
    p.add_argument("--libraries", nargs="+", choices=list(CLASSES))
    p.add_argument("--cpu-max-rows", type=h.size, help="largest n checked on the CPU")
    args = p.parse_args(argv)
    cfg = h.settings(args, DEFAULTS, QUICK)
    if cfg["n_iter"] < 2:
        p.error("--n-iter must be at least 2 (time per iteration is a difference)")
    if cfg["namespace"] == "array_api_strict" and cfg["device"] != "cpu":
        p.error("array_api_strict runs with --device cpu")
    why = cuda_missing(cfg)
    if why is not None:
        print(
            f"bench_gpu: {why}; nothing measured. Run on a machine with a CUDA "
            "GPU and torch, or try it here with --device cpu --quick.",
            file=sys.stderr,
        )
        return 2
    output = h.default_output(f"bench_gpu-{cfg['device']}", cfg)
    return h.run("bench_gpu", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
