"""The engine on its own: statistics, the data source, the kernels, the EM loop.

These pin the seam that every engine plugs into (see ``sklearn_em/_data.py``):
a source answers ``stats(model)``, and the EM loop knows nothing else.
"""

import numpy as np
import pytest
from _helpers import COVARIANCE_TYPES
from numpy.testing import assert_allclose
from scipy import stats as scipy_stats

from sklearn_em import GaussianMixture
from sklearn_em import _dense as dense_module
from sklearn_em import _missing as missing_module
from sklearn_em._covariance import get_covariance
from sklearn_em._data import TrainingData
from sklearn_em._em import params_from_stats, run_em
from sklearn_em._model import Mixture
from sklearn_em._stats import SuffStats
from sklearn_em._threads import single_threaded_blas
from sklearn_em.datasets import make_three_gaussians


def random_model(covariance_type, n_components=3, n_features=4, seed=0):
    """A valid mixture with correlated full covariances, cast to the type."""
    rng = np.random.RandomState(seed)
    covariance = get_covariance(covariance_type)
    a = rng.randn(n_components, n_features, n_features)
    full = a @ np.swapaxes(a, 1, 2) / n_features + 0.5 * np.eye(n_features)
    covariances = {
        "full": full,
        "tied": full[0],
        "diag": np.diagonal(full, axis1=1, axis2=2).copy(),
        "spherical": np.diagonal(full, axis1=1, axis2=2).mean(axis=1),
    }[covariance_type]
    weights = rng.dirichlet(np.full(n_components, 3.0))
    means = 2.0 * rng.randn(n_components, n_features)
    return Mixture(
        weights,
        means,
        covariances,
        covariance.precisions_cholesky(covariances),
        covariance,
    )


def sample_with_missing(model, n, fraction, seed=0, n_patterns=None):
    """Rows drawn from ``model`` with values removed at random, never a whole row.

    With ``n_patterns``, the missing values follow that many fixed patterns
    (frequent patterns); otherwise each value is missing independently.
    """
    rng = np.random.RandomState(seed)
    X = model.sample(rng, n)[0]
    X = X[rng.permutation(n)]
    d = X.shape[1]
    if n_patterns is None:
        mask = rng.rand(n, d) < fraction
    else:
        patterns = rng.rand(n_patterns, d) < 0.4
        mask = patterns[rng.randint(0, n_patterns, n)]
        mask[rng.rand(n) > fraction] = False
    mask[mask.all(axis=1), 0] = False
    X[mask] = np.nan
    return X


def reference_stats(X, w, model, centers):
    """Expected statistics row by row with scipy: marginal densities of the
    observed coordinates, conditional means and covariances of the missing."""
    covariance = model.covariance
    k, d = model.means.shape
    full = model.full_covariances()
    q = covariance.n_features_total(d)
    moments = np.zeros((k, q))
    log_likelihood = 0.0
    for x, weight in zip(X, w, strict=True):
        o = ~np.isnan(x)
        m = ~o
        log_prob = np.array(
            [
                np.log(model.weights[j])
                + scipy_stats.multivariate_normal(
                    model.means[j, o], full[j][np.ix_(o, o)]
                ).logpdf(x[o])
                for j in range(k)
            ]
        )
        top = log_prob.max()
        log_norm = top + np.log(np.exp(log_prob - top).sum())
        resp = np.exp(log_prob - log_norm) * weight
        log_likelihood += weight * log_norm
        for j in range(k):
            s = full[j]
            coef = np.linalg.solve(s[np.ix_(o, o)], s[np.ix_(o, m)])
            y = x.copy()
            y[m] = model.means[j, m] + (x[o] - model.means[j, o]) @ coef
            cond = np.zeros((d, d))
            cond[np.ix_(m, m)] = s[np.ix_(m, m)] - s[np.ix_(m, o)] @ coef
            z = y - centers[j]
            second = covariance.second_order_of(np.outer(z, z) + cond)
            moments[j] += resp[j] * np.concatenate([[1.0], z, second])
    return moments, log_likelihood


# -- SuffStats --


