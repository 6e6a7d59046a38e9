"""Hard but valid data: a correct fit, or a clear error where none exists."""

import copy
import pickle
import warnings

import joblib
import numpy as np
import pytest
from _helpers import collapsing_spike
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from sklearn_em import DegenerateComponentWarning, GaussianMixture
from sklearn_em.datasets import make_three_gaussians


@pytest.fixture(scope="module")
def Z():
    """Centred, unit-scale 3-Gaussian data."""
    X = make_three_gaussians(2000, random_state=0)[0]
    return (X - X.mean(axis=0)) / X.std()


def scale_covariances(covariances, scale):
    return covariances * scale**2


@pytest.mark.parametrize(
    ("offset", "scale", "tolerance"),
    [(1e8, 1.0, 1e-6), (0.0, 1e-8, 1e-9), (0.0, 1e8, 1e-9), (1e4, 1e3, 1e-9)],
)
def test_affine_map_of_the_data_maps_the_fit(
    Z, covariance_type, offset, scale, tolerance
):
    """Fitting a + s*Z equals fitting Z and mapping back (reg_covar scaled by s^2).

    ``tolerance`` is relative to the unit scale: at an offset of 1e8 the data
    themselves are rounded to ~1.5e-8.
    """
    start = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(Z)
    init = dict(weights_init=start.weights_, tol=1e-9, max_iter=500)
    base = GaussianMixture(
        3,
        covariance_type=covariance_type,
        means_init=start.means_,
        precisions_init=start.precisions_,
        **init,
    ).fit(Z)
    mapped = GaussianMixture(
        3,
        covariance_type=covariance_type,
        reg_covar=1e-6 * scale**2,
        means_init=offset + scale * start.means_,
        precisions_init=start.precisions_ / scale**2,
        **init,
    ).fit(offset + scale * Z)
    assert mapped.n_iter_ == base.n_iter_
    assert_allclose(mapped.weights_, base.weights_, atol=tolerance)
    assert_allclose((mapped.means_ - offset) / scale, base.means_, atol=tolerance)
    assert_allclose(mapped.covariances_ / scale**2, base.covariances_, atol=tolerance)
    assert_allclose(
        mapped.lower_bound_ + Z.shape[1] * np.log(scale),
        base.lower_bound_,
        atol=tolerance,
    )


def test_far_from_origin_we_keep_more_digits_than_sklearn(Z):
    start = GaussianMixture(3, random_state=0).fit(Z)
    params = dict(
        weights_init=start.weights_, precisions_init=start.precisions_, tol=1e-9
    )
    base = GaussianMixture(3, means_init=start.means_, **params).fit(Z)
    ours = GaussianMixture(3, means_init=start.means_ + 1e8, **params).fit(Z + 1e8)
    theirs = SklearnGaussianMixture(3, means_init=start.means_ + 1e8, **params).fit(
        Z + 1e8
    )
    our_error = np.abs(ours.covariances_ - base.covariances_).max()
    their_error = np.abs(theirs.covariances_ - base.covariances_).max()
    assert our_error < 1e-6
    assert our_error < their_error / 10


def test_collapsing_component_is_reseeded_where_sklearn_fails():
    """A component started as a spike on one row collapses onto it (reg_covar=0)."""
    X, params = collapsing_spike()
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        SklearnGaussianMixture(3, **params).fit(X)
    with pytest.warns(DegenerateComponentWarning, match="re-seeded"):
        gmm = GaussianMixture(3, **params).fit(X)
    assert gmm.converged_
    # The re-seeded component found the third cluster.
    assert_allclose(gmm.means_[np.argsort(gmm.means_[:, 0])][-1], [8, 0], atol=0.2)
    assert_allclose(gmm.weights_.sum(), 1.0)
    assert np.all(np.linalg.eigvalsh(gmm.covariances_) > 0)
    bounds = np.array(gmm.lower_bounds_)
    # Monotone from the re-seeded start on.
    assert np.all(np.diff(bounds[1:]) >= -1e-12 * np.abs(bounds[2:]))


