"""Tests of the demo (``python -m sklearn_em``) and of sklearn_em.plotting."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _helpers import COVARIANCE_TYPES
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

import sklearn_em
from sklearn_em import GaussianMixture, plotting
from sklearn_em.__main__ import main, random_initial_parameters
from sklearn_em.datasets import make_three_gaussians

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
REPO_ROOT = Path(sklearn_em.__file__).resolve().parent.parent
# matplotlib is optional: the demo must work without it, only plots need it.
needs_matplotlib = pytest.mark.skipif(
    importlib.util.find_spec("matplotlib") is None, reason="needs matplotlib"
)


def _axes():
    """Axes on a pyplot-free figure, so tests leave no open figures behind."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def _assert_png(path):
    data = Path(path).read_bytes()
    assert data.startswith(PNG_MAGIC)
    assert len(data) > 10_000


def _assert_demo_output(out):
    for name in ("sklearn_em", "scikit-learn"):
        match = re.search(
            rf"^{name}:\s+(\d+) EM steps, converged: (True|False)", out, re.M
        )
        assert match, f"no EM step count for {name} in:\n{out}"
        assert int(match.group(1)) >= 1
    for k in range(3):
        # One line each for the true, our and scikit-learn's component k.
        assert len(re.findall(rf"pi{k} = 0\.\d{{4}}", out)) == 3
        assert len(re.findall(rf"mu{k} = \[-?\d+\.\d{{3}}, -?\d+\.\d{{3}}\]", out)) == 3
        assert len(re.findall(rf"Sigma{k} = \[\[", out)) == 3
    assert "Max |sklearn_em - scikit-learn|" in out
    assert re.search(r"Fit time .*sklearn_em [\d.]+ ms, scikit-learn [\d.]+ ms", out)


@pytest.fixture(scope="module")
def data():
    X, _ = make_three_gaussians(900, random_state=0)
    return X


@pytest.fixture(scope="module", params=COVARIANCE_TYPES)
def fitted(request, data):
    return GaussianMixture(covariance_type=request.param, random_state=0).fit(data)


# -- the demo --------------------------------------------------------------------------
@needs_matplotlib
def test_main_prints_em_steps_and_three_components_and_writes_a_png(tmp_path, capsys):
    output = tmp_path / "x.png"

    status = main(["--n-samples", "900", "--output", str(output)])

    out = capsys.readouterr().out
    assert status == 0
    _assert_demo_output(out)
    assert f"Plot written to {output}" in out
    _assert_png(output)


def test_demo_first_component_is_the_seed_component(capsys):
    main(["--no-plot"])

    out = capsys.readouterr().out
    assert re.search(r"true:\s+pi0 = 0\.3333\s+mu0 = \[4\.379, 4\.352\]", out)
    assert "Sigma0 = [[2.748, -0.119], [-0.119, 0.618]]" in out


def test_demo_fits_agree_with_scikit_learn_from_the_same_start(capsys):
    main(["--n-samples", "1200", "--random-state", "3", "--no-plot"])

    out = capsys.readouterr().out
    steps = re.findall(r"^\S+:\s+(\d+) EM steps", out, re.M)
    assert len(steps) == 2 and steps[0] == steps[1]
    diffs = re.search(
        r"weights ([\d.e+-]+), means ([\d.e+-]+), covariances ([\d.e+-]+)", out
    )
    assert diffs and max(float(d) for d in diffs.groups()) < 1e-6


def test_too_few_samples_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--n-samples", "2", "--no-plot"])

    assert exit_info.value.code == 2
    assert "--n-samples: must be at least 3" in capsys.readouterr().err


def test_no_plot_writes_no_file(tmp_path, capsys):
    output = tmp_path / "x.png"

    assert main(["--n-samples", "300", "--output", str(output), "--no-plot"]) == 0

    assert not output.exists()
    assert "Plot written" not in capsys.readouterr().out


