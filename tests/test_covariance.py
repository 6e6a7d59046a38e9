"""The covariance module on its own: each covariance type against its definition.

``sklearn_em._covariance`` is the only module that knows how the covariance
types differ; the EM engine only multiplies feature rows ``[1, y, f2(y)]`` by
the matrices it builds. Every test here checks one of its operations against
an independent reference (scipy's Gaussian density, numpy's weighted
covariance, scikit-learn's own helpers, plain linear algebra), for all four
types, on random parameters drawn from a seeded generator.
"""

import re

import numpy as np
import pytest
from _helpers import COVARIANCE_TYPES, as_full_stack
from numpy.testing import assert_allclose
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture
from sklearn.mixture._gaussian_mixture import (
    _compute_precision_cholesky,
    _estimate_gaussian_parameters,
)

from sklearn_em import _covariance
from sklearn_em._covariance import IllDefinedCovariance, get_covariance

N_COMPONENTS = 3
N_FEATURES = 3


@pytest.fixture
def covariance(covariance_type):
    return get_covariance(covariance_type)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# -- references written without the module under test ---------------------------------
def random_spd(rng, n_features):
    """A well-conditioned symmetric positive-definite matrix."""
    a = rng.standard_normal((n_features, n_features))
    return a @ a.T / n_features + 0.5 * np.eye(n_features)


def random_covariances(rng, covariance_type, n_components, n_features):
    """Covariances of random components, in the stored shape of the type."""
    if covariance_type == "full":
        return np.stack([random_spd(rng, n_features) for _ in range(n_components)])
    if covariance_type == "tied":
        return random_spd(rng, n_features)
    if covariance_type == "diag":
        return rng.uniform(0.2, 3.0, (n_components, n_features))
    return rng.uniform(0.2, 3.0, n_components)


def features(covariance, y):
    """Feature rows ``[1, y, f2(y)]`` of centred rows ``y`` (d, m): (q, m)."""
    n_features, m = y.shape
    # NaN-filled, so a feature row the module forgets to write shows up.
    second = np.full((covariance.n_second_order(n_features), m), np.nan)
    covariance.second_order_features(y, second)
    return np.vstack([np.ones((1, m)), y, second])


# -- the types -------------------------------------------------------------------------
def test_the_library_knows_exactly_sklearns_four_covariance_types():
    assert tuple(_covariance.COVARIANCE_TYPES) == COVARIANCE_TYPES


def test_get_covariance_returns_the_operations_of_the_named_type(covariance_type):
    covariance = get_covariance(covariance_type)

    assert covariance.name == covariance_type
    assert covariance is _covariance.COVARIANCE_TYPES[covariance_type]


def test_get_covariance_rejects_an_unknown_name_and_lists_the_known_ones():
    with pytest.raises(ValueError, match=re.escape("one of ['diag', 'full',")):
        get_covariance("banana")


# -- features --------------------------------------------------------------------------
def test_second_order_features_are_the_products_the_type_needs(
    covariance, covariance_type, rng
):
    y = rng.standard_normal((N_FEATURES, 7))
    rows, cols = np.triu_indices(N_FEATURES)
    expected = {
        # y_a * y_b for a <= b, row-major over the upper triangle.
        "full": y[rows] * y[cols],
        "tied": y[rows] * y[cols],
        "diag": y**2,
        "spherical": (y**2).sum(axis=0, keepdims=True),
    }[covariance_type]

    assert covariance.n_second_order(N_FEATURES) == len(expected)
    assert covariance.n_features_total(N_FEATURES) == 1 + N_FEATURES + len(expected)
    assert_allclose(features(covariance, y)[1 + N_FEATURES :], expected, rtol=1e-15)


def test_second_order_of_a_scatter_matrix_is_the_sum_of_the_features(covariance, rng):
    # What lets conditional covariances of missing values be added to the
    # summed statistics as if they were rows.
    y = rng.standard_normal((N_FEATURES, 50))

    summed = features(covariance, y)[1 + N_FEATURES :].sum(axis=1)

    assert_allclose(covariance.second_order_of(y @ y.T), summed, rtol=1e-12)


