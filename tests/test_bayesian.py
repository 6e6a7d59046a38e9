"""BayesianGaussianMixture: scikit-learn's answer from the same start, on the
same engine as GaussianMixture (weights, missing values, Dask)."""

import copy
import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import BayesianGaussianMixture as SklearnBGMM

from sklearn_em import BayesianGaussianMixture, mixture
from sklearn_em.datasets import make_three_gaussians

PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
# Largest relative difference from scikit-learn over the cases of
# test_same_answer_as_sklearn, measured: 7e-15 (full), 3e-14 (tied), 1.4e-13
# (diag), 1.6e-13 (spherical), either prior type. The bar is 1e-8.
MEASURED = 1e-12
TOLERANCE = 1e-8


@pytest.fixture(scope="module")
def X():
    return make_three_gaussians(1500, random_state=0)[0]


def _fit_both(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = BayesianGaussianMixture(**params).fit(X)
        theirs = SklearnBGMM(**params).fit(X)
    return ours, theirs


def _largest_difference(ours, theirs):
    """Largest difference over the fitted attributes, relative to each
    attribute's scale."""
    worst = abs(ours.lower_bound_ - theirs.lower_bound_) / abs(theirs.lower_bound_)
    for name in (
        "weights_",
        "means_",
        "covariances_",
        "precisions_cholesky_",
        "mean_precision_",
        "degrees_of_freedom_",
        "weight_concentration_",
    ):
        a, b = getattr(ours, name), getattr(theirs, name)
        for x, y in zip(
            *((a, b) if isinstance(a, tuple) else ((a,), (b,))), strict=True
        ):
            x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
            worst = max(worst, np.abs(x - y).max() / max(np.abs(y).max(), 1e-300))
    return worst


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
@pytest.mark.parametrize("init_params", ["kmeans", "random"])
def test_same_answer_as_sklearn(X, covariance_type, prior_type, init_params):
    ours, theirs = _fit_both(
        X,
        n_components=5,
        covariance_type=covariance_type,
        weight_concentration_prior_type=prior_type,
        init_params=init_params,
        random_state=0,
        max_iter=500,
        tol=1e-6,
    )
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.converged_ == theirs.converged_
    # scikit-learn's bounds for this model are 1-element arrays; ours floats.
    # (scikit-learn < 1.7 keeps only the last: lower_bound_, compared below.)
    if hasattr(theirs, "lower_bounds_"):
        theirs_bounds = np.ravel(theirs.lower_bounds_)
        assert_allclose(ours.lower_bounds_, theirs_bounds, rtol=TOLERANCE)
    assert _largest_difference(ours, theirs) < MEASURED
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)
    assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-10)
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-12)


@pytest.mark.parametrize("prior_type", PRIOR_TYPES)
def test_same_answer_with_every_prior_given(X, covariance_type, prior_type):
    d = X.shape[1]
    covariance_prior = {
        "full": np.array([[2.0, 0.3], [0.3, 1.0]]),
        "tied": np.array([[2.0, 0.3], [0.3, 1.0]]),
        "diag": np.array([2.0, 1.0]),
        "spherical": 1.5,
    }[covariance_type]
    ours, theirs = _fit_both(
        X,
        n_components=4,
        covariance_type=covariance_type,
        weight_concentration_prior_type=prior_type,
        weight_concentration_prior=0.01,
        mean_precision_prior=0.5,
        mean_prior=np.full(d, 3.0),
        degrees_of_freedom_prior=d + 1.5,
        covariance_prior=covariance_prior,
        random_state=1,
        n_init=2,
        max_iter=300,
    )
    assert ours.n_iter_ == theirs.n_iter_
    assert _largest_difference(ours, theirs) < MEASURED
    for name in ("mean_prior_", "covariance_prior_", "degrees_of_freedom_prior_"):
        assert_allclose(getattr(ours, name), getattr(theirs, name))


def test_unneeded_components_are_switched_off(X):
    """Ten components offered, three Gaussians in the data: the Dirichlet
    process leaves seven with (almost) no weight, without an error."""
    bgm = BayesianGaussianMixture(
        n_components=10, weight_concentration_prior=1e-3, random_state=0, max_iter=500
    ).fit(X)
    assert np.sum(bgm.weights_ > 0.05) == 3
    assert np.all(np.isfinite(bgm.covariances_))