def test_demo_without_matplotlib_prints_a_note_and_succeeds(
    tmp_path, capsys, monkeypatch
):
    # A None entry makes "import matplotlib" raise ImportError.
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    output = tmp_path / "x.png"

    assert main(["--n-samples", "300", "--output", str(output)]) == 0

    out = capsys.readouterr().out
    assert "matplotlib is not installed" in out
    assert "pip install sklearn-em[plot]" in out
    assert not output.exists()


@needs_matplotlib
def test_module_runs_as_a_script_without_warnings(tmp_path):
    output = tmp_path / "x.png"
    args = ["--n-samples", "600", "--output", str(output)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )

    result = subprocess.run(
        [sys.executable, "-W", "error", "-m", "sklearn_em", *args],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    _assert_demo_output(result.stdout)
    _assert_png(output)


def test_random_initial_parameters_are_valid_and_near_the_data(data):
    init = random_initial_parameters(data, 3, random_state=0)

    weights, means, precisions = (
        init["weights_init"],
        init["means_init"],
        init["precisions_init"],
    )
    assert weights.shape == (3,) and np.all(weights > 0)
    assert weights.sum() == pytest.approx(1.0)
    assert means.shape == (3, 2)
    # Drawn in standardised coordinates: within a few standard deviations.
    z = (means - data.mean(axis=0)) / data.std(axis=0)
    assert np.all(np.abs(z) < 5)
    assert precisions.shape == (3, 2, 2)
    for precision in precisions:
        np.testing.assert_array_equal(precision, precision.T)
        assert np.all(np.linalg.eigvalsh(precision) > 0)
    # Both libraries accept them as they are.
    for cls in (GaussianMixture, SklearnGaussianMixture):
        assert cls(n_components=3, max_iter=500, **init).fit(data).converged_


def test_random_initial_parameters_are_reproducible(data):
    a = random_initial_parameters(data, 3, random_state=7)
    b = random_initial_parameters(data, 3, random_state=7)

    for key in a:
        np.testing.assert_array_equal(a[key], b[key])


# -- plotting --------------------------------------------------------------------------
@needs_matplotlib
def test_plot_clusters_draws_one_ellipse_and_mean_per_component(fitted, data):
    ax = plotting.plot_clusters(fitted, data, ax=_axes())

    from matplotlib.patches import Ellipse

    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    assert len(ellipses) == fitted.n_components
    for ellipse, mean in zip(ellipses, fitted.means_, strict=True):
        np.testing.assert_allclose(ellipse.center, mean)
    assert ax.get_xlabel() and ax.get_ylabel()
    assert f"{fitted.n_iter_} EM steps" in ax.get_title()
    assert ax.get_legend() is not None


@needs_matplotlib
def test_ellipses_span_two_standard_deviations(data):
    gmm = GaussianMixture(covariance_type="diag", random_state=0).fit(data)

    ax = plotting.plot_clusters(gmm, data, ax=_axes())

    for ellipse, variances in zip(ax.patches, gmm.covariances_, strict=True):
        # Axis-aligned: the axes are the sorted 2-sigma diameters 4 * sd.
        assert sorted([ellipse.width, ellipse.height]) == pytest.approx(
            sorted(4 * np.sqrt(variances))
        )


def test_every_covariance_type_expands_to_full_matrices(covariance_type, data):
    gmm = GaussianMixture(
        n_components=2, covariance_type=covariance_type, random_state=0
    ).fit(data)

    expanded = plotting._full_covariances(gmm.covariances_, covariance_type, 2, 2)

    assert expanded.shape == (2, 2, 2)
    expected = {
        "full": lambda c: c,
        "tied": lambda c: np.stack([c, c]),
        "diag": lambda c: np.stack([np.diag(v) for v in c]),
        "spherical": lambda c: np.stack([v * np.eye(2) for v in c]),
    }[covariance_type](gmm.covariances_)
    np.testing.assert_allclose(expanded, expected)


def test_tied_and_diag_covariances_of_the_same_shape_are_told_apart():
    # With 2 components in 2-D both types store a (2, 2) array.
    values = np.array([[1.0, 0.5], [0.5, 2.0]])

    tied = plotting._full_covariances(values, "tied", 2, 2)
    diag = plotting._full_covariances(values, "diag", 2, 2)

    np.testing.assert_array_equal(tied[1], values)
    np.testing.assert_array_equal(diag[1], [[0.5, 0.0], [0.0, 2.0]])


@needs_matplotlib
def test_plot_clusters_works_with_scikit_learns_estimator(data):
    gmm = SklearnGaussianMixture(n_components=3, random_state=0).fit(data)

    ax = plotting.plot_clusters(gmm, data, ax=_axes())

    assert len(ax.patches) == 3


@needs_matplotlib
def test_plot_clusters_rejects_three_dimensional_data():
    X = np.random.RandomState(0).standard_normal((200, 3))
    gmm = GaussianMixture(n_components=2, random_state=0).fit(X)

    with pytest.raises(ValueError, match="2-D data only"):
        plotting.plot_clusters(gmm, X, ax=_axes())


@needs_matplotlib
def test_plot_clusters_rejects_a_mixture_fitted_in_three_dimensions(data):
    X3 = np.random.RandomState(0).standard_normal((200, 3))
    gmm = GaussianMixture(n_components=2, random_state=0).fit(X3)

    with pytest.raises(ValueError, match="2-D mixtures only"):
        plotting.plot_clusters(gmm, data, ax=_axes())


@needs_matplotlib
def test_plot_fit_rejects_three_dimensional_data(tmp_path):
    X = np.random.RandomState(0).standard_normal((200, 3))
    gmm = GaussianMixture(n_components=2, random_state=0).fit(X)

    with pytest.raises(ValueError, match="2-D"):
        plotting.plot_fit(gmm, X, tmp_path / "x.png")


@needs_matplotlib
def test_plotting_an_unfitted_mixture_raises_not_fitted(data):
    with pytest.raises(NotFittedError):
        plotting.plot_clusters(GaussianMixture(), data, ax=_axes())
    with pytest.raises(NotFittedError):
        plotting.plot_lower_bounds(GaussianMixture(), ax=_axes())


@needs_matplotlib
def test_plot_clusters_scatters_at_most_max_points(fitted):
    X, _ = make_three_gaussians(5000, random_state=1)

    ax = plotting.plot_clusters(fitted, X, ax=_axes(), max_points=1000)

    scattered = sum(len(c.get_offsets()) for c in ax.collections)
    assert scattered == 1000 + fitted.n_components  # points + the means
    assert "1,000 shown" in ax.get_title()


@needs_matplotlib
def test_plot_lower_bounds_draws_one_point_per_em_step(fitted):
    ax = plotting.plot_lower_bounds(fitted, ax=_axes())

    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_xdata(), np.arange(1, fitted.n_iter_ + 1))
    np.testing.assert_allclose(line.get_ydata(), fitted.lower_bounds_)
    assert ax.get_xlabel() == "EM step"