def test_second_order_of_a_stack_of_matrices_is_taken_matrix_by_matrix(covariance, rng):
    # Used to move the statistics of every component to another centre at once.
    stack = np.stack([random_spd(rng, N_FEATURES) for _ in range(N_COMPONENTS)])

    stacked = covariance.second_order_of(stack)

    assert stacked.shape == (N_COMPONENTS, covariance.n_second_order(N_FEATURES))
    for matrix, row in zip(stack, stacked, strict=True):
        assert_allclose(row, covariance.second_order_of(matrix), rtol=1e-15)


# -- parameters -> log-density ---------------------------------------------------------
@pytest.mark.parametrize("n_features", [1, N_FEATURES])
def test_log_prob_weights_times_features_is_the_weighted_log_density(
    covariance, covariance_type, rng, n_features
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, n_features)
    means = 3.0 * rng.standard_normal((N_COMPONENTS, n_features))
    weights = rng.dirichlet(np.ones(N_COMPONENTS))
    # The statistics are taken about a fixed centre, not the origin.
    centre = rng.standard_normal(n_features)
    X = means[rng.integers(N_COMPONENTS, size=40)] + rng.standard_normal(
        (40, n_features)
    )

    W = covariance.log_prob_weights(
        np.log(weights), means - centre, covariance.precisions_cholesky(covariances)
    )
    log_density = W @ features(covariance, (X - centre).T)

    full = as_full_stack(covariances, covariance_type, N_COMPONENTS, n_features)
    expected = np.stack(
        [
            np.log(w) + multivariate_normal(mean, cov).logpdf(X)
            for w, mean, cov in zip(weights, means, full, strict=True)
        ]
    )
    assert W.shape == (N_COMPONENTS, covariance.n_features_total(n_features))
    assert_allclose(log_density, expected, rtol=1e-10, atol=1e-10)


# -- statistics -> parameters ----------------------------------------------------------
@pytest.mark.parametrize("responsibilities", ["hard", "soft"])
def test_covariances_from_moments_are_the_weighted_sample_covariances(
    covariance, covariance_type, rng, responsibilities
):
    n_samples, reg_covar = 300, 1e-3
    X = rng.standard_normal((n_samples, N_FEATURES)) @ random_spd(rng, N_FEATURES)
    X += 5.0
    sample_weight = rng.uniform(0.5, 2.0, n_samples)
    if responsibilities == "hard":
        resp = np.eye(N_COMPONENTS)[rng.permutation(n_samples) % N_COMPONENTS]
    else:
        resp = rng.dirichlet(np.ones(N_COMPONENTS), size=n_samples)
    weighted_resp = resp * sample_weight[:, None]
    centre = X.mean(axis=0) + rng.standard_normal(N_FEATURES)

    # Responsibility- and sample-weighted sums of [1, y, f2(y)], as EM forms them.
    moments = weighted_resp.T @ features(covariance, (X - centre).T).T
    nk = moments[:, 0]
    centred_means = moments[:, 1 : 1 + N_FEATURES] / nk[:, None]
    covariances = covariance.covariances_from_moments(
        nk, centred_means, moments[:, 1 + N_FEATURES :], reg_covar
    )

    means = np.stack(
        [np.average(X, axis=0, weights=w) for w in weighted_resp.T], axis=0
    )
    per_component = np.stack(
        [np.cov(X.T, aweights=w, bias=True) for w in weighted_resp.T]
    )
    variances = np.diagonal(per_component, axis1=1, axis2=2)
    expected = {
        "full": per_component + reg_covar * np.eye(N_FEATURES),
        # Within-component scatter pooled over the total weight.
        "tied": np.tensordot(nk, per_component, axes=1) / nk.sum()
        + reg_covar * np.eye(N_FEATURES),
        "diag": variances + reg_covar,
        "spherical": variances.mean(axis=1) + reg_covar,
    }[covariance_type]
    assert_allclose(centred_means + centre, means, rtol=1e-12)
    assert covariances.shape == covariance.shape(N_COMPONENTS, N_FEATURES)
    assert_allclose(covariances, expected, rtol=1e-10, atol=1e-12)


