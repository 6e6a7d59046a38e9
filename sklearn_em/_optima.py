"""``init_params='multistart'``: search many starts, keep the best optimum.

EM climbs to the local optimum nearest its start, and which one that is
depends on the start. scikit-learn spends ``n_init`` full EM runs, each from
its own k-means partition, to find a good one. Our E-step is cheap, so the
search here spends a bounded budget of short runs on many, and more varied,
starts instead:

1. *Candidates.* k-means++ seeds (Arthur & Vassilvitskii 2007) on the rows
   and on the rows whitened by their total covariance (a k-means start in a
   Mahalanobis metric, as proposed in scikit-learn issue 34845 for elongated
   clusters), full k-means partitions (scikit-learn's own start), and Ward's
   hierarchical agglomeration of a subsample, plain and whitened. Ward's
   criterion is model-based agglomeration under the spherical, equal-volume
   Gaussian model (Fraley 1998, "Algorithms for model-based Gaussian
   hierarchical clustering", SIAM J. Sci. Comput. 20(1)), the partition that
   R's mclust starts from in its simplest form.
2. *Short EM* (Biernacki, Celeux & Govaert 2003, "Choosing starting values
   for the EM algorithm for getting the highest likelihood in multivariate
   Gaussian mixture models", Comput. Stat. Data Anal. 41): a few EM
   iterations from every candidate; most poor starts already trail. Here in
   rounds of successive halving (:data:`ROUNDS`): the better half continues
   for more iterations, and so on.
3. *Finalists.* The best two distinct runs continue to convergence
   (:data:`FINAL_TOL`), and the one with the highest log-likelihood is the
   start the estimator's own EM run continues from.

Every run is :func:`._em.run_em` on a data source, so sample weights,
missing values and every covariance type work as in the main fit. Beyond
:data:`SEARCH_ROWS` rows the search runs on a uniform subsample, so its cost is
bounded whatever the data's size; the final run sees all rows. The search
source always computes on one thread, so the start it returns is the same bit
for bit whatever ``n_jobs`` the estimator has.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering, KMeans, kmeans_plusplus

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
# Ward's agglomeration is quadratic in its rows: on 1000 rows it took a
# quarter of a search's time, and 500 lost no case of the benchmark.
WARD_ROWS = 500
# Candidates of each kind (see the module docstring); measured in
# benchmarks/bench_optima.py.
N_KMEANSPP = 10
N_WHITENED_KMEANSPP = 4
N_KMEANS = 3
# Successive rounds of short EM (successive halving): every candidate runs
# ``ROUNDS[0][1]`` iterations, the best ``ROUNDS[1][0]`` of them
# ``ROUNDS[1][1]`` more, and so on; the survivors of the last round run to
# convergence (``FINAL_TOL``, at most ``FINAL_ITER`` iterations).
# Measured in benchmarks/bench_optima.py against (4, 6, 10) iterations: two
# fewer cases lost to scikit-learn's n_init=10 or mclust, for ~10% more time.
ROUNDS = ((None, 4), (8, 8), (4, 16))
N_FINALISTS = 2
# Tighter than scikit-learn's default 1e-3: at 1e-3 a run stops while still
# climbing by ~1e-3 nats per sample an iteration, and the finalists are
# compared at that resolution. In benchmarks/bench_optima.py, 1e-5 (mclust's
# default, relative) cut the cases lost to scikit-learn or mclust by a quarter
# more but cost 1.2x the time of 1e-4.
FINAL_TOL = 1e-4
FINAL_ITER = 100
# Runs whose log-likelihoods agree this closely have reached the same optimum:
# only the first is kept, so that the survivors stay diverse.
SAME_OPTIMUM = 1e-9


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
    )


def _whitened(view: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Rows in the metric of their own total covariance (its inverse
    Cholesky factor), so that k-means and Ward see elongated clusters as
    round; a singular direction keeps its scale."""
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


def candidate_labels(search: TrainingData, random_state: np.random.RandomState):
    """Yield the candidate partitions of the search rows, as labels (-1 for
    rows in no component), in a fixed order that depends only on
    ``random_state``."""
    n, k = search.n_samples, search.n_components
    weights = search.sample_weight
    view = search.init_view()
    white = _whitened(view, weights)
    for _ in range(N_KMEANS):
        kmeans = KMeans(n_clusters=k, n_init=1, random_state=random_state)
        yield kmeans.fit(view, sample_weight=weights).labels_
    for _ in range(N_KMEANSPP):
        _, indices = kmeans_plusplus(
            view, k, sample_weight=weights, random_state=random_state
        )
        yield _seed_labels(n, indices)
    for _ in range(N_WHITENED_KMEANSPP):
        _, indices = kmeans_plusplus(
            white, k, sample_weight=weights, random_state=random_state
        )
        yield _seed_labels(n, indices)
    # Ward's agglomeration cannot weigh rows: a subsample drawn in proportion
    # to the weights stands for them.
    m = min(WARD_ROWS, n if weights is None else int(np.count_nonzero(weights)))
    p = None if weights is None else weights / weights.sum()
    rows = np.sort(random_state.choice(n, m, replace=False, p=p))
    for points in (view, white):
        ward = AgglomerativeClustering(n_clusters=k, linkage="ward")
        labels = np.full(n, -1, dtype=np.intp)
        labels[rows] = ward.fit(np.take(points, rows, axis=0)).labels_
        yield labels


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
        search rows.

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
    for labels in candidate_labels(search, random_state):
        try:
            start = params_from_stats(
                search.stats_given(labels=labels), covariance, reg_covar
            )
        except IllDefinedCovariance as exc:
            error = exc
            continue
        runs.append(EMResult(start, -np.inf))
    if not runs:
        raise error
    for keep, n_iter in ROUNDS:
        runs = _survivors(runs, keep)
        runs = _continued(search, runs, reg_covar, n_iter, 0.0)
    runs = _continued(
        search, _survivors(runs, N_FINALISTS), reg_covar, FINAL_ITER, FINAL_TOL
    )
    if not runs:
        raise (
            error
            if error is not None
            else IllDefinedCovariance(np.ones(source.n_components, dtype=bool))
        )
    return _survivors(runs, 1)[0].model


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
