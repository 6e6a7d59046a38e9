"""The incomplete-row E-step kernel: exact EM for data missing at random.

For a row with observed coordinates ``o`` and missing ``m``, component ``k``

* explains the row by the marginal density ``N(x_o | mu_o, S_oo)``;
* contributes *expected* statistics: the missing coordinates are replaced by
  their conditional mean and the second moments gain the conditional
  covariance.

That is the E-step of Dempster, Laird & Rubin (1977) for incomplete data, so
the lower bound (mean observed-data log-likelihood) never decreases.

Everything is written with the component's precision ``P = S^-1``, so that the
only per-row linear algebra is on the *missing* block (Schur complements):

* ``t = P diff`` with ``diff`` zero at the missing coordinates: one matrix
  product for all rows of a chunk;
* ``S_oo^-1 = P_oo - P_om P_mm^-1 P_mo``, so the Mahalanobis term is
  ``diff . t - t_m . P_mm^-1 t_m``;
* ``log det S_oo = log det S + log det P_mm``;
* ``E[x_m | x_o] = mu_m - P_mm^-1 t_m`` and ``Cov[x_m | x_o] = P_mm^-1``.

``P_mm^-1`` is computed once per distinct pattern in a chunk and rows are
handled in groups of equal missing count, so the cost is vectorised whatever
the number of patterns. The statistics land in the same ``(k, q)`` layout as
complete rows, so the M-step does not know missing values exist.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._covariance import LOG_2PI, Covariance
from ._model import Mixture
from ._stats import normalize

# Bytes of per-chunk working set to aim for (completed rows per component,
# feature rows, gathered conditional covariances).
_CHUNK_BYTES = 1 << 22


@dataclass
class MissingPrepared:
    """Per-pass constants: means, precisions, log-determinants, centres."""

    means: np.ndarray
    precisions: np.ndarray
    log_det_covariances: np.ndarray
    log_weights: np.ndarray
    centers: np.ndarray


@dataclass
class _Group:
    """Rows of a chunk with the same number ``s`` of missing coordinates."""

    rows: np.ndarray  # (r,) positions in the chunk
    missing: np.ndarray  # (r, s) missing coordinates of each row
    patterns: np.ndarray  # (u, s) distinct rows of ``missing``
    inverse: np.ndarray  # (r,) pattern of each row


def _groups(mask: np.ndarray) -> list[_Group]:
    n_missing = mask.sum(axis=1)
    groups = []
    for s in np.unique(n_missing):
        if s == 0:
            continue
        rows = np.flatnonzero(n_missing == s)
        missing = np.nonzero(mask[rows])[1].reshape(len(rows), s)
        patterns, inverse = np.unique(missing, axis=0, return_inverse=True)
        groups.append(_Group(rows, missing, patterns, inverse.reshape(-1)))
    return groups


class MissingKernel:
    """The E-step on rows with missing values (NaN), one chunk at a time."""

    def __init__(self, covariance: Covariance, n_features: int, n_components: int):
        self.covariance = covariance
        self.n_features = n_features
        self.n_components = n_components
        q = covariance.n_features_total(n_features)
        per_row = 8 * (n_components * (n_features + 1) + q + n_features**2)
        self.chunk_size = max(16, _CHUNK_BYTES // per_row)

    def prepare(self, model: Mixture, centers: np.ndarray) -> MissingPrepared:
        """Constants of one pass; component ``k``'s moments are about ``centers[k]``."""
        log_det = -2.0 * model.covariance.log_det_cholesky(
            model.precisions_cholesky, self.n_features
        )
        return MissingPrepared(
            model.means,
            model.full_precisions(),
            np.broadcast_to(log_det, (self.n_components,)),
            model.log_weights(),
            centers,
        )

    def _sub_chunks(self, m: int):
        step = self.chunk_size
        return ((s, min(s + step, m)) for s in range(0, m, step))

    def _conditional(self, x0, mask, groups, prep, keep):
        """Weighted log-densities (k, m); with ``keep``, the completed rows
        (k, m, d) and each group's conditional covariances per component."""
        m, d = x0.shape
        log_prob = np.empty((self.n_components, m))
        n_observed = d - mask.sum(axis=1)
        completed = np.empty((self.n_components, m, d)) if keep else None
        covariances = []
        diff = np.empty_like(x0)
        for k in range(self.n_components):
            mean, precision = prep.means[k], prep.precisions[k]
            np.subtract(x0, mean, out=diff)
            diff[mask] = 0.0
            t = diff @ precision
            quad = np.einsum("md,md->m", diff, t)
            log_det = np.full(m, prep.log_det_covariances[k])
            if keep:
                completed[k] = x0
            per_group = []
            for g in groups:
                blocks = precision[g.patterns[:, :, None], g.patterns[:, None, :]]
                inverses = np.linalg.inv(blocks)
                log_det[g.rows] += np.linalg.slogdet(blocks)[1][g.inverse]
                t_m = np.take_along_axis(t[g.rows], g.missing, axis=1)
                shift = np.einsum("rab,rb->ra", inverses[g.inverse], t_m)
                quad[g.rows] -= np.einsum("ra,ra->r", t_m, shift)
                if keep:
                    completed[k, g.rows[:, None], g.missing] = mean[g.missing] - shift
                    per_group.append(inverses)
            covariances.append(per_group)
            log_prob[k] = prep.log_weights[k] - 0.5 * (
                n_observed * LOG_2PI + log_det + quad
            )
        return log_prob, completed, covariances

    def log_prob(
        self, x: np.ndarray, mask: np.ndarray, prep: MissingPrepared
    ) -> np.ndarray:
        """``log pi_k + log N_k(x_o)`` (k, m) of incomplete rows."""
        out = np.empty((self.n_components, len(x)))
        for start, stop in self._sub_chunks(len(x)):
            x0, sub_mask = self._zero_filled(x[start:stop], mask[start:stop])
            out[:, start:stop] = self._conditional(
                x0, sub_mask, _groups(sub_mask), prep, keep=False
            )[0]
        return out

    @staticmethod
    def _zero_filled(x, mask):
        x0 = x.astype(np.float64)
        x0[mask] = 0.0
        return x0, mask

    def stats(
        self,
        x: np.ndarray,
        mask: np.ndarray,
        w: np.ndarray | None,
        prep: MissingPrepared,
    ) -> tuple[np.ndarray, float]:
        """Expected moments (k, q) and summed weighted log-likelihood."""
        d, k = self.n_features, self.n_components
        covariance = self.covariance
        moments = np.zeros((k, covariance.n_features_total(d)))
        log_likelihood = 0.0
        for start, stop in self._sub_chunks(len(x)):
            x0, sub_mask = self._zero_filled(x[start:stop], mask[start:stop])
            groups = _groups(sub_mask)
            log_prob, completed, conditional = self._conditional(
                x0, sub_mask, groups, prep, keep=True
            )
            log_norm = normalize(log_prob)
            if w is None:
                log_likelihood += float(log_norm.sum())
            else:
                weight = w[start:stop]
                log_likelihood += float(weight @ log_norm)
                log_prob *= weight
            f = np.empty((covariance.n_features_total(d), stop - start))
            f[0] = 1.0
            for j in range(k):
                np.subtract(completed[j].T, prep.centers[j][:, None], out=f[1 : d + 1])
                covariance.second_order_features(f[1 : d + 1], f[d + 1 :])
                r = log_prob[j]
                moments[j] += f @ r
                spread = np.zeros(d * d)
                for g, inverses in zip(groups, conditional[j], strict=True):
                    totals = np.bincount(
                        g.inverse, weights=r[g.rows], minlength=len(g.patterns)
                    )
                    cells = g.patterns[:, :, None] * d + g.patterns[:, None, :]
                    spread += np.bincount(
                        cells.ravel(),
                        weights=(totals[:, None, None] * inverses).ravel(),
                        minlength=d * d,
                    )
                moments[j, d + 1 :] += covariance.second_order_of(spread.reshape(d, d))
        return moments, log_likelihood
