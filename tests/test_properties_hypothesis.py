"""Property-based tests: any small data set gives a valid mixture or a clean error.

For random data (2..60 rows, 1..4 features, values in [-1e3, 1e3], duplicate
rows likely), every covariance type and a few EM iterations, ``fit`` must either
raise the documented "ill-defined empirical covariance" ``ValueError`` or return
finite parameters forming a valid mixture, with a lower bound that does not
decrease.

Observed when this file was written (core at 3707f82): 0 of ~9,800 fits (25
runs of 60 generated examples, with shrinking) raised the documented
ValueError, and none re-seeded a component (reg_covar >= 1e-6 keeps every
covariance positive definite). The lower-bound property failed in 10 of those
25 runs, always where a component collapses onto duplicated rows far from the
data mean; the shrunk counterexamples are pinned below with @example.
"""

from __future__ import annotations

import warnings

import numpy as np
from _helpers import COVARIANCE_TYPES, as_full_stack
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from numpy.testing import assert_allclose

from sklearn_em import GaussianMixture

ILL_DEFINED = "ill-defined empirical covariance"
BOUND_RTOL = 1e-9


@st.composite
def problems(draw):
    """A data set and the settings to fit it with."""
    n_samples = draw(st.integers(2, 60))
    n_features = draw(st.integers(1, 4))
    # Rows are drawn from a pool of distinct rows, so duplicates are common
    # (down to every row being the same).
    n_distinct = draw(st.integers(1, n_samples))
    pool = draw(
        arrays(
            np.float64,
            (n_distinct, n_features),
            elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
        )
    )
    rows = draw(arrays(np.intp, n_samples, elements=st.integers(0, n_distinct - 1)))
    X = pool[rows]
    params = {
        "n_components": draw(st.integers(1, min(4, n_samples))),
        "covariance_type": draw(st.sampled_from(COVARIANCE_TYPES)),
        "reg_covar": draw(st.sampled_from([1e-6, 1e-3])),
        "max_iter": draw(st.integers(1, 15)),
        "init_params": draw(
            st.sampled_from(["kmeans", "k-means++", "random", "random_from_data"])
        ),
        "random_state": draw(st.integers(0, 2**16)),
    }
    return X, params


def _problem(X, covariance_type, n_components, max_iter, init_params="kmeans"):
    """An explicit example in the form ``problems()`` draws."""
    return np.asarray(X, dtype=np.float64), {
        "n_components": n_components,
        "covariance_type": covariance_type,
        "reg_covar": 1e-6,
        "max_iter": max_iter,
        "init_params": init_params,
        "random_state": 0,
    }


def assert_spd(stack, data_scale):
    """Symmetric (to rounding at the scale of the data) and positive definite.

    Covariances are formed from sums of squares of the data, so their rounding
    error scales with ``data_scale ** 2``, not with their own (possibly tiny,
    ``reg_covar``-sized) entries.
    """
    for matrix in stack:
        atol = 1e-12 * max(data_scale**2, np.abs(matrix).max())
        assert_allclose(matrix, matrix.T, rtol=0, atol=atol)
        assert np.all(np.linalg.eigvalsh(matrix) > 0)


# -- a slow, exact reference for the one EM property that reg_covar can break --
#
# EM with ``reg_covar > 0`` is not an exact EM: its M-step adds ``reg_covar`` to
# the maximising covariance. The likelihood L can then fall, but by no more
# than the expected complete-data log-likelihood Q that this costs:
#     L(theta') - L(theta) >= Q(theta' | theta) - Q(theta | theta),
# with theta' the regularised M-step from theta. The reference below computes
# that M-step and Q exactly (two-pass, from the rows) so that a fall of the
# fitted lower bound is excused only up to what regularisation explains, never
# numerical error in the estimator.


def _log_gaussian(X, means, covariances):
    """``log N(x_i | mu_k, Sigma_k)`` of shape (n, k) from full (k, d, d) stacks."""
    n_features = X.shape[1]
    out = np.empty((len(X), len(means)))
    for k, (mean, cov) in enumerate(zip(means, covariances, strict=True)):
        lower = np.linalg.cholesky(cov)
        z = np.linalg.solve(lower, (X - mean).T)
        log_det = 2.0 * np.log(np.diag(lower)).sum()
        out[:, k] = -0.5 * (n_features * np.log(2 * np.pi) + log_det + (z**2).sum(0))
    return out