def test_covariances_from_moments_match_sklearns_m_step(
    covariance, covariance_type, rng
):
    # Unweighted rows with responsibilities summing to one: where sklearn's
    # 'tied' estimate (scatter of all rows) equals the pooled one.
    n_samples, reg_covar = 300, 1e-6
    X = rng.standard_normal((n_samples, N_FEATURES)) @ random_spd(rng, N_FEATURES)
    resp = rng.dirichlet(np.ones(N_COMPONENTS), size=n_samples)
    centre = X.mean(axis=0)

    moments = resp.T @ features(covariance, (X - centre).T).T
    nk = moments[:, 0]
    centred_means = moments[:, 1 : 1 + N_FEATURES] / nk[:, None]
    covariances = covariance.covariances_from_moments(
        nk, centred_means, moments[:, 1 + N_FEATURES :], reg_covar
    )

    _, means, expected = _estimate_gaussian_parameters(
        X, resp, reg_covar, covariance_type
    )
    assert_allclose(centred_means + centre, means, rtol=1e-10)
    assert_allclose(covariances, expected, rtol=1e-10)


# -- precision Cholesky factors --------------------------------------------------------
def test_precisions_cholesky_is_sklearns_upper_factor_of_the_precision(
    covariance, covariance_type, rng
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)

    U = covariance.precisions_cholesky(covariances)

    assert_allclose(
        U,
        _compute_precision_cholesky(covariances, covariance_type),
        rtol=1e-12,
        atol=1e-15,
    )
    matrices = covariance.cholesky_matrices(U, N_COMPONENTS, N_FEATURES)
    assert matrices.shape == (N_COMPONENTS, N_FEATURES, N_FEATURES)
    # Upper-triangular, with U U^T = Sigma^-1.
    assert np.all(np.tril(matrices, k=-1) == 0.0)
    full = as_full_stack(covariances, covariance_type, N_COMPONENTS, N_FEATURES)
    assert_allclose(
        matrices @ np.swapaxes(matrices, 1, 2), np.linalg.inv(full), rtol=1e-12
    )


def test_precisions_cholesky_factors_and_covariances_convert_back_and_forth(
    covariance, covariance_type, rng
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)
    U = covariance.precisions_cholesky(covariances)

    precisions = covariance.precisions_from_cholesky(U)

    assert precisions.shape == covariances.shape
    assert_allclose(
        as_full_stack(precisions, covariance_type, N_COMPONENTS, N_FEATURES),
        np.linalg.inv(
            as_full_stack(covariances, covariance_type, N_COMPONENTS, N_FEATURES)
        ),
        rtol=1e-12,
    )
    assert_allclose(covariance.cholesky_from_precisions(precisions), U, rtol=1e-10)
    assert_allclose(
        covariance.covariances_from_precisions(precisions), covariances, rtol=1e-10
    )


def test_log_det_cholesky_is_half_the_log_determinant_of_the_precision(
    covariance, covariance_type, rng
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)
    full = as_full_stack(covariances, covariance_type, N_COMPONENTS, N_FEATURES)
    sign, log_det_covariance = np.linalg.slogdet(full)
    assert np.all(sign == 1.0)

    log_det = covariance.log_det_cholesky(
        covariance.precisions_cholesky(covariances), N_FEATURES
    )

    # 'tied' gives the one value all components share; it broadcasts.
    assert_allclose(
        np.broadcast_to(log_det, (N_COMPONENTS,)),
        -0.5 * log_det_covariance,
        rtol=1e-12,
    )


def test_largest_precision_bounds_each_components_largest_precision_eigenvalue(
    covariance, covariance_type, rng
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)
    full = as_full_stack(covariances, covariance_type, N_COMPONENTS, N_FEATURES)
    largest_eigenvalue = np.linalg.eigvalsh(np.linalg.inv(full))[:, -1]

    bound = covariance.largest_precision(
        covariance.precisions_cholesky(covariances), N_COMPONENTS
    )

    assert bound.shape == (N_COMPONENTS,)
    assert np.all(bound >= largest_eigenvalue * (1.0 - 1e-12))
    # A useful bound for collapse detection: within the trace, <= d times it.
    assert np.all(bound <= N_FEATURES * largest_eigenvalue * (1.0 + 1e-12))


