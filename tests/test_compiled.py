"""The compiled E-step (the ``fast`` extra): the numpy kernel's answers, faster.

The numpy kernel is the reference: the compiled one must give the same
statistics, fits and inference to 1e-12 relative in float64, for every
covariance type, with weights, narrow components (which stay on numpy's
direct form) and rows far out; float32 rows, which it computes in float32,
to float32's precision. Choosing it must never cost a fit a
compile, and must touch nothing process-wide.
"""

import math
import os
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pytest
from _helpers import COVARIANCE_TYPES, collapsing_spike
from numpy.testing import assert_allclose, assert_array_equal
from test_engine import random_model

from sklearn_em import GaussianMixture, config_context, get_config, set_config
from sklearn_em import _engine as engine
from sklearn_em._covariance import IllDefinedCovariance, get_covariance
from sklearn_em._data import TrainingData
from sklearn_em._em import params_from_stats
from sklearn_em._model import Mixture
from sklearn_em._threads import single_threaded_blas
from sklearn_em.datasets import make_three_gaussians

pytest.importorskip(
    "numba", reason="the compiled kernel is the optional 'fast' extra (numba)"
)
kernels = engine._load(np.float64)


def sources(X, covariance_type, w=None, **kwargs):
    """The same rows as a numpy-kernel source and a compiled-kernel source."""
    model = random_model(covariance_type, n_features=X.shape[1])
    with config_context(engine="numpy"):
        reference = TrainingData(X, w, model.covariance, 3, **kwargs)
    with config_context(engine="numba"):
        compiled = TrainingData(X, w, model.covariance, 3, **kwargs)
    assert reference.dense.compiled is None
    assert compiled.dense.compiled is kernels
    return model, reference, compiled


def assert_same_stats(a, b, rtol=1e-12):
    scale = np.abs(a.moments).max()
    assert_allclose(b.moments, a.moments, rtol=0, atol=rtol * scale)
    assert_allclose(b.log_likelihood, a.log_likelihood, rtol=rtol)
    assert_array_equal(b.centers, a.centers)
    assert b.total_weight == a.total_weight


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("n_features", [1, 2, 5])
def test_statistics_equal_the_numpy_kernel(covariance_type, weighted, n_features):
    rng = np.random.RandomState(1)
    model = random_model(covariance_type, n_features=n_features)
    # 1,000 rows and a ragged last block of the compiled loop's 256.
    X = model.sample(rng, 1_000)[0]
    w = rng.uniform(0, 3, len(X)) if weighted else None
    model, reference, compiled = sources(X, covariance_type, w)
    with single_threaded_blas():
        assert_same_stats(reference.stats(model), compiled.stats(model))


