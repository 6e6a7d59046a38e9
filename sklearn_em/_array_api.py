"""Array-API arrays (torch, CuPy, array-api-strict) as a source of statistics:
the E-step on the arrays' own device.

Under scikit-learn's ``array_api_dispatch=True``, input that is not a numpy
array is validated in its own namespace and handed to :class:`ArrayAPIData`,
which implements the data-source protocol of :mod:`._data`. ``X`` never leaves
its device:

* one summary pass (centre, checks) runs in the namespace; data of at most
  :data:`INIT_SAMPLE_ROWS` rows, which initialisation copies to the host
  anyway, are summarised there instead, exactly as numpy input is. The
  per-feature variances come from the same strided subsample of at most
  10,000 rows as in memory, copied to the host;
* each E-step runs chunk by chunk in the 2-GEMM form of :mod:`._dense`: feature
  rows ``F = [1, y, second-order(y)]`` about the fixed centre, log-densities
  ``F @ W.T`` with the covariance module's matrix ``W`` moved to the device,
  then moments ``R.T @ F``. Chunks bound the memory beyond ``X`` (about
  :data:`DEVICE_CHUNK_BYTES` on an accelerator), so 1e8 rows fit;
* everything after the load of a chunk is float64, float32 data included, so
  statistics are summed in float64 and no float32 matrix product (and so no
  TF32 on CUDA) is ever run;
* only the ``(k, q)`` statistics come back, as a host :class:`._stats.SuffStats`:
  the numpy M-step (:mod:`._em`) runs unchanged on them. The same
  :class:`._dense.DenseKernel` prepares the parameters (which components are
  too narrow for the expanded form and are handled about their own means), so
  both engines make the same choices.

Initialisations that draw from the data run on a host copy of a uniform sample
of at most :data:`INIT_SAMPLE_ROWS` rows (all of them when there are no more,
and then they start exactly as the numpy path). Inference returns arrays in
the input's namespace and on its device.

For torch on CUDA with few features, training statistics come from the fused
Triton kernel of :mod:`._triton_kernels` instead (one read of ``X`` per
iteration); where it fails to build, the fit warns once and stays on the
matrix-product form.

Not here yet: missing values (NaN is refused with a clear error), CUDA graphs
(the M-step runs on the host); ``partial_fit`` takes numpy batches only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from sklearn.utils.validation import validate_data

try:
    # scikit-learn's own copy of array-api-compat (vendored since 1.6) and
    # the helpers its dispatch uses, so namespaces are told apart as it does.
    from sklearn.externals import array_api_compat
    from sklearn.utils._array_api import _convert_to_numpy, get_namespace_and_device
except ImportError:  # pragma: no cover
    # Only where dispatch cannot be enabled: nothing here is then reached,
    # but the module must still import (doctest collection).
    array_api_compat = None

from ._covariance import Covariance
from ._data import (
    TrainingData,
    check_extent,
    check_magnitude,
    check_positive_count,
    column_means,
    keep_lowest,
    subsample_variances,
)
from ._dense import DenseKernel, Prepared, default_chunk_size, uses_direct
from ._model import Mixture
from ._stats import SuffStats

# Rows of the host sample that data-drawn initialisations run on: the Dask
# source's bound (see _dask.INIT_SAMPLE_ROWS for how it was chosen).
INIT_SAMPLE_ROWS = 100_000

# Working memory per chunk on an accelerator: large chunks keep kernel launches
# few; on the host, chunks stay cache-sized as in memory.
DEVICE_CHUNK_BYTES = 1 << 30

# Rows of the strided subsample the feature variances come from, as in memory.
_VARIANCE_ROWS = 10_000

NAN_MESSAGE = (
    "X contains NaN. Missing values are modelled for numpy and Dask input, but "
    "not yet by the array-API engine ({namespace} arrays): impute them, or "
    "fit a numpy copy of X."
)


def is_array_api_input(X) -> bool:
    """Whether ``X`` is an array of a non-numpy array-API namespace (not Dask)."""
    return (
        array_api_compat.is_array_api_obj(X)
        and not array_api_compat.is_numpy_array(X)
        and not array_api_compat.is_dask_array(X)
    )


def to_numpy(a) -> np.ndarray:
    """A host numpy copy of an array of any namespace (numpy passes through)."""
    if isinstance(a, np.ndarray) or not array_api_compat.is_array_api_obj(a):
        return np.asarray(a)
    return _convert_to_numpy(a, array_api_compat.array_namespace(a))


def host_dtype(dtype) -> np.dtype:
    """The numpy dtype of a floating array-API dtype (float32 or float64)."""
    return np.dtype(np.float32 if "float32" in str(dtype) else np.float64)


def move_like(a: np.ndarray, like):
    """``a`` in the namespace and on the device of the array ``like``."""
    xp, _, device = get_namespace_and_device(like)
    return to_device(xp, a, device)


def to_device(xp, a, device):
    """A host array (or scalar) in namespace ``xp`` on ``device``.

    Always from a fresh C-ordered copy: torch warns about (and may write
    through) read-only numpy buffers, such as the model's broadcast views.
    """
    return xp.asarray(np.array(a, order="C"), device=device)


def move_fitted(estimator, X) -> None:
    """Move the fitted parameters to ``X``'s namespace and device."""
    for name in (
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
    ):
        setattr(estimator, name, move_like(getattr(estimator, name), X))


