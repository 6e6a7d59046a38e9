"""scikit-learn's gallery examples for mixtures (``examples/mixture`` of
scikit-learn 1.9.1), their computation without the plots, run once with
``sklearn.mixture`` and once with ``sklearn_em``: the same fitted parameters,
lower bounds, predictions and samples.

The data generation and estimator settings follow the examples; they are
scikit-learn's (Authors: The scikit-learn developers,
SPDX-License-Identifier: BSD-3-Clause). ``plot_concentration_prior.py`` is
tested in ``test_bayesian.py``.
"""

# The examples draw from numpy's legacy global generator (np.random.seed,
# randn, normal) and several leave random_state=None, so that the fits draw
# from it too: that is what is compared here, so the rule against it is off.
# ruff: noqa: NPY002

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn import mixture as sklearn_mixture
from sklearn.datasets import load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from threadpoolctl import threadpool_limits

from sklearn_em import mixture as em_mixture

LIBRARIES = (sklearn_mixture, em_mixture)
RTOL = 1e-8
# Measured over these examples: at most 2e-11 relative to each attribute's
# scale. The absolute floor (relative to the attribute's largest entry) is for
# entries that are zero up to rounding, e.g. the off-diagonal 2e-17 (sklearn)
# against 5e-90 (ours) of an unused component's covariance in plot_gmm_sin.
ATOL_SCALE = 1e-12

ATTRIBUTES = (
    "weights_",
    "means_",
    "covariances_",
    "precisions_cholesky_",
    "lower_bound_",
    # BayesianGaussianMixture only
    "weight_concentration_",
    "mean_precision_",
    "degrees_of_freedom_",
)


@pytest.fixture(autouse=True)
def _keep_global_rng():
    """plot_gmm.py and plot_gmm_pdf.py seed numpy's global generator and leave
    ``random_state=None``, so the fits draw from it; restore it afterwards."""
    state = np.random.get_state()
    yield
    np.random.set_state(state)


@pytest.fixture(autouse=True)
def _one_thread():
    """Speed only: these fits are small (at most 4000 rows), and on a busy
    2-core machine scikit-learn's k-means OpenMP threads and BLAS threads
    waiting for each other made test_plot_gmm_selection take 45 s, not 1.5 s."""
    with threadpool_limits(limits=1):
        yield


def assert_same_fit(ours, theirs, X):
    assert type(ours).__module__.startswith("sklearn_em")
    assert type(theirs).__module__.startswith("sklearn.")
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.converged_ == theirs.converged_
    for name in ATTRIBUTES:
        if not hasattr(theirs, name):
            continue
        a, b = getattr(ours, name), getattr(theirs, name)
        for x, y in zip(
            *((a, b) if isinstance(a, tuple) else ((a,), (b,))), strict=True
        ):
            y = np.asarray(y, dtype=np.float64)
            atol = ATOL_SCALE * np.abs(y).max()
            assert_allclose(x, y, rtol=RTOL, atol=atol, err_msg=name)
    assert_array_equal(ours.predict(X), theirs.predict(X))
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)


def test_plot_gmm_sin():
    """Ten-component EM, then two Dirichlet-process fits (concentration 1e-2
    with random init, 1e2 with k-means init), each sampled 2000 times."""
    fits = []
    for mixture in LIBRARIES:
        # 100 points along a noisy sine curve, drawn from the global generator.
        np.random.seed(0)
        n_samples = 100
        X = np.zeros((n_samples, 2))
        step = 4.0 * np.pi / n_samples
        for i in range(n_samples):
            x = i * step - 6.0
            X[i, 0] = x + np.random.normal(0, 0.1)
            X[i, 1] = 3.0 * (np.sin(x) + np.random.normal(0, 0.2))

        # random_state unset, as in the example: k-means draws its seeds from
        # the global generator, right after the data.
        gmm = mixture.GaussianMixture(
            n_components=10, covariance_type="full", max_iter=100
        ).fit(X)
        dpgmms = [
            mixture.BayesianGaussianMixture(
                n_components=10,
                covariance_type="full",
                weight_concentration_prior=concentration,
                weight_concentration_prior_type="dirichlet_process",
                mean_precision_prior=1e-2,
                covariance_prior=1e0 * np.eye(2),
                init_params=init_params,
                max_iter=100,
                random_state=2,
            ).fit(X)
            for concentration, init_params in ((1e-2, "random"), (1e2, "kmeans"))
        ]
        samples = [dpgmm.sample(n_samples=2000) for dpgmm in dpgmms]
        fits.append((X, gmm, dpgmms, samples))

    (X, gmm_sk, dpgmms_sk, samples_sk), (X_em, gmm_em, dpgmms_em, samples_em) = fits
    assert_array_equal(X, X_em)
    assert_same_fit(gmm_em, gmm_sk, X)
    for ours, theirs in zip(dpgmms_em, dpgmms_sk, strict=True):
        assert_same_fit(ours, theirs, X)
    # The low concentration prior switches components off.
    assert np.sum(dpgmms_em[0].weights_ > 0.01) == 4
    for (X_s, y_s), (X_s_em, y_s_em) in zip(samples_sk, samples_em, strict=True):
        assert_array_equal(y_s_em, y_s)
        assert_allclose(X_s_em, X_s, rtol=RTOL, atol=1e-12)


