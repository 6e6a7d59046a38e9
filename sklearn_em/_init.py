"""Initial parameters: from user values, or from responsibilities drawn like sklearn.

For scikit-learn's four methods the random draws consume ``random_state`` in
the same order and with the same calls as ``sklearn.mixture.GaussianMixture``,
so for unweighted data a given ``random_state`` starts both libraries from the
same parameters. ``'multistart'`` is ours: a search over many starts (see
:mod:`._optima`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state

from ._em import params_from_stats
from ._kmeans import kmeans_labels, kmeans_plusplus_indices
from ._model import Mixture
from ._optima import MULTISTART, multistart_model

# RandomStates lent out by random_state_of, each re-seeded for the next fit.
_spare_states: list[np.random.RandomState] = []


@contextmanager
def random_state_of(seed) -> Iterator[np.random.RandomState]:
    """``check_random_state(seed)`` for the duration, made faster for an int.

    ``np.random.RandomState(seed)`` took ~200 us here, a share of a small
    fit (1.7 ms for 1,000 rows): its constructor first seeds a generator
    from the OS's entropy, then seeds it again from ``seed``. Re-seeding an
    existing one takes ~2 us and gives the same stream (the same legacy
    seeding, and no Gaussian kept from earlier draws). An int borrows a
    spare RandomState for the block and returns it after, so no two fits
    (nested in a callback, or in other threads) ever share one; anything
    else is ``check_random_state``'s, as it is.
    """
    if not isinstance(seed, Integral):
        yield check_random_state(seed)
        return
    try:
        state = _spare_states.pop()
    except IndexError:  # none spare: one more (list.pop is atomic)
        state = np.random.RandomState()
    try:
        state.seed(seed)
        yield state
    finally:
        _spare_states.append(state)


def initial_assignment(
    source,
    init_params: str,
    random_state: np.random.RandomState,
    *,
    reg_covar: float = 1e-6,
) -> dict:
    """Responsibilities to start from: ``{'labels': ...}`` or ``{'resp': ...}``.

    Labels of -1 mark rows that belong to no component (for the methods that
    seed each component with a single row). Only the k-means methods and
    ``'multistart'`` need the rows themselves (``source.init_view()``); the
    others draw from their count and weights alone. ``'multistart'`` gives
    the posteriors of the best model its search finds, which runs with
    ``reg_covar``.
    """
    n_samples, n_components = source.n_samples, source.n_components
    sample_weight = source.sample_weight
    if init_params == MULTISTART:
        model = multistart_model(source, random_state=random_state, reg_covar=reg_covar)
        return {"resp": source.responsibilities(model)}
    if init_params == "kmeans":
        return {"labels": kmeans_labels(source, n_components, random_state)}
    if init_params == "random":
        resp = random_state.uniform(size=(n_samples, n_components))
        resp /= resp.sum(axis=1)[:, None]
        return {"resp": resp}
    if init_params == "random_from_data":
        p = None if sample_weight is None else sample_weight / sample_weight.sum()
        indices = random_state.choice(n_samples, size=n_components, replace=False, p=p)
    else:  # "k-means++"; the parameter constraints rule out anything else
        indices = kmeans_plusplus_indices(source, n_components, random_state)
    labels = np.full(n_samples, -1, dtype=np.intp)
    labels[indices] = np.arange(n_components)
    return {"labels": labels}


def initial_model(
    source,
    *,
    init_params: str,
    random_state: np.random.RandomState,
    reg_covar: float,
    weights_init: np.ndarray | None = None,
    means_init: np.ndarray | None = None,
    precisions_init: np.ndarray | None = None,
) -> Mixture:
    """Starting parameters; user-given values take precedence over drawn ones.

    ``source`` is a data source (see :mod:`._data`). Random draws happen only
    when some of the three user values are missing, exactly as in
    scikit-learn.
    """
    covariance = source.covariance
    drawn = None
    if init_params == MULTISTART and (
        weights_init is None or means_init is None or precisions_init is None
    ):
        # The search's model itself: an M-step from its posteriors would
        # only be one more EM iteration.
        drawn = multistart_model(source, random_state=random_state, reg_covar=reg_covar)
    elif weights_init is None or means_init is None or precisions_init is None:
        assignment = initial_assignment(source, init_params, random_state)
        drawn = params_from_stats(
            source.stats_given(**assignment), covariance, reg_covar
        )
    weights = drawn.weights if weights_init is None else weights_init
    means = drawn.means if means_init is None else means_init
    if precisions_init is None:
        covariances, precisions_cholesky = drawn.covariances, drawn.precisions_cholesky
    else:
        covariances = covariance.covariances_from_precisions(precisions_init)
        precisions_cholesky = covariance.cholesky_from_precisions(precisions_init)

    def f64(a):
        # A copy: the fitted attributes must never alias the user's arrays.
        return np.array(a, dtype=np.float64)

    return Mixture(
        f64(weights), f64(means), f64(covariances), f64(precisions_cholesky), covariance
    )
