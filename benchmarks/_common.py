"""Helpers shared by the benchmark scripts of this directory.

The scripts are run as ``python benchmarks/bench_x.py`` and imported by the
tests from their file path; each puts its own directory on ``sys.path``
before ``import _common``. Importing this module also makes ``sklearn_em``
importable from the checkout when it is not installed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from pathlib import Path

import numpy as np

try:
    import sklearn_em  # noqa: F401
except ImportError:  # not installed: use the checkout this script lives in
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS_DIR = Path(__file__).resolve().parent / "results"


# --------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------


def cpu_model():
    """Return the CPU model name from ``/proc/cpuinfo``, if available.

    Returns
    -------
    model : str or None
        The first ``model name`` entry, or ``platform.processor()`` (which may
        be empty) when ``/proc/cpuinfo`` does not exist or has no such entry.
    """
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def sklearn_em_version():
    """Return ``sklearn_em.__version__``, or ``None`` if it is not defined.

    Returns
    -------
    version : str or None
        The version string of the installed ``sklearn_em`` package.
    """
    import sklearn_em

    return getattr(sklearn_em, "__version__", None)


def loadavg():
    """Return the 1, 5 and 15 minute load averages, if the OS reports them.

    Returns
    -------
    loadavg : list of float or None
        ``os.getloadavg()`` rounded to two decimals, or ``None`` where it is
        not available.
    """
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except (AttributeError, OSError):
        return None


def threadpools():
    """Summarise the thread pools currently loaded.

    Returns
    -------
    pools : list of dict
        One entry per pool with ``user_api``, ``internal_api``,
        ``num_threads``, ``version``, ``filepath`` and, for BLAS pools,
        ``threading_layer`` and ``architecture``.
    """
    from threadpoolctl import threadpool_info

    keys = (
        "user_api",
        "internal_api",
        "num_threads",
        "version",
        "threading_layer",
        "architecture",
        "filepath",
    )
    return [{k: pool.get(k) for k in keys if k in pool} for pool in threadpool_info()]


def environment_info(thread_pools=False):
    """Collect machine and library information.

    Parameters
    ----------
    thread_pools : bool, default=False
        Also record ``joblib.cpu_count()`` and the BLAS / OpenMP thread pools
        as reported by :func:`threadpoolctl.threadpool_info` (at call time,
        i.e. the defaults when called outside ``threadpool_limits``).

    Returns
    -------
    info : dict
        JSON-serialisable description of the platform, CPU, library versions
        and the load average before the run.
    """
    import scipy
    import sklearn

    info = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    if thread_pools:
        import joblib

        info["joblib_cpu_count"] = joblib.cpu_count()
    info.update(
        python=sys.version.replace("\n", " "),
        numpy=np.__version__,
        scipy=scipy.__version__,
        sklearn=sklearn.__version__,
        sklearn_em=sklearn_em_version(),
    )
    if thread_pools:
        info["threadpool_info"] = threadpools()
    info["loadavg_before"] = loadavg()
    return info


def environment_line(env):
    """One-line summary of :func:`environment_info` for the printed header.

    Parameters
    ----------
    env : dict
        Output of :func:`environment_info`.

    Returns
    -------
    line : str
        ``# <cpu> (<n> CPUs), <platform>, python ..., ...; load average ...``.
    """
    return (
        f"# {env['cpu_model']} ({env['cpu_count']} CPUs), {env['platform']}, "
        f"python {platform.python_version()}, numpy {env['numpy']}, "
        f"scipy {env['scipy']}, sklearn {env['sklearn']}, "
        f"sklearn_em {env['sklearn_em']}; load average {env['loadavg_before']}"
    )


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


def result_header(benchmark, argv, elapsed):
    """First entries of a result JSON.

    Parameters
    ----------
    benchmark : str
        Name of the benchmark script (without ``.py``).
    argv : list of str or None
        Arguments given to ``main`` (``None``: ``sys.argv[1:]``).
    elapsed : float
        Wall time of the run in seconds.

    Returns
    -------
    header : dict
        ``benchmark``, ``created`` (UTC, ISO 8601), ``argv`` and
        ``elapsed_s``.
    """
    return {
        "benchmark": benchmark,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "elapsed_s": elapsed,
    }


def write_result(result, output, elapsed):
    """Write ``result`` as indented JSON and say where.

    Parameters
    ----------
    result : dict
        JSON-serialisable results.
    output : pathlib.Path
        File to write; missing parent directories are created.
    elapsed : float
        Wall time of the run in seconds, printed with the path.
    """
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {output} ({elapsed:.1f} s)")


def warn_if_busy(env, suffix=""):
    """Warn on stderr when the load average suggests competing processes.

    Parameters
    ----------
    env : dict
        Output of :func:`environment_info` with ``loadavg_after`` added.
    suffix : str, default=""
        Text appended to the warning.
    """
    before, after, ncpu = env["loadavg_before"], env["loadavg_after"], env["cpu_count"]
    # Heuristic: busy before we started, or more runnable threads than CPUs
    # afterwards (this run alone accounts for at most ~cpu_count of that).
    if before and after and ncpu and (before[0] > 0.25 * ncpu or after[0] > ncpu + 0.5):
        print(
            f"WARNING: load average {before[0]} before / {after[0]} after the run "
            f"on {ncpu} CPUs: other processes may have competed for the CPUs, "
            f"so the timings may be inflated{suffix}",
            file=sys.stderr,
        )


def report_failures(failures, detail=""):
    """Print the failures on stderr.

    Parameters
    ----------
    failures : list of str
        Problems found.
    detail : str, default=""
        Text inserted after ``problem(s)`` in the heading.
    """
    print(f"\nFAILED: {len(failures)} problem(s){detail}:", file=sys.stderr)
    for f in failures:
        print(f"  - {f}", file=sys.stderr)


def progress(message):
    """Print a progress line on stderr.

    Parameters
    ----------
    message : str
        Text to print.
    """
    print(f"#   {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Numbers and tables
# --------------------------------------------------------------------------


def median(values):
    """Median of a list, or ``None`` for an empty one.

    Parameters
    ----------
    values : list of float
        Values.

    Returns
    -------
    median : float or None
        ``statistics.median(values)``.
    """
    return statistics.median(values) if values else None


def ratio(num, den):
    """``num / den``, or ``None`` if either is missing or ``den`` is 0.

    Parameters
    ----------
    num, den : float or None
        Numerator and denominator.

    Returns
    -------
    ratio : float or None
        The quotient.
    """
    if num is None or not den:
        return None
    return num / den


def fmt(value, spec):
    """Format ``value`` with ``spec``, or return ``"—"`` for ``None``.

    Parameters
    ----------
    value : float or None
        Value to format.
    spec : str
        Format specification, e.g. ``".3e"``.

    Returns
    -------
    text : str
        Formatted value.
    """
    return "—" if value is None else format(value, spec)


def fx(value):
    """Format a ratio such as ``2.31x`` (``"—"`` for ``None``).

    Parameters
    ----------
    value : float or None
        Ratio.

    Returns
    -------
    text : str
        Formatted value.
    """
    return "—" if value is None else f"{value:.2f}x"


def table(header, rows):
    """Render a markdown table.

    Parameters
    ----------
    header : list of str
        Column titles; a title starting with ``<`` is left-aligned (the
        ``<`` is dropped), every other column right-aligned.
    rows : list of list of str
        Cells.

    Returns
    -------
    table : str
        Markdown table.
    """
    titles = [h.lstrip("<") for h in header]
    align = ["---" if h.startswith("<") else "---:" for h in header]
    lines = ["| " + " | ".join(titles) + " |", "|" + "|".join(align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def match_components(means, reference_means):
    """Permutation of components that best matches a reference.

    Parameters
    ----------
    means : ndarray of shape (n_components, n_features)
        Means to reorder.
    reference_means : ndarray of shape (n_components, n_features)
        Reference means.

    Returns
    -------
    order : ndarray of shape (n_components,)
        ``means[order]`` is matched row by row with ``reference_means``
        (minimum total squared distance,
        :func:`scipy.optimize.linear_sum_assignment`).
    """
    from scipy.optimize import linear_sum_assignment

    cost = ((reference_means[:, None, :] - means[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    return cols[np.argsort(rows)]


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def parse_size(text, minimum, noun="sample size", too_small=None):
    """Parse a size such as ``10000`` or ``1e4``.

    Parameters
    ----------
    text : str
        Command-line token.
    minimum : int
        Smallest accepted value.
    noun : str, default="sample size"
        What the number counts, used in the error message.
    too_small : str, optional
        Error message (before ``: 'text'``) for a non-integer or too small
        value; default ``f"not a valid {noun}"``.

    Returns
    -------
    n : int
        The size.
    """
    message = f"not a valid {noun}"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{message}: {text!r}") from None
    if value != int(value) or value < minimum:
        raise argparse.ArgumentTypeError(f"{too_small or message}: {text!r}")
    return int(value)


def positive_int(text):
    """Parse a strictly positive integer.

    Parameters
    ----------
    text : str
        Command-line token.

    Returns
    -------
    value : int
        The parsed integer.
    """
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text!r}")
    return value
