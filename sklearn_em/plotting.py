"""Plots of a fitted Gaussian mixture.

matplotlib is an optional dependency (the ``plot`` extra): it is imported
inside the functions, so ``import sklearn_em.plotting`` works without it and
only calling a plotting function needs it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.utils.validation import check_array, check_is_fitted

from ._covariance import get_covariance

__all__ = ["plot_clusters", "plot_fit", "plot_lower_bounds"]

# 2-sigma ellipses hold about 86% of a 2-D Gaussian's mass: wide enough to show
# each component's extent, narrow enough not to swamp the plot.
_N_SIGMA = 2.0
_MISSING_MATPLOTLIB = (
    "plotting needs matplotlib, which is an optional dependency; "
    "install it with: pip install sklearn-em[plot]"
)


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


def plot_clusters(gmm: Any, X: Any, ax: Any = None, *, max_points: int | None = 20_000):
    """Scatter 2-D data coloured by predicted cluster, with component ellipses.

    Each component is drawn as its mean (a cross) and the ellipse at two
    standard deviations of its fitted covariance, in the same colour as the
    points predicted to belong to it. All four ``covariance_type`` values are
    supported.

    Parameters
    ----------
    gmm : fitted GaussianMixture
        ``sklearn_em.GaussianMixture`` or ``sklearn.mixture.GaussianMixture``
        (anything with ``predict``, ``means_``, ``covariances_``,
        ``covariance_type`` and ``weights_``), fitted on 2-D data.
    X : array-like of shape (n_samples, 2)
        Data to scatter; the colours come from ``gmm.predict(X)``.
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created with pyplot if None.
    max_points : int or None, default=20_000
        Scatter at most this many points, chosen at random with a fixed seed,
        because drawing millions of markers is slow and no more informative.
        None scatters every point. Ellipses and means are unaffected.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``X`` or the mixture is not two-dimensional.
    sklearn.exceptions.NotFittedError
        If ``gmm`` is not fitted.
    """
    _check_matplotlib()
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    check_is_fitted(gmm)
    X = check_array(X, dtype=np.float64)
    if X.shape[1] != 2:
        raise ValueError(
            f"plot_clusters draws 2-D data only, got X with {X.shape[1]} features"
        )
    means = np.asarray(gmm.means_)
    if means.shape[1] != 2:
        raise ValueError(
            f"plot_clusters draws 2-D mixtures only, got a mixture fitted on "
            f"{means.shape[1]} features"
        )
    if ax is None:
        ax = _new_axes()

    n_points = X.shape[0]
    if max_points is not None and n_points > max_points:
        rows = np.random.default_rng(0).choice(n_points, max_points, replace=False)
        X = X[np.sort(rows)]
    labels = gmm.predict(X)
    covariances = _full_covariances(gmm.covariances_, gmm.covariance_type, *means.shape)
    # Categorical colours: a continuous map would make neighbours look alike.
    colors = [f"C{k % 10}" for k in range(len(means))]

    handles = []
    for k, (mean, cov, weight) in enumerate(
        zip(means, covariances, gmm.weights_, strict=True)
    ):
        members = X[labels == k]
        ax.scatter(
            members[:, 0],
            members[:, 1],
            s=6,
            color=colors[k],
            alpha=0.45,
            linewidths=0,
        )
        width, height, angle = _ellipse_geometry(cov)
        ax.add_patch(
            Ellipse(
                mean,
                width,
                height,
                angle=angle,
                fill=False,
                edgecolor=colors[k],
                linewidth=2,
            )
        )
        # Proxy handles, because the scatter's own tiny translucent markers
        # would be unreadable in the legend.
        handles.append(
            Line2D(
                [],
                [],
                color=colors[k],
                marker="o",
                linestyle="-",
                linewidth=2,
                markersize=6,
                label=f"component {k}: weight {weight:.3f}",
            )
        )
    ax.scatter(
        means[:, 0],
        means[:, 1],
        marker="X",
        s=120,
        # White, not the component colour, so a mean stays visible on top of a
        # dense cloud of its own points.
        color="white",
        edgecolors="black",
        linewidths=1.2,
        zorder=3,
    )
    handles.append(
        Line2D(
            [],
            [],
            marker="X",
            linestyle="none",
            markersize=10,
            markerfacecolor="white",
            markeredgecolor="black",
            label="component means",
        )
    )
    handles.append(
        Line2D(
            [],
            [],
            color="0.3",
            linewidth=2,
            label=f"{_N_SIGMA:g}-sigma ellipses",
        )
    )

    ax.set_xlabel("$x_1$")
    ax.set_ylabel("$x_2$")
    ax.set_aspect("equal", adjustable="datalim")
    shown = "" if len(X) == n_points else f", {len(X):,} shown"
    ax.set_title(
        f"{len(means)} clusters, {gmm.covariance_type} covariances: "
        f"{gmm.n_iter_} EM steps ({n_points:,} points{shown})"
    )
    ax.legend(handles=handles, loc="best", fontsize="small", framealpha=0.9)
    return ax


def plot_lower_bounds(gmm: Any, ax: Any = None):
    """Plot the EM lower bound against the iteration number.

    Parameters
    ----------
    gmm : fitted GaussianMixture
        A mixture with the ``lower_bounds_`` attribute (the lower bound of the
        best initialisation after each EM step, as in scikit-learn >= 1.6).
    ax : matplotlib Axes, default=None
        Axes to draw on; a new figure is created with pyplot if None.

    Returns
    -------
    ax : matplotlib Axes
        The axes drawn on.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    sklearn.exceptions.NotFittedError
        If ``gmm`` is not fitted.
    """
    _check_matplotlib()
    from matplotlib.ticker import MaxNLocator

    check_is_fitted(gmm)
    if ax is None:
        ax = _new_axes()
    bounds = np.asarray(gmm.lower_bounds_, dtype=np.float64)
    steps = np.arange(1, len(bounds) + 1)
    ax.plot(steps, bounds, marker="o", markersize=3, linewidth=1.5)
    # EM steps are whole numbers; short runs would otherwise get 1.25, 1.5, ...
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("EM step")
    ax.set_ylabel("lower bound (mean log-likelihood per sample)")
    ax.grid(True, alpha=0.3)
    status = "converged" if gmm.converged_ else "not converged"
    ax.set_title(
        f"EM lower bound: {gmm.n_iter_} steps, {status} "
        f"(final {float(gmm.lower_bound_):.6g})"
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
