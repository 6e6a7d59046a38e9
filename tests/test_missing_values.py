"""Missing values (NaN): exact EM on the observed coordinates."""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import optimize, stats
from scipy.optimize import linear_sum_assignment
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from sklearn_em import GaussianMixture
from sklearn_em._covariance import get_covariance
from sklearn_em._data import TrainingData
from sklearn_em.datasets import make_three_gaussians

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def remove_at_random(X, fraction, seed=0):
    """X with ``fraction`` of its values set to NaN, never a whole row."""
    rng = np.random.RandomState(seed)
    mask = rng.rand(*X.shape) < fraction
    mask[mask.all(axis=1), 0] = False
    X = X.copy()
    X[mask] = np.nan
    return X


def parameter_error(fitted, reference):
    """Largest absolute difference of means and covariances, components matched."""
    cost = ((fitted.means_[:, None] - reference.means_[None]) ** 2).sum(axis=-1)
    rows, cols = linear_sum_assignment(cost)
    full = {
        "tied": lambda g: np.broadcast_to(g.covariances_, (3, 2, 2)),
    }.get(fitted.covariance_type, lambda g: g.covariances_)
    return max(
        np.abs(fitted.means_[rows] - reference.means_[cols]).max(),
        np.abs(full(fitted)[rows] - full(reference)[cols]).max(),
    )


@pytest.fixture(scope="module")
def X():
    return make_three_gaussians(3000, random_state=0)[0]


def test_complete_data_takes_the_fast_path_uncopied(X):
    data = TrainingData(X, None, get_covariance("full"), 3)
    assert data.X is X and data.init_view() is X
    assert not data.has_missing and data.missing is None


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_lower_bound_never_decreases_with_missing_values(X, covariance_type):
    gmm = GaussianMixture(
        3, covariance_type=covariance_type, tol=1e-10, max_iter=300, random_state=0
    ).fit(remove_at_random(X, 0.3))
    bounds = np.array(gmm.lower_bounds_)
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))
    assert np.isfinite(gmm.means_).all() and np.isfinite(gmm.covariances_).all()


@pytest.mark.parametrize("fraction", [0.1, 0.3])
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_parameters_stay_close_to_the_complete_data_fit(X, fraction, covariance_type):
    """Far closer than mean imputation followed by sklearn's GaussianMixture."""
    params = dict(covariance_type=covariance_type, tol=1e-8, max_iter=1000)
    complete = GaussianMixture(3, random_state=0, **params).fit(X)
    X_missing = remove_at_random(X, fraction)
    ours = GaussianMixture(3, random_state=0, **params).fit(X_missing)
    imputed = np.where(np.isnan(X_missing), np.nanmean(X_missing, axis=0), X_missing)
    theirs = SklearnGaussianMixture(3, random_state=0, **params).fit(imputed)
    ours_error = parameter_error(ours, complete)
    imputation_error = parameter_error(theirs, complete)
    assert ours_error < {0.1: 0.2, 0.3: 0.4}[fraction]
    assert ours_error < imputation_error / 3


def test_one_component_is_the_maximum_likelihood_estimate():
    """Checked against direct numerical maximisation of the observed likelihood."""
    rng = np.random.RandomState(0)
    X = rng.multivariate_normal([1.0, -2.0], [[2.0, 0.8], [0.8, 1.0]], size=400)
    X = remove_at_random(X, 0.25, seed=1)

    def negative_log_likelihood(theta):
        mean = theta[:2]
        chol = np.array([[np.exp(theta[2]), 0.0], [theta[3], np.exp(theta[4])]])
        cov = chol @ chol.T
        total = 0.0
        for seen in np.unique(~np.isnan(X), axis=0):
            rows = X[(~np.isnan(X) == seen).all(axis=1)][:, seen]
            marginal = stats.multivariate_normal(mean[seen], cov[np.ix_(seen, seen)])
            total += np.sum(marginal.logpdf(rows))
        return -total

    best = optimize.minimize(
        negative_log_likelihood, x0=np.zeros(5), method="BFGS", options={"gtol": 1e-9}
    )
    mean = best.x[:2]
    chol = np.array([[np.exp(best.x[2]), 0.0], [best.x[3], np.exp(best.x[4])]])
    gmm = GaussianMixture(1, reg_covar=0, tol=1e-12, max_iter=5000).fit(X)
    assert_allclose(gmm.means_[0], mean, atol=1e-4)
    assert_allclose(gmm.covariances_[0], chol @ chol.T, atol=1e-4)
    assert_allclose(gmm.lower_bound_ * len(X), -best.fun, rtol=1e-7)


