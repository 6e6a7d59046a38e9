"""Fit ``sklearn_em.GaussianMixture`` on Dask arrays: out of core, overhead, scaling.

Suites (``--suite``; default all): ``outofcore`` (``--rows`` 2e8 rows x 2 of
three-Gaussian data, 3.2 GB, generated block by block on a 2-worker
``LocalCluster`` of 1 GiB per worker: seconds per EM iteration, rows/s, peak
worker memory, spilling), ``overhead`` (1e7 rows: the in-memory fit against
the same data as a Dask array, persisted on the cluster, generated lazily, and
``da.from_array`` on the threaded scheduler), ``scaling`` (2e7 rows persisted
on 1 and on 2 workers: speed-up, tasks and scheduler overhead per iteration)
and ``init`` (1e7 rows: ``init_params='kmeans'`` on the library's 100k-row
sample against dask-ml's k-means|| over all rows; init time and converged
lower bound). Fixed-iteration fits start from the same perturbed true
parameters with ``tol=0``; seconds per iteration are the library's own
``verbose=2`` per-iteration time lapses, which leave out the first pass over
the data (checks and centre) and everything after the last M-step.

The exit status is 1 if a call raises, a Dask fit's lower bound differs from
the in-memory fit's by more than ``--rtol`` (1e-10), or from one worker's on
two, if ``n_iter_`` or the number of ``compute`` calls per fit is off, or if
the out-of-core fit spilled to disk or lost a worker.

Examples
--------
::

    python benchmarks/bench_dask.py                      # every suite, 2e8 rows
    python benchmarks/bench_dask.py --suite overhead     # one suite
    python benchmarks/bench_dask.py --quick              # tiny sizes, < 1 minute
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import tempfile
import time
import warnings
from pathlib import Path

import dask
import dask.array as da
import numpy as np
from distributed import Client, LocalCluster, wait
from distributed.diagnostics.plugin import SchedulerPlugin
from sklearn.exceptions import ConvergenceWarning

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h

from sklearn_em import GaussianMixture as OurGaussianMixture
from sklearn_em import _dask
from sklearn_em.datasets import three_gaussians_params

SUITES = ("outofcore", "overhead", "scaling", "init")
DEFAULTS = {
    "suite": list(SUITES), "rows": 200_000_000, "overhead_rows": 10_000_000,
    "scaling_rows": 20_000_000, "init_rows": 10_000_000, "block_rows": 1_000_000,
    "n_iter": 4, "repeats": 3, "init_seeds": 3, "memory_limit": "1GiB",
    "init_memory_limit": "4GiB",
    "rtol": 1e-10, "threads": None,
}  # fmt: skip
QUICK = {
    "rows": 200_000, "overhead_rows": 200_000, "scaling_rows": 200_000,
    "init_rows": 200_000, "block_rows": 20_000, "n_iter": 3, "repeats": 2,
    "init_seeds": 2,
}  # fmt: skip
TRUTH = three_gaussians_params()
CHOLESKY = np.linalg.cholesky(TRUTH["covariances"])
LAPSE = re.compile(r"Iteration \d+\t time lapse ([0-9.]+)s")
TINY_ROWS = 16  # rows per block of the scheduler-overhead probe
MIB = h.MIB


# -- data: deterministic blocks, generated wherever they are needed --
def three_gaussian_block(rows, seed, index):
    """Block ``index`` of the three-Gaussian mixture: its own generator
    (``default_rng([seed, index])``), multinomial counts per component, rows
    grouped by component; x = L z + mean, elementwise (no small matmuls)."""
    rng = np.random.default_rng([seed, index])
    counts = rng.multinomial(rows, TRUTH["weights"])
    X = rng.standard_normal((rows, CHOLESKY.shape[1]))
    start = 0
    for L, mean, count in zip(CHOLESKY, TRUTH["means"], counts, strict=True):
        x = X[start : start + count]
        for i in reversed(range(len(L))):  # row i uses z[:, :i+1], still intact
            x[:, i] *= L[i, i]
            for j in range(i):
                x[:, i] += L[i, j] * x[:, j]
        x += mean
        start += count
    return X


def _block_at(block_id=None, *, n, block_rows, seed):
    i = block_id[0]
    return three_gaussian_block(min(block_rows, n - i * block_rows), seed, i)


def row_chunks(n, block_rows):
    return (block_rows,) * (n // block_rows) + (
        (n % block_rows,) if n % block_rows else ()
    )


def lazy_data(n, block_rows, seed, tag="lazy"):
    """``n`` rows as a Dask array whose blocks are generated when computed.
    Its keys name ``tag``: a persisted copy under another tag does not stand
    in for the lazy blocks (the scheduler would reuse keys it holds)."""
    d = len(TRUTH["means"][0])
    return da.map_blocks(
        _block_at,
        name=f"three-gaussians-{tag}-{n}-{block_rows}-{seed}",
        chunks=(row_chunks(n, block_rows), (d,)),
        dtype=np.float64,
        meta=np.empty((0, d)),
        n=n,
        block_rows=block_rows,
        seed=seed,
    )


def in_memory(n, block_rows, seed):
    """The same values as :func:`lazy_data`, as one NumPy array."""
    sizes = row_chunks(n, block_rows)
    return np.concatenate(
        [three_gaussian_block(r, seed, i) for i, r in enumerate(sizes)]
    )


def perturbed_truth(seed):
    """Start of fixed-iteration fits: true parameters, moved (means by about
    0.5, covariances x 1.5, weights off 1/3)."""
    rng = np.random.default_rng(seed)
    weights = TRUTH["weights"] * rng.uniform(0.8, 1.2, 3)
    means = TRUTH["means"] + rng.normal(0.0, 0.5, TRUTH["means"].shape)
    return {
        "weights_init": weights / weights.sum(),
        "means_init": means,
        "precisions_init": np.linalg.inv(1.5 * TRUTH["covariances"]),
    }


# -- clusters, what their scheduler and workers saw --
class ComputeCounter(SchedulerPlugin):
    """Tasks run per graph: each ``update_graph`` (one ``compute``) opens a
    count of the tasks that then finish, and records when (``perf_counter``:
    the LocalCluster's scheduler runs in this process)."""

    def __init__(self):
        self.tasks, self.started = [], []

    def update_graph(self, scheduler, **kwargs):
        self.tasks.append(0)
        self.started.append(time.perf_counter())

    def transition(self, key, start, finish, *args, **kwargs):
        if start == "processing" and finish == "memory" and self.tasks:
            self.tasks[-1] += 1


def _worker_memory(dask_worker):
    import resource

    import psutil

    metrics = getattr(dask_worker.data, "cumulative_metrics", {})
    return {
        "rss_mib": psutil.Process().memory_info().rss / 2**20,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "spilled_mib": metrics.get(("disk-write", "bytes"), 0.0) / 2**20,
        "spill_count": int(metrics.get(("disk-write", "count"), 0)),
    }


def _reset_peak_rss():
    try:  # Linux >= 4.0: ru_maxrss restarts from the current RSS
        Path("/proc/self/clear_refs").write_text("5", encoding="ascii")
    except OSError:
        return False
    return True


class Clusters:
    """``LocalCluster`` s started on demand, one per worker count and memory
    limit (processes, one thread each), each with a :class:`ComputeCounter`."""

    def __init__(self, memory_limit, directory):
        self.memory_limit, self.directory, self.open = memory_limit, directory, {}

    def __call__(self, n_workers, memory_limit=None):
        key = n_workers, memory_limit or self.memory_limit
        if key not in self.open:
            h.progress(f"starting a LocalCluster of {n_workers} worker(s), {key[1]}")
            cluster = LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                memory_limit=key[1],
                dashboard_address=":0",  # a free port
                local_directory=self.directory,
            )
            counter = ComputeCounter()
            cluster.scheduler.add_plugin(counter, name="bench_dask_counter")
            client = Client(cluster, set_as_default=False)
            self.open[key] = (cluster, client, counter)
        return self.open[key][1:]

    def close(self):
        for cluster, client, _ in self.open.values():
            client.close()
            cluster.close()


