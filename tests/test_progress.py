"""Progress on long fits: scikit-learn's verbose messages and a progress bar."""

import sys

import pytest

from sklearn_em import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC
from sklearn_em.datasets import make_three_gaussians

pytest.importorskip("tqdm", reason="the progress bar needs tqdm (test extra)")


@pytest.fixture(scope="module")
def X():
    return make_three_gaussians(600, random_state=0)[0]


@pytest.mark.parametrize("cls", [GaussianMixture, BayesianGaussianMixture])
def test_progress_bar_shows_every_init_with_the_lower_bound(X, cls, capsys):
    model = cls(n_components=3, n_init=2, progress=True, random_state=0).fit(X)
    err = capsys.readouterr().err
    assert f"{cls.__name__} init 1/2" in err and f"{cls.__name__} init 2/2" in err
    assert "lower_bound=" in err and "change=" in err
    # Nothing of the bar is left on the fitted estimator (it pickles, clones).
    assert not hasattr(model, "_progress_bar")


def test_grid_progress_bar(X, capsys):
    GaussianMixtureIC(n_components=2, progress=True, random_state=0).fit(X)
    err = capsys.readouterr().err
    assert "grid:" in err and "/8 [" in err and "model=" in err


def test_no_bar_and_no_tqdm_needed_by_default(X, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    GaussianMixture(3, random_state=0).fit(X)
    assert capsys.readouterr().err == ""
    with pytest.raises(ImportError, match="pip install tqdm"):
        GaussianMixture(3, progress=True, random_state=0).fit(X)


def test_a_failed_fit_closes_its_bar(X):
    # Identical rows and no regularisation: every component collapses.
    rows = [[1.0, 1.0]] * 10 + [[2.0, 2.0]] * 10
    means = [[1.0, 1.0], [2.0, 2.0]]
    model = GaussianMixture(2, progress=True, reg_covar=0.0, means_init=means)
    with pytest.raises(ValueError, match="ill-defined"):
        model.fit(rows)
    assert not hasattr(model, "_progress_bar")


def test_verbose_prints_what_sklearn_prints(X, capsys):
    from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

    outputs = []
    for cls in (GaussianMixture, SklearnGaussianMixture):
        cls(3, verbose=1, random_state=0, n_init=2).fit(X)
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]
