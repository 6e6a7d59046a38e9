"""The complete-row E-step kernel: two matrix products per chunk.

A chunk of rows ``x`` is centred on a fixed point ``c`` (``y = x - c``) and
turned into feature rows ``F = [1, y, second-order(y)]``. Then

* the weighted log-density of every component is one matrix product ``W @ F``;
* the statistics of every component are one more, ``R @ F.T``, where ``R`` holds
  the (sample-weighted) responsibilities.

Arrays keep components on the leading axis, ``(k, m)``: numpy reduces over the
leading axis of a C-ordered array many times faster than over a short last
axis. Chunks are small enough to keep every temporary in cache.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._covariance import Covariance
from ._model import Mixture
from ._stats import SAFE_LOG, SuffStats, normalize, normalize_unshifted

# Bytes of per-chunk working set to aim for: roughly an L2 cache.
_CHUNK_BYTES = 1 << 21
# Fewer rows than _MIN_CHUNK make the chunk's matrix products inefficient,
# even where the buffers then outgrow L2 (wide feature rows): make_blobs,
# d=32, k=16, full, 1e5 rows, 2 threads: 16 rows minimum (454 rows per chunk)
# 212 ms per iteration, 1024 158, 2048 133, 4096 127.
_MIN_CHUNK, _MAX_CHUNK = 2048, 32768

# Above this, ``precision * |x - c|^2`` (rows' squared distance from the common
# centre ``c``, against the component's largest precision) makes the expanded
# quadratic forms lose more than ~6 of float64's 16 digits, and the component
# is handled about its own mean, with the direct Cholesky form, instead.
MAX_EXPANSION = 1e6

# The same bound for float32 rows, which the compiled kernel computes in
# float32 (see DenseKernel): below it, the expanded forms' rounding leaves
# log-densities within ~1e3 float32 epsilons (6e-5) of exact, where float32
# itself holds each value to 6e-8 of its size. Components reaching further
# are computed in float64 arithmetic instead (and beyond MAX_EXPANSION about
# their own means, as for float64 rows). The 3-Gaussian set reaches ~100.
MAX_EXPANSION_FLOAT32 = 1e3

# From this many features, the statistics floor log-densities far below a
# row's maximum before exp (see _stats.EXP_FLOOR): distances grow with d, so
# rows far from most components are common (make_blobs, d=32, k=16: most
# values; normalising took 34 ms per 1e5 rows, floored 8), and the extra pass
# over (k, m) values is small beside the feature rows of such d.
_FLOOR_FROM_FEATURES = 8


# Above this many second-order features per row (full/tied at d >= 56), the
# feature rows cost more memory traffic than they save: log-densities come
# from ``(x - mu) U`` and moments from ``Y^T diag(r) Y``, one matrix product
# per component each (as scikit-learn does), and no feature rows are formed.
# Measured on make_blobs data, 2 cores, time direct / features with n_jobs 1
# and 2: d=32 k=16 1.88 / 1.58, d=48 k=16 1.41 / 1.10, d=64 k=8 0.76 / 0.50,
# d=96 k=4 0.32 / 0.17.
DIRECT_SECOND_ORDER = 1540

# Once half the components or more take the direct form about their own means
# (see DenseKernel.prepare), all do, and no feature rows are formed: those
# components' log-densities and moments would otherwise be computed twice.
# Measured on standardised breast-cancer data (569 x 30), 'full', one E-step,
# k=2/4/6/8 with 1/2/5/7 such components: 0.86/1.06/1.51/1.88 ms ->
# 0.35/0.59/0.87/1.17 ms; wine (d=13) with 1 of 4 or 2 of 6 stays on feature
# rows (all-direct was 1.3x slower). Only from ALL_DIRECT_FROM_FEATURES
# features: below, the direct form costs more than the feature rows it saves.
# 2e4 rows, 'full', one thread, half the components narrow, all-direct against
# not: d=2 k=8 4.6 / 2.9 ms, d=5 k=4 3.3 / 2.7, d=8 k=4 3.9 / 4.0, d=8 k=8
# 8.1 / 10.6, d=10 k=6 7.8 / 12.4, d=13 k=4 6.9 / 15.7, d=16 k=4 11.4 / 20.2.
ALL_DIRECT_SHARE = 0.5
ALL_DIRECT_FROM_FEATURES = 8

# From this many values of ``x - mu`` per chunk, the direct form's moments
# ``Y^T diag(r) Y`` are formed as ``Z^T Z`` with ``Z = diag(r)^1/2 Y``: numpy
# hands a product of an array with its own transpose to BLAS's symmetric
# routine (syrk, half a general product's arithmetic), and releases the GIL
# while it runs, as scipy's own BLAS wrappers do not (the E-step's threads
# would queue behind them); below, the extra pass costs more than it saves.
# Per component and chunk, one thread, general / symmetric in us: 2048 rows
# x 32 features 117 / 103, x 64 316 / 251, 4096 x 96 1277 / 907. Whole fits
# ('full', 10 iterations from k-means, 2e4 rows, 1e4 at d=128), with the
# temporaries in the workspace too, before / after, one thread: d=64 k=8
# 0.99 / 0.90 s, d=96 k=4 0.92 / 0.81, d=128 k=4 0.70 / 0.60; two threads:
# 0.55 / 0.49, 0.51 / 0.45, 0.43 / 0.38. (scipy's own syrk, and trmm for
# (x - mu) U, took one thread's fits to 0.76 / 0.67 / 0.51 s, but hold the
# GIL: on two threads they were slower than before.)
DIRECT_SYMMETRIC_VALUES = 1 << 15

_NO_WEIGHTS = np.empty(0)

# EM iterations of one compiled call of DenseKernel.run at most.
RUN_ITERATIONS = 256


def uses_direct(covariance: Covariance, n_features: int) -> bool:
    """Whether the kernel works without feature rows (see DIRECT_SECOND_ORDER)."""
    return covariance.n_second_order(n_features) > DIRECT_SECOND_ORDER


def default_chunk_size(n_rows_features: int, n_components: int) -> int:
    """Rows per chunk so that the ``(q + k, m)`` float64 buffers stay in cache."""
    rows = _CHUNK_BYTES // (8 * (n_rows_features + n_components))
    return int(min(_MAX_CHUNK, max(_MIN_CHUNK, rows)))


@dataclass
class Prepared:
    """What one set of parameters means for the kernel, computed once per pass.

    ``w_matrix`` maps feature rows to weighted log-densities; ``local`` lists
    the components handled about their own means (with their centres, peak
    log-densities and precision Cholesky matrices); ``centers`` is the point
    each component's moments are taken about; ``unshifted`` says that no peak
    density can overflow ``exp``.
    """

    model: Mixture
    w_matrix: np.ndarray
    local: np.ndarray
    peaks: np.ndarray
    cholesky: np.ndarray | None
    centers: np.ndarray
    unshifted: bool
    ones: np.ndarray
    # The log-density weights in float32, where the compiled kernel computes
    # float32 rows in float32 (None: in float64).
    w_single: np.ndarray | None = None


@dataclass
class CompiledRun:
    """The outcome of :meth:`DenseKernel.run`: the lower bounds of the
    iterations it ran, and either (``stats`` None) the model of its last
    M-step, ``converged`` saying whether the run stopped on ``tol``, or the
    statistics of its last E-step, whose M-step it left to the caller (not
    the common case: a covariance not positive definite, one collapsed, one
    too narrow for the feature rows), and ``model`` the model that entered
    that iteration."""

    model: Mixture
    lower_bounds: list[float]
    stats: SuffStats | None
    converged: bool


# Bytes to which block buffers are aligned: a cache line. numpy aligns a
# small array to 16 bytes, so a 32-byte vector load from a buffer not on a
# 64-byte boundary straddles two cache lines every other load or so: the
# compiled E-step over 1e6 rows took 14-19% longer (ad hoc, one thread, k
# = 3, AMD EPYC, buffers 16 or 48 bytes past a line against on one: full
# 10.6 / 8.9 ms, diag 9.5 / 8.4, spherical 9.0 / 7.7), and which it got
# varied from one process to the next.
ALIGNMENT = 64


def aligned_empty(size: int, dtype=np.float64) -> np.ndarray:
    """An uninitialised 1-D array of ``size`` elements whose first lies on
    an :data:`ALIGNMENT`-byte boundary (a view into a slightly larger one)."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size + ALIGNMENT // itemsize, dtype=dtype)
    start = (-raw.ctypes.data % ALIGNMENT) // itemsize
    return raw[start : start + size]


