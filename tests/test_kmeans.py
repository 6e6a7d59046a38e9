"""The default initialisation on the compiled kernel: scikit-learn's k-means.

``init_params='kmeans'`` must start from exactly the labels of
``sklearn.cluster.KMeans(k, n_init=1, random_state=...)`` and leave the random
state where KMeans leaves it, whichever engine runs it. On the compiled engine
k-means runs on our kernels and hands any decision within rounding of a tie
(and anything KMeans does that they do not) back to KMeans itself.
"""

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.cluster import KMeans, kmeans_plusplus
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture as SkGaussianMixture

from sklearn_em import GaussianMixture, _kmeans, config_context
from sklearn_em import _engine as engine
from sklearn_em._covariance import get_covariance
from sklearn_em._data import TrainingData

pytest.importorskip(
    "numba", reason="the compiled kernel is the optional 'fast' extra (numba)"
)
kernels = engine._load(np.float64)


def source(X, k, w=None, n_jobs=None):
    with config_context(engine="numba"):
        src = TrainingData(X, w, get_covariance("full"), k, n_jobs=n_jobs)
    assert src.dense.compiled is not None
    return src


def compiled(src, k, random_state, method=_kmeans._kmeans):
    """The compiled k-means's answer, ``None`` where it handed back."""
    return _kmeans._on_compiled(src, k, random_state, method)


def scikit_learns(X, k, w, seed):
    random_state = np.random.RandomState(seed)
    labels = KMeans(k, n_init=1, random_state=random_state).fit(X, sample_weight=w)
    return labels.labels_, random_state


def mixture(rng, n, d, k):
    """Overlapping blobs of different sizes and scales."""
    centres = rng.normal(scale=3.0, size=(k, d))
    which = rng.choice(k, size=n, p=rng.dirichlet(np.ones(k)))
    return centres[which] + rng.normal(size=(n, d)) * rng.uniform(0.3, 2.0, size=d)


CASES = [
    (n, d, k, weighted, seed)
    for seed, (n, d, k, weighted) in enumerate(
        [
            (40, 1, 2, False),
            (300, 2, 3, False),
            (300, 2, 3, True),
            (2_000, 3, 5, False),
            (2_000, 5, 8, True),
            (20_000, 2, 4, False),
            (20_000, 4, 6, True),
            (50_000, 2, 1, False),
            (60_000, 8, 7, False),
        ]
    )
]


@pytest.mark.parametrize("n, d, k, weighted, seed", CASES)
def test_labels_and_random_state_are_scikit_learns(n, d, k, weighted, seed):
    rng = np.random.default_rng(seed)
    X = mixture(rng, n, d, k) + rng.normal(scale=50.0, size=d)
    w = None
    if weighted:
        w = rng.uniform(0.0, 3.0, size=n) * (rng.uniform(size=n) > 0.2)
    expected, expected_state = scikit_learns(X, k, w, seed)
    random_state = np.random.RandomState(seed)
    labels = compiled(source(X, k, w), k, random_state)
    assert labels is not None, "the compiled k-means handed this run back"
    assert_array_equal(labels, expected)
    assert labels.dtype == expected.dtype
    # Later draws (n_init > 1, the next fit) continue from the same state.
    assert_array_equal(random_state.uniform(size=5), expected_state.uniform(size=5))


def test_many_seeds_agree():
    rng = np.random.default_rng(0)
    X = mixture(rng, 5_000, 2, 4)
    src = source(X, 4)
    handed_back = 0
    for seed in range(40):
        labels = _kmeans.kmeans_labels(src, 4, np.random.RandomState(seed))
        assert_array_equal(labels, scikit_learns(X, 4, None, seed)[0])
        state = np.random.RandomState(seed)
        handed_back += compiled(src, 4, state) is None
    assert handed_back <= 2  # a tie within 1e-10 is rare on continuous data


def test_ties_are_handed_to_scikit_learn():
    """On a grid, rows equidistant from two centres are common: rounding
    decides them, so KMeans itself must."""
    X = np.array([[i, j] for i in range(12) for j in range(12)], dtype=float)
    X = np.repeat(X, 3, axis=0)
    src = source(X, 4)
    assert compiled(src, 4, np.random.RandomState(0)) is None
    for seed in range(5):
        random_state = np.random.RandomState(seed)
        labels = _kmeans.kmeans_labels(src, 4, random_state)
        expected, expected_state = scikit_learns(X, 4, None, seed)
        assert_array_equal(labels, expected)
        assert random_state.randint(2**30) == expected_state.randint(2**30)


