"""Dask arrays as a source of statistics: the same EM on data beyond one machine.

:class:`DaskData` implements the data-source protocol of :mod:`._data` over a
``dask.array.Array`` chunked by rows. Each block is handed, on whichever worker
holds it, to the in-memory source (:class:`._data.TrainingData`) with the whole
data set's centre and feature variances, so every block runs the same kernels
as an in-memory fit; the blocks' :class:`._stats.SuffStats` are then added up
in a tree. An E-step is one ``compute`` of that graph and returns only the
``(k, q)`` statistics; ``X`` never comes to the client and nothing is
persisted, so a fit streams ``X`` from wherever it lives (memory, disk or a
generator) once per iteration. The EM loop, the M-step and the covariance
types do not know about Dask.

Initialisation that draws from the data (``init_params``) runs the in-memory
initialisation on a uniform sample of at most :data:`INIT_SAMPLE_ROWS` rows,
gathered in one pass; data of that size or smaller are taken whole, and then
start exactly as in memory. Inference (``predict``, ``predict_proba``,
``score_samples``) maps the in-memory source over the blocks and stays lazy.

This module imports Dask; the estimator imports it only for Dask input.
"""

from __future__ import annotations

import operator
import warnings
from dataclasses import dataclass
from functools import reduce

import dask
import dask.array as da
import numpy as np
from sklearn.utils.validation import _check_feature_names, _check_n_features

from ._covariance import Covariance
from ._data import (
    TrainingData,
    check_extent,
    check_features,
    check_positive_count,
    source_center,
    subsample_variances,
)
from ._model import Mixture
from ._stats import SuffStats

# Rows of the sample that data-drawn initialisations (k-means and the others)
# run on. Its k-means costs ~0.1 s at d = 2 and a fraction of one E-step pass at
# 1e7 rows; see benchmarks/bench_dask.py (suite 'init') for the comparison with
# dask-ml's k-means|| that chose it.
INIT_SAMPLE_ROWS = 100_000

# Blocks combined per task in the tree reduction of statistics.
_FAN_IN = 8


# -- validation --
def check_dask_input(estimator, X, sample_weight=None, *, reset: bool):
    """Validate a Dask array (or DataFrame) and its weights, lazily.

    Checks what is known without computing: two dimensions, known row chunks,
    one chunk across the features, a numeric dtype, and the number and names of
    features (recorded when ``reset``). Values (NaN, inf, weights) are checked
    in the source's one pass over the data.

    Returns
    -------
    X : dask.array.Array of float32 or float64
    sample_weight : dask.array.Array of float64 with ``X``'s row chunks, or None
    """
    # A Dask DataFrame's names are those of its (empty pandas) meta.
    _check_feature_names(estimator, getattr(X, "_meta", X), reset=reset)
    if hasattr(X, "to_dask_array"):
        # A Dask DataFrame: one pass to learn the partitions' lengths.
        X = X.to_dask_array(lengths=True)
    if not isinstance(X, da.Array):
        raise TypeError(
            f"Expected a dask.array.Array or a Dask DataFrame, got {type(X).__name__}."
        )
    if X.ndim != 2:
        raise ValueError(
            f"Expected a 2-D Dask array of shape (n_samples, n_features), got "
            f"{X.ndim} dimension(s); for one feature use X.reshape(-1, 1)."
        )
    if any(np.isnan(size) for size in X.chunks[0]):
        raise ValueError(
            "The Dask array X has unknown chunk sizes (rows per block); compute "
            "them first with X.compute_chunk_sizes(), or convert a DataFrame "
            "with df.to_dask_array(lengths=True)."
        )
    if len(X.chunks[1]) > 1:
        raise ValueError(
            f"The Dask array X is chunked along the features ({len(X.chunks[1])} "
            "column blocks); each block must hold whole rows. Rechunk with "
            "X.rechunk({1: -1})."
        )
    if X.dtype not in (np.float32, np.float64):
        if X.dtype.kind not in "biuf":
            raise ValueError(
                f"X has dtype {X.dtype}; a Gaussian mixture needs numbers."
            )
        X = X.astype(np.float64)
    _check_n_features(estimator, X, reset=reset)
    n_samples = X.shape[0]
    if reset and n_samples < 2:
        raise ValueError(
            f"Found array with {n_samples} sample(s) (shape={X.shape}) while a "
            "minimum of 2 is required by GaussianMixture."
        )
    if sample_weight is not None:
        if not isinstance(sample_weight, da.Array):
            sample_weight = np.asarray(sample_weight, dtype=np.float64)
            if sample_weight.ndim == 0:
                sample_weight = np.full(n_samples, float(sample_weight))
            sample_weight = da.from_array(sample_weight, chunks=(X.chunks[0],))
        if sample_weight.shape != (n_samples,):
            raise ValueError(
                f"sample_weight.shape == {sample_weight.shape}, expected "
                f"({n_samples},)!"
            )
        sample_weight = sample_weight.astype(np.float64)
        if sample_weight.chunks[0] != X.chunks[0]:
            sample_weight = sample_weight.rechunk((X.chunks[0],))
    return X, sample_weight


