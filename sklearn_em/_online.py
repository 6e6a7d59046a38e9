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

from ._em import params_from_stats
from ._missing import Rows, accumulate_rows
from ._params import MixtureParams
from ._stats import ChunkedEStep, SuffStats


@dataclass
class OnlineState:
    """Running per-sample statistics, the number of updates, the fixed centre."""

    stats: SuffStats | None
    n_updates: int
    center: object


def step_size(n_updates: int, decay: float, offset: float) -> float:
    """Weight of the next batch; the first batch replaces the empty statistics."""
    if n_updates == 0:
        return 1.0
    return float((n_updates + offset) ** -decay)


def online_step(
    state: OnlineState,
    estep: ChunkedEStep,
    rows: Rows,
    params: MixtureParams,
    *,
    reg_covar: float,
    decay: float,
    offset: float,
) -> tuple[OnlineState, MixtureParams, float]:
    """One stepwise-EM update from a batch.

    Returns the new state, the new parameters and the batch's mean
    log-likelihood under the parameters it was given.
    """
    batch = accumulate_rows(estep, rows, params)
    per_sample = SuffStats(
        batch.moments / batch.total_weight,
        batch.log_likelihood / batch.total_weight,
        1.0,
    )
    eta = step_size(state.n_updates, decay, offset)
    if state.stats is None or eta == 1.0:
        running = per_sample
    else:
        running = SuffStats(
            (1.0 - eta) * state.stats.moments + eta * per_sample.moments,
            (1.0 - eta) * state.stats.log_likelihood + eta * per_sample.log_likelihood,
            1.0,
        )
    new_params = params_from_stats(running, estep.covariance, estep.center, reg_covar)
    return (
        OnlineState(running, state.n_updates + 1, state.center),
        new_params,
        per_sample.log_likelihood,
    )