def _check_supported(estimator) -> None:
    from ._estimator import GaussianMixture

    if not isinstance(estimator, GaussianMixture):
        raise TypeError(
            f"{type(estimator).__name__} does not take array-API input yet; "
            "GaussianMixture does. Fit a numpy copy of X, or turn "
            "array_api_dispatch off."
        )


def check_array_api_input(estimator, X, sample_weight=None, *, reset: bool):
    """Validate array-API rows and weights in their own namespace.

    Returns
    -------
    X : array of float32 or float64, on its device
    sample_weight : float64 array on ``X``'s device, divided by its maximum,
        or None
    log_scale : float
        The log of that maximum (0 without weights).
    """
    _check_supported(estimator)
    xp, _, device = get_namespace_and_device(X)
    X = validate_data(
        estimator,
        X,
        dtype=[xp.float64, xp.float32],
        reset=reset,
        ensure_min_samples=2 if reset else 1,
        # NaN gets this engine's own message (see NAN_MESSAGE).
        ensure_all_finite="allow-nan",
    )
    if sample_weight is None:
        return X, None, 0.0
    n = X.shape[0]
    if isinstance(sample_weight, (int, float)):
        w = xp.full((n,), float(sample_weight), dtype=xp.float64, device=device)
    elif (
        is_array_api_input(sample_weight)
        and array_api_compat.array_namespace(sample_weight) is xp
        and array_api_compat.device(sample_weight) == device
    ):
        # Already where X is: no round trip through the host.
        w = xp.astype(sample_weight, xp.float64)
    else:
        w = to_device(xp, to_numpy(sample_weight).astype(np.float64), device)
    if w.ndim != 1 or w.shape[0] != n:
        raise ValueError(f"sample_weight.shape == {tuple(w.shape)}, expected ({n},)!")
    if not bool(xp.all(xp.isfinite(w))):
        raise ValueError("Input sample_weight contains NaN or infinity.")
    if bool(xp.any(w < 0)):
        raise ValueError("Negative values in data passed to `sample_weight`")
    largest = float(xp.max(w))
    if not largest > 0:
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return X, w / largest, float(np.log(largest))


def weighted_mean(values, sample_weight=None) -> float:
    """(Weighted) mean of a 1-D array of any namespace, in float64."""
    xp, _, device = get_namespace_and_device(values)
    values = xp.astype(values, xp.float64)
    if sample_weight is None:
        return float(xp.mean(values))
    w = to_device(xp, to_numpy(sample_weight).astype(np.float64), device)
    if w.shape != values.shape:
        raise ValueError(
            f"sample_weight.shape == {tuple(w.shape)}, expected {tuple(values.shape)}!"
        )
    return float(xp.sum(values * w) / xp.sum(w))