@needs_matplotlib
def test_plot_functions_create_pyplot_axes_when_none_are_given(data):
    plt = pytest.importorskip(
        "matplotlib.pyplot", reason="the figure needs matplotlib (test extra)"
    )
    gmm = GaussianMixture(random_state=0).fit(data)
    try:
        ax_clusters = plotting.plot_clusters(gmm, data)
        ax_bounds = plotting.plot_lower_bounds(gmm)
        assert ax_clusters is not ax_bounds
        assert len(ax_clusters.patches) == 3
    finally:
        plt.close("all")


@needs_matplotlib
def test_plot_fit_writes_a_png_for_every_covariance_type(
    covariance_type, data, tmp_path
):
    gmm = GaussianMixture(covariance_type=covariance_type, random_state=0).fit(data)

    path = plotting.plot_fit(gmm, data, str(tmp_path / "fit.png"))

    assert path == tmp_path / "fit.png"
    _assert_png(path)


def test_plotting_without_matplotlib_asks_to_install_the_extra(
    fitted, data, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)

    for call in (
        lambda: plotting.plot_clusters(fitted, data),
        lambda: plotting.plot_lower_bounds(fitted),
        lambda: plotting.plot_fit(fitted, data, tmp_path / "x.png"),
    ):
        with pytest.raises(
            ImportError, match=re.escape("pip install sklearn-em[plot]")
        ):
            call()
