"""partial_fit: online (stepwise) EM over running sufficient statistics."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import GaussianMixture
from sklearn_em.datasets import make_three_gaussians


@pytest.fixture(scope="module")
def X():
    return make_three_gaussians(100_000, random_state=0)[0]


def sorted_means(gmm):
    return gmm.means_[np.argsort(gmm.means_[:, 0])]


def test_streaming_batches_of_1000_reaches_the_batch_fit(X, covariance_type):
    batch = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(X)
    online = GaussianMixture(3, covariance_type=covariance_type, random_state=0)
    for start in range(0, len(X), 1000):
        online.partial_fit(X[start : start + 1000])
    assert online.n_iter_ == 100
    # Within 1% of the batch fit's mean log-likelihood per sample.
    assert abs(online.score(X) - batch.score(X)) < 0.01 * abs(batch.score(X))
    assert_allclose(sorted_means(online), sorted_means(batch), atol=0.15)
    assert_allclose(online.weights_.sum(), 1.0)


def test_whole_data_with_unit_steps_is_exactly_batch_em(X, covariance_type):
    """learning_decay=0: every call is one full EM iteration."""
    data = X[:3000]
    start = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(
        data
    )
    init = dict(
        covariance_type=covariance_type,
        weights_init=start.weights_,
        means_init=start.means_ + 0.2,
        precisions_init=start.precisions_,
    )
    online = GaussianMixture(3, learning_decay=0.0, **init)
    for _ in range(7):
        online.partial_fit(data)
    batch = GaussianMixture(3, max_iter=7, tol=0, **init)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        batch.fit(data)
    assert_allclose(online.means_, batch.means_, rtol=1e-10)
    assert_allclose(online.covariances_, batch.covariances_, rtol=1e-10)
    assert_allclose(online.lower_bounds_, batch.lower_bounds_, rtol=1e-10)


def test_repeated_whole_data_calls_approach_the_batch_answer(X):
    """With decaying steps, old statistics fade slowly: close, not exact."""
    data = X[:5000]
    batch = GaussianMixture(3, random_state=0, tol=1e-8).fit(data)
    online = GaussianMixture(3, random_state=0)
    for _ in range(200):
        online.partial_fit(data)
    assert_allclose(sorted_means(online), sorted_means(batch), atol=0.02)
    assert_allclose(online.score(data), batch.score(data), rtol=1e-4)
    bounds = np.array(online.lower_bounds_)
    assert bounds[-1] > bounds[0]


def test_partial_fit_after_fit_continues_from_the_fitted_model(X):
    gmm = GaussianMixture(3, random_state=0).fit(X[:20_000])
    before = gmm.score(X)
    for start in range(20_000, 40_000, 1000):
        gmm.partial_fit(X[start : start + 1000])
    assert gmm.score(X) > before - 1e-3


def test_partial_fit_takes_missing_values_and_weights(X):
    data = X[:20_000].copy()
    data[np.random.RandomState(0).rand(*data.shape) < 0.1] = np.nan
    data[np.isnan(data).all(axis=1), 0] = 0.0
    weights = np.random.RandomState(1).uniform(0.5, 2.0, size=len(data))
    gmm = GaussianMixture(3, random_state=0)
    for start in range(0, len(data), 1000):
        gmm.partial_fit(
            data[start : start + 1000], sample_weight=weights[start : start + 1000]
        )
    assert np.isfinite(gmm.means_).all()
    batch = GaussianMixture(3, random_state=0).fit(X)
    assert_allclose(sorted_means(gmm), sorted_means(batch), atol=0.2)


def test_a_different_number_of_features_between_calls_is_a_clear_error(X):
    gmm = GaussianMixture(3, random_state=0).partial_fit(X[:1000])
    with pytest.raises(ValueError, match="features"):
        gmm.partial_fit(np.c_[X[:1000], X[:1000, :1]])


def test_first_batch_must_be_able_to_initialise_the_model(X):
    with pytest.raises(ValueError, match="n_samples >= max"):
        GaussianMixture(3).partial_fit(X[:2])


def test_later_batches_may_be_a_single_row(X):
    gmm = GaussianMixture(3, random_state=0).partial_fit(X[:1000])
    gmm.partial_fit(X[1000:1001])
    assert gmm.n_iter_ == 2 and np.isfinite(gmm.means_).all()


def test_fit_after_partial_fit_starts_afresh(X):
    gmm = GaussianMixture(3, random_state=0)
    for start in range(0, 5000, 1000):
        gmm.partial_fit(X[start : start + 1000])
    refit = gmm.fit(X[:5000])
    fresh = GaussianMixture(3, random_state=0).fit(X[:5000])
    assert_allclose(refit.means_, fresh.means_)
    assert refit.n_iter_ == fresh.n_iter_
