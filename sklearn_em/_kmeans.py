"""The default initialisation: scikit-learn's k-means labels, made faster.

``init_params='kmeans'`` starts from the labels of
``sklearn.cluster.KMeans(n_clusters=k, n_init=1, random_state=random_state)``,
as scikit-learn's ``GaussianMixture`` does. On a million 2-D rows that k-means
takes ~0.21 s: k-means++ seeding 85 ms, six Lloyd iterations 107 ms, and the
copy, centring and variance of ``X`` the rest. It is then ~90% of a whole fit
on the compiled engine, whose EM iterations take ~5 ms each.

Where the compiled kernel runs (float64 rows without missing values), the
same algorithm runs here on it, one pass over the rows per step, without
copying ``X``:

* k-means++ (Arthur & Vassilvitskii 2007, with scikit-learn's greedy
  ``2 + log k`` candidates per centre), drawing from ``random_state`` with the
  same calls in the same order;
* Lloyd iterations with scikit-learn's stopping rules (labels unchanged, or
  centre shift within ``1e-4`` times the mean feature variance) and its final
  relabelling.

Every decision k-means makes is a comparison: of distances (the nearest
centre), of a random target with a cumulative sum (a seeding candidate), of
potentials (the best candidate), of the centre shift with the tolerance. Both
implementations compute the same quantities, rounded differently. So each
comparison here is made with a margin (:data:`DISTANCE_TIE`, :data:`SUM_TIE`,
:data:`SHIFT_TIE`: 100 to 1000 times the rounding), and where one falls
within it, or where scikit-learn would do something this does not (relocate
an empty cluster, warn of fewer distinct clusters), the random state is
restored and the run is handed to scikit-learn's ``KMeans``. So the labels,
and the random state afterwards, are scikit-learn's unless the two roundings
differ by more than those margins; tests check both against ``KMeans`` on
many data sets and seeds.
"""

from __future__ import annotations

import numpy as np
import sklearn
from sklearn.cluster import KMeans, kmeans_plusplus

# Relative margins within which two compared quantities count as a tie that
# rounding could decide either way (see the module docstring).
# Distances: scikit-learn's |c|^2 - 2 y.c is off by a few d * 1e-16 of |y|^2 +
# |c|^2 (d <= 47 where the compiled kernel runs); 1e-10 was tried and, on
# continuous data, sent one run in ten at 3e5 rows back to scikit-learn.
DISTANCE_TIE = 1e-12
# A random target against a cumulative sum of n terms, relative to the sum:
# rounding is ~sqrt(n) * 1e-16 (1e-13 at 1e6 rows); a false alarm costs the
# run scikit-learn's time, at a rate of about n * SUM_TIE per draw.
SUM_TIE = 1e-10

# The margin for the centre shift against the tolerance: the shift is a
# squared difference of centres, so its relative rounding is the centres'
# divided by the shift's square root (~1e-10 where it meets the tolerance).
SHIFT_TIE = 1e-6

# scikit-learn's KMeans defaults, which GaussianMixture leaves as they are.
MAX_ITER = 300
TOL = 1e-4

# The scikit-learn releases whose KMeans this reproduces (read in their
# sources and tested: tests/test_kmeans.py). A later release may draw or stop
# differently; until it is checked, its own KMeans runs.
CHECKED_SKLEARN = ((1, 6), (1, 9))


def _sklearn_checked() -> bool:
    release = tuple(int(part) for part in sklearn.__version__.split(".")[:2])
    return CHECKED_SKLEARN[0] <= release <= CHECKED_SKLEARN[1]


def kmeans_labels(
    source, n_components: int, random_state: np.random.RandomState
) -> np.ndarray:
    """``KMeans(n_components, n_init=1, random_state).fit(X, sample_weight)
    .labels_`` of the source's initialisation view."""
    labels = _on_compiled(source, n_components, random_state, _kmeans)
    if labels is None:
        kmeans = KMeans(n_clusters=n_components, n_init=1, random_state=random_state)
        labels = kmeans.fit(
            source.init_view(), sample_weight=source.sample_weight
        ).labels_
    return labels


def kmeans_plusplus_indices(
    source, n_components: int, random_state: np.random.RandomState
) -> np.ndarray:
    """The rows ``kmeans_plusplus(X, n_components, sample_weight=...,
    random_state=random_state)`` seeds on, of the source's initialisation
    view."""
    indices = _on_compiled(source, n_components, random_state, _seeding)
    if indices is None:
        _, indices = kmeans_plusplus(
            source.init_view(),
            n_components,
            sample_weight=source.sample_weight,
            random_state=random_state,
        )
    else:
        indices = indices[0]
    return indices


def _on_compiled(source, k, random_state, method):
    """``method(rows, k, random_state)`` on the compiled kernel where it
    runs; ``None`` (and the random state as it was) where it does not, or
    where the method leaves the decision to scikit-learn."""
    dense = getattr(source, "dense", None)
    if (
        dense is None
        or dense.compiled is None
        or not _sklearn_checked()
        or source.X.dtype != np.float64
        or source.n_samples < k
    ):
        return None
    state = random_state.get_state()
    out = method(_Rows(source), k, random_state)
    if out is None:
        random_state.set_state(state)
    return out


