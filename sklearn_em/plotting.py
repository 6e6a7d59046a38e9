"""Plots of a fitted Gaussian mixture.

Every function draws on the matplotlib Axes it is given (``ax=``; a new pyplot
figure when None) and returns it, and accepts :class:`~sklearn_em.GaussianMixture`,
:class:`~sklearn_em.BayesianGaussianMixture`, scikit-learn's estimators of the
same names and, where a single model is meant, a fitted
:class:`~sklearn_em.GaussianMixtureIC` (whose chosen ``best_estimator_`` is
drawn):

- :func:`plot_clusters`: points coloured by cluster, one covariance ellipse per
  component;
- :func:`plot_uncertainty`: points sized by their classification uncertainty;
- :func:`plot_density`: contours of the fitted density;
- :func:`plot_lower_bounds`: the lower bound after each EM step, for every
  initialisation;
- :func:`plot_criteria`: BIC, AIC or ICL over the grid of a
  :class:`~sklearn_em.GaussianMixtureIC`;
- :func:`plot_fit`: clusters and lower bounds side by side, saved as a PNG.

Data with more than two features are drawn in a plane: a pair of features
(``features=(i, j)``: the ellipses and density are then the marginal ones of
those two features) or the data's first two principal components
(``projection='pca'``: data, means and covariances go through the same linear
map ``W``, covariances as ``W Σ Wᵀ``, which is exactly the covariance of the
projected component).

matplotlib is an optional dependency (the ``plot`` extra): it is imported
inside the functions, so ``import sklearn_em.plotting`` works without it and
only calling a plotting function needs it.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.special import logsumexp
from sklearn.utils import get_tags
from sklearn.utils.validation import check_array, check_is_fitted

from ._covariance import get_covariance
from ._selection import CRITERIA

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = [
    "plot_clusters",
    "plot_criteria",
    "plot_density",
    "plot_fit",
    "plot_lower_bounds",
    "plot_uncertainty",
]

# 2-sigma ellipses hold about 86% of a 2-D Gaussian's mass: wide enough to show
# each component's extent, narrow enough not to swamp the plot.
_N_SIGMA = 2.0
# Marker areas (points²) of plot_uncertainty: certain points stay visible as
# dots, the most uncertain possible get _MAX_SIZE by default.
_MIN_SIZE = 4.0
_MAX_SIZE = 80.0
_MISSING_MATPLOTLIB = (
    "plotting needs matplotlib, which is an optional dependency; "
    "install it with: pip install sklearn-em[plot]"
)
# One marker per covariance type in plot_criteria, so the curves stay apart
# in greyscale too (mclust's plot.Mclust does the same with symbols).
_TYPE_MARKERS = {"full": "o", "tied": "s", "diag": "^", "spherical": "D"}


def _check_matplotlib() -> None:
    """Raise an ImportError with install instructions if matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError as exc:
        raise ImportError(_MISSING_MATPLOTLIB) from exc


def _new_axes() -> Any:
    _check_matplotlib()
    import matplotlib.pyplot as plt

    # pyplot only when the caller gave no axes, so interactive users get a
    # figure in their own backend, as with scikit-learn's display objects.
    _, ax = plt.subplots()
    return ax


def _full_covariances(
    covariances: np.ndarray, covariance_type: str, n_components: int, n_features: int
) -> np.ndarray:
    """Expand ``covariances_`` of any ``covariance_type`` to shape (k, d, d)."""
    covariances = np.asarray(covariances, dtype=np.float64)
    # By covariance_type, not by shape: with d == k == 2, 'tied' and 'diag'
    # both give a (2, 2) array. The covariance module knows every type.
    return get_covariance(covariance_type).full_covariances(
        covariances, n_components, n_features
    )


def _ellipse_geometry(cov: np.ndarray) -> tuple[float, float, float]:
    """Return width, height and angle (degrees) of the 2-sigma ellipse of ``cov``."""
    eigvals, eigvecs = np.linalg.eigh(cov)
    # Clip tiny negative eigenvalues from round-off so sqrt stays real.
    width, height = 2.0 * _N_SIGMA * np.sqrt(np.clip(eigvals[::-1], 0.0, None))
    major = eigvecs[:, 1]
    angle = float(np.degrees(np.arctan2(major[1], major[0])))
    return float(width), float(height), angle


# -- the model and the plane -----------------------------------------------------------
def _mixture(model: Any) -> Any:
    """The fitted mixture to draw: ``best_estimator_`` of a GaussianMixtureIC."""
    check_is_fitted(model)
    return getattr(model, "best_estimator_", model)


