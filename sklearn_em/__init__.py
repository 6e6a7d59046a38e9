"""sklearn-em: Gaussian-mixture clustering by Expectation-Maximization.

A drop-in, scikit-learn compatible replacement for
:class:`sklearn.mixture.GaussianMixture`, built on sufficient statistics.
"""

from . import datasets
from ._estimator import DegenerateComponentWarning, GaussianMixture

__version__ = "0.1.0"

__all__ = ["DegenerateComponentWarning", "GaussianMixture", "__version__", "datasets"]