# -- what one block computes (module functions: they travel to the workers) --
@dataclass(frozen=True)
class _BlockSpec:
    """What every block's in-memory source shares."""

    covariance: Covariance
    n_components: int
    center: np.ndarray
    feature_variances: np.ndarray | None
    chunk_size: int | None
    training: bool


def _block_source(x, w, spec: _BlockSpec) -> TrainingData:
    return TrainingData(
        x,
        w,
        spec.covariance,
        spec.n_components,
        chunk_size=spec.chunk_size,
        n_jobs=1,
        center=spec.center,
        training=False,
        feature_variances=spec.feature_variances,
        # Training data were checked for overflowing squares as a whole.
        guarded=not spec.training,
    )


def _block_stats(x, w, model, spec) -> SuffStats | None:
    if len(x) == 0:
        return None
    return _block_source(x, w, spec).stats(model)


def _block_lowest(x, w, offset, model, spec, count):
    """The block's ``count`` rows of lowest ``log p(x)``: values, indices in
    ``X`` and the rows themselves."""
    if len(x) == 0:
        return np.empty(0), np.empty(0, dtype=np.intp), x
    values, rows = _block_source(x, w, spec).lowest(model, count)
    return values, rows + offset, x[rows]


def _block_scatter(x, w, center):
    if len(x) == 0:
        return np.zeros((len(center), len(center)))
    y = np.where(np.isnan(x), center, x).astype(np.float64) - center
    return (y.T if w is None else y.T * w) @ y


def _merge_lowest(count, *parts):
    """The ``count`` smallest ``(value, index)`` of the parts, as in memory."""
    values, indices, rows = (np.concatenate([p[i] for p in parts]) for i in range(3))
    order = np.lexsort((indices, values))[:count]
    return values[order], indices[order], rows[order]


def _add(*parts):
    parts = [p for p in parts if p is not None]
    return reduce(operator.add, parts) if parts else None


def _tree(parts: list, combine, *args):
    """Reduce delayed ``parts`` with ``combine(*args, *group)`` in a tree of
    fan-in ``_FAN_IN``: one delayed result, whose graph is one ``compute``."""
    while True:
        parts = [
            dask.delayed(combine)(*args, *parts[i : i + _FAN_IN])
            for i in range(0, len(parts), _FAN_IN)
        ]
        if len(parts) == 1:
            return parts[0]


@dataclass
class _Summary:
    """One pass of checks and sums over a block, added up over blocks; with
    the block's rows (and raw weights) of the strided subsample that the
    feature variances come from, concatenated in row order."""

    n_rows: int
    n_infinite: int
    any_missing: bool
    n_empty: int
    seen: np.ndarray
    weighted_sums: np.ndarray
    observed_weights: np.ndarray
    top: np.ndarray
    bottom: np.ndarray
    weights_finite: bool
    weight_min: float
    weight_max: float
    n_positive: int
    total_weight: float
    sample_rows: np.ndarray
    sample_weights: np.ndarray | None

    def __add__(self, other: _Summary) -> _Summary:
        return _Summary(
            self.n_rows + other.n_rows,
            self.n_infinite + other.n_infinite,
            self.any_missing or other.any_missing,
            self.n_empty + other.n_empty,
            self.seen | other.seen,
            self.weighted_sums + other.weighted_sums,
            self.observed_weights + other.observed_weights,
            np.fmax(self.top, other.top),
            np.fmin(self.bottom, other.bottom),
            self.weights_finite and other.weights_finite,
            min(self.weight_min, other.weight_min),
            max(self.weight_max, other.weight_max),
            self.n_positive + other.n_positive,
            self.total_weight + other.total_weight,
            np.concatenate([self.sample_rows, other.sample_rows]),
            None
            if self.sample_weights is None
            else np.concatenate([self.sample_weights, other.sample_weights]),
        )


