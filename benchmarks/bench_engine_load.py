"""What the compiled kernel costs before its first E-step: import, compile, load.

Each measurement runs in a fresh interpreter (``python -c``), ``--repeats``
times, medians reported:

``import_numba_s``
    ``import numba`` alone.
``compile_s``
    Loading the kernels for float64 rows with an empty numba cache directory
    (``NUMBA_CACHE_DIR`` set to a new temporary folder): every kernel
    compiled, as on a machine's first use; includes ``import numba`` (but
    not the import of sklearn_em, numpy, scipy and scikit-learn, done first).
``cached_load_s``
    The same with that cache filled: what every later process pays.
``float32_extra_s``
    Loading the float32 kernels on top, cache filled.

These are the costs that the ``'auto'`` engine keeps off a fit's critical
path (see ``sklearn_em/_engine.py``): it loads the kernels on a background
thread and uses them from the next fit on.

Examples
--------
::

    python benchmarks/bench_engine_load.py
    python benchmarks/bench_engine_load.py --quick   # one repeat
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

TIMED = """
import time
{before}
t0 = time.perf_counter()
{setup}
print(time.perf_counter() - t0)
"""
IMPORT = "import numba"
# sklearn_em (and so numpy, scipy, scikit-learn) imported untimed, first.
LIBRARY = "import numpy as np\nfrom sklearn_em import _engine"
LOAD = "_engine._load(np.float64)"
LOAD32 = "_engine._load(np.float32)"
DEFAULTS = {"repeats": 5, "threads": None}
QUICK = {"repeats": 1}


def timed(setup, cache_dir, before=""):
    """Seconds ``setup`` took (after ``before``, untimed) in a fresh
    interpreter with that numba cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    code = TIMED.format(before=before, setup=setup)
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return float(out.stdout.strip().splitlines()[-1])


def measure(cfg):
    times = {"import_numba_s": [], "compile_s": [], "cached_load_s": []}
    times["float32_extra_s"] = []
    for _ in range(cfg["repeats"]):
        with tempfile.TemporaryDirectory() as cache:
            times["import_numba_s"].append(timed(IMPORT, cache))
            times["compile_s"].append(timed(LOAD, cache, before=LIBRARY))
            times["cached_load_s"].append(timed(LOAD, cache, before=LIBRARY))
            # The float32 kernels, compiled once, then timed from the cache.
            both = LIBRARY + "\n" + LOAD
            timed(LOAD32, cache, before=both)
            times["float32_extra_s"].append(timed(LOAD32, cache, before=both))
    cases = [
        {"what": k, "times_s": v, "median_s": h.median(v)} for k, v in times.items()
    ]
    return {"cases": cases, "failures": []}


def report(results, cfg):
    rows = [[c["what"], h.fmt(c["median_s"], ".3f")] for c in results["cases"]]
    return h.table(["<what", "median s"], rows)


def main(argv=None):
    p = h.parser(
        "Time importing, compiling and loading the compiled kernel.", "repeats"
    )
    cfg = h.settings(p.parse_args(argv), DEFAULTS, QUICK)
    output = h.default_output("bench_engine_load", cfg)
    return h.run("bench_engine_load", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