# -- shapes and counting ---------------------------------------------------------------
@pytest.mark.parametrize(("n_components", "n_features"), [(1, 1), (3, 2), (4, 5)])
def test_shape_is_sklearns_shape_of_covariances(
    covariance, covariance_type, n_components, n_features
):
    expected = {
        "full": (n_components, n_features, n_features),
        "tied": (n_features, n_features),
        "diag": (n_components, n_features),
        "spherical": (n_components,),
    }[covariance_type]

    assert covariance.shape(n_components, n_features) == expected


@pytest.mark.parametrize(("n_components", "n_features"), [(1, 1), (3, 2), (4, 5)])
def test_n_covariance_parameters_is_sklearns_count(
    covariance, covariance_type, n_components, n_features
):
    sklearn_gmm = SklearnGaussianMixture(n_components, covariance_type=covariance_type)
    sklearn_gmm.means_ = np.zeros((n_components, n_features))
    # sklearn counts every free parameter: covariances, means and k - 1 weights.
    n_other = n_components * n_features + n_components - 1

    n_parameters = covariance.n_covariance_parameters(n_components, n_features)

    assert n_parameters == sklearn_gmm._n_parameters() - n_other


def test_full_covariances_expand_the_stored_shape_to_a_stack_of_matrices(
    covariance, covariance_type, rng
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)

    full = covariance.full_covariances(covariances, N_COMPONENTS, N_FEATURES)

    assert full.shape == (N_COMPONENTS, N_FEATURES, N_FEATURES)
    assert_allclose(
        full, as_full_stack(covariances, covariance_type, N_COMPONENTS, N_FEATURES)
    )


# -- invalid covariances and precisions ------------------------------------------------
def _break(covariances, covariance_type, component, how):
    """Covariances with ``component`` (all of them for 'tied') made invalid."""
    broken = covariances.copy()
    bad_matrix = {
        "indefinite": np.diag([1.0, -1.0, 1.0]),
        "singular": np.ones((N_FEATURES, N_FEATURES)),
        "nan": np.full((N_FEATURES, N_FEATURES), np.nan),
    }[how]
    bad_variance = {"indefinite": -1.0, "singular": 0.0, "nan": np.nan}[how]
    if covariance_type == "full":
        broken[component] = bad_matrix
    elif covariance_type == "tied":
        broken[...] = bad_matrix
    elif covariance_type == "diag":
        broken[component, 1] = bad_variance
    else:
        broken[component] = bad_variance
    return broken


@pytest.mark.parametrize("how", ["indefinite", "singular", "nan"])
def test_precisions_cholesky_names_the_components_that_are_not_positive_definite(
    covariance, covariance_type, rng, how
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)
    broken = _break(covariances, covariance_type, component=1, how=how)

    with pytest.raises(IllDefinedCovariance, match="ill-defined empirical") as error:
        covariance.precisions_cholesky(broken)

    if covariance_type == "tied":
        # One shared matrix: every component is ill-defined.
        assert np.all(error.value.components)
    else:
        assert error.value.components.tolist() == [False, True, False]


def test_ill_defined_covariance_is_a_value_error():
    # What sklearn raises for the same failure; callers catch ValueError.
    assert issubclass(IllDefinedCovariance, ValueError)


def test_check_precisions_accepts_the_precisions_of_valid_covariances(
    covariance, covariance_type, rng
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)

    precisions = covariance.precisions_from_cholesky(
        covariance.precisions_cholesky(covariances)
    )

    covariance.check_precisions(precisions)


def _invalid_precisions(covariance_type):
    """(what is wrong, precisions) pairs, each valid but for one component."""
    eye = np.eye(N_FEATURES)
    asymmetric = eye.copy()
    asymmetric[0, 1] = 0.5
    indefinite = np.diag([1.0, -1.0, 1.0])
    singular = np.ones((N_FEATURES, N_FEATURES))
    if covariance_type == "full":
        return [
            (name, np.stack([eye, matrix, eye]))
            for name, matrix in [
                ("asymmetric", asymmetric),
                ("indefinite", indefinite),
                ("singular", singular),
            ]
        ]
    if covariance_type == "tied":
        return [
            ("asymmetric", asymmetric),
            ("indefinite", indefinite),
            ("singular", singular),
        ]
    shape = (N_COMPONENTS, N_FEATURES) if covariance_type == "diag" else N_COMPONENTS
    ones = np.ones(shape)
    cases = []
    for name, value in [("zero", 0.0), ("negative", -1.0)]:
        precisions = ones.copy()
        precisions[1] = value
        cases.append((name, precisions))
    return cases