def test_statistics_about_different_centres_refuse_to_add():
    a = SuffStats(np.ones((2, 3)), np.zeros((2, 1)), 0.0, 1.0)
    b = SuffStats(np.ones((2, 3)), np.ones((2, 1)), 0.0, 1.0)
    with pytest.raises(ValueError, match="different centres"):
        a + b
    assert_allclose((a + a).moments, 2 * a.moments)


def test_scale_blend_and_per_sample_are_linear():
    rng = np.random.RandomState(0)
    centers = np.zeros((2, 2))
    a = SuffStats(rng.rand(2, 6), centers, -3.0, 4.0)
    b = SuffStats(rng.rand(2, 6), centers, -1.0, 2.0)
    blended = a.blend(b, 0.25)
    assert_allclose(blended.moments, 0.75 * a.moments + 0.25 * b.moments)
    assert blended.log_likelihood == pytest.approx(0.75 * -3.0 + 0.25 * -1.0)
    assert a.per_sample().total_weight == pytest.approx(1.0)
    assert_allclose(a.per_sample().moments, a.moments / 4.0)


def test_recentred_statistics_equal_statistics_taken_about_the_new_centres(
    covariance_type,
):
    model = random_model(covariance_type)
    X = model.sample(np.random.RandomState(1), 500)[0]
    covariance = model.covariance
    old = TrainingData(X, None, covariance, 3).stats(model)
    new_center = X.mean(axis=0) + 10.0
    direct = TrainingData(X, None, covariance, 3, center=new_center).stats(model)
    moved = old.recentered(np.tile(new_center, (3, 1)), covariance)
    assert_allclose(moved.moments, direct.moments, rtol=1e-10, atol=1e-8)


# -- the data source --


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("fraction", [0.0, 0.2])
def test_statistics_do_not_depend_on_chunks_or_threads(covariance_type, fraction):
    model = random_model(covariance_type)
    X = sample_with_missing(model, 3000, fraction, n_patterns=3)
    w = np.random.RandomState(2).rand(len(X))
    covariance = model.covariance
    reference = TrainingData(X, w, covariance, 3, chunk_size=3000, n_jobs=1)
    expected = reference.stats(model)
    for chunk_size, n_jobs in [(7, 1), (100, 2), (1000, 2), (None, -1)]:
        data = TrainingData(X, w, covariance, 3, chunk_size=chunk_size, n_jobs=n_jobs)
        with single_threaded_blas():
            got = data.stats(model)
        assert_allclose(got.moments, expected.moments, rtol=1e-10, atol=1e-9)
        assert got.log_likelihood == pytest.approx(expected.log_likelihood, rel=1e-12)
        assert_allclose(data.log_prob(model), reference.log_prob(model), rtol=1e-12)
        assert (data.labels(model) == reference.labels(model)).all()


def test_statistics_add_up_over_parts_of_the_data(covariance_type):
    model = random_model(covariance_type)
    X = sample_with_missing(model, 2000, 0.3)
    covariance = model.covariance
    center = np.nanmean(X, axis=0)
    whole = TrainingData(X, None, covariance, 3, center=center).stats(model)
    parts = [
        TrainingData(X[a:b], None, covariance, 3, center=center).stats(model)
        for a, b in [(0, 500), (500, 1700), (1700, 2000)]
    ]
    total = parts[0] + parts[1] + parts[2]
    assert_allclose(total.moments, whole.moments, rtol=1e-10, atol=1e-9)
    assert total.total_weight == whole.total_weight == 2000


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("n_patterns", [None, 4])
def test_missing_value_statistics_equal_a_row_by_row_reference(
    covariance_type, n_patterns
):
    """Both paths of the missing-value kernel (frequent patterns as marginal
    problems, the others row by row) give the exact expected statistics."""
    model = random_model(covariance_type)
    X = sample_with_missing(model, 400, 0.5, seed=3, n_patterns=n_patterns)
    w = np.random.RandomState(4).rand(len(X)) + 0.5
    data = TrainingData(X, w, model.covariance, 3)
    got = data.stats(model)
    expected, log_likelihood = reference_stats(X, w, model, got.centers)
    assert_allclose(got.moments, expected, rtol=1e-9, atol=1e-9)
    assert got.log_likelihood == pytest.approx(log_likelihood, rel=1e-11)
    rows = np.isnan(X).any(axis=1)
    assert rows.sum() > 100


