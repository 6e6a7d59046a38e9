"""Moving models between this library and scikit-learn, and persisting them
without pickle."""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn import mixture as sklearn_mixture

from sklearn_em import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC
from sklearn_em.datasets import make_three_gaussians

ESTIMATORS = (GaussianMixture, BayesianGaussianMixture)


@pytest.fixture(scope="module")
def X():
    return make_three_gaussians(600, random_state=0)[0]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_to_sklearn_predicts_as_we_do(X, cls, covariance_type):
    ours = cls(n_components=3, covariance_type=covariance_type, random_state=0).fit(X)
    theirs = ours.to_sklearn()
    assert type(theirs) is getattr(sklearn_mixture, cls.__name__)
    assert theirs.get_params()["n_components"] == 3
    assert_allclose(theirs.predict_proba(X), ours.predict_proba(X), atol=1e-13)
    assert_allclose(theirs.score_samples(X), ours.score_samples(X), rtol=1e-12)
    # A copy: changing it leaves our model alone.
    theirs.means_[0, 0] += 1.0
    assert theirs.means_[0, 0] != ours.means_[0, 0]


@pytest.mark.parametrize("cls", ESTIMATORS)
def test_from_sklearn_predicts_as_sklearn_does(X, cls, covariance_type):
    theirs = getattr(sklearn_mixture, cls.__name__)(
        n_components=3, covariance_type=covariance_type, random_state=0
    ).fit(X)
    ours = cls.from_sklearn(theirs)
    assert type(ours) is cls
    assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-13)
    assert_allclose(ours.score_samples(X), theirs.score_samples(X), rtol=1e-12)
    assert all(isinstance(v, float) for v in ours.lower_bounds_)
    # It continues like any fitted model of ours.
    ours.partial_fit(X[:100])
    assert np.isfinite(ours.means_).all()


def test_from_sklearn_refuses_another_class(X):
    theirs = sklearn_mixture.GaussianMixture(2).fit(X)
    with pytest.raises(TypeError, match="needs a fitted scikit-learn Bayesian"):
        BayesianGaussianMixture.from_sklearn(theirs)


@pytest.mark.parametrize(
    "estimator",
    [
        GaussianMixture(3, random_state=0),
        BayesianGaussianMixture(random_state=0),
        GaussianMixtureIC(3, random_state=0),
    ],
    ids=lambda est: type(est).__name__,
)
def test_skops_round_trip_trusts_only_this_library(X, estimator):
    sio = pytest.importorskip("skops.io", reason="skops is in the test extra")
    estimator.fit(X)
    data = sio.dumps(estimator)
    untrusted = sio.get_untrusted_types(data=data)
    assert untrusted and all(name.startswith("sklearn_em.") for name in untrusted)
    loaded = sio.loads(data, trusted=untrusted)
    assert type(loaded) is type(estimator)
    assert_allclose(loaded.predict_proba(X), estimator.predict_proba(X), rtol=0)
