"""scikit-learn's estimator checks, all of them, on both estimators and every
covariance type."""

from _helpers import COVARIANCE_TYPES
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_em import BayesianGaussianMixture, GaussianMixture, GaussianMixtureIC

# Checks expected to fail, with the reason. The goal is an empty table.
EXPECTED_FAILED_CHECKS: dict[str, str] = {
    "check_sample_weight_equivalence_on_dense_data": (
        "The check compares a fit with integer weights to a fit on repeated rows "
        "from the default random initialisation; k-means (like sklearn's KMeans, "
        "which cannot pass it either) draws its seeds differently for a weighted "
        "row than for its copies, so the components come out permuted or at "
        "another local optimum. From the same initial parameters the two fits "
        "agree to rtol 1e-8 (measured ~1e-15): tests/test_sample_weight.py."
    ),
}


@parametrize_with_checks(
    [
        GaussianMixture(covariance_type=covariance_type)
        for covariance_type in COVARIANCE_TYPES
    ]
    # Variational inference with 3 components needs up to 185 iterations to
    # converge on the checks' random data (scikit-learn's as many, iteration
    # for iteration): without max_iter=500 its ConvergenceWarning, an error
    # here, would fail checks about other things.
    + [
        BayesianGaussianMixture(covariance_type=covariance_type, max_iter=500)
        for covariance_type in COVARIANCE_TYPES
    ]
    # A fixed seed: with random_state=None the grid's seed comes from the
    # global RNG, and for some (663997052, met in a full run) the best cell on
    # the 12 rows of check_sample_weights_not_an_array, 5 tied components,
    # has not converged after 100 iterations, on either engine: a
    # ConvergenceWarning, an error here, about nothing the check checks.
    + [GaussianMixtureIC(random_state=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_passes_sklearn_estimator_checks(estimator, check):
    check(estimator)
