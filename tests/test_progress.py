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


class _Recorder:
    """A scikit-learn fit callback that records its tasks and can stop a run
    after a number of iterations."""

    def __init__(self, stop_after=None):
        self.begun, self.ended, self.stop_after = [], [], stop_after
        self.set_up = self.torn_down = 0

    def setup(self, estimator, context):
        self.set_up += 1

    def teardown(self, estimator, context):
        self.torn_down += 1

    def on_fit_task_begin(self, estimator, context, **kwargs):
        self.begun.append(context.task_name)

    def on_fit_task_end(self, estimator, context, **kwargs):
        self.ended.append(context.task_name)
        iterations = self.ended.count("iteration")
        return self.stop_after is not None and iterations >= self.stop_after


@pytest.mark.parametrize("cls", [GaussianMixture, BayesianGaussianMixture])
def test_sklearn_callbacks_see_the_fit_its_inits_and_iterations(X, cls):
    pytest.importorskip(
        "sklearn.callback", reason="scikit-learn >= 1.9 has the callback API"
    )
    recorder = _Recorder()
    model = cls(n_components=3, n_init=2, random_state=0).set_callbacks(recorder)
    model.fit(X)
    iterations = sum(len(run) for run in model.lower_bounds_per_init_)
    for tasks in (recorder.begun, recorder.ended):
        assert tasks.count("fit") == 1
        assert tasks.count("initialization") == 2
        assert tasks.count("iteration") == iterations
    assert recorder.set_up == recorder.torn_down == 1


def test_a_callback_can_stop_a_run(X):
    pytest.importorskip(
        "sklearn.callback", reason="scikit-learn >= 1.9 has the callback API"
    )
    model = GaussianMixture(3, random_state=0, tol=0.0).set_callbacks(
        _Recorder(stop_after=2)
    )
    with pytest.warns(Warning, match="did not converge"):
        model.fit(X)
    assert model.n_iter_ == 2 and not model.converged_
