"""Tune the fused Triton E-step: rows each thread loads at once, steps summed
in float32, loading a step ahead, a register cap and programs per SM (rows
per step and warps are options of the kernel, not varied here).

For each case (d = 2, k = 3, full: 1e7 float64 rows and 1e8 float32 rows, on
a CUDA device), each launch configuration and, for float32 rows, float64 or
float32 per-row arithmetic, time

* the kernel alone (CUDA events around the launch, median of repeats), and
* one whole E-step call (weights to the device, launch, sum of the partial
  sums, copy to the host; host clock),

against the bandwidth floor (one read of ``X``), and check that every
configuration's statistics equal the first float64 one's to 1e-12 (1e-5 with
float32 arithmetic; exit status 1 if not). The defaults of
:mod:`sklearn_em._triton_kernels` come from this table.

Without a CUDA device it exits with status 2 and says so.

Example::

    python benchmarks/bench_fused.py --output benchmarks/results/bench_fused.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

CASES = {
    "d2_k3_f64": (10**7, "float64"),
    "d2_k3_f32": (10**8, "float32"),
}
# Launch settings (FusedEStep's keywords), the first of a case the float64
# reference; "per_sm" is programs per multiprocessor. Unnamed settings take
# the module's defaults.
F64 = dict(float32_arithmetic=False, group=1)
CONFIGS = {
    "float64": [
        dict(F64, prefetch=False, maxnreg=0),
        dict(F64, prefetch=True, maxnreg=0),
        dict(F64, prefetch=True, maxnreg=96, per_sm=5),
        dict(F64, prefetch=True, maxnreg=96, per_sm=10),
        dict(F64, group=2, prefetch=True, maxnreg=96, per_sm=10),
    ],
    "float32": [
        dict(float32_arithmetic=False, group=4, prefetch=False, maxnreg=0),
        dict(group=4, maxnreg=0, per_sm=3),
        dict(group=4, maxnreg=128, per_sm=4),
        dict(group=4, maxnreg=128, per_sm=8),
        dict(group=4, maxnreg=96, per_sm=5),
        dict(group=4, maxnreg=96, per_sm=10),
        dict(group=4, maxnreg=80, per_sm=6),
        dict(group=4, maxnreg=80, per_sm=12),
        dict(group=4, maxnreg=64, per_sm=8),
        dict(group=2, maxnreg=80, per_sm=6),
        dict(group=2, maxnreg=64, per_sm=8),
        dict(group=2, maxnreg=64, per_sm=16),
        dict(group=4, maxnreg=96, per_sm=5, flush=1),
        dict(group=4, maxnreg=96, per_sm=5, prefetch=False),
    ],
}


def host_costs(kernel, model, covariance, repeats):
    """Median ms on the host, per EM iteration, of preparing the parameters
    for the kernel and of the M-step (the rest of an iteration)."""
    from sklearn_em._em import params_from_stats, stats_from_model

    stats = stats_from_model(model, kernel.center, 1e-6)
    costs = {}
    for name, call in (
        ("prepare_ms", lambda: kernel.prepare(model)),
        ("m_step_ms", lambda: params_from_stats(stats, covariance, 1e-6)),
    ):
        times = []
        for _ in range(repeats + 1):
            t0 = time.perf_counter()
            call()
            times.append(1e3 * (time.perf_counter() - t0))
        costs[name] = h.median(times[1:])
    return costs


def main(argv=None) -> int:
    p = h.parser("Launch configurations of the fused Triton E-step.", "repeats")
    args = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        torch = None
    if torch is None or not torch.cuda.is_available():
        print("bench_fused: no CUDA device (torch with CUDA); nothing measured.")
        return 2
    from sklearn_em._array_api import second_order_plan
    from sklearn_em._covariance import get_covariance
    from sklearn_em._dense import DenseKernel
    from sklearn_em._model import Mixture
    from sklearn_em._triton_kernels import PROGRAMS_PER_SM, FusedEStep

    repeats = args.repeats or 20
    seed = args.seed or 0
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    covariance = get_covariance("full")
    plan = second_order_plan(covariance, 2)
    results, failures = [], []
    for name, (n, dtype) in CASES.items():
        g = torch.Generator(device="cuda").manual_seed(seed)
        centres = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]], device="cuda")
        labels = torch.randint(0, 3, (n,), generator=g, device="cuda")
        X = (torch.randn(n, 2, generator=g, device="cuda") + centres[labels]).to(
            getattr(torch, dtype)
        )
        sample = X[:: max(1, n // 100_000)].double().cpu().numpy()
        init = h.same_start(sample, "full", 3, seed)
        cov = np.linalg.inv(init["precisions_init"])
        model = Mixture(
            init["weights_init"],
            init["means_init"],
            cov,
            covariance.precisions_cholesky(cov),
            covariance,
        )
        center = sample.mean(axis=0)
        kernel = DenseKernel(covariance, 2, 3, center, float(sample.var(0).sum()), n)
        w_matrix = kernel.prepare(model).w_matrix
        host = host_costs(kernel, model, covariance, repeats)
        floor = []
        for _ in range(repeats + 1):  # the first call loads torch's kernel
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            X.sum()
            torch.cuda.synchronize()
            floor.append(time.perf_counter() - t0)
        floor_ms = 1e3 * h.median(floor[1:])
        reference = None
        for config in CONFIGS[dtype]:
            options = dict(config)
            per_sm = options.pop("per_sm", PROGRAMS_PER_SM)
            fused = FusedEStep(
                X, None, *plan, 3, center, programs=per_sm * sms, **options
            )
            f32 = fused.float32_arithmetic
            moments, log_likelihood = fused(w_matrix)  # compiles on first use
            if reference is None:
                reference = moments, log_likelihood  # float64 arithmetic
            diff = float(
                np.abs(moments - reference[0]).max() / np.abs(reference[0]).max()
            )
            ll_diff = abs(log_likelihood - reference[1]) / abs(reference[1])
            if not max(diff, ll_diff) <= (1e-5 if f32 else 1e-12):
                failures.append(f"{name} {config}: {diff:.2g}, {ll_diff:.2g}")
            start = torch.cuda.Event(enable_timing=True)
            stop = torch.cuda.Event(enable_timing=True)
            kernel_ms = []
            for _ in range(repeats):
                start.record()
                fused.launch(w_matrix)
                stop.record()
                stop.synchronize()
                kernel_ms.append(start.elapsed_time(stop))
            call_ms = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                fused(w_matrix)
                call_ms.append(1e3 * (time.perf_counter() - t0))
            results.append(
                {
                    "case": name, "n": n, "dtype": dtype, "block": fused.block,
                    "arithmetic": "float32" if f32 else "float64",
                    "group": fused.group, "flush": fused.flush,
                    "prefetch": fused.prefetch, "maxnreg": fused.maxnreg,
                    "num_warps": fused.num_warps, "programs_per_sm": per_sm,
                    "programs": fused.programs,
                    "rel_diff_log_likelihood": ll_diff,
                    "kernel_ms": h.median(kernel_ms), "call_ms": h.median(call_ms),
                    "floor_ms": floor_ms, "rel_diff_vs_first": diff, **host,
                }
            )  # fmt: skip
    header = [
        "<case", "arithmetic", "block", "warps", "group", "flush", "prefetch",
        "maxnreg", "progs/SM", "kernel ms", "call ms", "floor ms", "rel diff",
    ]  # fmt: skip
    rows = [
        [
            r["case"], r["arithmetic"], r["block"], r["num_warps"], r["group"],
            r["flush"], r["prefetch"], r["maxnreg"] or "-", r["programs_per_sm"],
            f"{r['kernel_ms']:.3f}", f"{r['call_ms']:.3f}", f"{r['floor_ms']:.3f}",
            f"{max(r['rel_diff_vs_first'], r['rel_diff_log_likelihood']):.1e}",
        ]
        for r in results
    ]  # fmt: skip
    print(f"Device: {torch.cuda.get_device_name()}, {sms} SMs\n")
    print(h.table(header, rows))
    for r in results[:: len(CONFIGS["float64"])][:1]:
        print(
            f"\nhost, per iteration: prepare {r['prepare_ms']:.3f} ms, "
            f"M-step {r['m_step_ms']:.3f} ms"
        )
    out = {"device": torch.cuda.get_device_name(), "results": results}
    if args.output:
        Path(args.output).write_text(json.dumps(out, indent=1))
    for f in failures:
        print("FAIL:", f)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
