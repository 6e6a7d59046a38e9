"""Same initialisation, same answer as sklearn.mixture.GaussianMixture (float64)."""

import warnings

import numpy as np
import pytest
from _helpers import COVARIANCE_TYPES
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from sklearn_em import GaussianMixture
from sklearn_em.datasets import make_three_gaussians

RTOL = 1e-8


def wide_blobs(n_samples=3000, n_features=10, n_components=5, seed=0):
    """d=10, k=5: separated but overlapping anisotropic clusters."""
    rng = np.random.RandomState(seed)
    centers = rng.normal(scale=4.0, size=(n_components, n_features))
    labels = rng.randint(n_components, size=n_samples)
    mixing = rng.normal(size=(n_components, n_features, n_features)) / 2
    noise = rng.normal(size=(n_samples, n_features))
    return centers[labels] + np.einsum(
        "nd,nde->ne", noise, mixing[labels] + np.eye(n_features)
    )


DATASETS = {
    "three_gaussians": lambda: make_three_gaussians(3000, random_state=0)[0],
    "d10_k5": wide_blobs,
}


def shared_start(X, n_components, covariance_type):
    """Initial parameters both libraries start from (a short sklearn k-means fit)."""
    start = SklearnGaussianMixture(
        n_components, covariance_type=covariance_type, max_iter=1, random_state=1
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(X)
    return {
        "weights_init": start.weights_,
        "means_init": start.means_,
        "precisions_init": start.precisions_,
    }


def fit_both(X, n_components, covariance_type, **kwargs):
    init = shared_start(X, n_components, covariance_type)
    params = dict(covariance_type=covariance_type, tol=1e-6, max_iter=300, **init)
    params.update(kwargs)
    ours = GaussianMixture(n_components, **params).fit(X)
    theirs = SklearnGaussianMixture(n_components, **params).fit(X)
    return ours, theirs


@pytest.mark.parametrize("dataset", DATASETS)
def test_fit_from_the_same_start_matches_sklearn(dataset, covariance_type):
    X = DATASETS[dataset]()
    n_components = 3 if dataset == "three_gaussians" else 5
    ours, theirs = fit_both(X, n_components, covariance_type)

    assert ours.converged_ and theirs.converged_
    assert ours.n_iter_ == theirs.n_iter_
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert_allclose(
            getattr(ours, name), getattr(theirs, name), rtol=RTOL, atol=1e-12
        )
    assert_allclose(ours.precisions_, theirs.precisions_, rtol=RTOL)
    assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-10)
    if hasattr(theirs, "lower_bounds_"):  # scikit-learn >= 1.7
        assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-10)
    assert len(ours.lower_bounds_) == ours.n_iter_
    assert_allclose(
        ours.predict_proba(X), theirs.predict_proba(X), rtol=RTOL, atol=1e-12
    )
    assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=RTOL)
    assert_allclose(ours.score(X), theirs.score(X), rtol=1e-10)
    assert_allclose(ours.bic(X), theirs.bic(X), rtol=1e-10)
    assert_allclose(ours.aic(X), theirs.aic(X), rtol=1e-10)
    assert_array_equal(ours.predict(X), theirs.predict(X))
    assert_array_equal(ours.labels_, theirs.predict(X))


# sklearn's 'tied' start from single-row seeds ('k-means++', 'random_from_data')
# uses the scatter of all rows divided by k, which depends on the coordinate
# origin; ours uses each component's own statistics (see
# test_tied_start_from_single_rows_finds_the_clusters_sklearn_misses).
SAME_START_CASES = [
    (covariance_type, init_params)
    for covariance_type in COVARIANCE_TYPES
    for init_params in ["kmeans", "k-means++", "random", "random_from_data"]
    if not (
        covariance_type == "tied" and init_params in ("k-means++", "random_from_data")
    )
]


@pytest.mark.parametrize(("covariance_type", "init_params"), SAME_START_CASES)
def test_same_random_state_gives_sklearn_answer(covariance_type, init_params):
    """Initialisations draw from random_state exactly as sklearn does."""
    X = make_three_gaussians(600, random_state=3)[0]
    params = dict(
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=7,
        n_init=2,
        max_iter=500,
        tol=1e-5,
    )
    ours = GaussianMixture(3, **params).fit(X)
    theirs = SklearnGaussianMixture(3, **params).fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    assert_allclose(ours.means_, theirs.means_, rtol=1e-7)
    assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-7)
    assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-9)


def test_warm_start_continues_like_sklearn(covariance_type):
    X = make_three_gaussians(900, random_state=2)[0]
    init = shared_start(X, 3, covariance_type)
    params = dict(covariance_type=covariance_type, warm_start=True, max_iter=2, **init)
    ours = GaussianMixture(3, **params)
    theirs = SklearnGaussianMixture(3, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            ours.fit(X)
            theirs.fit(X)
            assert_allclose(ours.means_, theirs.means_, rtol=RTOL)
            assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-10)


def test_sample_draws_what_sklearn_draws(covariance_type):
    X = make_three_gaussians(600, random_state=0)[0]
    ours, theirs = fit_both(X, 3, covariance_type, random_state=5)
    X_ours, y_ours = ours.sample(50)
    X_theirs, y_theirs = theirs.sample(50)
    assert_array_equal(y_ours, y_theirs)
    assert_allclose(X_ours, X_theirs, rtol=1e-7)


@pytest.mark.parametrize("init_params", ["k-means++", "random_from_data"])
def test_tied_start_from_single_rows_finds_the_clusters_sklearn_misses(init_params):
    X, _y = make_three_gaussians(600, random_state=3)
    params = dict(
        covariance_type="tied", init_params=init_params, random_state=7, tol=1e-5
    )
    ours = GaussianMixture(3, **params).fit(X)
    theirs = SklearnGaussianMixture(3, **params).fit(X)
    assert ours.lower_bound_ > theirs.lower_bound_ + 0.1
    # sklearn's three means coincide at the data mean; ours are the three clusters.
    assert np.ptp(theirs.means_, axis=0).max() < 0.1
    assert np.ptp(ours.means_, axis=0).min() > 2.0
