"""Specifications of sklearn_em.plotting: what each figure draws.

No image comparison: each test reads back the artists a function put on the
Axes (ellipses, lines, contour paths, marker sizes) and checks them against
the fitted model, computed independently here.
"""

import copy
import runpy
from pathlib import Path

import numpy as np
import pytest
from _helpers import COVARIANCE_TYPES, as_full_stack
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.datasets import load_iris
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.mixture import GaussianMixture as SklearnGaussianMixture

from sklearn_em import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC
from sklearn_em.datasets import make_three_gaussians

matplotlib = pytest.importorskip(
    "matplotlib", reason="plots need matplotlib (test extra)"
)
matplotlib.use("Agg")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.contour import ContourSet  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from sklearn_em import plotting  # noqa: E402

GALLERY = (
    Path(__file__).resolve().parent.parent / "examples" / "plot_mixture_figures.py"
)
PLOTS_OF_DATA = (
    plotting.plot_clusters,
    plotting.plot_uncertainty,
    plotting.plot_density,
)


def _axes():
    """Axes on a pyplot-free figure, so tests leave no open figures behind."""
    fig = Figure()
    FigureCanvasAgg(fig)
    return fig.add_subplot()


def _ellipses(ax):
    return [p for p in ax.patches if isinstance(p, Ellipse)]


def _ellipse_covariance(ellipse):
    """The covariance whose 2-sigma ellipse ``ellipse`` is (angle-convention
    free: rebuilt from the axes and the rotation)."""
    theta = np.radians(ellipse.angle)
    rotation = np.array(
        [[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]]
    )
    axes = np.diag([(ellipse.width / 4) ** 2, (ellipse.height / 4) ** 2])
    return rotation @ axes @ rotation.T


def _scattered(ax):
    """Offsets of every point of the data scatters (not the means' markers)."""
    return np.concatenate(
        [c.get_offsets() for c in ax.collections if c.get_sizes()[0] < 100]
    )


def _contours(ax):
    pytest.importorskip(
        "matplotlib", minversion="3.8", reason="ContourSet is an artist from 3.8"
    )
    (contours,) = [c for c in ax.collections if isinstance(c, ContourSet)]
    return contours


def _contour_points(contours):
    """``(level, vertices)`` of every contour line drawn."""
    for level, path in zip(contours.levels, contours.get_paths(), strict=True):
        polygons = path.to_polygons(closed_only=False)
        if polygons:
            yield level, np.concatenate(polygons)


def _mixture_log_density(weights, means, covariances, points):
    """Independent log-density of a Gaussian mixture, with scipy."""
    return logsumexp(
        [
            np.log(w) + multivariate_normal(m, c).logpdf(points)
            for w, m, c in zip(weights, means, covariances, strict=True)
        ],
        axis=0,
    )


@pytest.fixture(scope="module")
def data():
    X, _ = make_three_gaussians(600, random_state=0)
    return X


@pytest.fixture(scope="module")
def iris():
    X = load_iris().data
    return (X - X.mean(axis=0)) / X.std(axis=0)


@pytest.fixture(scope="module")
def fitted_2d(data):
    return {
        t: GaussianMixture(3, covariance_type=t, random_state=0).fit(data)
        for t in COVARIANCE_TYPES
    }


@pytest.fixture(scope="module")
def fitted_4d(iris):
    return {
        t: GaussianMixture(3, covariance_type=t, random_state=0).fit(iris)
        for t in COVARIANCE_TYPES
    }


@pytest.fixture(scope="module")
def ic(data):
    return GaussianMixtureIC(n_components=4, random_state=0).fit(data)


@pytest.fixture(scope="module")
def models(data, ic):
    """One fitted model of each kind the functions accept."""
    return {
        "GaussianMixture": GaussianMixture(3, random_state=0).fit(data),
        "BayesianGaussianMixture": BayesianGaussianMixture(
            n_components=3, random_state=0
        ).fit(data),
        "GaussianMixtureIC": ic,
        "sklearn.mixture.GaussianMixture": SklearnGaussianMixture(
            3, random_state=0
        ).fit(data),
    }