class _Rows:
    """The source's rows about its centre, on the compiled kernels; a
    missing value is the column mean (the centre), as in the view
    scikit-learn's k-means is given (:meth:`._data.TrainingData.init_view`),
    without making that copy."""

    def __init__(self, source):
        self.source = source
        self.kernels = source.dense.compiled
        self.n = source.n_samples
        w = source.sample_weight
        self.w = np.empty(0) if w is None else w
        self.weighted = w is not None

    def chunks(self, first, last):
        """``(start, stop, x, w)`` per chunk of rows ``first:last``."""
        source = self.source
        for start in range(first, last, source.chunk_size):
            stop = min(start + source.chunk_size, last)
            w = self.w[start:stop] if self.weighted else self.w
            yield start, stop, np.ascontiguousarray(source.X[start:stop]), w

    def about_center(self, ids) -> np.ndarray:
        rows = self.source.X[ids] - self.source.center
        return np.where(np.isnan(rows), 0.0, rows)

    def in_ranges(self, work) -> list:
        """``work(first, last)`` on each thread's range, in row order."""
        return self.source._map_ranges(lambda ws, first, last: work(first, last))

    def potentials(self, chosen, candidates) -> np.ndarray:
        def work(first, last):
            out = np.zeros(len(candidates))
            for _, _, x, w in self.chunks(first, last):
                self.kernels.seeding_potentials(
                    x, w, self.source.center, chosen, candidates, out
                )
            return out

        return np.sum(self.in_ranges(work), axis=0)


def _seeding(rows: _Rows, k: int, random_state):
    """``(indices, centres about the centre)`` of scikit-learn's
    ``_kmeans_plusplus``, draw for draw; ``None`` at a tie."""
    n, kernels, center = rows.n, rows.kernels, rows.source.center
    total = float(n) if not rows.weighted else rows.w.sum()
    first = kernels.weighted_choice(rows.w, total, random_state.random_sample())
    indices = [first]
    centres = rows.about_center([first])
    potential = rows.potentials(centres[:0], centres)[0]
    n_trials = 2 + int(np.log(k))
    for _ in range(1, k):
        targets = random_state.uniform(size=n_trials) * potential
        order = np.argsort(targets, kind="stable")
        ascending = targets[order]
        ids = np.full(n_trials, n - 1)
        gaps = np.zeros(n_trials)
        running, found = np.zeros(1), np.zeros(1, dtype=np.intp)
        for start, _, x, w in rows.chunks(0, n):
            kernels.seeding_search(
                x, w, center, centres, ascending, start, running, found, ids, gaps
            )
        # Targets beyond the sum: scikit-learn clips them to the last row.
        gaps[found[0] :] = ascending[found[0] :] - running[0]
        if np.any(gaps <= SUM_TIE * potential):
            return None
        ids[order] = ids.copy()
        candidates = rows.about_center(ids)
        pots = rows.potentials(centres, candidates)
        best = int(np.argmin(pots))
        near = pots <= pots[best] * (1 + SUM_TIE)
        if np.any(near & np.any(candidates != candidates[best], axis=1)):
            return None
        potential = pots[best]
        indices.append(int(ids[best]))
        centres = np.vstack([centres, candidates[best]])
    return np.array(indices), centres


def _kmeans(rows: _Rows, k: int, random_state) -> np.ndarray | None:
    """scikit-learn's ``KMeans(k, n_init=1)`` labels: k-means++ seeds, then
    ``_kmeans_single_lloyd``; ``None`` at a tie or where KMeans would
    relocate an empty cluster or warn of fewer distinct ones."""
    seeds = _seeding(rows, k, random_state)
    if seeds is None:
        return None
    centres = seeds[1]
    tol = _tolerance(rows) * TOL
    labels = np.full(rows.n, -1, dtype=np.int32)
    center = rows.source.center

    def assign(centres):
        d = centres.shape[1]

        def work(first, last):
            sums, sizes, counts = np.zeros((k, d)), np.zeros(k), np.zeros(k, np.intp)
            changed = ambiguous = 0
            for start, stop, x, w in rows.chunks(first, last):
                c, a = rows.kernels.lloyd_rows(
                    x,
                    w,
                    center,
                    centres,
                    labels[start:stop],
                    sums,
                    sizes,
                    counts,
                    DISTANCE_TIE,
                )
                changed += c
                ambiguous += a
            return sums, sizes, counts, changed, ambiguous

        parts = rows.in_ranges(work)
        return [sum(part[i] for part in parts) for i in range(5)]

    converged = False
    for _ in range(MAX_ITER):
        sums, sizes, counts, changed, ambiguous = assign(centres)
        if ambiguous or not np.all(sizes > 0):
            # A tie, or an empty cluster scikit-learn relocates.
            return None
        moved = sums / sizes[:, None]
        shift = float(((moved - centres) ** 2).sum())
        centres = moved
        if changed == 0:
            converged = True
            break
        if abs(shift - tol) <= SHIFT_TIE * tol:
            return None
        if shift <= tol:
            break
    if not converged:
        *_, counts, _, ambiguous = assign(centres)
        if ambiguous or not np.all(counts > 0):
            return None
    return labels


def _tolerance(rows: _Rows) -> float:
    """scikit-learn's ``_tolerance`` before its factor: the mean of the
    features' (unweighted) variances, from sums about the source's centre."""
    sums = np.zeros((2, rows.source.n_features))
    for _, _, x, _ in rows.chunks(0, rows.n):
        rows.kernels.add_spread(x, rows.source.center, sums)
    mean = sums[0] / rows.n
    return float(np.mean(sums[1] / rows.n - mean**2))
