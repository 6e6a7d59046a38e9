"""
====================================
Figures of a fitted Gaussian mixture
====================================

Every figure of :mod:`sklearn_em.plotting`, on two data sets: the 2-D
three-Gaussian set of :func:`sklearn_em.datasets.make_three_gaussians`, and
scikit-learn's wine data (178 wines, 13 standardised chemical measurements),
drawn in the plane of its first two principal components.

Each plotting function draws on the matplotlib Axes it is given (``ax=``) and
returns it, and takes a ``GaussianMixture``, a ``BayesianGaussianMixture`` or,
for a single model, a fitted ``GaussianMixtureIC`` (its chosen model).

Run as a script, ``python examples/plot_mixture_figures.py`` also writes each
figure as a PNG into ``docs/figures/`` (another folder with
``SKLEARN_EM_FIGURES=path``).
"""

# %%
# Set-up
# ------
# A helper saves each figure as a small PNG (100 dpi, 640 pixels wide) when
# the file is run as a script, not when sphinx-gallery builds the page.
import os
import sys
from pathlib import Path

import matplotlib.pyplot as plt
from sklearn.datasets import load_wine

from sklearn_em import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC
from sklearn_em.datasets import make_three_gaussians
from sklearn_em.plotting import (
    plot_clusters,
    plot_criteria,
    plot_density,
    plot_lower_bounds,
    plot_uncertainty,
)

SAVE = __name__ == "__main__" and "sphinx_gallery" not in sys.modules
try:
    _HERE = Path(__file__).resolve().parent
except NameError:  # run cell by cell, e.g. in a notebook
    _HERE = Path.cwd()
FIGURES = Path(os.environ.get("SKLEARN_EM_FIGURES", _HERE.parent / "docs" / "figures"))


def figure():
    """A new figure of README size with one Axes."""
    return plt.subplots(figsize=(6.4, 4.8), layout="constrained")


def save(fig, name):
    """Write ``fig`` to ``FIGURES/name.png`` when run as a script."""
    if SAVE:
        FIGURES.mkdir(parents=True, exist_ok=True)
        fig.savefig(FIGURES / f"{name}.png", dpi=100, pil_kwargs={"optimize": True})


X, _ = make_three_gaussians(1500, random_state=0)

# %%
# Clusters and their covariance ellipses
# --------------------------------------
# Points coloured by predicted cluster, each component's mean and its
# two-standard-deviation ellipse. Five initialisations drawn at random from
# the data, so that they do not all end in the same place (see below).
gmm = GaussianMixture(
    n_components=3, n_init=5, init_params="random_from_data", random_state=1
).fit(X)
fig, ax = figure()
plot_clusters(gmm, X, ax=ax)
save(fig, "three_gaussians_clusters")

# %%
# The lower bound of every initialisation
# ---------------------------------------
# EM increases the lower bound at every step. The kept run (highest final
# bound) is in colour; the grey runs stopped in poorer local optima, which is
# what ``n_init > 1`` guards against.
fig, ax = figure()
plot_lower_bounds(gmm, ax=ax)
save(fig, "three_gaussians_lower_bounds")

# %%
# Density
# -------
# Contours of the fitted log-density over the data.
fig, ax = figure()
plot_density(gmm, X, ax=ax)
save(fig, "three_gaussians_density")

# %%
# Classification uncertainty
# --------------------------
# As mclust's uncertainty plot: each point is sized by ``1 - max_k p(k | x)``,
# large where the components overlap.
fig, ax = figure()
plot_uncertainty(gmm, X, ax=ax)
save(fig, "three_gaussians_uncertainty")

# %%
# Choosing the number of components and the covariance type
# ---------------------------------------------------------
# :class:`~sklearn_em.GaussianMixtureIC` fits every ``n_components`` x
# ``covariance_type`` cell and keeps the lowest BIC, as R's mclust does; its
# criteria plot shows one curve per covariance type.
ic = GaussianMixtureIC(n_components=6, random_state=0).fit(X)
fig, ax = figure()
plot_criteria(ic, ax=ax)
save(fig, "three_gaussians_bic")

# %%
# A Bayesian mixture with more components than clusters
# -----------------------------------------------------
# :class:`~sklearn_em.BayesianGaussianMixture` given 8 components leaves the
# ones it does not need with almost no weight; ``min_weight`` hides them.
bgm = BayesianGaussianMixture(n_components=8, max_iter=500, random_state=0).fit(X)
fig, ax = figure()
plot_clusters(bgm, X, ax=ax, min_weight=0.01)
save(fig, "three_gaussians_bayesian")

# %%
# Real data: wine, in the plane of two principal components
# ---------------------------------------------------------
# 13 standardised features. The model is chosen by BIC among 1 to 6
# components and the four covariance types.
wine = load_wine(as_frame=True).data
wine = (wine - wine.mean()) / wine.std()
wine_ic = GaussianMixtureIC(n_components=6, random_state=0).fit(wine)
fig, ax = figure()
plot_criteria(wine_ic, ax=ax)
save(fig, "wine_bic")

# %%
# With ``projection='pca'`` the data, the means and the covariances go through
# the same linear map ``W`` (the first two principal axes): each ellipse is
# ``W Σ Wᵀ``, the exact covariance of the projected component. The legend's
# entries belong to the Axes, so a plain ``ax.legend(...)`` moves it, here out
# of the way of the points.
fig, ax = figure()
plot_clusters(wine_ic, wine, ax=ax, projection="pca")
ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
save(fig, "wine_clusters_pca")

# %%
# The uncertainty of the same classification, in the same plane.
fig, ax = figure()
plot_uncertainty(wine_ic, wine, ax=ax, projection="pca")
save(fig, "wine_uncertainty_pca")

# %%
# A pair of features instead: the density of two features is the mixture of
# the components' marginals, drawn here for alcohol and proline.
fig, ax = figure()
plot_density(wine_ic, wine, ax=ax, features=("alcohol", "proline"))
save(fig, "wine_density_alcohol_proline")

# %%
if SAVE:
    print(f"wrote the figures to {FIGURES}")
