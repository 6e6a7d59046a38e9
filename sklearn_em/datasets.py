"""Synthetic data sets for examples, tests and benchmarks.

The project's seed is a web page showing an EM clustering of a 2-D data set drawn
from three Gaussians. That page never published its data file and reports only
its first fitted component, so :func:`make_three_gaussians` *reconstructs* a
comparable data set rather than reproducing the original one.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["make_three_gaussians", "three_gaussians_params"]

# Component 0 is exactly the first component the seed page reports (pi0 = 0.3335
# fitted, so the true weight is taken to be 1/3). Components 1 and 2 are our own
# choice: placed below-left and above-left of component 0 so that each overlaps it
# only in the tails, which keeps the clustering non-trivial but well posed.
_MEANS = ((4.379, 4.352), (0.5, 1.5), (2.0, 7.5))
_COVARIANCES = (
    ((2.748, -0.119), (-0.119, 0.618)),
    ((1.0, 0.5), (0.5, 1.5)),
    ((1.2, 0.6), (0.6, 0.9)),
)


def three_gaussians_params() -> dict[str, np.ndarray]:
    """Return the parameters of the true mixture behind :func:`make_three_gaussians`.

    Returns
    -------
    params : dict
        ``'weights'``: array of shape (3,), the mixing proportions (all 1/3);
        ``'means'``: array of shape (3, 2); ``'covariances'``: array of shape
        (3, 2, 2), full covariance matrices. Component 0 has the parameters the
        seed page reports for its first fitted component. Fresh arrays are
        returned on every call, so modifying them is harmless.

    Examples
    --------
    >>> from sklearn_em.datasets import three_gaussians_params
    >>> params = three_gaussians_params()
    >>> params["means"][0].tolist()
    [4.379, 4.352]
    >>> params["covariances"].shape
    (3, 2, 2)
    """
    return {
        "weights": np.full(3, 1.0 / 3.0),
        "means": np.array(_MEANS, dtype=np.float64),
        "covariances": np.array(_COVARIANCES, dtype=np.float64),
    }


def make_three_gaussians(
    n_samples: int = 1500, *, random_state=None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw a 2-D sample from an equally weighted mixture of three Gaussians.

    This is a **reconstruction**, not the seed page's data: that page did not
    publish its data file and reports only its first fitted component,
    ``pi0 = 0.3335, mu0 = [4.379, 4.352],
    Sigma0 = [[2.748, -0.119], [-0.119, 0.618]]``. Component 0 here has exactly
    that mean and covariance (with weight 1/3); the other two components are
    invented so that they overlap component 0 only a little. The true
    parameters are available from :func:`three_gaussians_params`.

    The number of samples per component is fixed, not random: ``n_samples`` is
    split as evenly as possible, the first components receiving one extra
    sample when it is not divisible by three. The rows are then shuffled.

    Parameters
    ----------
    n_samples : int, default=1500
        Total number of samples; must be an integer of at least 3 so that every
        component is represented.
    random_state : int, RandomState instance or None, default=None
        Controls the draws and the shuffle. Pass an int for reproducible
        output.

    Returns
    -------
    X : ndarray of shape (n_samples, 2), dtype float64
        The samples.
    y : ndarray of shape (n_samples,), dtype int64
        The index (0, 1 or 2) of the component each sample was drawn from.

    Raises
    ------
    ValueError
        If ``n_samples`` is not an integer or is smaller than 3.

    Examples
    --------
    >>> from sklearn_em.datasets import make_three_gaussians
    >>> X, y = make_three_gaussians(300, random_state=0)
    >>> X.shape, X.dtype
    ((300, 2), dtype('float64'))
    >>> np.bincount(y).tolist()
    [100, 100, 100]
    """
    # bool is an Integral subclass, but make_three_gaussians(True) is a bug.
    if not isinstance(n_samples, numbers.Integral) or isinstance(n_samples, bool):
        raise ValueError(
            f"n_samples must be an integer >= 3, got {n_samples!r} "
            f"of type {type(n_samples).__name__}"
        )
    if n_samples < 3:
        raise ValueError(
            f"n_samples must be >= 3 so that each of the 3 components gets at "
            f"least one sample, got {n_samples}"
        )
    n_samples = int(n_samples)
    rng = check_random_state(random_state)
    params = three_gaussians_params()

    counts = np.full(3, n_samples // 3)
    counts[: n_samples % 3] += 1
    # Shuffling the labels first and scattering each component's block into its
    # rows needs about a third less peak memory than drawing in order and then
    # permuting the finished X and y (which holds two copies of both at once).
    y = np.repeat(np.arange(3, dtype=np.int64), counts)
    rng.shuffle(y)

    X = np.empty((n_samples, 2), dtype=np.float64)
    for k, (mean, cov) in enumerate(
        zip(params["means"], params["covariances"], strict=True)
    ):
        # z @ L.T has covariance L L^T = cov, drawn as one vectorised block.
        chol = np.linalg.cholesky(cov)
        X[y == k] = rng.standard_normal((counts[k], 2)) @ chol.T + mean
    return X, y