def same_params(a, b, rtol):
    """The M-step of two sources' statistics (about their own centres)
    agree to ``rtol`` of each parameter's largest entry."""
    cov = a.covariance
    pa, pb = (
        params_from_stats(a.stats_, cov, 1e-6),
        params_from_stats(b.stats_, cov, 1e-6),
    )
    for name in ("weights", "means", "covariances"):
        want, got = getattr(pa, name), getattr(pb, name)
        assert_allclose(got, want, rtol=0, atol=rtol * np.abs(want).max(), err_msg=name)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_float32_rows_are_computed_in_float32_to_its_precision(
    covariance_type, weighted
):
    """As scikit-learn's float32 path (and the GPU kernel): per-row
    arithmetic in float32, sums in float64; the statistics agree with the
    numpy kernel's float64 arithmetic to float32 precision, not beyond."""
    rng = np.random.RandomState(2)
    X = random_model(covariance_type).sample(rng, 700)[0].astype(np.float32)
    w = rng.uniform(0, 3, len(X)) if weighted else None
    model, reference, compiled = sources(X, covariance_type, w)
    assert compiled.dense.prepare(model).w_single is not None
    # The centre is rounded to float32, so rows are centred exactly.
    assert_array_equal(compiled.dense.center.astype(np.float32), compiled.dense.center)
    with single_threaded_blas():
        reference.stats_, compiled.stats_ = (
            reference.stats(model),
            compiled.stats(model),
        )
    assert compiled.stats_.moments.dtype == np.float64
    assert_allclose(
        compiled.stats_.log_likelihood, reference.stats_.log_likelihood, rtol=1e-6
    )
    same_params(reference, compiled, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_rows_of_far_reaching_components_are_computed_in_float64(
    covariance_type,
):
    """A component narrow against its distance from the centre (reach above
    MAX_EXPANSION_FLOAT32, below MAX_EXPANSION) would lose float32's digits in
    the expanded form: those E-steps run in float64 on the compiled kernel,
    and agree with the numpy kernel to float64 rounding; the compiled M-step
    leaves their preparation to numpy."""
    rng = np.random.RandomState(12)
    # Three clusters 30 apart, each 0.5 wide: every component reaches
    # (distance^2 + spread) * precision ~ 3e3 from the data's centre.
    cov = get_covariance(covariance_type)
    variances = {
        "full": np.eye(2)[None] * [[[0.25]], [[0.3]], [[0.2]]],
        "tied": np.eye(2) * 0.25,
        "diag": np.full((3, 2), 0.25),
        "spherical": np.full(3, 0.25),
    }[covariance_type]
    far = Mixture(
        np.full(3, 1 / 3),
        np.array([[0.0, 0.0], [30.0, 0.0], [0.0, 30.0]]),
        variances,
        cov.precisions_cholesky(variances),
        cov,
    )
    X = far.sample(rng, 900)[0].astype(np.float32)
    with config_context(engine="numpy"):
        reference = TrainingData(X, None, cov, 3)
    with config_context(engine="numba"):
        compiled = TrainingData(X, None, cov, 3)
    prep = compiled.dense.prepare(far)
    assert prep.w_single is None and not len(prep.local)
    with single_threaded_blas():
        reference.stats_ = reference.stats(far)
        compiled.stats_ = compiled.stats(far)
        assert_allclose(
            compiled.stats_.log_likelihood, reference.stats_.log_likelihood, rtol=1e-12
        )
        # Covariances of 0.25 from second moments of ~200 about the centre:
        # float64 rounding, times their ratio.
        same_params(reference, compiled, rtol=1e-11)
        # The compiled M-step hands such a model's preparation to numpy.
        stepped = compiled.m_step(compiled.stats_, 1e-6)
        assert compiled.dense.prepare(stepped).w_single is None


def test_a_narrow_component_keeps_the_direct_form():
    """A component too narrow for the expanded quadratic form is computed
    about its own mean on numpy, whatever the engine (the precision
    fallback), so both engines agree on it to the last digits."""
    rng = np.random.RandomState(3)
    model = random_model("full", n_features=2)
    X = model.sample(rng, 600)[0]
    narrow = model.covariance.precisions_cholesky(np.array([np.eye(2) * 1e-12] * 3))
    model = type(model)(
        model.weights,
        model.means,
        model.covariances,
        np.concatenate([model.precisions_cholesky[:2], narrow[2:]]),
        model.covariance,
    )
    _, reference, compiled = sources(X, "full")
    assert len(compiled.dense.prepare(model).local) == 1
    assert_same_stats(reference.stats(model), compiled.stats(model))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_fits_equal_the_numpy_engine(covariance_type):
    rng = np.random.RandomState(4)
    X = random_model(covariance_type).sample(rng, 3_000)[0]
    w = rng.uniform(0.5, 2, len(X))
    fits = {}
    for name in ("numpy", "numba"):
        with config_context(engine=name):
            fits[name] = GaussianMixture(
                3, covariance_type=covariance_type, tol=1e-8, random_state=0
            ).fit(X, sample_weight=w)
    a, b = fits["numpy"], fits["numba"]
    assert a.n_iter_ == b.n_iter_
    assert_allclose(b.lower_bound_, a.lower_bound_, rtol=1e-12)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_inference_equals_the_numpy_engine_far_rows_included(covariance_type):
    """Rows so far out that their squares overflow get log p(x) = -inf and
    equal responsibilities from both engines (the guard stays on numpy)."""
    rng = np.random.RandomState(5)
    X = random_model(covariance_type).sample(rng, 2_000)[0]
    gm = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    with config_context(engine="numpy"):
        gm.fit(X)
    new = np.vstack([X[:500], [[1e200, 0, 0, 0], [-1e180, 1, 2, 3]]])
    results = {}
    for name in ("numpy", "numba"):
        with config_context(engine=name):
            results[name] = (
                gm.score_samples(new),
                gm.predict_proba(new),
                gm.predict(new),
            )
    (s_a, p_a, l_a), (s_b, p_b, l_b) = results["numpy"], results["numba"]
    assert np.isneginf(s_b[-2:]).all()
    assert_allclose(s_b, s_a, rtol=1e-12)
    assert_allclose(p_b, p_a, rtol=1e-12, atol=1e-15)
    assert_array_equal(l_b, l_a)


def test_exp_is_within_one_ulp_and_zero_below_the_normal_range():
    rng = np.random.RandomState(6)
    x = np.concatenate([rng.uniform(-708, 709, 200_000), [0.0, -708.0, 709.0]])
    out = np.array([kernels._exp(v) for v in x[:2_000]])
    exact = np.exp(x[:2_000])
    assert (np.abs(out - exact) <= np.spacing(exact)).all()
    assert kernels._exp(-708.5) == 0.0
    assert kernels._exp(-np.inf) == 0.0


def test_log_is_within_four_ulp():
    rng = np.random.RandomState(7)
    a = np.concatenate(
        [rng.uniform(1, 20, 2_000), np.exp(rng.uniform(-700, 700, 2_000))]
    )
    a = np.concatenate([a, [1.0, 2.0, np.sqrt(2.0), 1 + 1e-15]])
    out = np.array([kernels._log(v) for v in a])
    exact = np.log(a)
    assert (np.abs(out - exact) <= 4 * np.spacing(np.abs(exact))).all()


def test_threads_and_chunks_change_nothing_beyond_rounding():
    rng = np.random.RandomState(8)
    X = random_model("full").sample(rng, 5_000)[0]
    model = random_model("full")
    with config_context(engine="numba"):
        one = TrainingData(X, None, model.covariance, 3, n_jobs=1).stats(model)
        two = TrainingData(X, None, model.covariance, 3, n_jobs=2).stats(model)
        small = TrainingData(X, None, model.covariance, 3, chunk_size=97).stats(model)
    assert_same_stats(one, two)
    assert_same_stats(one, small)


def test_numba_thread_settings_are_left_alone():
    import numba

    before = numba.get_num_threads(), numba.config.THREADING_LAYER
    rng = np.random.RandomState(9)
    X = random_model("diag").sample(rng, 20_000)[0]
    with config_context(engine="numba"):
        GaussianMixture(3, covariance_type="diag", n_jobs=2, random_state=0).fit(X)
    assert (numba.get_num_threads(), numba.config.THREADING_LAYER) == before


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_wide_rows_run_compiled_with_the_numpy_kernels_answers(
    covariance_type, weighted
):
    """Many components and feature rows still run on the compiled kernel
    (it no longer leaves wide rows to numpy): whole blocks' two products go
    to BLAS where that pays on this CPU and to the loops (two components a
    pass) elsewhere, the ragged last block to the loops, and the statistics
    and inference are the numpy kernel's either way."""
    rng = np.random.RandomState(2)
    # q = 40 to 45 feature rows, 64 components (an odd one out of the pairs
    # is the next test's).
    k, d = 64, {"full": 8, "tied": 8, "diag": 20, "spherical": 38}[covariance_type]
    model = random_model(covariance_type, n_components=k, n_features=d)
    # Two whole blocks of 256 rows and a ragged one.
    X = model.sample(rng, 700)[0]
    w = rng.uniform(0, 3, len(X)) if weighted else None
    with config_context(engine="numpy"):
        reference = TrainingData(X, w, model.covariance, k)
    with config_context(engine="numba"):
        compiled = TrainingData(X, w, model.covariance, k)
    assert compiled.dense.compiled is kernels
    with single_threaded_blas():
        assert_same_stats(reference.stats(model), compiled.stats(model))
    # The model itself (no EM: 64 components on 700 rows would collapse).
    gm = GaussianMixture(
        k,
        covariance_type=covariance_type,
        weights_init=model.weights,
        means_init=model.means,
        precisions_init=model.precisions,
        max_iter=0,
    )
    with config_context(engine="numpy"):
        gm.fit(X)
    results = {}
    for name in ("numpy", "numba"):
        with config_context(engine=name):
            results[name] = (gm.score_samples(X), gm.predict_proba(X), gm.predict(X))
    (s_a, p_a, l_a), (s_b, p_b, l_b) = results["numpy"], results["numba"]
    assert_allclose(s_b, s_a, rtol=1e-12)
    assert_allclose(p_b, p_a, rtol=1e-12, atol=1e-15)
    assert_array_equal(l_b, l_a)


def test_blas_takes_a_blocks_products_only_as_they_grow():
    """Which blocks go to BLAS is a threshold in components times feature
    rows (more never sends a block back to the loops), only where 512-bit
    vectors run at full width; rows of a few features with a few components
    keep the loops everywhere."""
    rule = np.array(
        [[kernels._blas_pays(k, q) for q in range(1, 700)] for k in range(1, 80)]
    )
    assert rule.any() == kernels.FULL_WIDTH_512
    assert not rule[:3, :6].any()  # k <= 3, q <= 6: the 2-D common case
    assert (np.diff(rule.astype(int), axis=0) >= 0).all()
    assert (np.diff(rule.astype(int), axis=1) >= 0).all()


def test_the_vector_width_is_read_from_the_features_numba_compiles_for():
    """Which rule applies follows the features numba compiles with (told,
    or the host's), not a CPU name, which changes only numba's tuning; and
    a Zen 4 never counts as full-width AVX-512. (Pure functions of their
    arguments: patching numba's or llvmlite's globals here would reach a
    compile running on another thread.)"""
    from numba.core import codegen, config

    assert not kernels._wide_vectors("+avx2,+fma,-avx512f")
    assert kernels._wide_vectors("+avx2,+fma,+avx512f,+avx512bw")
    told = config.CPU_FEATURES or codegen.get_host_cpu_features()
    assert kernels._wide_vectors() == kernels._wide_vectors(told)
    for name, avx512, half in [
        ("znver4", True, True),
        ("znver3", True, True),  # LLVM before 16 names a Zen 4 so
        ("znver3", False, False),
        ("skylake-avx512", True, False),
        ("sapphirerapids", True, False),
    ]:
        assert kernels._half_width_512(name, avx512) is half, name


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize(
    "k, q", [(3, 4), (1, 7), (2, 9), (3, 10), (5, 40), (16, 153), (17, 561)]
)
def test_a_blocks_products_by_blas_and_by_the_loops_agree(dtype, k, q):
    """Whichever the CPU picks for whole blocks, both are tested here: the
    BLAS products and the loops (two components a pass, an odd one on its
    own, four feature rows a pass and one to three left; q = 4, spherical
    2-D, leaves its odd component to them) give the same log-densities and
    moments, each within a few roundings of its terms' sizes, and scaling
    moves the responsibilities into ``lp``."""
    rng = np.random.RandomState(0)
    m = kernels.BLOCK
    f = rng.standard_normal((q, m)).astype(dtype)
    f[0] = 1.0
    w_matrix = (rng.standard_normal((k, q)) / q).astype(dtype)
    scale = rng.uniform(0.1, 1.0, m).astype(dtype)
    want = w_matrix.astype(np.float64) @ f.astype(np.float64)
    rtol = 1e-12 if dtype == np.float64 else 1e-4
    lp_blas, lp_loops = np.empty((k, m), dtype), np.empty((k, m), dtype)
    kernels._log_densities_by_blas(f, w_matrix, lp_blas)
    # One row short of a whole block: the loops, whatever the CPU's rule.
    kernels._log_densities(f, m - 1, w_matrix, lp_loops)
    tol = {"rtol": rtol, "atol": rtol * np.abs(want).max()}
    assert_allclose(lp_blas, want, **tol)
    assert_allclose(lp_loops[:, : m - 1], want[:, : m - 1], **tol)
    blas, loops = np.zeros((k, q)), np.zeros((k, q))
    kernels._add_moments_by_blas(lp_blas, f, scale, blas)
    kernels._add_moments(lp_loops, f, m - 1, scale, loops)
    r, f64 = want * scale, f.astype(np.float64)
    for got, rows in ((blas, m), (loops, m - 1)):
        expected = r[:, :rows] @ f64[:, :rows].T
        # Rounding grows with the sum of the terms' sizes, not the sum.
        size = np.abs(r[:, :rows]) @ np.abs(f64[:, :rows]).T
        assert_allclose(got, expected, rtol=0, atol=10 * rtol * size.max())
        assert (np.abs(got - expected) <= 10 * rtol * size).all()
    assert_allclose(lp_blas, r, **tol)  # the responsibilities, in place
    if q > 6:  # from seven feature rows the loops scale lp in place too
        assert_allclose(lp_loops[:, : m - 1], r[:, : m - 1], **tol)


def test_the_direct_form_of_large_d_stays_on_numpy():
    """Full covariances from d = 56 have too many second-order features for
    feature rows at all: the numpy kernel's direct form runs them."""
    model = random_model("full", n_components=2, n_features=56)
    X = model.sample(np.random.RandomState(0), 100)[0]
    with config_context(engine="numba"):
        source = TrainingData(X, None, model.covariance, 2)
    assert source.dense.direct
    assert source.dense.compiled is None


def test_config_names_the_engines(monkeypatch):
    assert get_config()["engine"] in engine.ENGINES
    with config_context(engine="numpy"):
        assert get_config() == {"engine": "numpy"}
        with config_context(engine="numba"):
            assert get_config() == {"engine": "numba"}
        assert get_config() == {"engine": "numpy"}
    with pytest.raises(ValueError, match="engine must be one of"):
        set_config(engine="cuda")
    monkeypatch.setenv("SKLEARN_EM_ENGINE", "numpy")
    assert get_config() == {"engine": "numpy"}
    monkeypatch.setenv("SKLEARN_EM_ENGINE", "fortran")
    with pytest.raises(ValueError, match="'fortran'"):
        get_config()


def test_numba_engine_without_numba_names_the_extra(monkeypatch):
    monkeypatch.setattr(engine, "numba_installed", lambda: False)
    with config_context(engine="numba"), pytest.raises(ImportError, match="fast"):
        engine.select(np.float64, 100, 18, direct=False)
    with config_context(engine="auto"):
        assert engine.select(np.float64, 10**8, 18, direct=False) is None


def test_auto_never_waits_for_the_compiler(monkeypatch):
    """With the kernels not loaded, 'auto' runs numpy and loads them in the
    background for later fits, only for E-steps big enough to matter."""
    started = []
    monkeypatch.setattr(engine, "_ready", set())
    monkeypatch.setattr(engine, "_warm_up", lambda *args: started.append(args))
    with config_context(engine="auto"):
        assert engine.select(np.float64, 1_000, 18, direct=False) is None
        assert started == []
        assert engine.select(np.float64, 10**7, 18, direct=False) is None
        assert started == [(np.float64, False)]
    monkeypatch.setattr(engine, "_ready", {"float64"})
    with config_context(engine="auto"):
        assert engine.select(np.float64, 1_000, 18, direct=False) is kernels
        # Rows in read-only memory need kernels of their own (numba types
        # them apart): not loaded yet, so numpy, and loaded in the background.
        assert engine.select(np.float64, 10**7, 18, False, readonly=True) is None
        assert started[-1] == (np.float64, True)
    monkeypatch.setattr(engine, "_ready", {"float64", "float64-readonly"})
    with config_context(engine="auto"):
        assert engine.select(np.float64, 1_000, 18, False, readonly=True) is kernels


def test_auto_does_not_wait_for_a_load_in_progress(monkeypatch):
    """While the background thread compiles (holding the kernels' lock), a
    fit that would also start one goes on with numpy at once."""
    monkeypatch.setattr(engine, "_ready", set())
    monkeypatch.setattr(engine, "_warming", None)
    started, chosen = [], []
    monkeypatch.setattr(
        engine, "_load_in_background", lambda *args: started.append(args)
    )

    def fit_starts():
        with config_context(engine="auto"):
            chosen.append(engine.select(np.float64, 10**7, 18, direct=False))

    with engine._lock:
        # In a thread, so that a regression fails here instead of hanging.
        thread = threading.Thread(target=fit_starts, daemon=True)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive(), "select waited for the compiling thread"
    engine.wait_for_warm_up()
    assert chosen == [None]
    assert started == [(np.float64, False)]


def test_a_failed_background_load_leaves_auto_on_numpy(monkeypatch):
    def broken(dtype, readonly=False, uncached=True):
        raise RuntimeError("no compiler for this platform")

    monkeypatch.setattr(engine, "_ready", set())
    monkeypatch.setattr(engine, "_warming", None)
    monkeypatch.setattr(engine, "_failed", [])
    monkeypatch.setattr(engine, "_load", broken)
    with config_context(engine="auto"):
        assert engine.select(np.float64, 10**7, 18, direct=False) is None
        engine.wait_for_warm_up()
        assert len(engine._failed) == 1
        # No second attempt: the failure is remembered.
        assert engine.select(np.float64, 10**7, 18, direct=False) is None
        assert engine._warming is not None and not engine._warming.is_alive()
    assert len(engine._failed) == 1


def test_kernels_compile_in_memory_where_numba_finds_nowhere_to_cache_them():
    # A read-only install run by a user without a writable home: no cache
    # locator applies (simulated by offering numba none), where every
    # definition with cache=True raised numba's RuntimeError on import.
    code = textwrap.dedent(
        """
        import numba.core.caching as caching
        caching.CacheImpl._locator_classes = []
        from sklearn_em import _numba_kernels as kernels
        assert kernels.CACHED is False
        assert kernels._sum_of(1.0, 2.0) == 3.0
        assert type(kernels._sum_of._cache).__name__ == "NullCache"
        """
    )
    if not hasattr(numba_caching().CacheImpl, "_locator_classes"):
        pytest.skip("this numba chooses cache locators otherwise")
    subprocess.run([sys.executable, "-c", code], check=True, env=_clean_env())


def numba_caching():
    import numba.core.caching

    return numba.core.caching


def _uncached(monkeypatch):
    """This process as it is where the kernels cannot be cached."""
    monkeypatch.setattr(kernels, "CACHED", False)
    monkeypatch.setattr(engine, "_ready", set())
    monkeypatch.setattr(engine, "_warming", None)
    monkeypatch.setattr(engine, "_failed", [])
    monkeypatch.setattr(engine, "_uncached_said", set())


def test_without_a_cache_engine_numba_compiles_in_memory_and_says_so(monkeypatch):
    _uncached(monkeypatch)
    with config_context(engine="numba"):
        with pytest.warns(UserWarning, match="NUMBA_CACHE_DIR.*compiled in this"):
            assert engine.select(np.float64, 100, 18, direct=False) is kernels
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # once per process
            assert engine.select(np.float32, 100, 18, direct=False) is kernels


def test_without_a_cache_auto_stays_on_numpy_and_says_why_once(monkeypatch):
    _uncached(monkeypatch)
    with config_context(engine="auto"), warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for _ in range(3):
            assert engine.select(np.float64, 10**7, 18, direct=False) is None
            engine.wait_for_warm_up()
    assert isinstance(engine._failed[0], engine._Uncached)
    assert engine._ready == set(), "auto compiled kernels it cannot cache"
    said = [str(w.message) for w in seen if "NUMBA_CACHE_DIR" in str(w.message)]
    assert len(said) == 1 and "'auto' stays on numpy" in said[0], said


@pytest.mark.skipif(not hasattr(os, "fork"), reason="os.fork exists on POSIX only")
def test_a_child_forked_during_a_background_load_fits_on_the_kernels():
    # The load that 'auto' starts, slowed so that the fork comes mid-load:
    # the child used to hang for ever on the kernels' lock (and numba's).
    code = textwrap.dedent(
        """
        import multiprocessing, threading, time
        import numpy as np
        from sklearn_em import GaussianMixture, config_context, _engine

        compile_, loading = _engine._compile, threading.Event()

        def slow_compile(*args):
            loading.set()
            time.sleep(1.0)
            compile_(*args)

        def fit(engine):
            import faulthandler
            faulthandler.dump_traceback_later(120, exit=True)
            X = np.random.default_rng(1).normal(size=(2000, 2))
            with config_context(engine=engine):
                gm = GaussianMixture(3, init_params="random_from_data",
                                     random_state=0, max_iter=5).fit(X)
            return gm.lower_bound_, gm.means_, "float64" in _engine._ready

        if __name__ == "__main__":
            _engine._compile = slow_compile
            _engine._warm_up(np.float64)
            assert loading.wait(60) and _engine._lock.locked()
            with multiprocessing.get_context("fork").Pool(1) as pool:
                # A child that hangs is ended by its watchdog, and its task
                # then never comes back.
                children = pool.map_async(fit, ["numba", "auto"], chunksize=1)
                children = children.get(timeout=150)
            ours = fit("numba")
            for bound, means, loaded in children:
                assert loaded, "the child has not the kernels its parent loaded"
                assert bound == ours[0] and (means == ours[1]).all(), children
            print("equal")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=_clean_env(),
        timeout=600,
    )
    assert "equal" in done.stdout, done.stdout + done.stderr


def test_importing_and_small_fits_never_import_numba():
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        from sklearn_em import GaussianMixture
        X = np.random.RandomState(0).randn(2000, 2)
        GaussianMixture(3, random_state=0).fit(X).predict(X)
        assert "numba" not in sys.modules, "numba was imported"
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=_clean_env())


def _clean_env():
    env = dict(os.environ)
    env.pop("SKLEARN_EM_ENGINE", None)
    return env


def test_float32_inference_keeps_the_dtype_and_equals_numpy_to_its_precision():
    rng = np.random.RandomState(10)
    X = random_model("diag").sample(rng, 3_000)[0].astype(np.float32)
    gm = GaussianMixture(3, covariance_type="diag", random_state=0).fit(X)
    out = {}
    for name in ("numpy", "numba"):
        with config_context(engine=name):
            out[name] = [gm.score_samples(X), gm.predict_proba(X), gm.predict(X)]
    for a, b in zip(out["numpy"], out["numba"], strict=True):
        assert b.dtype == a.dtype
        assert_allclose(b, a, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_float32_fits_equal_the_numpy_engine_to_float32_precision(covariance_type):
    rng = np.random.RandomState(13)
    X = random_model(covariance_type).sample(rng, 3_000)[0].astype(np.float32)
    fits = {}
    for name in ("numpy", "numba"):
        with config_context(engine=name):
            fits[name] = GaussianMixture(
                3, covariance_type=covariance_type, random_state=0
            ).fit(X)
    a, b = fits["numpy"], fits["numba"]
    assert_allclose(b.lower_bound_, a.lower_bound_, rtol=1e-6)
    for name in ("weights_", "means_", "covariances_"):
        want = getattr(a, name)
        assert getattr(b, name).dtype == np.float32
        assert_allclose(getattr(b, name), want, rtol=0, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("scale", [1e18, 1e-17])
def test_float32_rows_near_the_ends_of_its_range_are_computed_in_float64(scale):
    """Squares of rows ~1e19 overflow float32 (summed over a block: 1e18
    is enough), of rows ~1e-17 underflow it:
    such data gets float64 arithmetic on the compiled kernel, and the same
    fit as the numpy engine."""
    X = make_three_gaussians(2_000, random_state=0)[0] * scale
    X = X.astype(np.float32)
    with config_context(engine="numba"):
        source = TrainingData(X, None, get_covariance("full"), 3)
    assert source.dense.compiled is kernels and not source.dense.single
    fits = {}
    for name in ("numpy", "numba"):
        with config_context(engine=name):
            fits[name] = GaussianMixture(3, reg_covar=0.0, random_state=0).fit(X)
    a, b = fits["numpy"], fits["numba"]
    assert np.isfinite(b.lower_bound_)
    assert_allclose(b.lower_bound_, a.lower_bound_, rtol=1e-6)
    assert_allclose(b.means_, a.means_, rtol=1e-5)


def test_float32_statistics_of_given_responsibilities_refer_to_their_centre():
    """The centre of float32 rows is rounded to float32 for every source, so
    statistics computed on any path refer to the point the rows were centred
    on: the means of given responsibilities are exact, far from the origin."""
    rng = np.random.RandomState(16)
    X = (rng.normal(size=(500, 2)) + 1000.06).astype(np.float32)
    resp = rng.dirichlet(np.ones(3), size=len(X))
    for name in ("numpy", "numba"):
        with config_context(engine=name):
            source = TrainingData(X, None, get_covariance("full"), 3)
        assert_array_equal(source.center, source.center.astype(np.float32))
        model = params_from_stats(
            source.stats_given(resp=resp), source.covariance, 1e-6
        )
        want = resp.T @ X.astype(np.float64) / resp.sum(axis=0)[:, None]
        assert_allclose(model.means, want, rtol=1e-12)


def test_float32_exp_is_within_two_ulp_and_zero_below_the_normal_range():
    rng = np.random.RandomState(14)
    x = np.concatenate([rng.uniform(-87.3, 88, 3_000), [0.0, -87.3, 88]])
    x = x.astype(np.float32)
    out = np.array([kernels._exp32(v) for v in x], dtype=np.float32)
    exact = np.exp(x.astype(np.float64))
    assert (np.abs(out - exact) <= 2 * np.spacing(exact.astype(np.float32))).all()
    assert kernels._exp32(np.float32(-87.5)) == 0.0
    assert kernels._exp32(np.float32(-np.inf)) == 0.0


def test_float32_log_is_within_three_ulp():
    rng = np.random.RandomState(15)
    # A dense grid where the normalisers lie (1 to k), and values far apart.
    a = np.concatenate(
        [np.linspace(1, 200, 100_001), np.exp(rng.uniform(-80, 80, 2_000))]
    )
    a = np.concatenate([a, [1.0, 2.0, np.sqrt(2.0), 1 + 1e-7]]).astype(np.float32)
    out = np.array([kernels._log32(v) for v in a], dtype=np.float32)
    exact = np.log(a.astype(np.float64))
    assert (
        np.abs(out - exact) <= 3 * np.spacing(np.abs(exact).astype(np.float32))
    ).all()


@pytest.mark.parametrize("method", ["predict", "predict_proba", "score_samples"])
def test_inference_holds_nothing_that_grows_with_n_beyond_its_output(method):
    import tracemalloc

    rng = np.random.RandomState(11)
    X = random_model("full", n_features=2).sample(rng, 400_000)[0]
    gm = GaussianMixture(3, random_state=0, max_iter=5, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # max_iter=5: not converged
        gm.fit(X[:5_000])
    with config_context(engine="numba"):
        getattr(gm, method)(X[:1_000])  # buffers and kernels loaded
        tracemalloc.start()
        out = getattr(gm, method)(X)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert peak < out.nbytes + 2 * 2**20, (peak / 2**20, out.nbytes / 2**20)


@pytest.mark.parametrize(
    "make",
    [
        lambda: GaussianMixture(3, init_params="multistart", random_state=0),
        lambda: __import__("sklearn_em").GaussianMixtureIC(
            n_components=[2, 3], covariance_type=["full", "tied"], random_state=0
        ),
    ],
    ids=["multistart", "GaussianMixtureIC"],
)
def test_a_background_load_that_finishes_mid_call_does_not_switch_kernels(
    monkeypatch, make
):
    """'auto' fixes its kernel for one estimator call: a call that builds
    several data sources (a search beside the main fit, a grid of fits) runs
    them all on the kernel that was loaded when it began, even when the
    compiled one becomes ready meanwhile; the next call uses it."""
    engine.preload()
    loaded = set(engine._ready)
    monkeypatch.setattr(engine, "_ready", set())  # as if not loaded yet
    compiled = []
    select = engine.select

    def spy(*args, **kwargs):
        kernels = select(*args, **kwargs)
        compiled.append(kernels is not None)
        engine._ready.update(loaded)  # the load finishes now
        return kernels

    monkeypatch.setattr(engine, "select", spy)
    X = np.random.RandomState(0).normal(size=(600, 2))
    with config_context(engine="auto"):
        make().fit(X)
        assert len(compiled) > 1 and not any(compiled)
        compiled.clear()
        make().fit(X)
    assert compiled and all(compiled)


# -- the compiled M-step --


def both_m_steps(reference, compiled, stats, reg_covar, variances=None):
    """The numpy M-step and preparation, and the compiled ones."""
    want = params_from_stats(stats, reference.covariance, reg_covar, variances)
    got = compiled.m_step(stats, reg_covar, variances)
    return want, reference.dense.prepare(want), got, compiled.dense.prepare(got)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_features", [1, 2, 5])
@pytest.mark.parametrize("per_feature_reg", [False, True])
def test_m_step_equals_the_numpy_m_step_and_preparation(
    covariance_type, n_features, per_feature_reg
):
    rng = np.random.RandomState(5)
    model = random_model(covariance_type, n_features=n_features)
    X = model.sample(rng, 800)[0] + 50.0  # far from the origin
    w = rng.uniform(0.2, 3, len(X))
    _, reference, compiled = sources(X, covariance_type, w)
    model = Mixture(
        model.weights,
        model.means + 50.0,
        model.covariances,
        model.precisions_cholesky,
        model.covariance,
    )
    stats = reference.stats(model)
    reg = rng.uniform(1e-6, 1e-3, n_features) if per_feature_reg else 1e-6
    want, want_prep, got, got_prep = both_m_steps(reference, compiled, stats, reg)
    # The kernel's own preparation was kept for the model it returned.
    assert got_prep.model is got and compiled.dense._next is got_prep
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        a, b = getattr(want, name), getattr(got, name)
        assert b.shape == a.shape and b.dtype == a.dtype
        assert_allclose(b, a, rtol=1e-12, atol=1e-14 * np.abs(a).max())
    scale = np.abs(want_prep.w_matrix).max()
    assert_allclose(got_prep.w_matrix, want_prep.w_matrix, atol=1e-13 * scale, rtol=0)
    assert_allclose(got_prep.peaks, want_prep.peaks, rtol=1e-13)
    assert len(got_prep.local) == len(want_prep.local) == 0
    assert got_prep.unshifted == want_prep.unshifted
    assert_array_equal(got_prep.centers, want_prep.centers)
    # The next E-step from either gives the same statistics.
    assert_same_stats(reference.stats(want), compiled.stats(got), rtol=1e-11)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_m_step_leaves_what_is_not_the_common_case_to_numpy(covariance_type):
    """A covariance that is not positive definite or that collapsed makes
    the kernel step aside: the source's M-step then raises what the numpy
    one raises, naming the same components."""
    rng = np.random.RandomState(6)
    model = random_model(covariance_type, n_features=2)
    X = model.sample(rng, 300)[0]
    model, reference, compiled = sources(X, covariance_type)
    stats = reference.stats(model)
    # Components on a single row (no spread): singular without
    # regularisation, collapsed against the data's variances. One of them,
    # or all of them where they share their covariance.
    which = slice(None) if covariance_type == "tied" else 1
    stats.moments[which] = 0.0
    stats.moments[which, 0] = 1.0
    for variances in (None, reference.feature_variances):
        with pytest.raises(IllDefinedCovariance) as want:
            params_from_stats(stats, reference.covariance, 0.0, variances)
        assert compiled.dense.m_step(stats, 0.0, variances) is None
        with pytest.raises(IllDefinedCovariance) as got:
            compiled.m_step(stats, 0.0, variances)
        assert_array_equal(got.value.components, want.value.components)


def test_m_step_of_a_narrow_component_leaves_preparation_to_numpy():
    """A component too narrow for the feature-row form gets its parameters
    from the kernel, and its E-step about its own mean, as on numpy."""
    rng = np.random.RandomState(7)
    model = random_model("full", n_features=2)
    X = model.sample(rng, 600)[0]
    model, reference, compiled = sources(X, "full")
    stats = reference.stats(model)
    # Component 2's second moments shrunk to 1e-14 of its mass: narrow.
    d = 2
    n2 = stats.moments[2, 0]
    mean = stats.moments[2, 1 : d + 1] / n2
    second = n2 * (np.outer(mean, mean) + 1e-14 * np.eye(d))
    stats.moments[2, d + 1 :] = second[np.triu_indices(d)]
    want, want_prep, got, got_prep = both_m_steps(reference, compiled, stats, 0.0)
    assert compiled.dense._next is None
    assert_array_equal(got_prep.local, [2])
    assert_array_equal(want_prep.local, [2])
    # Variances of 1e-14 are differences of moments of order 1: equal to
    # the rounding of those.
    assert_allclose(got.covariances, want.covariances, rtol=0, atol=1e-15)
    assert_same_stats(reference.stats(want), compiled.stats(got), rtol=1e-9)


COMPILED_RUN = TrainingData.run


def fits_with_and_without_compiled_runs(monkeypatch, X, w=None, **params):
    """The same fit on the compiled engine with EM's iterations run in one
    compiled call where the source can (:meth:`TrainingData.run`), and with
    run_em's own loop throughout; and what ``run`` returned each time."""
    runs = []

    def spy(self, model, **kwargs):
        runs.append(COMPILED_RUN(self, model, **kwargs))
        return runs[-1]

    fits = []
    with config_context(engine="numba"), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for run in (spy, lambda self, model, **kwargs: None):
            monkeypatch.setattr(TrainingData, "run", run)
            fits.append(GaussianMixture(**params).fit(X, sample_weight=w))
    return *fits, runs, [str(c.message) for c in caught]


def assert_identical_fits(got, want):
    assert got.n_iter_ == want.n_iter_ and got.converged_ == want.converged_
    assert got.lower_bounds_per_init_ == want.lower_bounds_per_init_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert_array_equal(getattr(got, name), getattr(want, name))
    assert_array_equal(got.labels_, want.labels_)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize(
    "n_features, n_components",
    # 16 x 32 full or tied (q = 153): blocks go to BLAS where that pays.
    [(1, 1), (2, 2), (1, 4), (5, 8), (16, 32)],
)
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_em_runs_equal_run_ems_loop_in_other_shapes(
    monkeypatch, covariance_type, n_features, n_components, weighted
):
    """One feature, one or two components (the fused pass of a fit sums its
    rows' maxima and totals' product inlined in the whole run too), four
    or eight, 32 whose blocks' products go to BLAS where that pays (16 x 32
    full and tied), and rows of zero weight: still run_em's loop to the
    last bit."""
    rng = np.random.RandomState(3)
    model = random_model(covariance_type, n_features=n_features)
    X = model.sample(rng, 2_500 if n_components < 32 else 12_000)[0]
    w = rng.uniform(0, 2, len(X))
    w[::7] = 0.0
    w = w if weighted else None
    got, want, runs, _ = fits_with_and_without_compiled_runs(
        monkeypatch,
        X,
        w,
        n_components=n_components,
        covariance_type=covariance_type,
        random_state=0,
        tol=1e-7,
        max_iter=200,
        chunk_size=600,
        n_jobs=1,  # whole runs are one thread's (n_jobs=None takes two for 16 x 32)
    )
    assert_identical_fits(got, want)
    assert runs and all(r is not None for r in runs)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_compiled_em_runs_equal_run_ems_loop_bit_for_bit(
    monkeypatch, covariance_type, dtype, weighted
):
    """E-steps over the source's chunks, M-steps and the convergence test in
    one compiled call: the same lower bounds, parameters and stopping point
    as run_em's loop of compiled E- and M-steps, to the last bit (float32
    rows in float32 arithmetic included)."""
    X, _ = make_three_gaussians(3_000, random_state=0)
    w = np.random.RandomState(1).uniform(0, 3, len(X)) if weighted else None
    got, want, runs, _ = fits_with_and_without_compiled_runs(
        monkeypatch,
        X.astype(dtype),
        w,
        n_components=3,
        covariance_type=covariance_type,
        random_state=0,
        tol=1e-6,
        max_iter=300,
        chunk_size=700,  # four chunks, the last ragged
    )
    assert_identical_fits(got, want)
    # One call ran the whole fit, and stopped where run_em would have.
    assert len(runs) == 1 and runs[0].stats is None
    assert runs[0].converged and len(runs[0].lower_bounds) == got.n_iter_


def test_a_narrow_start_takes_run_ems_loop_then_compiled_runs_take_over(
    monkeypatch,
):
    """A spike too narrow for the feature rows: its E-step is run_em's
    (about the spike's own mean), and once it is re-seeded the rest of the
    fit runs in one compiled call; the fit is the one of run_em's loop."""
    X, params = collapsing_spike()
    got, want, runs, messages = fits_with_and_without_compiled_runs(
        monkeypatch, X, n_components=3, **params
    )
    assert_identical_fits(got, want)
    assert sum("re-seeded" in m for m in messages) == 2  # once per fit
    assert runs[0] is None and len(runs) == 2
    assert runs[1].converged and len(runs[1].lower_bounds) == got.n_iter_ - 1


def test_a_component_narrowing_mid_run_hands_the_rest_to_run_ems_loop(monkeypatch):
    """A tight cluster far out (std 1e-4 at 30 standard deviations): from a
    broad random start the compiled run goes on until the M-step whose
    component is too narrow for the feature rows, and stops there; run_em
    takes that M-step and the E-steps about the component's own mean."""
    rng = np.random.RandomState(0)
    X = np.vstack(
        [rng.randn(300, 2), rng.randn(300, 2) + [0, 8], 1e-4 * rng.randn(60, 2) + 30]
    )
    got, want, runs, _ = fits_with_and_without_compiled_runs(
        monkeypatch, X, n_components=3, init_params="random", random_state=0
    )
    assert_identical_fits(got, want)
    assert got.converged_ and got.covariances_.min() < 1e-7
    assert runs[0].stats is not None and runs[1:] == [None] * (len(runs) - 1)
    assert len(runs[0].lower_bounds) + len(runs) - 1 == got.n_iter_


def test_compiled_runs_hand_collapses_to_run_em_which_reseeds_or_gives_up(
    monkeypatch,
):
    """30 copies of one row and reg_covar=0: components collapse onto them
    in the middle of compiled runs, which stop at those M-steps; run_em
    re-seeds them (and compiled runs continue) until it gives up (2k
    re-seeds), with the same warnings and error as its own loop alone."""
    rng = np.random.RandomState(0)
    X = np.vstack(
        [rng.randn(200, 2), np.tile([[5.0, 5.0]], (30, 1)), rng.randn(200, 2) + [0, 8]]
    )
    runs = []

    def spy(self, model, **kwargs):
        runs.append(COMPILED_RUN(self, model, **kwargs))
        return runs[-1]

    outcomes = []
    params = dict(reg_covar=0.0, init_params="random", max_iter=300, random_state=0)
    for run in (spy, lambda self, model, **kwargs: None):
        monkeypatch.setattr(TrainingData, "run", run)
        with (
            config_context(engine="numba"),
            warnings.catch_warnings(record=True) as caught,
        ):
            warnings.simplefilter("always")
            with pytest.raises(ValueError, match="ill-defined") as error:
                GaussianMixture(4, **params).fit(X)
        outcomes.append((str(error.value), [str(c.message) for c in caught]))
    assert outcomes[0] == outcomes[1]
    stopped = [r for r in runs if r is not None and r.stats is not None]
    assert len(stopped) >= 2


def test_compiled_em_runs_stop_where_max_iter_says(monkeypatch):
    X, _ = make_three_gaussians(2_000, random_state=0)
    for max_iter in (1, 2, 7):
        got, want, runs, _ = fits_with_and_without_compiled_runs(
            monkeypatch, X, n_components=3, max_iter=max_iter, tol=0.0, random_state=0
        )
        assert_identical_fits(got, want)
        assert got.n_iter_ == max_iter and not got.converged_
        assert not runs[-1].converged and len(runs[-1].lower_bounds) == max_iter


def test_iterations_with_messages_or_a_progress_bar_stay_in_run_ems_loop(
    monkeypatch, capsys
):
    """verbose prints every iteration: nothing is run in one compiled call."""
    X, _ = make_three_gaussians(2_000, random_state=0)
    got, want, runs, _ = fits_with_and_without_compiled_runs(
        monkeypatch, X, n_components=3, random_state=0, verbose=2, verbose_interval=1
    )
    assert runs == []
    assert_identical_fits(got, want)
    assert capsys.readouterr().out.count("Iteration") == 2 * got.n_iter_


def test_long_runs_take_several_compiled_calls_of_bounded_memory(monkeypatch):
    """A call's lower bounds are a buffer of its iterations, so a call runs
    at most RUN_ITERATIONS of them (max_iter may be huge); run_em calls
    again for the rest, and the fit is the same."""
    from sklearn_em import _dense

    monkeypatch.setattr(_dense, "RUN_ITERATIONS", 3)
    X, _ = make_three_gaussians(2_000, random_state=0)
    got, want, runs, _ = fits_with_and_without_compiled_runs(
        monkeypatch, X, n_components=3, tol=1e-10, max_iter=10**9, random_state=0
    )
    assert_identical_fits(got, want)
    assert got.converged_ and got.n_iter_ > 6
    assert [len(r.lower_bounds) for r in runs[:-1]] == [3] * (len(runs) - 1)
    assert runs[-1].converged and not any(r.converged for r in runs[:-1])


def test_rows_in_read_only_memory_fit_as_writable_ones(monkeypatch):
    """A memory map, or the read-only copy joblib hands a worker: numba
    compiles kernels for such rows apart ('auto' loads them as it loads a
    dtype's, see test_auto_never_waits_for_the_compiler); they give the
    writable rows' fit to the last bit, iterations in one compiled call
    included."""
    engine.preload(np.float64, readonly=True)
    X, _ = make_three_gaussians(3_000, random_state=0)
    frozen = X.copy()
    frozen.setflags(write=False)
    with config_context(engine="numba"):
        source = TrainingData(frozen, None, get_covariance("full"), 3)
        assert source.dense.compiled is kernels
        fits = [
            GaussianMixture(3, random_state=0, tol=1e-6).fit(rows)
            for rows in (X, frozen)
        ]
    assert_identical_fits(*fits)


@pytest.mark.parametrize("n_components", [3, 64])
@pytest.mark.parametrize("spread", [0.0, 3.0])
def test_a_blocks_log_likelihood_by_one_log_is_as_accurate_as_one_per_row(
    n_components, spread
):
    """Without weights, a block's log-likelihood is ``sum(top) +
    log(prod(row totals))``, the product (one running product up to three
    components, eight from four) taken as one mantissa and one exponent:
    against a sum of
    float64 log-sum-exps, as close as the weighted path's log per row, also
    where every row's total is k (equal components, the largest products;
    k = 64: 64**32 = 2**192)."""
    from scipy.special import logsumexp

    rng = np.random.RandomState(12)
    n, d, k = 3_001, 2, n_components  # a partial block, and one not a multiple of 8
    x = rng.randn(n, d)
    center = np.zeros(d)
    # Spherical feature rows [1, y, |y|^2]: log-densities w0 + w1 y + w2 |y|^2.
    w_matrix = np.column_stack(
        [spread * rng.randn(k), spread * rng.randn(k, d), -0.5 - spread * rng.rand(k)]
    )
    q = w_matrix.shape[1]
    f, lp = np.empty((q, kernels.BLOCK)), np.empty((k, kernels.BLOCK))
    scratch = np.empty((3, kernels.BLOCK))

    def log_likelihood(w):
        moments = np.zeros((k, q))
        args = (center, w_matrix, 2, moments, f, lp, scratch)
        return kernels.stats_rows(x, w, *args), moments

    features = np.column_stack([np.ones(n), x, (x * x).sum(axis=1)])
    exact = math.fsum(logsumexp(features @ w_matrix.T, axis=1))
    summed, moments = log_likelihood(np.empty(0))
    per_row, moments_per_row = log_likelihood(np.ones(n))
    if spread == 0:  # equal components: each row's total is exactly k
        assert_allclose(moments[:, 0], n / k, rtol=1e-13)
    assert abs(summed - exact) <= 1e-13 * abs(exact)
    assert abs(per_row - exact) <= 1e-13 * abs(exact)
    assert_allclose(moments, moments_per_row, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_components", [1, 2, 3, 5])
def test_a_row_with_nothing_gives_equal_responsibilities_and_minus_inf(
    n_components, dtype
):
    """A row whose log-densities are all ``-inf`` (here its square
    overflows) gets equal responsibilities and makes the log-likelihood
    ``-inf``, on the unweighted path (up to three components, a block
    with such a row is redone by the careful pass) as on the weighted one
    (a log per row)."""
    rng = np.random.RandomState(5)
    k, n, d = n_components, 700, 2
    x = rng.randn(n, d).astype(dtype)
    x[[3, 300, 699]] = 1e200 if dtype == np.float64 else 1e30  # blocks 1, 2, 3
    w_matrix = np.column_stack([rng.randn(k), rng.randn(k, d), -0.5 - rng.rand(k)])
    w_matrix = w_matrix.astype(dtype)
    q = w_matrix.shape[1]
    f = np.empty((q, kernels.BLOCK), dtype)
    lp, scratch = (
        np.empty((k, kernels.BLOCK), dtype),
        np.empty((3, kernels.BLOCK), dtype),
    )

    def stats(w):
        moments = np.zeros((k, q))
        args = (np.zeros(d, dtype), w_matrix, 2, moments, f, lp, scratch)
        return kernels.stats_rows(x, w, *args), moments

    summed, moments = stats(np.empty(0))
    per_row, moments_per_row = stats(np.ones(n))
    assert summed == per_row == -np.inf
    # Each block's sums in the rows' precision (float32: 24 bits).
    rtol = 1e-13 if dtype == np.float64 else 1e-6
    assert_allclose(moments[:, 0].sum(), n, rtol=rtol)  # every row counted once
    assert_allclose(moments, moments_per_row, rtol=rtol)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_components", [1, 2, 3])
def test_the_fits_one_pass_leaves_every_block_with_an_infinite_maximum_to_redo(
    n_components, dtype
):
    """A fit's one pass up to three components (``_fit_terms``) takes each
    row's maximum as it is. Where every row's is finite (ties, a NaN
    below a finite maximum, rows past the block's end whatever they hold),
    its terms and reciprocal totals are bit for bit those of the careful
    pass (``_normalize_summed``: maxima through ``_top``, rows with nothing
    mended) and its sum the same to rounding; a row whose maximum is
    ``+inf``, ``-inf`` or NaN makes the sum not finite, which sends the
    block to the careful pass."""
    rng = np.random.RandomState(9)
    k, m, block = n_components, 200, kernels.BLOCK  # a partial block
    base = (5 * rng.randn(k, block)).astype(dtype)
    base[:, 7] = 1.5  # every component tied at the maximum
    if k > 1:
        base[k - 1, 8] = np.nan  # below a finite maximum: a term of 0
    base[:, m + 5] = np.inf  # past the block's end: not read

    def fast(lp):
        total = np.empty(block, dtype)
        return kernels._fit_terms(lp, m, total), total

    lp_fast, lp_careful = base.copy(), base.copy()
    summed, total = fast(lp_fast)
    scratch = np.empty((3, block), dtype)
    careful = kernels._normalize_summed(lp_careful, m, *scratch)
    assert np.isfinite(summed)
    assert_array_equal(lp_fast[:, :m], lp_careful[:, :m])
    assert_array_equal(total[:m], scratch[1, :m])
    assert summed == pytest.approx(careful, rel=1e-15)

    plus_inf, minus_inf, nan = (base.copy() for _ in range(3))
    plus_inf[k - 1, 150] = np.inf
    minus_inf[:, 150] = -np.inf  # a row with nothing
    nan[0, 150] = np.nan  # the maximum NaN
    for lp in (plus_inf, minus_inf, nan):
        assert not np.isfinite(fast(lp)[0])


def _k_exponentials(lp, m, top, total):
    """The row terms the plain way, as a reference: each row's maximum,
    ``exp`` of every component's log-density less it, the terms summed in
    component order; a row with nothing (all ``-inf``, or NaN, where
    ``exp`` gives 0) gets ones, total k and maximum ``-inf``."""
    import numba

    @numba.njit(error_model="numpy")
    def plain(lp, m, top, total):
        k = lp.shape[0]
        for i in range(m):
            t = lp[0, i]
            for j in range(1, k):
                t = max(t, lp[j, i])
            t = 0.0 if t == -np.inf else t
            top[i] = t
            total[i] = 0.0
            for j in range(k):
                e = kernels._exp_of(lp[j, i] - top[i])
                lp[j, i] = e
                total[i] = total[i] + e
            if total[i] == 0.0:
                for j in range(k):
                    lp[j, i] = 1.0
                total[i] = k
                top[i] = -np.inf

    plain(lp, m, top, total)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_components", [1, 2, 3, 4, 5, 8])
def test_k_minus_one_exponentials_give_the_terms_of_k_bit_for_bit(dtype, n_components):
    """Each row's largest term is exp(0) = 1, so the kernel computes k - 1
    exponentials a row (its last component's in the largest one's slot):
    terms, totals and maxima bit for bit those of k exponentials, with
    ties for the maximum, the last component the largest, rows of ``-inf``
    and of NaN, and a partial block."""
    rng = np.random.RandomState(3)
    k, m = n_components, kernels.BLOCK - 3
    lp = (30 * rng.randn(k, kernels.BLOCK)).astype(dtype)
    lp[:, 0] = -np.inf  # nothing: ones, total k
    lp[0, 1] = -np.inf
    lp[:, 2] = lp[0, 2]  # every component tied
    lp[-1, 3] = 1e30  # the last component the largest
    lp[:, 4] = np.nan
    lp[-1, 5] = np.nan
    lp[0, 6] = np.nan
    if k > 2:
        lp[1, 7] = lp[2, 7] = 1e30  # two tied above the last
    lp[0, 9] = np.inf  # exp(inf - inf) is NaN's: 0, a row with nothing
    got, want = lp.copy(), lp.copy()
    scratch, plain = (
        np.zeros((3, kernels.BLOCK), dtype),
        np.zeros((2, kernels.BLOCK), dtype),
    )
    kernels._exponentiate(got, m, scratch[0], scratch[1], scratch[2])
    _k_exponentials(want, m, plain[0], plain[1])
    assert_array_equal(got[:, :m], want[:, :m])  # NaN equal to NaN
    assert_array_equal(scratch[0, :m], plain[0, :m])
    assert_array_equal(scratch[1, :m], plain[1, :m])
    # Terms below 1 too (a real test), where there is more than one.
    assert (want[:, 10:m] == 1).any() and ((want[:, 10:m] < 1).any() or k == 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("n_components", [1, 2, 3, 4, 5])
def test_labels_are_argmax_and_minus_one_where_not_finite(dtype, n_components):
    """The labels pass (one pass up to three components, the folding steps
    above) gives numpy's argmax, the first of tied maxima, and -1 (counted)
    for a row with a log-density that is NaN or infinite, on a partial
    block."""
    rng = np.random.RandomState(5)
    k, m = n_components, kernels.BLOCK - 3
    lp = (30 * rng.randn(k, kernels.BLOCK)).astype(dtype)
    lp[:, 2] = lp[0, 2]  # every component tied
    lp[-1, 3] = 1e30  # the last component the largest
    if k > 2:
        lp[1, 7] = lp[2, 7] = 1e30  # two tied above the last
    not_finite = {4: np.nan, 5: np.inf, 6: -np.inf}
    for i, value in not_finite.items():
        lp[-1, i] = value
    lp[:, 8] = -np.inf
    lp[0, 9] = np.nan  # NaN in the first component, the others finite
    lp[k // 2, 10] = np.nan  # ... in a middle one (the first, at k = 1)
    lp[0, 11], lp[-1, 11] = np.inf, -np.inf  # at k = 1: -inf alone
    # Finite log-densities whose sum overflows: flagged too (as _flag_rows
    # flags them, for the caller to redo on the checked path).
    big = np.finfo(dtype).max
    lp[:, 12] = big if k > 1 else np.inf
    out = np.full(kernels.BLOCK, 99, dtype=np.intp)
    spare = np.empty(kernels.BLOCK, dtype=np.intp)
    scratch = np.empty((3, kernels.BLOCK), dtype)
    bad = kernels._argmax(lp, m, scratch, out, spare)
    want = lp[:, :m].argmax(axis=0)
    flagged = [*not_finite, 8, 9, 10, 11, 12]
    want[flagged] = -1
    assert bad == len(flagged)
    assert_array_equal(out[:m], want)
    assert (out[m:] == 99).all()  # nothing written past the block's rows
    assert len(set(want[13:])) == k  # every component wins somewhere


def test_inference_reads_finite_rows_once_and_redoes_others_as_checked(monkeypatch):
    """On the compiled engine, new rows are not summed to check they are
    finite (the kernel flags every row that is not): the same answers as
    the numpy engine, which checks, also with NaN rows (then checked and
    redone), and scikit-learn's error for infinity."""
    import sklearn_em._estimator as estimator_module

    rng = np.random.RandomState(13)
    X = random_model("full", n_features=2).sample(rng, 3_000)[0]
    gm = GaussianMixture(3, random_state=0).fit(X)
    checks = []
    checked_finite = estimator_module._checked_finite

    def counting(estimator, rows):
        checks.append(len(rows))
        return checked_finite(estimator, rows)

    confirm = TrainingData._confirm_finite

    def confirming(rows):
        checks.append(-len(rows))
        return confirm(rows)

    monkeypatch.setattr(estimator_module, "_checked_finite", counting)
    monkeypatch.setattr(TrainingData, "_confirm_finite", staticmethod(confirming))
    with_nan = X.copy()
    with_nan[[5, 700], [0, 1]] = np.nan
    methods = ("predict", "predict_proba", "score_samples")
    for rows in (X, with_nan):
        for method in methods:
            with config_context(engine="numpy"):
                want = getattr(gm, method)(rows)
            checks.clear()
            with config_context(engine="numba"):
                got = getattr(gm, method)(rows)
            assert_allclose(got, want, rtol=1e-12, atol=1e-15)
            # Finite rows: no check; NaN rows: the two flagged rows, then all.
            assert checks == ([] if rows is X else [-2, len(X)]), method
    with_inf = X.copy()
    with_inf[9, 1] = np.inf
    for method in methods:
        with config_context(engine="numba"), pytest.raises(ValueError, match="inf"):
            getattr(gm, method)(with_inf)


@pytest.mark.parametrize("weighted", [False, True])
def test_f_ordered_rows_and_dataframes_take_compiled_runs(monkeypatch, weighted):
    """A DataFrame's values are F-ordered (and read-only on pandas 3): the
    whole run goes to the compiled kernel as their transpose, with no copy,
    and gives run_em's loop to the last bit (and the C-ordered rows' fit to
    rounding: the data's mean sums them in another order)."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas (the test extra)")
    engine.preload(np.float64, readonly=True)
    X, _ = make_three_gaussians(3_000, random_state=0)
    w = np.random.RandomState(1).uniform(0, 2, len(X)) if weighted else None
    frozen = np.asfortranarray(X)
    frozen.setflags(write=False)
    params = {"n_components": 3, "random_state": 0, "tol": 1e-6}
    reference = GaussianMixture(**params, n_jobs=1)
    with config_context(engine="numba"):
        reference.fit(X, sample_weight=w)
    for rows in (np.asfortranarray(X), frozen, pd.DataFrame(X, columns=["a", "b"])):
        got, want, runs, _ = fits_with_and_without_compiled_runs(
            monkeypatch, rows, w, **params, n_jobs=1
        )
        assert runs and all(run is not None for run in runs)
        assert_identical_fits(got, want)
        assert_allclose(got.means_, reference.means_, rtol=1e-12)
        assert_allclose(got.covariances_, reference.covariances_, rtol=1e-12)
        with config_context(engine="numba"):
            assert_array_equal(got.predict(rows), reference.predict(X))


def test_read_only_rows_reach_the_kernels_read_only_on_every_path(monkeypatch):
    """numba compiles kernels for read-only rows apart, and a source whose
    X is read-only loads those: every row it hands them must be read-only
    (chunks of an F-ordered X are copies, and so are the complete rows of
    a chunk with missing values), or numba compiles anew within the fit."""
    pd = pytest.importorskip("pandas", reason="DataFrames need pandas (the test extra)")
    engine.preload(np.float64, readonly=True)
    X, _ = make_three_gaussians(3_000, random_state=0)
    holes = X.copy()
    holes[::50, 1] = np.nan
    writable = []

    def recording(kernel):
        def call(x, *args):
            writable.append(x.flags.writeable)
            return kernel(x, *args)

        return call

    names = ["stats_rows", "log_prob_rows", "posterior_rows", "em_rows"]
    names += ["lloyd_rows", "seeding_potentials", "seeding_search", "add_spread"]
    for name in names:
        monkeypatch.setattr(kernels, name, recording(getattr(kernels, name)))
    for values in (X, holes):
        for order in ("C", "F"):
            rows = np.array(values, order=order)
            rows.setflags(write=False)
            for n_jobs in (1, 2):
                gm = GaussianMixture(3, random_state=0, n_jobs=n_jobs, chunk_size=700)
                with config_context(engine="numba"):
                    gm.fit(pd.DataFrame(rows) if order == "F" else rows)
                    gm.predict(rows), gm.score_samples(rows)
    assert len(writable) > 20 and not any(writable)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_block_buffers_reach_the_kernels_on_cache_lines(monkeypatch, dtype):
    """The kernels' block buffers (feature rows, log-densities, scratch)
    start on 64-byte boundaries, on one thread and on two, in fits and
    inference: numpy aligns small arrays to 16 bytes only, and vector loads
    that straddle cache lines cost the E-step 14-19%."""
    from sklearn_em._dense import ALIGNMENT, Workspace, aligned_empty

    for size in (1, 7, 256, 1_536):
        for kind in (np.float64, np.float32):
            a = aligned_empty(size, kind)
            assert a.ctypes.data % ALIGNMENT == 0 and a.size == size
            assert a.dtype == kind and a.flags.c_contiguous and a.flags.writeable
    rows = Workspace().matrix("f_block", 6, kernels.BLOCK, dtype)
    assert all(row.ctypes.data % ALIGNMENT == 0 for row in rows)

    engine.preload(dtype)  # the warm-up's own calls are not a fit's
    offsets = []

    def recording(kernel):
        def call(*args):
            blocks = [
                a
                for a in args[1:]
                if isinstance(a, np.ndarray)
                and a.ndim == 2
                and a.shape[1] == kernels.BLOCK
            ]
            offsets.extend(a.ctypes.data % ALIGNMENT for a in blocks)
            return kernel(*args)

        return call

    for name in ("stats_rows", "log_prob_rows", "posterior_rows", "em_rows"):
        monkeypatch.setattr(kernels, name, recording(getattr(kernels, name)))
    X = make_three_gaussians(3_000, random_state=0)[0].astype(dtype)
    for n_jobs in (1, 2):
        gm = GaussianMixture(3, random_state=0, n_jobs=n_jobs, chunk_size=700)
        with config_context(engine="numba"):
            gm.fit(X)
            gm.predict_proba(X), gm.score_samples(X)
    assert len(offsets) > 20 and not any(offsets)
