"""sample_weight: a row of weight w counts as w copies of itself."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning

from sklearn_em import GaussianMixture
from sklearn_em.datasets import make_three_gaussians


@pytest.fixture(scope="module")
def data():
    X = make_three_gaussians(600, random_state=0)[0]
    weights = np.random.RandomState(1).randint(0, 4, size=len(X))
    return X, weights


def start(X, covariance_type):
    """Initial parameters shared by the fits being compared."""
    gmm = GaussianMixture(
        3, covariance_type=covariance_type, max_iter=2, tol=0, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gmm.fit(X)
    return dict(
        covariance_type=covariance_type,
        weights_init=gmm.weights_,
        means_init=gmm.means_,
        precisions_init=gmm.precisions_,
        tol=1e-8,
        max_iter=500,
    )


def assert_same_fit(a, b, rtol=1e-8):
    assert a.n_iter_ == b.n_iter_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=1e-12)
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=1e-10)


def test_integer_weights_equal_repeated_rows(data, covariance_type):
    X, weights = data
    params = start(X, covariance_type)
    weighted = GaussianMixture(3, **params).fit(X, sample_weight=weights)
    repeated = GaussianMixture(3, **params).fit(np.repeat(X, weights, axis=0))
    assert_same_fit(weighted, repeated)
    assert_allclose(
        weighted.score(X, sample_weight=weights),
        repeated.score(np.repeat(X, weights, axis=0)),
    )


def test_zero_weight_equals_dropping_the_row(data, covariance_type):
    X, _ = data
    weights = np.ones(len(X))
    weights[::5] = 0
    params = start(X, covariance_type)
    weighted = GaussianMixture(3, **params).fit(X, sample_weight=weights)
    dropped = GaussianMixture(3, **params).fit(X[weights > 0])
    assert_same_fit(weighted, dropped)


def test_scaling_all_weights_changes_nothing(data, covariance_type):
    X, weights = data
    params = start(X, covariance_type)
    once = GaussianMixture(3, **params).fit(X, sample_weight=weights)
    scaled = GaussianMixture(3, **params).fit(X, sample_weight=weights * 1e3)
    assert_same_fit(once, scaled, rtol=1e-10)


def test_unit_weights_equal_no_weights(data):
    X, _ = data
    a = GaussianMixture(3, random_state=0).fit(X)
    b = GaussianMixture(3, random_state=0).fit(X, sample_weight=np.ones(len(X)))
    assert_same_fit(a, b, rtol=1e-12)


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random_from_data"])
def test_initialisations_ignore_rows_of_zero_weight(init_params):
    """A far-away group of zero-weight rows never attracts a component."""
    X, _ = make_three_gaussians(600, random_state=0)
    outliers = np.full((300, 2), 1e3)
    weights = np.r_[np.ones(len(X)), np.zeros(len(outliers))]
    gmm = GaussianMixture(3, init_params=init_params, random_state=0)
    gmm.fit(np.vstack([X, outliers]), sample_weight=weights)
    assert np.abs(gmm.means_).max() < 20


def test_weighted_score_is_the_weighted_mean_of_score_samples(data):
    X, weights = data
    gmm = GaussianMixture(3, random_state=0).fit(X)
    expected = np.average(gmm.score_samples(X), weights=weights)
    assert_allclose(gmm.score(X, sample_weight=weights), expected)


def test_fit_predict_accepts_weights_and_matches_predict(data):
    X, weights = data
    gmm = GaussianMixture(3, random_state=0)
    labels = gmm.fit_predict(X, sample_weight=weights)
    assert_array_equal(labels, gmm.predict(X))


BAD_WEIGHTS = {
    "negative": (lambda n: np.r_[-1.0, np.ones(n - 1)], "(?i)negative"),
    "nan": (lambda n: np.r_[np.nan, np.ones(n - 1)], "NaN"),
    "infinite": (lambda n: np.r_[np.inf, np.ones(n - 1)], "infinity"),
    "too short": (lambda n: np.ones(n - 1), "shape"),
    "two-dimensional": (lambda n: np.ones((n, 2)), "1 or 2 dimensions|1D|shape"),
    "all zero": (lambda n: np.zeros(n), "non-zero|positive"),
}


@pytest.mark.parametrize("case", BAD_WEIGHTS)
def test_bad_weights_raise_a_clear_value_error(data, case):
    X, _ = data
    make, message = BAD_WEIGHTS[case]
    with pytest.raises(ValueError, match=message):
        GaussianMixture(3).fit(X, sample_weight=make(len(X)))


def test_weights_are_not_modified(data):
    X, weights = data
    original = weights.copy()
    GaussianMixture(3, random_state=0).fit(X, sample_weight=weights)
    assert_array_equal(weights, original)
