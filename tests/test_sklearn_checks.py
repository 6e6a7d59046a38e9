"""scikit-learn's estimator checks, all of them, on every covariance type."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_em import GaussianMixture

# Checks expected to fail, with the reason. The goal is an empty table.
EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [
        GaussianMixture(covariance_type=covariance_type)
        for covariance_type in ("full", "tied", "diag", "spherical")
    ],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_passes_sklearn_estimator_checks(estimator, check):
    check(estimator)