def _full(model):
    mixture = getattr(model, "best_estimator_", model)
    return as_full_stack(mixture.covariances_, mixture.covariance_type, 3, 4)


# -- every function --------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["GaussianMixture", "BayesianGaussianMixture",
                                  "GaussianMixtureIC",
                                  "sklearn.mixture.GaussianMixture"])  # fmt: skip
@pytest.mark.parametrize("plot", PLOTS_OF_DATA, ids=lambda f: f.__name__)
def test_every_plot_of_data_returns_the_axes_it_was_given(plot, kind, models, data):
    ax = _axes()

    assert plot(models[kind], data, ax=ax) is ax
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()


@pytest.mark.parametrize("kind", ["GaussianMixture", "BayesianGaussianMixture",
                                  "GaussianMixtureIC"])  # fmt: skip
def test_plot_lower_bounds_returns_the_axes_it_was_given(kind, models):
    ax = _axes()

    assert plotting.plot_lower_bounds(models[kind], ax=ax) is ax


def test_plot_criteria_returns_the_axes_it_was_given(ic):
    ax = _axes()

    assert plotting.plot_criteria(ic, ax=ax) is ax


@pytest.mark.parametrize(
    "plot",
    [*PLOTS_OF_DATA, plotting.plot_lower_bounds, plotting.plot_criteria],
    ids=lambda f: f.__name__,
)
def test_an_unfitted_model_raises_not_fitted(plot, data):
    args = (data,) if plot in PLOTS_OF_DATA else ()
    model = GaussianMixtureIC() if plot is plotting.plot_criteria else GaussianMixture()

    with pytest.raises(NotFittedError):
        plot(model, *args, ax=_axes())


def test_without_axes_each_function_draws_on_a_new_pyplot_figure(models, data, ic):
    plt = pytest.importorskip(
        "matplotlib.pyplot", reason="plots need matplotlib (test extra)"
    )
    gmm = models["GaussianMixture"]
    try:
        axes = [
            plotting.plot_clusters(gmm, data),
            plotting.plot_uncertainty(gmm, data),
            plotting.plot_density(gmm, data),
            plotting.plot_lower_bounds(gmm),
            plotting.plot_criteria(ic),
        ]
        assert len({id(ax.figure) for ax in axes}) == len(axes)
    finally:
        plt.close("all")


# -- clusters --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["GaussianMixture", "BayesianGaussianMixture",
                                  "GaussianMixtureIC",
                                  "sklearn.mixture.GaussianMixture"])  # fmt: skip
def test_plot_clusters_draws_one_ellipse_per_component_at_its_mean(kind, models, data):
    model = models[kind]
    mixture = getattr(model, "best_estimator_", model)

    ax = plotting.plot_clusters(model, data, ax=_axes())

    ellipses = _ellipses(ax)
    assert len(ellipses) == mixture.n_components
    np.testing.assert_allclose([e.center for e in ellipses], mixture.means_)
    assert len(_scattered(ax)) == len(data)


def test_a_feature_pair_draws_the_marginal_covariances(
    covariance_type, fitted_4d, iris
):
    gmm = fitted_4d[covariance_type]

    ax = plotting.plot_clusters(gmm, iris, ax=_axes(), features=(1, 3))

    full = _full(gmm)
    for k, ellipse in enumerate(_ellipses(ax)):
        np.testing.assert_allclose(ellipse.center, gmm.means_[k, [1, 3]])
        np.testing.assert_allclose(
            _ellipse_covariance(ellipse), full[k][np.ix_([1, 3], [1, 3])], atol=1e-12
        )
    np.testing.assert_array_equal(
        np.sort(_scattered(ax), axis=0), np.sort(iris[:, [1, 3]], axis=0)
    )
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("feature 1", "feature 3")


