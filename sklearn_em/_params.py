"""The fitted model as a value."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MixtureParams:
    """A fitted (or initial) Gaussian mixture, in scikit-learn's conventions.

    Always float64; the estimator casts to the input's dtype at the end.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    precisions_cholesky: np.ndarray