def test_check_precisions_rejects_precisions_that_are_not_spd_or_not_positive(
    covariance, covariance_type
):
    requirement = (
        "symmetric, positive-definite"
        if covariance_type in ("full", "tied")
        else "positive"
    )
    message = re.escape(f"'{covariance_type} precision' should be {requirement}")

    for what, precisions in _invalid_precisions(covariance_type):
        with pytest.raises(ValueError, match=message):
            covariance.check_precisions(precisions)
            # Not reached when it raises; names the case when it does not.
            pytest.fail(f"accepted {what} precisions")


# -- sampling --------------------------------------------------------------------------
def _separated_means():
    # 100 apart, while no standard deviation exceeds ~3: the nearest mean
    # tells which component drew a row.
    return np.array([[-100.0, 0.0, 0.0], [0.0, 0.0, 0.0], [100.0, 0.0, 0.0]])


def test_sample_draws_the_counts_from_each_component_in_component_order(
    covariance, covariance_type, rng
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)
    means = _separated_means()
    counts = np.array([2, 0, 5])

    # The estimator passes sklearn's RandomState (check_random_state).
    X = covariance.sample(np.random.RandomState(0), means, covariances, counts)

    assert X.shape == (counts.sum(), N_FEATURES)
    nearest = np.argmin(
        np.linalg.norm(X[:, None, :] - means[None, :, :], axis=2), axis=1
    )
    assert nearest.tolist() == np.repeat(np.arange(N_COMPONENTS), counts).tolist()


def test_many_samples_have_the_components_means_and_covariances(
    covariance, covariance_type, rng
):
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)
    means = _separated_means()
    counts = np.array([20_000, 30_000, 25_000])
    full = as_full_stack(covariances, covariance_type, N_COMPONENTS, N_FEATURES)

    X = covariance.sample(np.random.RandomState(0), means, covariances, counts)

    starts = np.concatenate([[0], np.cumsum(counts)])
    for k in range(N_COMPONENTS):
        rows = X[starts[k] : starts[k + 1]]
        # Five standard errors, fixed seed: a wrong mean or covariance is far
        # outside, a right one never fails.
        standard_error = np.sqrt(np.diag(full[k]) / counts[k])
        assert np.all(np.abs(rows.mean(axis=0) - means[k]) < 5 * standard_error)
        scale = np.sqrt(np.outer(np.diag(full[k]), np.diag(full[k])))
        assert np.all(
            np.abs(np.cov(rows.T) - full[k]) < 5 * scale * np.sqrt(2.0 / counts[k])
        )


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_small_matrices_take_whole_stack_paths_that_agree_with_the_large_ones(
    covariance, covariance_type, rng, monkeypatch
):
    # Up to _STACK_FEATURES features, covariances, their precision factors
    # and the factors of initial precisions come from whole-stack calls;
    # above, one matrix at a time. Both must give the same numbers.
    covariances = random_covariances(rng, covariance_type, N_COMPONENTS, N_FEATURES)
    nk = rng.uniform(10.0, 100.0, N_COMPONENTS)
    centred_means = rng.standard_normal((N_COMPONENTS, N_FEATURES))
    scatter = np.stack([random_spd(rng, N_FEATURES) for _ in range(N_COMPONENTS)])
    second = covariance.second_order_of(scatter)
    reg_covar = rng.uniform(1e-3, 1e-2, N_FEATURES)
    precisions = np.linalg.inv(covariances)

    def results():
        return (
            covariance.covariances_from_moments(nk, centred_means, second, reg_covar),
            covariance.precisions_cholesky(covariances),
            covariance.cholesky_from_precisions(precisions),
        )

    small = results()
    monkeypatch.setattr(_covariance, "_STACK_FEATURES", 0)
    large = results()

    np.testing.assert_array_equal(small[0], large[0])
    for got, want in zip(small[1:], large[1:], strict=True):
        assert_allclose(got, want, rtol=1e-13, atol=1e-15)
        # Upper-triangular with exact zeros below, as scikit-learn's.
        assert np.all(np.tril(got, -1) == 0.0)