def cluster_info(client):
    workers = client.scheduler_info()["workers"]
    return {
        "n_workers": len(workers),
        "threads_per_worker": [w["nthreads"] for w in workers.values()],
        "processes": True,
        "memory_limit_mib": [w["memory_limit"] / MIB for w in workers.values()],
    }


def persist(client, X):
    """``X`` computed into the cluster's memory (block by block, where made)."""
    X = client.persist(X)
    with client.as_current():
        wait(X)
    return X


# -- fits --
class _Stamped(io.StringIO):
    """Captured ``verbose`` output; ``begin``: when "Initialization" was
    written (the first pass over the data is done, the init starts)."""

    begin = None

    def write(self, text):
        if self.begin is None and text.startswith("Initialization"):
            self.begin = time.perf_counter()
        return super().write(text)


def em_fit(X, scheduler, n_iter=None, seed=0, init=None, **params):
    """Fit ours on ``X`` under ``scheduler`` (a Client, ``"threads"`` or None
    for NumPy input); with ``init``, exactly ``n_iter`` iterations from it.
    Returns the estimator, its per-iteration seconds (``verbose=2``) and the
    ``perf_counter`` at which its initialisation began."""
    params = {"verbose": 2, "verbose_interval": 1, **params}
    if init is not None:
        est = h.fixed_iterations(
            OurGaussianMixture, init, "full", n_iter, seed, **params
        )
    else:
        est = OurGaussianMixture(3, random_state=seed, **params)
    out, config = _Stamped(), dask.config.set(scheduler=scheduler or "sync")
    with config, contextlib.redirect_stdout(out), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0 never converges
        est.fit(X)
    return est, [float(s) for s in LAPSE.findall(out.getvalue())], out.begin