def test_components_that_keep_collapsing_end_in_a_clear_error():
    """30 copies of one point and reg_covar=0: every fit that gives them a
    component of their own is degenerate; after 2k re-seeds we give up."""
    rng = np.random.RandomState(0)
    X = np.vstack(
        [
            rng.randn(200, 2),
            np.tile([[5.0, 5.0]], (30, 1)),
            rng.randn(200, 2) + np.array([0, 8]),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="ill-defined empirical covariance"):
            GaussianMixture(
                4, reg_covar=0.0, random_state=0, init_params="random", max_iter=300
            ).fit(X)


@pytest.mark.parametrize(
    "make_data",
    [
        pytest.param(lambda: np.ones((50, 3)), id="all rows identical"),
        pytest.param(
            lambda: np.c_[np.random.RandomState(0).randn(100, 2), np.full(100, 7.0)],
            id="constant feature",
        ),
    ],
)
def test_data_without_any_valid_fit_is_a_clear_error(make_data):
    with warnings.catch_warnings():
        # k-means warns first that it found fewer distinct points than clusters.
        warnings.simplefilter("ignore", ConvergenceWarning)
        with pytest.raises(ValueError, match="ill-defined empirical covariance"):
            GaussianMixture(2, reg_covar=0.0, random_state=0).fit(make_data())


DEGENERATE = {
    "duplicated points": lambda rng: np.repeat(rng.randn(50, 2), 10, axis=0),
    "constant feature": lambda rng: np.c_[rng.randn(300, 2), np.full(300, 7.0)],
    "points on a line": lambda rng: np.c_[np.arange(300.0), 2 * np.arange(300.0) + 1],
    "more features than rows": lambda rng: rng.randn(20, 50),
    "very different cluster sizes": lambda rng: np.vstack(
        [
            rng.randn(2000, 2),
            rng.randn(10, 2) * 0.1 + [6, 6],
            rng.randn(300, 2) + np.array([0, 6]),
        ]
    ),
}


@pytest.mark.parametrize("case", DEGENERATE)
def test_degenerate_data_with_default_regularisation_fits_like_sklearn(
    case, covariance_type
):
    X = DEGENERATE[case](np.random.RandomState(0))
    params = dict(covariance_type=covariance_type, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = GaussianMixture(3, **params).fit(X)
        theirs = SklearnGaussianMixture(3, **params).fit(X)
    assert np.isfinite(ours.covariances_).all()
    # Near-singular covariances (condition numbers up to ~1e11) make the last
    # digits depend on summation order; both libraries agree to 1e-4.
    assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-4)


def test_one_component_per_sample_is_a_valid_fit():
    X = np.random.RandomState(0).randn(6, 2)
    gmm = GaussianMixture(6, random_state=0).fit(X)
    assert_allclose(np.sort(gmm.means_, axis=0), np.sort(X, axis=0))


def test_five_hundred_dimensions():
    X = np.random.RandomState(0).randn(400, 500)
    X[:200] += 3.0
    gmm = GaussianMixture(2, covariance_type="full", random_state=0).fit(X)
    theirs = SklearnGaussianMixture(2, covariance_type="full", random_state=0).fit(X)
    assert_allclose(gmm.lower_bound_, theirs.lower_bound_, rtol=1e-8)


def test_tiny_regularisation(Z):
    gmm = GaussianMixture(3, reg_covar=1e-15, random_state=0).fit(Z)
    theirs = SklearnGaussianMixture(3, reg_covar=1e-15, random_state=0).fit(Z)
    assert_allclose(gmm.means_, theirs.means_, rtol=1e-8)


def test_non_convergence_warns_and_reports_honestly(Z):
    gmm = GaussianMixture(3, max_iter=2, tol=0, random_state=0)
    with pytest.warns(ConvergenceWarning, match="did not converge"):
        gmm.fit(Z)
    assert gmm.n_iter_ == 2 and not gmm.converged_
    assert len(gmm.lower_bounds_) == 2


def test_same_random_state_is_bit_identical_across_n_init(Z):
    params = dict(n_init=3, init_params="k-means++", random_state=11)
    a = GaussianMixture(4, **params).fit(Z)
    b = GaussianMixture(4, **params).fit(Z)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.lower_bound_ == b.lower_bound_


@pytest.mark.parametrize(
    "round_trip",
    [
        pytest.param(lambda est, tmp: pickle.loads(pickle.dumps(est)), id="pickle"),
        pytest.param(lambda est, tmp: copy.deepcopy(est), id="deepcopy"),
        pytest.param(
            lambda est, tmp: joblib.load(joblib.dump(est, tmp / "model.joblib")[0]),
            id="joblib",
        ),
    ],
)
def test_round_trips_predict_identically(Z, tmp_path, round_trip):
    gmm = GaussianMixture(3, random_state=0).fit(Z)
    restored = round_trip(gmm, tmp_path)
    assert_array_equal(restored.predict_proba(Z), gmm.predict_proba(Z))
    assert_array_equal(restored.score_samples(Z), gmm.score_samples(Z))
