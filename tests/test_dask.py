"""Dask input: the same fit as in memory, one compute per EM iteration, lazy
inference, and a fit that survives a killed worker.

The in-memory estimator is the reference throughout: a fit of a Dask array
must equal the fit of the same rows as a numpy array (from the same start, to
rtol 1e-10), on the threaded scheduler and on a cluster of worker processes.
"""

import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from _helpers import COVARIANCE_TYPES, collapsing_spike

da = pytest.importorskip(
    "dask.array", reason="Dask tests need the 'dask' extra: pip install .[dask]"
)
distributed = pytest.importorskip(
    "distributed", reason="Dask tests need the 'dask' extra: pip install .[dask]"
)
import dask  # noqa: E402

from sklearn_em import GaussianMixture  # noqa: E402
from sklearn_em import _dask as dask_source  # noqa: E402
from sklearn_em.datasets import make_three_gaussians  # noqa: E402

RTOL = 1e-10
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_")


@pytest.fixture(scope="module")
def cluster():
    """A cluster of two single-threaded worker processes, as on real machines."""
    with (
        distributed.LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            # Any free port: a fixed one may be taken by another cluster.
            dashboard_address=":0",
            silence_logs=50,
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture(params=["threads", "processes"])
def scheduler(request):
    """Run the test body on the threaded scheduler, then on the cluster."""
    if request.param == "threads":
        with dask.config.set(scheduler="threads"):
            yield request.param
    else:
        client = request.getfixturevalue("cluster")
        with client.as_current():
            yield request.param


def _data(kind, n=3000, seed=0):
    X, _ = make_three_gaussians(n, random_state=seed)
    rng = np.random.RandomState(seed)
    w = None
    if kind == "weights":
        w = rng.uniform(0.1, 3.0, size=n)
    if kind == "nan":
        # A fifth of the rows miss one of their two features.
        X = X.copy()
        rows = np.flatnonzero(rng.uniform(size=n) < 0.2)
        X[rows, rng.randint(2, size=len(rows))] = np.nan
    return X, w


def _start(X, covariance_type, k=3, seed=1):
    """Initial parameters fitted elsewhere, given to both fits."""
    ref = GaussianMixture(k, covariance_type=covariance_type, max_iter=1, tol=0)
    ref.set_params(random_state=seed)
    with pytest.warns(Warning):  # one iteration: a ConvergenceWarning
        ref.fit(np.nan_to_num(X, nan=0.0))
    return {
        "weights_init": ref.weights_,
        "means_init": ref.means_,
        "precisions_init": ref.precisions_,
    }


def assert_same_fit(a, b, rtol=RTOL):
    assert a.n_iter_ == b.n_iter_
    assert a.converged_ == b.converged_
    np.testing.assert_allclose(a.lower_bound_, b.lower_bound_, rtol=rtol)
    np.testing.assert_allclose(a.lower_bounds_, b.lower_bounds_, rtol=rtol)
    for name in FITTED:
        np.testing.assert_allclose(
            getattr(a, name), getattr(b, name), rtol=rtol, atol=1e-12, err_msg=name
        )


def _as_dask(X, w, chunks=700):
    Xd = da.from_array(X, chunks=(chunks, -1))
    return Xd, None if w is None else da.from_array(w, chunks=chunks)


@pytest.mark.parametrize("kind", ["plain", "weights", "nan"])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fit_equals_the_in_memory_fit_from_the_same_start(
    scheduler, covariance_type, kind
):
    X, w = _data(kind)
    params = dict(covariance_type=covariance_type, tol=1e-6, max_iter=200)
    params.update(_start(X, covariance_type))
    memory = GaussianMixture(3, **params).fit(X, sample_weight=w)
    Xd, wd = _as_dask(X, w)
    lazy = GaussianMixture(3, **params).fit(Xd, sample_weight=wd)
    assert_same_fit(lazy, memory)
    assert isinstance(lazy.labels_, da.Array)
    np.testing.assert_array_equal(lazy.labels_.compute(), memory.labels_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_data_drawn_initialisations_equal_memory_when_the_data_fit_the_sample(
    covariance_type,
):
    # At most INIT_SAMPLE_ROWS rows, the "sample" is all of X: the same draws.
    X, w = _data("weights")
    for init_params in ("kmeans", "k-means++", "random", "random_from_data"):
        params = dict(
            covariance_type=covariance_type, init_params=init_params, random_state=3
        )
        # n_init=1: runs that reach one optimum with the components permuted
        # would be told apart by rounding alone.
        memory = GaussianMixture(3, **params).fit(X, sample_weight=w)
        Xd, wd = _as_dask(X, w)
        lazy = GaussianMixture(3, **params).fit(Xd, sample_weight=wd)
        assert_same_fit(lazy, memory, rtol=1e-8)


def test_larger_data_initialise_from_a_bounded_sample_in_one_pass(monkeypatch):
    monkeypatch.setattr(dask_source, "INIT_SAMPLE_ROWS", 400)
    X, _ = _data("plain", n=6000)
    Xd, _ = _as_dask(X, None, chunks=1000)
    taken = []
    original = dask_source.TrainingData

    def spy(rows, *args, **kwargs):
        taken.append(len(rows))
        return original(rows, *args, **kwargs)

    monkeypatch.setattr(dask_source, "TrainingData", spy)
    with dask.config.set(scheduler="threads"):
        gm = GaussianMixture(3, n_init=3, random_state=0).fit(Xd)
        again = GaussianMixture(3, n_init=3, random_state=0).fit(Xd)
    # One sample of 400 rows per fit, shared by its three initialisations;
    # the same random_state draws the same sample and fit.
    assert [n for n in taken if n == 400] == [400, 400]
    assert_same_fit(gm, again, rtol=0)
    memory = GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_allclose(gm.lower_bound_, memory.lower_bound_, rtol=1e-3)


class _CountingScheduler:
    """The threaded scheduler, counting the graphs submitted to it."""

    def __init__(self):
        self.calls = 0

    def __call__(self, dsk, keys, **kwargs):
        self.calls += 1
        return dask.threaded.get(dsk, keys, **kwargs)


@pytest.mark.parametrize("max_iter", [1, 4, 9])
def test_one_compute_per_em_iteration(max_iter):
    X, w = _data("weights")
    start = _start(X, "full")
    counter = _CountingScheduler()
    with dask.config.set(scheduler=counter):
        gm = GaussianMixture(3, tol=0, max_iter=max_iter, **start)
        Xd, wd = _as_dask(X, w)
        with pytest.warns(Warning, match="did not converge"):
            gm.fit(Xd, sample_weight=wd)
    # One pass of checks and summaries, then one compute per iteration;
    # labels_ stays lazy.
    assert gm.n_iter_ == max_iter
    assert counter.calls == 1 + max_iter


def test_each_pass_reads_each_block_once():
    """X is streamed: a block is made once for the first pass (checks, centre,
    the variance subsample) and once per iteration, never more (counted here
    on the threaded scheduler; on a distributed cluster a separate X[::step]
    for the subsample was seen to make every block twice in the first pass,
    so the subsample now comes from the summary tasks themselves)."""
    X, _ = _data("plain")
    made = []

    def source(block_info=None):
        # Rows made from nothing, as a reader or a generator makes them.
        (start, stop), _ = block_info[None]["array-location"]
        made.append(stop - start)
        return X[start:stop]

    Xd = da.map_blocks(
        source, chunks=((500,) * 6, (2,)), dtype=X.dtype, meta=np.empty((0, 2))
    )
    gm = GaussianMixture(3, tol=0, max_iter=3, **_start(X, "full"))
    with dask.config.set(scheduler="threads"), pytest.warns(Warning, match="not"):
        gm.fit(Xd)
    assert len(made) == Xd.numblocks[0] * (1 + 3)


def test_a_data_drawn_start_costs_one_more_pass():
    X, _ = _data("plain")
    counter = _CountingScheduler()
    with dask.config.set(scheduler=counter):
        gm = GaussianMixture(3, n_init=2, tol=0, max_iter=3, random_state=0)
        with pytest.warns(Warning, match="did not converge"):
            gm.fit(_as_dask(X, None)[0])
    assert counter.calls == 1 + 1 + 2 * 3


def test_inference_is_lazy_and_equals_memory(scheduler):
    X, _ = _data("nan")
    gm = GaussianMixture(3, random_state=0).fit(X)
    Xd, _ = _as_dask(X, None, chunks=(500, 900, 1600))
    expected = {
        "predict": gm.predict(X),
        "predict_proba": gm.predict_proba(X),
        "score_samples": gm.score_samples(X),
    }
    for method, values in expected.items():
        lazy = getattr(gm, method)(Xd)
        assert isinstance(lazy, da.Array)
        assert lazy.chunks[0] == Xd.chunks[0]
        assert lazy.dtype == values.dtype
        assert type(lazy._meta) is np.ndarray and lazy._meta.dtype == values.dtype
        np.testing.assert_allclose(lazy.compute(), values, rtol=1e-12, atol=1e-14)
    assert gm.predict_proba(Xd).shape == (len(X), 3)
    w = np.linspace(0.5, 2.0, len(X))
    assert gm.score(Xd) == pytest.approx(gm.score(X), rel=1e-12)
    assert gm.score(Xd, sample_weight=w) == pytest.approx(
        gm.score(X, sample_weight=w), rel=1e-12
    )
    assert gm.bic(Xd) == pytest.approx(gm.bic(X), rel=1e-12)
    assert gm.aic(Xd) == pytest.approx(gm.aic(X), rel=1e-12)


def test_float32_blocks_stay_float32():
    X, _ = _data("plain")
    X32 = X.astype(np.float32)
    start = _start(X, "diag")
    memory = GaussianMixture(3, covariance_type="diag", **start).fit(X32)
    lazy = GaussianMixture(3, covariance_type="diag", **start).fit(
        da.from_array(X32, chunks=(1000, -1))
    )
    assert lazy.means_.dtype == np.float32
    assert lazy.predict_proba(da.from_array(X32, chunks=1000)).dtype == np.float32
    assert_same_fit(lazy, memory, rtol=1e-6)


def test_dataframe_input_records_feature_names():
    dd = pytest.importorskip("dask.dataframe", reason="needs dask[dataframe]")
    pd = pytest.importorskip("pandas", reason="needs pandas")
    X, _ = _data("plain")
    frame = pd.DataFrame(X, columns=["height", "width"])
    lazy_frame = dd.from_pandas(frame, npartitions=4)
    start = _start(X, "full")
    memory = GaussianMixture(3, **start).fit(frame)
    lazy = GaussianMixture(3, **start).fit(lazy_frame)
    assert list(lazy.feature_names_in_) == ["height", "width"]
    assert_same_fit(lazy, memory)
    np.testing.assert_array_equal(lazy.predict(lazy_frame).compute(), memory.labels_)


def test_warm_start_verbose_and_collapse_repair_work_on_dask(capsys):
    # A component started as a spike on one row collapses onto it (reg_covar
    # = 0) and is re-seeded at the worst-explained row, on Dask as in memory.
    X, params = collapsing_spike()
    with pytest.warns(Warning, match="re-seeded"):
        memory = GaussianMixture(3, **params).fit(X)
    with pytest.warns(Warning, match="re-seeded"):
        lazy = GaussianMixture(3, **params, verbose=2, verbose_interval=1).fit(
            da.from_array(X, chunks=(100, -1))
        )
    assert_same_fit(lazy, memory)
    assert "Iteration 1" in capsys.readouterr().out
    lazy.set_params(warm_start=True, max_iter=5, verbose=0)
    memory.set_params(warm_start=True, max_iter=5)
    lazy.fit(da.from_array(X, chunks=(100, -1)))
    memory.fit(X)
    assert_same_fit(lazy, memory)


def test_partial_fit_streams_the_blocks():
    X, w = _data("weights")
    Xd, wd = _as_dask(X, w, chunks=600)
    streamed = GaussianMixture(3, random_state=0).partial_fit(Xd, sample_weight=wd)
    by_hand = GaussianMixture(3, random_state=0)
    for start in range(0, len(X), 600):
        rows = slice(start, start + 600)
        by_hand.partial_fit(X[rows], sample_weight=w[rows])
    assert streamed.n_iter_ == by_hand.n_iter_ == 5
    assert_same_fit(streamed, by_hand, rtol=0)


def test_partial_fit_under_dask_ml_incremental():
    wrappers = pytest.importorskip(
        "dask_ml.wrappers", reason="dask-ml is optional (the 'bench' extra)"
    )
    X, _ = _data("plain")
    Xd, _ = _as_dask(X, None, chunks=600)
    with dask.config.set(scheduler="threads"):
        model = wrappers.Incremental(
            GaussianMixture(3, random_state=0), shuffle_blocks=False
        ).fit(Xd)
    by_hand = GaussianMixture(3, random_state=0)
    for start in range(0, len(X), 600):
        by_hand.partial_fit(X[start : start + 600])
    assert_same_fit(model.estimator_, by_hand, rtol=0)


def test_empty_rows_are_ignored_with_a_warning_as_in_memory():
    X, _ = _data("plain")
    X = X.copy()
    X[[5, 17, 900]] = np.nan
    start = _start(X, "spherical")
    with pytest.warns(UserWarning, match="every feature missing"):
        memory = GaussianMixture(3, covariance_type="spherical", **start).fit(X)
    with pytest.warns(UserWarning, match="3 row.* every feature missing"):
        lazy = GaussianMixture(3, covariance_type="spherical", **start).fit(
            _as_dask(X, None)[0]
        )
    assert_same_fit(lazy, memory)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda X: da.from_array(X[:, 0], chunks=100), "2-D Dask array"),
        (lambda X: da.from_array(X, chunks=(100, 1)), r"rechunk\(\{1: -1\}\)"),
        (
            lambda X: da.from_array(X, chunks=100)[da.from_array(X[:, 0]) > 0],
            "compute_chunk_sizes",
        ),
        (lambda X: da.from_array(X.astype(str), chunks=100), "needs numbers"),
        (
            lambda X: da.from_array(np.where(X > 3, np.inf, X), chunks=100),
            "infinity",
        ),
    ],
)
def test_bad_dask_input_gets_a_clear_error(make, message):
    X, _ = _data("plain", n=300)
    with pytest.raises((ValueError, TypeError), match=message):
        GaussianMixture(3).fit(make(X))


