"""``init_params='multistart'``: search many starts, keep the best optimum.

EM climbs to the local optimum nearest its start, and which one that is
depends on the start. scikit-learn spends ``n_init`` full EM runs, each from
its own k-means partition, to find a good one. Our E-step is cheap, so the
search here spends a bounded budget of short runs on many, and more varied,
starts instead:

1. *Candidates.* k-means partitions (Lloyd's iterations from k-means++ seeds,
   Arthur & Vassilvitskii 2007: scikit-learn's own start), bare k-means++
   seeds on the rows and on the rows whitened by their total covariance (a
   k-means start in a Mahalanobis metric, as proposed in scikit-learn issue
   34845 for elongated clusters), and two model-based agglomerations of a
   subsample (Fraley 1998, "Algorithms for model-based Gaussian hierarchical
   clustering", SIAM J. Sci. Comput. 20(1)): they merge clusters under
   unconstrained Gaussians ('VVV', the criterion R's mclust starts every
   model from), greedily from Ward's partition (model-based agglomeration
   under the spherical, equal-volume Gaussian model) into
   :data:`VVV_START` clusters, small clusters' costs made finite by a ridge
   or by mclust's own regularisation (:data:`VVV_CRITERIA`).
2. *Short EM* (Biernacki, Celeux & Govaert 2003, "Choosing starting values
   for the EM algorithm for getting the highest likelihood in multivariate
   Gaussian mixture models", Comput. Stat. Data Anal. 41): a few EM
   iterations from every candidate; most poor starts already trail. Here in
   rounds of successive halving (:data:`ROUNDS`): the better half continues
   for more iterations, and so on. On the numpy kernel the E-steps of a
   round's runs share one pass over the rows
   (:meth:`.TrainingData.stats_many`): on small data an E-step is mostly the
   fixed cost of its numpy calls (the benchmark's 252 cases, seed 0, both
   ways interleaved with n_init=10: 0.92 -> 0.85 of its time, the same
   fits; on the compiled kernel it was 5% slower, so that runs one at a
   time).
3. *Finalist.* The best run continues to convergence (:data:`FINAL_TOL`),
   and beside it the runs from the agglomerations, whatever their rank
   (:data:`N_PROTECTED`).
4. *Split and merge* (Ueda, Nakano, Ghahramani & Hinton 2000, "SMEM algorithm
   for mixture models", Neural Comput. 12(9)): from the converged finalist,
   two components that share their rows merge and one that fits its rows
   badly splits in two, and EM runs from there to convergence; the move is
   kept only when the log-likelihood rises (:data:`N_MOVES` moves). The
   result is the start the estimator's own EM run continues from.

Every run is :func:`._em.run_em` on a data source, so sample weights,
missing values and every covariance type work as in the main fit. Beyond
:data:`SEARCH_ROWS` rows the search runs on a uniform subsample, so its cost is
bounded whatever the data's size; the final run sees all rows. The search
source always computes on one thread, so the start it returns is the same bit
for bit whatever ``n_jobs`` the estimator has.

The constants below were chosen with ``benchmarks/bench_optima.py`` (252
cases: 9 data sets, 4 covariance types, k = 2..8), counting the cases in
which the fit ends more than 1e-3 nats per sample below the best of
scikit-learn's ``n_init=10`` and mclust ("misses"), summed over
``random_state`` 0, 1 and 2 (one seed alone moves by several misses from
chance), and the CPU time against ``n_init=10``'s. The search before split
and merge and Lloyd partitions (3 scikit-learn ``KMeans`` fits and 10
k-means++ seeds, two finalists): 79 misses, time ratio median 0.94, total
0.93; with them: 56 misses, median 0.87-0.91, total 0.95-0.96; with
FINAL_TOL 1e-5: 51 misses, for 3-6% more wall time; with three
split-and-merge moves instead of one: 44 misses, total 0.88-0.90; with the
model-based agglomeration in place of Ward's on the rows as they are: 32.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import ward as ward_tree

from ._covariance import IllDefinedCovariance
from ._data import TrainingData
from ._em import EMResult, params_from_stats, run_em
from ._model import Mixture

#: The name of the method among ``init_params`` values.
MULTISTART = "multistart"

# Rows the candidate search runs on at most: 2e4 rows make every short run
# cheap (a few ms an iteration at d = 10, k = 8), yet hold hundreds of rows per
# component, enough for the ranking of starts to carry over to the full data.
SEARCH_ROWS = 20_000
# How far a component may reach (``precision * |x - c|^2``) in the search
# before it takes the direct form about its own mean (the main fit's bound is
# _dense.MAX_EXPANSION, 1e6, where the expanded quadratic forms keep ~10 of
# float64's 16 digits). The search only ranks runs, and ~6 digits do that; on
# data with nearly collinear features, narrow components are the rule, and
# the direct form does per component what the feature rows do for all
# components of all runs at once. Breast cancer and wine, 'full' and 'tied',
# k = 2..8, numpy engine: 4.7 -> 3.2 s of search for the same fits (every
# final log-likelihood within 1e-6; 1e14 gave 3.1 s).
SEARCH_MAX_EXPANSION = 1e10
# Ward's agglomeration is quadratic in its rows: on 1000 rows it took a
# quarter of a search's time, and 500 lost no case of the benchmark.
WARD_ROWS = 500
# The model-based agglomeration (see _merge_vvv) starts from Ward's
# partition of the subsample (the rows as they are) into this many clusters.
# Over random_state 0, 1 and 2 (benchmarks/bench_optima.py, the multistart
# fits alone), in place of Ward's own partition of those rows into k
# clusters: 44 -> 32 misses, for 4% more time in total on the numpy engine
# (0.795 -> 0.830 of n_init=10's, median 0.90 -> 0.98, one run each, seed
# 0). Starting from 30 clusters: 40 misses, from 80: 41; from Ward's
# partition of the whitened rows: 36; on mclust's scaled-SVD view (hcUse =
# "SVD") instead: 37; both on the rows as they are and whitened: 33, for
# 20% more time; a third Ward candidate on the scaled-SVD view, without
# this one: 46.
VVV_START = 50
# The ridge added to each scatter matrix, against the rows' variance of each
# feature (against their mean variance: 32 misses; 0.1 gave 33, 0.001 40).
VVV_REG = 0.01
# The agglomerations from Ward's partition, one per way of giving small
# clusters a finite cost (see _merge_vvv): the ridge above, and mclust's own
# regularisation (hcVVV, Fraley 1998). Started from mclust's hierarchical
# clustering itself (R's hc(), all rows), our EM reached mclust's optimum in
# every case of the benchmark, and the best of scikit-learn's n_init=10 and
# mclust in 8 of the 20 cases missed on some random_state; the ridge
# agglomeration in none of them, the mclust criterion from Ward's partition
# in 5. Over random_state 0, 1 and 2 (multistart fits alone, engine='numba'):
# the ridge alone 18 misses; the mclust criterion alone 17; on mclust's
# scaled-SVD view of the rows (its hcUse = "SVD") beside the ridge 18, in
# place of it 27; both, the mclust one protected (N_PROTECTED) 13, both
# protected 12. Total time against n_init=10's (benchmarks/bench_optima.py,
# seed 0, numpy engine, one window): 0.933 with the ridge alone, 1.014 with
# both and one protected, 1.068 with both protected; without Ward's
# partition of the whitened subsample (a candidate until then, which no
# longer changed a case: 13 misses with or without it) 0.984.
VVV_CRITERIA = ("ridge", "mclust")
# Candidates of each kind (see the module docstring). Traced on the benchmark
# (every candidate run to convergence), a k-means partition reached the best
# optimum of the hard cases (wine, breast_cancer, digits_pca5) twice as often
# as a bare k-means++ seed, for the same short-EM budget: 10 partitions in
# place of 3 KMeans fits and 7 of the 10 seeds cut the misses from 79 to 63.
N_LLOYD = 10
N_KMEANSPP = 3
N_WHITENED_KMEANSPP = 4
# Lloyd's iterations of a partition at most (they stop when no label
# changes); 10 instead of 30 gave 4 more misses on random_state 0.
LLOYD_ITER = 30
# Rows that Lloyd's iterations and their seeding see at most: at 1e4 rows
# (overlap_10k) the partitions of all rows cost half again the search's time,
# on 2000 of them less than the 3 KMeans fits did, with no case lost.
LLOYD_ROWS = 2000
# Successive rounds of short EM (successive halving): every candidate runs
# ``ROUNDS[0][1]`` iterations, the best ``ROUNDS[1][0]`` of them
# ``ROUNDS[1][1]`` more, and so on; the survivors of the last round run to
# convergence (``FINAL_TOL``, at most ``FINAL_ITER`` iterations).
# Measured in benchmarks/bench_optima.py against (4, 6, 10) iterations: two
# fewer cases lost to scikit-learn's n_init=10 or mclust, for ~10% more time.
# With the candidates below, over three seeds: 3 iterations in the first
# round gave 77 misses instead of 63 for 3% less time; 2 survivors instead
# of 4 in the last round, 75 for 4% less. With three split-and-merge moves
# (N_MOVES), over random_state 0, 1 and 2: 8 and 4 survivors 44 misses; 12
# and 6 33; 16 and 8 32; 12 and 8 33; a fourth round of 3 for 32 iterations
# 32; iterations (6, 10, 20) with 8 and 4 survivors 35; (3, 8, 16) with 12
# and 6 35. Not taken: on the numpy engine, which 'auto' runs on data this
# small, 12 and 6 took the search's total time from 0.92 of n_init=10's to
# 1.06 (seed 0, one run each, benchmarks/bench_optima.py --search ...); on
# the compiled engine ~5% more. With the model-based agglomeration, 12 and 6
# survivors: 32 -> 21 misses over random_state 0, 1 and 2, and on
# random_state 0 13 -> 10 for a total time of 0.887 of n_init=10's (median
# 1.045), against 0.84 (median 1.03) with 8 and 4. With two agglomerations
# (VVV_CRITERIA), full benchmark runs, numpy engine: 12 and 6 survivors 6 + 3
# + 4 = 13 misses for a total time of 1.008 / 1.004 / 1.010 of n_init=10's;
# 10 and 5: 6 + 4 + 4 = 14 for 0.960 / 0.941 / 0.952.
# Ranking runs by Aitken's extrapolation of their log-likelihood (from the
# last three iterations) instead of its value: 16 misses over three seeds
# against 12 (14 with the extrapolated rise capped at one increment).
ROUNDS = ((None, 4), (10, 8), (5, 16))
# Two finalists instead of one: 63 misses against 64 over three seeds; the
# second's run to convergence is better spent on a split-and-merge move.
N_FINALISTS = 1
# Tighter than scikit-learn's default 1e-3: at 1e-3 a run stops while still
# climbing by ~1e-3 nats per sample an iteration, and the finalists are
# compared at that resolution. In benchmarks/bench_optima.py, random_state
# 0, 1 and 2, against 1e-4: 18 + 20 + 18 -> 16 + 19 + 16 misses, for 3-6%
# more time (total against n_init=10 0.77-0.79 -> 0.81-0.82). FINAL_ITER 300
# instead of 100 changed no case.
FINAL_TOL = 1e-5
FINAL_ITER = 100
# The last candidates (the model-based agglomeration under mclust's
# regularisation is the last) that stay in every round and run to convergence
# beside the finalists, whatever their rank: mclust starts every model from
# such an agglomeration and runs EM to convergence, and most of the remaining
# misses were cases where mclust ended higher (16 of 21), its start lost in
# the first rounds here. Over random_state 0, 1 and 2 (multistart fits alone,
# against the same day's n_init=10 times), with the ridge agglomeration alone:
# 21 -> 18 misses for no measurable time (0.93 / 0.88 / 0.86 -> 0.93 / 0.88 /
# 0.88); protecting Ward's whitened partition too: 16 misses for ~10% more
# time (0.97-1.01); and a whitened k-means++ seed too: 13 for 1.00-1.11. Run
# to convergence from their start instead of through the rounds, the one
# protected candidate cost ~3% more. With both agglomerations (VVV_CRITERIA),
# the last protected: 13; both protected: 12, for 5% more time. Once the
# search kept narrow components on feature rows (SEARCH_MAX_EXPANSION), with
# rounds of 10 and 5 (multistart fits alone, numpy engine, over random_state
# 0, 1 and 2): one protected 6 + 4 + 4 = 14 misses, both 6 + 2 + 4 = 12, for
# a total time of 0.812 -> 0.853 of n_init=10's (seed 0, one window); both
# with rounds of 16 and 8, 7 + 1 + 3 = 11 for 0.938; both with 12 and 6, four
# moves (N_MOVES) or two finalists, 12. A protected run that has reached the
# optimum of a run already in is not run twice.
N_PROTECTED = 2
# Runs whose log-likelihoods agree this closely have reached the same optimum:
# only the first is kept, so that the survivors stay diverse.
SAME_OPTIMUM = 1e-9
# Split-and-merge moves tried from the converged finalist. A move costs a run
# to convergence (~20 iterations); one in ten raises the log-likelihood by
# more than 1e-3 (traced on the benchmark; the best-ranked move is not much
# likelier than the next ones). One move: 64 -> 56 misses for ~3% more time;
# two: 54, for 8% more (the total then over n_init=10's); three moves on the
# older search: 25 -> 18 misses on random_state 0 for 1.3x the time. Once the
# direct form stopped doubling work on breast cancer (see _dense.
# ALL_DIRECT_SHARE), over random_state 0, 1, 2 against one move (16 + 19 +
# 16 = 51 misses, total time against n_init=10 0.76-0.78, median 0.92-0.94):
# two moves 16 + 18 on seeds 0 and 1 (total 0.82-0.83, median 1.00-1.01);
# three 15 + 16 + 13 = 44 (total 0.88-0.90, median 1.03-1.10); five 14 on
# seed 0 for a total of 1.02.
N_MOVES = 3


def search_source(source, random_state: np.random.RandomState) -> TrainingData:
    """The rows the search runs on: all rows of positive weight, or a uniform
    sample of :data:`SEARCH_ROWS` of them, on one thread.

    The data's centre and feature variances are the full source's, so the
    statistics (and the collapse checks) mean the same as in the main fit.
    """
    weights = source.sample_weight
    rows = None if weights is None else np.flatnonzero(weights > 0)
    n_rows = source.n_samples if rows is None else len(rows)
    if n_rows > SEARCH_ROWS:
        picks = np.sort(random_state.choice(n_rows, SEARCH_ROWS, replace=False))
        rows = picks if rows is None else rows[picks]
    X = source.X if rows is None else source.X[rows]
    w = None if weights is None else (weights if rows is None else weights[rows])
    return TrainingData(
        X,
        w,
        source.covariance,
        source.n_components,
        n_jobs=1,
        center=source.center,
        # Already validated as training rows (rows of all NaN have weight 0
        # and are left out above); guarding squares is only for new rows.
        training=False,
        guarded=False,
        feature_variances=source.feature_variances,
        max_expansion=SEARCH_MAX_EXPANSION,
    )


def _whitened(view: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Rows in the metric of their own total covariance (its inverse
    Cholesky factor), so that k-means sees elongated clusters as round; a
    singular direction keeps its scale."""
    x = np.asarray(view, dtype=np.float64)
    w = np.ones(len(x)) if weights is None else weights
    mean = w @ x / w.sum()
    y = x - mean
    cov = (y.T * w) @ y / w.sum()
    values, vectors = np.linalg.eigh(cov)
    scale = np.where(values > 1e-12 * max(values.max(), 1e-300), values, 1.0)
    return y @ (vectors / np.sqrt(scale))


