"""The estimator in the places users put it: Pipelines, grid searches, clones."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sklearn_em import GaussianMixture
from sklearn_em.datasets import make_three_gaussians


@pytest.fixture(scope="module")
def data():
    return make_three_gaussians(1500, random_state=0)


def negative_bic(estimator, X, y=None):
    """Scorer: higher is better, so BIC enters with a minus sign."""
    return -estimator.bic(X)


def test_pipeline_with_scaler_recovers_the_three_clusters(data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=0))
    labels = pipe.fit_predict(X)
    assert adjusted_rand_score(y, labels) > 0.85
    assert adjusted_rand_score(y, pipe.predict(X)) > 0.85
    assert np.isfinite(pipe.score(X))


def test_grid_search_with_bic_scorer_picks_three_components(data):
    X, _ = data
    search = GridSearchCV(
        GaussianMixture(random_state=0),
        {"n_components": [1, 2, 3, 4, 5, 6], "tol": [1e-3, 1e-4]},
        scoring=negative_bic,
        cv=KFold(3, shuffle=True, random_state=0),
    )
    search.fit(X)
    assert search.best_params_["n_components"] == 3


def test_grid_search_with_default_score_prefers_enough_components(data):
    """The default score (held-out log-likelihood) must rank 1 and 2 below 3."""
    X, _ = data
    search = GridSearchCV(
        GaussianMixture(random_state=0),
        {"n_components": [1, 2, 3, 4], "tol": [1e-3, 1e-4]},
        cv=KFold(3, shuffle=True, random_state=0),
    )
    search.fit(X)
    scores = dict(
        zip(
            [(p["n_components"], p["tol"]) for p in search.cv_results_["params"]],
            search.cv_results_["mean_test_score"],
            strict=False,
        )
    )
    assert search.best_params_["n_components"] >= 3
    assert scores[(3, 1e-3)] > scores[(2, 1e-3)] > scores[(1, 1e-3)]


def test_pipeline_inside_grid_search_over_n_components_and_tol(data):
    X, _ = data
    pipe = make_pipeline(StandardScaler(), GaussianMixture(random_state=0))
    search = GridSearchCV(
        pipe,
        {
            "gaussianmixture__n_components": [2, 3, 4],
            "gaussianmixture__tol": [1e-2, 1e-4],
        },
        scoring=lambda est, X, y=None: -est[-1].bic(est[:-1].transform(X)),
        cv=3,
    ).fit(X)
    assert search.best_params_["gaussianmixture__n_components"] == 3


def test_clone_keeps_parameters_and_drops_the_fit(data):
    X, _ = data
    gmm = GaussianMixture(4, covariance_type="diag", random_state=0).fit(X)
    copy = clone(gmm)
    assert copy.get_params() == gmm.get_params()
    assert not hasattr(copy, "means_")


def test_feature_names_are_remembered():
    import pandas as pd

    X, _ = make_three_gaussians(300, random_state=0)
    frame = pd.DataFrame(X, columns=["a", "b"])
    gmm = GaussianMixture(3, random_state=0).fit(frame)
    assert list(gmm.feature_names_in_) == ["a", "b"]
