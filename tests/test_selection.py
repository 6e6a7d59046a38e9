"""GaussianMixtureIC: the grid of fits, the criteria and the chosen model."""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from sklearn_em import GaussianMixture, GaussianMixtureIC
from sklearn_em.datasets import make_three_gaussians


@pytest.fixture(scope="module")
def X():
    return make_three_gaussians(1500, random_state=0)[0]


@pytest.fixture(scope="module")
def fitted(X):
    return GaussianMixtureIC(n_components=6, random_state=0).fit(X)


def _row(ic, k, covariance_type):
    table = ic.criteria_
    (index,) = np.flatnonzero(
        (table["n_components"] == k) & (table["covariance_type"] == covariance_type)
    )
    return {name: values[index] for name, values in table.items()}


def test_picks_three_full_components_on_the_three_gaussians(fitted, X):
    assert (fitted.n_components_, fitted.covariance_type_) == (3, "full")
    table = fitted.criteria_
    assert len(table["bic"]) == 6 * 4
    assert set(table) >= {"n_components", "covariance_type", "bic", "aic", "icl"}
    assert fitted.bic(X) == pytest.approx(np.nanmin(table["bic"]), rel=1e-12)
    pd = pytest.importorskip("pandas", reason="criteria_ is meant for a DataFrame")
    frame = pd.DataFrame(fitted.criteria_)
    assert frame.shape[0] == 24 and frame["error"].isna().all()


@pytest.mark.parametrize("k", [1, 2, 4])
def test_every_cell_is_the_standalone_fit(fitted, X, k, covariance_type):
    """One initialisation per k serves every covariance type, and each cell
    is exactly what GaussianMixture with the same random_state fits."""
    alone = GaussianMixture(
        k, covariance_type=covariance_type, random_state=0, tol=fitted.tol
    )
    with warnings.catch_warnings():
        # Some cells stop at max_iter with the tight tolerance; the grid
        # records that warning too (criteria_["warnings"]).
        warnings.simplefilter("ignore", ConvergenceWarning)
        alone.fit(X)
    row = _row(fitted, k, covariance_type)
    assert row["bic"] == pytest.approx(alone.bic(X), rel=1e-10)
    assert row["aic"] == pytest.approx(alone.aic(X), rel=1e-10)
    assert row["n_iter"] == alone.n_iter_


def test_icl_adds_the_classification_entropy(fitted, X):
    table = fitted.criteria_
    assert np.all(table["icl"] >= table["bic"] - 1e-9)
    single = table["n_components"] == 1
    assert_allclose(table["icl"][single], table["bic"][single])
    best = fitted.best_estimator_
    entropy = -np.log(best.predict_proba(X).max(axis=1)).sum()
    row = _row(fitted, 3, "full")
    assert row["icl"] == pytest.approx(row["bic"] + 2 * entropy, rel=1e-10)
    by_icl = GaussianMixtureIC(n_components=6, criterion="icl", random_state=0)
    assert by_icl.fit(X).n_components_ == 3


def test_the_chosen_model_answers_every_question(fitted, X):
    best = fitted.best_estimator_
    assert fitted.n_iter_ == best.n_iter_
    np.testing.assert_array_equal(fitted.labels_, best.labels_)
    np.testing.assert_array_equal(fitted.predict(X), best.predict(X))
    assert_allclose(fitted.predict_proba(X), best.predict_proba(X))
    assert_allclose(fitted.score_samples(X), best.score_samples(X))
    assert fitted.score(X) == best.score(X)
    assert fitted.aic(X) == best.aic(X)
    assert fitted.sample(5)[0].shape == (5, 2)
    # It refits to itself on its own.
    refit = GaussianMixture(**best.get_params()).fit(X)
    assert refit.lower_bound_ == pytest.approx(best.lower_bound_, rel=1e-10)


def test_a_cell_that_cannot_be_fitted_is_nan_with_its_reason():
    X = make_three_gaussians(6, random_state=0)[0]
    ic = GaussianMixtureIC(n_components=[2, 8], covariance_type="diag")
    ic.set_params(random_state=0).fit(X)
    row = _row(ic, 8, "diag")
    assert np.isnan(row["bic"]) and "n_samples >= n_components" in row["error"]
    assert ic.n_components_ == 2


def test_only_the_chosen_models_warnings_are_issued():
    X = make_three_gaussians(300, random_state=0)[0]
    ic = GaussianMixtureIC(n_components=[1, 3], max_iter=2, random_state=0)
    with pytest.warns(Warning, match="did not converge") as issued:
        ic.fit(X)
    recorded = sum(len(w) for w in ic.criteria_["warnings"])
    assert recorded > len(issued) >= 1


def test_sample_weight_reaches_fits_and_criteria(X):
    w = np.random.RandomState(0).uniform(0.5, 2.0, size=len(X))
    ic = GaussianMixtureIC(n_components=[2, 3], covariance_type="full")
    ic.set_params(random_state=0).fit(X, sample_weight=w)
    alone = GaussianMixture(3, random_state=0, tol=ic.tol).fit(X, sample_weight=w)
    row = _row(ic, 3, "full")
    log_likelihood = alone.score(X, sample_weight=w) * w.sum()
    assert row["log_likelihood"] == pytest.approx(log_likelihood, rel=1e-10)
    p = row["n_parameters"]
    assert row["bic"] == pytest.approx(
        -2 * log_likelihood + p * np.log(w.sum()), rel=1e-10
    )


def test_dask_input_gives_the_in_memory_choice(X):
    da = pytest.importorskip("dask.array", reason="needs the 'dask' extra")
    import dask

    memory = GaussianMixtureIC(n_components=4, random_state=0).fit(X)
    with dask.config.set(scheduler="threads"):
        lazy = GaussianMixtureIC(n_components=4, random_state=0)
        lazy.fit(da.from_array(X, chunks=500))
    assert_allclose(lazy.criteria_["bic"], memory.criteria_["bic"], rtol=1e-9)
    assert (lazy.n_components_, lazy.covariance_type_) == (3, "full")


def test_same_choice_as_grid_search_with_a_bic_scorer(fitted, X):
    grid = GridSearchCV(
        GaussianMixture(random_state=0, tol=fitted.tol),
        {
            "n_components": list(range(1, 7)),
            "covariance_type": ["full", "tied", "diag", "spherical"],
        },
        scoring=lambda est, X, y=None: -est.bic(X),
        cv=[(np.arange(len(X)), np.arange(len(X)))],
    )
    with warnings.catch_warnings():
        # GridSearchCV fits every cell afresh; some are poor and say so.
        warnings.simplefilter("ignore")
        grid.fit(X)
    assert grid.best_params_ == {"n_components": 3, "covariance_type": "full"}
    scores = -grid.cv_results_["mean_test_score"]
    assert np.nanmin(scores) == pytest.approx(np.nanmin(fitted.criteria_["bic"]))
