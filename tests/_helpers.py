"""Values shared by the test modules.

``tests`` is not a package (no ``__init__.py``): pytest's default "prepend"
import mode puts this folder on ``sys.path``, so test modules import this file
as ``_helpers``. Prefer the ``covariance_type`` fixture of ``conftest.py``; use
the tuple itself only where a fixture cannot go (parametrize with other
arguments, module-scoped fixtures, hypothesis strategies).
"""

import numpy as np
import pytest
import scipy
from sklearn.utils.fixes import parse_version

# The covariance types of sklearn.mixture.GaussianMixture, in its order. Written
# out rather than read from sklearn_em so that a type the library dropped fails
# tests/test_covariance.py instead of silently disappearing from every test.
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")


def as_full_stack(values, covariance_type, n_components, n_features):
    """Covariance-shaped values (or precisions) as a (k, d, d) stack.

    Written here, not taken from the library, so that tests check the
    covariance module against an independent reading of the shapes.
    """
    values = np.asarray(values, dtype=np.float64)
    if covariance_type == "full":
        return values
    if covariance_type == "tied":
        return np.broadcast_to(values, (n_components, n_features, n_features))
    if covariance_type == "diag":
        return np.stack([np.diag(v) for v in values])
    return values[:, None, None] * np.eye(n_features)


def collapsing_spike():
    """Three clusters and a start whose third component is a spike on one row
    (precision 1e12, reg_covar=0): it collapses onto that row and must be
    re-seeded. Returns ``X`` and the estimator parameters."""
    rng = np.random.RandomState(0)
    X = np.vstack(
        [rng.randn(200, 2), rng.randn(200, 2) + [0, 8], rng.randn(200, 2) + [8, 0]]
    )
    params = dict(
        reg_covar=0.0,
        means_init=[[0.0, 0.0], [0.0, 8.0], X[450]],
        precisions_init=np.stack([np.eye(2), np.eye(2), 1e12 * np.eye(2)]),
        weights_init=[0.4, 0.4, 0.2],
        tol=1e-6,
    )
    return X, params


def skip_without_array_api_dispatch() -> None:
    """Skip the calling test module where scikit-learn's ``array_api_dispatch``
    cannot be enabled (it needs SciPy >= 1.14)."""
    if parse_version(scipy.__version__) < parse_version("1.14"):
        pytest.skip(
            "scikit-learn's array_api_dispatch needs SciPy >= 1.14 (the "
            f"minimum-versions run has SciPy {scipy.__version__})",
            allow_module_level=True,
        )