def test_both_missing_value_paths_agree(monkeypatch, covariance_type):
    model = random_model(covariance_type, n_features=5)
    X = sample_with_missing(model, 3000, 0.6, n_patterns=5)
    data = TrainingData(X, None, model.covariance, 3)
    marginal = data.stats(model)
    monkeypatch.setattr(missing_module, "_MIN_PATTERN_ROWS", 10**9)
    per_row = TrainingData(X, None, model.covariance, 3).stats(model)
    assert_allclose(marginal.moments, per_row.moments, rtol=1e-10, atol=1e-9)
    assert marginal.log_likelihood == pytest.approx(per_row.log_likelihood, 1e-12)


def test_worst_rows_are_the_least_likely_and_never_weightless():
    model = random_model("full")
    X = model.sample(np.random.RandomState(0), 500)[0]
    X[[10, 20, 30]] = [[50.0, 0, 0, 0], [0, 60.0, 0, 0], [0, 0, 70.0, 0]]
    w = np.ones(len(X))
    w[20] = 0.0
    data = TrainingData(X, w, model.covariance, 3, chunk_size=64, n_jobs=2)
    worst = data.worst_rows(model, 2)
    order = np.argsort(data.log_prob(model))
    expected = [i for i in order if w[i] > 0][:2]
    assert_allclose(worst, X[expected])


def test_summaries_do_not_copy_complete_data():
    X = make_three_gaussians(1000, random_state=0)[0]
    data = TrainingData(X, None, get_covariance("full"), 3)
    assert data.init_view() is X and data.missing is None
    assert_allclose(data.center, X.mean(axis=0), rtol=1e-14)


# -- the EM loop on a source of its own --


class ScipySource:
    """A data source written from the protocol alone, with scipy densities:
    what a new engine implements, at its simplest."""

    def __init__(self, X, covariance, n_components):
        self.X = X
        self.covariance = covariance
        self.n_components = n_components
        self.n_features = X.shape[1]
        self.center = X.mean(axis=0)
        self.feature_variances = X.var(axis=0)

    def stats(self, model):
        full = model.full_covariances()
        log_prob = np.stack(
            [
                np.log(model.weights[j])
                + scipy_stats.multivariate_normal(model.means[j], full[j]).logpdf(
                    self.X
                )
                for j in range(self.n_components)
            ]
        )
        log_norm = np.logaddexp.reduce(log_prob, axis=0)
        resp = np.exp(log_prob - log_norm)
        y = (self.X - self.center).T
        second = np.empty((self.covariance.n_second_order(self.n_features), len(y.T)))
        self.covariance.second_order_features(y, second)
        features = np.vstack([np.ones(len(y.T)), y, second])
        centers = np.tile(self.center, (self.n_components, 1))
        return SuffStats(
            resp @ features.T, centers, float(log_norm.sum()), float(len(self.X))
        )

    def worst_rows(self, model, count):
        raise AssertionError("no component collapses on these data")


def test_run_em_needs_nothing_but_the_protocol(covariance_type):
    X = make_three_gaussians(600, random_state=1)[0]
    # max_iter=0: the k-means start, untouched by EM.
    start = GaussianMixture(
        3, covariance_type=covariance_type, max_iter=0, random_state=0
    ).fit(X)
    model = start._fitted_model()
    source = ScipySource(X, model.covariance, 3)
    result = run_em(source, model, tol=1e-8, max_iter=200, reg_covar=1e-6)
    ours = GaussianMixture(
        3,
        covariance_type=covariance_type,
        tol=1e-8,
        max_iter=200,
        weights_init=model.weights,
        means_init=model.means,
        precisions_init=model.precisions,
    ).fit(X)
    assert result.converged and result.n_iter == ours.n_iter_
    assert_allclose(result.model.means, ours.means_, rtol=1e-9, atol=1e-9)
    assert_allclose(result.model.covariances, ours.covariances_, rtol=1e-9, atol=1e-9)
    assert result.lower_bound == pytest.approx(ours.lower_bound_, rel=1e-11)
    bounds = np.array(result.lower_bounds)
    assert np.all(np.diff(bounds) >= -1e-12 * np.abs(bounds[1:]))