def test_pca_projection_draws_w_sigma_w_transpose(covariance_type, fitted_4d, iris):
    gmm = fitted_4d[covariance_type]
    pca = PCA(n_components=2, svd_solver="full").fit(iris)
    W = pca.components_

    ax = plotting.plot_clusters(gmm, iris, ax=_axes(), projection="pca")

    full = _full(gmm)
    for k, ellipse in enumerate(_ellipses(ax)):
        np.testing.assert_allclose(ellipse.center, W @ (gmm.means_[k] - pca.mean_))
        np.testing.assert_allclose(
            _ellipse_covariance(ellipse), W @ full[k] @ W.T, atol=1e-12
        )
    np.testing.assert_allclose(
        np.sort(_scattered(ax), axis=0), np.sort(pca.transform(iris), axis=0)
    )
    assert ax.get_xlabel().startswith("PC1 (") and ax.get_ylabel().startswith("PC2 (")


def test_a_projection_matrix_maps_data_means_and_covariances(fitted_4d, iris):
    gmm = fitted_4d["full"]
    W = np.array([[1.0, 1.0, 0.0, 0.0], [0.0, 0.5, -1.0, 2.0]])

    ax = plotting.plot_clusters(gmm, iris, ax=_axes(), projection=W)

    for k, ellipse in enumerate(_ellipses(ax)):
        np.testing.assert_allclose(ellipse.center, W @ gmm.means_[k])
        np.testing.assert_allclose(
            _ellipse_covariance(ellipse), W @ gmm.covariances_[k] @ W.T, atol=1e-12
        )


def test_rows_with_nan_in_a_plotted_feature_are_left_out_and_counted(fitted_4d, iris):
    X = iris.copy()
    X[:10, 0] = np.nan  # a plotted feature
    X[10:15, 2] = np.nan  # another feature: sklearn_em still predicts the row
    gmm = fitted_4d["full"]

    ax = plotting.plot_clusters(gmm, X, ax=_axes(), features=(0, 1))

    assert len(_scattered(ax)) == len(X) - 10
    assert "10 with NaN not drawn" in ax.get_title()
    ax = plotting.plot_uncertainty(gmm, X, ax=_axes(), projection="pca")
    assert len(ax.collections[0].get_offsets()) == len(X) - 15


def test_an_estimator_that_cannot_predict_nan_leaves_out_every_row_with_nan(iris):
    X = iris.copy()
    X[10:15, 2] = np.nan
    gmm = SklearnGaussianMixture(3, random_state=0).fit(iris)

    ax = plotting.plot_clusters(gmm, X, ax=_axes(), features=(0, 1))

    assert len(_scattered(ax)) == len(X) - 5


def test_min_weight_hides_the_components_a_bayesian_mixture_left_empty(data):
    bgm = BayesianGaussianMixture(n_components=6, max_iter=500, random_state=0)
    bgm.fit(data)
    kept = bgm.weights_ >= 0.01
    assert 0 < kept.sum() < 6  # the premise: some components are all but empty

    ax = plotting.plot_clusters(bgm, data, ax=_axes(), min_weight=0.01)

    assert len(_ellipses(ax)) == kept.sum()
    assert f"{kept.sum()} of 6 components" in ax.get_title()
    assert any("hidden" in t.get_text() for t in ax.get_legend().get_texts())


def test_feature_names_label_the_axes_and_choose_the_features(iris):
    pd = pytest.importorskip("pandas", reason="feature names come from a DataFrame")
    frame = pd.DataFrame(iris, columns=["a", "b", "c", "d"])
    gmm = GaussianMixture(3, random_state=0).fit(frame)

    by_name = plotting.plot_clusters(gmm, frame, ax=_axes(), features=("b", "d"))
    by_index = plotting.plot_clusters(gmm, frame, ax=_axes(), features=(1, 3))

    assert (by_name.get_xlabel(), by_name.get_ylabel()) == ("b", "d")
    for a, b in zip(_ellipses(by_name), _ellipses(by_index), strict=True):
        assert (*a.center, a.width, a.height) == (*b.center, b.width, b.height)


