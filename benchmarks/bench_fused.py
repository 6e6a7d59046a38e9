"""Tune the fused Triton E-step: rows per step, warps, rows each thread loads
at once, and programs per SM.

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
# (float32 arithmetic, rows per step, warps, rows each thread loads at once,
# programs per SM), the first of a case the float64 reference.
CONFIGS = {
    "float64": [(False, 128, 4, 1, 8), (False, 128, 4, 2, 8), (False, 128, 4, 4, 8)],
    "float32": [
        (False, 128, 4, 4, 8),
        (True, 128, 4, 1, 8),
        (True, 128, 4, 4, 8),
        (True, 128, 4, 8, 8),
        (True, 256, 8, 8, 8),
        (True, 128, 4, 8, 16),
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
    from sklearn_em._triton_kernels import FusedEStep

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
        for f32, block, warps, group, per_sm in CONFIGS[dtype]:
            fused = FusedEStep(
                X, None, *plan, 3, center, programs=per_sm * sms, block=block,
                num_warps=warps, float32_arithmetic=f32, group=group,
            )  # fmt: skip
            moments, _ = fused(w_matrix)  # compiles on first use
            if reference is None:
                reference = moments  # float64 arithmetic, the first launch
            diff = float(np.abs(moments - reference).max() / np.abs(reference).max())
            if not diff <= (1e-5 if f32 else 1e-12):
                failures.append(f"{name} {f32} {block}/{warps}/{group}: {diff:.2g}")
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
                    "case": name, "n": n, "dtype": dtype, "block": block,
                    "arithmetic": "float32" if f32 else "float64", "group": group,
                    "num_warps": warps, "programs_per_sm": per_sm,
                    "kernel_ms": h.median(kernel_ms), "call_ms": h.median(call_ms),
                    "floor_ms": floor_ms, "rel_diff_vs_first": diff, **host,
                }
            )  # fmt: skip
    header = [
        "<case", "arithmetic", "block", "warps", "group", "progs/SM", "kernel ms",
        "call ms", "floor ms",
    ]  # fmt: skip
    rows = [
        [
            r["case"], r["arithmetic"], r["block"], r["num_warps"], r["group"],
            r["programs_per_sm"],
            f"{r['kernel_ms']:.3f}", f"{r['call_ms']:.3f}", f"{r['floor_ms']:.3f}",
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
