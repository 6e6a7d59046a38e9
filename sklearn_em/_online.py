"""Online (stepwise) EM over running sufficient statistics.

Cappé & Moulines (2009) and Liang & Klein (2009): after the E-step on a batch,
the running statistics move towards the batch's per-sample statistics,

    s <- (1 - eta_t) s + eta_t s_batch,    eta_t = (t + offset) ** -decay,

and the M-step is the batch M-step applied to ``s``. With ``decay`` in
(0.5, 1] the steps satisfy the Robbins-Monro conditions; ``decay = 0`` makes
every step a full EM iteration on its batch. Like the batch E-step, it works
on rows with missing values and sample weights.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._em import params_from_stats
from ._model import Mixture
from ._stats import SuffStats


@dataclass
class OnlineState:
    """Running per-sample statistics, the number of updates, the fixed centre.

    ``log_seen`` is the log of the total weight the statistics stand for, when
    they continue a batch fit; the step sizes then make them the weighted
    average of everything seen, rather than follow the learning schedule.
    """

    stats: SuffStats | None
    n_updates: int
    center: np.ndarray
    log_seen: float | None = None


def step_size(n_updates: int, decay: float, offset: float) -> float:
    """Weight of the next batch; the first batch replaces the empty statistics."""
    if n_updates == 0:
        return 1.0
    return float((n_updates + offset) ** -decay)


def online_step(
    source,
    state: OnlineState,
    model: Mixture,
    *,
    reg_covar: float,
    decay: float,
    offset: float,
    log_weight: float = 0.0,
) -> tuple[OnlineState, Mixture, float]:
    """One stepwise-EM update from a batch, a data source (see :mod:`._data`).

    Returns the new state, the new parameters and the batch's mean
    log-likelihood under the parameters it was given. Running statistics are
    kept about the state's fixed centre, so batches whose narrow components
    were summarised about their own means blend correctly.

    ``log_weight`` is the log of the batch's total weight. After a batch fit
    that saw weight ``W`` (``state.log_seen``), a batch of weight ``b`` moves
    the statistics by ``b / (W + b)``: fit on A then ``partial_fit(B)`` is one
    EM step on A and B together from the fitted model.
    """
    covariance = source.covariance
    batch = source.stats(model).per_sample()
    batch = batch.recentered(state.center, covariance)
    log_seen = state.log_seen
    if log_seen is None:
        eta = step_size(state.n_updates, decay, offset)
    else:
        eta = float(np.exp(log_weight - np.logaddexp(log_seen, log_weight)))
        log_seen = float(np.logaddexp(log_seen, log_weight))
    running = batch if state.stats is None else state.stats.blend(batch, eta)
    new_model = params_from_stats(running, covariance, reg_covar)
    return (
        OnlineState(running, state.n_updates + 1, state.center, log_seen),
        new_model,
        batch.log_likelihood,
    )