def test_one_component_m_step_is_the_sample_mean_and_covariance():
    X = make_three_gaussians(500, random_state=2)[0]
    covariance = get_covariance("full")
    data = TrainingData(X, None, covariance, 1)
    stats = data.stats_given(labels=np.zeros(len(X), dtype=np.intp))
    model = params_from_stats(stats, covariance, reg_covar=0.0)
    assert_allclose(model.means[0], X.mean(axis=0), rtol=1e-12)
    assert_allclose(model.covariances[0], np.cov(X.T, bias=True), rtol=1e-10)


@pytest.mark.parametrize("direct", [False, True])
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_label_statistics_are_each_labels_weighted_mean_and_scatter(
    monkeypatch, covariance_type, direct
):
    """Hard labels (-1: no component) give, per label, the weighted count,
    mean and scatter of its rows about that mean, whatever the chunking."""
    if direct:
        monkeypatch.setattr(dense_module, "DIRECT_SECOND_ORDER", 0)
    rng = np.random.RandomState(1)
    X = 5.0 + rng.randn(700, 3) * [1.0, 2.0, 0.5]
    labels = rng.randint(-1, 3, len(X))
    w = rng.uniform(0.2, 2.0, len(X))
    covariance = get_covariance(covariance_type)
    data = TrainingData(X, w, covariance, 3, chunk_size=64)
    assert data.dense.direct == direct
    stats = data.stats_given(labels=labels)
    for j in range(3):
        rows = labels == j
        mean = np.average(X[rows], axis=0, weights=w[rows])
        y = X[rows] - mean
        assert_allclose(stats.centers[j], mean, rtol=1e-13)
        assert_allclose(stats.moments[j, 0], w[rows].sum(), rtol=1e-13)
        assert_allclose(stats.moments[j, 1:4], 0.0, atol=1e-11)
        assert_allclose(
            stats.moments[j, 4:],
            covariance.second_order_of((y.T * w[rows]) @ y),
            rtol=1e-12,
        )


def test_floored_exponents_change_no_statistic(monkeypatch):
    """Flooring log-densities far below a row's maximum (for numpy's fast
    exp) leaves the statistics as they were, to rounding."""
    model = random_model("full", n_components=4, n_features=8)
    # Narrow components far apart: most log-densities are far below -700.
    narrow = Mixture(
        model.weights,
        30.0 * model.means,
        model.covariances / 50.0,
        model.covariance.precisions_cholesky(model.covariances / 50.0),
        model.covariance,
    )
    X = narrow.sample(np.random.RandomState(0), 2000)[0]
    # The numpy kernel's (the compiled one has its own exp, without a slow path).
    monkeypatch.setenv("SKLEARN_EM_ENGINE", "numpy")
    floored = TrainingData(X, None, model.covariance, 4)
    assert floored.dense.floor_exp and floored.dense.compiled is None
    monkeypatch.setattr(dense_module, "_FLOOR_FROM_FEATURES", 100)
    exact = TrainingData(X, None, model.covariance, 4)
    assert not exact.dense.floor_exp
    dense = exact.dense
    log_prob = dense.log_prob(dense.workspace(), X, dense.prepare(narrow))[1]
    assert np.mean(log_prob - log_prob.max(axis=0) < -700) > 0.5
    got, expected = floored.stats(narrow), exact.stats(narrow)
    assert_allclose(got.moments, expected.moments, rtol=1e-14, atol=1e-250)
    assert got.log_likelihood == expected.log_likelihood


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_direct_form_equals_the_feature_form(monkeypatch, covariance_type):
    """Above DIRECT_SECOND_ORDER the kernel forms no feature rows; the
    statistics and densities are the same."""
    model = random_model(covariance_type, n_features=12)
    X = sample_with_missing(model, 1500, 0.1, n_patterns=3)
    features = TrainingData(X, None, model.covariance, 3, chunk_size=200)
    expected = features.stats(model)
    assert not features.dense.direct
    monkeypatch.setattr(dense_module, "DIRECT_SECOND_ORDER", 0)
    direct = TrainingData(X, None, model.covariance, 3, chunk_size=200)
    assert direct.dense.direct
    got = direct.stats(model).recentered(expected.centers, model.covariance)
    assert_allclose(got.moments, expected.moments, rtol=1e-10, atol=1e-8)
    assert got.log_likelihood == pytest.approx(expected.log_likelihood, rel=1e-12)
    assert_allclose(direct.log_prob(model), features.log_prob(model), rtol=1e-11)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_direct_form_with_symmetric_products_equals_general_products(
    monkeypatch, covariance_type
):
    """The direct form's symmetric moment products (above
    DIRECT_SYMMETRIC_VALUES values per chunk) give the general products'
    statistics, weighted, for given labels too."""
    monkeypatch.setenv("SKLEARN_EM_ENGINE", "numpy")
    monkeypatch.setattr(dense_module, "DIRECT_SECOND_ORDER", 0)
    model = random_model(covariance_type, n_components=3, n_features=7)
    X = model.sample(np.random.RandomState(3), 900)[0]
    w = np.random.RandomState(4).uniform(0.0, 2.0, len(X))
    labels = np.random.RandomState(5).randint(-1, 3, len(X))

    def outcome(smallest):
        monkeypatch.setattr(dense_module, "DIRECT_SYMMETRIC_VALUES", smallest)
        data = TrainingData(X, w, model.covariance, 3, chunk_size=300)
        assert data.dense.direct
        return data.stats(model), data.stats_given(labels=labels)

    general, symmetric = outcome(10**9), outcome(0)
    for got, want in zip(symmetric, general, strict=True):
        assert_allclose(got.moments, want.moments, rtol=1e-12, atol=1e-9)
        assert got.log_likelihood == pytest.approx(want.log_likelihood, 1e-13)