class Workspace:
    """Per-thread buffers for one chunk, grown on first use to the largest
    size asked: feature rows (about the common centre, and about a
    component's own centre) and log-densities."""

    def __init__(self):
        self._buffers: dict[str, np.ndarray] = {}
        self._matrices: dict[tuple, np.ndarray] = {}

    def get(self, name: str, size: int, dtype=np.float64) -> np.ndarray:
        key = (name, dtype)
        buffer = self._buffers.get(key)
        if buffer is None or buffer.size < size:
            buffer = self._buffers[key] = aligned_empty(size, dtype)
            for old in [old for old in self._matrices if old[:2] == key]:
                del self._matrices[old]
        return buffer[:size]

    def matrix(self, name: str, rows: int, cols: int, dtype=np.float64) -> np.ndarray:
        """``get(name, rows * cols)`` as a (rows, cols) matrix, the view kept
        for the next call: the compiled kernels ask for the same few block
        buffers every E-step, where making views is a share of the cost."""
        view = self._matrices.get((name, dtype, rows, cols))
        if view is None:
            view = self.get(name, rows * cols, dtype).reshape(rows, cols)
            self._matrices[name, dtype, rows, cols] = view
        return view


def kernel_rows(x: np.ndarray, readonly: bool) -> np.ndarray:
    """Rows ``x`` as the compiled kernels take them: C-ordered (a copy if
    they are not), and read-only where the source's ``X`` is (``readonly``).
    numba compiles kernels for read-only rows apart, and a source loads
    those where its ``X`` is read-only (:func:`._engine.select`): writable
    rows (a copy, or the complete rows taken out of a chunk with missing
    values) would make numba compile anew, within a fit."""
    y = np.ascontiguousarray(x)
    if readonly and y.flags.writeable:
        y = y.view()
        y.flags.writeable = False
    return y