def test_the_legend_can_be_moved_with_a_plain_ax_legend(models, data):
    ax = plotting.plot_clusters(models["GaussianMixture"], data, ax=_axes())
    before = [t.get_text() for t in ax.get_legend().get_texts()]

    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))

    assert [t.get_text() for t in ax.get_legend().get_texts()] == before


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "2-D data only"),
        ({"features": (0, 1), "projection": "pca"}, "not both"),
        ({"projection": "tsne"}, "'pca' or an array"),
        ({"projection": np.ones((2, 3))}, r"shape \(2, 4\)"),
        ({"features": (0, 0)}, "two different features"),
        ({"features": (0, 4)}, "out of range"),
        ({"features": (0,)}, "a pair"),
        ({"features": ("a", "b")}, "unknown feature 'a'"),
    ],
)
@pytest.mark.parametrize("plot", PLOTS_OF_DATA, ids=lambda f: f.__name__)
def test_an_unclear_plane_raises_a_clear_error(plot, kwargs, match, fitted_4d, iris):
    with pytest.raises(ValueError, match=match):
        plot(fitted_4d["full"], iris, ax=_axes(), **kwargs)


@pytest.mark.parametrize("plot", PLOTS_OF_DATA, ids=lambda f: f.__name__)
def test_data_of_the_wrong_width_raises_a_clear_error(plot, fitted_4d, iris):
    with pytest.raises(ValueError, match="X has 3 features but the mixture was fitted"):
        plot(fitted_4d["full"], iris[:, :3], ax=_axes(), projection="pca")


# -- lower bounds ----------------------------------------------------------------------
def test_plot_lower_bounds_draws_every_initialisation_and_highlights_the_kept_one(
    data,
):
    gmm = GaussianMixture(
        3, n_init=4, init_params="random_from_data", random_state=1
    ).fit(data)
    kept = int(np.argmax([run[-1] for run in gmm.lower_bounds_per_init_]))

    ax = plotting.plot_lower_bounds(gmm, ax=_axes())

    *others, highlighted = ax.get_lines()
    np.testing.assert_array_equal(highlighted.get_ydata(), gmm.lower_bounds_)
    np.testing.assert_array_equal(
        highlighted.get_xdata(), np.arange(1, gmm.n_iter_ + 1)
    )
    expected = [r for i, r in enumerate(gmm.lower_bounds_per_init_) if i != kept]
    assert [list(line.get_ydata()) for line in others] == expected
    assert {line.get_color() for line in others} == {"0.6"}
    assert highlighted.get_color() != "0.6"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["other initialisations", f"kept: initialisation {kept + 1} of 4"]


def test_a_far_lower_first_step_does_not_flatten_the_curves(data):
    gmm = GaussianMixture(3, random_state=0).fit(data)
    gmm = copy.deepcopy(gmm)
    gmm.lower_bounds_per_init_ = [[-1e6, -4.0, -3.9], [-4.5, -4.2]]
    gmm.lower_bounds_ = [-1e6, -4.0, -3.9]

    ax = plotting.plot_lower_bounds(gmm, ax=_axes())

    bottom, top = ax.get_ylim()
    assert -4.3 < bottom < -4.2 and -3.9 < top < -3.8
    assert any("first step of 2 runs below" in t.get_text() for t in ax.texts)


def test_without_runs_of_every_initialisation_only_the_kept_run_is_drawn(data):
    gmm = SklearnGaussianMixture(3, n_init=2, random_state=0).fit(data)
    if not hasattr(gmm, "lower_bounds_"):
        with pytest.raises(ValueError, match="no lower bound per iteration"):
            plotting.plot_lower_bounds(gmm, ax=_axes())
        pytest.skip("scikit-learn < 1.7 records no lower_bounds_ (error checked)")

    ax = plotting.plot_lower_bounds(gmm, ax=_axes())

    (line,) = ax.get_lines()
    np.testing.assert_array_equal(line.get_ydata(), gmm.lower_bounds_)
    assert ax.get_legend() is None


