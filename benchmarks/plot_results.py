"""Plot the results of ``bench_fit.py``.

Reads a ``bench_fit`` JSON file and writes a PNG with two log-scaled panels:
median seconds per EM iteration against the number of rows ``n`` (one line
per library per covariance type; ours solid, scikit-learn dashed, one colour
per covariance type), and the speed-up (sklearn / ours) against ``n``.

Examples
--------
::

    python benchmarks/plot_results.py
    python benchmarks/plot_results.py benchmarks/results/bench_fit-quick.json \\
        --output /tmp/quick.png
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
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


def plot(results, output):
    """Write the benchmark figure.

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

    cases = results["cases"]
    settings = results.get("settings", {})
    env = results.get("environment", {})
    cov_types = [c for c in COLORS if any(x["covariance_type"] == c for x in cases)]

    fig, (ax_t, ax_s) = plt.subplots(
        1, 2, figsize=(12, 5.2), gridspec_kw={"width_ratios": [1.35, 1]}
    )
    for cov in cov_types:
        color, marker = COLORS[cov], MARKERS[cov]
        for lib, style in (("ours", "-"), ("sklearn", "--")):
            ns, ts = _series(cases, cov, lambda c, lib=lib: c[lib]["median_s_per_iter"])
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
    ax_t.set_title("Time per EM iteration")
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
    ax_s.set_title("Speed-up over scikit-learn")
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
    fig.suptitle(
        f"GaussianMixture.fit, {settings.get('dtype', '?')}, "
        f"{settings.get('n_iter', '?')} EM iterations, "
        f"median of {settings.get('repeats', '?')} repeats, threads={threads}\n"
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


def main(argv=None) -> int:
    """Read a bench_fit JSON and write the PNG.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 on success.
    """
    p = argparse.ArgumentParser(description="Plot bench_fit.py results.")
    p.add_argument(
        "input",
        nargs="?",
        type=Path,
        default=RESULTS_DIR / "bench_fit.json",
        help="bench_fit JSON (default benchmarks/results/bench_fit.json)",
    )
    p.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "bench_fit.png",
        help="PNG path (default benchmarks/results/bench_fit.png)",
    )
    args = p.parse_args(argv)
    results = json.loads(args.input.read_text(encoding="utf-8"))
    out = plot(results, args.output)
    print(f"figure written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
