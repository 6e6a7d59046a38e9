"""The default initialisation: scikit-learn's k-means labels, made faster.

``init_params='kmeans'`` starts from the labels of
``sklearn.cluster.KMeans(n_clusters=k, n_init=1, random_state=random_state)``,
as scikit-learn's ``GaussianMixture`` does. On a million 2-D rows that k-means
takes ~0.21 s: k-means++ seeding 85 ms, six Lloyd iterations 107 ms, and the
copy, centring and variance of ``X`` the rest. It is then ~90% of a whole fit
on the compiled engine, whose EM iterations take ~5 ms each.

Where the compiled kernel runs (float64 rows; a missing value counts as its
column's mean, as in the view scikit-learn's k-means is given), the same
algorithm runs here on it, one pass over the rows per step, without copying
``X``:

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

import re

import numpy as np
import sklearn
from sklearn.cluster import KMeans, kmeans_plusplus

from ._dense import kernel_rows

# Relative margins within which two compared quantities count as a tie that
# rounding could decide either way (see the module docstring).
# Distances: scikit-learn's |c|^2 - 2 y.c is off by a few d * 1e-16 of |y|^2 +
# |c|^2 (d <= 47 where the compiled kernel runs); 1e-10 was tried and, on
# continuous data, sent one run in ten at 3e5 rows back to scikit-learn.
DISTANCE_TIE = 1e-12
# A random target against a cumulative sum of n terms, relative to the sum:
# rounding is ~sqrt(n) * 1e-16 (1e-13 at 1e6 rows); a false alarm costs the
# run scikit-learn's time, at a rate of about n * SUM_TIE per draw. To it is
# added the rounding of scikit-learn's distances themselves, (d + 4) eps times
# sum_i w_i (|x_i|^2 + |c|^2) in its coordinates: far from its origin (rows
# at 1e6 that kmeans_plusplus does not centre, or rows of weight 0 far away
# that move KMeans's unweighted mean) that term dominates.
SUM_TIE = 1e-10
_EPS = np.finfo(np.float64).eps

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
    found = re.match(r"(\d+)\.(\d+)", sklearn.__version__)
    release = (int(found[1]), int(found[2])) if found else (0, 0)
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
    indices = _on_compiled(source, n_components, random_state, _plusplus)
    if indices is None:
        _, indices = kmeans_plusplus(
            source.init_view(),
            n_components,
            sample_weight=source.sample_weight,
            random_state=random_state,
        )
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
    try:
        out = method(_Rows(source), k, random_state)
    except BaseException:
        random_state.set_state(state)
        raise
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
        self.total = float(self.n) if w is None else float(w.sum())
        # Each feature's sum and sum of squares of y, unweighted (as
        # scikit-learn's tolerance and mean), in one pass with
        # sum_i w_i |y_i|^2, for the rounding of scikit-learn's distances.
        sums = np.zeros((3, source.n_features))
        for _, _, x, w in self.chunks(0, self.n):
            self.kernels.add_spread(x, w, source.center, sums)
        self.spread = sums[:2]
        self.norms = float(sums[2].sum())

    def rounding(self, shift, centres) -> float:
        """A bound on the rounding of a weighted sum of scikit-learn's
        squared distances to any of ``centres``, its rows being ``y +
        shift``: ``(d + 4) eps sum_i w_i (|y_i + shift|^2 + max |c + shift|^2)``,
        with ``|y + shift|^2 <= 2 |y|^2 + 2 |shift|^2``."""
        d = len(shift)
        largest = float(np.max(np.sum((centres + shift) ** 2, axis=1)))
        scale = 2.0 * self.norms + self.total * (2.0 * shift @ shift + largest)
        return (d + 4) * _EPS * scale

    def chunks(self, first, last):
        """``(start, stop, x, w)`` per chunk of rows ``first:last``."""
        source = self.source
        for start in range(first, last, source.chunk_size):
            stop = min(start + source.chunk_size, last)
            w = self.w[start:stop] if self.weighted else self.w
            yield (
                start,
                stop,
                kernel_rows(source.X[start:stop], source.dense.readonly),
                w,
            )

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


def _plusplus(rows: _Rows, k: int, random_state) -> np.ndarray | None:
    """The rows ``kmeans_plusplus`` seeds on (it does not centre ``X``: its
    origin is the origin)."""
    seeds = _seeding(rows, k, random_state, rows.source.center, by_row=True)
    return None if seeds is None else seeds[0]


def _seeding(rows: _Rows, k: int, random_state, shift, by_row=False):
    """``(indices, centres about the centre)`` of scikit-learn's
    ``_kmeans_plusplus``, draw for draw, on rows it sees as ``y + shift``;
    ``None`` at a tie. ``by_row``: whether the row drawn matters, or only its
    coordinates (two candidates on equal rows are then no tie)."""
    n, kernels, center = rows.n, rows.kernels, rows.source.center
    first = kernels.weighted_choice(rows.w, rows.total, random_state.random_sample())
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
        if np.any(gaps <= SUM_TIE * potential + rows.rounding(shift, centres)):
            return None
        ids[order] = ids.copy()
        candidates = rows.about_center(ids)
        pots = rows.potentials(centres, candidates)
        best = int(np.argmin(pots))
        margin = SUM_TIE * pots[best] + rows.rounding(
            shift, np.vstack([centres, candidates])
        )
        if by_row:
            other = ids != ids[best]
        else:
            other = np.any(candidates != candidates[best], axis=1)
        if np.any((pots <= pots[best] + margin) & other):
            return None
        potential = pots[best]
        indices.append(int(ids[best]))
        centres = np.vstack([centres, candidates[best]])
    return np.array(indices), centres


def _kmeans(rows: _Rows, k: int, random_state) -> np.ndarray | None:
    """scikit-learn's ``KMeans(k, n_init=1)`` labels: k-means++ seeds, then
    ``_kmeans_single_lloyd``; ``None`` at a tie or where KMeans would
    relocate an empty cluster or warn of fewer distinct ones."""
    # KMeans centres its copy of X on the unweighted mean: its coordinates
    # are ours plus shift.
    sums = rows.spread
    shift = -sums[0] / rows.n
    seeds = _seeding(rows, k, random_state, shift)
    if seeds is None:
        return None
    centres = seeds[1]
    # scikit-learn's _tolerance: the mean of the features' variances.
    mean = sums[0] / rows.n
    tol = float(np.mean(sums[1] / rows.n - mean**2)) * TOL
    labels = np.full(rows.n, -1, dtype=np.int32)
    center = rows.source.center

    def assign(centres):
        d = centres.shape[1]

        # A bound on |y|^2 + |c|^2 in KMeans's coordinates: 4 D + floor.
        floor = 6.0 * float(np.max(np.sum(centres**2, axis=1))) + 4.0 * float(
            shift @ shift
        )

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
                    floor,
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
        centre_shift = float(((moved - centres) ** 2).sum())
        centres = moved
        if changed == 0:
            converged = True
            break
        if abs(centre_shift - tol) <= SHIFT_TIE * tol:
            return None
        if centre_shift <= tol:
            break
    if not converged:
        *_, counts, _, ambiguous = assign(centres)
        if ambiguous or not np.all(counts > 0):
            return None
    return labels