def test_bad_dask_weights_get_a_clear_error():
    X, _ = _data("plain", n=300)
    Xd = da.from_array(X, chunks=100)
    for w, message in [
        (-np.ones(300), "Negative"),
        (np.zeros(300), "non-zero"),
        (np.full(300, np.nan), "NaN"),
        (np.ones(299), "shape"),
    ]:
        with pytest.raises(ValueError, match=message):
            GaussianMixture(3).fit(Xd, sample_weight=w)


def test_fit_survives_a_killed_worker(cluster):
    """Dask recomputes the blocks of a worker killed mid-fit: same answer."""
    X, w = _data("weights", n=20_000)
    start = _start(X, "full")

    def slow(block):
        time.sleep(0.02)  # long enough for the kill to land inside a pass
        return block

    Xd = da.from_array(X, chunks=(1000, -1)).map_blocks(slow)
    wd = da.from_array(w, chunks=1000)
    params = dict(tol=0, max_iter=6, **start)

    with cluster.as_current():
        with pytest.warns(Warning, match="did not converge"):
            undisturbed = GaussianMixture(3, **params).fit(Xd, sample_weight=wd)
        pids = cluster.run(os.getpid)
        victim = sorted(pids)[0]
        killed = threading.Event()

        class KillDuringThirdPass(GaussianMixture):
            def _iteration_hook(self):
                return self._on_iteration  # even with nothing to print

            def _print_iteration(self, n_iter, change, lower_bound):
                if n_iter == 2 and not killed.is_set():

                    def kill():
                        time.sleep(0.1)
                        os.kill(pids[victim], signal.SIGKILL)
                        killed.set()

                    threading.Thread(target=kill, daemon=True).start()
                super()._print_iteration(n_iter, change, lower_bound)

        def disturbed_fit():
            # In a thread only to bound the time (warnings are per thread).
            with warnings.catch_warnings(), cluster.as_current():
                warnings.simplefilter("ignore")
                return KillDuringThirdPass(3, **params).fit(Xd, sample_weight=wd)

        with ThreadPoolExecutor(1) as pool:
            disturbed = pool.submit(disturbed_fit).result(timeout=180)
        assert killed.is_set()
        # The nanny restarted the killed worker: a new process.
        cluster.wait_for_workers(2, timeout=60)
        assert pids[victim] not in cluster.run(os.getpid).values()
    assert_same_fit(disturbed, undisturbed, rtol=0)


def test_the_in_memory_estimator_never_imports_dask():
    code = (
        "import sys, numpy as np\n"
        "from sklearn_em import GaussianMixture\n"
        "X = np.random.RandomState(0).randn(300, 2)\n"
        "gm = GaussianMixture(2, random_state=0).fit(X)\n"
        "gm.predict(X); gm.predict_proba(X); gm.score(X); gm.bic(X)\n"
        "gm.partial_fit(X)\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('dask', 'distributed'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
