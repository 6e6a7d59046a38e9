"""Rows with missing values: exact EM for data missing at random.

Rows are split once per fit: complete rows take the chunked fast path of
:mod:`._stats` unchanged; incomplete rows are grouped by their pattern of
observed coordinates so that each group is handled with a few matrix
operations per component.

For a row with observed coordinates ``o`` and missing ``m``, component ``k``

* explains the row by the marginal density ``N(x_o | mu_o, S_oo)``;
* contributes *expected* statistics: the missing coordinates are replaced by
  their conditional mean ``mu_m + S_mo S_oo^-1 (x_o - mu_o)`` and the second
  moments gain the conditional covariance ``S_mm - S_mo S_oo^-1 S_om``.

That is the E-step of Dempster, Laird & Rubin (1977) for incomplete data, so
the lower bound (mean observed-data log-likelihood) never decreases. The
statistics land in the same ``(k, q)`` layout as complete rows, so the M-step
does not know missing values exist.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import linalg
from scipy.special import logsumexp

from ._covariance import Covariance
from ._params import MixtureParams
from ._stats import ChunkedEStep, SuffStats

_LOG_2PI = math.log(2.0 * math.pi)


@dataclass
class IncompleteGroup:
    """Rows sharing one pattern of observed coordinates."""

    observed: np.ndarray  # (d,) bool
    index: np.ndarray  # (n_p,) rows of the original data
    x_observed: np.ndarray  # (n_p, |o|) float64
    sample_weight: np.ndarray | None


@dataclass
class Rows:
    """A data set split into complete rows and groups of incomplete ones.

    ``x`` holds the complete rows (``X`` itself, uncopied, when nothing is
    missing) and ``index`` their positions in ``X`` (``None`` when all rows are
    complete).
    """

    x: np.ndarray
    sample_weight: np.ndarray | None
    n_samples: int
    index: np.ndarray | None = None
    groups: list[IncompleteGroup] = field(default_factory=list)


def has_missing(X: np.ndarray) -> bool:
    """Whether ``X`` (finite apart from NaN) has a NaN: one fast reduction.

    The sum of finite values cannot be NaN (overflow gives inf), so this costs
    one contiguous pass instead of a boolean mask of X.
    """
    return bool(np.isnan(X.sum(dtype=np.float64)))


def split_rows(X: np.ndarray, sample_weight: np.ndarray | None = None) -> Rows:
    """Split ``X`` by missingness; a row with nothing observed is an error."""
    if not has_missing(X):
        return Rows(X, sample_weight, len(X))
    missing = np.isnan(X)
    incomplete = missing.any(axis=1)
    if not incomplete.any():
        return Rows(X, sample_weight, len(X))
    _check_no_empty_rows(missing)
    complete = np.flatnonzero(~incomplete)
    rows_incomplete = np.flatnonzero(incomplete)
    patterns, inverse = np.unique(missing[rows_incomplete], axis=0, return_inverse=True)
    groups = []
    for p, pattern in enumerate(patterns):
        index = rows_incomplete[inverse.ravel() == p]
        observed = ~pattern
        groups.append(
            IncompleteGroup(
                observed=observed,
                index=index,
                x_observed=np.asarray(X[np.ix_(index, observed)], dtype=np.float64),
                sample_weight=None if sample_weight is None else sample_weight[index],
            )
        )
    return Rows(
        X[complete],
        None if sample_weight is None else sample_weight[complete],
        len(X),
        complete,
        groups,
    )


def _check_no_empty_rows(missing: np.ndarray) -> None:
    empty = missing.all(axis=1)
    if empty.any():
        rows = np.flatnonzero(empty)
        raise ValueError(
            f"{len(rows)} row(s) of X have every feature missing (NaN), e.g. row "
            f"{rows[0]}; such rows carry no information: drop them."
        )


def check_training_data(
    X: np.ndarray, sample_weight: np.ndarray | None, n_components: int
) -> None:
    """Raise ``ValueError`` when ``X`` cannot support a fit of ``n_components``.

    A feature missing in every row has no distribution to estimate, and every
    component needs at least one row of positive weight to start from.
    """
    missing = np.isnan(X) if has_missing(X) else None
    if missing is not None:
        _check_no_empty_rows(missing)
    never_observed = np.zeros(0) if missing is None else missing.all(axis=0)
    if never_observed.any():
        columns = np.flatnonzero(never_observed)
        raise ValueError(
            f"{len(columns)} feature(s) of X are missing (NaN) in every row, e.g. "
            f"feature {columns[0]}; a feature needs observed values to be modelled."
        )
    if sample_weight is not None:
        n_positive = int(np.count_nonzero(sample_weight))
        if n_positive < n_components:
            raise ValueError(
                f"sample_weight has {n_positive} positive value(s), fewer than "
                f"n_components = {n_components}; each component needs a row."
            )


def impute_means(X: np.ndarray, sample_weight: np.ndarray | None = None):
    """``X`` with each missing value replaced by its column's (weighted) mean.

    Used only to *start* EM (k-means cannot take NaN); ``X`` is returned as is
    when nothing is missing.
    """
    if not has_missing(X):
        return X
    column_means = nan_average(X, sample_weight)
    return np.where(np.isnan(X), column_means.astype(X.dtype), X)


def nan_average(X: np.ndarray, sample_weight: np.ndarray | None = None):
    """Per-column (weighted) mean over the observed values, in float64."""
    if not has_missing(X):
        return np.average(X, axis=0, weights=sample_weight).astype(np.float64)
    observed = ~np.isnan(X)
    weights = observed if sample_weight is None else observed * sample_weight[:, None]
    totals = np.where(observed, X, 0.0).astype(np.float64)
    return (totals * weights).sum(axis=0) / weights.sum(axis=0)


def nan_variance_scale(
    X: np.ndarray, sample_weight: np.ndarray | None = None, max_rows: int = 10_000
) -> float:
    """Mean over features of the (weighted) variance of the observed values.

    Only a scale for numerical thresholds, so an evenly strided subsample of at
    most ``max_rows`` rows is enough (and keeps this off the cost of a fit).
    """
    step = max(1, len(X) // max_rows)
    X = X[::step]
    if sample_weight is not None:
        sample_weight = sample_weight[::step]
        if not sample_weight.any():
            return 0.0
    deviation = X - nan_average(X, sample_weight)
    with np.errstate(invalid="ignore"):
        scale = nan_average(deviation * deviation, sample_weight).mean()
    return float(scale) if np.isfinite(scale) else 0.0


class _Conditional:
    """Marginal and conditional pieces of one component for one pattern."""

    def __init__(self, covariance_full, mean, observed):
        missing = ~observed
        s_oo = covariance_full[np.ix_(observed, observed)]
        self.chol = linalg.cholesky(s_oo, lower=True, check_finite=False)
        self.log_det = 2.0 * np.log(np.diag(self.chol)).sum()
        self.mean_o, self.mean_m = mean[observed], mean[missing]
        s_om = covariance_full[np.ix_(observed, missing)]
        # Regression of the missing coordinates on the observed ones.
        self.coef = linalg.cho_solve((self.chol, True), s_om, check_finite=False)
        self.cond_cov = covariance_full[np.ix_(missing, missing)] - s_om.T @ self.coef

    def log_density(self, x_observed):
        diff = x_observed - self.mean_o
        z = linalg.solve_triangular(self.chol, diff.T, lower=True, check_finite=False)
        n_observed = x_observed.shape[1]
        return -0.5 * (n_observed * _LOG_2PI + self.log_det + (z * z).sum(axis=0))

    def conditional_mean(self, x_observed):
        return self.mean_m + (x_observed - self.mean_o) @ self.coef


def _conditionals(group, params, covariance):
    n_components, n_features = params.means.shape
    full = covariance.full_covariances(params.covariances, n_components, n_features)
    return [
        _Conditional(full[k], params.means[k], group.observed)
        for k in range(n_components)
    ]


def _weighted_log_prob(group, params, conditionals):
    with np.errstate(divide="ignore"):
        log_weights = np.log(params.weights)
    return (
        np.stack([c.log_density(group.x_observed) for c in conditionals], axis=1)
        + log_weights
    )


def group_stats(
    group: IncompleteGroup,
    params: MixtureParams,
    covariance: Covariance,
    centers: np.ndarray,
) -> SuffStats:
    """Expected sufficient statistics of one group of incomplete rows.

    Component ``k``'s moments are taken about ``centers[k]``.
    """
    n_components, n_features = params.means.shape
    conditionals = _conditionals(group, params, covariance)
    log_prob = _weighted_log_prob(group, params, conditionals)
    log_norm = logsumexp(log_prob, axis=1)
    resp = np.exp(log_prob - log_norm[:, None])
    weight = group.sample_weight
    if weight is not None:
        resp *= weight[:, None]
    observed, missing = group.observed, ~group.observed
    n_second = covariance.n_second_order(n_features)
    moments = np.empty((n_components, covariance.n_features_total(n_features)))
    y = np.empty((n_features, len(group.index)))
    second = np.empty((n_second, len(group.index)))
    cond_cov = np.zeros((n_features, n_features))
    for k, conditional in enumerate(conditionals):
        center = centers[k]
        y[observed] = (group.x_observed - center[observed]).T
        y[missing] = (
            conditional.conditional_mean(group.x_observed) - center[missing]
        ).T
        covariance.second_order_features(y, second)
        cond_cov[np.ix_(missing, missing)] = conditional.cond_cov
        r = resp[:, k]
        total = r.sum()
        moments[k, 0] = total
        moments[k, 1 : n_features + 1] = y @ r
        moments[k, n_features + 1 :] = second @ r + total * covariance.second_order_of(
            cond_cov
        )
    log_likelihood = log_norm.sum() if weight is None else weight @ log_norm
    total_weight = len(group.index) if weight is None else weight.sum()
    return SuffStats(moments, float(log_likelihood), float(total_weight))


def accumulate_rows(
    estep: ChunkedEStep, rows: Rows, params: MixtureParams
) -> SuffStats:
    """E-step over complete and incomplete rows alike."""
    local = estep.local_centres(params)
    stats = estep.accumulate(rows.x, rows.sample_weight, params, local)
    if not rows.groups:
        return stats
    centers = (
        np.tile(estep.center, (len(params.weights), 1))
        if local is None
        else stats.centers
    )
    for group in rows.groups:
        stats = stats + group_stats(group, params, estep.covariance, centers)
    return stats


def evaluate_rows(
    estep: ChunkedEStep, rows: Rows, params: MixtureParams, output: str, dtype
) -> np.ndarray:
    """Per-row ``'labels'``, ``'resp'`` or ``'log_prob'`` in the rows' order."""
    n_components = params.means.shape[0]
    out = {
        "labels": lambda n: np.empty(n, dtype=np.intp),
        "resp": lambda n: np.empty((n, n_components), dtype=dtype),
        "log_prob": lambda n: np.empty(n, dtype=dtype),
    }[output]
    result = out(rows.n_samples)
    complete = result if rows.index is None else out(len(rows.x))
    estep.evaluate(rows.x, params, **{_KEYWORDS[output]: complete})
    if rows.index is None:
        return result
    result[rows.index] = complete
    for group in rows.groups:
        conditionals = _conditionals(group, params, estep.covariance)
        log_prob = _weighted_log_prob(group, params, conditionals)
        log_norm = logsumexp(log_prob, axis=1)
        if output == "labels":
            result[group.index] = log_prob.argmax(axis=1)
        elif output == "resp":
            result[group.index] = np.exp(log_prob - log_norm[:, None])
        else:
            result[group.index] = log_norm
    return result


_KEYWORDS = {"labels": "labels_out", "resp": "resp_out", "log_prob": "log_norm_out"}