def _weighted_log_prob(X, theta):
    weights, means, covariances = theta
    with np.errstate(divide="ignore"):
        return np.log(weights) + _log_gaussian(X, means, covariances)


def _responsibilities(X, theta):
    log_prob = _weighted_log_prob(X, theta)
    log_prob -= log_prob.max(axis=1, keepdims=True)
    resp = np.exp(log_prob)
    return resp / resp.sum(axis=1, keepdims=True)


def _expected_log_likelihood(X, resp, theta):
    """Q: sum over rows and components of ``r_ik log(pi_k N_k(x_i))``."""
    terms = resp * np.where(resp > 0, _weighted_log_prob(X, theta), 0.0)
    return terms.sum()


def _reference_m_step(X, resp, covariance_type, reg_covar):
    n_features = X.shape[1]
    nk = resp.sum(axis=0) + 10 * np.finfo(np.float64).eps
    means = resp.T @ X / nk[:, None]
    scatter = np.stack(
        [(resp[:, k] * (X - m).T) @ (X - m) for k, m in enumerate(means)]
    )
    eye = np.eye(n_features)
    if covariance_type == "full":
        covariances = scatter / nk[:, None, None]
    elif covariance_type == "tied":
        covariances = np.broadcast_to(scatter.sum(0) / nk.sum(), scatter.shape)
    elif covariance_type == "diag":
        covariances = (scatter / nk[:, None, None]) * eye
    else:
        variances = np.trace(scatter, axis1=1, axis2=2) / (nk * n_features)
        covariances = variances[:, None, None] * eye
    return nk / nk.sum(), means, covariances + reg_covar * eye


def _fitted_theta(gmm, covariance_type, n_features):
    k = gmm.n_components
    covariances = as_full_stack(gmm.covariances_, covariance_type, k, n_features)
    return gmm.weights_.astype(np.float64), gmm.means_.astype(np.float64), covariances


def regularisation_slack(X, params, n_bounds):
    """Per-sample fall of the lower bound that reg_covar explains, per iteration.

    Replays the fit one EM step at a time (``max_iter=0`` for the starting
    point, then ``warm_start`` with ``max_iter=1``) to recover the parameters
    entering each iteration, and checks that this replays the same path.
    """
    ctype, reg_covar = params["covariance_type"], params["reg_covar"]
    gmm = GaussianMixture(**{**params, "max_iter": 0})
    slack, bounds = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        gmm.fit(X)
        gmm.set_params(max_iter=1, warm_start=True)
        for _ in range(n_bounds - 1):
            theta = _fitted_theta(gmm, ctype, X.shape[1])
            resp = _responsibilities(X, theta)
            step = _reference_m_step(X, resp, ctype, reg_covar)
            cost = _expected_log_likelihood(X, resp, theta) - (
                _expected_log_likelihood(X, resp, step)
            )
            slack.append(max(cost, 0.0) / len(X))
            gmm.fit(X)
            bounds.append(gmm.lower_bound_)
    return np.array(slack), np.array(bounds)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(problems())
