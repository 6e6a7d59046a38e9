"""Plot the ``sizes`` suite of ``bench_fit.py``.

Reads a ``bench_fit`` JSON file that holds the ``sizes`` suite (for instance
``results/bench_fit-sizes.json`` or ``results/bench_fit-all.json``; files of
the older single-suite layout, with a top-level ``cases`` list, work too) and
writes a PNG with, for every dtype in the file (one row each), two
log-scaled panels: median seconds per EM iteration against the number of
rows ``n`` (one line per library per covariance type; ours solid,
scikit-learn dashed, one colour per covariance type), and the speed-up
(sklearn / ours) against ``n``.

Examples
--------
::

    python benchmarks/plot_results.py     # results/bench_fit-sizes.json
    python benchmarks/plot_results.py benchmarks/results/bench_fit-all-quick.json \\
        --output /tmp/quick.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_INPUTS = ("bench_fit-sizes.json", "bench_fit-all.json", "bench_fit.json")
COLORS = {
    "full": "tab:blue",
    "tied": "tab:orange",
    "diag": "tab:green",
    "spherical": "tab:red",
}
MARKERS = {"full": "o", "tied": "s", "diag": "^", "spherical": "D"}
SPEEDUP_TICKS = (
    *(0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 2, 3, 4, 5, 7, 10),
    *(15, 20, 30, 50, 70, 100, 200, 500, 1000),
)


def _series(cases, covariance_type, key):
    """Extract ``(n, value)`` pairs for one covariance type, sorted by ``n``.

    Parameters
    ----------
    cases : list of dict
        The ``cases`` list of a bench_fit JSON.
    covariance_type : str
        Covariance type to select.
    key : callable
        Maps a case to the plotted value (``None`` values are skipped).

    Returns
    -------
    ns : list of int
        Sample sizes.
    values : list of float
        Plotted values.
    """
    pairs = sorted(
        (c["n"], key(c))
        for c in cases
        if c["covariance_type"] == covariance_type and key(c) is not None
    )
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _thin_log_ticks(ticks, lo, hi, max_ticks=9):
    """Drop ticks that would crowd each other on a log axis; always keep 1.

    Parameters
    ----------
    ticks : list of float
        Candidate tick values inside ``[lo, hi]``, ascending.
    lo, hi : float
        Axis limits.
    max_ticks : int, default=9
        Roughly the number of ticks wanted over the whole axis.

    Returns
    -------
    kept : list of float
        Ticks at least ``log10(hi / lo) / max_ticks`` decades apart.
    """
    min_gap = math.log10(hi / lo) / max_ticks
    kept = [1.0]
    for direction in (1, -1):
        last = 1.0
        for t in ticks[::direction]:
            if direction * (t - 1.0) > 0 and abs(math.log10(t / last)) >= min_gap:
                kept.append(t)
                last = t
    return sorted(kept)


def _load_note(env):
    """Describe the 1-minute load average before and after the run.

    Parameters
    ----------
    env : dict
        The ``environment`` entry of a bench_fit JSON.

    Returns
    -------
    note : str
        ``"; load avg X -> Y"``, or ``""`` if the JSON does not record it.
    """
    before, after = env.get("loadavg_before"), env.get("loadavg_after")
    if not before or not after:
        return ""
    return f"; load avg {before[0]:g} → {after[0]:g}"


def sizes_suite(results):
    """Extract the ``sizes`` suite from a bench_fit JSON.

    Parameters
    ----------
    results : dict
        Parsed bench_fit JSON, current layout (``suites``) or the older one
        (top-level ``cases``, float64 only).

    Returns
    -------
    cases : list of dict
        The ``sizes`` cases.
    settings : dict
        ``n_iter``, ``repeats``, ``threads`` and ``n_jobs`` of the run.

    Raises
    ------
    ValueError
        If the file holds no ``sizes`` suite.
    """
    top = results.get("settings", {})
    if "suites" in results:
        if "sizes" not in results["suites"]:
            raise ValueError(
                "no 'sizes' suite in this file (suites: "
                + ", ".join(results["suites"])
                + "); run bench_fit.py --suite sizes"
            )
        suite = results["suites"]["sizes"]
        return suite["cases"], {**top, **suite.get("settings", {})}
    if "cases" in results:
        return results["cases"], top
    raise ValueError("not a bench_fit result file")


def _dtype_note(dtype):
    """Subtitle of one row of panels.

    Parameters
    ----------
    dtype : str
        ``"float64"`` or ``"float32"``.

    Returns
    -------
    note : str
        The dtype; for float32, a reminder that the init is float32 too.
    """
    if dtype == "float32":
        return "float32 (init in float32 too)"
    return dtype


def plot(results, output):
    """Write the benchmark figure of the ``sizes`` suite.

    Parameters
    ----------
    results : dict
        Parsed bench_fit JSON.
    output : path-like
        PNG file to write; parent directories are created.

    Returns
    -------
    output : pathlib.Path
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    all_cases, settings = sizes_suite(results)
    env = results.get("environment", {})
    present = {c.get("dtype", "float64") for c in all_cases}
    dtypes = [d for d in ("float64", "float32") if d in present] or ["float64"]

    fig, axes = plt.subplots(
        len(dtypes),
        2,
        figsize=(12, 5.2 * len(dtypes)),
        gridspec_kw={"width_ratios": [1.35, 1]},
        squeeze=False,
    )
    for (ax_t, ax_s), dtype in zip(axes, dtypes, strict=True):
        cases = [c for c in all_cases if c.get("dtype", "float64") == dtype]
        cov_types = [c for c in COLORS if any(x["covariance_type"] == c for x in cases)]
        for cov in cov_types:
            color, marker = COLORS[cov], MARKERS[cov]
            for lib, style in (("ours", "-"), ("sklearn", "--")):
                ns, ts = _series(
                    cases, cov, lambda c, lib=lib: c[lib]["median_s_per_iter"]
                )
                ax_t.plot(
                    ns,
                    ts,
                    linestyle=style,
                    marker=marker,
                    color=color,
                    markerfacecolor=color if lib == "ours" else "white",
                    linewidth=2,
                    markersize=6,
                )
            ns, sp = _series(cases, cov, lambda c: c["speedup"])
            ax_s.plot(ns, sp, "-", marker=marker, color=color, linewidth=2, label=cov)

        ax_t.set_xscale("log")
        ax_t.set_yscale("log")
        ax_t.set_xlabel("n (rows)")
        ax_t.set_ylabel("median seconds per EM iteration")
        ax_t.set_title(f"Time per EM iteration, {_dtype_note(dtype)}")
        ax_t.grid(True, which="major", alpha=0.4)
        ax_t.grid(True, which="minor", alpha=0.12)
        handles = [
            Line2D([], [], color=COLORS[c], marker=MARKERS[c], lw=2, label=c)
            for c in cov_types
        ] + [
            Line2D([], [], color="black", ls="-", lw=2, label="ours (sklearn_em)"),
            Line2D(
                [], [], color="black", ls="--", lw=2, marker="o", mfc="white",
                label="sklearn",
            ),
        ]  # fmt: skip
        ax_t.legend(handles=handles, loc="best", fontsize=9, framealpha=0.9)

        ax_s.set_xscale("log")
        ax_s.set_yscale("log")
        ax_s.axhline(1.0, color="grey", lw=1, ls=":")
        ax_s.set_xlabel("n (rows)")
        ax_s.set_ylabel("speed-up (sklearn s/iter ÷ ours s/iter)")
        ax_s.set_title(f"Speed-up over scikit-learn, {dtype}")
        ax_s.grid(True, which="major", alpha=0.4)
        ax_s.grid(True, which="minor", alpha=0.12)
        ax_s.legend(loc="best", fontsize=9, framealpha=0.9)
        # Log axis with plain, readable speed-up ticks ("0.5x", "1x", "2x", ...).
        lo, hi = ax_s.get_ylim()
        lo, hi = min(lo, 0.8), max(hi, 1.25)
        ax_s.set_ylim(lo, hi)
        ticks = _thin_log_ticks([t for t in SPEEDUP_TICKS if lo <= t <= hi], lo, hi)
        ax_s.yaxis.set_major_locator(matplotlib.ticker.FixedLocator(ticks))
        ax_s.yaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%gx"))
        ax_s.yaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())

    threads = settings.get("threads") or "default"
    n_jobs = settings.get("n_jobs")
    fig.suptitle(
        f"GaussianMixture.fit, {settings.get('n_iter', '?')} EM iterations from "
        f"the same init, median of {settings.get('repeats', '?')} repeats, "
        f"BLAS threads={threads}, ours n_jobs={n_jobs}\n"
        f"{env.get('cpu_model', '?')} ({env.get('cpu_count', '?')} CPUs); "
        f"sklearn {env.get('sklearn', '?')}, sklearn_em {env.get('sklearn_em', '?')}"
        + _load_note(env),
        fontsize=11,
    )
    fig.tight_layout()
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120)
    plt.close(fig)
    return output


def _default_input():
    """The first existing default result file.

    Returns
    -------
    path : pathlib.Path
        ``results/bench_fit-sizes.json``, else ``results/bench_fit-all.json``,
        else ``results/bench_fit.json`` (older layout); the first name when
        none exists (the error then names it).
    """
    for name in DEFAULT_INPUTS:
        if (RESULTS_DIR / name).exists():
            return RESULTS_DIR / name
    return RESULTS_DIR / DEFAULT_INPUTS[0]


def main(argv=None) -> int:
    """Read a bench_fit JSON and write the PNG.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 on success, 2 when the file holds no ``sizes`` suite.
    """
    p = argparse.ArgumentParser(description="Plot the sizes suite of bench_fit.py.")
    p.add_argument(
        "input",
        nargs="?",
        type=Path,
        help="bench_fit JSON (default: benchmarks/results/bench_fit-sizes.json, "
        "else bench_fit-all.json)",
    )
    p.add_argument(
        "--output",
        type=Path,
        help="PNG path (default: the input path with .png instead of .json)",
    )
    args = p.parse_args(argv)
    path = args.input or _default_input()
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