def _components(mixture: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (k,), means (k, d) and full covariances (k, d, d) of a mixture."""
    means = np.asarray(mixture.means_, dtype=np.float64)
    covariances = _full_covariances(
        mixture.covariances_, mixture.covariance_type, *means.shape
    )
    return np.asarray(mixture.weights_, dtype=np.float64), means, covariances


def _allows_nan(model: Any) -> bool:
    """Whether ``model.predict`` takes rows with NaN (sklearn_em's estimators)."""
    try:
        return bool(get_tags(model).input_tags.allow_nan)
    except Exception:  # a foreign estimator without scikit-learn's tags
        return False


@dataclass(frozen=True)
class _Plane:
    """A linear map of the data's space onto the drawing plane.

    ``matrix`` is ``W``, of shape (2, d); a point ``x`` goes to
    ``W (x - offset)`` and a covariance ``Σ`` to ``W Σ Wᵀ``. For a pair of
    features ``columns`` holds their indices, and points are taken by
    indexing, so that a NaN in another feature does not hide the row.
    """

    matrix: np.ndarray
    offset: np.ndarray
    columns: tuple[int, int] | None
    labels: tuple[str, str]
    description: str

    def points(self, X: np.ndarray) -> np.ndarray:
        if self.columns is not None:
            return X[:, list(self.columns)]
        return (X - self.offset) @ self.matrix.T

    def covariances(self, covariances: np.ndarray) -> np.ndarray:
        return self.matrix @ covariances @ self.matrix.T


def _feature_index(feature: Any, n_features: int, names: Any, who: str) -> int:
    if isinstance(feature, str):
        if names is None or feature not in list(names):
            raise ValueError(
                f"{who}: unknown feature {feature!r}; names are known only for "
                "a mixture fitted on a DataFrame"
            )
        return list(names).index(feature)
    if not isinstance(feature, (int, np.integer)) or isinstance(feature, bool):
        raise ValueError(f"{who}: features must be ints or names, got {feature!r}")
    index = int(feature)
    if not -n_features <= index < n_features:
        raise ValueError(
            f"{who}: feature {index} is out of range for a mixture of "
            f"{n_features} features"
        )
    return index % n_features


def _plane(
    n_features: int,
    X: np.ndarray | None,
    *,
    features: Any,
    projection: Any,
    names: Any,
    who: str,
) -> _Plane:
    """The plane to draw in, from the ``features`` or ``projection`` argument."""
    if features is not None and projection is not None:
        raise ValueError(f"{who}: give features or projection, not both")
    if n_features < 2:
        raise ValueError(
            f"{who} needs a mixture of at least 2 features, got {n_features}"
        )
    if isinstance(projection, str):
        if projection != "pca":
            raise ValueError(
                f"{who}: projection must be 'pca' or an array of shape "
                f"(2, {n_features}), got {projection!r}"
            )
        if X is None:
            raise ValueError(f"{who}: projection='pca' needs the data X")
        complete = X[np.isfinite(X).all(axis=1)]
        if len(complete) < 2:
            raise ValueError(f"{who}: projection='pca' needs 2 rows without NaN")
        from sklearn.decomposition import PCA

        pca = PCA(n_components=2, svd_solver="full").fit(complete)
        labels = tuple(
            f"PC{i + 1} ({ratio:.0%} of variance)"
            for i, ratio in enumerate(pca.explained_variance_ratio_)
        )
        return _Plane(pca.components_, pca.mean_, None, labels, "PCA projection")
    if projection is not None:
        matrix = np.asarray(projection, dtype=np.float64)
        if matrix.shape != (2, n_features):
            raise ValueError(
                f"{who}: projection must be 'pca' or an array of shape "
                f"(2, {n_features}), got shape {matrix.shape}"
            )
        return _Plane(
            matrix,
            np.zeros(n_features),
            None,
            ("projection 1", "projection 2"),
            "linear projection",
        )
    if features is None:
        if n_features != 2:
            raise ValueError(
                f"{who} draws 2-D data only unless told which plane: the mixture "
                f"has {n_features} features; pass features=(i, j) for a pair of "
                "them or projection='pca'"
            )
        columns = (0, 1)
        default = ("$x_1$", "$x_2$")
        description = ""
    else:
        if isinstance(features, str) or len(features) != 2:
            raise ValueError(f"{who}: features must be a pair (i, j)")
        columns = tuple(_feature_index(f, n_features, names, who) for f in features)
        if columns[0] == columns[1]:
            raise ValueError(f"{who}: features must be two different features")
        default = tuple(f"feature {i}" for i in columns)
        description = "marginal of 2 features" if n_features > 2 else ""
    labels = default if names is None else tuple(str(names[i]) for i in columns)
    matrix = np.eye(n_features)[list(columns)]
    return _Plane(matrix, np.zeros(n_features), columns, labels, description)


def _check_data(X: Any, n_features: int, who: str) -> tuple[np.ndarray, Any]:
    """``X`` as a float array (NaN allowed) and its column names, if any."""
    columns = getattr(X, "columns", None)
    X = check_array(X, dtype=np.float64, ensure_all_finite="allow-nan")
    if X.shape[1] != n_features:
        hint = ""
        if X.shape[1] == 2:
            hint = (
                f"; {who} draws 2-D mixtures only from 2-D data: for a mixture of "
                f"{n_features} features pass all {n_features} and choose a plane "
                "with features=(i, j) or projection='pca'"
            )
        raise ValueError(
            f"X has {X.shape[1]} features but the mixture was fitted on "
            f"{n_features}{hint}"
        )
    names = None if columns is None else [str(c) for c in columns]
    return X, names


def _names(mixture: Any, from_X: Any) -> Any:
    names = getattr(mixture, "feature_names_in_", None)
    return from_X if names is None else list(names)


def _drawable(
    model: Any, X: np.ndarray, plane: _Plane, max_points: int | None
) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows to scatter, their coordinates in the plane, and how many had NaN.

    A row is left out when a plotted coordinate is NaN (any feature, for a
    projection), or any feature is NaN and ``model`` is to predict the rows
    but cannot take NaN (None: nothing is predicted).
    """
    coordinates = plane.points(X)
    keep = np.isfinite(coordinates).all(axis=1)
    if model is not None and not _allows_nan(model):
        keep &= np.isfinite(X).all(axis=1)
    rows = np.flatnonzero(keep)
    n_missing = len(X) - len(rows)
    if max_points is not None and len(rows) > max_points:
        chosen = np.random.default_rng(0).choice(len(rows), max_points, replace=False)
        rows = rows[np.sort(chosen)]
    return rows, coordinates[rows], n_missing


def _predict(model: Any, method: str, X: np.ndarray) -> np.ndarray:
    """``model.predict(X)`` or ``predict_proba``, on rows already checked."""
    with warnings.catch_warnings():
        # X was checked against the mixture's features, and the DataFrame it
        # may have come from is an array by now: a model fitted on a
        # DataFrame would warn that the array has no feature names.
        warnings.filterwarnings("ignore", message="X does not have valid feature")
        return getattr(model, method)(X)


def _count_note(n_points: int, n_shown: int, n_missing: int) -> str:
    """``(1,500 points, 1,000 shown)``, with rows with NaN counted apart."""
    note = f"{n_points:,} points"
    if n_missing:
        note += f", {n_missing:,} with NaN not drawn"
    if n_shown < n_points - n_missing:
        note += f", {n_shown:,} shown"
    return f"({note})"


def _key(ax: Any, **style: Any) -> Any:
    """A legend entry: an empty line with ``style`` and a label, on ``ax``.

    On the axes rather than a proxy handed to ``legend``, so that a caller
    can redraw the legend elsewhere with a plain ``ax.legend(loc=...)``.
    """
    (line,) = ax.plot([], [], **style)
    return line


def _point_style(n_points: int) -> tuple[float, float]:
    """Marker area and alpha of a scatter of ``n_points``: larger and more
    opaque for a few hundred points, small and translucent for thousands."""
    size = float(np.clip(6.0 * np.sqrt(1500.0 / max(n_points, 1)), 6.0, 20.0))
    return size, (0.45 if n_points > 1000 else 0.7)


def _set_labels(ax: Any, plane: _Plane) -> None:
    ax.set_xlabel(plane.labels[0])
    ax.set_ylabel(plane.labels[1])


# -- clusters --------------------------------------------------------------------------
def plot_clusters(
    gmm: Any,
    X: Any,
    ax: Axes | None = None,
    *,
    features: Sequence[int | str] | None = None,
    projection: str | Any | None = None,
    max_points: int | None = 20_000,
    min_weight: float = 0.0,
) -> Axes:
    """Scatter data coloured by predicted cluster, with component ellipses.

    Each component is drawn as its mean (a cross) and the ellipse at two
    standard deviations of its covariance in the plane drawn, in the same
    colour as the points predicted to belong to it. All four
    ``covariance_type`` values are supported.

    Data with more than two features are drawn in a plane: a pair of features,
    where each ellipse is the marginal covariance of those two features (the
    2 x 2 block of the component's covariance), or the first two principal
    components of ``X``, where data, means and covariances go through the same
    linear map ``W`` (the ellipse is ``W Σ Wᵀ``, the exact covariance of the
    projected component).

    Parameters
    ----------
    gmm : fitted mixture
        ``sklearn_em.GaussianMixture``, ``sklearn_em.BayesianGaussianMixture``,
        their scikit-learn counterparts (anything with ``predict``, ``means_``,
        ``covariances_``, ``covariance_type`` and ``weights_``), or a fitted
        ``sklearn_em.GaussianMixtureIC``, whose chosen model is drawn.
    X : array-like of shape (n_samples, n_features)
        Data to scatter, with the features the mixture was fitted on; the
        colours come from ``gmm.predict(X)``. Rows with NaN in a plotted
        coordinate (in any feature, for a projection) are not drawn; the
        others are coloured by ``predict``, which for sklearn_em's estimators
        uses each row's observed features (scikit-learn's cannot, so there
        every row with a NaN is left out). The title counts the rows left out.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created with pyplot if None.
    features : pair of int or str, default=None
        The two features to draw (indices, or names for a mixture fitted on a
        DataFrame). Needed, or ``projection``, when ``n_features > 2``.
    projection : 'pca' or array-like of shape (2, n_features), default=None
        Draw in the plane of the first two principal components of the rows
        of ``X`` without NaN ('pca'), or through the given linear map ``W``.
    max_points : int or None, default=20_000
        Scatter at most this many points, chosen at random with a fixed seed,
        because drawing millions of markers is slow and no more informative.
        None scatters every point. Ellipses and means are unaffected.
    min_weight : float, default=0.0
        Draw no ellipse or mean for components of smaller weight, e.g. the
        components a ``BayesianGaussianMixture`` left all but empty.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``X`` has other features than the mixture, or the mixture has more
        than two and neither ``features`` nor ``projection`` says which plane
        to draw, or these are invalid.
    sklearn.exceptions.NotFittedError
        If ``gmm`` is not fitted.

    Examples
    --------
    >>> from matplotlib.figure import Figure
    >>> from sklearn.datasets import load_iris
    >>> from sklearn_em import GaussianMixture
    >>> from sklearn_em.plotting import plot_clusters
    >>> X = load_iris().data
    >>> gmm = GaussianMixture(n_components=3, random_state=0).fit(X)
    >>> ax = plot_clusters(gmm, X, ax=Figure().add_subplot(), projection="pca")
    >>> len(ax.patches)  # one ellipse per component
    3
    """
    _check_matplotlib()
    from matplotlib.patches import Ellipse

    mixture = _mixture(gmm)
    weights, means, covariances = _components(mixture)
    X, names = _check_data(X, means.shape[1], "plot_clusters")
    plane = _plane(
        means.shape[1],
        X,
        features=features,
        projection=projection,
        names=_names(mixture, names),
        who="plot_clusters",
    )
    if ax is None:
        ax = _new_axes()

    rows, points, n_missing = _drawable(gmm, X, plane, max_points)
    labels = _predict(gmm, "predict", X[rows]) if len(rows) else np.empty(0, int)
    centres = plane.points(means)
    ellipses = plane.covariances(covariances)
    drawn = np.flatnonzero(weights >= min_weight)
    # Categorical colours: a continuous map would make neighbours look alike.
    colors = [f"C{k % 10}" for k in range(len(means))]

    size, alpha = _point_style(len(rows))
    for k in range(len(means)):
        members = points[labels == k]
        ax.scatter(
            members[:, 0],
            members[:, 1],
            s=size,
            color=colors[k],
            alpha=alpha,
            linewidths=0,
        )
    for k in drawn:
        width, height, angle = _ellipse_geometry(ellipses[k])
        ax.add_patch(
            Ellipse(
                centres[k],
                width,
                height,
                angle=angle,
                fill=False,
                edgecolor=colors[k],
                linewidth=2,
            )
        )
        # Legend keys, because the scatter's own tiny translucent markers
        # would be unreadable in the legend.
        _key(
            ax,
            color=colors[k],
            marker="o",
            linestyle="-",
            linewidth=2,
            markersize=6,
            label=f"component {k}: weight {weights[k]:.3f}",
        )
    ax.scatter(
        centres[drawn, 0],
        centres[drawn, 1],
        marker="X",
        s=120,
        # White, not the component colour, so a mean stays visible on top of a
        # dense cloud of its own points.
        color="white",
        edgecolors="black",
        linewidths=1.2,
        zorder=3,
    )
    _key(
        ax,
        marker="X",
        linestyle="none",
        markersize=10,
        markerfacecolor="white",
        markeredgecolor="black",
        label="component means",
    )
    _key(ax, color="0.3", linewidth=2, label=f"{_N_SIGMA:g}-sigma ellipses")
    hidden = len(means) - len(drawn)
    if hidden:
        _key(ax, linestyle="none", label=f"{hidden} of weight < {min_weight:g} hidden")

    _set_labels(ax, plane)
    ax.set_aspect("equal", adjustable="datalim")
    shown = f"{len(drawn)} of {len(means)} components" if hidden else None
    ax.set_title(
        f"{shown or f'{len(means)} clusters'}, {mixture.covariance_type} covariances: "
        f"{mixture.n_iter_} EM steps {_count_note(len(X), len(rows), n_missing)}"
    )
    ax.legend(loc="best", fontsize="small", framealpha=0.9)
    return ax


# -- lower bounds ----------------------------------------------------------------------
def plot_lower_bounds(gmm: Any, ax: Axes | None = None) -> Axes:
    """Plot the EM lower bound against the iteration number, for every run.

    The run the estimator kept (its ``lower_bounds_``, the initialisation of
    highest final lower bound) is drawn in colour with a marker per step; the
    other ``n_init - 1`` runs of the last fit (``lower_bounds_per_init_``) in
    grey, so one sees whether the initialisations reach the same optimum.

    Parameters
    ----------
    gmm : fitted mixture
        A mixture with the ``lower_bounds_`` attribute (the lower bound of the
        best initialisation after each EM step, as in scikit-learn >= 1.6), and
        if it has ``lower_bounds_per_init_`` (sklearn_em's estimators) all of
        its runs are drawn. A fitted ``GaussianMixtureIC`` draws its chosen
        model's runs. After ``partial_fit``, ``lower_bounds_`` holds one value
        per update and only it is drawn.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created with pyplot if None.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on; its lines are the other runs, in order, then the
        kept run.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    sklearn.exceptions.NotFittedError
        If ``gmm`` is not fitted.
    ValueError
        If ``gmm`` records no lower bounds per iteration.
    """
    _check_matplotlib()
    from matplotlib.ticker import MaxNLocator

    mixture = _mixture(gmm)
    if ax is None:
        ax = _new_axes()
    if not hasattr(mixture, "lower_bounds_"):
        raise ValueError(
            f"{type(mixture).__name__} records no lower bound per iteration "
            "(scikit-learn < 1.7 keeps only lower_bound_); nothing to plot."
        )
    kept = [float(v) for v in mixture.lower_bounds_]
    runs = [list(run) for run in getattr(mixture, "lower_bounds_per_init_", [])]
    if kept not in runs:  # scikit-learn's estimator, or after partial_fit
        runs = [kept]
    kept_index = runs.index(kept)

    others = [run for i, run in enumerate(runs) if i != kept_index]
    for i, run in enumerate(others):
        ax.plot(
            np.arange(1, len(run) + 1),
            run,
            color="0.6",
            linewidth=1,
            # One legend entry for them all.
            label="other initialisations" if i == 0 else None,
        )
    ax.plot(
        np.arange(1, len(kept) + 1),
        kept,
        color="C0",
        marker="o",
        markersize=3,
        linewidth=1.5,
        label=f"kept: initialisation {kept_index + 1} of {len(runs)}",
    )
    # EM steps are whole numbers; short runs would otherwise get 1.25, 1.5, ...
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("EM step")
    if hasattr(mixture, "weight_concentration_"):
        ax.set_ylabel("lower bound (ELBO, up to a constant)")
    else:
        ax.set_ylabel("lower bound (mean log-likelihood per sample)")
    ax.grid(True, alpha=0.3)
    _frame_after_first_step(ax, runs)
    if len(runs) > 1:
        ax.legend(loc="lower right", fontsize="small")
    status = "converged" if mixture.converged_ else "not converged"
    ax.set_title(
        f"EM lower bound: {mixture.n_iter_} steps, {status} "
        f"(final {float(mixture.lower_bound_):.6g})"
    )
    return ax


def _frame_after_first_step(ax: Any, runs: list[list[float]]) -> None:
    """Fit the y axis to the bounds from the second step on, when a poor start
    (a first bound far below the rest) would flatten every curve to a line."""
    later = [v for run in runs for v in (run[1:] if len(run) > 1 else run)]
    everything = [v for run in runs for v in run]
    finite = np.isfinite(later)
    if not finite.any():
        return
    low, high = np.min(np.asarray(later)[finite]), np.max(np.asarray(later)[finite])
    span = high - low
    if not np.isfinite(np.min(everything)) or np.min(everything) < low - 3 * span:
        pad = 0.08 * span if span > 0 else max(abs(high) * 1e-3, 1e-3)
        ax.set_ylim(low - pad, high + pad)
        n_below = sum(bool(run[0] < low - pad) for run in runs)
        runs_below = "1 run" if n_below == 1 else f"{n_below} runs"
        ax.text(
            0.01,
            0.01,
            f"first step of {runs_below} below the frame",
            transform=ax.transAxes,
            fontsize="small",
            color="0.35",
            va="bottom",
        )


# -- model selection -------------------------------------------------------------------
def plot_criteria(
    ic: Any, ax: Axes | None = None, criterion: str | None = None
) -> Axes:
    """Plot an information criterion over the grid of a GaussianMixtureIC.

    One curve per covariance type against the number of components, as R's
    mclust draws its BIC (``plot.Mclust``), with the chosen model circled.
    The criteria here are to be minimised (mclust's BIC is the same up to
    sign and a factor 2, and is maximised). Cells that could not be fitted
    (NaN in ``criteria_``) are left as gaps and counted in the title.

    Parameters
    ----------
    ic : fitted GaussianMixtureIC
        The model selection to draw, from its ``criteria_``.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created with pyplot if None.
    criterion : {'bic', 'aic', 'icl'}, default=None
        The criterion to draw; ``ic.criterion`` (the one that chose) if None.
        When another is drawn, its own minimum is marked with a star as well.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on; its lines are the covariance types in the order of
        ``criteria_``, then the chosen model's marker (and the star).

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    TypeError
        If ``ic`` is not a GaussianMixtureIC (has no ``criteria_``).
    ValueError
        If ``criterion`` is not one of 'bic', 'aic', 'icl'.
    sklearn.exceptions.NotFittedError
        If ``ic`` is not fitted.
    """
    _check_matplotlib()
    from matplotlib.ticker import MaxNLocator

    check_is_fitted(ic)
    if not hasattr(ic, "criteria_"):
        raise TypeError(
            f"plot_criteria needs a fitted GaussianMixtureIC (with criteria_), "
            f"got {type(ic).__name__}"
        )
    criterion = ic.criterion if criterion is None else criterion
    if criterion not in CRITERIA:
        raise ValueError(
            f"criterion must be one of {', '.join(CRITERIA)}, got {criterion!r}"
        )
    if ax is None:
        ax = _new_axes()

    table = ic.criteria_
    ks = np.asarray(table["n_components"])
    types = np.asarray(table["covariance_type"], dtype=object)
    values = np.asarray(table[criterion], dtype=np.float64)
    name = criterion.upper()
    for i, covariance_type in enumerate(dict.fromkeys(types)):
        rows = np.flatnonzero(types == covariance_type)
        rows = rows[np.argsort(ks[rows], kind="stable")]
        # NaN values break the line: a failed cell stays a gap.
        ax.plot(
            ks[rows],
            values[rows],
            marker=_TYPE_MARKERS.get(covariance_type, "o"),
            markersize=5,
            linewidth=1.5,
            color=f"C{i % 10}",
            label=covariance_type,
        )

    chosen_row = np.flatnonzero(
        (ks == ic.n_components_) & (types == ic.covariance_type_)
    )[0]
    ax.plot(
        [ks[chosen_row]],
        [values[chosen_row]],
        linestyle="none",
        marker="o",
        markersize=15,
        markerfacecolor="none",
        markeredgecolor="black",
        markeredgewidth=2,
        label=(
            f"chosen by {ic.criterion.upper()}: {ic.n_components_}, "
            f"{ic.covariance_type_}"
        ),
        zorder=3,
    )
    if criterion != ic.criterion and np.isfinite(values).any():
        best = int(np.nanargmin(values))
        ax.plot(
            [ks[best]],
            [values[best]],
            linestyle="none",
            marker="*",
            markersize=14,
            markerfacecolor="gold",
            markeredgecolor="black",
            label=f"lowest {name}: {ks[best]}, {types[best]}",
            zorder=4,
        )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of components")
    ax.set_ylabel(f"{name} (lower is better)")
    ax.grid(True, alpha=0.3)
    ax.legend(title="covariance type", fontsize="small", title_fontsize="small")
    n_failed = int(np.isnan(values).sum())
    cells = "1 cell" if n_failed == 1 else f"{n_failed} cells"
    failed = f"; {cells} not fitted (gaps)" if n_failed else ""
    ax.set_title(f"{name} over {len(values)} models{failed}")
    return ax


# -- density ---------------------------------------------------------------------------
def _log_density_2d(
    weights: np.ndarray, means: np.ndarray, covariances: np.ndarray, points: np.ndarray
) -> np.ndarray:
    """Log-density at ``points`` (m, 2) of the mixture of 2-D Gaussians."""
    log_terms = np.empty((len(points), len(weights)))
    with np.errstate(divide="ignore"):  # a weight of exactly 0 gives -inf
        log_weights = np.log(weights)
    for k, (mean, cov) in enumerate(zip(means, covariances, strict=True)):
        cholesky = np.linalg.cholesky(cov)
        whitened = np.linalg.solve(cholesky, (points - mean).T)
        log_terms[:, k] = (
            log_weights[k]
            - 0.5 * np.sum(whitened**2, axis=0)
            - np.log(np.diag(cholesky)).sum()
            - np.log(2.0 * np.pi)
        )
    return logsumexp(log_terms, axis=1)


def plot_density(
    gmm: Any,
    X: Any = None,
    ax: Axes | None = None,
    *,
    features: Sequence[int | str] | None = None,
    projection: str | Any | None = None,
    levels: int | Sequence[float] = 10,
    grid_size: int = 200,
    max_points: int | None = 20_000,
    colorbar: bool = True,
) -> Axes:
    """Draw contours of the fitted log-density, over the data if given.

    The density is that of the mixture with the fitted ``weights_``,
    ``means_`` and ``covariances_``: for a ``GaussianMixture`` this is
    ``score_samples``. (A ``BayesianGaussianMixture``'s ``score_samples``
    uses variational expectations instead of these point estimates, and
    differs from it slightly.)

    For a mixture of more than two features, the density drawn is the
    marginal one of a pair of features (``features=(i, j)``) or that of the
    data projected on their first two principal components
    (``projection='pca'``). Both are exact: a linear map ``W`` of a Gaussian
    mixture is the mixture, with the same weights, of the Gaussians
    ``N(W μ, W Σ Wᵀ)``, and a pair of features is such a map.

    Parameters
    ----------
    gmm : fitted mixture
        As for :func:`plot_clusters` (a ``GaussianMixtureIC`` draws its
        chosen model).
    X : array-like of shape (n_samples, n_features), default=None
        Data to scatter under the contours (small grey dots) and to set the
        extent of the grid; rows with NaN in a plotted coordinate are not
        drawn. Needed for ``projection='pca'``. Without it the grid spans
        three standard deviations around every component.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created with pyplot if None.
    features : pair of int or str, default=None
        The two features whose marginal density to draw; needed, or
        ``projection``, for a mixture of more than two features.
    projection : 'pca' or array-like of shape (2, n_features), default=None
        As for :func:`plot_clusters`.
    levels : int or sequence of float, default=10
        The number of contours, evenly spaced in log-density from the 1st
        percentile of the data's log-density (without ``X``: 10 below the
        peak) up to the peak; or the log-density levels themselves.
    grid_size : int, default=200
        Points of the grid along each axis.
    max_points : int or None, default=20_000
        Scatter at most this many points (see :func:`plot_clusters`).
    colorbar : bool, default=True
        Add a colour bar of the log-density next to ``ax``.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If the mixture has more than two features and neither ``features``
        nor ``projection`` says which plane to draw, or ``X`` has other
        features than the mixture, or ``projection='pca'`` without ``X``.
    sklearn.exceptions.NotFittedError
        If ``gmm`` is not fitted.
    """
    _check_matplotlib()

    mixture = _mixture(gmm)
    weights, means, covariances = _components(mixture)
    n_features = means.shape[1]
    names = None
    if X is not None:
        X, names = _check_data(X, n_features, "plot_density")
    plane = _plane(
        n_features,
        X,
        features=features,
        projection=projection,
        names=_names(mixture, names),
        who="plot_density",
    )
    if ax is None:
        ax = _new_axes()

    centres = plane.points(means)
    projected = plane.covariances(covariances)
    if X is not None:
        # The density at every row, so that the caller's sample can't change
        # the levels; only the scatter is thinned.
        rows, points, n_missing = _drawable(None, X, plane, max_points)
        everywhere = plane.points(X)
        everywhere = everywhere[np.isfinite(everywhere).all(axis=1)]
    if X is not None and len(everywhere):
        low, high = everywhere.min(axis=0), everywhere.max(axis=0)
        pad = 0.08 * (high - low) + 1e-9
        low, high = low - pad, high + pad
    else:
        spread = 3.0 * np.sqrt(np.diagonal(projected, axis1=1, axis2=2))
        low, high = (centres - spread).min(axis=0), (centres + spread).max(axis=0)
    xs = np.linspace(low[0], high[0], grid_size)
    ys = np.linspace(low[1], high[1], grid_size)
    grid_x, grid_y = np.meshgrid(xs, ys)
    grid = np.column_stack([grid_x.ravel(), grid_y.ravel()])
    log_density = _log_density_2d(weights, centres, projected, grid).reshape(
        grid_x.shape
    )

    if np.ndim(levels) == 0:
        peak = float(log_density.max())
        if X is not None and len(everywhere):
            at_data = _log_density_2d(weights, centres, projected, everywhere)
            floor = float(np.percentile(at_data, 1))
        else:
            floor = peak - 10.0
        floor = min(floor, peak - 1e-6)
        levels = np.linspace(floor, peak, int(levels) + 1)[:-1]
    if X is not None:
        ax.scatter(
            points[:, 0],
            points[:, 1],
            s=0.6 * _point_style(len(points))[0],
            color="0.35",
            alpha=0.4,
            linewidths=0,
        )
    contours = ax.contour(
        grid_x, grid_y, log_density, levels=levels, cmap="viridis", linewidths=1.2
    )
    if colorbar:
        ax.figure.colorbar(contours, ax=ax, label="log density", format="%.1f")
    _set_labels(ax, plane)
    ax.set_aspect("equal", adjustable="datalim")
    what = plane.description or f"{len(weights)} components"
    count = "" if X is None else " " + _count_note(len(X), len(rows), n_missing)
    ax.set_title(f"Log-density, {what}{count}")
    return ax


# -- uncertainty -----------------------------------------------------------------------
def plot_uncertainty(
    gmm: Any,
    X: Any,
    ax: Axes | None = None,
    *,
    features: Sequence[int | str] | None = None,
    projection: str | Any | None = None,
    max_points: int | None = 20_000,
    max_size: float = _MAX_SIZE,
) -> Axes:
    """Scatter the data sized by classification uncertainty, as mclust does.

    The uncertainty of a point is ``1 - max_k p(k | x)``, one minus its
    largest responsibility: 0 for a point surely in one cluster, at most
    ``1 - 1/n_components`` for one equally likely in all. Each point's
    marker area grows linearly with it, from ``4`` points² for a certain
    point to ``max_size`` at the largest possible uncertainty, and its
    colour is its predicted cluster. The most uncertain points are drawn
    last, on top.

    Parameters
    ----------
    gmm : fitted mixture
        Anything with ``predict_proba`` and ``means_`` (see
        :func:`plot_clusters`); a ``GaussianMixtureIC`` draws its chosen
        model.
    X : array-like of shape (n_samples, n_features)
        Data to draw; rows with NaN are handled as in :func:`plot_clusters`.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created with pyplot if None.
    features, projection
        The plane to draw in, as for :func:`plot_clusters`.
    max_points : int or None, default=20_000
        Scatter at most this many points (see :func:`plot_clusters`).
    max_size : float, default=80.0
        Marker area, in points², at the largest possible uncertainty.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on; its one collection is the scatter, points in
        increasing uncertainty.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        As :func:`plot_clusters`.
    sklearn.exceptions.NotFittedError
        If ``gmm`` is not fitted.
    """
    _check_matplotlib()

    mixture = _mixture(gmm)
    n_components, n_features = np.shape(mixture.means_)
    X, names = _check_data(X, n_features, "plot_uncertainty")
    plane = _plane(
        n_features,
        X,
        features=features,
        projection=projection,
        names=_names(mixture, names),
        who="plot_uncertainty",
    )
    if ax is None:
        ax = _new_axes()

    rows, points, n_missing = _drawable(gmm, X, plane, max_points)
    if len(rows):
        resp = _predict(gmm, "predict_proba", X[rows])
    else:
        resp = np.ones((0, n_components))
    uncertainty = 1.0 - resp.max(axis=1)
    largest = 1.0 - 1.0 / n_components
    scale = (max_size - _MIN_SIZE) / largest if n_components > 1 else 0.0
    sizes = _MIN_SIZE + scale * uncertainty
    order = np.argsort(uncertainty, kind="stable")
    colors = np.array([f"C{k % 10}" for k in range(n_components)])
    ax.scatter(
        points[order, 0],
        points[order, 1],
        s=sizes[order],
        c=colors[resp.argmax(axis=1)[order]] if len(rows) else "C0",
        alpha=0.6,
        linewidths=0,
    )

    # A key of marker sizes at round uncertainties, as the areas mean nothing
    # by themselves.
    for u in [u for u in (0.05, 0.2, 0.5) if u <= largest] or [0.0]:
        _key(
            ax,
            linestyle="none",
            marker="o",
            markersize=float(np.sqrt(_MIN_SIZE + scale * u)),
            markerfacecolor="0.4",
            markeredgewidth=0,
            label=f"{u:g}",
        )
    ax.legend(
        title="uncertainty",
        loc="best",
        fontsize="small",
        title_fontsize="small",
        framealpha=0.9,
    )
    _set_labels(ax, plane)
    ax.set_aspect("equal", adjustable="datalim")
    n_high = int(np.sum(uncertainty > 0.2))
    ax.set_title(
        f"Uncertainty (1 - max responsibility): {n_high:,} above 0.2 "
        f"{_count_note(len(X), len(rows), n_missing)}"
    )
    return ax


def plot_fit(gmm: Any, X: Any, path: str | os.PathLike[str]) -> Path:
    """Save the clusters and the lower-bound curve side by side as a PNG.

    The figure is rendered with matplotlib's Agg backend, without pyplot, so
    this works on headless machines and leaves the caller's pyplot state and
    backend untouched.

    Parameters
    ----------
    gmm : fitted GaussianMixture
        A mixture fitted on 2-D data (see :func:`plot_clusters`).
    X : array-like of shape (n_samples, 2)
        Data to scatter in the left panel.
    path : str or path-like
        Where to write the PNG.

    Returns
    -------
    path : pathlib.Path
        The path written.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``X`` or the mixture is not two-dimensional.
    """
    _check_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(13, 6), layout="constrained")
    FigureCanvasAgg(fig)
    ax_clusters, ax_bounds = fig.subplots(1, 2)
    plot_clusters(gmm, X, ax=ax_clusters)
    plot_lower_bounds(gmm, ax=ax_bounds)
    # The top-level package tells sklearn_em and scikit-learn fits apart.
    package = type(gmm).__module__.partition(".")[0]
    fig.suptitle(f"{package} {type(gmm).__name__}", fontsize="x-large")
    path = Path(path)
    fig.savefig(path, format="png", dpi=110)
    return path
