"""Covariance types: the only module that knows how they differ.

Every covariance type is described by the same few operations, so the EM engine
never branches on the type:

* which *second-order features* of a centred row it needs (``y_a * y_b`` for
  a <= b for full/tied, ``y_a ** 2`` for diag, ``sum_a y_a ** 2`` for spherical);
  the sufficient statistics of a component are the responsibility-weighted sums of
  the features ``[1, y, second-order(y)]``;
* how to turn those summed statistics into covariances;
* how to turn parameters into the linear map from features to the per-component
  weighted log-density (``log pi_k + log N(y | mu_k, Sigma_k)`` is a linear
  function of the features, so one matrix product evaluates all components);
* precision Cholesky factors, log-determinants, shapes, parameter counts, sampling.

The conventions (shapes, ``precisions_cholesky_`` as the upper-triangular ``U``
with ``U U^T = Sigma^-1``) are scikit-learn's, so fitted attributes are
interchangeable with ``sklearn.mixture.GaussianMixture``.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
from scipy import linalg

LOG_2PI = math.log(2.0 * math.pi)

ILL_DEFINED_MESSAGE = (
    "Fitting the mixture model failed because some components have ill-defined "
    "empirical covariance (for instance caused by singleton or collapsed samples). "
    "Try to decrease the number of components, increase reg_covar, or scale the "
    "input data."
)


class IllDefinedCovariance(ValueError):
    """Some covariances are not positive definite (collapsed components).

    ``components`` is a boolean mask of the offending components; every one of
    them for a shared ('tied') covariance.
    """

    def __init__(self, components: np.ndarray):
        super().__init__(ILL_DEFINED_MESSAGE)
        self.components = components


# Layouts of the second-order feature rows, for compiled kernels that form
# them (see ``second_order_features``): the products y_a y_b with a <= b,
# the squares y_a^2, or their sum.
PAIRS, SQUARES, SUM_OF_SQUARES = 0, 1, 2


class Covariance:
    """Operations that depend on the covariance type.

    Subclasses are stateless: every method takes the arrays it works on.
    """

    name: str = ""
    feature_layout: int = -1
    #: The compiled M-step of the type (:mod:`._numba_kernels`): the kernel's
    #: name and its variant flag (one covariance shared by all components;
    #: one variance per component).
    m_step_kernel: tuple[str, bool] | None = None

    # -- features --
    def n_second_order(self, n_features: int) -> int:
        """Number of second-order feature rows."""
        raise NotImplementedError

    def second_order_features(self, y: np.ndarray, out: np.ndarray) -> None:
        """Write the second-order features of centred rows ``y`` (d, m) into ``out``."""
        raise NotImplementedError

    def second_order_of(self, matrix: np.ndarray) -> np.ndarray:
        """The second-order features' counterpart of (a stack of) (d, d) matrices.

        Summing ``second_order_features`` of rows ``y`` gives this of
        ``sum y y^T``; used to add conditional covariances of missing values
        and to move statistics to another centre. Shape ``(..., n_second)``.
        """
        raise NotImplementedError

    def second_order_matrix(self, second: np.ndarray, n_features: int) -> np.ndarray:
        """A (..., d, d) matrix whose :meth:`second_order_of` is ``second``.

        Exact for 'full'/'tied'; for 'diag' the off-diagonal and for
        'spherical' the split of the trace are not in the statistics, so they
        come out as zero and as an equal share: harmless wherever the
        components' covariances are diagonal, which is all these types have.
        """
        raise NotImplementedError

    def restrict(self, covariances: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """Covariances of the marginal distribution of the ``observed`` features."""
        raise NotImplementedError

    # -- statistics -> parameters --
    def covariances_from_moments(
        self,
        nk: np.ndarray,
        centred_means: np.ndarray,
        second: np.ndarray,
        reg_covar: float,
    ) -> np.ndarray:
        """Covariances from summed second-order features.

        ``second`` holds the responsibility-weighted sums of the second-order
        features about the fixed centre, ``(k, n_second_order)``; ``centred_means``
        the component means minus the centre. ``reg_covar`` is a scalar or one
        value per feature, added to the variances.
        """
        raise NotImplementedError

    def precisions_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        """Upper-triangular ``U`` with ``U @ U.T`` the precision, as in sklearn."""
        raise NotImplementedError

    # -- variational inference (Wishart posteriors) --
    def prior_shape(self, n_features: int) -> tuple[int, ...]:
        """Shape of a ``covariance_prior``: one matrix in this type's form."""
        raise NotImplementedError

    def of_matrix(self, matrix: np.ndarray) -> np.ndarray | float:
        """One full (d, d) matrix in this type's form (a prior's default)."""
        raise NotImplementedError

    def wishart_posterior(
        self,
        covariance_prior,
        degrees_of_freedom_prior: float,
        nk: np.ndarray,
        covariances: np.ndarray,
        deviations: np.ndarray,
        shrinkage: np.ndarray,
    ) -> tuple[np.ndarray | float, np.ndarray]:
        """Degrees of freedom and covariances (scale over degrees of freedom)
        of the Wishart posteriors, as scikit-learn's BayesianGaussianMixture.

        ``covariances`` are the M-step's (``reg_covar`` included),
        ``deviations`` the component means minus the prior mean (k, d) and
        ``shrinkage`` the prior's share of each mean's precision,
        ``mean_precision_prior / mean_precision`` (k,).
        """
        raise NotImplementedError

    # -- parameters -> log-density weights --
    def precision_terms(
        self, precisions_cholesky: np.ndarray, centred_means: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Coefficients of the Mahalanobis term ``-(y - m)^T P (y - m) / 2``.

        Returns ``(second, linear, constant)`` of shapes ``(k, n_second_order)``,
        ``(k, d)`` and ``(k,)`` such that the term equals
        ``second @ f2(y) + linear @ y + constant``.
        """
        raise NotImplementedError

    def cholesky_matrices(
        self, precisions_cholesky: np.ndarray, n_components: int, n_features: int
    ) -> np.ndarray:
        """Precision Cholesky factors as a ``(k, d, d)`` stack of matrices."""
        raise NotImplementedError

    def largest_precision(
        self,
        precisions_cholesky: np.ndarray,
        n_components: int,
        scale: np.ndarray | None = None,
    ) -> np.ndarray:
        """Upper bound of each component's largest precision eigenvalue, (k,).

        With ``scale`` (d,), of ``D^1/2 P D^1/2`` for ``D = diag(scale)``: the
        precision in units of each feature's own variance, so that a narrow
        feature is judged against its own spread.
        """
        raise NotImplementedError

    def log_det_cholesky(self, precisions_cholesky: np.ndarray, n_features: int):
        """``log det U`` per component: half the log-determinant of the precision."""
        raise NotImplementedError

    # -- conversions, shapes, counting --
    def precisions_from_cholesky(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of ``covariances_``/``precisions_`` for this type."""
        raise NotImplementedError

    def check_precisions(self, precisions: np.ndarray) -> None:
        """Raise ``ValueError`` unless ``precisions`` are valid for this type."""
        raise NotImplementedError

    def n_covariance_parameters(self, n_components: int, n_features: int) -> int:
        raise NotImplementedError

    def full_covariances(
        self, covariances: np.ndarray, n_components: int, n_features: int
    ) -> np.ndarray:
        """Covariances as a ``(k, d, d)`` stack (for plotting and sampling)."""
        raise NotImplementedError

    def sample(self, rng, means, covariances, counts) -> np.ndarray:
        """Draw ``counts[k]`` rows from each component, stacked in component order."""
        raise NotImplementedError

    # -- shared helpers --
    def n_features_total(self, n_features: int) -> int:
        """Number of feature rows ``[1, y, second-order(y)]``."""
        return 1 + n_features + self.n_second_order(n_features)

    def log_prob_weights(
        self,
        log_weights: np.ndarray,
        centred_means: np.ndarray,
        precisions_cholesky: np.ndarray,
        log_peaks: np.ndarray | None = None,
    ) -> np.ndarray:
        """Matrix ``W`` (k, q) with ``W @ [1, y, f2(y)] = log pi_k + log N_k(y)``.

        ``log_peaks``, ``log pi_k + log N_k(mu_k)``, where the caller has
        them already (see :meth:`.Mixture.log_peaks`): they are the constant
        term but for the Mahalanobis part.
        """
        n_features = centred_means.shape[1]
        second, linear, constant = self.precision_terms(
            precisions_cholesky, centred_means
        )
        if log_peaks is None:
            constant = (
                constant
                + self.log_det_cholesky(precisions_cholesky, n_features)
                - 0.5 * n_features * LOG_2PI
                + log_weights
            )
        else:
            constant = constant + log_peaks
        return np.concatenate([constant[:, None], linear, second], axis=1)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


@lru_cache(maxsize=64)
def _triu(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """Upper-triangle indices (a <= b), the order of the second-order features.

    Cached, so kept small: int32 halves what d ~ 1000 would hold.
    """
    rows, cols = np.triu_indices(n_features)
    return rows.astype(np.int32), cols.astype(np.int32)


@lru_cache(maxsize=64)
def _flat_upper(n_features: int) -> np.ndarray:
    """Indices of the upper triangle (a <= b, the order of the second-order
    features) in a flattened (d * d) matrix: one ``take`` with them costs a
    fraction of two-axis fancy indexing on the small matrices of a mixture."""
    rows, cols = _triu(n_features)
    return rows * np.int32(n_features) + cols


@lru_cache(maxsize=16)
def _symmetric_index(n_features: int) -> np.ndarray:
    """Per entry of a flattened (d * d) symmetric matrix, the second-order
    feature that holds it: ``take`` with it unpacks a stack in one call.
    Used up to ``_STACK_FEATURES`` features (it is d * d integers)."""
    rows, cols = _triu(n_features)
    packed = np.empty((n_features, n_features), dtype=np.intp)
    packed[rows, cols] = packed[cols, rows] = np.arange(len(rows))
    return packed.ravel()


def _row_dots(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``sum_a a[k, a] b[k, a]`` per row: ``einsum('ka,ka->k')`` at a third of
    its call overhead."""
    return np.add.reduce(a * b, axis=1)


# Up to this many features, covariances are formed with (k, d, d)
# temporaries in a few whole-stack calls; above, one component at a time
# (call overhead no longer matters, the temporaries' memory would).
_STACK_FEATURES = 64


@lru_cache(maxsize=64)
def _pack_scale(n_features: int) -> np.ndarray:
    """Coefficient of ``P_ab`` for feature ``y_a y_b`` in ``-y^T P y / 2``."""
    rows, cols = _triu(n_features)
    return np.where(rows == cols, -0.5, -1.0)


def _check_spd(matrix: np.ndarray, what: str) -> None:
    """Raise unless ``matrix`` (or every matrix of a stack) is symmetric
    positive definite."""
    transposed = np.swapaxes(matrix, -1, -2)
    # np.allclose's test (rtol 1e-5, atol 1e-8) for finite values, which is
    # all that gets here (initial values are checked finite): allclose costs
    # ~20 us of Python overhead per call. NaN fails it too.
    symmetric = (abs(matrix - transposed) <= 1e-8 + 1e-5 * abs(transposed)).all()
    if not symmetric or np.any(np.linalg.eigvalsh(matrix) <= 0.0):
        raise ValueError(f"'{what} precision' should be symmetric, positive-definite")


def _check_positive(values: np.ndarray, what: str) -> None:
    if np.any(values <= 0.0):
        raise ValueError(f"'{what} precision' should be positive")


def _chol_upper_of_inverse(covariances: np.ndarray) -> np.ndarray:
    """sklearn's precision Cholesky ``inv(chol(Sigma)).T`` of a stack (k, d, d).

    LAPACK's Cholesky and triangular inverse, called directly per matrix: on
    the small matrices of a mixture, call overhead dominates, and the raw
    LAPACK wrappers are several times cheaper to call than
    ``scipy.linalg.cholesky``/``solve_triangular`` or even a batched
    ``np.linalg.cholesky``. Raises :class:`IllDefinedCovariance` naming every
    matrix that is not positive definite.
    """
    finite = np.isfinite(covariances)
    if not finite.all():
        # Name every offending matrix, not only the non-finite ones.
        bad = ~finite.all(axis=(1, 2))
        bad |= np.array(
            [not _is_positive_definite(c) for c in np.nan_to_num(covariances)]
        )
        raise IllDefinedCovariance(bad)
    bad = None
    # Large matrices in place, with no temporary: there the memory matters,
    # not the calls.
    small = covariances.shape[-1] <= _STACK_FEATURES
    potrf, trtri = linalg.lapack.dpotrf, linalg.lapack.dtrtri
    out = np.empty_like(covariances)
    for k, covariance in enumerate(covariances):
        if small:
            # The transpose of a symmetric matrix is itself, and a
            # Fortran-ordered view that LAPACK takes as it is: its upper
            # factor is L^T, whose inverse inv(L)^T is what we want.
            factor, info = potrf(covariance.T, lower=0, clean=1)
            if info == 0:
                inverse, info = trtri(factor, lower=0, overwrite_c=1)
                out[k] = inverse
        else:
            # In place: the transposed view of out[k] is Fortran-ordered, so
            # LAPACK factors and inverts it there, and out[k] ends up holding
            # inv(L).T with no temporary matrix.
            work = out[k].T
            np.copyto(out[k], covariance)
            factor, info = potrf(work, lower=1, clean=1, overwrite_a=1)
            if info == 0:
                inverse, info = trtri(factor, lower=1, overwrite_c=1)
                if not np.shares_memory(inverse, out[k]):
                    out[k] = inverse.T
        if info != 0:
            if bad is None:
                bad = np.zeros(len(covariances), dtype=bool)
            bad[k] = True

    if bad is not None:
        raise IllDefinedCovariance(bad)
    return out


def _is_positive_definite(matrix: np.ndarray) -> bool:
    try:
        np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        return False
    return True


def _chol_upper_of_precision(precision: np.ndarray) -> np.ndarray:
    """Upper ``U`` with ``U U^T = precision``, via the flipped lower factor."""
    flipped = precision[::-1, ::-1]
    return linalg.cholesky(flipped, lower=True, check_finite=False)[::-1, ::-1]


class _MatrixCovariance(Covariance):
    """Shared maths of 'full' and 'tied': second-order features ``y_a y_b``, a <= b."""

    feature_layout = PAIRS

    def prior_shape(self, n_features):
        return (n_features, n_features)

    def of_matrix(self, matrix):
        return matrix

    def n_second_order(self, n_features):
        return n_features * (n_features + 1) // 2

    def second_order_features(self, y, out):
        # One row block per leading feature keeps memory traffic to a minimum
        # (no (pairs, m) fancy-index temporaries); the loop is over features.
        start = 0
        d = y.shape[0]
        for a in range(d):
            np.multiply(y[a], y[a:], out=out[start : start + d - a])
            start += d - a

    def second_order_of(self, matrix):
        rows, cols = _triu(matrix.shape[-1])
        return matrix[..., rows, cols]

    def second_order_matrix(self, second, n_features):
        return self._unpack(second, n_features)

    @staticmethod
    def _unpack(packed: np.ndarray, n_features: int) -> np.ndarray:
        """(..., d(d+1)/2) upper-triangular rows -> (..., d, d) symmetric."""
        rows, cols = _triu(n_features)
        out = np.empty((*packed.shape[:-1], n_features, n_features))
        out[..., rows, cols] = packed
        out[..., cols, rows] = packed
        return out

    @staticmethod
    def _pack_quadratic(precisions: np.ndarray) -> np.ndarray:
        """Coefficients of ``y_a y_b`` (a <= b) in ``-y^T P y / 2``."""
        n_features = precisions.shape[-1]
        flat = precisions.reshape(*precisions.shape[:-2], n_features * n_features)
        return _pack_scale(n_features) * flat.take(_flat_upper(n_features), axis=-1)

    def check_precisions(self, precisions):
        # The whole stack at once: per-matrix calls cost more than the work.
        _check_spd(precisions, self.name)

    def precisions_from_cholesky(self, precisions_cholesky):
        return precisions_cholesky @ precisions_cholesky.swapaxes(-1, -2)

    def covariances_from_precisions(self, precisions):
        return np.linalg.inv(precisions)


class FullCovariance(_MatrixCovariance):
    """Each component has its own general covariance matrix."""

    name = "full"
    m_step_kernel = ("m_step_matrix", False)

    def covariances_from_moments(self, nk, centred_means, second, reg_covar):
        k, n_features = centred_means.shape
        if n_features > _STACK_FEATURES:
            cov = self._unpack(second, n_features)
            cov /= nk[:, None, None]
            # One component at a time: no (k, d, d) temporary.
            for matrix, mean in zip(cov, centred_means, strict=True):
                matrix -= np.outer(mean, mean)
            cov[:, np.arange(n_features), np.arange(n_features)] += reg_covar
            return cov
        # The same arithmetic, entry for entry, in a few whole-stack calls.
        cov = np.take(second, _symmetric_index(n_features), axis=1)
        cov /= nk[:, None]
        outer = centred_means[:, :, None] * centred_means[:, None, :]
        cov -= outer.reshape(k, n_features * n_features)
        # The diagonal of each flattened matrix, as a strided view.
        cov[:, :: n_features + 1] += reg_covar
        return cov.reshape(k, n_features, n_features)

    def precisions_cholesky(self, covariances):
        return _chol_upper_of_inverse(covariances)

    def precision_terms(self, precisions_cholesky, centred_means):
        precisions = self.precisions_from_cholesky(precisions_cholesky)
        linear = np.matmul(precisions, centred_means[:, :, None])[:, :, 0]
        constant = -0.5 * _row_dots(linear, centred_means)
        return self._pack_quadratic(precisions), linear, constant

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.add.reduce(np.log(precisions_cholesky.diagonal(0, 1, 2)), axis=1)

    def largest_precision(self, precisions_cholesky, n_components, scale=None):
        squares = precisions_cholesky**2
        if scale is not None:
            squares = squares * scale[:, None]
        return squares.sum(axis=(1, 2))

    def cholesky_matrices(self, precisions_cholesky, n_components, n_features):
        return precisions_cholesky

    def cholesky_from_precisions(self, precisions):
        if precisions.shape[-1] <= _STACK_FEATURES:
            # One batched factorisation of the flipped stack: per-matrix
            # calls cost more than the work at this size.
            flipped = precisions[:, ::-1, ::-1]
            return np.linalg.cholesky(flipped)[:, ::-1, ::-1]
        return np.stack([_chol_upper_of_precision(p) for p in precisions])

    def shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def wishart_posterior(self, prior, dof_prior, nk, covariances, deviations, shrink):
        dof = dof_prior + nk
        scale = prior + nk[:, None, None] * covariances
        scale += (nk * shrink)[:, None, None] * (
            deviations[:, :, None] * deviations[:, None, :]
        )
        return dof, scale / dof[:, None, None]

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def full_covariances(self, covariances, n_components, n_features):
        return covariances

    def restrict(self, covariances, observed):
        return covariances[:, observed][:, :, observed]

    def sample(self, rng, means, covariances, counts):
        return np.vstack(
            [
                rng.multivariate_normal(mean, cov, int(count))
                for mean, cov, count in zip(means, covariances, counts, strict=False)
            ]
        )


class TiedCovariance(_MatrixCovariance):
    """All components share one general covariance matrix."""

    name = "tied"
    m_step_kernel = ("m_step_matrix", True)

    def covariances_from_moments(self, nk, centred_means, second, reg_covar):
        n_features = centred_means.shape[1]
        # Within-component scatter from each component's own statistics.
        # scikit-learn uses X^T X of *all* rows instead; the two agree whenever
        # responsibilities sum to one, but differ for the single-row seeds of
        # 'k-means++'/'random_from_data', where sklearn's start depends on the
        # coordinate origin and often collapses every mean onto the data mean.
        summed = np.add.reduce(second, axis=0)
        if n_features <= _STACK_FEATURES:
            scatter = np.take(summed, _symmetric_index(n_features))
            scatter = scatter.reshape(n_features, n_features)
        else:
            scatter = self._unpack(summed, n_features)
        scatter -= (nk[:, None] * centred_means).T @ centred_means
        cov = scatter / nk.sum()
        cov.reshape(-1)[:: n_features + 1] += reg_covar
        return cov

    def precisions_cholesky(self, covariances):
        # One shared matrix: if it is singular, every component is.
        return _chol_upper_of_inverse(covariances[None])[0]

    def precision_terms(self, precisions_cholesky, centred_means):
        precision = self.precisions_from_cholesky(precisions_cholesky)
        linear = centred_means @ precision
        constant = -0.5 * _row_dots(linear, centred_means)
        packed = self._pack_quadratic(precision)
        second = np.broadcast_to(packed, (len(centred_means), packed.size))
        return second, linear, constant

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.log(np.diagonal(precisions_cholesky)).sum()

    def largest_precision(self, precisions_cholesky, n_components, scale=None):
        squares = precisions_cholesky**2
        if scale is not None:
            squares = squares * scale[:, None]
        return np.full(n_components, squares.sum())

    def cholesky_matrices(self, precisions_cholesky, n_components, n_features):
        return np.broadcast_to(
            precisions_cholesky, (n_components, n_features, n_features)
        )

    def cholesky_from_precisions(self, precisions):
        return _chol_upper_of_precision(precisions)

    def shape(self, n_components, n_features):
        return (n_features, n_features)

    def wishart_posterior(self, prior, dof_prior, nk, covariances, deviations, shrink):
        k = len(nk)
        dof = dof_prior + nk.sum() / k
        scale = prior + covariances * nk.sum() / k
        scale += ((nk * shrink) * deviations.T) @ deviations / k
        return dof, scale / dof

    def n_covariance_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def full_covariances(self, covariances, n_components, n_features):
        return np.broadcast_to(covariances, (n_components, *covariances.shape))

    def restrict(self, covariances, observed):
        return covariances[observed][:, observed]

    def sample(self, rng, means, covariances, counts):
        return np.vstack(
            [
                rng.multivariate_normal(mean, covariances, int(count))
                for mean, count in zip(means, counts, strict=False)
            ]
        )


class _VectorCovariance(Covariance):
    """Shared maths of 'diag' and 'spherical': precisions stored as ``1/sigma``."""

    def precisions_from_cholesky(self, precisions_cholesky):
        return precisions_cholesky**2

    def cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions)

    def covariances_from_precisions(self, precisions):
        return 1.0 / precisions

    def precisions_cholesky(self, covariances):
        valid = (covariances > 0.0) & np.isfinite(covariances)
        if not valid.all():
            bad = ~valid if valid.ndim == 1 else ~valid.all(axis=1)
            raise IllDefinedCovariance(bad)
        return 1.0 / np.sqrt(covariances)

    def check_precisions(self, precisions):
        _check_positive(precisions, self.name)

    def sample(self, rng, means, covariances, counts):
        n_features = means.shape[1]
        return np.vstack(
            [
                mean + rng.standard_normal(size=(int(count), n_features)) * np.sqrt(cov)
                for mean, cov, count in zip(means, covariances, counts, strict=False)
            ]
        )


class DiagCovariance(_VectorCovariance):
    """Each component has its own diagonal covariance matrix."""

    name = "diag"
    m_step_kernel = ("m_step_vector", False)
    feature_layout = SQUARES

    def prior_shape(self, n_features):
        return (n_features,)

    def of_matrix(self, matrix):
        return np.diagonal(matrix).copy()

    def wishart_posterior(self, prior, dof_prior, nk, covariances, deviations, shrink):
        dof = dof_prior + nk
        scale = prior + nk[:, None] * (covariances + shrink[:, None] * deviations**2)
        return dof, scale / dof[:, None]

    def n_second_order(self, n_features):
        return n_features

    def second_order_features(self, y, out):
        np.multiply(y, y, out=out)

    def second_order_of(self, matrix):
        return np.diagonal(matrix, axis1=-2, axis2=-1).copy()

    def second_order_matrix(self, second, n_features):
        out = np.zeros((*second.shape[:-1], n_features, n_features))
        diagonal = np.arange(n_features)
        out[..., diagonal, diagonal] = second
        return out

    def restrict(self, covariances, observed):
        return covariances[:, observed]

    def covariances_from_moments(self, nk, centred_means, second, reg_covar):
        return second / nk[:, None] - centred_means**2 + reg_covar

    def precision_terms(self, precisions_cholesky, centred_means):
        precisions = precisions_cholesky**2
        linear = precisions * centred_means
        constant = -0.5 * _row_dots(linear, centred_means)
        return -0.5 * precisions, linear, constant

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.log(precisions_cholesky).sum(axis=1)

    def largest_precision(self, precisions_cholesky, n_components, scale=None):
        squares = precisions_cholesky**2
        if scale is not None:
            squares = squares * scale
        return squares.max(axis=1)

    def cholesky_matrices(self, precisions_cholesky, n_components, n_features):
        return np.stack([np.diag(u) for u in precisions_cholesky])

    def shape(self, n_components, n_features):
        return (n_components, n_features)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components * n_features

    def full_covariances(self, covariances, n_components, n_features):
        return np.stack([np.diag(c) for c in covariances])


class SphericalCovariance(_VectorCovariance):
    """Each component has its own single variance."""

    name = "spherical"
    m_step_kernel = ("m_step_vector", True)
    feature_layout = SUM_OF_SQUARES

    def prior_shape(self, n_features):
        return ()

    def of_matrix(self, matrix):
        return float(np.diagonal(matrix).mean())

    def wishart_posterior(self, prior, dof_prior, nk, covariances, deviations, shrink):
        dof = dof_prior + nk
        scale = prior + nk * (covariances + shrink * np.mean(deviations**2, axis=1))
        return dof, scale / dof

    def n_second_order(self, n_features):
        return 1

    def second_order_features(self, y, out):
        np.einsum("am,am->m", y, y, out=out[0])

    def second_order_of(self, matrix):
        return np.trace(matrix, axis1=-2, axis2=-1)[..., None]

    def second_order_matrix(self, second, n_features):
        return second[..., None] / n_features * np.eye(n_features)

    def restrict(self, covariances, observed):
        return covariances

    def covariances_from_moments(self, nk, centred_means, second, reg_covar):
        n_features = centred_means.shape[1]
        mean_square = second[:, 0] / nk - (centred_means**2).sum(axis=1)
        # A per-feature regularisation (a vector) acts through its mean.
        return mean_square / n_features + np.mean(reg_covar)

    def precision_terms(self, precisions_cholesky, centred_means):
        precisions = precisions_cholesky**2
        linear = precisions[:, None] * centred_means
        constant = -0.5 * _row_dots(linear, centred_means)
        return -0.5 * precisions[:, None], linear, constant

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return n_features * np.log(precisions_cholesky)

    def largest_precision(self, precisions_cholesky, n_components, scale=None):
        squares = precisions_cholesky**2
        return squares if scale is None else squares * scale.max()

    def cholesky_matrices(self, precisions_cholesky, n_components, n_features):
        return precisions_cholesky[:, None, None] * np.eye(n_features)

    def shape(self, n_components, n_features):
        return (n_components,)

    def n_covariance_parameters(self, n_components, n_features):
        return n_components

    def full_covariances(self, covariances, n_components, n_features):
        return covariances[:, None, None] * np.eye(n_features)


COVARIANCE_TYPES: dict[str, Covariance] = {
    cls.name: cls()
    for cls in (FullCovariance, TiedCovariance, DiagCovariance, SphericalCovariance)
}


def get_covariance(covariance_type: str) -> Covariance:
    """The operations object of ``covariance_type``."""
    try:
        return COVARIANCE_TYPES[covariance_type]
    except KeyError:
        raise ValueError(
            f"covariance_type must be one of {sorted(COVARIANCE_TYPES)}, "
            f"got {covariance_type!r}"
        ) from None