def _seed_labels(n_rows: int, indices: np.ndarray) -> np.ndarray:
    """One row per component (the others in none), as k-means++ seeds."""
    labels = np.full(n_rows, -1, dtype=np.intp)
    labels[indices] = np.arange(len(indices))
    return labels


def _lloyd(points: np.ndarray, weights: np.ndarray | None, seeds: np.ndarray):
    """Centres (r, k, d) of Lloyd's k-means iterations from each of the ``r``
    seedings ``seeds`` (r, k), each until no label changes or for at most
    :data:`LLOYD_ITER` iterations; a centre left without rows keeps its
    place. The runs advance together, one matrix product a step for all of
    them and one more for their centres (in a profile of four of the
    benchmark's cases: 29 -> 19 ms for their forty runs, where a run took
    ~14 steps of a dozen numpy calls each); tested equal to one at a time."""
    x = np.asarray(points, dtype=np.float64)
    r, k = seeds.shape
    d = x.shape[1]
    centres = x[seeds]
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype=np.float64)
    wxw = np.column_stack([x * w[:, None], w])
    labels = np.full((r, len(x)), -1, dtype=np.intp)
    active = np.arange(r)
    for _ in range(LLOYD_ITER):
        new = _nearest(x, centres[active])
        moved = np.any(new != labels[active], axis=1)
        active, new = active[moved], new[moved]
        if not len(active):
            break
        labels[active] = new
        # Every run's (label, column) sums in one matrix product: a one-hot
        # (rows, runs x labels) against the weighted rows and their weights.
        size = len(active) * k
        one_hot = np.zeros((len(x), size))
        one_hot[np.arange(len(x))[:, None], new.T + np.arange(0, size, k)] = 1.0
        both = one_hot.T @ wxw
        totals = both[:, d].reshape(len(active), k)
        sums = both[:, :d].reshape(len(active), k, d)
        filled = totals > 0
        block = centres[active]
        block[filled] = sums[filled] / totals[filled][:, None]
        centres[active] = block
    return centres