@lru_cache(maxsize=64)
def second_order_plan(
    covariance: Covariance, n_features: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """How to form the covariance type's second-order features with array ops.

    The features are ``P @ (y[rows] * y[cols])`` over pairs of features; the
    pairs and ``P`` are read off the covariance module by probing its
    ``second_order_features`` with rows ``e_a`` and ``e_a + e_b``, so this
    module never learns what the types are: squares only where they explain
    a random row's features (diag, spherical), else every pair ``a <= b``
    (full, tied). ``P`` is ``None`` where it is the identity.
    """
    d = n_features
    n_second = covariance.n_second_order(d)
    on_diagonal = np.empty((n_second, d))
    covariance.second_order_features(np.eye(d), on_diagonal)
    # Squares only, if they explain the features of arbitrary rows.
    probe = np.random.default_rng(0).standard_normal((d, 3))
    expected = np.empty((n_second, 3))
    covariance.second_order_features(probe, expected)
    if np.allclose(on_diagonal @ probe**2, expected, rtol=1e-12, atol=0.0):
        rows = cols = np.arange(d)
        mixing = on_diagonal
    else:
        rows, cols = np.triu_indices(d)
        # The row e_a + e_b has y_a y_b = 1 and squares y_a^2 = y_b^2 = 1.
        probes = np.zeros((d, len(rows)))
        pairs = np.arange(len(rows))
        probes[rows, pairs] = 1.0
        probes[cols, pairs] = 1.0
        mixing = np.empty((n_second, len(rows)))
        covariance.second_order_features(probes, mixing)
        off = rows != cols
        mixing[:, off] -= on_diagonal[:, rows[off]] + on_diagonal[:, cols[off]]
    if mixing.shape == (len(rows), len(rows)) and np.array_equal(
        mixing, np.eye(len(rows))
    ):
        mixing = None
    return rows, cols, mixing


@dataclass
class _OnDevice:
    """One set of parameters as the device kernel uses them."""

    prep: Prepared
    w_t: object  # (q, k) log-density weights, or None (direct form only)
    local: list
    means: object  # (k, d)
    cholesky: dict  # component -> (d, d) upper factor, for the direct form
    peaks: list


class ArrayAPIData:
    """Rows of an array-API namespace as a source of statistics (see :mod:`._data`).

    Parameters
    ----------
    X : array of shape (n_samples, n_features)
        Validated float32 or float64 rows, on any device of the namespace.
    sample_weight : array of shape (n_samples,) or None
        float64 weights on ``X``'s device, divided by their maximum by the
        caller (see :func:`check_array_api_input`).
    covariance : Covariance
    n_components : int
    chunk_size : int or None
        Rows per chunk; by default cache-sized on the host and about
        :data:`DEVICE_CHUNK_BYTES` of working memory on an accelerator.
    center : ndarray of shape (n_features,) or None
        Fixed point of the statistics; given for inference.
    training : bool
        Training rows get one summary pass of checks; new rows for inference
        only the check for NaN, and are guarded against overflowing squares.
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
        self.xp, _, self.device = get_namespace_and_device(X)
        self.X = X
        self.sample_weight = sample_weight
        self.covariance = covariance
        self.n_components = n_components
        self.n_samples, self.n_features = (int(s) for s in X.shape)
        self.log_weight_scale = 0.0
        self.total_weight = float(self.n_samples)
        self.has_missing = False
        self._init_source = None
        self._host = None
        d, k = self.n_features, n_components
        self.direct = uses_direct(covariance, d)
        q = covariance.n_features_total(d)
        if chunk_size is None:
            if _on_accelerator(self.device):
                # Float64 buffers per row: x, y, pair products, F, log-densities
                # and responsibilities.
                per_row = 8 * (3 * d + 2 * q + 3 * k)
                chunk_size = max(1024, DEVICE_CHUNK_BYTES // per_row)
            else:
                chunk_size = default_chunk_size(d if self.direct else q, k)
        self.chunk_size = max(1, min(int(chunk_size), self.n_samples))
        if training:
            center = self._summarise()
        else:
            self._check_nan()
        # New rows too: the spread decides which components the expanded form
        # serves (see below), as for numpy input.
        self.feature_variances = self._feature_variances()
        self.center = np.asarray(center, dtype=np.float64)
        spread = d * float(self.feature_variances.mean())
        # The numpy kernel decides, per set of parameters, which components
        # the expanded form would serve poorly; this engine follows it.
        self.kernel = DenseKernel(
            covariance, d, k, self.center, spread, self.chunk_size, guarded=False
        )
        self.guarded = not training
        xp = self.xp
        self._center = to_device(xp, self.center, self.device)
        if not self.direct:
            rows, cols, mixing = second_order_plan(covariance, d)
            self._squares = rows is cols
            self._rows = to_device(xp, rows, self.device)
            self._cols = to_device(xp, cols, self.device)
            self._mixing_t = (
                None if mixing is None else to_device(xp, mixing.T, self.device)
            )
        # Training statistics of few features on CUDA: the fused kernel.
        self._fused = None
        if training and not self.direct and _fused_wanted(X):
            from . import _triton_kernels as fused

            if fused.eligible(k, len(rows), d) and fused.offsets_fit(X):
                self._fused = fused.FusedEStep(
                    X, sample_weight, rows, cols, mixing, k, self.center
                )

    # -- the summary pass --
    def _blocks(self):
        n, size = self.n_samples, self.chunk_size
        return ((s, min(s + size, n)) for s in range(0, n, size))

    def _rows64(self, start, stop):
        x = self.X[start:stop, :]
        xp = self.xp
        return x if x.dtype == xp.float64 else xp.astype(x, xp.float64)

    def _weights(self, start, stop):
        w = self.sample_weight
        return None if w is None else w[start:stop]

    def _check_nan(self) -> None:
        xp = self.xp
        # A sum of finite values is NaN only where overflows of both signs
        # meet; confirm with the mask then.
        if bool(xp.isnan(xp.sum(self.X))) and bool(xp.any(xp.isnan(self.X))):
            raise ValueError(NAN_MESSAGE.format(namespace=_namespace_name(self.X)))

    def _summarise(self) -> np.ndarray:
        """The centre (weighted column means) and checks, in the namespace.

        Data small enough to be copied whole for initialisation are copied
        here, and summed as numpy sums them: choices that hinge on rounding
        (among starts of equal likelihood, say) then fall as for numpy input.
        """
        xp, w = self.xp, self.sample_weight
        if self.n_samples <= INIT_SAMPLE_ROWS:
            rows = np.ascontiguousarray(to_numpy(self.X))
            weights = None if w is None else to_numpy(w)
            self._host = rows, weights
            if weights is not None:
                self.total_weight = float(weights.sum())
                check_positive_count(np.count_nonzero(weights), self.n_components)
            center = column_means(rows, weights, missing=False)
            if np.isnan(center).any():
                self._check_nan()
            check_magnitude(rows, center)
            return center
        totals = xp.zeros((self.n_features,), dtype=xp.float64, device=self.device)
        for start, stop in self._blocks():
            x = self._rows64(start, stop)
            wc = self._weights(start, stop)
            totals = totals + (
                xp.sum(x, axis=0) if wc is None else xp.sum(x * wc[:, None], axis=0)
            )
        if w is None:
            self.total_weight = float(self.n_samples)
        else:
            self.total_weight = float(xp.sum(w))
            check_positive_count(
                int(xp.sum(xp.astype(w > 0, xp.int64))), self.n_components
            )
        center = to_numpy(totals) / self.total_weight
        if np.isnan(center).any():
            self._check_nan()
        top = to_numpy(xp.astype(xp.max(self.X, axis=0), xp.float64))
        bottom = to_numpy(xp.astype(xp.min(self.X, axis=0), xp.float64))
        check_extent(top, bottom, center, self.n_samples * self.n_features)
        return center

    def _feature_variances(self) -> np.ndarray:
        """From the strided subsample the numpy path uses, on the host."""
        step = max(1, self.n_samples // _VARIANCE_ROWS)
        x = to_numpy(self.X[::step, :])
        w = None if self.sample_weight is None else to_numpy(self.sample_weight[::step])
        return subsample_variances(x, w, missing=False, max_rows=_VARIANCE_ROWS)

    # -- parameters on the device --
    def _on_device(self, model: Mixture) -> _OnDevice:
        xp, device = self.xp, self.device
        prep = self.kernel.prepare(model)
        local = [int(j) for j in prep.local]
        w_t = None
        if prep.w_matrix is not None and len(local) < self.n_components:
            w_t = to_device(xp, prep.w_matrix.T, device)
        cholesky = {}
        if local or self.guarded:
            factors = self.covariance.cholesky_matrices(
                model.precisions_cholesky, self.n_components, self.n_features
            )
            wanted = range(self.n_components) if self.guarded else local
            cholesky = {j: to_device(xp, factors[j], device) for j in wanted}
        return _OnDevice(
            prep,
            w_t,
            local,
            to_device(xp, model.means, device),
            cholesky,
            [float(p) for p in prep.peaks],
        )

    # -- the kernel --
    def _features(self, x):
        """Feature rows ``[1, y, second-order(y)]`` (m, q), ``y = x - centre``."""
        xp = self.xp
        y = x - self._center
        if self._squares:
            pairs = y * y
        else:
            pairs = xp.take(y, self._rows, axis=1) * xp.take(y, self._cols, axis=1)
        if self._mixing_t is not None:
            pairs = pairs @ self._mixing_t
        ones = xp.ones((x.shape[0], 1), dtype=xp.float64, device=self.device)
        return xp.concat([ones, y, pairs], axis=1)

    def _direct(self, x, dev: _OnDevice, j: int):
        """``log pi_j + log N_j(x)`` from ``|(x - mu_j) U_j|^2``."""
        # Rows far out give an infinite square and a log-density of -inf
        # (numpy-backed namespaces would warn, as numpy's kernel does not).
        with np.errstate(over="ignore"):
            z = (x - dev.means[j, :]) @ dev.cholesky[j]
            return dev.peaks[j] - 0.5 * self.xp.sum(z * z, axis=1)

    def _log_prob(self, x, dev: _OnDevice):
        """Feature rows (or None) and ``log pi_k + log N_k(x)`` (m, k)."""
        xp, k = self.xp, self.n_components
        if dev.w_t is None:
            return None, xp.stack([self._direct(x, dev, j) for j in range(k)], axis=1)
        if self.guarded:
            # Overflow is caught below, by the NaN it leaves.
            with np.errstate(over="ignore", invalid="ignore"):
                f = self._features(x)
                log_prob = f @ dev.w_t
        else:
            f = self._features(x)
            log_prob = f @ dev.w_t
        if dev.local:
            log_prob = xp.stack(
                [
                    self._direct(x, dev, j) if j in dev.local else log_prob[:, j]
                    for j in range(k)
                ],
                axis=1,
            )
        if self.guarded:
            # Squares of rows ~1e154 from the centre overflow in the features
            # (inf - inf = NaN); the direct form gives their true value.
            bad = xp.isnan(xp.sum(log_prob, axis=1))
            if bool(xp.any(bad)):
                direct = xp.stack([self._direct(x, dev, j) for j in range(k)], axis=1)
                log_prob = xp.where(bad[:, None], direct, log_prob)
        return f, log_prob

    def _posterior(self, log_prob):
        """Responsibilities (m, k) and ``log p(x)`` (m,); a row that no
        component explains gets equal responsibilities and ``-inf``."""
        xp = self.xp
        top = xp.max(log_prob, axis=1, keepdims=True)
        dead = xp.isinf(top)
        top = xp.where(dead, xp.zeros_like(top), top)
        e = xp.exp(log_prob - top)
        total = xp.sum(e, axis=1, keepdims=True)
        total = xp.where(dead, xp.ones_like(total), total)
        resp = xp.where(dead, xp.full_like(e, 1.0 / self.n_components), e / total)
        log_norm = xp.log(total) + top
        log_norm = xp.where(dead, xp.full_like(top, -np.inf), log_norm)
        return resp, log_norm[:, 0]

    # -- the protocol --
    def stats(self, model: Mixture) -> SuffStats:
        """One E-step on the device; the ``(k, q)`` sums come back in float64."""
        if self._fused is not None:
            prep = self.kernel.prepare(model)
            if not len(prep.local):
                fused = self._fused_stats(prep)
                if fused is not None:
                    return fused
        xp, device = self.xp, self.device
        dev = self._on_device(model)
        k, d, q = self.n_components, self.n_features, self.kernel.q
        f64 = xp.float64
        moments = xp.zeros((k, q), dtype=f64, device=device)
        log_likelihood = xp.zeros((), dtype=f64, device=device)
        n_local = len(dev.local)
        local_n = xp.zeros((n_local,), dtype=f64, device=device)
        local_s1 = xp.zeros((n_local, d), dtype=f64, device=device)
        local_s2 = xp.zeros((n_local, d, d), dtype=f64, device=device)
        for start, stop in self._blocks():
            x = self._rows64(start, stop)
            w = self._weights(start, stop)
            f, log_prob = self._log_prob(x, dev)
            resp, log_norm = self._posterior(log_prob)
            if w is None:
                log_likelihood = log_likelihood + xp.sum(log_norm)
            else:
                resp = resp * w[:, None]
                log_likelihood = log_likelihood + xp.sum(w * log_norm)
            if f is not None:
                moments = moments + resp.T @ f
            if n_local:
                # Their moments about their own means (scatter matrices here,
                # mapped to second-order features once on the host).
                rs, s1s, s2s = [], [], []
                for j in dev.local:
                    r = resp[:, j]
                    y = x - dev.means[j, :]
                    ry = y * r[:, None]
                    rs.append(xp.sum(r))
                    s1s.append(xp.sum(ry, axis=0))
                    s2s.append(ry.T @ y)
                local_n = local_n + xp.stack(rs)
                local_s1 = local_s1 + xp.stack(s1s)
                local_s2 = local_s2 + xp.stack(s2s)
        out = to_numpy(moments).copy()
        if n_local:
            out[dev.local, 0] = to_numpy(local_n)
            out[dev.local, 1 : d + 1] = to_numpy(local_s1)
            out[dev.local, d + 1 :] = self.covariance.second_order_of(
                to_numpy(local_s2)
            )
        return SuffStats(
            out, dev.prep.centers, float(log_likelihood), self.total_weight
        )

    def _fused_stats(self, prep: Prepared) -> SuffStats | None:
        """The fused kernel's statistics; ``None`` (with a warning, once per
        fit) where it fails to compile or launch on this device and Triton
        version, after which the matrix-product form serves the fit."""
        try:
            moments, log_likelihood = self._fused(prep.w_matrix)
        except Exception as error:  # any failure to build or launch: fall back
            if self._fused.calls:
                raise  # it worked before: a real error, not a missing feature
            self._fused = None
            warnings.warn(
                "The fused Triton E-step failed on this device "
                f"({type(error).__name__}: {error}); falling back to the "
                "matrix-product form.",
                RuntimeWarning,
                stacklevel=4,
            )
            return None
        return SuffStats(moments, prep.centers, log_likelihood, self.total_weight)

    def _map(self, model: Mixture, what):
        """``what(log_prob)`` per chunk, concatenated in row order."""
        dev = self._on_device(model)
        parts = [
            what(self._log_prob(self._rows64(start, stop), dev)[1])
            for start, stop in self._blocks()
        ]
        return self.xp.concat(parts, axis=0)

    def log_prob(self, model: Mixture):
        dtype = self.X.dtype
        return self._map(
            model, lambda lp: self.xp.astype(self._posterior(lp)[1], dtype)
        )

    def responsibilities(self, model: Mixture):
        dtype = self.X.dtype
        return self._map(
            model, lambda lp: self.xp.astype(self._posterior(lp)[0], dtype)
        )

    def labels(self, model: Mixture):
        return self._map(model, lambda lp: self.xp.argmax(lp, axis=1))

    def worst_rows(self, model: Mixture, count: int) -> np.ndarray:
        """Rows of lowest ``log p(x)`` among rows of positive weight, worst
        first, as float64 host rows; ties go to the lower index, as in memory."""
        xp = self.xp
        dev = self._on_device(model)
        values, indices = [], []
        for start, stop in self._blocks():
            log_norm = self._posterior(
                self._log_prob(self._rows64(start, stop), dev)[1]
            )[1]
            w = self._weights(start, stop)
            if w is not None:
                log_norm = xp.where(w > 0, log_norm, xp.full_like(log_norm, np.inf))
            order = xp.argsort(log_norm, stable=True)[:count]
            values.append(to_numpy(xp.take(log_norm, order)))
            indices.append(to_numpy(order) + start)
        _, rows = keep_lowest(
            np.concatenate(values), np.concatenate(indices), count, ordered=True
        )
        picked = xp.take(self.X, to_device(xp, rows, self.device), axis=0)
        return to_numpy(picked).astype(np.float64)

    def initialization_source(self, random_state) -> TrainingData:
        """An in-memory source of a host copy of at most ``INIT_SAMPLE_ROWS``
        rows drawn uniformly without replacement (all rows when there are no
        more), kept for the fit's other initialisations."""
        if self._init_source is not None:
            return self._init_source
        n, xp = self.n_samples, self.xp
        if self._host is not None:
            rows, weights = self._host
        elif n <= INIT_SAMPLE_ROWS:
            rows = to_numpy(self.X)
            weights = self.sample_weight
        else:
            seed = random_state.randint(np.iinfo(np.int32).max)
            picks = np.sort(
                np.random.default_rng(seed).choice(n, INIT_SAMPLE_ROWS, replace=False)
            )
            picks = to_device(xp, picks, self.device)
            rows = to_numpy(xp.take(self.X, picks, axis=0))
            weights = (
                None
                if self.sample_weight is None
                else xp.take(self.sample_weight, picks)
            )
        weights = None if weights is None else to_numpy(weights)
        if weights is not None:
            check_positive_count(np.count_nonzero(weights), self.n_components)
        # Like a block of the training data: the whole set's centre and scale.
        self._init_source = TrainingData(
            np.ascontiguousarray(rows),
            weights,
            self.covariance,
            self.n_components,
            center=self.center,
            training=False,
            feature_variances=self.feature_variances,
            guarded=False,
        )
        return self._init_source


def _fused_wanted(X) -> bool:
    """Whether ``X`` is a torch tensor on a CUDA device and Triton is installed
    (the fused kernel's conditions; see :mod:`._triton_kernels`)."""
    device = getattr(X, "device", None)
    if getattr(device, "type", None) != "cuda" or not _torch_tensor(X):
        return False
    return triton_installed()


def _torch_tensor(X) -> bool:
    return array_api_compat.is_torch_array(X)


@lru_cache(maxsize=1)
def triton_installed() -> bool:
    """Whether Triton can be imported (looked up once per process)."""
    from importlib.util import find_spec

    return find_spec("triton") is not None


def _on_accelerator(device) -> bool:
    return "cpu" not in str(device).lower()


def _namespace_name(X) -> str:
    return array_api_compat.array_namespace(X).__name__.rsplit(".", 1)[-1]