def fixed_fits(variants, init, cfg, counters=None):
    """Interleaved repeats of exactly ``n_iter`` iterations on every variant
    (name -> (X, scheduler)). Per variant: every fit's time and iteration
    lapses, the median over fits of their median lapse (``s_per_iter``), the
    last fit's lower bound and ``n_iter_``, and (given its scheduler's
    counter) the tasks of each of the last fit's computes."""
    lapses, computes = {k: [] for k in variants}, {}

    def call(name, X, scheduler):
        counter = (counters or {}).get(name)
        before = len(counter.tasks) if counter else 0
        est, it, _ = em_fit(X, scheduler, cfg["n_iter"], cfg["seed"], init)
        lapses[name].append(it)
        if counter:
            computes[name] = counter.tasks[before:]
        return est

    calls = {k: lambda k=k, v=v: call(k, *v) for k, v in variants.items()}
    times, fitted, errors = h.interleaved(calls, cfg["repeats"])
    out = {}
    for name in variants:
        est, tasks = fitted.get(name), computes.get(name)
        out[name] = {
            "fit_times_s": times[name],
            "iteration_s": lapses[name],
            "s_per_iter": h.median([h.median(it) for it in lapses[name] if it]),
            "n_iter": None if est is None else int(est.n_iter_),
            "lower_bound": None if est is None else float(est.lower_bound_),
            "computes_per_fit": None if tasks is None else len(tasks),
            "tasks_per_compute": tasks,
        }
    return out, errors


def check_fit(tag, r, cfg, failures, reference=None, tasks=None):
    """Gate of one fixed-iteration result: iterations, computes (and
    ``tasks`` per iteration's compute, if given), lower bound."""
    if r["n_iter"] != cfg["n_iter"]:
        failures.append(f"{tag}: n_iter_ = {r['n_iter']}, expected {cfg['n_iter']}")
    if r["computes_per_fit"] not in (None, cfg["n_iter"] + 1):
        failures.append(
            f"{tag}: {r['computes_per_fit']} computes per fit, expected "
            f"{cfg['n_iter'] + 1} (one pass of checks, one per iteration)"
        )
    if tasks is not None and set((r["tasks_per_compute"] or [0, 0])[1:]) != {tasks}:
        failures.append(
            f"{tag}: tasks per compute {r['tasks_per_compute']}, expected {tasks} "
            "per iteration (blocks, their generation if lazy, tree, model, spec)"
        )
    if reference is not None and r["lower_bound"] is not None:
        rel = h.relative_difference(r["lower_bound"], reference)
        r["lower_bound_rel_diff"] = rel
        if not rel <= cfg["rtol"]:
            failures.append(
                f"{tag}: lower bound {r['lower_bound']!r} differs from "
                f"{reference!r} by {rel:.2e} relative (> {cfg['rtol']:.0e})"
            )