def test_a_bayesian_mixture_s_bound_is_labelled_as_an_elbo(models):
    ax = plotting.plot_lower_bounds(models["BayesianGaussianMixture"], ax=_axes())

    assert "ELBO" in ax.get_ylabel()


# -- criteria --------------------------------------------------------------------------
def test_plot_criteria_draws_one_curve_per_covariance_type_and_circles_the_choice(ic):
    ax = plotting.plot_criteria(ic, ax=_axes())

    *curves, chosen = ax.get_lines()
    table = ic.criteria_
    assert [c.get_label() for c in curves] == list(COVARIANCE_TYPES)
    for curve in curves:
        rows = table["covariance_type"] == curve.get_label()
        np.testing.assert_array_equal(curve.get_xdata(), [1, 2, 3, 4])
        np.testing.assert_array_equal(curve.get_ydata(), table["bic"][rows])
    best = np.nanargmin(table["bic"])
    assert (chosen.get_xdata()[0], chosen.get_ydata()[0]) == (
        ic.n_components_,
        table["bic"][best],
    )
    assert chosen.get_label() == (
        f"chosen by BIC: {ic.n_components_}, {ic.covariance_type_}"
    )
    assert ax.get_xlabel() == "number of components"
    assert ax.get_ylabel() == "BIC (lower is better)"


def test_another_criterion_is_drawn_with_its_own_minimum_starred(ic):
    ax = plotting.plot_criteria(ic, ax=_axes(), criterion="aic")

    *curves, chosen, star = ax.get_lines()
    aic = ic.criteria_["aic"]
    assert sorted(np.concatenate([c.get_ydata() for c in curves])) == sorted(aic)
    assert star.get_marker() == "*"
    assert star.get_ydata()[0] == np.nanmin(aic)
    assert chosen.get_label().startswith("chosen by BIC")
    assert ax.get_ylabel().startswith("AIC")


def test_cells_that_could_not_be_fitted_are_gaps(ic):
    failed = copy.copy(ic)
    failed.criteria_ = {key: value.copy() for key, value in ic.criteria_.items()}
    cell = np.flatnonzero(
        (failed.criteria_["covariance_type"] == "tied")
        & (failed.criteria_["n_components"] == 3)
    )[0]
    failed.criteria_["bic"][cell] = np.nan

    ax = plotting.plot_criteria(failed, ax=_axes())

    tied = next(c for c in ax.get_lines() if c.get_label() == "tied")
    assert np.isnan(tied.get_ydata()[2]) and np.isfinite(tied.get_ydata()[[1, 3]]).all()
    assert "1 cell not fitted (gaps)" in ax.get_title()


def test_plot_criteria_refuses_what_is_not_a_model_selection(ic, models):
    with pytest.raises(TypeError, match="GaussianMixtureIC"):
        plotting.plot_criteria(models["GaussianMixture"], ax=_axes())
    with pytest.raises(ValueError, match="criterion must be one of"):
        plotting.plot_criteria(ic, ax=_axes(), criterion="loglik")


# -- density ---------------------------------------------------------------------------
def test_density_contours_are_level_sets_of_score_samples(covariance_type, fitted_2d):
    gmm = fitted_2d[covariance_type]

    ax = plotting.plot_density(gmm, ax=_axes(), colorbar=False)

    contours = _contours(ax)
    assert len(contours.levels) == 10
    for level, points in _contour_points(contours):
        # To the grid's linear interpolation (200 x 200).
        np.testing.assert_allclose(gmm.score_samples(points), level, atol=0.02)
    assert len(ax.figure.axes) == 1


