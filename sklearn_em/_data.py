"""Data as a source of statistics: the seam between the EM loop and the engines.

The protocol
------------
The EM loop (:func:`._em.run_em`), the online step (:func:`._online.online_step`)
and initialisation (:mod:`._init`) know the data only through these members;
a new engine (compiled, Dask, GPU) is a new source implementing them, or a new
kernel behind this one, and nothing else changes:

``n_samples``, ``n_features``, ``n_components``, ``covariance``
    The problem's shape and covariance operations.
``center`` : ndarray (n_features,)
    Fixed point that statistics are taken about (near the data mean).
``feature_variances`` : ndarray (n_features,)
    Variance of each feature, the scale of numerical thresholds.
``sample_weight`` : ndarray (n_samples,) or None, ``total_weight`` : float
    The weights initialisation draws with (normalised: only ratios matter).
``stats(model) -> SuffStats``
    One E-step: summed statistics and log-likelihood of every row under
    ``model``; each component's moments about a centre of the source's
    choosing (``SuffStats.centers``), which the M-step reads back.
``m_step(stats, reg_covar, feature_variances) -> Mixture`` (optional)
    :func:`._em.params_from_stats`, where the source has a faster way to the
    same result (here: the compiled kernel's M-step); the EM loop calls the
    function itself for sources without one.
``stats_given(resp=None, labels=None) -> SuffStats``
    Statistics for given responsibilities ``(n, k)`` or hard ``labels`` (-1:
    no component), on the view initialisation uses.
``initialization_source(random_state) -> source``
    The in-memory source that initialisations drawing from the data use: this
    one, or for data beyond memory (Dask) a bounded sample of it.
``init_view() -> ndarray``
    The rows k-means initialisation runs on (it cannot take NaN: missing
    values are replaced by their column means, in a copy of ``X``; the other
    initialisations never ask for it).
``scatter() -> ndarray (n_features, n_features)``
    Weighted scatter of the rows about ``center`` (a prior's default scale).
``worst_rows(model, count) -> ndarray (count, n_features)``
    The rows ``model`` explains worst (of positive weight), for re-seeding
    collapsed components; missing coordinates filled by column means.
``log_prob(model)``, ``responsibilities(model)``, ``labels(model)``
    Per-row ``log p(x)`` (n,), posteriors (n, k) and most probable components
    (n,), in the rows' order and the data's dtype (lazy arrays for Dask).
``log_weight_scale`` : float
    Log of the factor the source divided the weights by (0 when the caller
    normalised them).

A source is built once per ``fit``, ``partial_fit`` or inference call. This one
holds an in-memory array and runs two kernels over chunks of its rows, on the
shared thread pool: :class:`._dense.DenseKernel` for complete rows and
:class:`._missing.MissingKernel` for rows with NaN. Memory beyond ``X`` is a
few chunks per thread, whatever the number of rows.
"""

from __future__ import annotations

import operator
import warnings
from concurrent.futures import wait
from functools import reduce

import numpy as np

from . import _engine
from ._covariance import Covariance
from ._dense import DenseKernel, default_chunk_size, kernel_rows, uses_direct
from ._em import params_from_stats
from ._missing import MissingKernel
from ._model import Mixture
from ._stats import SuffStats, argmax_rows, normalize
from ._threads import executor, n_threads

# Rows per pass of the one-off summaries (mean, missing-value checks).
_SUMMARY_ROWS = 1 << 13
# Unit weights of a block of them, made once (read only).
_ONES = np.ones(_SUMMARY_ROWS)
_ONES.flags.writeable = False


def _row_blocks(n: int, size: int):
    return ((s, min(s + size, n)) for s in range(0, n, size))


def has_missing(X: np.ndarray) -> bool:
    """Whether ``X`` (finite apart from NaN) may have a NaN: one fast reduction.

    The sum of finite values cannot be NaN unless overflows of both signs meet,
    so this costs one contiguous pass instead of a boolean mask of X; a false
    positive only costs the masks that then find nothing.
    """
    return bool(np.isnan(X.sum(dtype=np.float64)))


