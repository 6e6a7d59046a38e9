"""Variational inference: a second parameter update on the same statistics.

Variational Bayes for a Gaussian mixture (Bishop 2006, §10.2; Blei & Jordan
2006 for the Dirichlet process), in scikit-learn's ``BayesianGaussianMixture``
parametrisation. Its E-step is the Gaussian E-step of :mod:`._em` with one
constant per component in place of ``log pi_k`` (the expected log-weight and
the Wishart terms, :attr:`._model.Mixture.log_scales`), so every data source
and kernel serves it unchanged. Its "M-step" turns the summed statistics into
posterior hyperparameters instead of point estimates.

The lower bound is scikit-learn's (constant terms dropped). Its data term,
``-sum_i w_i sum_k r_ik log r_ik`` for complete rows, comes from the statistics
themselves: ``sum_k r_ik log p~_ik`` is linear in the feature rows the moments
sum, so it is ``<W_k, M_k>`` for the E-step's log-density weights ``W``, and
the term is ``sum_i w_i log p(x_i) - sum_k <W_k, M_k>``. For a row with missing
values the same expression also holds the entropy of the missing values'
conditional distribution, the term the bound gains when they are integrated
out exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
from scipy.special import betaln, digamma, gammaln

from ._covariance import Covariance
from ._em import gaussian_estimates
from ._model import Mixture
from ._online import OnlineState, step_size
from ._stats import SuffStats


@dataclass(frozen=True)
class Prior:
    """The conjugate prior, in scikit-learn's names (without the trailing ``_``).

    ``weight_concentration`` is the Dirichlet (``process=False``) or
    Dirichlet-process (``process=True``, stick-breaking) concentration;
    ``covariance`` is in the covariance type's form (a matrix, a vector or a
    float).
    """

    process: bool
    weight_concentration: float
    mean_precision: float
    mean: np.ndarray
    degrees_of_freedom: float
    covariance: np.ndarray | float


@dataclass(frozen=True)
class Posterior:
    """Variational posterior hyperparameters and the mixture they imply.

    ``model`` holds scikit-learn's ``weights_``, ``means_``, ``covariances_``
    (Wishart scale over degrees of freedom) and ``precisions_cholesky_``.
    """

    weight_concentration: np.ndarray | tuple[np.ndarray, np.ndarray]
    mean_precision: np.ndarray
    degrees_of_freedom: np.ndarray | float
    model: Mixture

    @property
    def n_features(self) -> int:
        return self.model.n_features

    def expected_log_weights(self) -> np.ndarray:
        """``E[log pi_k]`` under the Dirichlet (process) posterior."""
        concentration = self.weight_concentration
        if isinstance(concentration, tuple):
            a, b = concentration
            digamma_sum = digamma(a + b)
            return (
                digamma(a)
                - digamma_sum
                + np.hstack((0, np.cumsum(digamma(b) - digamma_sum)[:-1]))
            )
        return digamma(concentration) - digamma(np.sum(concentration))

    def _log_lambda(self) -> np.ndarray | float:
        """``E[log |Lambda_k|] - log |W_k|`` of the Wishart posteriors."""
        d = self.n_features
        dof = np.asarray(self.degrees_of_freedom)
        return d * np.log(2.0) + np.sum(
            digamma(0.5 * (dof - np.arange(d)[:, None])), axis=0
        )

    def estep_model(self) -> Mixture:
        """The mixture whose Gaussian E-step is the variational E-step."""
        d = self.n_features
        log_scales = (
            self.expected_log_weights()
            - 0.5 * d * np.log(self.degrees_of_freedom)
            + 0.5 * (self._log_lambda() - d / self.mean_precision)
        )
        return replace(self.model, log_scales=log_scales)


def posterior_weights(concentration) -> np.ndarray:
    """scikit-learn's ``weights_``: the posterior mean of the weights."""
    if isinstance(concentration, tuple):
        a, b = concentration
        total = a + b
        weights = a / total * np.hstack((1, np.cumprod(b / total)[:-1]))
        return weights / np.sum(weights)
    return concentration / np.sum(concentration)


def variational_update(
    stats: SuffStats, prior: Prior, covariance: Covariance, reg_covar: float
) -> Posterior:
    """The variational "M-step": posterior hyperparameters from statistics."""
    nk, xk, sk = gaussian_estimates(stats, covariance, reg_covar)
    if prior.process:
        concentration = (
            1.0 + nk,
            prior.weight_concentration + np.hstack((np.cumsum(nk[::-1])[-2::-1], 0)),
        )
    else:
        concentration = prior.weight_concentration + nk
    mean_precision = prior.mean_precision + nk
    means = (prior.mean_precision * prior.mean + nk[:, None] * xk) / mean_precision[
        :, None
    ]
    dof, covariances = covariance.wishart_posterior(
        prior.covariance,
        prior.degrees_of_freedom,
        nk,
        sk,
        xk - prior.mean,
        prior.mean_precision / mean_precision,
    )
    model = Mixture(
        posterior_weights(concentration),
        means,
        covariances,
        covariance.precisions_cholesky(covariances),
        covariance,
    )
    return Posterior(concentration, mean_precision, dof, model)


def _log_wishart_norm(dof, log_det_cholesky, n_features):
    # As scikit-learn, without the log(pi) term.
    return -(
        dof * log_det_cholesky
        + dof * n_features * 0.5 * math.log(2.0)
        + np.sum(gammaln(0.5 * (dof - np.arange(n_features)[:, None])), 0)
    )