@pytest.mark.parametrize("plane", [{"features": (0, 2)}, {"projection": "pca"}])
def test_density_in_a_plane_is_the_mixture_of_the_projected_components(
    plane, fitted_4d, iris
):
    gmm = fitted_4d["full"]
    if "features" in plane:
        W, offset = np.eye(4)[[0, 2]], np.zeros(4)
    else:
        pca = PCA(n_components=2, svd_solver="full").fit(iris)
        W, offset = pca.components_, pca.mean_

    ax = plotting.plot_density(gmm, iris, ax=_axes(), **plane)

    means = (gmm.means_ - offset) @ W.T
    covariances = W @ gmm.covariances_ @ W.T
    for level, points in _contour_points(_contours(ax)):
        expected = _mixture_log_density(gmm.weights_, means, covariances, points)
        np.testing.assert_allclose(expected, level, atol=0.02)


def test_density_levels_span_the_data_and_explicit_levels_are_kept(fitted_2d, data):
    gmm = fitted_2d["full"]

    by_count = _contours(plotting.plot_density(gmm, data, ax=_axes(), levels=5))
    explicit = _contours(
        plotting.plot_density(gmm, data, ax=_axes(), levels=[-8.0, -5.0])
    )

    at_data = gmm.score_samples(data)
    assert len(by_count.levels) == 5
    assert by_count.levels[0] == pytest.approx(np.percentile(at_data, 1), abs=1e-9)
    assert by_count.levels[-1] < at_data.max() + 0.1
    np.testing.assert_array_equal(explicit.levels, [-8.0, -5.0])


def test_density_scatters_the_data_under_the_contours_and_adds_a_colorbar(
    fitted_2d, data
):
    ax = plotting.plot_density(fitted_2d["full"], data, ax=_axes())

    (points,) = [c for c in ax.collections if not isinstance(c, ContourSet)]
    np.testing.assert_array_equal(points.get_offsets(), data)
    (colorbar,) = [a for a in ax.figure.axes if a is not ax]
    assert colorbar.get_ylabel() == "log density"


def test_density_needs_the_data_for_a_pca_plane(fitted_4d):
    with pytest.raises(ValueError, match="projection='pca' needs the data X"):
        plotting.plot_density(fitted_4d["full"], ax=_axes(), projection="pca")


# -- uncertainty -----------------------------------------------------------------------
def test_point_sizes_follow_one_minus_the_largest_responsibility(
    covariance_type, fitted_2d, data
):
    gmm = fitted_2d[covariance_type]

    ax = plotting.plot_uncertainty(gmm, data, ax=_axes(), max_size=50.0)

    (points,) = ax.collections
    uncertainty = 1 - gmm.predict_proba(data).max(axis=1)
    order = np.argsort(uncertainty, kind="stable")  # the most uncertain on top
    np.testing.assert_array_equal(points.get_offsets(), data[order])
    np.testing.assert_allclose(
        points.get_sizes(), 4 + (50 - 4) * uncertainty[order] / (1 - 1 / 3)
    )
    # Coloured by predicted cluster.
    colors = points.get_facecolors()[:, :3]
    labels = gmm.predict(data)[order]
    for k in range(3):
        assert len(np.unique(colors[labels == k], axis=0)) == 1
    assert ax.get_legend().get_title().get_text() == "uncertainty"


def test_a_single_component_is_certain_everywhere(data):
    gmm = GaussianMixture(1, random_state=0).fit(data)

    ax = plotting.plot_uncertainty(gmm, data, ax=_axes())

    np.testing.assert_array_equal(ax.collections[0].get_sizes(), 4.0)


# -- the gallery -----------------------------------------------------------------------
def test_the_gallery_script_writes_every_figure(tmp_path, monkeypatch):
    plt = pytest.importorskip(
        "matplotlib.pyplot", reason="plots need matplotlib (test extra)"
    )
    monkeypatch.setenv("SKLEARN_EM_FIGURES", str(tmp_path))
    try:
        runpy.run_path(str(GALLERY), run_name="__main__")
    finally:
        plt.close("all")

    written = sorted(p.name for p in tmp_path.glob("*.png"))
    assert len(written) == 10
    assert {"three_gaussians_clusters.png", "wine_clusters_pca.png"} <= set(written)
