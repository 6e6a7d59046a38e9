"""Plot the ``sizes`` suite of a ``bench_fit.py`` JSON file.

One row of panels per dtype: median seconds per EM iteration against ``n``
(ours solid on the numpy kernel and dotted on the compiled one, scikit-learn
dashed, one colour per covariance type) and the speed-up (sklearn / ours)
against ``n``, both log-log. Files of the older
layout (a top-level ``cases`` list) plot too.

Examples
--------
::

    python benchmarks/plot_results.py   # results/bench_fit-sizes.json, else -all.json
    python benchmarks/plot_results.py results.json --output /tmp/fig.png
"""

from __future__ import annotations

import argparse
import json
import operator
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_INPUTS = ("bench_fit-sizes.json", "bench_fit-all.json", "bench_fit.json")
STYLE = {"full": "o", "tied": "s", "diag": "^", "spherical": "D"}  # marker
COLORS = dict(
    zip(STYLE, ("tab:blue", "tab:orange", "tab:green", "tab:red"), strict=True)
)
# Plain speed-up ticks ("0.5x", "1x", "2x"), about evenly spaced on a log axis.
SPEEDUP_TICKS = (0.1, 0.2, 0.3, 0.5, 0.7, 1, 1.5, 2, 3, 5, 7, 10, 15, 20, 30, 50)
SPEEDUP_TICKS += (70, 100, 200, 300, 500, 1000)


# Our estimator per E-step kernel (bench_fit.py's library names) and its line.
OURS = (("ours", "-"), ("ours_numba", ":"))
OURS_LABELS = {"ours": "ours, numpy kernel", "ours_numba": "ours, compiled kernel"}


def sizes_suite(results):
    """The ``sizes`` cases of a bench_fit JSON (either layout), and its settings."""
    settings = results.get("settings", {})
    if "suites" in results:
        if "sizes" not in results["suites"]:
            names = ", ".join(results["suites"])
            raise ValueError(f"no 'sizes' suite (suites: {names}); use --suite sizes")
        suite = results["suites"]["sizes"]
        return suite["cases"], {**settings, **suite.get("settings", {})}
    if "cases" in results:
        return results["cases"], settings
    raise ValueError("not a bench_fit result file")


def plot(results, output):
    """Write the figure of the ``sizes`` suite to ``output`` (PNG); return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FixedLocator, FormatStrFormatter, NullFormatter

    cases, settings = sizes_suite(results)
    env = results.get("environment", {})
    present = {c.get("dtype", "float64") for c in cases}
    dtypes = [d for d in ("float64", "float32") if d in present] or ["float64"]
    by_n = operator.itemgetter("n")
    fig, axes = plt.subplots(
        len(dtypes), 2, figsize=(12, 5.2 * len(dtypes)), squeeze=False,
        gridspec_kw={"width_ratios": [1.35, 1]},
    )  # fmt: skip
    for (ax_t, ax_s), dtype in zip(axes, dtypes, strict=True):
        rows = [c for c in cases if c.get("dtype", "float64") == dtype]
        covs = [t for t in STYLE if any(c["covariance_type"] == t for c in rows)]
        for cov in covs:
            mine = sorted((c for c in rows if c["covariance_type"] == cov), key=by_n)
            kw = {"color": COLORS[cov], "marker": STYLE[cov], "lw": 2}
            libs = [(lib, ls, COLORS[cov]) for lib, ls in OURS if lib in mine[0]]
            for lib, ls, face in [*libs, ("sklearn", "--", "w")]:
                pts = [(c["n"], c[lib]["median_s_per_iter"]) for c in mine]
                pts = [p for p in pts if p[1] is not None]
                ax_t.plot(*zip(*pts, strict=True), ls=ls, mfc=face, **kw)
            for lib, ls, _ in libs:
                speedups = [(c["n"], c.get("speedups", {}).get(lib)) for c in mine]
                pts = [p for p in speedups if p[1] is not None]
                label = cov if lib == "ours" else None
                ax_s.plot(*zip(*pts, strict=True), ls=ls, label=label, **kw)
        note = " (init in float32 too)" if dtype == "float32" else ""
        ax_t.set(
            title=f"Time per EM iteration, {dtype}{note}",
            ylabel="median seconds per EM iteration",
        )
        ax_s.set(
            title=f"Speed-up over scikit-learn, {dtype}",
            ylabel="speed-up (sklearn s/iter ÷ ours s/iter)",
        )
        if len(OURS) > 1 and any("ours_numba" in c for c in rows):
            ax_s.plot([], [], ls=":", color="black", lw=2, label="compiled kernel")
        for ax in (ax_t, ax_s):
            ax.set(xscale="log", yscale="log", xlabel="n (rows)")
            ax.grid(True, which="major", alpha=0.4)
            ax.grid(True, which="minor", alpha=0.12)
        handles = [
            Line2D([], [], color=COLORS[c], marker=STYLE[c], lw=2, label=c)
            for c in covs
        ]
        black = {"color": "black", "lw": 2}
        for lib, ls in OURS:
            if any(lib in c for c in rows):
                label = OURS_LABELS[lib]
                handles.append(Line2D([], [], ls=ls, label=label, **black))
        handles.append(
            Line2D([], [], ls="--", marker="o", mfc="w", label="sklearn", **black)
        )
        ax_t.legend(handles=handles, loc="best", fontsize=9, framealpha=0.9)
        ax_s.axhline(1.0, color="grey", lw=1, ls=":")
        ax_s.legend(loc="best", fontsize=9, framealpha=0.9)
        lo, hi = ax_s.get_ylim()
        lo, hi = min(lo, 0.8), max(hi, 1.25)
        ax_s.set_ylim(lo, hi)
        ticks = [t for t in SPEEDUP_TICKS if lo <= t <= hi]
        ax_s.yaxis.set_major_locator(FixedLocator(ticks[:: 1 + len(ticks) // 10]))
        ax_s.yaxis.set_major_formatter(FormatStrFormatter("%gx"))
        ax_s.yaxis.set_minor_formatter(NullFormatter())

    before, after = env.get("loadavg_before"), env.get("loadavg_after")
    load = f"; load avg {before[0]:g} → {after[0]:g}" if before and after else ""
    fig.suptitle(
        f"GaussianMixture.fit, {settings.get('n_iter', '?')} EM iterations from "
        f"the same init, median of {settings.get('repeats', '?')} repeats, BLAS "
        f"threads={settings.get('threads') or 'default'}, ours n_jobs="
        f"{settings.get('n_jobs')}\n{env.get('cpu_model', '?')} "
        f"({env.get('cpu_count', '?')} CPUs); sklearn {env.get('sklearn', '?')}, "
        f"sklearn_em {env.get('sklearn_em', '?')}{load}",
        fontsize=11,
    )
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output


def main(argv=None):
    """Plot a bench_fit JSON; return 0, or 2 when it has no ``sizes`` suite."""
    p = argparse.ArgumentParser(description="Plot the sizes suite of bench_fit.py.")
    p.add_argument("input", nargs="?", type=Path, help="bench_fit JSON")
    p.add_argument("--output", type=Path, help="PNG (default: input with .png)")
    args = p.parse_args(argv)
    path = args.input or next(
        (RESULTS_DIR / n for n in DEFAULT_INPUTS if (RESULTS_DIR / n).exists()),
        RESULTS_DIR / DEFAULT_INPUTS[0],
    )
    results = json.loads(path.read_text(encoding="utf-8"))
    try:
        out = plot(results, args.output or path.with_suffix(".png"))
    except ValueError as exc:
        print(f"{path}: {exc}", file=sys.stderr)
        return 2
    print(f"figure written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
