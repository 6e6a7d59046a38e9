"""sklearn-em: Gaussian-mixture clustering by Expectation-Maximization.

A drop-in, scikit-learn compatible replacement for
:class:`sklearn.mixture.GaussianMixture`, built on sufficient statistics.
"""

from . import datasets
from ._estimator import GaussianMixture

__version__ = "0.1.0"

__all__ = ["GaussianMixture", "__version__", "datasets"]