def test_fewer_distinct_rows_than_clusters_warns_as_kmeans_does():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 5.0], [7.0, 2.0]]), 30, axis=0)
    src = source(X, 5)
    with pytest.warns(ConvergenceWarning, match="distinct clusters"):
        labels = _kmeans.kmeans_labels(src, 5, np.random.RandomState(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        assert_array_equal(labels, scikit_learns(X, 5, None, 0)[0])


def test_threads_change_nothing():
    rng = np.random.default_rng(3)
    X = mixture(rng, 300_000, 2, 3)
    one = compiled(source(X, 3, n_jobs=1), 3, np.random.RandomState(1))
    two = compiled(source(X, 3, n_jobs=2), 3, np.random.RandomState(1))
    assert one is not None
    assert_array_equal(one, two)


@pytest.mark.parametrize("zeros", [False, True])
def test_weighted_choice_is_random_states_choice(zeros):
    rng = np.random.default_rng(5)
    for n in (1, 7, 1000):
        w = rng.exponential(size=n)
        if zeros and n > 1:
            w[rng.uniform(size=n) < 0.5] = 0.0
            w[0] = 1.0
        for seed in range(20):
            expected = np.random.RandomState(seed).choice(n, p=w / w.sum())
            u = np.random.RandomState(seed).random_sample()
            assert kernels.weighted_choice(w, w.sum(), u) == expected
            unit = np.ones(n)
            expected = np.random.RandomState(seed).choice(n, p=unit / unit.sum())
            assert kernels.weighted_choice(np.empty(0), float(n), u) == expected


def test_default_fit_equals_scikit_learns_where_the_compiled_kmeans_runs(
    monkeypatch,
):
    rng = np.random.default_rng(8)
    X = mixture(rng, 100_000, 2, 3)
    ran = []
    method = _kmeans._kmeans

    def spy(*args):
        labels = method(*args)
        ran.append(labels is not None)
        return labels

    monkeypatch.setattr(_kmeans, "_kmeans", spy)
    settings = dict(random_state=0, n_init=2, max_iter=20, tol=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # 20 iterations
        with config_context(engine="numba"):
            ours = GaussianMixture(3, **settings).fit(X)
        ref = SkGaussianMixture(3, **settings).fit(X)
    assert ran == [True, True]
    assert_allclose(ours.means_, ref.means_, rtol=0, atol=1e-10)
    assert_allclose(ours.covariances_, ref.covariances_, rtol=0, atol=1e-10)
    assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-12)


def test_memory_beyond_x_is_the_labels():
    import tracemalloc

    rng = np.random.default_rng(9)
    X = mixture(rng, 400_000, 2, 3)
    src = source(X, 3, n_jobs=1)
    compiled(src, 3, np.random.RandomState(0))  # buffers made
    tracemalloc.start()
    labels = compiled(src, 3, np.random.RandomState(0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < labels.nbytes + 2**20, (peak / 2**20, labels.nbytes / 2**20)


@pytest.mark.parametrize("n, d, k, weighted, seed", CASES)
def test_kmeans_plusplus_seeds_are_scikit_learns(n, d, k, weighted, seed):
    """``init_params='k-means++'`` seeds on the rows ``kmeans_plusplus``
    picks (which, unlike KMeans, does not centre ``X``: rounding differs
    more, the margins still hold)."""
    rng = np.random.default_rng(seed + 100)
    X = mixture(rng, n, d, k) + rng.normal(scale=50.0, size=d)
    w = rng.uniform(0.5, 2.0, size=n) if weighted else None
    expected_state = np.random.RandomState(seed)
    _, expected = kmeans_plusplus(X, k, sample_weight=w, random_state=expected_state)
    random_state = np.random.RandomState(seed)
    seeds = compiled(source(X, k, w), k, random_state, _kmeans._plusplus)
    assert seeds is not None
    assert_array_equal(seeds, expected)
    assert_array_equal(random_state.uniform(size=5), expected_state.uniform(size=5))


@pytest.mark.parametrize("d", [2, 3])  # 2-D rows take a loop of their own
def test_missing_values_are_the_column_means_without_a_copy(d):
    """KMeans is given ``X`` with each NaN replaced by its column's mean;
    the compiled k-means reads a NaN as that mean, and makes no such copy."""
    rng = np.random.default_rng(12)
    X = mixture(rng, 20_000, d, 4)
    missing = rng.uniform(size=X.shape) < 0.2
    missing[missing.all(axis=1), 0] = False  # no row without a value
    X[missing] = np.nan
    src = source(X, 4)
    random_state = np.random.RandomState(2)
    labels = compiled(src, 4, random_state)
    assert labels is not None
    assert src._imputed is None
    expected, expected_state = scikit_learns(src.init_view(), 4, None, 2)
    assert_array_equal(labels, expected)
    assert random_state.randint(2**30) == expected_state.randint(2**30)


def test_an_unchecked_scikit_learn_release_runs_its_own_kmeans(monkeypatch):
    rng = np.random.default_rng(4)
    X = mixture(rng, 3_000, 2, 3)
    src = source(X, 3)
    assert compiled(src, 3, np.random.RandomState(0)) is not None
    monkeypatch.setattr(_kmeans.sklearn, "__version__", "1.10.0")
    assert compiled(src, 3, np.random.RandomState(0)) is None
    labels = _kmeans.kmeans_labels(src, 3, np.random.RandomState(0))
    assert_array_equal(labels, scikit_learns(X, 3, None, 0)[0])


def agrees_or_hands_back(method, expected_of, src, k, seeds):
    """Over ``seeds``: the compiled answer equals scikit-learn's, or it
    handed the run back; returns how many it handed back."""
    handed_back = 0
    for seed in seeds:
        got = compiled(src, k, np.random.RandomState(seed), method)
        if got is None:
            handed_back += 1
        else:
            assert_array_equal(got, expected_of(seed))
    return handed_back


def test_kmeans_plusplus_far_from_the_origin_agrees_or_hands_back():
    """kmeans_plusplus does not centre X: at 3e6 its distances round to
    ~1e-3 of themselves, and the margins must say so."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2_000, 2)) + 3e6
    src = source(X, 5)

    def expected(seed):
        return kmeans_plusplus(X, 5, random_state=np.random.RandomState(seed))[1]

    agrees_or_hands_back(_kmeans._plusplus, expected, src, 5, range(20))


def test_far_rows_of_weight_zero_agree_or_hand_back():
    """Rows of weight 0 move KMeans's (unweighted) centring, and with it the
    rounding of its distances, far from the weighted rows."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(20_000, 2))
    X[:10_000] += 1e6
    w = np.ones(len(X))
    w[:10_000] = 0.0
    src = source(X, 4, w)

    def expected(seed):
        return scikit_learns(X, 4, w, seed)[0]

    agrees_or_hands_back(_kmeans._kmeans, expected, src, 4, range(10))


def test_kmeans_plusplus_on_repeated_rows_draws_scikit_learns_row():
    """Equal rows give scikit-learn's potentials that differ in the last
    bit; which of them it draws matters once rows carry different weights."""
    rng = np.random.default_rng(18)
    X = np.round(rng.normal(size=(400, 2)) * 2)
    w = rng.uniform(0.1, 1.0, size=len(X))
    src = source(X, 4, w)

    def expected(seed):
        state = np.random.RandomState(seed)
        return kmeans_plusplus(X, 4, sample_weight=w, random_state=state)[1]

    agrees_or_hands_back(_kmeans._plusplus, expected, src, 4, range(40))


def test_the_random_state_is_restored_when_the_compiled_kmeans_raises(monkeypatch):
    rng = np.random.default_rng(1)
    src = source(mixture(rng, 1_000, 2, 3), 3)

    def broken(rows, k, random_state):
        random_state.uniform(size=3)
        raise KeyboardInterrupt

    random_state = np.random.RandomState(0)
    with pytest.raises(KeyboardInterrupt):
        _kmeans._on_compiled(src, 3, random_state, broken)
    assert random_state.randint(2**30) == np.random.RandomState(0).randint(2**30)