def test_inference_uses_the_marginal_of_the_observed_coordinates(X):
    gmm = GaussianMixture(3, random_state=0).fit(X)
    rows = np.array([[np.nan, 4.0], [2.0, np.nan], [1.0, 1.0]])
    expected_density = np.zeros(len(rows))
    for k in range(3):
        for i, row in enumerate(rows):
            seen = ~np.isnan(row)
            expected_density[i] += gmm.weights_[k] * stats.multivariate_normal(
                gmm.means_[k][seen], gmm.covariances_[k][np.ix_(seen, seen)]
            ).pdf(row[seen])
    assert_allclose(gmm.score_samples(rows), np.log(expected_density), rtol=1e-10)
    resp = gmm.predict_proba(rows)
    assert_allclose(resp.sum(axis=1), 1.0)
    assert_array_equal(gmm.predict(rows), resp.argmax(axis=1))


def test_integer_weights_equal_repeated_rows_with_missing_values(X):
    X_missing = remove_at_random(X[:600], 0.2)
    weights = np.random.RandomState(2).randint(0, 3, size=len(X_missing))
    start = GaussianMixture(3, random_state=0).fit(X[:600])
    params = dict(
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
        tol=1e-8,
    )
    weighted = GaussianMixture(3, **params).fit(X_missing, sample_weight=weights)
    repeated = GaussianMixture(3, **params).fit(np.repeat(X_missing, weights, axis=0))
    assert weighted.n_iter_ == repeated.n_iter_
    assert_allclose(weighted.means_, repeated.means_, rtol=1e-8)
    assert_allclose(weighted.covariances_, repeated.covariances_, rtol=1e-8)


def test_a_row_with_every_value_missing_is_ignored_in_fit(X):
    """It carries no information: the fit equals the fit without it."""
    X_empty = X[:500].copy()
    X_empty[[7, 100]] = np.nan
    with pytest.warns(UserWarning, match=r"2 row\(s\) of X have every feature"):
        gmm = GaussianMixture(3, random_state=0).fit(X_empty)
    kept = np.delete(X_empty, [7, 100], axis=0)
    alone = GaussianMixture(3, random_state=0).fit(kept)
    assert_allclose(
        np.sort(gmm.means_, axis=0), np.sort(alone.means_, axis=0), atol=1e-6
    )
    assert np.isfinite(gmm.lower_bound_)


def test_a_row_with_every_value_missing_is_predicted_by_the_weights(X):
    gmm = GaussianMixture(3, random_state=0).fit(X)
    empty = np.full((2, 2), np.nan)
    assert_allclose(gmm.predict_proba(empty), np.tile(gmm.weights_, (2, 1)))
    # log of the weights' sum, 1 to rounding.
    assert_allclose(gmm.score_samples(empty), [0.0, 0.0], rtol=0, atol=5e-16)
    assert_array_equal(gmm.predict(empty), [gmm.weights_.argmax()] * 2)


def test_data_with_nothing_observed_is_a_clear_error():
    with pytest.raises(ValueError, match="every feature missing"):
        GaussianMixture(2).fit(np.full((10, 2), np.nan))


def test_infinite_values_are_still_rejected(X):
    X_bad = X[:50].copy()
    X_bad[3, 1] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        GaussianMixture(3).fit(X_bad)


def test_input_with_missing_values_is_not_modified(X):
    X_missing = remove_at_random(X[:500], 0.2)
    original = X_missing.copy()
    gmm = GaussianMixture(3, random_state=0).fit(X_missing)
    gmm.predict_proba(X_missing)
    assert_array_equal(X_missing, original)


def _fit_peak(X, **params):
    import tracemalloc

    from sklearn_em import _engine

    # A large fit may start loading the compiled kernel in the background;
    # its allocations are not the fit's.
    _engine.preload(X.dtype)
    tracemalloc.start()
    with pytest.warns(ConvergenceWarning):
        GaussianMixture(3, max_iter=3, tol=0, random_state=0, **params).fit(X)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


@pytest.mark.parametrize("init_params", ["random", "random_from_data"])
def test_missing_values_add_no_memory_that_grows_with_n(init_params):
    """NaN rows cost no copy of X, in the E-steps or in an initialisation that
    does not run k-means: the peak is that of the complete data, within the
    chunk buffers (the arrays of one entry per row, labels and starting
    responsibilities, are the same for both)."""
    rng = np.random.RandomState(0)
    X = rng.randn(400_000, 4) + 4.0 * rng.randint(0, 3, 400_000)[:, None]
    X_nan = X.copy()
    X_nan[rng.rand(*X.shape) < 0.1] = np.nan
    X_nan[np.isnan(X_nan).all(axis=1), 0] = 0.0
    complete = _fit_peak(X, init_params=init_params)
    missing = _fit_peak(X_nan, init_params=init_params)
    assert missing < complete + 2 * 2**20, (missing / 2**20, complete / 2**20)