def all_finite(X: np.ndarray) -> bool:
    """Whether every value of ``X`` is finite: one fast reduction (its sum
    is finite; a false negative, where finite values overflow the sum, only
    costs the full check that follows)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite(X.sum(dtype=np.float64)))


def column_means(
    X: np.ndarray, sample_weight: np.ndarray | None, missing: bool = True
) -> np.ndarray:
    """Per-column (weighted) mean over the observed values, in float64.

    Accumulated over blocks of rows, so no temporary grows with ``n``; one
    reduction when nothing is ``missing``.
    """
    n, d = X.shape
    if not missing:
        # Matrix-vector products: numpy's sum over the leading axis of narrow
        # rows is ~10x slower. Sums that overflow (or meet a NaN) are the
        # callers' to judge: they check the means.
        totals = np.zeros(d)
        with np.errstate(over="ignore", invalid="ignore"):
            for start, stop in _row_blocks(n, _SUMMARY_ROWS):
                w = (
                    _ONES[: stop - start]
                    if sample_weight is None
                    else sample_weight[start:stop]
                )
                totals += w @ np.asarray(X[start:stop], dtype=np.float64)
            return totals / (n if sample_weight is None else sample_weight.sum())
    totals, weights = np.zeros(d), np.zeros(d)
    for start, stop in _row_blocks(n, _SUMMARY_ROWS):
        x = np.asarray(X[start:stop], dtype=np.float64)
        observed = ~np.isnan(x)
        w = (
            observed
            if sample_weight is None
            else observed * sample_weight[start:stop, None]
        )
        totals += (np.where(observed, x, 0.0) * w).sum(axis=0)
        weights += w.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return totals / weights


# Up to this many columns, a row is subtracted from a matrix one column at a
# time: numpy's broadcast runs its inner loop along the short rows, ~2.5 ns
# an element on 2-D data against ~0.6 ns along a column.
_NARROW = 8


def _minus_row(X: np.ndarray, row: np.ndarray) -> np.ndarray:
    """``X - row`` (the same values and dtype), fast on narrow ``X``."""
    if X.shape[1] > _NARROW:
        return X - row
    out = np.empty(X.shape, dtype=np.result_type(X, row))
    for j in range(X.shape[1]):
        # dtype: NumPy < 2 would subtract a float64 scalar from float32
        # values in float32 (value-based casting), unlike X - row.
        np.subtract(X[:, j], row[j], out=out[:, j], dtype=out.dtype)
    return out


def subsample_variances(
    X: np.ndarray,
    sample_weight: np.ndarray | None = None,
    missing: bool = True,
    max_rows: int = 10_000,
    means: np.ndarray | None = None,
) -> np.ndarray:
    """(Weighted) variance of each feature's observed values, (d,).

    Only a scale for numerical thresholds, so an evenly strided subsample of at
    most ``max_rows`` rows is enough (and keeps this off the cost of a fit).
    Zero where it cannot be estimated. ``means``: the column means of all of
    ``X`` (with these weights) where the caller has them, used when the
    subsample is all of ``X``.
    """
    step = max(1, len(X) // max_rows)
    X = X[::step]
    if sample_weight is not None:
        sample_weight = sample_weight[::step]
        if not sample_weight.any():
            return np.zeros(X.shape[1])
    # Rows not yet checked for infinity (inference, see TrainingData) may
    # make these NaN: then 0, and the kernel flags those rows.
    with np.errstate(invalid="ignore", over="ignore"):
        if means is None or step > 1:
            means = column_means(X, sample_weight, missing)
        deviation = _minus_row(X, means)
        variances = column_means(deviation * deviation, sample_weight, missing)
    return np.where(np.isfinite(variances), variances, 0.0)


def scan_missing(
    X: np.ndarray, known: bool = False
) -> tuple[bool, np.ndarray | None, np.ndarray]:
    """Whether ``X`` has NaN, the rows with every feature missing (or
    ``None``), and which features are observed somewhere: one blockwise pass
    (after :func:`has_missing`'s reduction, unless the caller ``known`` it
    may have NaN)."""
    n, d = X.shape
    if not known and not has_missing(X):
        return False, None, np.ones(d, dtype=bool)
    any_missing = False
    seen = np.zeros(d, dtype=bool)
    empty_rows = []
    for start, stop in _row_blocks(n, _SUMMARY_ROWS):
        missing = np.isnan(X[start:stop])
        empty = missing.all(axis=1)
        if empty.any():
            empty_rows.append(np.flatnonzero(empty) + start)
        any_missing = any_missing or bool(missing.any())
        seen |= ~missing.all(axis=0)
    empty = np.concatenate(empty_rows) if empty_rows else None
    return any_missing, empty, seen


def check_features(
    seen: np.ndarray, center: np.ndarray, has_missing: bool = True
) -> None:
    """Every feature must be observed in some row of positive weight; a
    mean that is NaN without missing values (``has_missing`` false) is a sum
    whose overflows of both signs met."""
    if not has_missing and np.isnan(center).any():
        column = int(np.flatnonzero(np.isnan(center))[0])
        raise ValueError(
            f"The values of feature {column} of X are so large that their sum "
            "overflows float64 (to +inf and -inf at once), so the feature's "
            "mean is undefined. Scale X, e.g. with "
            "sklearn.preprocessing.StandardScaler."
        )
    if not seen.all():
        columns = np.flatnonzero(~seen)
        raise ValueError(
            f"{len(columns)} feature(s) of X are missing (NaN) in every row, e.g. "
            f"feature {columns[0]}; a feature needs observed values to be modelled."
        )
    unweighted = np.flatnonzero(np.isnan(center))
    if len(unweighted):
        raise ValueError(
            f"{len(unweighted)} feature(s) of X are observed only in rows of zero "
            f"sample_weight, e.g. feature {unweighted[0]}; a feature needs "
            "observed values of positive weight to be modelled."
        )


def largest_magnitude(X) -> float:
    """The largest absolute value in ``X`` (NaN ignored), from two
    reductions over the flat array."""
    return max(
        abs(float(np.fmax.reduce(X, axis=None))),
        abs(float(np.fmin.reduce(X, axis=None))),
    )


def check_magnitude(X, center, largest: float | None = None) -> None:
    """Raise if squared deviations from the centre would overflow float64
    (``largest``: :func:`largest_magnitude` of ``X``, when known)."""
    # Sums of squares over all rows and features must stay finite.
    limit = np.sqrt(np.finfo(np.float64).max / (16.0 * X.size))
    # A bound from the largest magnitude (fast) first; per feature only when
    # that bound is not enough.
    if largest is None:
        largest = largest_magnitude(X)
    if largest + float(np.nanmax(np.abs(center))) <= limit:
        return
    top = np.fmax.reduce(X, axis=0).astype(np.float64)
    bottom = np.fmin.reduce(X, axis=0).astype(np.float64)
    check_extent(top, bottom, center, X.size)


def check_extent(top, bottom, center, size: int) -> None:
    """Raise if the per-feature extremes ``top``/``bottom`` lie so far from
    ``center`` that sums of ``size`` squares would overflow float64."""
    limit = np.sqrt(np.finfo(np.float64).max / (16.0 * size))
    with np.errstate(invalid="ignore"):
        extent = float(
            np.nanmax(np.maximum(np.abs(top - center), np.abs(bottom - center)))
        )
    if extent > limit:
        raise ValueError(
            f"X has values {extent:.3g} away from their feature's mean; the "
            "squares that covariances are made of overflow float64 at this "
            f"size (limit {limit:.3g}). Scale X, e.g. with "
            "sklearn.preprocessing.StandardScaler."
        )


def source_center(center: np.ndarray, dtype) -> np.ndarray:
    """A source's common centre, rounded to float32 for float32 rows.

    The compiled kernel centres float32 rows in float32 about it (see
    :class:`._dense.DenseKernel`); rounded, they are centred exactly about
    the point their statistics refer to, whichever engine a source (or a
    Dask block) runs on, so the statistics of all sources of a fit add up.
    """
    center = np.asarray(center, dtype=np.float64)
    if np.dtype(dtype) == np.float32:
        center = center.astype(np.float32).astype(np.float64)
    return center


def float32_arithmetic_safe(largest: float, center: np.ndarray, variances) -> bool:
    """Whether float32 rows (of largest magnitude ``largest``) can be
    computed in float32 arithmetic: squares about ``center``, summed over a
    block of the compiled kernel, stay below float32's overflow, and the
    squares of every feature's typical deviation (its variance) far above
    float32's smallest normal number."""
    if not np.all(np.asarray(variances) > _FLOAT32_SMALLEST_VARIANCE):
        return False
    top = largest + float(np.abs(center).max())
    return top * top * len(center) * _FLOAT32_BLOCK_TERMS < float(
        np.finfo(np.float32).max
    )


