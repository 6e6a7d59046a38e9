"""Both mixture estimators under scikit-learn's module name, so that code
written as ``from sklearn import mixture`` switches with one import::

    from sklearn_em import mixture
    mixture.GaussianMixture(...), mixture.BayesianGaussianMixture(...)
"""

from ._bayesian import BayesianGaussianMixture
from ._estimator import GaussianMixture

__all__ = ["BayesianGaussianMixture", "GaussianMixture"]
