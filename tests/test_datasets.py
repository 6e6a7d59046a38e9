"""Tests of sklearn_em.datasets: the reconstructed three-Gaussian data set."""

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from sklearn_em.datasets import make_three_gaussians, three_gaussians_params

# What the seed page reports for its first fitted component.
SEED_MEAN = [4.379, 4.352]
SEED_COVARIANCE = [[2.748, -0.119], [-0.119, 0.618]]


def test_samples_are_float64_rows_of_two_features():
    X, y = make_three_gaussians(random_state=0)

    assert X.shape == (1500, 2)
    assert X.dtype == np.float64
    assert y.shape == (1500,)
    assert np.all(np.isfinite(X))


def test_labels_are_integer_component_indices_split_as_evenly_as_possible():
    _, y = make_three_gaussians(1501, random_state=0)

    assert np.issubdtype(y.dtype, np.integer)
    assert set(np.unique(y)) == {0, 1, 2}
    # The remainder goes to the first components, so the split is deterministic.
    assert np.bincount(y).tolist() == [501, 500, 500]


@pytest.mark.parametrize("n_samples", [3, 4, 5])
def test_every_component_is_present_even_in_the_smallest_samples(n_samples):
    _, y = make_three_gaussians(n_samples, random_state=0)

    assert set(y) == {0, 1, 2}


def test_rows_are_shuffled_rather_than_grouped_by_component():
    _, y = make_three_gaussians(3000, random_state=0)

    assert np.any(np.diff(y) < 0)
    # Each third of the rows holds all three components.
    for part in np.array_split(y, 3):
        assert set(part) == {0, 1, 2}


def test_same_integer_random_state_gives_identical_samples():
    X1, y1 = make_three_gaussians(500, random_state=42)
    X2, y2 = make_three_gaussians(500, random_state=42)

    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)


def test_different_random_states_give_different_samples():
    X1, _ = make_three_gaussians(500, random_state=1)
    X2, _ = make_three_gaussians(500, random_state=2)

    assert not np.array_equal(X1, X2)


def test_a_random_state_instance_is_used_and_advanced():
    rng = np.random.RandomState(0)
    X1, _ = make_three_gaussians(300, random_state=rng)
    X2, _ = make_three_gaussians(300, random_state=rng)

    np.testing.assert_array_equal(
        X1, make_three_gaussians(300, random_state=np.random.RandomState(0))[0]
    )
    assert not np.array_equal(X1, X2)


def test_numpy_integer_sample_counts_are_accepted():
    X, _ = make_three_gaussians(np.int64(30), random_state=0)

    assert X.shape == (30, 2)


@pytest.mark.parametrize("n_samples", [0, 1, 2, -3])
def test_fewer_than_three_samples_raises_value_error(n_samples):
    with pytest.raises(ValueError, match=r"n_samples must be >= 3"):
        make_three_gaussians(n_samples)


@pytest.mark.parametrize("n_samples", [1500.0, 1e3, "1500", None, True])
def test_non_integer_sample_counts_raise_value_error(n_samples):
    with pytest.raises(ValueError, match=r"n_samples must be an integer"):
        make_three_gaussians(n_samples)


def test_random_state_must_be_passed_by_keyword():
    with pytest.raises(TypeError):
        make_three_gaussians(100, 0)


def test_true_first_component_is_exactly_the_seed_component():
    params = three_gaussians_params()

    assert params["weights"][0] == pytest.approx(1 / 3)
    np.testing.assert_array_equal(params["means"][0], SEED_MEAN)
    np.testing.assert_array_equal(params["covariances"][0], SEED_COVARIANCE)


def test_true_parameters_describe_an_equally_weighted_valid_mixture():
    params = three_gaussians_params()

    assert params["weights"].shape == (3,)
    assert params["means"].shape == (3, 2)
    assert params["covariances"].shape == (3, 2, 2)
    np.testing.assert_allclose(params["weights"], 1 / 3)
    assert params["weights"].sum() == pytest.approx(1.0)
    for cov in params["covariances"]:
        np.testing.assert_array_equal(cov, cov.T)
        assert np.all(np.linalg.eigvalsh(cov) > 0)


def test_true_parameters_are_fresh_copies_safe_to_modify():
    params = three_gaussians_params()
    params["means"][0] = 0.0
    params["covariances"][:] = 0.0

    np.testing.assert_array_equal(three_gaussians_params()["means"][0], SEED_MEAN)
    X, _ = make_three_gaussians(3000, random_state=0)
    assert np.all(np.isfinite(X)) and X.std() > 0.5


def test_first_component_matches_the_seed_parameters():
    X, y = make_three_gaussians(200_000, random_state=0)
    first = X[y == 0]

    # Standard errors at ~66 667 rows: about 0.006 on the means and at most
    # about 0.015 on the covariances; the tolerances allow 4-5 of them.
    np.testing.assert_allclose(first.mean(axis=0), SEED_MEAN, atol=0.03)
    np.testing.assert_allclose(np.cov(first, rowvar=False), SEED_COVARIANCE, atol=0.07)


def test_every_component_matches_the_stated_true_parameters():
    X, y = make_three_gaussians(200_000, random_state=1)
    params = three_gaussians_params()

    np.testing.assert_allclose(np.bincount(y) / len(y), params["weights"], atol=1e-5)
    for k in range(3):
        members = X[y == k]
        np.testing.assert_allclose(members.mean(axis=0), params["means"][k], atol=0.03)
        np.testing.assert_allclose(
            np.cov(members, rowvar=False), params["covariances"][k], atol=0.07
        )


def test_components_overlap_only_a_little():
    X, y = make_three_gaussians(60_000, random_state=0)
    params = three_gaussians_params()
    densities = np.column_stack(
        [
            w * multivariate_normal(m, c).pdf(X)
            for w, m, c in zip(
                params["weights"], params["means"], params["covariances"], strict=True
            )
        ]
    )

    # The Bayes-optimal classifier errs only where components overlap: some
    # overlap keeps the clustering non-trivial, but not much.
    bayes_error = np.mean(densities.argmax(axis=1) != y)
    assert 0.005 < bayes_error < 0.06