def _block_summary(x, w, offset: int, step: int) -> _Summary:
    """The checks and sums of :class:`._data.TrainingData`'s summaries, for
    one block of rows (the first at row ``offset`` of X) and (raw) weights,
    and its rows of X's every ``step``-th row."""
    d = x.shape[1]
    first = -offset % step
    sample_rows = x[first::step]
    sample_weights = None if w is None else w[first::step]
    missing = np.isnan(x)
    empty = missing.all(axis=1)
    finite, low, high = True, np.inf, -np.inf
    if w is None:
        w = np.ones(len(x))
    elif len(w):
        finite = bool(np.isfinite(w).all())
        low, high = float(w.min()), float(w.max())
    w = np.where(empty, 0.0, w)
    any_missing = bool(missing.any())
    observed = ~missing
    x64 = np.where(observed, x, 0.0) if any_missing else x
    n_infinite = int(np.isinf(x).sum())
    with np.errstate(invalid="ignore", over="ignore"):
        sums = w @ x64.astype(np.float64, copy=False)
    if len(x):
        top = np.fmax.reduce(x, axis=0).astype(np.float64)
        bottom = np.fmin.reduce(x, axis=0).astype(np.float64)
    else:
        top = bottom = np.full(d, np.nan)
    return _Summary(
        len(x),
        n_infinite,
        any_missing,
        int(empty.sum()),
        observed.any(axis=0),
        sums,
        w @ observed,
        top,
        bottom,
        finite,
        low,
        high,
        int(np.count_nonzero(w > 0)),
        float(w.sum()),
        sample_rows,
        sample_weights,
    )


def _block_infer(x, model, center, chunk_size, what):
    if len(x) == 0:
        shape = (0, model.n_components) if what == "responsibilities" else (0,)
        return np.empty(shape, dtype=np.intp if what == "labels" else x.dtype)
    if np.isinf(x).any():
        raise ValueError(
            f"Input X contains infinity or a value too large for {x.dtype}."
        )
    source = TrainingData(
        x,
        None,
        model.covariance,
        model.n_components,
        chunk_size=chunk_size,
        n_jobs=1,
        center=center,
        training=False,
    )
    return getattr(source, what)(model)


def _blocks(X, sample_weight) -> list:
    """``(x, w)`` per block of rows, as delayed objects (``w`` None without
    weights)."""
    xs = list(X.to_delayed().ravel())
    if sample_weight is None:
        return [(x, None) for x in xs]
    return list(zip(xs, sample_weight.to_delayed().ravel(), strict=True))