def test_lower_bound_never_decreases(X, covariance_type):
    bgm = BayesianGaussianMixture(
        n_components=6, covariance_type=covariance_type, random_state=3, tol=1e-6,
        max_iter=2000,
    ).fit(X)  # fmt: skip
    steps = np.diff(bgm.lower_bounds_)
    assert np.all(steps >= -1e-9 * np.abs(bgm.lower_bounds_[1:]))


def test_integer_weights_equal_repeated_rows(X, covariance_type):
    """From the same start (a warm start of one fitted model), weight 2 is a
    repeated row: the posterior, unlike a likelihood, depends on the amount of
    data, so the weights' scale must reach it too."""
    w = np.random.RandomState(0).randint(0, 4, size=len(X))
    repeated = np.repeat(X, w, axis=0)
    start = BayesianGaussianMixture(
        n_components=4, covariance_type=covariance_type, random_state=0, max_iter=2
    )
    with pytest.warns(ConvergenceWarning):
        start.fit(repeated)
    a, b = copy.deepcopy(start), copy.deepcopy(start)
    a.set_params(warm_start=True, max_iter=50, tol=1e-9)
    b.set_params(warm_start=True, max_iter=50, tol=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(repeated)
        b.fit(X, sample_weight=w)
    assert a.n_iter_ == b.n_iter_
    assert_allclose(b.lower_bound_, a.lower_bound_, rtol=1e-9)
    assert_allclose(b.means_, a.means_, rtol=1e-8, atol=1e-10)
    assert_allclose(b.covariances_, a.covariances_, rtol=1e-8, atol=1e-10)
    assert_allclose(b.mean_precision_, a.mean_precision_, rtol=1e-8)


def test_missing_values_fit_exactly_and_bound_never_decreases(X, covariance_type):
    rng = np.random.RandomState(0)
    X_missing = X.copy()
    rows = np.flatnonzero(rng.uniform(size=len(X)) < 0.2)
    X_missing[rows, rng.randint(2, size=len(rows))] = np.nan
    bgm = BayesianGaussianMixture(
        n_components=3, covariance_type=covariance_type, random_state=0, tol=1e-8,
        max_iter=500,
    ).fit(X_missing)  # fmt: skip
    complete = BayesianGaussianMixture(
        n_components=3, covariance_type=covariance_type, random_state=0, max_iter=500
    ).fit(X)
    steps = np.diff(bgm.lower_bounds_)
    assert np.all(steps >= -1e-9 * np.abs(bgm.lower_bounds_[1:]))
    order = np.argsort(bgm.means_[:, 0]), np.argsort(complete.means_[:, 0])
    # A fifth of the rows missing one value: close to the complete-data fit.
    assert_allclose(bgm.means_[order[0]], complete.means_[order[1]], atol=0.15)
    assert bgm.predict([[np.nan, 4.0]]).shape == (1,)
    assert np.isfinite(bgm.score_samples(X_missing)).all()


def test_dask_input_gives_the_in_memory_fit(X):
    da = pytest.importorskip("dask.array", reason="needs the 'dask' extra")
    import dask

    params = dict(n_components=4, covariance_type="diag", random_state=0, max_iter=300)
    memory = BayesianGaussianMixture(**params).fit(X)
    with dask.config.set(scheduler="threads"):
        lazy = BayesianGaussianMixture(**params).fit(da.from_array(X, chunks=400))
    assert lazy.n_iter_ == memory.n_iter_
    assert _largest_difference(lazy, memory) < 1e-10


def test_warm_start_continues_and_verbose_prints(X, capsys):
    bgm = BayesianGaussianMixture(
        n_components=3, random_state=0, max_iter=3, verbose=2, verbose_interval=1
    )
    with pytest.warns(ConvergenceWarning):
        bgm.fit(X)
    assert "Iteration 3" in capsys.readouterr().out
    bgm.set_params(warm_start=True, max_iter=300, verbose=0)
    bgm.fit(X)
    once = BayesianGaussianMixture(n_components=3, random_state=0, max_iter=300)
    once.fit(X)
    assert bgm.lower_bound_ == pytest.approx(once.lower_bound_, rel=1e-6)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"degrees_of_freedom_prior": 0.5}, "should be greater than 1"),
        ({"mean_prior": [1.0, 2.0, 3.0]}, "'means' should have the shape"),
        ({"covariance_prior": np.eye(3)}, "covariance_prior' should have the shape"),
        ({"covariance_prior": -np.eye(2)}, "positive-definite"),
        (
            {"covariance_type": "diag", "covariance_prior": [1.0, -1.0]},
            "should be positive",
        ),
    ],
)
def test_bad_priors_raise_sklearns_errors(X, params, message):
    for cls in (BayesianGaussianMixture, SklearnBGMM):
        with pytest.raises(ValueError, match=message):
            cls(n_components=2, **params).fit(X)