def _kmeans_plusplus(x, k, weights, random_state) -> np.ndarray:
    """Indices of ``k`` rows seeded by greedy k-means++ (Arthur & Vassilvitskii
    2007; ``2 + log k`` trials a centre, as scikit-learn's
    ``kmeans_plusplus``), a row drawn in proportion to its weight times its
    squared distance to the nearest seed so far.

    The same draws and seeds as scikit-learn's function, which validates its
    input on every call: on the benchmark's small data sets that cost 2-5
    times the seeding itself."""
    n = len(x)
    w = np.ones(n) if weights is None else weights
    trials = 2 + int(np.log(k))
    squares = np.square(x).sum(axis=1)

    def distances(rows):
        d = squares[rows, None] + squares[None, :] - 2.0 * (x[rows] @ x.T)
        return np.maximum(d, 0.0, out=d)

    indices = np.empty(k, dtype=np.intp)
    indices[0] = random_state.choice(n, p=w / w.sum())
    closest = distances(indices[:1])[0]
    for c in range(1, k):
        potential = w @ closest
        draws = random_state.uniform(size=trials) * potential
        candidates = np.searchsorted(np.cumsum(w * closest), draws)
        np.minimum(candidates, n - 1, out=candidates)
        trial = np.minimum(closest, distances(candidates))
        best = int(np.argmin(trial @ w))
        closest = trial[best]
        indices[c] = candidates[best]
    return indices


