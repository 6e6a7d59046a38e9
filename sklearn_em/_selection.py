"""Model selection: the number of components and the covariance type by an
information criterion, as R's mclust chooses them."""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, _fit_context
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from ._covariance import COVARIANCE_TYPES, IllDefinedCovariance, get_covariance
from ._data import TrainingData
from ._em import params_from_stats
from ._engine import pinning
from ._estimator import (
    GaussianMixture,
    _is_dask,
    _progress_bar,
    _validate_sample_weight,
)
from ._init import initial_assignment
from ._threads import single_threaded_blas

CRITERIA = ("bic", "aic", "icl")


class GaussianMixtureIC(ClusterMixin, BaseEstimator):
    """A Gaussian mixture whose number of components and covariance type are
    chosen by an information criterion.

    Fits :class:`GaussianMixture` over a grid of ``n_components`` x
    ``covariance_type`` and keeps the model of lowest criterion: BIC by
    default, as R's mclust does (whose BIC is the same up to sign and a
    factor), or AIC, or ICL (the integrated completed likelihood: BIC plus
    twice the entropy of the hard classification, which prefers
    well-separated clusters). Each ``n_components`` draws its initialisations
    once (``init_params``, ``random_state``) and every covariance type starts
    from them: every cell of the grid is the fit ``GaussianMixture(k,
    covariance_type=t, random_state=random_state, ...)`` would give, at a
    fraction of the cost of drawing them anew.

    Parameters
    ----------
    n_components : int or array-like of int, default=9
        The numbers of components to try: ``1..n_components`` for an int.
    covariance_type : {'all', 'full', 'tied', 'diag', 'spherical'} or list, \
            default='all'
        The covariance types to try.
    criterion : {'bic', 'aic', 'icl'}, default='bic'
        What to minimise.
    tol : float, default=1e-5
        Convergence threshold of every fit (mean log-likelihood per sample).
        **Tighter than GaussianMixture's 1e-3**: a choice compares fits, and
        fits stopped early can change it. On the Old Faithful data, 1e-3
        picks 2 full components and 1e-4 or less 3 tied ones, as R's mclust
        (benchmarks/bench_selection.py).
    reg_covar, max_iter, n_init, init_params, verbose, chunk_size, n_jobs
        Passed to every :class:`GaussianMixture` of the grid. With
        ``init_params='multistart'`` the search for a good start runs once
        per number of components, with full covariances, and every type
        starts from the posteriors of the best model it found.
    progress : bool, default=False
        Show a progress bar (tqdm) over the cells of the grid.
    random_state : int, RandomState instance or None, default=None
        Seeds the initialisations; with an int, each cell is the fit of
        ``GaussianMixture(random_state=random_state)``.

    Attributes
    ----------
    criteria_ : dict of ndarray
        One entry per fitted cell, ready for ``pandas.DataFrame``:
        ``n_components``, ``covariance_type``, ``bic``, ``aic``, ``icl``,
        ``log_likelihood`` (summed, weighted), ``n_parameters``, ``converged``,
        ``n_iter``, ``error`` (why a cell could not be fitted; its numbers
        are then NaN) and ``warnings`` (the messages its fit raised: only the
        chosen cell's are issued again, so a grid of mostly poor models does
        not flood the user with their convergence warnings).
    best_estimator_ : GaussianMixture
        The fitted model of the chosen cell.
    n_components_ : int
        Number of components of the chosen model.
    covariance_type_ : str
        Covariance type of the chosen model.
    n_iter_ : int
        EM iterations of the chosen model.
    labels_ : ndarray of shape (n_samples,)
        The chosen model's labels of the training rows.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string names.

    Examples
    --------
    >>> from sklearn_em import GaussianMixtureIC
    >>> from sklearn_em.datasets import make_three_gaussians
    >>> X, _ = make_three_gaussians(1500, random_state=0)
    >>> ic = GaussianMixtureIC(n_components=5, random_state=0).fit(X)
    >>> ic.n_components_, ic.covariance_type_
    (3, 'full')
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left"), "array-like"],
        "covariance_type": [
            StrOptions({"all", *COVARIANCE_TYPES}),
            list,
            tuple,
        ],
        "criterion": [StrOptions(set(CRITERIA))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 0, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "init_params": [
            StrOptions(
                {"kmeans", "random", "random_from_data", "k-means++", "multistart"}
            )
        ],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "progress": ["boolean"],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        "n_jobs": [Integral, None],
    }

    def __init__(
        self,
        n_components=9,
        *,
        covariance_type="all",
        criterion="bic",
        tol=1e-5,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        random_state=None,
        verbose=0,
        progress=False,
        chunk_size=None,
        n_jobs=None,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.criterion = criterion
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.random_state = random_state
        self.verbose = verbose
        self.progress = progress
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs

    def _grid(self) -> tuple[list[int], list[str]]:
        if isinstance(self.n_components, Integral):
            ks = list(range(1, int(self.n_components) + 1))
        else:
            ks = [int(k) for k in np.asarray(self.n_components).ravel()]
            if not ks or min(ks) < 1:
                raise ValueError(
                    "n_components must be a positive int or a non-empty list of "
                    f"positive ints, got {self.n_components!r}."
                )
        types = self.covariance_type
        if isinstance(types, str):
            types = list(COVARIANCE_TYPES) if types == "all" else [types]
        unknown = set(types) - set(COVARIANCE_TYPES)
        if unknown or not types:
            raise ValueError(
                f"covariance_type must be 'all' or among {list(COVARIANCE_TYPES)}, "
                f"got {self.covariance_type!r}."
            )
        return ks, list(types)

    def _cell(self, k, covariance_type, **init) -> GaussianMixture:
        return GaussianMixture(
            k,
            covariance_type=covariance_type,
            tol=self.tol,
            reg_covar=self.reg_covar,
            max_iter=self.max_iter,
            init_params=self.init_params,
            verbose=self.verbose,
            chunk_size=self.chunk_size,
            n_jobs=self.n_jobs,
            **init,
        )

    def fit(self, X, y=None, sample_weight=None):
        """Fit every cell of the grid and keep the best by ``criterion``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data (NaN for missing values; a Dask array works too).
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows, for every fit and every criterion.

        Returns
        -------
        self : GaussianMixtureIC
        """
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    @pinning
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the grid and return the chosen model's labels of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        ks, types = self._grid()
        if _is_dask(X):
            from ._dask import check_dask_input

            X, sample_weight = check_dask_input(self, X, sample_weight, reset=True)
            normalised, total_weight = None, None
        else:
            X = validate_data(
                self,
                X,
                dtype=[np.float64, np.float32],
                ensure_min_samples=2,
                ensure_all_finite="allow-nan",
            )
            normalised, log_scale = _validate_sample_weight(sample_weight, X)
            if normalised is not None:
                sample_weight = normalised * math.exp(log_scale)
            total_weight = len(X) if normalised is None else float(sample_weight.sum())
        seed = self.random_state
        if not isinstance(seed, Integral):
            seed = check_random_state(seed).randint(np.iinfo(np.int32).max)
        rows = []
        best = None
        bar = None
        if self.progress:
            bar = _progress_bar(total=len(ks) * len(types), desc="grid", leave=False)
        try:
            best = self._fit_grid(X, sample_weight, normalised, total_weight, ks, types,
                                  seed, rows, bar)  # fmt: skip
        finally:
            if bar is not None:
                bar.close()
        self._finish(rows, best)
        return self.labels_

    def _fit_grid(self, X, sample_weight, normalised, total_weight, ks, types, seed,
                  rows, bar):  # fmt: skip
        best = None
        for k in ks:
            with warnings.catch_warnings(record=True) as drawing:
                warnings.simplefilter("always")
                starts, error = self._shared_starts(X, normalised, k, types, seed)
            for covariance_type in types:
                fitted, cell_error = None, error
                with warnings.catch_warnings(record=True) as fitting:
                    warnings.simplefilter("always")
                    if starts is not None:
                        draws, cell_error = starts[covariance_type]
                        if draws:
                            fitted, cell_error = self._fit_cell(
                                X, sample_weight, k, covariance_type, draws, seed
                            )
                row = self._criteria(fitted, X, sample_weight, total_weight)
                caught = [*drawing, *fitting]
                row.update(
                    n_components=k,
                    covariance_type=covariance_type,
                    error=cell_error,
                    warnings=tuple(str(w.message) for w in caught),
                )
                rows.append(row)
                score = row[self.criterion]
                if np.isfinite(score) and (best is None or score < best[0]):
                    best = (score, fitted, caught)
                if bar is not None:
                    bar.set_postfix(model=f"{k} {covariance_type}")
                    bar.update()
        return best

    def _finish(self, rows, best):
        self.criteria_ = {
            name: _column([row[name] for row in rows], dtype)
            for name, dtype in (
                ("n_components", np.intp),
                ("covariance_type", object),
                ("bic", np.float64),
                ("aic", np.float64),
                ("icl", np.float64),
                ("log_likelihood", np.float64),
                ("n_parameters", np.float64),
                ("converged", bool),
                ("n_iter", np.intp),
                ("error", object),
                ("warnings", object),
            )
        }
        if best is None:
            raise ValueError(
                "No model of the grid could be fitted: "
                + "; ".join(f"{r['n_components']}/{r['covariance_type']}: "
                            f"{r['error']}" for r in rows[:4])
            )  # fmt: skip
        for caught in best[2]:
            warnings.warn(caught.message, caught.category, stacklevel=2)
        self.best_estimator_ = best[1]
        self.n_components_ = self.best_estimator_.n_components
        self.covariance_type_ = self.best_estimator_.covariance_type
        self.n_iter_ = self.best_estimator_.n_iter_
        self.labels_ = self.best_estimator_.labels_

    def _shared_starts(self, X, sample_weight, k, types, seed):
        """Initial parameters of every covariance type for each of the
        ``n_init`` draws at ``k`` components: ``{type: (starts, error)}``."""
        n_samples = X.shape[0]
        if n_samples < k:
            return None, (
                f"Expected n_samples >= n_components but got n_components = {k}, "
                f"n_samples = {n_samples}"
            )
        probe = self._cell(k, "full")
        random_state = check_random_state(seed)
        draws = {t: [] for t in types}
        errors = dict.fromkeys(types)
        with single_threaded_blas():
            data = probe._source(X, sample_weight, get_covariance("full"))
            for _ in range(self.n_init):
                source = data.initialization_source(random_state)
                assignment = initial_assignment(
                    source, self.init_params, random_state, reg_covar=self.reg_covar
                )
                for t in types:
                    covariance = get_covariance(t)
                    typed = TrainingData(
                        source.X,
                        source.sample_weight,
                        covariance,
                        k,
                        chunk_size=self.chunk_size,
                        n_jobs=self.n_jobs,
                        center=source.center,
                        training=False,
                        feature_variances=source.feature_variances,
                        guarded=False,
                    )
                    try:
                        model = params_from_stats(
                            typed.stats_given(**assignment), covariance, self.reg_covar
                        )
                    except IllDefinedCovariance as exc:
                        errors[t] = str(exc)
                        continue
                    draws[t].append((model.weights, model.means, model.precisions))
        return {t: (draws[t], errors[t]) for t in types}, None

    def _fit_cell(self, X, sample_weight, k, covariance_type, draws, seed):
        """The best of the cell's ``n_init`` runs from the shared starts."""
        best, error = None, None
        for weights, means, precisions in draws:
            cell = self._cell(
                k,
                covariance_type,
                weights_init=weights,
                means_init=means,
                precisions_init=precisions,
            )
            try:
                cell.fit(X, sample_weight=sample_weight)
            except ValueError as exc:
                error = str(exc)
                continue
            if best is None or cell.lower_bound_ > best.lower_bound_:
                best = cell
        if best is None:
            return None, error
        # The chosen model as the estimator that refits to it on its own.
        best.set_params(
            weights_init=None,
            means_init=None,
            precisions_init=None,
            n_init=self.n_init,
            random_state=seed,
        )
        return best, None

    def _criteria(self, model, X, sample_weight, total_weight) -> dict:
        nan = float("nan")
        if model is None:
            return dict(
                bic=nan, aic=nan, icl=nan, log_likelihood=nan, n_parameters=nan,
                converged=False, n_iter=0,
            )  # fmt: skip
        log_likelihood, hard = _log_likelihoods(model, X, sample_weight)
        if total_weight is None:  # Dask: the weight comes with the pass
            total_weight = hard[1]
        p = model._n_parameters()
        bic = -2 * log_likelihood + p * math.log(total_weight)
        return dict(
            bic=bic,
            aic=-2 * log_likelihood + 2 * p,
            icl=bic - 2 * hard[0],
            log_likelihood=log_likelihood,
            n_parameters=float(p),
            converged=bool(model.converged_),
            n_iter=int(model.n_iter_),
        )

    # -- the chosen model --
    def _best(self) -> GaussianMixture:
        check_is_fitted(self)
        return self.best_estimator_

    def predict(self, X):
        """Most probable component of each row, under the chosen model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to label.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self._best().predict(X)

    def predict_proba(self, X):
        """Posterior probability of each component, under the chosen model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.

        Returns
        -------
        resp : ndarray of shape (n_samples, `n_components_`)
        """
        return self._best().predict_proba(X)

    def score_samples(self, X):
        """Log-likelihood of each row under the chosen model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
        """
        return self._best().score_samples(X)

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood of ``X`` under the chosen model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows in the mean.

        Returns
        -------
        log_likelihood : float
        """
        return self._best().score(X, sample_weight=sample_weight)

    def sample(self, n_samples=1):
        """Draw samples from the chosen model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to draw.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component of each sample.
        """
        return self._best().sample(n_samples)

    def bic(self, X):
        """Bayesian information criterion of the chosen model on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        bic : float
            Lower is better.
        """
        return self._best().bic(X)

    def aic(self, X):
        """Akaike information criterion of the chosen model on ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        aic : float
            Lower is better.
        """
        return self._best().aic(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


def _column(values: list, dtype) -> np.ndarray:
    """One column of ``criteria_``; object columns element by element (a
    tuple per cell stays one element)."""
    if dtype is not object:
        return np.array(values, dtype=dtype)
    column = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        column[i] = value
    return column


def _log_likelihoods(model, X, sample_weight):
    """Summed (weighted) log-likelihood of ``X``, and ``(sum w log max_k r,
    total weight)`` for ICL: one pass, chunk by chunk, so that nothing of size
    n is held (one lazy reduction for Dask)."""
    if _is_dask(X):
        import dask

        log_prob = model.score_samples(X).astype(np.float64)
        top = model.predict_proba(X).max(axis=1).astype(np.float64)
        w = 1.0 if sample_weight is None else sample_weight
        total, hard, weight = dask.compute(
            (log_prob * w).sum(), (np.log(top) * w).sum(), (log_prob * 0 + w).sum()
        )
        return float(total), (float(hard), float(weight))
    # One pass of the chosen model's E-step: log p(x) and the largest
    # responsibility of every chunk together, summed as they come.
    data, mixture = model._inference_source(X)
    parts = []

    def emit(start, stop, rows, resp, log_norm):
        with np.errstate(divide="ignore"):
            top = np.log(resp.max(axis=0))
        if sample_weight is None:
            parts.append((float(log_norm.sum()), float(top.sum())))
            return
        w = sample_weight[start:stop]
        w = w if rows is None else w[rows]
        parts.append((float(w @ log_norm), float(w @ top)))

    with single_threaded_blas():
        data._posterior(mixture, emit)
    total, hard = (math.fsum(values) for values in zip(*parts, strict=True))
    return total, (hard, None)
