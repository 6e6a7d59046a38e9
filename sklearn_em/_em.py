"""The EM loop: pure numpy, no scikit-learn.

Parameters come from statistics (M-step) and statistics from parameters and data
(E-step, in :mod:`._stats`); this module strings them together and decides
convergence the way scikit-learn does, so that both libraries stop at the same
iteration from the same start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ._covariance import Covariance
from ._stats import ChunkedEStep, SuffStats


@dataclass(frozen=True)
class MixtureParams:
    """A fitted (or initial) Gaussian mixture, in scikit-learn's conventions."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray


@dataclass
class EMResult:
    """Outcome of one EM run."""

    params: MixtureParams
    lower_bound: float
    lower_bounds: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False


def params_from_stats(
    stats: SuffStats,
    covariance: Covariance,
    center: np.ndarray,
    reg_covar: float,
) -> MixtureParams:
    """M-step: maximum-likelihood parameters from summed statistics.

    Like scikit-learn, ``10 * eps`` is added to every ``N_k`` so an empty
    component yields finite means instead of a division by zero.
    """
    n_features = center.shape[0]
    moments = stats.moments
    nk = moments[:, 0] + 10 * np.finfo(np.float64).eps
    centred_means = moments[:, 1 : n_features + 1] / nk[:, None]
    covariances = covariance.covariances_from_moments(
        nk,
        centred_means,
        moments[:, n_features + 1 :],
        reg_covar,
    )
    return MixtureParams(
        weights=nk / nk.sum(),
        means=centred_means + center,
        covariances=covariances,
        precisions_cholesky=covariance.precisions_cholesky(covariances),
    )


def log_prob_matrix(
    params: MixtureParams, covariance: Covariance, center: np.ndarray
) -> np.ndarray:
    """The matrix ``W`` mapping feature rows to weighted log-densities."""
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights)
    return covariance.log_prob_weights(
        log_weights, params.means - center, params.precisions_cholesky
    )


def run_em(
    estep: ChunkedEStep,
    x: np.ndarray,
    sample_weight: np.ndarray | None,
    params: MixtureParams,
    *,
    tol: float,
    max_iter: int,
    reg_covar: float,
    lower_bound: float = -np.inf,
    on_iteration: Callable[[int, float], None] | None = None,
) -> EMResult:
    """Iterate E- and M-steps from ``params`` until the lower bound settles.

    As in scikit-learn, the lower bound recorded at iteration ``i`` is the mean
    log-likelihood under the parameters *entering* that iteration, and the run
    has converged when it changes by less than ``tol``.
    """
    covariance, center = estep.covariance, estep.center
    lower_bounds: list[float] = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        previous = lower_bound
        stats = estep.accumulate(
            x, sample_weight, log_prob_matrix(params, covariance, center)
        )
        params = params_from_stats(stats, covariance, center, reg_covar)
        lower_bound = stats.log_likelihood / stats.total_weight
        lower_bounds.append(lower_bound)
        change = lower_bound - previous
        if on_iteration is not None:
            on_iteration(n_iter, change)
        if abs(change) < tol:
            converged = True
            break
    return EMResult(params, lower_bound, lower_bounds, n_iter, converged)
