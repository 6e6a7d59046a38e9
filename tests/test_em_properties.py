"""Properties every EM fit must have, whatever sklearn does."""

import pickle
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import GaussianMixture, config_context
from sklearn_em.datasets import make_three_gaussians


@pytest.fixture(scope="module")
def X():
    return make_three_gaussians(2000, random_state=0)[0]


def as_full(values, covariance_type, n_components, n_features):
    """Covariance-shaped values as a (k, d, d) stack whatever the type."""
    values = np.asarray(values)
    return {
        "full": lambda: values,
        "tied": lambda: np.broadcast_to(values, (n_components, n_features, n_features)),
        "diag": lambda: np.stack([np.diag(v) for v in values]),
        "spherical": lambda: values[:, None, None] * np.eye(n_features),
    }[covariance_type]()


@pytest.mark.parametrize("init_params", ["kmeans", "random", "random_from_data"])
def test_lower_bound_never_decreases(X, covariance_type, init_params):
    gmm = GaussianMixture(
        4,
        covariance_type=covariance_type,
        init_params=init_params,
        tol=0,
        max_iter=60,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(X)
    bounds = np.array(gmm.lower_bounds_)
    assert len(bounds) == gmm.n_iter_ == 60
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))


def test_fitted_parameters_are_a_valid_mixture(X, covariance_type):
    gmm = GaussianMixture(5, covariance_type=covariance_type, random_state=1).fit(X)
    assert_allclose(gmm.weights_.sum(), 1.0, rtol=1e-12)
    assert np.all(gmm.weights_ > 0)
    covariances = as_full(gmm.covariances_, covariance_type, 5, 2)
    precisions = as_full(gmm.precisions_, covariance_type, 5, 2)
    for cov, prec in zip(covariances, precisions, strict=False):
        assert_allclose(cov, cov.T)
        assert np.all(np.linalg.eigvalsh(cov) > 0)
        assert_allclose(cov @ prec, np.eye(2), atol=1e-10)
    assert np.all(np.isfinite(gmm.precisions_cholesky_))


def test_one_component_is_the_sample_mean_and_covariance(X, covariance_type):
    gmm = GaussianMixture(1, covariance_type=covariance_type, reg_covar=0).fit(X)
    cov = np.cov(X.T, bias=True)
    expected = {
        "full": cov[None],
        "tied": cov,
        "diag": np.diag(cov)[None],
        "spherical": np.array([np.trace(cov) / 2]),
    }[covariance_type]
    assert_allclose(gmm.weights_, [1.0])
    assert_allclose(gmm.means_, X.mean(axis=0)[None], rtol=1e-12)
    assert_allclose(gmm.covariances_, expected, rtol=1e-10)
    # A single Gaussian is fitted in one M-step; the second iteration confirms it.
    assert gmm.n_iter_ == 2


@pytest.mark.parametrize("chunk_size", [1, 7, 256, 100_000])
def test_chunk_size_does_not_change_the_fit(X, covariance_type, chunk_size):
    params = dict(covariance_type=covariance_type, random_state=0)
    reference = GaussianMixture(3, **params).fit(X)
    chunked = GaussianMixture(3, chunk_size=chunk_size, **params).fit(X)
    assert chunked.n_iter_ == reference.n_iter_
    assert_allclose(chunked.means_, reference.means_, rtol=1e-10)
    assert_allclose(chunked.covariances_, reference.covariances_, rtol=1e-10)
    assert_allclose(chunked.lower_bound_, reference.lower_bound_, rtol=1e-12)
    assert_allclose(chunked.predict_proba(X), reference.predict_proba(X), atol=1e-12)


def test_row_order_does_not_change_the_fit(X, covariance_type):
    init = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    params = dict(
        covariance_type=covariance_type,
        weights_init=init.weights_,
        means_init=init.means_ + 0.3,
        precisions_init=init.precisions_,
    )
    order = np.random.RandomState(0).permutation(len(X))
    a = GaussianMixture(3, **params).fit(X)
    b = GaussianMixture(3, **params).fit(X[order])
    assert a.n_iter_ == b.n_iter_
    assert_allclose(a.means_, b.means_, rtol=1e-10)
    assert_allclose(a.covariances_, b.covariances_, rtol=1e-10)
    assert_array_equal(a.labels_[order], b.labels_)


def test_float32_input_stays_float32_and_close_to_float64(X, covariance_type):
    gmm64 = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    gmm32 = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(
        X.astype(np.float32)
    )
    for name in (
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
    ):
        assert getattr(gmm32, name).dtype == np.float32, name
        assert_allclose(getattr(gmm32, name), getattr(gmm64, name), rtol=1e-4)
    X32 = X.astype(np.float32)
    assert gmm32.predict_proba(X32).dtype == np.float32
    assert gmm32.score_samples(X32).dtype == np.float32
    assert gmm64.predict_proba(X).dtype == np.float64


