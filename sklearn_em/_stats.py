"""Sufficient statistics of a Gaussian mixture, and the row-wise reductions
every E-step kernel shares.

A chunk of rows is centred per component on a fixed point ``c_k`` (``y = x -
c_k``) and summarised by the responsibility-weighted sums of the feature rows
``F = [1, y, second-order(y)]`` (the covariance type chooses the second-order
part). Those sums add up over chunks, threads and machines, so any engine that
produces them feeds the same M-step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ._covariance import Covariance

# exp() of anything below SAFE_LOG is finite, with room for sums over many
# components; a row total above TINY is a normal float64 far from underflow.
SAFE_LOG = 300.0
TINY = 1e-280

# numpy's SIMD exp leaves its fast path for arguments below about -708 (the
# results that are subnormal or underflow): 15 to 150 times slower per value
# (Intel Xeon, numpy 2.4). Statistics may floor log-densities here, and then
# count what was floored as exactly 0: a term below exp(-700) = 1e-304 of its
# row changes no sum, and a tiny one left in would make the products of the
# moments subnormal, as slow again (breast_cancer, d=30: 4x the fit).
EXP_FLOOR = -700.0
_FLOORED = float(np.exp(EXP_FLOOR))


def _floored_exp(log_prob: np.ndarray) -> None:
    """``exp`` in place, 0 for arguments at or below :data:`EXP_FLOOR`."""
    np.maximum(log_prob, EXP_FLOOR, out=log_prob)
    np.exp(log_prob, out=log_prob)
    np.copyto(log_prob, 0.0, where=log_prob <= _FLOORED)


@dataclass
class SuffStats:
    """Summed statistics of a data set (or a part of it) under a mixture.

    Attributes
    ----------
    moments : ndarray of shape (n_components, q)
        ``sum_i w_i r_ik F_ik``: column 0 is ``N_k``, columns ``1..d`` are
        ``S1_k = sum w r (x - c_k)``, the rest the second-order sums about
        ``c_k``.
    centers : ndarray of shape (n_components, n_features)
        The point ``c_k`` each component's moments are taken about.
    log_likelihood : float
        ``sum_i w_i log p(x_i)`` under the parameters of the E-step (0 where the
        statistics came from given responsibilities).
    total_weight : float
        ``sum_i w_i``.
    """

    moments: np.ndarray
    centers: np.ndarray
    log_likelihood: float
    total_weight: float

    def __add__(self, other: SuffStats) -> SuffStats:
        if self.centers is not other.centers and not np.array_equal(
            self.centers, other.centers
        ):
            raise ValueError(
                "Statistics about different centres cannot be added; recentre "
                "one of them first (SuffStats.recentered)."
            )
        return SuffStats(
            self.moments + other.moments,
            self.centers,
            self.log_likelihood + other.log_likelihood,
            self.total_weight + other.total_weight,
        )

    def scale(self, factor: float) -> SuffStats:
        """The statistics of a data set whose weights are all ``factor`` times."""
        return replace(
            self,
            moments=self.moments * factor,
            log_likelihood=self.log_likelihood * factor,
            total_weight=self.total_weight * factor,
        )

    def per_sample(self) -> SuffStats:
        """Statistics per unit of weight: total weight 1."""
        return self.scale(1.0 / self.total_weight)

    def blend(self, other: SuffStats, eta: float) -> SuffStats:
        """``(1 - eta) * self + eta * other``: a step of stepwise EM."""
        return self.scale(1.0 - eta) + other.scale(eta)

    def recentered(self, centers: np.ndarray, covariance: Covariance) -> SuffStats:
        """The same statistics with moments taken about ``centers`` instead.

        With ``delta = c - c'``: ``S1' = S1 + N delta`` and ``sum r y'y'^T =
        S2 + S1 delta^T + delta S1^T + N delta delta^T``, mapped to the
        covariance type's second-order features (a linear map).
        """
        centers = np.broadcast_to(np.asarray(centers, np.float64), self.centers.shape)
        delta = self.centers - centers
        if not delta.any():
            return replace(self, centers=centers)
        d = centers.shape[1]
        nk, s1 = self.moments[:, :1], self.moments[:, 1 : d + 1]
        cross = s1[:, :, None] * delta[:, None, :]
        outer = cross + np.swapaxes(cross, 1, 2)
        outer += nk[:, :, None] * delta[:, :, None] * delta[:, None, :]
        moments = self.moments.copy()
        moments[:, 1 : d + 1] += nk * delta
        moments[:, d + 1 :] += covariance.second_order_of(outer)
        return replace(self, moments=moments, centers=centers)


def sum_rows(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=0)`` for a short leading axis, as row additions (faster)."""
    total = a[0].copy()
    for row in a[1:]:
        total += row
    return total


def argmax_rows(a: np.ndarray, out: np.ndarray) -> None:
    """``a.argmax(axis=0)`` for a short leading axis, by row comparisons.

    numpy's argmax over the leading axis of a C-ordered array is several times
    slower than k elementwise passes. Ties go to the lowest index, as argmax.
    """
    best = a[0].copy()
    out[...] = 0
    for j in range(1, len(a)):
        better = a[j] > best
        np.copyto(out, j, where=better)
        np.maximum(best, a[j], out=best)


def normalize(log_prob: np.ndarray, floor: bool = False) -> np.ndarray:
    """Turn ``log_prob`` (k, m) into responsibilities in place; return log p(x).

    A log-sum-exp over the leading axis, shifted by each row's maximum so it
    cannot overflow or underflow. A row no component can explain (every
    log-density ``-inf``, e.g. infinitely far from all of them) gets
    ``log p(x) = -inf`` and equal responsibilities. ``floor``: terms whose
    shifted log-density is at most :data:`EXP_FLOOR` count as 0 (for
    statistics, where rows far from many components would slow ``exp``
    down).
    """
    top = log_prob.max(axis=0)
    dead = np.isneginf(top)
    if dead.any():
        top[dead] = 0.0
    log_prob -= top
    if floor:
        _floored_exp(log_prob)
    else:
        np.exp(log_prob, out=log_prob)
    total = sum_rows(log_prob)
    if dead.any():
        log_prob[:, dead] = 1.0
        total[dead] = len(log_prob)
    log_prob *= np.reciprocal(total)
    np.log(total, out=total)
    total += top
    if dead.any():
        total[dead] = -np.inf
    return total


def normalize_unshifted(log_prob: np.ndarray, floor: bool = False) -> np.ndarray | None:
    """:func:`normalize` without the row maxima, or ``None`` if a row underflowed.

    Valid only when no component's log-density can overflow ``exp`` (every peak
    below ``SAFE_LOG``); then it saves two passes. On ``None``, ``log_prob``
    holds exponentials and must be recomputed. ``floor`` as in
    :func:`normalize` (a row all of whose terms were floored has underflowed).
    """
    if floor:
        _floored_exp(log_prob)
    else:
        np.exp(log_prob, out=log_prob)
    total = sum_rows(log_prob)
    if total.min() > TINY:
        # Terms lost to underflow weigh < 1e-28 of their row's total.
        log_prob *= np.reciprocal(total)
        return np.log(total, out=total)
    return None