# Shrunk counterexamples of earlier runs, pinned so they are always tried. In
# each, a component collapses onto duplicated rows far from the data mean (its
# variance is reg_covar); formed as E[y^2] - mean^2 about the data mean, that
# variance loses ~eps * (mean - centre)^2 to cancellation (up to 1e-4 relative
# here), and the lower bound falls where scikit-learn's is flat.
@example(_problem([[0.0]] + [[94.0]] * 9, "full", 2, 2))
@example(_problem([[178.0, 0.0, 0.0, 0.0]] + [[0.0] * 4] * 9, "full", 2, 2))
@example(_problem([[32.5, 860.5]] * 3 + [[860.5, 860.5]], "full", 2, 2))
@example(_problem([[692.0], [1.0]], "full", 2, 2))
@example(
    _problem([[306.9375], [0.0], [0.0]] + [[306.9375]] * 10, "tied", 3, 3, "k-means++")
)
# The lower bound falls by 3.7e-3 (scikit-learn's too): overlapping components
# and reg_covar, fully explained by the regularisation slack, so allowed.
@example(_problem([[0.00390625], [0.0]], "full", 2, 2))
@example(_problem([[0.00390625]] + [[0.0]] * 11, "full", 1, 2, "k-means++"))
# 'tied' covariance not exactly symmetric (asymmetry ~4e-16, entries ~1e-6):
# rounding at the scale of the data, allowed.
@example(_problem([[5, 5, 5], [5, 0, 5]] + [[0, 5, 5]] * 7, "tied", 3, 1))
def test_fit_gives_valid_mixture_or_documented_error(problem):
    X, params = problem
    X_before = X.copy()
    k, d = params["n_components"], X.shape[1]
    gmm = GaussianMixture(**params)
    with warnings.catch_warnings(record=True) as caught:
        # Not converging in a few iterations, k-means finding fewer distinct
        # clusters than asked on duplicated rows, and collapsed components
        # being re-seeded are expected here: all are UserWarnings. Numerical
        # RuntimeWarnings (overflow, invalid value, ...) stay errors.
        warnings.simplefilter("error")
        warnings.simplefilter("always", UserWarning)
        try:
            gmm.fit(X)
        except ValueError as error:
            assert ILL_DEFINED in str(error), repr(error)
            return
        proba = gmm.predict_proba(X)
        labels = gmm.predict(X)
    reseeded = any(w.category.__name__ == "DegenerateComponentWarning" for w in caught)

    assert np.array_equal(X, X_before)
    for attr in (
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
    ):
        assert np.all(np.isfinite(getattr(gmm, attr))), attr
    assert gmm.weights_.shape == (k,)
    assert gmm.means_.shape == (k, d)
    assert np.all(gmm.weights_ >= 0)
    assert_allclose(gmm.weights_.sum(), 1.0, rtol=1e-6)

    ctype = params["covariance_type"]
    scale = float(np.abs(X - X.mean(axis=0)).max())
    assert_spd(as_full_stack(gmm.covariances_, ctype, k, d), scale)
    # Precisions are not formed from the data: symmetric to their own rounding.
    assert_spd(as_full_stack(gmm.precisions_, ctype, k, d), 0.0)

    assert proba.shape == (len(X), k)
    assert np.all(np.isfinite(proba))
    assert np.all(proba >= 0)
    assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert np.array_equal(labels, gmm.labels_)
    assert np.all((labels >= 0) & (labels < k))

    bounds = np.asarray(gmm.lower_bounds_)
    assert len(bounds) == gmm.n_iter_
    assert np.all(np.isfinite(bounds))
    if reseeded or len(bounds) < 2:
        return  # a re-seeding step is not an EM step: the bound may fall there
    drops = bounds[:-1] - bounds[1:]
    allowed = BOUND_RTOL * np.maximum(np.abs(bounds[:-1]), np.abs(bounds[1:]))
    # Float64's own limit: rounding the covariance entries at the data's scale
    # moves log det by ~ d * eps * cond(covariance), which for nearly singular
    # fits (collinear or constant features held up by reg_covar alone, cond up
    # to 1e10) exceeds BOUND_RTOL; the same MLE reached by two computations
    # differs by that much. For well-conditioned fits this adds ~1e-13.
    eigenvalues = np.linalg.eigvalsh(as_full_stack(gmm.covariances_, ctype, k, d))
    condition = float((eigenvalues[:, -1] / eigenvalues[:, 0]).max())
    allowed = allowed + 10 * d * np.finfo(float).eps * condition
    if np.any(drops > allowed):
        slack, replayed = regularisation_slack(X, params, len(bounds))
        # Stepping with warm_start must retrace the fit exactly.
        assert_allclose(replayed, bounds[:-1], rtol=1e-12, atol=0)
        allowed = allowed + slack
    assert np.all(drops <= allowed), (bounds, drops / np.abs(bounds[1:]))