def test_fit_predict_equals_fit_then_predict(X):
    gmm = GaussianMixture(3, max_iter=2, tol=0, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        labels = gmm.fit_predict(X)
    assert_array_equal(labels, gmm.labels_)
    assert_array_equal(labels, gmm.predict(X))


def test_responsibilities_sum_to_one_and_agree_with_predict(X):
    gmm = GaussianMixture(3, random_state=0).fit(X)
    resp = gmm.predict_proba(X)
    assert_allclose(resp.sum(axis=1), 1.0)
    assert_array_equal(resp.argmax(axis=1), gmm.predict(X))


def test_score_is_the_mean_of_score_samples(X):
    gmm = GaussianMixture(3, random_state=0).fit(X)
    assert_allclose(gmm.score(X), gmm.score_samples(X).mean(), rtol=1e-14)


def test_lower_bound_is_the_training_score_before_the_last_step(X):
    gmm = GaussianMixture(3, random_state=0, tol=1e-10, max_iter=500).fit(X)
    assert gmm.converged_
    assert_allclose(gmm.lower_bound_, gmm.score(X), rtol=1e-9)


def test_more_initialisations_never_give_a_lower_bound_that_is_worse(X):
    single = GaussianMixture(6, init_params="random", random_state=0).fit(X)
    several = GaussianMixture(6, init_params="random", n_init=4, random_state=0).fit(X)
    assert several.lower_bound_ >= single.lower_bound_


def test_same_random_state_gives_identical_fits(X):
    a = GaussianMixture(4, n_init=3, init_params="random", random_state=3).fit(X)
    b = GaussianMixture(4, n_init=3, init_params="random", random_state=3).fit(X)
    assert_array_equal(a.means_, b.means_)
    assert_array_equal(a.covariances_, b.covariances_)


def test_pickle_round_trip_predicts_the_same(X):
    gmm = GaussianMixture(3, random_state=0).fit(X)
    restored = pickle.loads(pickle.dumps(gmm))
    assert_array_equal(restored.predict_proba(X), gmm.predict_proba(X))


def test_sample_follows_the_fitted_mixture(X):
    gmm = GaussianMixture(3, random_state=0).fit(X)
    samples, labels = gmm.sample(30_000)
    assert samples.shape == (30_000, 2)
    assert_allclose(np.bincount(labels) / 30_000, gmm.weights_, atol=0.02)
    for k in range(3):
        assert_allclose(samples[labels == k].mean(axis=0), gmm.means_[k], atol=0.06)


def test_bic_and_aic_count_free_parameters(X):
    n, d, k = len(X), 2, 3
    counts = {"full": 3 * 3, "tied": 3, "diag": 3 * 2, "spherical": 3}
    for covariance_type, n_cov in counts.items():
        gmm = GaussianMixture(k, covariance_type=covariance_type, random_state=0).fit(X)
        n_params = n_cov + k * d + k - 1
        log_lik = gmm.score(X) * n
        assert_allclose(gmm.bic(X), -2 * log_lik + n_params * np.log(n))
        assert_allclose(gmm.aic(X), -2 * log_lik + 2 * n_params)


@pytest.mark.parametrize("offset", [1e3, 1e6])
def test_shifting_the_data_shifts_the_means_and_nothing_else(covariance_type, offset):
    """Centring before forming second moments keeps digits far from the origin."""
    X = make_three_gaussians(3000, random_state=0)[0]
    start = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    params = dict(
        covariance_type=covariance_type,
        tol=1e-8,
        max_iter=1000,
        weights_init=start.weights_,
        precisions_init=start.precisions_,
    )
    base = GaussianMixture(3, means_init=start.means_, **params).fit(X)
    shifted = GaussianMixture(3, means_init=start.means_ + offset, **params).fit(
        X + offset
    )
    assert shifted.n_iter_ == base.n_iter_
    # X + offset itself is rounded to ~offset * 1e-16; allow a few hundred ulps.
    assert_allclose(shifted.means_ - offset, base.means_, atol=offset * 1e-14)
    assert_allclose(shifted.covariances_, base.covariances_, atol=offset * 1e-14)
    assert_allclose(shifted.weights_, base.weights_, atol=offset * 1e-14)


def test_threads_work_in_a_forked_child_after_use_in_the_parent(X):
    """The shared thread pool must not deadlock a child made by fork.

    (Random initialisation: sklearn's k-means uses OpenMP, which is known to
    hang in a forked child once used in the parent, with or without us.)
    """
    import multiprocessing

    big = np.repeat(X, 40, axis=0)  # several chunks, so threads are used
    GaussianMixture(3, init_params="random", random_state=0, n_jobs=2).fit(big)
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        result = pool.apply_async(_fit_lower_bound, (big,)).get(timeout=60)
    assert np.isfinite(result)


def _fit_lower_bound(X):
    gmm = GaussianMixture(3, init_params="random", random_state=0, n_jobs=2)
    return gmm.fit(X).lower_bound_


def test_threads_change_nothing_beyond_rounding(X, covariance_type):
    big = np.repeat(X, 20, axis=0)  # several chunks per thread
    params = dict(covariance_type=covariance_type, random_state=0, chunk_size=4096)
    one = GaussianMixture(3, n_jobs=1, **params).fit(big)
    two = GaussianMixture(3, n_jobs=2, **params).fit(big)
    assert one.n_iter_ == two.n_iter_
    assert_allclose(two.means_, one.means_, rtol=1e-10)
    assert_allclose(two.covariances_, one.covariances_, rtol=1e-10)
    assert_allclose(
        two.predict_proba(big[:5000]), one.predict_proba(big[:5000]), atol=1e-12
    )


@pytest.mark.parametrize("n_features", [1, 2, 8, 9])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_subtraction_of_narrow_data_is_numpys(n_features, dtype):
    # Narrow data are centred a column at a time (numpy's broadcast is slow
    # there); the values, NaN and dtype must be those of X - row.
    from sklearn_em._data import _minus_row

    rng = np.random.default_rng(0)
    X = rng.standard_normal((50, n_features)).astype(dtype)
    X[3, 0] = np.nan
    row = rng.standard_normal(n_features)
    for rows in (X, X[::3]):
        got, want = _minus_row(rows, row), rows - row
        assert got.dtype == want.dtype
        assert_array_equal(got, want)


def test_workspace_matrices_follow_their_buffer_when_it_grows():
    # The kept (rows, cols) views must never point at a buffer that get()
    # has replaced with a larger one.
    from sklearn_em._dense import Workspace

    ws = Workspace()
    first = ws.matrix("f", 2, 4)
    assert ws.matrix("f", 2, 4) is first
    grown = ws.get("f", 100)
    again = ws.matrix("f", 2, 4)
    assert again is not first
    assert np.shares_memory(again, grown)
    assert ws.matrix("g", 2, 4).base is not again.base


@pytest.mark.parametrize("n_features", [8, 5])
@pytest.mark.parametrize(
    "n_narrow", [4, 1, 2], ids=["all-local", "one-local", "half-local"]
)
def test_components_taken_about_their_own_means_give_the_same_m_step(
    covariance_type, n_narrow, n_features, monkeypatch
):
    """The precision fallback (components handled about their own means, by
    the direct form) is the same maths as the feature rows about the common
    centre: on well-conditioned data both give the same M-step. From 8
    features, once half the components or more take it, all do, and no
    feature rows are formed."""
    from sklearn_em import _dense
    from sklearn_em._covariance import get_covariance
    from sklearn_em._data import TrainingData
    from sklearn_em._em import params_from_stats
    from sklearn_em._model import Mixture

    rng = np.random.RandomState(7)
    X = rng.normal(size=(900, n_features)) + rng.randint(0, 3, 900)[:, None] * 4.0
    cov = get_covariance(covariance_type)
    gm = GaussianMixture(4, covariance_type=covariance_type, random_state=0).fit(X)
    model = Mixture(
        gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_, cov
    )
    formed = []
    features = _dense.DenseKernel.features

    def counted(self, *args, **kwargs):
        formed.append(1)
        return features(self, *args, **kwargs)

    monkeypatch.setattr(_dense.DenseKernel, "features", counted)

    def m_step(threshold):
        monkeypatch.setattr(_dense, "MAX_EXPANSION", threshold)
        formed.clear()
        # The numpy kernel, whose feature rows are counted (the compiled one,
        # once loaded by an earlier test, forms its own).
        with config_context(engine="numpy"):
            source = TrainingData(X, None, cov, 4, n_jobs=1, chunk_size=128)
        prep = source.dense.prepare(model)
        return len(prep.local), params_from_stats(source.stats(model), cov, 1e-6)

    none_local, want = m_step(np.inf)
    assert none_local == 0 and formed
    # Just below the n_narrow-th widest-reaching component's product: the
    # n_narrow widest go (and with them all, from half of them at 8 features).
    source = TrainingData(X, None, cov, 4, n_jobs=1)
    precision = cov.largest_precision(model.precisions_cholesky, 4)
    reach = precision * (
        ((model.means - source.center) ** 2).sum(axis=1)
        + source.variance_scale * n_features
    )
    n_local, got = m_step(float(np.sort(reach)[-n_narrow]) * (1 - 1e-9))
    everything = n_narrow == 4 or (n_narrow == 2 and n_features == 8)
    assert n_local == (4 if everything else n_narrow)
    assert bool(formed) == (not everything)
    for name in ("weights", "means", "covariances"):
        assert_allclose(getattr(got, name), getattr(want, name), rtol=1e-10)
