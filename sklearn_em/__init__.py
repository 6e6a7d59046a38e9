"""sklearn-em: Gaussian-mixture clustering by Expectation-Maximization.

A drop-in, scikit-learn compatible replacement for :mod:`sklearn.mixture`
(:class:`GaussianMixture` and :class:`BayesianGaussianMixture`), built on
sufficient statistics.
"""

from . import datasets, mixture
from ._bayesian import BayesianGaussianMixture
from ._engine import config_context, get_config, set_config
from ._estimator import DegenerateComponentWarning, GaussianMixture
from ._selection import GaussianMixtureIC

__version__ = "0.1.0"

__all__ = [
    "BayesianGaussianMixture",
    "DegenerateComponentWarning",
    "GaussianMixture",
    "GaussianMixtureIC",
    "__version__",
    "config_context",
    "datasets",
    "get_config",
    "mixture",
    "set_config",
]