def _nearest(x: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """The nearest centre of every row (squared Euclidean distance): labels
    (n,) for centres (k, d), (r, n) for r sets of them (r, k, d)."""
    if centres.ndim == 2:
        return (np.square(centres).sum(axis=1) - 2.0 * (x @ centres.T)).argmin(axis=1)
    r, k, d = centres.shape
    flat = centres.reshape(r * k, d)
    scores = np.square(flat).sum(axis=1) - 2.0 * (x @ flat.T)
    return scores.reshape(len(x), r, k).argmin(axis=2).T


def candidate_labels(search: TrainingData, random_state: np.random.RandomState):
    """Yield the candidate partitions of the search rows, as labels (-1 for
    rows in no component), in a fixed order that depends only on
    ``random_state``."""
    n, k = search.n_samples, search.n_components
    weights = search.sample_weight
    view = np.asarray(search.init_view(), dtype=np.float64)
    white = _whitened(view, weights)
    # Lloyd's iterations on a subsample beyond LLOYD_ROWS rows; every row
    # then joins its nearest centre.
    rows = None
    if n > LLOYD_ROWS and N_LLOYD:
        rows = np.sort(random_state.choice(n, LLOYD_ROWS, replace=False))
    sub = view if rows is None else view[rows]
    sub_weights = weights if rows is None or weights is None else weights[rows]
    if N_LLOYD:
        seeds = np.array(
            [
                _kmeans_plusplus(sub, k, sub_weights, random_state)
                for _ in range(N_LLOYD)
            ]
        )
        # Every row to its nearest centre one partition at a time: all at once
        # would hold (rows, 10 k) distances.
        for centres in _lloyd(sub, sub_weights, seeds):
            yield _nearest(view, centres)
    for points, count in ((view, N_KMEANSPP), (white, N_WHITENED_KMEANSPP)):
        for _ in range(count):
            seeds = _kmeans_plusplus(points, k, weights, random_state)
            yield _seed_labels(n, seeds)
    # Ward's agglomeration cannot weigh rows: a subsample drawn in proportion
    # to the weights stands for them.
    m = min(max(WARD_ROWS, k), n if weights is None else int(np.count_nonzero(weights)))
    p = None if weights is None else weights / weights.sum()
    rows = np.sort(random_state.choice(n, m, replace=False, p=p))
    sample = np.take(view, rows, axis=0)
    fine = _cut(ward_tree(sample), max(k, min(VVV_START, m)))
    for criterion in VVV_CRITERIA:
        labels = np.full(n, -1, dtype=np.intp)
        labels[rows] = _merge_vvv(sample, fine, k, criterion)
        yield labels


def _cut(tree: np.ndarray, n_clusters: int) -> np.ndarray:
    """Labels (0..n_clusters-1) of the clusters left after the first
    ``n - n_clusters`` merges of a scipy linkage ``tree`` of ``n`` rows:
    exactly ``n_clusters``, as scikit-learn's cut of its Ward tree (a cut by
    height, scipy's ``fcluster``, can give fewer where merge heights tie)."""
    n = len(tree) + 1
    merges = n - n_clusters
    owner = np.arange(2 * n - 1)
    children = tree[:merges, :2].astype(np.intp)
    owner[children[:, 0]] = owner[children[:, 1]] = n + np.arange(merges)
    # Pointer jumping: every leaf ends at its cluster's last merge.
    while True:
        up = owner[owner]
        if np.array_equal(up, owner):
            break
        owner = up
    return np.unique(owner[:n], return_inverse=True)[1]


def _merge_vvv(
    points: np.ndarray, labels: np.ndarray, k: int, criterion: str = "ridge"
) -> np.ndarray:
    """Labels of ``k`` clusters, merged greedily from the clusters
    ``labels`` (0..m-1) of ``points`` by the classification likelihood of
    unconstrained Gaussians: each step merges the pair that raises
    ``sum_j n_j log |S_j / n_j|`` least, ``S_j`` a cluster's scatter matrix
    (mclust's 'VVV' criterion, Fraley 1998). Clusters of no more rows than
    features have singular scatters; ``criterion`` says how their cost is
    made finite:

    ``'ridge'``
        each scatter gets :data:`VVV_REG` times the rows' variance of each
        feature added to its diagonal (the cost does not depend on the
        features' units);
    ``'mclust'``
        Fraley's regularisation, as mclust's hcVVV has it (alpha = beta =
        1): ``n_j log(|S_j / n_j| + (tr S_j + a) / n_j)``, ``a`` the rows'
        mean variance per feature, and ``n_j log((tr S_j + a) / n_j)`` for
        clusters of no more rows than features: small clusters merge by
        their spread, as in Ward's criterion, large ones by their
        determinant.
    """
    m, d = int(labels.max()) + 1, points.shape[1]
    if m == k:
        return labels
    # Rows grouped by cluster (every cluster has some): sums by segments.
    order = np.argsort(labels, kind="stable")
    starts = np.searchsorted(labels[order], np.arange(m))
    counts = np.bincount(labels, minlength=m).astype(np.float64)
    means = np.add.reduceat(points[order], starts) / counts[:, None]
    y = points[order] - means[labels[order]]
    scatter = np.add.reduceat(y[:, :, None] * y[:, None, :], starts)
    # Each feature's own variance, so that the ridge means the same whatever
    # the features' units (a constant feature takes the others' mean).
    variances = points.var(axis=0)
    fill = variances.mean() if variances.any() else 1.0
    ridge = VVV_REG * np.where(variances > 0, variances, fill)

    def ridged(n, w, trace):
        """``n log |(w + ridge) / n|`` of matrices ``w`` (overwritten)."""
        w.reshape(len(w), d * d)[:, :: d + 1] += ridge
        factor = np.linalg.cholesky(w)
        log_det = 2.0 * np.log(np.diagonal(factor, axis1=1, axis2=2)).sum(axis=1)
        return n * (log_det - d * np.log(n))

    # mclust's alpha: the rows' mean variance per feature.
    alpha = max(variances.mean(), np.finfo(np.float64).tiny)

    def traced(n, w, trace):
        """``n log(|w / n| + (tr w + alpha) / n)``, the determinant left out
        for clusters of no more rows than features (singular); ``w`` is only
        asked for (``w(rows)``) where it is needed."""
        spread = np.log((trace + alpha) / n)
        out = spread.copy()
        big = np.flatnonzero(n > d)
        if len(big):
            sign, log_det = np.linalg.slogdet(w(big))
            log_det = np.where(sign > 0, log_det - d * np.log(n[big]), -np.inf)
            out[big] = np.logaddexp(log_det, spread[big])
        return n * out

    def merged(a, others, rows=None):
        """Scatter matrices of clusters ``a`` (one, or one for each of
        ``others``) merged with ``others`` (those at ``rows`` only)."""
        if rows is not None:
            others = others[rows]
            a = a if np.ndim(a) == 0 else a[rows]
        n = counts[a] + counts[others]
        diff = means[others] - means[a]
        diff *= np.sqrt(counts[a] * counts[others] / n)[:, None]
        w = scatter[others]
        w += scatter[a]
        w += diff[:, :, None] * diff[:, None, :]
        return w

    def rises(a, others):
        """Rise of the criterion of merging ``a`` with each of ``others``."""
        n = counts[a] + counts[others]
        gap = means[others] - means[a]
        trace = (
            traces[a]
            + traces[others]
            + (gap * gap).sum(axis=1) * (counts[a] * counts[others] / n)
        )
        if criterion == "ridge":
            cost = ridged(n, merged(a, others), trace)
        else:
            cost = traced(n, lambda rows: merged(a, others, rows), trace)
        return cost - own[a] - own[others]

    traces = np.trace(scatter, axis1=1, axis2=2).copy()
    if criterion == "ridge":
        own = ridged(counts, scatter.copy(), traces)
    else:
        own = traced(counts, lambda rows: scatter[rows], traces)
    rise = np.full((m, m), np.inf)
    first, second = np.triu_indices(m, 1)
    # All pairs in batches of ~0.5 MB of matrices (cache-sized).
    batch = max(1, 2**16 // (d * d))
    for lo in range(0, len(first), batch):
        a, others = first[lo : lo + batch], second[lo : lo + batch]
        rise[a, others] = rises(a, others)
    alive = np.ones(m, dtype=bool)
    target = np.arange(m)
    for _ in range(m - k):
        a, b = np.unravel_index(np.argmin(rise), rise.shape)
        w = merged(a, np.array([b]))[0]
        n = counts[a] + counts[b]
        means[a] = (counts[a] * means[a] + counts[b] * means[b]) / n
        own[a] += rise[a, b] + own[b]
        counts[a], scatter[a], traces[a] = n, w, np.trace(w)
        alive[b] = False
        rise[b, :] = rise[:, b] = np.inf
        target[target == b] = a
        others = np.flatnonzero(alive)
        others = others[others != a]
        if len(others):
            rise[np.minimum(a, others), np.maximum(a, others)] = rises(a, others)
    final = np.full(m, -1, dtype=np.intp)
    final[alive] = np.arange(k)
    return final[target[labels]]


def multistart_model(
    source, *, random_state: np.random.RandomState, reg_covar: float
) -> Mixture:
    """The best model the search finds (see the module docstring).

    Parameters
    ----------
    source : TrainingData
        The training data (an in-memory source).
    random_state : numpy.random.RandomState
        Every random draw of the search comes from it, in a fixed order.
    reg_covar : float
        The estimator's regularisation, used in every run of the search.

    Returns
    -------
    Mixture
        The converged finalist with the highest mean log-likelihood on the
        search rows, after the split-and-merge moves that raise it.

    Raises
    ------
    IllDefinedCovariance
        When no candidate gives a valid mixture (only with ``reg_covar = 0``
        on degenerate data).
    """
    search = search_source(source, random_state)
    covariance = search.covariance
    runs: list[EMResult] = []
    error = None
    # All of them first (at most ~20 label vectors of the search rows): which
    # ones are protected is counted from the end.
    candidates = list(candidate_labels(search, random_state))
    protected = []
    for i, labels in enumerate(candidates):
        try:
            start = params_from_stats(
                search.stats_given(labels=labels), covariance, reg_covar
            )
        except IllDefinedCovariance as exc:
            error = exc
            continue
        runs.append(EMResult(start, -np.inf))
        if i >= len(candidates) - N_PROTECTED:
            protected.append(runs[-1])
    if not runs:
        raise error
    for keep, n_iter in ROUNDS:
        entered, protected = _joined(_survivors(runs, keep), protected)
        runs = _short_runs(search, entered, reg_covar, n_iter)
        if len(runs) == len(entered):
            protected = [runs[_position(entered, p)] for p in protected]
        else:  # a run dropped (a collapse): positions no longer match
            protected = []
    finalists, _ = _joined(_survivors(runs, N_FINALISTS), protected)
    runs = _short_runs(search, finalists, reg_covar, FINAL_ITER, FINAL_TOL)
    if not runs:
        raise (
            error
            if error is not None
            else IllDefinedCovariance(np.ones(source.n_components, dtype=bool))
        )
    best = _survivors(runs, 1)[0]
    return split_and_merge(search, best, reg_covar, N_MOVES).model


def split_and_merge(
    search: TrainingData, best: EMResult, reg_covar: float, n_moves: int
) -> EMResult:
    """``best`` after up to ``n_moves`` split-and-merge moves (Ueda et al.
    2000), tried in the order of :func:`ranked_moves`, each run to convergence
    and kept only when its log-likelihood ends higher; after a kept move the
    ranking starts again from the new optimum.

    Parameters
    ----------
    search : TrainingData
        The search rows.
    best : EMResult
        A converged run.
    reg_covar : float
        The estimator's regularisation.
    n_moves : int
        Moves to try at most (each costs a run to convergence).

    Returns
    -------
    EMResult
        ``best``, or the run of the last kept move: never a lower
        log-likelihood.
    """
    if best.model.n_components < 3:
        return best  # a move needs two components to merge and one to split
    tried = 0
    while tried < n_moves:
        moves, resp = ranked_moves(search, best.model)
        improved = False
        for move in moves[: n_moves - tried]:
            tried += 1
            try:
                start = moved_model(search, resp, move, reg_covar)
                run = run_em(
                    search,
                    start,
                    tol=FINAL_TOL,
                    max_iter=FINAL_ITER,
                    reg_covar=reg_covar,
                )
            except IllDefinedCovariance:
                continue  # only without regularisation
            if run.lower_bound > best.lower_bound + SAME_OPTIMUM:
                best, improved = run, True
                break
        if not improved:
            break
    return best


def ranked_moves(search: TrainingData, model: Mixture):
    """Split-and-merge moves of ``model``, most promising first, and its
    posteriors (float64, one row per search row).

    A move ``(i, j, m)`` merges components ``i`` and ``j`` and splits ``m``.
    As in Ueda et al. (2000), pairs are ranked by how much their posteriors
    overlap (here the cosine of the weighted posterior columns), and each pair
    is given the component, not in it, that fits its own rows worst: the
    largest Kullback-Leibler divergence of its posterior-weighted rows from
    its Gaussian.
    """
    k = model.n_components
    resp = np.asarray(search.responsibilities(model), dtype=np.float64)
    log_norm = np.asarray(search.log_prob(model), dtype=np.float64)
    weights = search.sample_weight
    weighted = resp if weights is None else resp * weights[:, None]
    gram = weighted.T @ resp
    norms = np.sqrt(np.maximum(np.diag(gram), 1e-300))
    overlap = gram / norms[:, None] / norms[None, :]
    totals = weighted.sum(axis=0)
    misfit = np.empty(k)
    with np.errstate(divide="ignore", invalid="ignore"):
        for j in range(k):
            f = weighted[:, j] / max(totals[j], 1e-300)
            # log p(x | j) = log r_j(x) + log p(x) - log pi_j, where r_j > 0.
            log_density = np.log(resp[:, j]) + log_norm - np.log(model.weights[j])
            misfit[j] = np.where(f > 0, f * (np.log(f) - log_density), 0.0).sum()
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    # Stable sorts on the criteria alone: ties keep the index order.
    pairs.sort(key=lambda pair: -overlap[pair])
    worst = np.argsort(-misfit, kind="stable")
    moves = [(i, j, next(int(m) for m in worst if m not in (i, j))) for i, j in pairs]
    return moves, resp


def moved_model(
    search: TrainingData, resp: np.ndarray, move, reg_covar: float
) -> Mixture:
    """The start of the move ``(i, j, m)``: ``j``'s posteriors join ``i``'s,
    and ``m``'s split across the principal axis of its rows, the far side
    taking ``j``'s place; the M-step of those posteriors is the new mixture
    (so every covariance type, weight and missing value is handled as in a
    fit)."""
    i, j, m = move
    resp = resp.copy()
    resp[:, i] += resp[:, j]
    x = np.asarray(search.init_view(), dtype=np.float64)
    r = resp[:, m]
    if search.sample_weight is not None:
        r = r * search.sample_weight
    y = x - r @ x / max(r.sum(), 1e-300)
    axis = np.linalg.eigh((y.T * r) @ y)[1][:, -1]
    far = y @ axis > 0
    resp[:, j] = np.where(far, resp[:, m], 0.0)
    resp[:, m] = np.where(far, 0.0, resp[:, m])
    return params_from_stats(
        search.stats_given(resp=resp), search.covariance, reg_covar
    )


def _joined(kept: list[EMResult], protected: list[EMResult]):
    """``kept`` and the ``protected`` runs not among them, and the runs to
    protect from now on: a protected run whose log-likelihood equals (within
    :data:`SAME_OPTIMUM`) that of a run already in has reached the same
    optimum (the two agglomerations often give one partition), so it is not
    run twice, and that run is protected in its place."""
    joined = list(kept)
    still: list[EMResult] = []
    for p in protected:
        twin = next((r for r in joined if r is p or _same(p, r)), None)
        if twin is None:
            joined.append(p)
            twin = p
        if not any(twin is q for q in still):
            still.append(twin)
    return joined, still


def _same(a: EMResult, b: EMResult) -> bool:
    return bool(
        np.isfinite(a.lower_bound)
        and abs(a.lower_bound - b.lower_bound) <= SAME_OPTIMUM
    )


def _position(runs: list[EMResult], run: EMResult) -> int:
    return next(i for i, r in enumerate(runs) if r is run)


def _survivors(runs: list[EMResult], keep: int | None) -> list[EMResult]:
    """The ``keep`` best runs (all when ``None``) of distinct optima; a stable
    sort, so that ties keep the candidates' order."""
    runs = sorted(runs, key=lambda run: -run.lower_bound)
    distinct: list[EMResult] = []
    for run in runs:
        if keep is not None and len(distinct) == keep:
            break
        if distinct and np.isfinite(run.lower_bound):
            if abs(distinct[-1].lower_bound - run.lower_bound) <= SAME_OPTIMUM:
                continue
        distinct.append(run)
    return distinct


def _short_runs(search, runs, reg_covar, n_iter, tol=0.0) -> list[EMResult]:
    """Each run continued for up to ``n_iter`` iterations, stopping where
    its mean log-likelihood changes by less than ``tol`` (never with the
    default 0), as :func:`_continued` does, but with the E-steps of all of
    them in one pass over the search rows (:meth:`.TrainingData.stats_many`).
    A run whose M-step fails (a collapse) continues alone in
    :func:`._em.run_em` from the same iteration, which repairs or drops it.

    The runs to convergence at the end of the search (the finalist and the
    protected candidates) go this way too, sharing their E-steps on the
    numpy engine. Split-and-merge moves do not: run together, the first
    three moves (rather than each after the last kept one) cost two more
    misses over three seeds for ~3% less time.

    On the compiled kernel, whose E-steps share nothing between runs, each
    run's iterations go in one compiled call instead (:func:`._em.run_em`,
    see :meth:`._data.TrainingData.run`): to the last bit what run_em's own
    loop gives each run alone (one ulp away from this loop over all runs,
    where every run but the last M-step's was prepared anew by numpy)."""
    if search.dense.compiled is not None:
        return _continued(search, runs, reg_covar, n_iter, tol)
    models = [run.model for run in runs]
    bounds = [run.lower_bound for run in runs]
    variances = search.feature_variances if reg_covar == 0 else None
    alone: dict[int, list[EMResult]] = {}
    active = list(range(len(runs)))
    for done in range(n_iter):
        still = []
        for r, stats in zip(
            active, search.stats_many([models[r] for r in active]), strict=True
        ):
            try:
                model = search.m_step(stats, reg_covar, variances)
            except IllDefinedCovariance:
                alone[r] = _continued(
                    search, [EMResult(models[r], bounds[r])], reg_covar,
                    n_iter - done, tol,
                )  # fmt: skip
                continue
            bound = stats.log_likelihood / stats.total_weight
            models[r], change, bounds[r] = model, bound - bounds[r], bound
            if not abs(change) < tol:
                still.append(r)
        active = still
        if not active:
            break
    out: list[EMResult] = []
    for r in range(len(runs)):
        out.extend(alone.get(r, [EMResult(models[r], bounds[r])]))
    return out


def _continued(search, runs, reg_covar, max_iter, tol) -> list[EMResult]:
    """Each run continued for up to ``max_iter`` iterations; a run that cannot
    continue (a collapse that cannot be repaired) is dropped."""
    out = []
    for run in runs:
        try:
            out.append(
                run_em(
                    search,
                    run.model,
                    tol=tol,
                    max_iter=max_iter,
                    reg_covar=reg_covar,
                    lower_bound=run.lower_bound,
                )
            )
        except IllDefinedCovariance:
            # Only without regularisation: this start cannot be repaired.
            continue
    return out