class DenseKernel:
    """The E-step on complete rows, one chunk at a time.

    Parameters
    ----------
    covariance : Covariance
        Operations of the covariance type.
    n_features, n_components : int
    center : ndarray of shape (n_features,)
        Fixed point the data are centred on before any product is formed; close
        to the data mean it keeps second moments accurate far from the origin.
    spread : float
        Typical squared distance of rows from ``center`` (the summed variance
        of the features), to judge when the expanded quadratic forms would lose
        precision.
    chunk_size : int
        Largest number of rows per chunk, to size the buffers.
    guarded : bool
        Whether rows may lie far enough out for their squares to overflow;
        then overflow is caught and such rows take the direct form.
    compiled : module or None
        The compiled kernels (see :mod:`._engine`) to run the feature-row
        form with, or ``None`` for numpy. Components handled about their own
        means and guarded statistics stay on numpy.
    dtype : dtype
        Of the rows. The compiled kernels compute float32 rows in float32
        (sums in float64) wherever every component lies within
        ``MAX_EXPANSION_FLOAT32`` (see :meth:`prepare`), as scikit-learn's
        float32 path and the GPU kernel do; ``center`` must then be a
        float32 value (:func:`._data.source_center`), so that rows are
        centred in float32 exactly about the point the statistics refer to.
        The numpy kernel computes every row in float64.
    max_expansion : float or None
        How far (``precision * |x - c|^2``) a component may reach before it
        takes the direct form about its own mean; ``None``:
        :data:`MAX_EXPANSION`.
    readonly : bool
        Whether ``compiled`` holds the kernels for read-only rows: every
        row handed to them is then made read-only (:func:`kernel_rows`).
    """

    def __init__(
        self,
        covariance: Covariance,
        n_features: int,
        n_components: int,
        center: np.ndarray,
        spread: float,
        chunk_size: int,
        guarded: bool = True,
        compiled=None,
        dtype=np.float64,
        max_expansion: float | None = None,
        readonly: bool = False,
    ):
        self.covariance = covariance
        self.readonly = readonly
        self.max_expansion = float(
            MAX_EXPANSION if max_expansion is None else max_expansion
        )
        self.n_features = n_features
        self.n_components = n_components
        self.direct = uses_direct(covariance, n_features)
        self.compiled = None if self.direct else compiled
        self.single = self.compiled is not None and np.dtype(dtype) == np.float32
        self.center = np.asarray(center, dtype=np.float64)
        self._center_single = self.center.astype(np.float32)
        self.spread = float(spread)
        self.q = covariance.n_features_total(n_features)
        self.floor_exp = n_features >= _FLOOR_FROM_FEATURES
        self.chunk_size = chunk_size
        self.guarded = guarded
        # What every pass shares, made once (prepare runs every EM iteration,
        # where a few microseconds per call add up on small data). Read only.
        self._common_centers = np.broadcast_to(self.center, (n_components, n_features))
        self._ones = np.ones(n_components)
        self.component_ids = np.arange(n_components)
        self._none = self.component_ids[:0]
        # What the compiled M-step made for the model it returned: prepare()
        # hands it out when asked for that model (see m_step).
        self._next: Prepared | None = None

    def workspace(self) -> Workspace:
        return Workspace()

    def prepare(self, model: Mixture) -> Prepared:
        """Log-density weights, and the components too narrow for them.

        Very narrow or ill-conditioned components, near or far from the data
        mean, get their log-densities from the direct form ``|(x - mu) U|^2``
        and their statistics about their own means (extra work per chunk, only
        for them), so they keep full precision.
        """
        following = self._next
        if following is not None and following.model is model:
            return following
        k = self.n_components
        log_weights = model.log_weights()
        peaks = model.log_peaks(log_weights)
        farthest = np.inf
        if self.direct:
            w_matrix = None
            local = self.component_ids
        else:
            centred = model.means - self.center
            w_matrix = self.covariance.log_prob_weights(
                log_weights, centred, model.precisions_cholesky, peaks
            )
            precision = self.covariance.largest_precision(model.precisions_cholesky, k)
            reach = np.add.reduce(centred * centred, axis=1)
            reach += self.spread
            reach *= precision
            # Nearly always none: one reduction to find out.
            local = self._none
            farthest = reach.max()
            if farthest > self.max_expansion:
                local = np.flatnonzero(reach > self.max_expansion)
                if (
                    len(local) >= ALL_DIRECT_SHARE * k
                    and self.n_features >= ALL_DIRECT_FROM_FEATURES
                ):
                    local = self.component_ids
        centers = self._common_centers
        cholesky = None
        if len(local):
            centers = centers.copy()
            centers[local] = model.means[local]
            cholesky = self.covariance.cholesky_matrices(
                model.precisions_cholesky, k, self.n_features
            )
        single = None
        if self.single and farthest <= MAX_EXPANSION_FLOAT32:
            single = self._single(w_matrix)
        return Prepared(
            model,
            w_matrix,
            local,
            peaks,
            cholesky,
            centers,
            bool(peaks.max() < SAFE_LOG),
            self._ones,
            single,
        )

    def m_step(
        self,
        stats: SuffStats,
        reg_covar: float | np.ndarray,
        feature_variances: np.ndarray | None,
    ) -> Mixture | None:
        """:func:`._em.params_from_stats` in one compiled call, which also
        makes what :meth:`prepare` would for the model it returns (kept for
        it); ``None`` where the compiled kernel does not run here or the step
        is not the common case (a covariance that is not positive definite,
        or collapsed): the caller then takes the numpy path, which deals
        with it. Equal to the numpy path to rounding (tested)."""
        self._next = None
        kernels, covariance = self.compiled, self.covariance
        if kernels is None or covariance.m_step_kernel is None:
            return None
        status, weights, means, covariances, cholesky, w_matrix, peaks = kernels.m_step(
            covariance.m_step_kernel,
            stats.moments,
            stats.centers,
            self.center,
            reg_covar,
            _NO_WEIGHTS if feature_variances is None else feature_variances,
            self.spread,
            self.q,
            MAX_EXPANSION_FLOAT32 if self.single else self.max_expansion,
        )
        if status in (kernels.M_STEP_ILL_DEFINED, kernels.M_STEP_COLLAPSED):
            return None
        final = covariance.shape(self.n_components, self.n_features)
        model = Mixture(
            weights,
            means,
            covariances.reshape(final),
            cholesky.reshape(final),
            covariance,
        )
        if status == kernels.M_STEP_OK:
            # Components too narrow for the feature rows (M_STEP_LOCAL; for
            # float32 rows, reaching beyond MAX_EXPANSION_FLOAT32) leave the
            # next E-step's preparation to prepare().
            self._next = self._prepared(
                model,
                w_matrix,
                peaks,
                self._single(w_matrix) if self.single else None,
            )
        return model

    def _prepared(self, model, w_matrix, peaks, w_single) -> Prepared:
        """What :meth:`prepare` makes for a model of the compiled M-step
        that every component can take on the feature rows."""
        return Prepared(
            model,
            w_matrix,
            self._none,
            peaks,
            None,
            self._common_centers,
            bool(peaks.max() < SAFE_LOG),
            self._ones,
            w_single,
        )

    def run(
        self,
        ws: Workspace,
        x: np.ndarray,
        w: np.ndarray | None,
        chunk_size: int,
        total_weight: float,
        prep: Prepared,
        *,
        lower_bound: float,
        max_iter: int,
        tol: float,
        reg_covar: float | np.ndarray,
        feature_variances: np.ndarray | None,
    ) -> CompiledRun | None:
        """EM iterations from ``prep``'s model in one compiled call
        (E-step and M-step in a loop, :func:`._numba_kernels.em_rows`), for
        all rows ``x`` (C- or F-contiguous) on one thread; ``None`` where the
        compiled kernel does not run them (no compiled kernel, components
        about their own means, guarded squares, or float32 rows whose
        arithmetic is float32 but whose model's log-density weights do not
        fit it).

        The same arithmetic, in the same order, as :meth:`stats` chunk by
        chunk and :meth:`m_step`, without a return to Python per iteration
        (on 1e4 rows of 2-D data, 'diag' and 'spherical', an iteration took
        12-21% less). It stops where :func:`._em.run_em` would (``tol``,
        ``max_iter``) or at an M-step that is not the common case, which it
        leaves to the caller (see :class:`CompiledRun`).
        """
        kernels, covariance = self.compiled, self.covariance
        if (
            kernels is None
            or covariance.m_step_kernel is None
            or len(prep.local)
            or self.guarded
            or (self.single and prep.w_single is None)
        ):
            return None
        k, d = self.n_components, self.n_features
        # The lower bounds of a call are a buffer of its iterations: bounded,
        # whatever max_iter is (run_em calls again for the rest).
        max_iter = min(max_iter, RUN_ITERATIONS)
        center, w_start, f, lp, scratch = self.compiled_operands(
            ws, prep, "scratch_block", 3
        )
        reg, b = kernels.em_buffers(
            covariance.m_step_kernel, reg_covar, k, d, self.q, max_iter, w_start.dtype
        )
        b["w_arith"][0] = w_start
        moments = np.zeros((k, self.q))
        # Every scalar in the type the kernels were compiled for (see
        # ._engine._compile): another type would compile anew, in the fit.
        # An F-ordered x (a DataFrame's values) as its C-ordered transpose.
        by_column = not x.flags.c_contiguous
        n_iter, status, last, log_likelihood = kernels.em_rows(
            x.T if by_column else x,
            by_column,
            _NO_WEIGHTS if w is None else w,
            int(chunk_size),
            center,
            self.center,
            int(covariance.feature_layout),
            f,
            lp,
            scratch,
            moments,
            reg,
            _NO_WEIGHTS if feature_variances is None else feature_variances,
            float(self.spread),
            float(MAX_EXPANSION_FLOAT32 if self.single else self.max_expansion),
            bool(covariance.m_step_kernel[1]),
            float(total_weight),
            float(tol),
            float(lower_bound),
            *(b[name] for name in kernels.EM_BUFFERS),
        )
        finished = status in (kernels.M_STEP_OK, kernels.EM_CONVERGED)
        model = prep.model
        if (n_iter if finished else n_iter - 1) > 0:  # an M-step was taken
            final = covariance.shape(k, d)
            model = Mixture(
                b["weights"][last].copy(),
                b["means"][last].copy(),
                b["covariances"][last].reshape(final).copy(),
                b["cholesky"][last].reshape(final).copy(),
                covariance,
            )
        bounds = b["bounds"][:n_iter].tolist()
        if not finished:
            stats = SuffStats(moments, prep.centers, log_likelihood, total_weight)
            return CompiledRun(model, bounds, stats, False)
        self._next = self._prepared(
            model,
            b["w_matrix"][last].copy(),
            b["peaks"][last].copy(),
            b["w_arith"][last].copy() if self.single else None,
        )
        return CompiledRun(model, bounds, None, status == kernels.EM_CONVERGED)

    @staticmethod
    def _single(w_matrix: np.ndarray) -> np.ndarray | None:
        """The log-density weights in float32, or ``None`` (float64
        arithmetic) where one does not fit in float32."""
        single = w_matrix.astype(np.float32)
        return single if np.isfinite(single).all() else None

    def compiled_operands(
        self, ws: Workspace, prep: Prepared, scratch: str, n_scratch: int
    ):
        """What the compiled kernels take for ``prep`` in the arithmetic it
        is computed in: the common centre, the log-density weights, and the
        block buffers (feature rows, log-densities, ``n_scratch`` rows of
        scratch named ``scratch``)."""
        block, w_matrix, center = self.compiled.BLOCK, prep.w_matrix, self.center
        dtype = np.float64
        if prep.w_single is not None:
            w_matrix, center, dtype = prep.w_single, self._center_single, np.float32
        return (
            center,
            w_matrix,
            ws.matrix("f_block", self.q, block, dtype),
            ws.matrix("lp_block", self.n_components, block, dtype),
            ws.matrix(scratch, n_scratch, block, dtype),
        )

    def features(
        self, ws: Workspace, x: np.ndarray, center: np.ndarray | None = None
    ) -> np.ndarray:
        """Feature rows ``[1, y, second-order(y)]`` of a chunk, shape ``(q, m)``.

        ``y = x - center`` (the common centre by default; ``center`` of shape
        ``(m, d)`` gives each row its own). Computed in float64 whatever the
        input dtype, so float32 data gets float64 statistics.
        """
        m, d = x.shape
        name = "f" if center is None else "f_local"
        center = self.center if center is None else center
        f = ws.get(name, self.q * m).reshape(self.q, m)
        f[0] = 1.0
        offset = center[:, None] if center.ndim == 1 else center.T
        np.subtract(x.T, offset, out=f[1 : d + 1])
        self.covariance.second_order_features(f[1 : d + 1], f[d + 1 :])
        return f

    def log_prob(
        self, ws: Workspace, x: np.ndarray, prep: Prepared
    ) -> tuple[np.ndarray, np.ndarray]:
        """Feature rows and ``log pi_k + log N_k(x)`` (k, m) of a chunk."""
        m = len(x)
        out = ws.get("log_prob", self.n_components * m).reshape(self.n_components, m)
        if self.direct or len(prep.local) == self.n_components:
            # No component takes the feature rows (a start from single rows,
            # say, is narrow everywhere): none are formed.
            for j in range(self.n_components):
                out[j] = self._direct(ws, x, prep, j)
            return None, out
        if not self.guarded:
            f = self.features(ws, x)
            log_prob = np.matmul(prep.w_matrix, f, out=out)
        else:
            # Overflow is caught below, by the NaN it leaves.
            with np.errstate(over="ignore", invalid="ignore"):
                f = self.features(ws, x)
                log_prob = np.matmul(prep.w_matrix, f, out=out)
        return f, self._mend(ws, x, prep, log_prob)

    def _mend(self, ws, x, prep, log_prob):
        """Log-densities of the components and rows the feature form cannot
        give accurately, replaced by the direct form."""
        for j in prep.local:
            log_prob[j] = self._direct(ws, x, prep, j)
        if self.guarded:
            bad = np.flatnonzero(np.isnan(prep.ones @ log_prob))
            # Squares of rows ~1e154 from the centre overflow in the features
            # (inf - inf); the direct form gives their true -inf.
            for j in range(self.n_components if len(bad) else 0):
                log_prob[j, bad] = self._direct(ws, x[bad], prep, j)
        return log_prob

    def inference_log_prob(
        self, ws: Workspace, x: np.ndarray, prep: Prepared
    ) -> np.ndarray:
        """``log pi_k + log N_k(x)`` (k, m) of a chunk, from the compiled
        kernel where there is one."""
        if self.compiled is None or len(prep.local) == self.n_components:
            return self.log_prob(ws, x, prep)[1]
        m = len(x)
        out = ws.get("log_prob", self.n_components * m).reshape(self.n_components, m)
        center, w_matrix, f, _, _ = self.compiled_operands(ws, prep, "scratch_block", 3)
        with np.errstate(over="ignore", invalid="ignore"):
            self.compiled.log_prob_rows(
                kernel_rows(x, self.readonly),
                center,
                w_matrix,
                self.covariance.feature_layout,
                out,
                f,
            )
        return self._mend(ws, x, prep, out)

    @staticmethod
    def _centred(ws: Workspace, x: np.ndarray, point: np.ndarray) -> np.ndarray:
        """``x - point`` in the workspace: a fresh temporary of a chunk's
        size, above malloc's mmap threshold, would come as new pages to
        fault in."""
        y = ws.get("direct", x.size).reshape(x.shape)
        np.subtract(x, point, out=y)
        return y

    def _direct(self, ws, x, prep, j):
        """``log pi_j + log N_j(x)`` from ``|(x - mu_j) U_j|^2``."""
        cholesky = prep.cholesky
        if cholesky is None:
            cholesky = self.covariance.cholesky_matrices(
                prep.model.precisions_cholesky, self.n_components, self.n_features
            )
        with np.errstate(over="ignore"):
            y = self._centred(ws, x, prep.model.means[j])
            z = ws.get("direct_product", x.size).reshape(x.shape)
            np.matmul(y, cholesky[j], out=z)
            return prep.peaks[j] - 0.5 * np.einsum("md,md->m", z, z)

    def posterior(
        self, ws: Workspace, x: np.ndarray, prep: Prepared
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features, responsibilities (k, m) and ``log p(x)`` (m,) of a chunk."""
        f, log_prob = self.log_prob(ws, x, prep)
        if prep.unshifted:
            log_norm = normalize_unshifted(log_prob, self.floor_exp)
            if log_norm is not None:
                return f, log_prob, log_norm
            f, log_prob = self.log_prob(ws, x, prep)
        return f, log_prob, normalize(log_prob, self.floor_exp)

    def moments(
        self,
        ws: Workspace,
        x: np.ndarray,
        f: np.ndarray,
        r: np.ndarray,
        prep: Prepared,
        out: np.ndarray,
    ) -> None:
        """Add ``r @ F.T`` (k, q) to ``out``, local components about their own
        centres.

        ``r`` holds the (weighted) responsibilities, ``f`` the chunk's feature
        rows about the common centre.
        """
        if f is None:  # the direct form (see log_prob)
            for j in range(self.n_components):
                self._add_direct_moments(ws, x, r[j], prep.centers[j], out[j])
            return
        moments = r @ f.T
        for j in prep.local:
            # Replace, never correct: the common-centre moments of these
            # components are exactly what lost the digits. About their own
            # centres from y^T diag(r) y, one matrix product, rather than
            # from feature rows about that centre: at d=32 those rows cost
            # as much to form as the whole common-centre E-step.
            moments[j] = 0.0
            self._add_direct_moments(ws, x, r[j], prep.centers[j], moments[j])
        out += moments

    def _add_direct_moments(self, ws, x, r, center, out):
        """Add ``[sum r, sum r y, second-order(sum r y y^T)]``, ``y = x - center``,
        to ``out`` without forming feature rows."""
        d = self.n_features
        y = self._centred(ws, x, center)
        out[0] += r.sum()
        out[1 : d + 1] += r @ y
        if y.size < DIRECT_SYMMETRIC_VALUES:
            scaled = ws.get("direct_product", x.size).reshape(d, len(x))
            np.multiply(y.T, r, out=scaled)
            out[d + 1 :] += self.covariance.second_order_of(scaled @ y)
            return
        # Responsibilities and weights are never negative.
        y *= np.sqrt(r)[:, None]
        out[d + 1 :] += self.covariance.second_order_of(y.T @ y)

    def stats(
        self,
        ws: Workspace,
        x: np.ndarray,
        w: np.ndarray | None,
        prep: Prepared,
        out: np.ndarray,
    ) -> float:
        """Add a chunk's moments to ``out`` (k, q); return its summed weighted
        log-likelihood."""
        if self.compiled is not None and not len(prep.local) and not self.guarded:
            center, w_matrix, f, lp, scratch = self.compiled_operands(
                ws, prep, "scratch_block", 3
            )
            return self.compiled.stats_rows(
                kernel_rows(x, self.readonly),
                _NO_WEIGHTS if w is None else w,
                center,
                w_matrix,
                self.covariance.feature_layout,
                out,
                f,
                lp,
                scratch,
            )
        f, resp, log_norm = self.posterior(ws, x, prep)
        if w is not None:
            resp *= w
        self.moments(ws, x, f, resp, prep, out)
        return float(log_norm.sum() if w is None else w @ log_norm)

    def stats_many(
        self,
        ws: Workspace,
        x: np.ndarray,
        w: np.ndarray | None,
        w_stack: np.ndarray,
        unshifted: bool,
        out: np.ndarray,
    ) -> np.ndarray:
        """:meth:`stats` of a chunk under R models at once: one set of
        feature rows and two matrix products for all of them.

        ``w_stack`` (k R, q) holds the models' log-density weights stacked
        component-major (row ``j R + r`` is model r's component j), so that
        the log-densities, seen as (k, R m), are normalised over their
        leading axis by the same functions as one model's; ``out`` (k R, q)
        gets the moments added in that order. ``unshifted``: no model's peak
        can overflow ``exp``. Only for complete rows, unguarded, with no
        component about its own mean. Returns the R summed (weighted)
        log-likelihoods.
        """
        m, rows = len(x), len(w_stack)
        k = self.n_components
        n_models = rows // k
        f = self.features(ws, x)
        log_prob = ws.get("log_prob_many", rows * m).reshape(rows, m)
        np.matmul(w_stack, f, out=log_prob)
        flat = log_prob.reshape(k, n_models * m)
        log_norm = normalize_unshifted(flat, self.floor_exp) if unshifted else None
        if log_norm is None:
            np.matmul(w_stack, f, out=log_prob)
            log_norm = normalize(flat, self.floor_exp)
        log_norm = log_norm.reshape(n_models, m)
        if w is not None:
            log_prob *= w
        out += log_prob @ f.T
        return log_norm.sum(axis=1) if w is None else log_norm @ w

    def given_moments(
        self,
        ws: Workspace,
        x: np.ndarray,
        r: np.ndarray,
        out: np.ndarray,
        center: np.ndarray | None = None,
    ) -> None:
        """Add moments about ``center`` (the common centre by default; one
        per row, ``(m, d)``, outside the direct form) for given
        responsibilities (k, m) to ``out``."""
        if self.direct:
            for j, row in enumerate(r):
                point = self.center if center is None else center
                self._add_direct_moments(ws, x, row, point, out[j])
            return
        out += r @ self.features(ws, x, center).T