def test_high_dimension_matches_sklearn_from_the_same_start():
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    rng = np.random.RandomState(0)
    X = rng.randn(300, 60) + 3.0 * rng.randint(0, 2, 300)[:, None]
    params = dict(n_components=2, reg_covar=1e-3, random_state=0, tol=1e-6)
    ours = GaussianMixture(**params).fit(X)
    theirs = SklearnGaussianMixture(**params).fit(X)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-12)
    assert_allclose(ours.covariances_, theirs.covariances_, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
@pytest.mark.parametrize("weighted", [False, True])
def test_statistics_of_many_models_in_one_pass_equal_each_models(
    covariance_type, weighted
):
    """``stats_many`` (one pass over the rows for several models, on the numpy
    kernel) gives each model's ``stats``: with chunks, weights, rows so far
    out that every density underflows (the shifted log-sum-exp), and a model
    with a component too narrow for the feature rows (computed alone)."""
    from sklearn_em import config_context

    rng = np.random.RandomState(3)
    models = [random_model(covariance_type, seed=s) for s in range(3)]
    X = np.vstack([models[0].sample(rng, 600)[0], np.full((3, 4), 60.0)])
    w = rng.uniform(0.1, 2, len(X)) if weighted else None
    base = models[1]
    narrow = base.covariance.precisions_cholesky(
        base.covariance.covariances_from_moments(
            np.ones(3), np.zeros((3, 4)),
            np.tile(base.covariance.second_order_of(np.eye(4) * 1e-14), (3, 1)),
            0.0,
        )
    )  # fmt: skip
    models.append(Mixture(base.weights, base.means, None, narrow, base.covariance))
    with config_context(engine="numpy"):
        source = TrainingData(X, w, models[0].covariance, 3, chunk_size=128)
    assert len(source.dense.prepare(models[3]).local) > 0
    with single_threaded_blas():
        want = [source.stats(model) for model in models]
        got = source.stats_many(models)
    for a, b in zip(want, got, strict=True):
        scale = np.abs(a.moments).max()
        assert_allclose(b.moments, a.moments, rtol=0, atol=1e-12 * scale)
        assert_allclose(b.log_likelihood, a.log_likelihood, rtol=1e-12)
        np.testing.assert_array_equal(b.centers, a.centers)
        assert b.total_weight == a.total_weight