def test_mixture_namespace_switches_with_one_import():
    assert mixture.BayesianGaussianMixture is BayesianGaussianMixture
    from sklearn_em import GaussianMixture

    assert mixture.GaussianMixture is GaussianMixture


def test_concentration_prior_example(covariance_type):
    """The computation of scikit-learn's gallery example
    ``plot_concentration_prior.py`` (BSD-3-Clause; data and estimators as
    there): the same weights as scikit-learn's for every prior."""
    random_state, n_components = 2, 3
    covars = np.array(
        [[[0.7, 0.0], [0.0, 0.1]], [[0.5, 0.0], [0.0, 0.1]], [[0.5, 0.0], [0.0, 0.1]]]
    )
    samples = np.array([200, 500, 200])
    means = np.array([[0.0, -0.70], [0.0, 0.0], [0.0, 0.70]])
    rng = np.random.RandomState(random_state)
    X = np.vstack(
        [rng.multivariate_normal(means[j], covars[j], samples[j]) for j in range(3)]
    )
    for prior_type, concentrations in (
        ("dirichlet_distribution", [0.001, 1, 1000]),
        ("dirichlet_process", [1, 1000, 100000]),
    ):
        for concentration in concentrations:
            params = dict(
                weight_concentration_prior_type=prior_type,
                n_components=2 * n_components,
                reg_covar=0,
                init_params="random",
                max_iter=1500,
                mean_precision_prior=0.8,
                random_state=random_state,
                weight_concentration_prior=concentration,
                covariance_type=covariance_type,
            )
            ours, theirs = _fit_both(X, **params)
            assert ours.n_iter_ == theirs.n_iter_
            assert_allclose(ours.weights_, theirs.weights_, rtol=1e-8, atol=1e-12)
            assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-8)


def test_streaming_reaches_the_batch_lower_bound():
    """Stochastic variational inference over batches of 1,000 rows ends
    within 1% of the batch fit's lower bound (measured 0.23%): the bound of
    one full-data update from the streamed posterior, the bound's definition
    holding only right after an update."""
    X = make_three_gaussians(30_000, random_state=0)[0]
    batch = BayesianGaussianMixture(n_components=5, random_state=0, max_iter=2000)
    batch.fit(X)
    streamed = BayesianGaussianMixture(n_components=5, random_state=0)
    for start in range(0, len(X), 1000):
        streamed.partial_fit(X[start : start + 1000])
    assert streamed.n_iter_ == 30 and len(streamed.lower_bounds_) == 30
    one_step = copy.deepcopy(streamed).set_params(warm_start=True, max_iter=1)
    with pytest.warns(ConvergenceWarning):
        one_step.fit(X)
    gap = abs(one_step.lower_bound_ - batch.lower_bound_) / abs(batch.lower_bound_)
    assert gap < 0.01
    assert streamed.score(X) == pytest.approx(batch.score(X), rel=0.01)


def test_partial_fit_after_fit_continues_the_fit(X):
    """The fit counts as all the data it saw: one more batch of the same data
    barely moves the posterior."""
    fitted = BayesianGaussianMixture(n_components=3, random_state=0).fit(X)
    continued = copy.deepcopy(fitted).partial_fit(X[:300])
    assert continued.n_iter_ == fitted.n_iter_ + 1
    assert_allclose(continued.weights_, fitted.weights_, atol=0.02)
    assert continued.score(X) == pytest.approx(fitted.score(X), rel=1e-3)
    # The first batch of an unfitted estimator records the priors.
    fresh = BayesianGaussianMixture(n_components=3, random_state=0).partial_fit(X)
    assert_allclose(fresh.mean_prior_, X.mean(axis=0))
