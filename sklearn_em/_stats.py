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

import math
import operator
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache, reduce

import numpy as np
from threadpoolctl import ThreadpoolController

from ._covariance import Covariance
from ._params import MixtureParams

# Bytes of per-chunk working set to aim for: roughly an L2 cache.
_CHUNK_BYTES = 1 << 21
_MIN_CHUNK, _MAX_CHUNK = 16, 32768
# exp() of anything below _SAFE_LOG is finite, with room for sums over many
# components; a row total above _TINY is a normal float64 far from underflow.
_SAFE_LOG = 300.0
_TINY = 1e-280
_LOG_2PI = math.log(2.0 * math.pi)


def _argmax_rows(a: np.ndarray, out: np.ndarray) -> None:
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


def _sum_rows(a: np.ndarray) -> np.ndarray:
    """``a.sum(axis=0)`` for a short leading axis, as row additions (faster)."""
    total = a[0].copy()
    for row in a[1:]:
        total += row
    return total


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
    centers : ndarray of shape (n_components, n_features) or None
        The point each component's moments are taken about, where that is not
        the E-step's common centre (see :meth:`ChunkedEStep.local_centres`).
    """

    moments: np.ndarray
    log_likelihood: float
    total_weight: float
    centers: np.ndarray | None = None

    def __add__(self, other: SuffStats) -> SuffStats:
        return SuffStats(
            self.moments + other.moments,
            self.log_likelihood + other.log_likelihood,
            self.total_weight + other.total_weight,
            self.centers,
        )


# Above this, ``precision * |x - c|^2`` (rows' squared distance from the common
# centre ``c``, against the component's largest precision) makes the expanded
# quadratic forms lose more than ~6 of float64's 16 digits, and the component
# is handled about its own mean, with the direct Cholesky form, instead.
_MAX_EXPANSION = 1e6


@dataclass
class LocalCentres:
    """Components handled about their own means: indices, centres (the means),
    log-density at the centre and precision Cholesky matrices."""

    index: np.ndarray
    centers: np.ndarray
    peaks: np.ndarray
    cholesky: np.ndarray

    def all_centers(self, center: np.ndarray, n_components: int) -> np.ndarray:
        centers = np.tile(center, (n_components, 1))
        centers[self.index] = self.centers
        return centers


@lru_cache(maxsize=1)
def _blas_controller() -> ThreadpoolController:
    """Inspecting the loaded libraries is slow; do it once per process."""
    return ThreadpoolController()


def single_threaded_blas():
    """Context holding BLAS to one thread.

    The products of one chunk are small: BLAS threads do not pay on them, and
    on top of our own threads (or a busy machine) they oversubscribe the cores,
    which was measured to slow a d=32 fit down tenfold.
    """
    return _blas_controller().limit(limits=1, user_api="blas")


@lru_cache(maxsize=1)
def _executor() -> ThreadPoolExecutor:
    """One pool for the process: starting threads at every E-step costs more
    than a small E-step."""
    return ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="sklearn_em")


# A forked child inherits the pool object but none of its threads: start afresh.
os.register_at_fork(after_in_child=_executor.cache_clear)


class _Workspace:
    """Per-thread buffers for one chunk: feature rows and log-densities."""

    def __init__(self, q: int, n_components: int, chunk_size: int):
        self.f = np.empty(q * chunk_size)
        self.log_prob = np.empty(n_components * chunk_size)
        self._f_local = None

    @property
    def f_local(self) -> np.ndarray:
        """Features about a component's own centre; rarely needed, so lazy."""
        if self._f_local is None:
            self._f_local = np.empty_like(self.f)
        return self._f_local


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
    n_threads : int
        Worker threads; each takes a contiguous range of chunks. numpy releases
        the GIL in its ufuncs and BLAS calls, so threads share the work without
        copying data. The split depends only on the number of rows, so results
        do not depend on timing.
    spread : float
        Typical squared distance of rows from ``center`` (the summed variance
        of the features), to judge when the expanded quadratic forms would lose
        precision.
    """

    def __init__(
        self,
        covariance: Covariance,
        n_features: int,
        n_components: int,
        center: np.ndarray,
        chunk_size: int | None = None,
        max_rows: int | None = None,
        n_threads: int = 1,
        spread: float = 0.0,
    ):
        self.covariance = covariance
        self.n_features = n_features
        self.n_components = n_components
        self.center = np.asarray(center, dtype=np.float64)
        self.q = covariance.n_features_total(n_features)
        self.chunk_size = chunk_size or default_chunk_size(self.q, n_components)
        if max_rows is not None:
            self.chunk_size = max(1, min(self.chunk_size, max_rows))
        self.n_threads = max(1, int(n_threads))
        self.spread = float(spread)
        self._workspaces: list[_Workspace] = []

    def chunks(self, start: int, stop: int):
        """``(start, stop)`` of every chunk of rows ``start:stop``."""
        step = self.chunk_size
        return ((s, min(s + step, stop)) for s in range(start, stop, step))

    def _workspace(self, index: int) -> _Workspace:
        while len(self._workspaces) <= index:
            self._workspaces.append(
                _Workspace(self.q, self.n_components, self.chunk_size)
            )
        return self._workspaces[index]

    def map_ranges(self, n_samples: int, work) -> list:
        """Run ``work(workspace, start, stop)`` over contiguous row ranges.

        One range per thread, each a whole number of chunks; returns the results
        in row order so that reductions are deterministic.
        """
        n_chunks = -(-n_samples // self.chunk_size)
        n_workers = min(self.n_threads, n_chunks)
        if n_workers <= 1:
            return [work(self._workspace(0), 0, n_samples)]
        bounds = [
            min(n_samples, (i * n_chunks // n_workers) * self.chunk_size)
            for i in range(n_workers + 1)
        ]
        workspaces = [self._workspace(i) for i in range(n_workers)]
        # Callers hold BLAS to one thread (see single_threaded_blas).
        futures = [
            _executor().submit(work, workspaces[i], bounds[i], bounds[i + 1])
            for i in range(n_workers)
        ]
        return [future.result() for future in futures]

    def features(
        self, ws: _Workspace, x: np.ndarray, center: np.ndarray | None = None
    ) -> np.ndarray:
        """Feature rows ``[1, y, second-order(y)]`` of a chunk, shape ``(q, m)``.

        ``y = x - center`` (the common centre by default). Computed in float64
        whatever the input dtype, so float32 data gets float64 statistics.
        """
        m, d = x.shape
        buffer = ws.f if center is None else ws.f_local
        center = self.center if center is None else center
        f = buffer[: self.q * m].reshape(self.q, m)
        f[0] = 1.0
        np.subtract(x.T, center[:, None], out=f[1 : d + 1])
        self.covariance.second_order_features(f[1 : d + 1], f[d + 1 :])
        return f

    def local_centres(self, params: MixtureParams) -> LocalCentres | None:
        """Components too narrow for the expanded quadratic form.

        Their log-densities come from the direct form ``|(x - mu) U|^2`` and
        their statistics are taken about their own means (extra work per
        chunk, only for them), so very narrow or ill-conditioned components,
        near or far from the data mean, keep full precision.
        """
        n_components, n_features = params.means.shape
        distance2 = ((params.means - self.center) ** 2).sum(axis=1)
        precision = self.covariance.largest_precision(
            params.precisions_cholesky, n_components
        )
        index = np.flatnonzero(precision * (distance2 + self.spread) > _MAX_EXPANSION)
        if not len(index):
            return None
        with np.errstate(divide="ignore"):
            peaks = (
                np.log(params.weights)
                + self.covariance.log_det_cholesky(
                    params.precisions_cholesky, n_features
                )
                - 0.5 * n_features * _LOG_2PI
            )
        cholesky = self.covariance.cholesky_matrices(
            params.precisions_cholesky, n_components, n_features
        )
        return LocalCentres(index, params.means[index], peaks[index], cholesky[index])

    def _log_prob(self, ws, x, w_matrix, local):
        """Features about the common centre and weighted log-densities of a chunk."""
        f = self.features(ws, x)
        log_prob = self.weighted_log_prob(ws, f, w_matrix)
        if local is not None:
            for j, center, peak, chol in zip(
                local.index, local.centers, local.peaks, local.cholesky, strict=True
            ):
                z = (x - center) @ chol
                log_prob[j] = peak - 0.5 * np.einsum("md,md->m", z, z)
        return f, log_prob

    def log_prob_matrix(self, params: MixtureParams) -> np.ndarray:
        """The matrix ``W`` mapping feature rows to weighted log-densities."""
        with np.errstate(divide="ignore"):
            log_weights = np.log(params.weights)
        return self.covariance.log_prob_weights(
            log_weights, params.means - self.center, params.precisions_cholesky
        )

    def weighted_log_prob(
        self, ws: _Workspace, f: np.ndarray, w_matrix: np.ndarray
    ) -> np.ndarray:
        """``log pi_k + log N_k(x)`` for every component, shape ``(k, m)``."""
        m = f.shape[1]
        out = ws.log_prob[: self.n_components * m].reshape(self.n_components, m)
        return np.matmul(w_matrix, f, out=out)

    @staticmethod
    def normalize(log_prob: np.ndarray) -> np.ndarray:
        """Turn ``log_prob`` (k, m) into responsibilities in place; return log p(x).

        A log-sum-exp over the leading axis, shifted by each row's maximum so it
        cannot overflow or underflow.
        """
        top = log_prob.max(axis=0)
        log_prob -= top
        np.exp(log_prob, out=log_prob)
        total = _sum_rows(log_prob)
        log_prob *= np.reciprocal(total)
        np.log(total, out=total)
        total += top
        return total

    def _posterior(self, ws, x, w_matrix, local, unshifted):
        """Features, responsibilities (in place of the log-densities), log p(x).

        With ``unshifted`` (no component's peak density can overflow ``exp``)
        the row maxima are skipped: exponentiate, sum, and fall back to the
        shifted form only for a chunk where some row's sum underflowed.
        """
        f, log_prob = self._log_prob(ws, x, w_matrix, local)
        if unshifted:
            np.exp(log_prob, out=log_prob)
            total = _sum_rows(log_prob)
            if total.min() > _TINY:
                # Terms lost to underflow weigh < 1e-28 of their row's total.
                log_prob *= np.reciprocal(total)
                return f, log_prob, np.log(total, out=total)
            f, log_prob = self._log_prob(ws, x, w_matrix, local)
        return f, log_prob, self.normalize(log_prob)

    def unshifted_safe(self, params: MixtureParams) -> bool:
        """Whether every component's peak log-density stays where exp is finite."""
        with np.errstate(divide="ignore"):
            peak = (
                np.log(params.weights)
                + self.covariance.log_det_cholesky(
                    params.precisions_cholesky, self.n_features
                )
                - 0.5 * self.n_features * _LOG_2PI
            )
        return bool(peak.max() < _SAFE_LOG)

    def _total_weight(self, x, sample_weight) -> float:
        return float(len(x)) if sample_weight is None else float(sample_weight.sum())

    def accumulate(
        self,
        x: np.ndarray,
        sample_weight: np.ndarray | None,
        params: MixtureParams,
        local: LocalCentres | None = None,
    ) -> SuffStats:
        """E-step over all rows of ``x``: summed statistics and log-likelihood.

        Components in ``local`` have their moments taken about their own centres.
        """
        w_matrix = self.log_prob_matrix(params)
        unshifted = self.unshifted_safe(params)
        n_local = 0 if local is None else len(local.index)

        def work(ws, first, last):
            moments = np.zeros((self.n_components, self.q))
            local_moments = np.zeros((n_local, self.q))
            log_likelihood = 0.0
            for start, stop in self.chunks(first, last):
                f, resp, log_norm = self._posterior(
                    ws, x[start:stop], w_matrix, local, unshifted
                )
                if sample_weight is None:
                    log_likelihood += log_norm.sum()
                else:
                    weight = sample_weight[start:stop]
                    log_likelihood += weight @ log_norm
                    resp *= weight
                moments += resp @ f.T
                for i in range(n_local):
                    f_i = self.features(ws, x[start:stop], local.centers[i])
                    local_moments[i] += resp[local.index[i]] @ f_i.T
            if n_local:
                # Replace, never correct: the common-centre moments of these
                # components are exactly what lost the digits.
                moments[local.index] = local_moments
            return SuffStats(moments, float(log_likelihood), 0.0)

        stats = reduce(operator.add, self.map_ranges(len(x), work))
        stats.total_weight = self._total_weight(x, sample_weight)
        if local is not None:
            stats.centers = local.all_centers(self.center, self.n_components)
        return stats

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
        components = np.arange(self.n_components)[:, None]

        def work(ws, first, last):
            moments = np.zeros((self.n_components, self.q))
            for start, stop in self.chunks(first, last):
                f = self.features(ws, x[start:stop])
                if resp is not None:
                    r = np.array(resp[start:stop].T, dtype=np.float64)
                else:
                    r = (labels[start:stop] == components).astype(np.float64)
                if sample_weight is not None:
                    r *= sample_weight[start:stop]
                moments += r @ f.T
            return SuffStats(moments, 0.0, 0.0)

        stats = reduce(operator.add, self.map_ranges(len(x), work))
        stats.total_weight = self._total_weight(x, sample_weight)
        return stats

    def worst_explained(
        self,
        x: np.ndarray,
        sample_weight: np.ndarray | None,
        params: MixtureParams,
        count: int,
    ) -> np.ndarray:
        """Indices of the ``count`` rows of lowest ``log p(x)``, worst first.

        Rows of zero weight are never chosen. Memory stays bounded: each chunk
        only keeps its ``count`` best candidates.
        """
        w_matrix = self.log_prob_matrix(params)
        local = self.local_centres(params)
        unshifted = self.unshifted_safe(params)

        def keep_lowest(values, indices):
            if len(values) > count:
                keep = np.argpartition(values, count - 1)[:count]
                values, indices = values[keep], indices[keep]
            return values, indices

        def work(ws, first, last):
            values, indices = np.empty(0), np.empty(0, dtype=np.intp)
            for start, stop in self.chunks(first, last):
                _, _, log_norm = self._posterior(
                    ws, x[start:stop], w_matrix, local, unshifted
                )
                if sample_weight is not None:
                    log_norm[sample_weight[start:stop] <= 0] = np.inf
                values, indices = keep_lowest(
                    np.concatenate([values, log_norm]),
                    np.concatenate([indices, np.arange(start, stop)]),
                )
            return values, indices

        parts = self.map_ranges(len(x), work)
        values, indices = keep_lowest(
            np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        )
        return indices[np.argsort(values, kind="stable")]

    def evaluate(
        self,
        x: np.ndarray,
        params: MixtureParams,
        *,
        log_norm_out: np.ndarray | None = None,
        resp_out: np.ndarray | None = None,
        labels_out: np.ndarray | None = None,
    ) -> None:
        """Per-row outputs under fixed parameters, written into the given arrays.

        ``log_norm_out`` (n,) gets ``log p(x)``, ``resp_out`` (n, k) the
        responsibilities and ``labels_out`` (n,) the most probable component.
        """
        w_matrix = self.log_prob_matrix(params)
        local = self.local_centres(params)
        unshifted = self.unshifted_safe(params)

        def work(ws, first, last):
            for start, stop in self.chunks(first, last):
                if log_norm_out is None and resp_out is None:
                    _, log_prob = self._log_prob(ws, x[start:stop], w_matrix, local)
                    _argmax_rows(log_prob, labels_out[start:stop])
                    continue
                _, log_prob, log_norm = self._posterior(
                    ws, x[start:stop], w_matrix, local, unshifted
                )
                if labels_out is not None:
                    _argmax_rows(log_prob, labels_out[start:stop])
                if log_norm_out is not None:
                    log_norm_out[start:stop] = log_norm
                if resp_out is not None:
                    resp_out[start:stop] = log_prob.T

        self.map_ranges(len(x), work)