def expected_tasks(n_blocks, lazy=False):
    """Tasks of one E-step by ``_dask``'s construction: a statistics task per
    block (and a generating one when lazy), the tree reduction of fan-in
    ``_FAN_IN``, and the model and block spec, one key each."""
    tree, level = 0, n_blocks
    while level > 1:
        level = -(-level // _dask._FAN_IN)
        tree += level
    return n_blocks * (2 if lazy else 1) + max(tree, 1) + 2


def generation_pass(X, client):
    """Seconds of one pass that only generates the blocks (and sums them)."""
    return h.timed(lambda: X.sum(axis=0).compute(scheduler=client))[0]


def suite_settings(cfg, *keys):
    return {k: cfg[k] for k in ("block_rows", "n_iter", "seed", *keys)}


# -- suites --
def suite_outofcore(cfg, clusters, failures):
    """Three-Gaussian rows generated block by block on a 2-worker LocalCluster
    (1 thread, memory_limit each): X never exists whole, every pass
    regenerates it. Fixed start, tol=0, n_iter iterations, one fit."""
    n, b, seed = cfg["rows"], cfg["block_rows"], cfg["seed"]
    client, counter = clusters(2)
    X, init = lazy_data(n, b, seed), perturbed_truth(seed)
    n_blocks = X.numblocks[0]
    em_fit(X[: 2 * b], client, 1, seed, init)  # warm-up: imports on the workers
    h.progress(f"outofcore: generation pass over {n:,} rows")
    gen_s = generation_pass(X, client)
    workers = set(client.scheduler_info()["workers"])
    reset = all(client.run(_reset_peak_rss).values())
    start = client.run(_worker_memory)
    h.progress(f"outofcore: fit, {cfg['n_iter']} iterations")
    one = {**cfg, "repeats": 1}
    result, errors = fixed_fits({"dask": (X, client)}, init, one, {"dask": counter})
    end, r = client.run(_worker_memory), result["dask"]
    check_fit("outofcore", r, cfg, failures, tasks=expected_tasks(n_blocks, True))
    failures += [f"outofcore: {e}" for e in errors]
    lost = sorted(workers - set(client.scheduler_info()["workers"]))
    spilled = sum(w["spilled_mib"] - start[a]["spilled_mib"] for a, w in end.items())
    if spilled or lost:
        failures.append(f"outofcore: spilled {spilled:.1f} MiB, lost workers {lost}")
    fit_s, s_iter = h.median(r["fit_times_s"]), r["s_per_iter"]
    return {
        "settings": suite_settings(cfg, "rows", "memory_limit"),
        "cluster": cluster_info(client),
        "n_rows": n, "n_features": X.shape[1], "n_blocks": n_blocks,
        "data_mib": X.nbytes / MIB, "block_mib": b * X.shape[1] * 8 / MIB,
        **r, "fit_s": fit_s, "rows_per_s": h.ratio(n, s_iter),
        "rest_s": None if s_iter is None else fit_s - sum(r["iteration_s"][0]),
        "expected_tasks_per_iteration": expected_tasks(n_blocks, lazy=True),
        "generation_pass_s": gen_s, "peak_rss_reset": reset,
        "workers_start": start, "workers_end": end,
        "peak_worker_rss_mib": max(w["peak_rss_mib"] for w in end.values()),
        "spilled_mib": spilled, "lost_workers": lost,
    }  # fmt: skip


def suite_overhead(cfg, clusters, failures):
    """The in-memory fit (NumPy, n_jobs=None) against the same values as a
    Dask array: persisted on a 2-worker LocalCluster, generated lazily there,
    and da.from_array on the threaded scheduler. Same start, tol=0, n_iter
    iterations; interleaved repeats; ratio of seconds per iteration."""
    n, b, seed = cfg["overhead_rows"], cfg["block_rows"], cfg["seed"]
    client, counter = clusters(2)
    lazy, X = lazy_data(n, b, seed), in_memory(n, b, seed)
    persisted = persist(client, lazy_data(n, b, seed, "persisted"))
    variants = {
        "in-memory": (X, None),
        "dask persisted, 2 workers": (persisted, client),
        "dask lazy, 2 workers": (lazy, client),
        "dask from_array, threads": (da.from_array(X, chunks=(b, -1)), "threads"),
    }
    init = perturbed_truth(seed)
    for data, scheduler in variants.values():  # warm-up
        em_fit(data[: 2 * b], scheduler, 1, seed, init)
    h.progress(f"overhead: {n:,} rows, {len(variants)} variants x {cfg['repeats']}")
    counters = {k: counter for k, (_, s) in variants.items() if s is client}
    result, errors = fixed_fits(variants, init, cfg, counters)
    failures += [f"overhead: {e}" for e in errors]
    base = result["in-memory"]
    check_fit("overhead in-memory", base, cfg, failures)
    for name, r in result.items():
        r["ratio_to_in_memory"] = h.ratio(r["s_per_iter"], base["s_per_iter"])
        tasks = expected_tasks(lazy.numblocks[0], "lazy" in name)
        if name != "in-memory":
            tasks = None if "threads" in name else tasks
            check_fit(f"overhead {name}", r, cfg, failures, base["lower_bound"], tasks)
    gen_s = generation_pass(lazy, client)
    client.cancel(persisted)
    return {
        "settings": suite_settings(cfg, "overhead_rows", "repeats", "memory_limit"),
        "cluster": cluster_info(client),
        "n_rows": n, "n_blocks": lazy.numblocks[0], "variants": result,
        "generation_pass_s": gen_s, "workers_end": client.run(_worker_memory),
    }  # fmt: skip


def suite_scaling(cfg, clusters, failures):
    """The same rows persisted on a LocalCluster of 1 and one of 2 workers
    (1 thread each), fits interleaved; tasks run per iteration (a scheduler
    plugin); the scheduler overhead per iteration: the same fits on a tiny
    array with as many blocks (TINY_ROWS rows each)."""
    n, b, seed = cfg["scaling_rows"], cfg["block_rows"], cfg["seed"]
    lazy, init = lazy_data(n, b, seed), perturbed_truth(seed)
    n_blocks = lazy.numblocks[0]
    tiny = lazy_data(n_blocks * TINY_ROWS, TINY_ROWS, seed)
    variants, counters, info = {}, {}, {}
    for w in (1, 2):
        client, counter = clusters(w)
        data = persist(client, lazy), persist(client, tiny)  # one copy per cluster
        for tag, x in zip(("", " tiny"), data, strict=True):
            variants[f"{w} worker(s){tag}"] = (x, client)
            counters[f"{w} worker(s){tag}"] = counter
        em_fit(data[0][: 2 * b], client, 1, seed, init)  # warm-up
        info[w] = cluster_info(client)
    h.progress(f"scaling: {n:,} rows on 1 and 2 workers x {cfg['repeats']}")
    result, errors = fixed_fits(variants, init, cfg, counters)
    failures += [f"scaling: {e}" for e in errors]
    one = result["1 worker(s)"]
    for name, r in result.items():
        ref = None if "tiny" in name else one["lower_bound"]
        check_fit(f"scaling {name}", r, cfg, failures, ref, expected_tasks(n_blocks))
        tasks = r["tasks_per_compute"] or []
        r["tasks_per_iteration"] = h.median(tasks[1:])
        r["speedup"] = h.ratio(one["s_per_iter"], r["s_per_iter"])
        r["tiny_share"] = h.ratio(
            result.get(f"{name} tiny", {}).get("s_per_iter"), r["s_per_iter"]
        )
    for w in (1, 2):
        client = clusters(w)[0]
        result[f"{w} worker(s)"]["workers_end"] = client.run(_worker_memory)
        client.cancel([x for x, c in variants.values() if c is client])
    return {
        "settings": suite_settings(cfg, "scaling_rows", "repeats", "memory_limit"),
        "clusters": info, "n_rows": n, "n_blocks": n_blocks,
        "block_mib": b * lazy.shape[1] * 8 / MIB, "tiny_rows_per_block": TINY_ROWS,
        "expected_tasks_per_iteration": expected_tasks(n_blocks),
        "variants": result,
    }  # fmt: skip


def dask_ml_start(X, client, seed, reg_covar=1e-6):
    """dask-ml's KMeans (k-means||, its defaults) on all of ``X``, then the
    moments of its partition (one more pass): weights, means and precisions,
    as a k-means init makes them. Returns the start and the KMeans."""
    from dask_ml.cluster import KMeans

    with dask.config.set(scheduler=client), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        km = KMeans(n_clusters=3, random_state=seed).fit(X)
        labels = da.asarray(km.labels_).rechunk((X.chunks[0],))
        parts = []
        for k, centre in enumerate(km.cluster_centers_):
            mask = (labels == k).astype(X.dtype)[:, None]
            Y = X - centre
            parts.append((mask.sum(), (Y * mask).sum(axis=0), (Y * mask).T @ Y))
        (parts,) = dask.compute(parts)
    nk, shift = np.array([p[0] for p in parts]), np.array([p[1] / p[0] for p in parts])
    cov = np.array([p[2] / p[0] for p in parts]) - shift[:, :, None] * shift[:, None]
    start = {
        "weights_init": nk / nk.sum(),
        "means_init": km.cluster_centers_ + shift,
        "precisions_init": np.linalg.inv(cov + reg_covar * np.eye(X.shape[1])),
    }
    return start, km


def fit_record(est, fit_s, init_s, em_s, total_s):
    return {
        "init_s": init_s, "em_s": em_s, "fit_s": fit_s, "total_s": total_s,
        "n_iter": int(est.n_iter_), "converged": bool(est.converged_),
        "lower_bound": float(est.lower_bound_), "means": est.means_.tolist(),
    }  # fmt: skip


def spilled_mib(client):
    return sum(w["spilled_mib"] for w in client.run(_worker_memory).values())


def init_run(X, client, counter, seed):
    """Ours and dask-ml's init, each followed by EM to convergence. Ours'
    init runs from "Initialization" to the compute of iteration 1 (after
    the one of the sample)."""
    spilled = spilled_mib(client)
    fit_s, (est, lapses, begin) = h.timed(lambda: em_fit(X, client, seed=seed))
    computes = [t for t in counter.started if t > begin]
    init_s = computes[1] - begin if len(computes) > 1 else None
    em_s = None if init_s is None else sum(lapses) - init_s
    run = {"seed": seed, "ours": fit_record(est, fit_s, init_s, em_s, fit_s)}
    run["ours"]["computes_after_begin"] = len(computes)
    after = spilled_mib(client)
    run["ours"]["spilled_mib"], spilled = after - spilled, after
    init_s, (start, km) = h.timed(lambda: dask_ml_start(X, client, seed))
    fit_s, (est, lapses, _) = h.timed(lambda: em_fit(X, client, seed=seed, **start))
    run["dask_ml"] = fit_record(est, fit_s, init_s, sum(lapses), init_s + fit_s)
    run["dask_ml"]["kmeans_n_iter"] = int(km.n_iter_)
    run["dask_ml"]["spilled_mib"] = spilled_mib(client) - spilled
    run["lower_bound_diff"] = run["ours"]["lower_bound"] - est.lower_bound_
    return run


def suite_init(cfg, clusters, failures):
    """init_params='kmeans' on a Dask array (persisted, 2-worker LocalCluster):
    ours (k-means on the INIT_SAMPLE_ROWS-row sample, one pass to gather it)
    against dask-ml's KMeans (k-means||) on all rows plus one pass for the
    moments of its partition, given as weights/means/precisions_init; then
    EM to convergence (default tol), per seed. Ours' init s: from the start
    of its init to the compute of iteration 1 (scheduler plugin)."""
    n, b = cfg["init_rows"], cfg["block_rows"]
    client, counter = clusters(2, cfg["init_memory_limit"])
    X = persist(client, lazy_data(n, b, cfg["seed"], "persisted"))
    em_fit(X[: 2 * b], client, seed=0, max_iter=2)  # warm-up
    dask_ml_start(X[: 2 * b], client, 0)
    runs = []
    for seed in range(cfg["seed"], cfg["seed"] + cfg["init_seeds"]):
        h.progress(f"init: seed {seed}")
        try:
            runs.append(init_run(X, client, counter, seed))
        except Exception as exc:
            failures.append(f"init seed {seed}: {type(exc).__name__}: {exc}")
            continue
        if runs[-1]["ours"]["init_s"] is None:
            failures.append(f"init seed {seed}: ours: no sample pass before EM")
        for lib in ("ours", "dask_ml"):
            if not np.isfinite(runs[-1][lib]["lower_bound"]):
                failures.append(f"init seed {seed}: {lib}: lower bound not finite")
    client.cancel(X)
    return {
        "settings": suite_settings(cfg, "init_rows", "init_seeds", "init_memory_limit"),
        "cluster": cluster_info(client),
        "n_rows": n, "init_sample_rows": _dask.INIT_SAMPLE_ROWS, "runs": runs,
        "workers_end": client.run(_worker_memory),
    }  # fmt: skip


SUITE_RUNNERS = {
    "outofcore": suite_outofcore,
    "overhead": suite_overhead,
    "scaling": suite_scaling,
    "init": suite_init,
}


# -- report --
def f(value, spec=".3f"):
    return h.fmt(value, spec)


def report_outofcore(s):
    w, peak = s["cluster"], "reset before fit" if s["peak_rss_reset"] else "lifetime"
    rss = " ".join(f(v["rss_mib"], ".0f") for v in s["workers_start"].values())
    rows = [
        ["rows x features", f"{s['n_rows']:,} x {s['n_features']}"],
        ["blocks", f"{s['n_blocks']} of {s['block_mib']:.1f} MiB"],
        ["data (never whole)", f"{s['data_mib'] / 1024:.2f} GiB"],
        ["workers", f"{w['n_workers']} x 1 thread, {s['settings']['memory_limit']}"],
        ["s / EM iteration (median of lapses)", f(s["s_per_iter"])],
        ["rows / s", f(s["rows_per_s"], ",.0f")],
        ["generation-only pass s", f(s["generation_pass_s"])],
        ["whole fit s", f(s["fit_s"])],
        ["  of which first pass (checks, centre) and rest s", f(s["rest_s"])],
        ["computes per fit", s["computes_per_fit"]],
        ["tasks per compute", " ".join(map(str, s["tasks_per_compute"] or []))],
        ["expected tasks per iteration", s["expected_tasks_per_iteration"]],
        [f"peak worker RSS MiB ({peak})", f(s["peak_worker_rss_mib"], ".0f")],
        ["worker RSS before fit MiB", rss],
        ["spilled to disk MiB", f(s["spilled_mib"], ".1f")],
        ["lower bound", f(s["lower_bound"], ".10f")],
    ]
    return h.table(["<outofcore", "value"], rows)


def report_variants(s, extra):
    """One row per variant; ``extra``: column -> (key, format)."""
    header = ["<variant", "s/iter", "rows/s", "fit s", *extra, "computes", "LB"]
    rows = []
    for name, r in s["variants"].items():
        rate = h.ratio(s["n_rows"], r["s_per_iter"])
        cells = [name, f(r["s_per_iter"], ".4f"), f(rate, ",.0f")]
        cells.append(f(h.median(r["fit_times_s"])))
        cells += [f(r.get(key), spec) for key, spec in extra.values()]
        cells += [f(r["computes_per_fit"], "d"), f(r["lower_bound"], ".12f")]
        rows.append(cells)
    return h.table(header, rows)


def report_init(s):
    names = {"ours": "ours: k-means on sample", "dask_ml": "dask-ml KMeans"}
    rows = [
        [run["seed"], names[lib]]
        + [f(run[lib][k]) for k in ("init_s", "em_s", "total_s")]
        + [run[lib]["n_iter"], f(run[lib]["lower_bound"], ".10f")]
        + [f(run[lib]["spilled_mib"], ".0f")]
        for run in s["runs"]
        for lib in names
    ]
    header = ["seed", "<init", "init s", "EM s", "total s", "n_iter", "lower bound"]
    header.append("spilled MiB")
    return h.table(header, rows)


OVERHEAD = {"x in-memory": ("ratio_to_in_memory", "x"),
            "rel diff LB": ("lower_bound_rel_diff", ".1e")}  # fmt: skip
SCALING = {"speed-up": ("speedup", "x"), "tiny / full": ("tiny_share", ".1%"),
           "tasks/iter": ("tasks_per_iteration", ".0f")}  # fmt: skip


def report(results, cfg):
    parts = []
    for name, s in results["suites"].items():
        parts += [f"## {name}", "", s["description"], ""]
        if name == "outofcore":
            parts.append(report_outofcore(s))
        elif name == "overhead":
            parts += [report_variants(s, OVERHEAD), ""]
            parts.append(
                f"{s['n_rows']:,} rows in {s['n_blocks']} blocks; one "
                f"generation-only pass: {s['generation_pass_s']:.3f} s."
            )
        elif name == "scaling":
            parts += [report_variants(s, SCALING), ""]
            parts.append(
                f"{s['n_rows']:,} rows in {s['n_blocks']} blocks of "
                f"{s['block_mib']:.1f} MiB; tiny: {s['tiny_rows_per_block']} rows "
                "per block; expected tasks per iteration (blocks, tree of fan-in "
                f"{_dask._FAN_IN}, model, spec): {s['expected_tasks_per_iteration']}."
            )
        else:
            parts += [report_init(s), ""]
            limit = s["cluster"]["memory_limit_mib"]
            parts.append(
                f"{s['n_rows']:,} rows, sample of {s['init_sample_rows']:,}; "
                f"{len(limit)} workers of {limit[0]:.0f} MiB."
            )
        parts.append("")
    return "\n".join(parts)


def measure(cfg):
    failures, suites = [], {}
    logging.getLogger("distributed").setLevel(logging.WARNING)  # not closing INFO
    with tempfile.TemporaryDirectory(prefix="bench_dask_") as directory:
        clusters = Clusters(cfg["memory_limit"], directory)
        try:
            for name in cfg["suite"]:
                runner = SUITE_RUNNERS[name]
                load = h.loadavg()
                t0 = time.perf_counter()
                suites[name] = {
                    "description": " ".join(runner.__doc__.split()),
                    **runner(cfg, clusters, failures),
                    "loadavg_before": load,
                    "loadavg_after": h.loadavg(),
                    "elapsed_s": time.perf_counter() - t0,
                }
        finally:
            clusters.close()
    env = {k: __import__(k).__version__ for k in ("dask", "distributed", "dask_ml")}
    return {"suites": suites, "versions": env, "failures": failures}


def main(argv=None):
    """Run the benchmark; return 0 when every check passes, else 1."""
    p = h.parser(
        "Benchmark sklearn_em.GaussianMixture on Dask arrays.",
        "repeats",
        "n_iter",
        "rtol",
    )
    p.add_argument("--suite", nargs="+", choices=(*SUITES, "all"))
    p.add_argument("--rows", type=h.size, help="outofcore: rows (2e8)")
    for name in ("overhead", "scaling", "init"):
        p.add_argument(f"--{name}-rows", type=h.size)
    p.add_argument("--block-rows", type=h.size, help="rows per Dask block (1e6)")
    p.add_argument("--init-seeds", type=h.positive, help="init: seeds (3)")
    p.add_argument("--memory-limit", help="per worker (1GiB)")
    p.add_argument("--init-memory-limit", help="per worker, init suite (4GiB)")
    cfg = h.settings(p.parse_args(argv), DEFAULTS, QUICK)
    cfg["suite"] = [s for s in SUITES if s in cfg["suite"] or "all" in cfg["suite"]]
    if __name__ != "__main__":  # loaded from a file: workers cannot import us
        import cloudpickle

        cloudpickle.register_pickle_by_value(sys.modules[__name__])
    output = h.default_output("bench_dask", cfg)
    return h.run("bench_dask", argv, cfg, measure, report, output)


if __name__ == "__main__":
    sys.exit(main())
