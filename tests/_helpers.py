"""Values shared by the test modules.

``tests`` is not a package (no ``__init__.py``): pytest's default "prepend"
import mode puts this folder on ``sys.path``, so test modules import this file
as ``_helpers``. Prefer the ``covariance_type`` fixture of ``conftest.py``; use
the tuple itself only where a fixture cannot go (parametrize with other
arguments, module-scoped fixtures, hypothesis strategies).
"""

# The covariance types of sklearn.mixture.GaussianMixture, in its order. Written
# out rather than read from sklearn_em so that a type the library dropped fails
# tests/test_covariance.py instead of silently disappearing from every test.
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
