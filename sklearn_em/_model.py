"""The fitted model as a value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._covariance import LOG_2PI, Covariance


@dataclass(frozen=True)
class Mixture:
    """A Gaussian mixture (fitted or initial), in scikit-learn's conventions.

    Always float64; the estimator casts to the input's dtype at the end.

    Attributes
    ----------
    weights : ndarray of shape (n_components,)
    means : ndarray of shape (n_components, n_features)
    covariances : ndarray or None
        Shape per covariance type, as ``covariances_`` in scikit-learn;
        ``None`` where only the E-step needs the model (they are then derived
        from the precisions on demand, see :meth:`without_covariances`).
    precisions_cholesky : ndarray
        Same shape as ``covariances``: upper-triangular ``U`` with ``U U^T``
        the precision.
    covariance : Covariance
        The operations of the model's covariance type.
    log_scales : ndarray of shape (n_components,) or None
        Per-component log factors that take the place of ``log weights`` in
        the E-step, where they need not be log-probabilities: variational
        inference's expected log-weights with its Wishart terms. ``None``:
        ``log(weights)``.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray | None
    precisions_cholesky: np.ndarray
    covariance: Covariance
    log_scales: np.ndarray | None = None

    @property
    def n_components(self) -> int:
        return self.means.shape[0]

    @property
    def n_features(self) -> int:
        return self.means.shape[1]

    @property
    def precisions(self) -> np.ndarray:
        return self.covariance.precisions_from_cholesky(self.precisions_cholesky)

    def log_weights(self) -> np.ndarray:
        """``log pi_k``; ``-inf`` for a component of weight 0 (or ``log_scales``)."""
        if self.log_scales is not None:
            return self.log_scales
        if self.weights.all():
            # The common case, without the cost of an errstate context.
            return np.log(self.weights)
        with np.errstate(divide="ignore"):
            return np.log(self.weights)

    def log_peaks(self, log_weights: np.ndarray | None = None) -> np.ndarray:
        """``log pi_k + log N_k(mu_k)``: each weighted density at its mean."""
        return (
            (self.log_weights() if log_weights is None else log_weights)
            + self.covariance.log_det_cholesky(
                self.precisions_cholesky, self.n_features
            )
            - 0.5 * self.n_features * LOG_2PI
        )

    def covariance_array(self) -> np.ndarray:
        """``covariances``, derived from the precisions where not kept."""
        if self.covariances is not None:
            return self.covariances
        return self.covariance.covariances_from_precisions(self.precisions)

    def without_covariances(self) -> Mixture:
        """The same model holding only what an E-step needs: at large d the
        covariances are as large as everything else together."""
        # Not dataclasses.replace: this runs every EM iteration, and the
        # constructor is a few times cheaper to call.
        return Mixture(
            self.weights,
            self.means,
            None,
            self.precisions_cholesky,
            self.covariance,
            self.log_scales,
        )

    def full_covariances(self) -> np.ndarray:
        """Covariances as a ``(k, d, d)`` stack."""
        return self.covariance.full_covariances(
            self.covariance_array(), self.n_components, self.n_features
        )

    def full_precisions(self) -> np.ndarray:
        """Precisions as a ``(k, d, d)`` stack."""
        chol = self.covariance.cholesky_matrices(
            self.precisions_cholesky, self.n_components, self.n_features
        )
        return chol @ np.swapaxes(chol, -1, -2)

    def n_parameters(self) -> int:
        """Number of free parameters: weights, means and covariances."""
        k, d = self.means.shape
        return int(self.covariance.n_covariance_parameters(k, d) + d * k + k - 1)

    def sample(self, rng: np.random.RandomState, n_samples: int):
        """``n_samples`` rows drawn as scikit-learn draws them, and their labels."""
        counts = rng.multinomial(n_samples, np.asarray(self.weights, np.float64))
        X = self.covariance.sample(rng, self.means, self.covariance_array(), counts)
        return X, np.repeat(np.arange(self.n_components), counts)
