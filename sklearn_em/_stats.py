"""Sufficient statistics of a Gaussian mixture, and the chunked E-step that makes them.

A chunk of rows ``x`` is centred on a fixed point ``c`` (``y = x - c``) and turned
into feature rows ``F = [1, y, second-order(y)]`` (the covariance type chooses the
second-order part).  Then

* the weighted log-density of every component is one matrix product ``W @ F``;
* the statistics of every component are one more, ``R @ F.T``, where ``R`` holds
  the (sample-weighted) responsibilities: its columns are ``N_k``, ``S1_k`` and the
  second moments about ``c``.

Arrays keep components on the leading axis, ``(k, m)``: numpy reduces over the
leading axis of a C-ordered array many times faster than over a short last axis.
Work proceeds in chunks small enough to keep every temporary in cache, so memory
beyond ``X`` does not grow with the number of rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._covariance import Covariance

# Bytes of per-chunk working set to aim for: roughly an L2 cache.
_CHUNK_BYTES = 1 << 21
_MIN_CHUNK, _MAX_CHUNK = 256, 32768


def default_chunk_size(n_rows_features: int, n_components: int) -> int:
    """Rows per chunk so that the ``(q + k, m)`` float64 buffers stay in cache."""
    rows = _CHUNK_BYTES // (8 * (n_rows_features + n_components))
    return int(min(_MAX_CHUNK, max(_MIN_CHUNK, rows)))


@dataclass
class SuffStats:
    """Summed statistics of a data set (or a part of it) under a mixture.

    Attributes
    ----------
    moments : ndarray of shape (n_components, q)
        ``sum_i w_i r_ik F_i``: column 0 is ``N_k``, columns ``1..d`` are
        ``S1_k = sum w r (x - c)``, the rest the second-order sums about ``c``.
    log_likelihood : float
        ``sum_i w_i log p(x_i)`` under the parameters of the E-step (0 where the
        statistics came from given responsibilities).
    total_weight : float
        ``sum_i w_i``.
    """

    moments: np.ndarray
    log_likelihood: float
    total_weight: float

    def __add__(self, other: SuffStats) -> SuffStats:
        return SuffStats(
            self.moments + other.moments,
            self.log_likelihood + other.log_likelihood,
            self.total_weight + other.total_weight,
        )


class ChunkedEStep:
    """E-step machinery for one data shape: buffers, features, log-densities.

    Parameters
    ----------
    covariance : Covariance
        Operations of the covariance type.
    n_features, n_components : int
    center : ndarray of shape (n_features,)
        Fixed point the data are centred on before any product is formed; close
        to the data mean it keeps second moments accurate far from the origin.
    chunk_size : int or None
        Rows per chunk; ``None`` picks one from the problem size.
    max_rows : int or None
        Largest number of rows ever passed at once, to size the buffers.
    """

    def __init__(
        self,
        covariance: Covariance,
        n_features: int,
        n_components: int,
        center: np.ndarray,
        chunk_size: int | None = None,
        max_rows: int | None = None,
    ):
        self.covariance = covariance
        self.n_features = n_features
        self.n_components = n_components
        self.center = np.asarray(center, dtype=np.float64)
        self.q = covariance.n_features_total(n_features)
        self.chunk_size = chunk_size or default_chunk_size(self.q, n_components)
        if max_rows is not None:
            self.chunk_size = max(1, min(self.chunk_size, max_rows))
        self._f = np.empty(self.q * self.chunk_size)
        self._l = np.empty(n_components * self.chunk_size)

    def chunks(self, n_samples: int):
        """``(start, stop)`` of every chunk of ``n_samples`` rows."""
        step = self.chunk_size
        return ((s, min(s + step, n_samples)) for s in range(0, n_samples, step))

    def features(self, x: np.ndarray) -> np.ndarray:
        """Feature rows ``[1, y, second-order(y)]`` of a chunk, shape ``(q, m)``.

        Computed in float64 whatever the input dtype, so float32 data gets float64
        statistics.
        """
        m, d = x.shape
        f = self._f[: self.q * m].reshape(self.q, m)
        f[0] = 1.0
        np.subtract(x.T, self.center[:, None], out=f[1 : d + 1])
        self.covariance.second_order_features(f[1 : d + 1], f[d + 1 :])
        return f

    def weighted_log_prob(self, f: np.ndarray, w_matrix: np.ndarray) -> np.ndarray:
        """``log pi_k + log N_k(x)`` for every component, shape ``(k, m)``."""
        m = f.shape[1]
        out = self._l[: self.n_components * m].reshape(self.n_components, m)
        return np.matmul(w_matrix, f, out=out)

    @staticmethod
    def normalize(log_prob: np.ndarray) -> np.ndarray:
        """Turn ``log_prob`` (k, m) into responsibilities in place; return log p(x).

        This is a log-sum-exp over the leading axis, written out because the
        exponentials are needed as responsibilities afterwards.
        """
        top = log_prob.max(axis=0)
        log_prob -= top
        np.exp(log_prob, out=log_prob)
        total = log_prob.sum(axis=0)
        log_prob /= total
        np.log(total, out=total)
        total += top
        return total

    def accumulate(
        self,
        x: np.ndarray,
        sample_weight: np.ndarray | None,
        w_matrix: np.ndarray,
    ) -> SuffStats:
        """E-step over all rows of ``x``: summed statistics and log-likelihood."""
        moments = np.zeros((self.n_components, self.q))
        log_likelihood = 0.0
        for start, stop in self.chunks(len(x)):
            f = self.features(x[start:stop])
            resp = self.weighted_log_prob(f, w_matrix)
            log_norm = self.normalize(resp)
            if sample_weight is None:
                log_likelihood += log_norm.sum()
            else:
                weight = sample_weight[start:stop]
                log_likelihood += weight @ log_norm
                resp *= weight
            moments += resp @ f.T
        total = float(len(x)) if sample_weight is None else float(sample_weight.sum())
        return SuffStats(moments, float(log_likelihood), total)

    def accumulate_given(
        self,
        x: np.ndarray,
        sample_weight: np.ndarray | None,
        resp: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> SuffStats:
        """Statistics for given responsibilities ``(n, k)`` or hard ``labels``.

        A label of -1 means the row belongs to no component.
        """
        moments = np.zeros((self.n_components, self.q))
        components = np.arange(self.n_components)[:, None]
        for start, stop in self.chunks(len(x)):
            f = self.features(x[start:stop])
            if resp is not None:
                r = np.array(resp[start:stop].T, dtype=np.float64)
            else:
                r = (labels[start:stop] == components).astype(np.float64)
            if sample_weight is not None:
                r *= sample_weight[start:stop]
            moments += r @ f.T
        total = float(len(x)) if sample_weight is None else float(sample_weight.sum())
        return SuffStats(moments, 0.0, total)

    def evaluate(
        self,
        x: np.ndarray,
        w_matrix: np.ndarray,
        *,
        log_norm_out: np.ndarray | None = None,
        resp_out: np.ndarray | None = None,
        labels_out: np.ndarray | None = None,
        weighted_log_prob_out: np.ndarray | None = None,
    ) -> None:
        """Per-row outputs under fixed parameters, written into the given arrays.

        ``log_norm_out`` (n,) gets ``log p(x)``, ``resp_out`` (n, k) the
        responsibilities, ``labels_out`` (n,) the most probable component and
        ``weighted_log_prob_out`` (n, k) ``log pi_k + log N_k(x)``.
        """
        for start, stop in self.chunks(len(x)):
            f = self.features(x[start:stop])
            log_prob = self.weighted_log_prob(f, w_matrix)
            if weighted_log_prob_out is not None:
                weighted_log_prob_out[start:stop] = log_prob.T
            if labels_out is not None:
                labels_out[start:stop] = log_prob.argmax(axis=0)
            if log_norm_out is None and resp_out is None:
                continue
            log_norm = self.normalize(log_prob)
            if log_norm_out is not None:
                log_norm_out[start:stop] = log_norm
            if resp_out is not None:
                resp_out[start:stop] = log_prob.T