def lower_bound(stats: SuffStats, estep: Mixture, posterior: Posterior) -> float:
    """scikit-learn's variational lower bound after an update.

    ``stats`` are the E-step's statistics under ``estep`` and ``posterior``
    the update they gave.
    """
    model = posterior.model
    covariance, k, d = model.covariance, model.n_components, model.n_features
    weights = covariance.log_prob_weights(
        estep.log_weights(), estep.means - stats.centers, estep.precisions_cholesky
    )
    # - sum_i w_i sum_k r_ik log r_ik (see the module docstring).
    entropy = stats.log_likelihood - float(np.einsum("kq,kq->", weights, stats.moments))
    dof = np.broadcast_to(posterior.degrees_of_freedom, (k,))
    log_det = np.broadcast_to(
        covariance.log_det_cholesky(model.precisions_cholesky, d), (k,)
    ) - 0.5 * d * np.log(dof)
    log_wishart = np.sum(_log_wishart_norm(dof, log_det, d))
    concentration = posterior.weight_concentration
    if isinstance(concentration, tuple):
        log_norm_weight = -np.sum(betaln(*concentration))
    else:
        log_norm_weight = gammaln(np.sum(concentration)) - np.sum(
            gammaln(concentration)
        )
    return float(
        entropy
        - log_wishart
        - log_norm_weight
        - 0.5 * d * np.sum(np.log(posterior.mean_precision))
    )


@dataclass
class VBResult:
    """Outcome of one variational run."""

    posterior: Posterior
    lower_bound: float
    lower_bounds: list[float] = field(default_factory=list)
    n_iter: int = 0
    converged: bool = False
    stats: SuffStats | None = None


def run_vb(
    source,
    posterior: Posterior,
    prior: Prior,
    *,
    tol: float,
    max_iter: int,
    reg_covar: float,
    weight_scale: float = 1.0,
    lower_bound_start: float = -np.inf,
    on_iteration: Callable[[int, float, float], None] | None = None,
) -> VBResult:
    """Iterate variational E- and M-steps until the lower bound settles.

    As in scikit-learn, the bound of iteration ``i`` is computed after its
    update, and the run has converged when it changes by less than ``tol``.
    A component the data do not support keeps its prior (weight near 0): it is
    switched off, not an error. ``weight_scale`` turns the source's
    (normalised) weights back into the user's: unlike a likelihood, the
    posterior depends on how much data there is.
    """
    covariance = source.covariance
    bound = lower_bound_start
    bounds: list[float] = []
    converged = False
    n_iter = 0
    stats = None
    for n_iter in range(1, max_iter + 1):
        previous = bound
        estep = posterior.estep_model()
        stats = source.stats(estep).scale(weight_scale)
        posterior = variational_update(stats, prior, covariance, reg_covar)
        bound = lower_bound(stats, estep, posterior)
        bounds.append(bound)
        change = bound - previous
        if on_iteration is not None and on_iteration(n_iter, change, bound):
            break  # asked to stop (a callback): not converged
        if abs(change) < tol:
            converged = True
            break
    return VBResult(posterior, bound, bounds, n_iter, converged, stats)


@dataclass
class VBOnlineState(OnlineState):
    """:class:`._online.OnlineState` with the log of all the weight seen,
    the size of the data set the running statistics stand for."""

    log_total: float = -np.inf


def online_vb_step(
    source,
    state: VBOnlineState,
    posterior: Posterior,
    prior: Prior,
    *,
    reg_covar: float,
    decay: float,
    offset: float,
    weight_scale: float = 1.0,
) -> tuple[VBOnlineState, Posterior, float]:
    """One update of stochastic variational inference (Hoffman et al. 2013).

    The natural parameters of the posterior are the prior's plus the
    data's summed statistics, so moving them towards the batch's estimate
    ``prior + N * s_batch`` by ``eta`` is moving per-sample statistics ``s``
    by ``eta`` and updating from ``N * s``. ``N``, the size of a stream, is
    the weight seen so far. Steps follow ``(t + offset) ** -decay``, or, after
    a batch fit (``state.log_seen``), make ``s`` the average of everything
    seen, as in :func:`._online.online_step`.

    Returns the new state, the new posterior and the batch's mean
    log-likelihood under the variational E-step before the update.
    """
    covariance = source.covariance
    batch = source.stats(posterior.estep_model()).scale(weight_scale)
    log_weight = float(np.log(batch.total_weight))
    mean_log_likelihood = batch.log_likelihood / batch.total_weight
    batch = batch.per_sample().recentered(state.center, covariance)
    log_seen = state.log_seen
    if log_seen is None:
        eta = step_size(state.n_updates, decay, offset)
    else:
        eta = float(np.exp(log_weight - np.logaddexp(log_seen, log_weight)))
        log_seen = float(np.logaddexp(log_seen, log_weight))
    log_total = float(np.logaddexp(state.log_total, log_weight))
    running = batch if state.stats is None else state.stats.blend(batch, eta)
    new = variational_update(
        running.scale(np.exp(log_total)), prior, covariance, reg_covar
    )
    state = VBOnlineState(
        running, state.n_updates + 1, state.center, log_seen, log_total
    )
    return state, new, mean_log_likelihood