class DaskData:
    """A Dask array as a source of statistics (see :mod:`._data`'s protocol).

    Parameters
    ----------
    X : dask.array.Array of shape (n_samples, n_features)
        Validated by :func:`check_dask_input`: float32 or float64, chunked by
        rows only, with known chunk sizes.
    sample_weight : dask.array.Array of shape (n_samples,) or None
        Raw weights with ``X``'s row chunks; checked and divided by their
        maximum here (``log_weight_scale`` keeps its log).
    covariance : Covariance
    n_components : int
    chunk_size : int or None
        Rows per chunk inside a block (the in-memory kernel's cache tiling);
        the blocks themselves are ``X``'s chunks.
    center : ndarray or None
        Fixed point of the statistics; given for inference.
    training : bool
        Training data get one pass of checks and summaries, as in memory
        (:class:`._data.TrainingData`); new rows for inference none.
    """

    def __init__(
        self,
        X,
        sample_weight,
        covariance: Covariance,
        n_components: int,
        *,
        chunk_size: int | None = None,
        center: np.ndarray | None = None,
        training: bool = True,
    ):
        self.X = X
        self.covariance = covariance
        self.n_components = n_components
        self.chunk_size = chunk_size
        self.n_samples, self.n_features = X.shape
        self.sample_weight = sample_weight
        self.log_weight_scale = 0.0
        self.feature_variances = None
        self._total_weight = float(self.n_samples)
        self._init_source = None
        if training:
            center = self._summarise()
        self.center = source_center(center, X.dtype)
        self.spec = _BlockSpec(
            covariance,
            n_components,
            self.center,
            self.feature_variances,
            chunk_size,
            training,
        )

    def _summarise(self) -> np.ndarray:
        """One pass over ``X``: checks, the centre, the weights' scale and the
        feature variances (from the same strided subsample as in memory)."""
        X, w = self.X, self.sample_weight
        weighted = w is not None
        # The subsample comes with the sums, from the same blocks: a
        # separate X[::step] would be a second read of every block.
        step = max(1, self.n_samples // 10_000)
        offsets = np.cumsum((0, *X.chunks[0][:-1]))
        parts = [
            dask.delayed(_block_summary)(x, b, int(offset), step)
            for (x, b), offset in zip(_blocks(X, w), offsets, strict=True)
        ]
        (summary,) = dask.compute(_tree(parts, _add))
        sub_x, sub_w = summary.sample_rows, summary.sample_weights
        if summary.n_infinite:
            raise ValueError(
                f"Input X contains infinity or a value too large for {X.dtype} "
                f"({summary.n_infinite} value(s))."
            )
        if weighted:
            if not summary.weights_finite:
                raise ValueError("Input sample_weight contains NaN or infinity.")
            if summary.weight_min < 0:
                raise ValueError("Negative values in data passed to `sample_weight`")
            if not summary.weight_max > 0:
                raise ValueError(
                    "Sample weights must contain at least one non-zero number."
                )
        if summary.n_empty:
            if self.n_samples - summary.n_empty < self.n_components:
                raise ValueError(
                    f"{summary.n_empty} row(s) of X have every feature missing "
                    f"(NaN), leaving {self.n_samples - summary.n_empty} row(s) with "
                    f"observed values, fewer than n_components = "
                    f"{self.n_components}."
                )
            warnings.warn(
                f"{summary.n_empty} row(s) of X have every feature missing (NaN); "
                "they carry no information and are ignored.",
                UserWarning,
                stacklevel=5,
            )
            # Lazily, like every operation on X: their weight is zero.
            empty = da.isnan(X).all(axis=1)
            w = da.where(empty, 0.0, 1.0 if w is None else w)
            sub_w = np.where(
                np.isnan(sub_x).all(axis=1), 0.0, 1.0 if sub_w is None else sub_w
            )
        scale = summary.weight_max if weighted else 1.0
        self._total_weight = summary.total_weight / scale
        if weighted:
            w, sub_w = w / scale, sub_w / scale
            self.log_weight_scale = float(np.log(scale))
            check_positive_count(summary.n_positive, self.n_components)
        self.sample_weight = w
        self.has_missing = summary.any_missing
        with np.errstate(invalid="ignore", divide="ignore"):
            center = summary.weighted_sums / summary.observed_weights
        check_features(summary.seen, center)
        check_extent(summary.top, summary.bottom, center, X.size)
        self.feature_variances = subsample_variances(sub_x, sub_w, self.has_missing)
        return center

    @property
    def total_weight(self) -> float:
        return self._total_weight

    def _shared(self, model):
        """The model and the block spec as one graph key each, not copied
        into every task."""
        return (
            dask.delayed(model, traverse=False),
            dask.delayed(self.spec, traverse=False),
        )

    # -- the protocol --
    def stats(self, model: Mixture) -> SuffStats:
        """One E-step: the blocks' statistics, added in a tree, one compute."""
        model_key, spec = self._shared(model)
        parts = [
            dask.delayed(_block_stats)(x, w, model_key, spec)
            for x, w in _blocks(self.X, self.sample_weight)
        ]
        (stats,) = dask.compute(_tree(parts, _add))
        stats.total_weight = self.total_weight
        return stats

    def scatter(self) -> np.ndarray:
        parts = [
            dask.delayed(_block_scatter)(x, w, self.center)
            for x, w in _blocks(self.X, self.sample_weight)
        ]
        (total,) = dask.compute(_tree(parts, _add))
        return total

    def worst_rows(self, model: Mixture, count: int) -> np.ndarray:
        model_key, spec = self._shared(model)
        offsets = np.cumsum((0, *self.X.chunks[0][:-1]))
        parts = [
            dask.delayed(_block_lowest)(x, w, int(offset), model_key, spec, count)
            for (x, w), offset in zip(
                _blocks(self.X, self.sample_weight), offsets, strict=True
            )
        ]
        (lowest,) = dask.compute(_tree(parts, _merge_lowest, count))
        values, _, rows = lowest
        rows = rows[values < np.inf]
        return np.where(np.isnan(rows), self.center, rows)

    def initialization_source(self, random_state) -> TrainingData:
        """An in-memory source of at most ``INIT_SAMPLE_ROWS`` rows drawn
        uniformly without replacement (all rows when there are no more),
        gathered in one pass and kept for the fit's other initialisations."""
        if self._init_source is not None:
            return self._init_source
        n = self.n_samples
        if n <= INIT_SAMPLE_ROWS:
            picks = None
        else:
            seed = random_state.randint(np.iinfo(np.int32).max)
            picks = np.sort(
                np.random.default_rng(seed).choice(n, INIT_SAMPLE_ROWS, replace=False)
            )
        rows, weights = dask.compute(
            _take(self.X, picks),
            None if self.sample_weight is None else _take(self.sample_weight, picks),
        )
        # Like a block of the training data: the whole set's centre and scale.
        self._init_source = _block_source(rows, weights, self.spec)
        if weights is not None:
            check_positive_count(np.count_nonzero(weights), self.n_components)
        return self._init_source

    def _lazy(self, model: Mixture, what: str):
        k = model.n_components
        if what == "responsibilities":
            chunks, drop, dtype = (self.X.chunks[0], (k,)), None, self.X.dtype
        else:
            chunks, drop = (self.X.chunks[0],), 1
            dtype = np.intp if what == "labels" else self.X.dtype
        return self.X.map_blocks(
            _block_infer,
            model,
            self.center,
            self.chunk_size,
            what,
            chunks=chunks,
            drop_axis=drop,
            dtype=dtype,
            meta=np.empty((0,) * len(chunks), dtype=dtype),
        )

    def log_prob(self, model: Mixture):
        return self._lazy(model, "log_prob")

    def responsibilities(self, model: Mixture):
        return self._lazy(model, "responsibilities")

    def labels(self, model: Mixture):
        return self._lazy(model, "labels")


def _take(array, picks):
    """Rows ``picks`` (sorted) of a Dask array, or all of it for ``None``."""
    if picks is None:
        return array
    return array[picks]


def weighted_mean(values, sample_weight=None) -> float:
    """(Weighted) mean of a lazy 1-D array, in one ``compute``."""
    if sample_weight is None:
        return float(values.mean().compute())
    if not isinstance(sample_weight, da.Array):
        sample_weight = da.from_array(
            np.asarray(sample_weight, dtype=np.float64), chunks=(values.chunks[0],)
        )
    total, weight = dask.compute((values * sample_weight).sum(), sample_weight.sum())
    return float(total / weight)


def iter_blocks(X, sample_weight=None):
    """The blocks of a Dask array (or partitions of a Dask DataFrame) and
    their weights, in memory one at a time: one ``compute`` per block.

    Yields
    ------
    x : ndarray or pandas.DataFrame
    w : ndarray or None
    """
    if hasattr(X, "partitions"):
        parts = [X.partitions[i] for i in range(X.npartitions)]
    else:
        if X.ndim != 2 or len(X.chunks[1]) > 1:
            raise ValueError(
                "Expected a 2-D Dask array whose blocks hold whole rows (one chunk "
                "along the features); rechunk with X.rechunk({1: -1})."
            )
        parts = [X.blocks[i] for i in range(X.numblocks[0])]
    lazy_weights = isinstance(sample_weight, da.Array)
    if lazy_weights and sample_weight.numblocks[0] != len(parts):
        raise ValueError(
            f"sample_weight has {sample_weight.numblocks[0]} blocks and X "
            f"{len(parts)}; give sample_weight X's row chunks."
        )
    offset = 0
    for i, part in enumerate(parts):
        w = sample_weight.blocks[i] if lazy_weights else None
        x, w = dask.compute(part, w)
        if sample_weight is not None and not lazy_weights:
            w = np.asarray(sample_weight)[offset : offset + len(x)]
        offset += len(x)
        yield x, w
