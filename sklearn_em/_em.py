"""The EM loop: pure numpy, no scikit-learn.

Parameters come from statistics (the M-step, here) and statistics from
parameters and data (the E-step, asked of a data source, see :mod:`._data`);
this module strings them together and decides convergence the way scikit-learn
does, so that both libraries stop at the same iteration from the same start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ._covariance import Covariance, IllDefinedCovariance
from ._model import Mixture
from ._stats import SuffStats


@dataclass
class EMResult:
    """Outcome of one EM run."""

    model: Mixture
    lower_bound: float
    lower_bounds: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    n_reseeded: int = 0
    floored: bool = False


_TEN_EPS = 10 * np.finfo(np.float64).eps


def gaussian_estimates(stats: SuffStats, covariance: Covariance, reg_covar: float):
    """``N_k`` (plus ``10 eps``, as scikit-learn), means and covariances
    (``reg_covar`` included) from summed statistics."""
    moments, centers = stats.moments, stats.centers
    n_features = centers.shape[-1]
    nk = moments[:, 0] + _TEN_EPS
    centred_means = moments[:, 1 : n_features + 1] / nk[:, None]
    covariances = covariance.covariances_from_moments(
        nk, centred_means, moments[:, n_features + 1 :], reg_covar
    )
    return nk, centred_means + centers, covariances


def _moment_estimates(stats: SuffStats, covariance: Covariance, reg_covar: float):
    """Weights, means and covariances from summed statistics."""
    nk, means, covariances = gaussian_estimates(stats, covariance, reg_covar)
    return nk / nk.sum(), means, covariances


# Without regularisation (reg_covar = 0), a component whose variance along some
# direction is below 1e-12 of the data's variance along it (each feature
# judged against its own spread) has collapsed onto (near-)duplicate rows: the
# degenerate maximum of a Gaussian mixture, where its likelihood grows without
# bound. It is treated like a covariance that is not positive definite. With
# reg_covar > 0 the likelihood is bounded and, as in scikit-learn, only a
# covariance that is not positive definite counts as collapsed.
MAX_RELATIVE_PRECISION = 1e12

# The repair of last resort, as a share of each feature's variance: far below
# any real cluster's spread, far above the rounding of a covariance (~1e-16).
COLLAPSE_FLOOR = 1e-10


def _checked_model(weights, means, covariances, covariance, feature_variances):
    precisions_cholesky = covariance.precisions_cholesky(covariances)
    if feature_variances is not None:
        largest = covariance.largest_precision(
            precisions_cholesky, len(weights), feature_variances
        )
        collapsed = largest > MAX_RELATIVE_PRECISION
        if collapsed.any():
            raise IllDefinedCovariance(collapsed)
    return Mixture(weights, means, covariances, precisions_cholesky, covariance)


def params_from_stats(
    stats: SuffStats,
    covariance: Covariance,
    reg_covar: float,
    feature_variances: np.ndarray | None = None,
) -> Mixture:
    """M-step: maximum-likelihood parameters from summed statistics.

    Like scikit-learn, ``10 * eps`` is added to every ``N_k`` so an empty
    component yields finite means instead of a division by zero. Raises
    :class:`IllDefinedCovariance` when a covariance is not positive definite,
    or (given the data's per-feature variances ``feature_variances``) so
    narrow that it is numerically collapsed.
    """
    weights, means, covariances = _moment_estimates(stats, covariance, reg_covar)
    return _checked_model(weights, means, covariances, covariance, feature_variances)


def stats_from_model(model: Mixture, center: np.ndarray, reg_covar: float) -> SuffStats:
    """Per-sample statistics whose M-step is ``model``: the inverse of
    :func:`params_from_stats` (total weight 1, moments about ``center``).

    For 'tied', the shared scatter is split between components by weight;
    the M-step only sees its sum.
    """
    covariance = model.covariance
    k, d = model.means.shape
    nk = model.weights
    centred = model.means - center
    scatter = model.full_covariances() - reg_covar * np.eye(d)
    scatter = scatter + centred[:, :, None] * centred[:, None, :]
    moments = np.hstack(
        [
            nk[:, None],
            nk[:, None] * centred,
            nk[:, None] * covariance.second_order_of(scatter),
        ]
    )
    return SuffStats(moments, np.tile(center, (k, 1)), 0.0, 1.0)


def reseed_components(
    stats: SuffStats,
    collapsed: np.ndarray,
    seed_rows: np.ndarray,
    covariance: Covariance,
    reg_covar: float,
    feature_variances: np.ndarray | None = None,
) -> Mixture:
    """M-step that re-seeds collapsed components instead of failing.

    Each collapsed component restarts at one of ``seed_rows`` (rows the current
    model explains worst) with the average covariance of the others and an
    equal share of weight; the others keep their M-step estimates. Raises
    :class:`IllDefinedCovariance` if even that is not a valid mixture (the data
    themselves are degenerate and ``reg_covar`` is too small).
    """
    weights, means, covariances = _moment_estimates(stats, covariance, reg_covar)
    # Only per-component types get here: a shared covariance that is ill-defined
    # is ill-defined for every component, and that is never re-seeded.
    covariances[collapsed] = covariances[~collapsed].mean(axis=0)
    means[collapsed] = seed_rows
    weights[collapsed] = 1.0 / len(weights)
    weights /= weights.sum()
    return _checked_model(weights, means, covariances, covariance, feature_variances)


def run_em(
    source,
    model: Mixture,
    *,
    tol: float,
    max_iter: int,
    reg_covar: float,
    lower_bound: float = -np.inf,
    max_reseeds: int | None = None,
    on_iteration: Callable[[int, float, float], None] | None = None,
) -> EMResult:
    """Iterate E- and M-steps from ``model`` until the lower bound settles.

    ``source`` is a data source (see :mod:`._data`); only its ``stats``,
    ``worst_rows``, ``covariance`` and ``feature_variances`` are used, and
    its ``m_step`` and ``run`` (iterations in one compiled call, only
    without ``on_iteration``) where it has them.

    As in scikit-learn, the lower bound recorded at iteration ``i`` is the mean
    log-likelihood under the parameters *entering* that iteration, and the run
    has converged when it changes by less than ``tol``.

    A component whose covariance collapses (not positive definite, or, with
    ``reg_covar = 0``, narrower than the data by ``MAX_RELATIVE_PRECISION``) is
    re-seeded at the worst-explained row, up to ``max_reseeds`` times in all
    (default: twice the number of components); the iteration that re-seeds
    never counts as converged. Past that, or when every component collapses,
    a run with ``reg_covar > 0`` floors every variance at ``reg_covar +
    COLLAPSE_FLOOR`` times its feature's variance for the rest of the run
    (``floored`` in the result); with ``reg_covar = 0`` the
    :class:`IllDefinedCovariance` error propagates.

    ``on_iteration(n_iter, change, lower_bound)`` is called after every
    iteration; a true return value stops the run.
    """
    covariance = source.covariance
    variances = source.feature_variances if reg_covar == 0 else None
    m_step = getattr(source, "m_step", None)
    if m_step is None:

        def m_step(stats, reg_covar, variances):
            return params_from_stats(stats, covariance, reg_covar, variances)

    if max_reseeds is None:
        max_reseeds = 2 * model.n_components
    # Where nothing is asked of each iteration, a source may run iterations
    # in one compiled call (see ._data.TrainingData.run).
    compiled = getattr(source, "run", None) if on_iteration is None else None
    lower_bounds: list[float] = []
    converged = floored = False
    n_iter = n_reseeded = 0
    while n_iter < max_iter:
        previous = lower_bound
        stats = None
        run = None
        if compiled is not None:
            run = compiled(
                model,
                lower_bound=lower_bound,
                max_iter=max_iter - n_iter,
                tol=tol,
                reg_covar=reg_covar,
                feature_variances=variances,
            )
        if run is not None:
            n_iter += len(run.lower_bounds)
            lower_bounds.extend(run.lower_bounds)
            model, lower_bound = run.model, run.lower_bounds[-1]
            if run.stats is None:
                converged = run.converged
                if converged:
                    break
                continue  # out of iterations
            # Its last M-step is not the common case: taken below.
            if len(run.lower_bounds) > 1:
                previous = run.lower_bounds[-2]
            stats = run.stats
        else:
            n_iter += 1
            stats = source.stats(model)
            lower_bound = stats.log_likelihood / stats.total_weight
            lower_bounds.append(lower_bound)
        # Only a re-seed needs the old model again, and only for an E-step.
        model = model.without_covariances()
        repaired = False
        try:
            model = m_step(stats, reg_covar, variances)
        except IllDefinedCovariance as error:
            collapsed = error.components
            n_collapsed = int(collapsed.sum())
            n_reseeded += n_collapsed
            seeds = None
            if not collapsed.all() and n_reseeded <= max_reseeds:
                seeds = source.worst_rows(model, n_collapsed)
            if seeds is not None and len(seeds) == n_collapsed:
                model = reseed_components(
                    stats, collapsed, seeds, covariance, reg_covar, variances
                )
            elif np.all(reg_covar > 0) and not floored:
                # The data keep pulling a component onto a degenerate set:
                # hold every variance above a small share of its feature's.
                reg_covar = reg_covar + COLLAPSE_FLOOR * source.feature_variances
                model = params_from_stats(stats, covariance, reg_covar)
                floored = True
            else:
                raise
            repaired = True
        change = lower_bound - previous
        if on_iteration is not None and on_iteration(n_iter, change, lower_bound):
            break  # asked to stop (a callback): not converged
        if abs(change) < tol and not repaired:
            converged = True
            break
    return EMResult(
        model, lower_bound, lower_bounds, n_iter, converged, n_reseeded, floored
    )