def test_plot_gmm():
    """Five-component EM and Dirichlet-process fits of two Gaussians, both
    with ``random_state=None``: the initialisations draw from numpy's global
    generator, seeded before the data, so ours must draw exactly as
    scikit-learn's do."""
    fits = []
    for mixture in LIBRARIES:
        np.random.seed(0)
        n_samples = 500
        C = np.array([[0.0, -0.1], [1.7, 0.4]])
        X = np.r_[
            np.dot(np.random.randn(n_samples, 2), C),
            0.7 * np.random.randn(n_samples, 2) + np.array([-6, 3]),
        ]
        gmm = mixture.GaussianMixture(n_components=5, covariance_type="full").fit(X)
        # The example's variational fit stops at max_iter=100 before its
        # lower bound settles, in scikit-learn as here: the warning is part of
        # the example's output.
        with pytest.warns(ConvergenceWarning, match="did not converge"):
            dpgmm = mixture.BayesianGaussianMixture(
                n_components=5, covariance_type="full"
            ).fit(X)
        fits.append((X, gmm, dpgmm))

    (X, gmm_sk, dpgmm_sk), (X_em, gmm_em, dpgmm_em) = fits
    assert_array_equal(X, X_em)
    assert_same_fit(gmm_em, gmm_sk, X)
    assert_same_fit(dpgmm_em, dpgmm_sk, X)
    assert not dpgmm_em.converged_ and dpgmm_em.n_iter_ == 100


def test_plot_gmm_covariances():
    """Iris, first of four stratified folds, each covariance type started
    from the class means with ``max_iter=20``; train and test predictions."""
    iris = load_iris()
    train, test = next(StratifiedKFold(n_splits=4).split(iris.data, iris.target))
    X_train, y_train, X_test = iris.data[train], iris.target[train], iris.data[test]
    means_init = np.array([X_train[y_train == i].mean(axis=0) for i in range(3)])
    for covariance_type in ("spherical", "diag", "tied", "full"):
        ours, theirs = (
            mixture.GaussianMixture(
                n_components=3,
                covariance_type=covariance_type,
                max_iter=20,
                random_state=0,
                means_init=means_init,
            ).fit(X_train)
            for mixture in (em_mixture, sklearn_mixture)
        )
        assert_same_fit(ours, theirs, X_train)
        assert_array_equal(ours.predict(X_test), theirs.predict(X_test))


def test_plot_gmm_pdf():
    """Two components; the negative log-likelihood on the contour grid."""
    scores = []
    for mixture in LIBRARIES:
        np.random.seed(0)
        shifted = np.random.randn(300, 2) + np.array([20, 20])
        stretched = np.dot(np.random.randn(300, 2), np.array([[0.0, -0.7], [3.5, 0.7]]))
        X_train = np.vstack([shifted, stretched])
        clf = mixture.GaussianMixture(n_components=2, covariance_type="full")
        clf.fit(X_train)
        x, y = np.meshgrid(np.linspace(-20.0, 30.0), np.linspace(-20.0, 40.0))
        scores.append((clf, -clf.score_samples(np.c_[x.ravel(), y.ravel()])))
    (theirs, z_sk), (ours, z_em) = scores
    assert_same_fit(ours, theirs, X_train)
    assert_allclose(z_em, z_sk, rtol=RTOL)


def test_plot_gmm_init():
    """Each ``init_params``: the initial means (a ``max_iter=0`` fit), then the
    k-means-initialised fit from them, both sharing one RandomState."""
    X = make_blobs(n_samples=4000, centers=4, cluster_std=0.60, random_state=0)[0]
    X = X[:, ::-1]
    for method in ("kmeans", "random_from_data", "k-means++", "random"):
        fits = []
        for mixture in LIBRARIES:
            r = np.random.RandomState(seed=1234)
            init = mixture.GaussianMixture(
                n_components=4, init_params=method, tol=1e-9, max_iter=0, random_state=r
            ).fit(X)
            gmm = mixture.GaussianMixture(
                n_components=4,
                means_init=init.means_,
                tol=1e-9,
                max_iter=2000,
                random_state=r,
            ).fit(X)
            fits.append((init, gmm))
        (init_sk, gmm_sk), (init_em, gmm_em) = fits
        assert_allclose(init_em.means_, init_sk.means_, rtol=RTOL)
        # README, "Differences to know about": the initial weights of the
        # single-row seeds are normalised here, while scikit-learn's sum to
        # k/n; with max_iter=0 they are the fitted weights_.
        assert_allclose(init_em.weights_.sum(), 1.0)
        assert_allclose(
            init_em.weights_, init_sk.weights_ / init_sk.weights_.sum(), rtol=RTOL
        )
        assert_same_fit(gmm_em, gmm_sk, X)


def test_plot_gmm_selection():
    """BIC grid search over 1-6 components and the four covariance types
    (scikit-learn's default n_components is 1, ours 3: the grid sets it)."""
    searches = []
    for mixture in LIBRARIES:
        np.random.seed(0)
        C = np.array([[0.0, -0.1], [1.7, 0.4]])
        component_1 = np.dot(np.random.randn(500, 2), C)
        component_2 = 0.7 * np.random.randn(500, 2) + np.array([-4, 1])
        X = np.concatenate([component_1, component_2])
        param_grid = {
            "n_components": range(1, 7),
            "covariance_type": ["spherical", "tied", "diag", "full"],
        }
        search = GridSearchCV(
            mixture.GaussianMixture(),
            param_grid=param_grid,
            scoring=lambda estimator, X: -estimator.bic(X),
        ).fit(X)
        searches.append(search)
    theirs, ours = searches
    assert_allclose(
        ours.cv_results_["mean_test_score"],
        theirs.cv_results_["mean_test_score"],
        rtol=RTOL,
    )
    assert (
        ours.best_params_
        == theirs.best_params_
        == {
            "covariance_type": "full",
            "n_components": 2,
        }
    )
    assert_same_fit(ours.best_estimator_, theirs.best_estimator_, X)