# A float32 square of a deviation this small keeps 8 orders of magnitude
# above float32's smallest normal number (1.2e-38).
_FLOAT32_SMALLEST_VARIANCE = 1e-30
# Terms the compiled kernel sums in float32 before float64 (its block), with
# a factor 4 to spare.
_FLOAT32_BLOCK_TERMS = 4 * 256


def _squares_overflow_float32(X: np.ndarray) -> bool:
    """Whether squared distances between rows can overflow float32."""
    top = max(abs(float(np.nanmax(X))), abs(float(np.nanmin(X))))
    return top > np.sqrt(np.finfo(np.float32).max / (4.0 * X.shape[1]))


def check_positive_count(n_positive: int, n_components: int) -> None:
    """Every component needs at least one row of positive weight to start from."""
    if n_positive < n_components:
        raise ValueError(
            f"sample_weight has {n_positive} positive value(s), fewer than "
            f"n_components = {n_components}; each component needs a row."
        )


class NotFinite(Exception):
    """Rows taken as finite (``TrainingData(optimistic=True)``) were not."""


class TrainingData:
    """An in-memory data set as a source of statistics (see the module docstring).

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Validated float32 or float64 rows; NaN marks a missing value.
    sample_weight : ndarray of shape (n_samples,) or None
        Validated non-negative float64 weights.
    covariance : Covariance
    n_components : int
    chunk_size : int or None
        Rows per chunk; ``None`` picks one that keeps the buffers in cache.
    n_jobs : int or None
        Threads, by the policy of :func:`._threads.n_threads`.
    center : ndarray of shape (n_features,) or None
        Fixed point of the statistics; by default the (weighted) column means.
    training : bool
        Whether the rows are training data: then rows with every feature
        missing are ignored (weight 0, with a warning), every feature must be
        observed in a row of positive weight, each component needs a row of
        positive weight, and squares must not overflow. New rows for inference
        are taken as they are.
    feature_variances : ndarray of shape (n_features,) or None
        The data's per-feature variances, when known (a block of a larger data
        set takes the whole set's); by default from a subsample of ``X``.
    guarded : bool or None
        Whether the kernel guards against overflowing squares; by default
        only for rows that are not ``training`` rows (those are checked).
    finite : bool or None
        ``True`` where the caller has found every value of ``X`` finite (its
        sum is), so that no scan for NaN is needed; by default ``X`` is
        scanned.
    optimistic : bool
        For inference on rows not yet checked for NaN and infinity: take
        them as finite where the compiled kernel runs, which flags every row
        that is not (it reads ``X`` once instead of twice), and check them
        here otherwise. A method that then meets a value that is not finite
        raises :class:`NotFinite` for the caller to check ``X`` and redo.
    max_expansion : float or None
        See :class:`._dense.DenseKernel`; looser for sources whose
        log-likelihoods only rank runs (the multistart search).
    """

    def __init__(
        self,
        X: np.ndarray,
        sample_weight: np.ndarray | None,
        covariance: Covariance,
        n_components: int,
        *,
        chunk_size: int | None = None,
        n_jobs: int | None = None,
        center: np.ndarray | None = None,
        training: bool = True,
        feature_variances: np.ndarray | None = None,
        guarded: bool | None = None,
        finite: bool | None = None,
        optimistic: bool = False,
        max_expansion: float | None = None,
    ):
        self.X = X
        if optimistic:
            finite = True  # provisionally: confirmed below or by the kernel
        self.sample_weight = sample_weight
        self.covariance = covariance
        self.n_components = n_components
        self.n_samples, self.n_features = X.shape
        means, no_nan, maybe_nan = None, bool(finite), False
        if (
            not finite
            and center is None
            and (sample_weight is None or sample_weight.all())
        ):
            # A NaN anywhere makes its column's mean NaN, so the means' one
            # reduction also says whether X may have any (scan_missing's own
            # reduction is then not needed); with NaN they are taken anew
            # over the observed values below. Not with weights of 0: BLAS
            # need not carry a NaN through a product with 0.
            means = column_means(X, sample_weight, missing=False)
            maybe_nan = bool(np.isnan(means).any())
            no_nan = not maybe_nan
            if maybe_nan:
                means = None
        if no_nan:
            self.has_missing, empty = False, None
            seen = np.ones(self.n_features, dtype=bool)
        else:
            self.has_missing, empty, seen = scan_missing(X, known=maybe_nan)
        if training and empty is not None:
            if self.n_samples - len(empty) < n_components:
                raise ValueError(
                    f"{len(empty)} row(s) of X have every feature missing (NaN), "
                    f"leaving {self.n_samples - len(empty)} row(s) with observed "
                    f"values, fewer than n_components = {n_components}."
                )
            warnings.warn(
                f"{len(empty)} row(s) of X have every feature missing (NaN), e.g. "
                f"row {empty[0]}; they carry no information and are ignored.",
                UserWarning,
                stacklevel=4,
            )
            sample_weight = (
                np.ones(self.n_samples)
                if sample_weight is None
                else sample_weight.copy()
            )
            sample_weight[empty] = 0.0
            self.sample_weight = sample_weight
        if training and sample_weight is not None:
            check_positive_count(np.count_nonzero(sample_weight), n_components)
        if center is None:
            if means is None:
                means = column_means(X, sample_weight, self.has_missing)
            center = means
        self.center = source_center(center, X.dtype)
        largest = None
        if training:
            check_features(seen, self.center, self.has_missing)
            largest = largest_magnitude(X)
            check_magnitude(X, self.center, largest)
        if feature_variances is None:
            feature_variances = subsample_variances(
                X, sample_weight, self.has_missing, means=means
            )
        self.feature_variances = feature_variances
        self.variance_scale = float(self.feature_variances.mean())
        q = covariance.n_features_total(self.n_features)
        # Rows per chunk hold feature rows, or only the rows themselves.
        width = self.n_features if uses_direct(covariance, self.n_features) else q
        self.chunk_size = max(
            1,
            min(chunk_size or default_chunk_size(width, n_components), self.n_samples),
        )
        direct = uses_direct(covariance, self.n_features)
        readonly = not X.flags.writeable
        compiled = _engine.select(
            X.dtype,
            self.n_samples,
            n_components * q,
            direct,
            # The kernels see read-only rows where X is read-only (chunks
            # as they are, copies made read-only: see kernel_rows).
            readonly=readonly,
        )
        # Only the compiled kernel checks every row it reads.
        self._optimistic = optimistic and compiled is not None
        if optimistic and compiled is None:
            self._confirm_finite(X)
        arithmetic = X.dtype
        if X.dtype == np.float32 and compiled is not None and self.n_samples:
            if largest is None:
                largest = largest_magnitude(X)
            if not float32_arithmetic_safe(
                largest, self.center, self.feature_variances
            ):
                arithmetic = np.dtype(np.float64)
        self.n_threads = max(
            1,
            n_threads(n_jobs, self.n_samples, n_components * q, compiled is not None),
        )
        if self.has_missing and n_jobs is None:
            # The missing-value kernel is many small numpy calls that hold the
            # GIL: on 2 cores, 2 threads took 325 ms against 209 ms for one
            # E-step of 200k x 16 rows with one NaN each (complete: 65 / 73).
            self.n_threads = 1
        if compiled is not None and chunk_size is None and self.n_threads > 1:
            # The compiled kernel blocks rows itself: chunks only split the
            # work between threads, so every thread gets one.
            self.chunk_size = min(self.chunk_size, -(-self.n_samples // self.n_threads))
        shape = (covariance, self.n_features, n_components)
        spread = self.n_features * self.variance_scale
        # Training rows are checked once for overflowing squares (above);
        # new rows for inference are guarded chunk by chunk.
        self.dense = DenseKernel(
            *shape,
            self.center,
            spread,
            self.chunk_size,
            guarded=not training if guarded is None else guarded,
            compiled=compiled,
            dtype=arithmetic,
            max_expansion=max_expansion,
            readonly=readonly,
        )
        self.missing = MissingKernel(self.dense) if self.has_missing else None
        self._workspaces: list = []
        self._imputed = None

    # The caller normalises in-memory weights (see the estimator).
    log_weight_scale = 0.0

    @staticmethod
    def _confirm_finite(x: np.ndarray) -> None:
        """Raise :class:`NotFinite` unless every value of ``x`` is finite."""
        if not all_finite(x):
            raise NotFinite

    @property
    def total_weight(self) -> float:
        if self.sample_weight is None:
            return float(self.n_samples)
        return float(self.sample_weight.sum())

    # -- running the kernels over chunks --
    def _map_ranges(self, work) -> list:
        """Run ``work(workspace, start, stop)`` over contiguous row ranges.

        One range per thread, each a whole number of chunks; returns the
        results in row order so that reductions are deterministic and results
        do not depend on timing.
        """
        n, size = self.n_samples, self.chunk_size
        n_chunks = -(-n // size)
        n_workers = min(self.n_threads, n_chunks)
        while len(self._workspaces) < n_workers:
            self._workspaces.append(self.dense.workspace())
        if n_workers <= 1:
            return [work(self._workspaces[0], 0, n)]
        bounds = [
            min(n, (i * n_chunks // n_workers) * size) for i in range(n_workers + 1)
        ]
        # Callers hold BLAS to one thread (see _threads.single_threaded_blas).
        # The calling thread takes the last range itself: one hand-over less.
        futures = [
            executor().submit(work, self._workspaces[i], bounds[i], bounds[i + 1])
            for i in range(n_workers - 1)
        ]
        try:
            last = work(self._workspaces[n_workers - 1], bounds[-2], bounds[-1])
        finally:
            # Never leave a worker running on a workspace the next call reuses.
            wait(futures)
        return [*(future.result() for future in futures), last]

    def _chunks(self, first: int, last: int):
        """``(start, stop, x, split)`` per chunk; ``split`` is ``None`` for a
        chunk without NaN, else ``(complete, incomplete, mask)``: the rows of
        each kind and the NaN mask of the incomplete ones."""
        ones = np.ones(self.n_features, dtype=self.X.dtype)
        for start in range(first, last, self.chunk_size):
            stop = min(start + self.chunk_size, last)
            x = self.X[start:stop]
            split = None
            if self.missing is not None:
                # NaN propagates through a matrix-vector product: an order of
                # magnitude faster than isnan(x).any(axis=1) on narrow rows.
                incomplete = np.isnan(x @ ones)
                if incomplete.any():
                    rows = np.flatnonzero(incomplete)
                    split = (
                        np.flatnonzero(~incomplete),
                        rows,
                        np.isnan(np.take(x, rows, axis=0)),
                    )
            yield start, stop, x, split

    def _weights(self, start, stop, rows=None):
        if self.sample_weight is None:
            return None
        w = self.sample_weight[start:stop]
        return w if rows is None else np.take(w, rows)

    # -- the protocol --
    def stats(self, model: Mixture) -> SuffStats:
        return self._stats(model, self.dense.prepare(model))

    def _workspace(self):
        """The first thread's buffers (made on first use)."""
        if not self._workspaces:
            self._workspaces.append(self.dense.workspace())
        return self._workspaces[0]

    def _stats(self, model: Mixture, prep) -> SuffStats:
        """:meth:`stats` with the kernel's preparation for ``model`` given."""
        missing = None
        if self.missing is not None:
            missing = self.missing.prepare(model, prep.centers)
        k, q = self.n_components, self.dense.q
        if missing is None and self.n_threads == 1:
            # What the general path below does for one thread and complete
            # rows, in the same order, without its per-pass machinery (a
            # closure, a generator, a reduction): on small data the E-step
            # is run often enough for that to show.
            ws, size = self._workspace(), self.chunk_size
            moments = np.zeros((k, q))
            log_likelihood = 0.0
            for start in range(0, self.n_samples, size):
                stop = min(start + size, self.n_samples)
                log_likelihood += self.dense.stats(
                    ws, self.X[start:stop], self._weights(start, stop), prep, moments
                )
            return SuffStats(moments, prep.centers, log_likelihood, self.total_weight)

        def work(ws, first, last):
            moments = np.zeros((k, q))
            log_likelihood = 0.0
            pending: dict = {}
            for start, stop, x, split in self._chunks(first, last):
                if split is None:
                    log_likelihood += self.dense.stats(
                        ws, x, self._weights(start, stop), prep, moments
                    )
                    continue
                complete, incomplete, mask = split
                if len(complete):
                    log_likelihood += self.dense.stats(
                        ws,
                        np.take(x, complete, axis=0),
                        self._weights(start, stop, complete),
                        prep,
                        moments,
                    )
                m, ll = self.missing.stats(
                    ws,
                    np.take(x, incomplete, axis=0),
                    mask,
                    self._weights(start, stop, incomplete),
                    missing,
                    pending,
                )
                moments += m
                log_likelihood += ll
            if pending:
                moments += self.missing.lift(pending, missing)
            return SuffStats(moments, prep.centers, log_likelihood, 0.0)

        stats = reduce(operator.add, self._map_ranges(work))
        stats.total_weight = self.total_weight
        return stats

    def stats_many(self, models: list[Mixture]) -> list[SuffStats]:
        """``[stats(model) for model in models]``, the models whose
        log-densities all come from the feature rows (no component about
        its own mean) in one pass over the rows on one thread
        (:meth:`._dense.DenseKernel.stats_many`): on small data an E-step
        is mostly the fixed cost of its numpy calls, paid here once for all
        of them. The others, data with missing values, and sources on the
        compiled kernel (whose E-step has no such fixed cost: one pass per
        model was faster there) one at a time. Equal to ``stats`` to
        rounding."""
        dense = self.dense
        out: list[SuffStats | None] = [None] * len(models)
        preps = [None] * len(models)
        if (
            self.missing is None
            and dense.compiled is None
            and not dense.direct
            and not dense.guarded
        ):
            preps = [dense.prepare(model) for model in models]
            batch = [i for i, prep in enumerate(preps) if not len(prep.local)]
            if len(batch) > 1:
                k, q, n_models = self.n_components, dense.q, len(batch)
                stacked = np.stack([preps[i].w_matrix for i in batch], axis=1)
                w_stack = stacked.reshape(k * n_models, q)
                unshifted = all(preps[i].unshifted for i in batch)
                moments = np.zeros((k * n_models, q))
                log_likelihood = np.zeros(n_models)
                ws, size = self._workspace(), self.chunk_size
                for start in range(0, self.n_samples, size):
                    stop = min(start + size, self.n_samples)
                    log_likelihood += dense.stats_many(
                        ws,
                        self.X[start:stop],
                        self._weights(start, stop),
                        w_stack,
                        unshifted,
                        moments,
                    )
                moments = moments.reshape(k, n_models, q)
                for slot, i in enumerate(batch):
                    out[i] = SuffStats(
                        moments[:, slot].copy(),
                        preps[i].centers,
                        float(log_likelihood[slot]),
                        self.total_weight,
                    )
        for i, model in enumerate(models):
            if out[i] is None:  # not batched: prepared already, where it was
                prep = dense.prepare(model) if preps[i] is None else preps[i]
                out[i] = self._stats(model, prep)
        return out

    def m_step(
        self,
        stats: SuffStats,
        reg_covar: float | np.ndarray,
        feature_variances: np.ndarray | None = None,
    ) -> Mixture:
        """:func:`._em.params_from_stats`, in one compiled call where the
        compiled kernel runs (see :meth:`._dense.DenseKernel.m_step`)."""
        model = self.dense.m_step(stats, reg_covar, feature_variances)
        if model is None:
            model = params_from_stats(
                stats, self.covariance, reg_covar, feature_variances
            )
        return model

    def run(
        self,
        model: Mixture,
        *,
        lower_bound: float,
        max_iter: int,
        tol: float,
        reg_covar: float | np.ndarray,
        feature_variances: np.ndarray | None = None,
    ):
        """Up to ``max_iter`` EM iterations from ``model`` in one compiled
        call (:meth:`._dense.DenseKernel.run`), where the compiled kernel
        runs the E-step on one thread over complete rows; ``None`` elsewhere
        (then :func:`._em.run_em` iterates itself)."""
        if self.missing is not None or self.n_threads != 1:
            return None
        if self.dense.compiled is None or not (
            self.X.flags.c_contiguous or self.X.flags.f_contiguous
        ):
            return None
        return self.dense.run(
            self._workspace(),
            self.X,
            self.sample_weight,
            self.chunk_size,
            self.total_weight,
            self.dense.prepare(model),
            lower_bound=lower_bound,
            max_iter=max_iter,
            tol=tol,
            reg_covar=reg_covar,
            feature_variances=feature_variances,
        )

    def initialization_source(self, random_state) -> TrainingData:
        """The source that initialisations draw from: all of the data."""
        return self

    def init_view(self) -> np.ndarray:
        if self._imputed is not None:
            return self._imputed
        view = self.X
        if self.has_missing:
            means = self.center.astype(self.X.dtype)
            view = np.where(np.isnan(self.X), means, self.X)
        if view.dtype == np.float32 and _squares_overflow_float32(view):
            # k-means squares distances in the data's dtype.
            view = view.astype(np.float64)
        self._imputed = None if view is self.X else view
        return view

    def _imputed_rows(self, start, stop):
        """Rows ``start:stop`` with missing values replaced by column means,
        made per chunk (no copy of ``X``)."""
        x = self.X[start:stop]
        if not self.has_missing:
            return x
        return np.where(np.isnan(x), self.center.astype(x.dtype), x)

    def scatter(self) -> np.ndarray:
        """Weighted scatter about the centre, ``sum_i w_i (x_i - c)(x_i - c)^T``
        (d, d); a missing value counts as the centre (it adds nothing)."""
        d = self.n_features
        total = np.zeros((d, d))
        for start, stop in _row_blocks(self.n_samples, _SUMMARY_ROWS):
            y = self._imputed_rows(start, stop).astype(np.float64) - self.center
            w = self._weights(start, stop)
            total += (y.T if w is None else y.T * w) @ y
        return total

    def stats_given(
        self, resp: np.ndarray | None = None, labels: np.ndarray | None = None
    ) -> SuffStats:
        """Statistics of given responsibilities; for hard ``labels``, each
        component's moments are about its own mean, as scikit-learn computes
        them: a component started on one row far from the data's centre then
        gets exactly ``reg_covar``, not cancellation noise of ``eps |x - c|^2``.
        """
        if labels is not None:
            means = self._label_means(labels)
        else:

            def work(ws, first, last):
                moments = np.zeros((self.n_components, self.dense.q))
                for start in range(first, last, self.chunk_size):
                    stop = min(start + self.chunk_size, last)
                    r = np.array(resp[start:stop].T, dtype=np.float64)
                    w = self._weights(start, stop)
                    if w is not None:
                        r *= w
                    x = self._imputed_rows(start, stop)
                    self.dense.given_moments(ws, x, r, moments)
                return SuffStats(moments, self._common_centers(), 0.0, 0.0)

            stats = reduce(operator.add, self._map_ranges(work))
            stats.total_weight = self.total_weight
            return stats

        def about_means(ws, first, last):
            moments = np.zeros((self.n_components, self.dense.q))
            for x, chunk_labels, w in self._labelled(labels, first, last):
                if self.dense.direct:
                    # Wide rows: each label's rows alone (no feature rows).
                    for j in np.unique(chunk_labels):
                        rows = np.flatnonzero(chunk_labels == j)
                        r = np.ones(len(rows)) if w is None else np.take(w, rows)
                        self.dense.given_moments(
                            ws,
                            np.take(x, rows, axis=0),
                            r[None],
                            moments[j : j + 1],
                            center=means[j],
                        )
                    continue
                # Every row about its own label's mean, summed per label by
                # a product with the one-hot matrix (a few rows of k).
                self.dense.given_moments(
                    ws,
                    x,
                    self._one_hot(chunk_labels, w),
                    moments,
                    center=np.take(means, chunk_labels, axis=0),
                )
            return SuffStats(moments, means, 0.0, 0.0)

        stats = reduce(operator.add, self._map_ranges(about_means))
        stats.total_weight = self.total_weight
        return stats

    def _labelled(self, labels: np.ndarray, first: int, last: int):
        """``(x, labels, w)`` per chunk of rows ``first:last``,
        only the rows of a label (>= 0); ``w`` None for unit weights."""
        for start in range(first, last, self.chunk_size):
            stop = min(start + self.chunk_size, last)
            chunk_labels = labels[start:stop]
            x = self._imputed_rows(start, stop)
            rows = None
            if len(chunk_labels) and chunk_labels.min() < 0:
                rows = np.flatnonzero(chunk_labels >= 0)
                if not len(rows):
                    continue
                chunk_labels = np.take(chunk_labels, rows)
                x = np.take(x, rows, axis=0)
            yield x, chunk_labels, self._weights(start, stop, rows)

    def _one_hot(self, labels: np.ndarray, w: np.ndarray | None) -> np.ndarray:
        """(k, m) float64: row j is 1 (or the row's weight) where ``labels`` is j."""
        r = np.equal(self.dense.component_ids[:, None], labels[None, :]).astype(
            np.float64
        )
        if w is not None:
            r *= w
        return r

    def _label_means(self, labels: np.ndarray) -> np.ndarray:
        """Weighted mean of each label's rows (the data's centre for a label
        with none), summed about the centre, one chunk at a time."""
        k, d = self.n_components, self.n_features

        def work(ws, first, last):
            sums = np.zeros((k, d + 1))
            for x, chunk_labels, w in self._labelled(labels, first, last):
                r = self._one_hot(chunk_labels, w)
                sums[:, 0] += r.sum(axis=1)
                sums[:, 1:] += r @ _minus_row(x, self.center)
            return sums

        sums = reduce(operator.add, self._map_ranges(work))
        totals = sums[:, :1]
        shift = np.divide(sums[:, 1:], totals, out=np.zeros((k, d)), where=totals > 0)
        return self.center + shift

    def _common_centers(self):
        return np.broadcast_to(self.center, (self.n_components, self.n_features))

    def _log_prob(self, model: Mixture, emit) -> None:
        """Weighted log-densities (k, m) of every chunk, handed to
        ``emit(start, stop, rows, log_prob)`` (``rows`` selects within the
        chunk, ``None`` for all of it)."""
        prep = self.dense.prepare(model)
        missing = None
        if self.missing is not None:
            missing = self.missing.prepare(model, prep.centers)

        def work(ws, first, last):
            for start, stop, x, split in self._chunks(first, last):
                if split is None:
                    emit(start, stop, None, self.dense.inference_log_prob(ws, x, prep))
                    continue
                complete, incomplete, mask = split
                if len(complete):
                    log_prob = self.dense.inference_log_prob(
                        ws, np.take(x, complete, axis=0), prep
                    )
                    emit(start, stop, complete, log_prob)
                log_prob = self.missing.log_prob(
                    ws, np.take(x, incomplete, axis=0), mask, missing
                )
                emit(start, stop, incomplete, log_prob)

        self._map_ranges(work)

    def _posterior(self, model: Mixture, emit) -> None:
        """Like :meth:`_log_prob`, with ``emit(start, stop, rows, resp, log_norm)``."""

        def normalized(start, stop, rows, log_prob):
            log_norm = normalize(log_prob)
            emit(start, stop, rows, log_prob, log_norm)

        self._log_prob(model, normalized)

    @staticmethod
    def _put(out, start, stop, rows, values):
        if rows is None:
            out[start:stop] = values
        else:
            out[start:stop][rows] = values

    def _compiled_posterior(
        self,
        model: Mixture,
        log_norm: np.ndarray | None = None,
        resp: np.ndarray | None = None,
        labels: np.ndarray | None = None,
    ) -> bool:
        """Fill the given outputs, ``log p(x)`` (n,), responsibilities (n, k)
        and labels (n,), from the compiled kernel; ``False`` (nothing done)
        where that kernel does not apply (no compiled kernel, missing values,
        components about their own means).

        Rows whose squares overflow (far outside the training data) are
        flagged by the kernel and redone on numpy's guarded path. Nothing but
        the outputs grows with n.
        """
        kernels = self.dense.compiled
        if kernels is None or self.missing is not None:
            return False
        prep = self.dense.prepare(model)
        if len(prep.local):
            if self._optimistic:  # numpy's kernels will not flag such rows
                self._confirm_finite(self.X)
            return False
        k = self.n_components
        no_resp = np.empty((0, k), dtype=self.X.dtype)
        no_labels = np.empty(0, dtype=np.intp)
        direct = log_norm is not None and log_norm.dtype == np.float64

        def work(ws, first, last):
            flagged = []
            center, w_matrix, f, lp, scratch = self.dense.compiled_operands(
                ws, prep, "scratch_infer", kernels.INFER_SCRATCH
            )
            for start in range(first, last, self.chunk_size):
                stop = min(start + self.chunk_size, last)
                norm = (
                    log_norm[start:stop]
                    if direct
                    else ws.get("log_norm_chunk", stop - start)
                )
                n_bad = kernels.posterior_rows(
                    kernel_rows(self.X[start:stop], self.dense.readonly),
                    center,
                    w_matrix,
                    self.covariance.feature_layout,
                    no_resp if resp is None else resp[start:stop],
                    norm,
                    no_labels if labels is None else labels[start:stop],
                    f,
                    lp,
                    scratch,
                )
                if log_norm is not None and not direct:
                    log_norm[start:stop] = norm
                if n_bad:
                    bad = (
                        np.isnan(norm)
                        if resp is not None or log_norm is not None
                        else labels[start:stop] < 0
                    )
                    flagged.append(np.flatnonzero(bad) + start)
            return flagged

        flagged = [rows for part in self._map_ranges(work) for rows in part]
        if flagged:
            rows = np.concatenate(flagged)
            x = np.take(self.X, rows, axis=0)
            if self._optimistic:
                self._confirm_finite(x)
            log_prob = self.dense.log_prob(self._workspaces[0], x, prep)[1].copy()
            if labels is not None:
                best = np.empty(len(rows), dtype=np.intp)
                argmax_rows(log_prob, best)
                labels[rows] = best
            norm = normalize(log_prob)
            if log_norm is not None:
                log_norm[rows] = norm
            if resp is not None:
                resp[rows] = log_prob.T
        return True

    def log_prob(self, model: Mixture) -> np.ndarray:
        out = np.empty(self.n_samples, dtype=self.X.dtype)
        if self._compiled_posterior(model, log_norm=out):
            return out
        self._posterior(
            model, lambda a, b, rows, r, log_norm: self._put(out, a, b, rows, log_norm)
        )
        return out

    def responsibilities(self, model: Mixture) -> np.ndarray:
        out = np.empty((self.n_samples, self.n_components), dtype=self.X.dtype)
        if self._compiled_posterior(model, resp=out):
            return out
        self._posterior(
            model, lambda a, b, rows, resp, _: self._put(out, a, b, rows, resp.T)
        )
        return out

    def labels(self, model: Mixture) -> np.ndarray:
        out = np.empty(self.n_samples, dtype=np.intp)
        if self._compiled_posterior(model, labels=out):
            return out

        def emit(start, stop, rows, log_prob):
            best = np.empty(log_prob.shape[1], dtype=np.intp)
            argmax_rows(log_prob, best)
            self._put(out, start, stop, rows, best)

        self._log_prob(model, emit)
        return out

    def lowest(self, model: Mixture, count: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``count`` lowest ``log p(x)`` among rows of positive weight and
        their indices, ordered by value then index (fewer if there are fewer
        such rows).

        Memory stays bounded: each chunk keeps only its ``count`` best
        candidates.
        """
        parts = []

        def emit(start, stop, rows, resp, log_norm):
            index = np.arange(start, stop) if rows is None else rows + start
            if self.sample_weight is not None:
                log_norm[self.sample_weight[index] <= 0] = np.inf
            parts.append(keep_lowest(log_norm, index, count))

        self._posterior(model, emit)
        return keep_lowest(
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
            count,
            ordered=True,
        )

    def worst_rows(self, model: Mixture, count: int) -> np.ndarray:
        """Rows of lowest ``log p(x)``, worst first; never rows of zero weight."""
        rows = self.lowest(model, count)[1]
        return np.where(np.isnan(self.X[rows]), self.center, self.X[rows])


def keep_lowest(
    values: np.ndarray, indices: np.ndarray, count: int, ordered: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """The ``count`` smallest ``(value, index)`` pairs, sorted, so that the
    choice among equal values never depends on how rows were split into
    parts; ``ordered`` also drops ``inf`` (excluded rows)."""
    order = np.lexsort((indices, values))[:count]
    values, indices = values[order], indices[order]
    if ordered:
        kept = values < np.inf
        values, indices = values[kept], indices[kept]
    return values, indices
