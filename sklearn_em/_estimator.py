"""The scikit-learn face of the library: parameters, validation, fitted attributes."""

from __future__ import annotations

import copy
import math
import sys
import warnings
from functools import cache
from numbers import Integral, Real
from time import perf_counter

import numpy as np
from sklearn import get_config
from sklearn.base import BaseEstimator, ClusterMixin, _fit_context
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array, check_random_state
from sklearn.utils._param_validation import (
    Interval,
    InvalidParameterError,
    StrOptions,
)
from sklearn.utils.validation import (
    _check_sample_weight,
    _num_samples,
    check_is_fitted,
    validate_data,
)

from ._covariance import (
    COVARIANCE_TYPES,
    Covariance,
    IllDefinedCovariance,
    get_covariance,
)
from ._data import NotFinite, TrainingData, all_finite
from ._em import COLLAPSE_FLOOR, run_em, stats_from_model
from ._engine import pinning
from ._init import initial_model, random_state_of
from ._model import Mixture
from ._online import OnlineState, online_step
from ._threads import single_threaded_blas


class DegenerateComponentWarning(UserWarning):
    """A component collapsed during EM and was re-seeded."""


# The parameters both estimators have, validated as scikit-learn does.
_SHARED_CONSTRAINTS: dict = {
    "n_components": [Interval(Integral, 1, None, closed="left")],
    "covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
    "tol": [Interval(Real, 0.0, None, closed="left")],
    "reg_covar": [Interval(Real, 0.0, None, closed="left")],
    "max_iter": [Interval(Integral, 0, None, closed="left")],
    "n_init": [Interval(Integral, 1, None, closed="left")],
    "init_params": [
        StrOptions({"kmeans", "random", "random_from_data", "k-means++", "multistart"})
    ],
    "random_state": ["random_state"],
    "warm_start": ["boolean"],
    "verbose": ["verbose"],
    "verbose_interval": [Interval(Integral, 1, None, closed="left")],
    "progress": ["boolean"],
    "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
    "n_jobs": [Integral, None],
    "learning_decay": [Interval(Real, 0, 1, closed="both")],
    "learning_offset": [Interval(Real, 0, None, closed="left")],
}


try:
    from sklearn.callback import CallbackSupportMixin as _CallbackSupport
except ImportError:  # scikit-learn < 1.9 has no callback API

    class _CallbackSupport:  # type: ignore[no-redef]
        pass


class _BaseMixture(_CallbackSupport, ClusterMixin, BaseEstimator):
    """What the mixture estimators share: validation, the data source,
    attributes from a model value, inference and progress messages.

    Subclasses implement ``_fit(X, sample_weight, log_scale)`` and
    ``_partial_fit(X, sample_weight, log_scale, first)``. Where scikit-learn
    has its (experimental, >= 1.9) callback API, ``set_callbacks`` works: a
    fit is a task whose subtasks are the initializations, whose subtasks are
    the iterations; a callback can stop a run after any iteration.
    """

    def fit(self, X, y=None, sample_weight=None):
        """Estimate the mixture parameters with the EM algorithm.

        Runs ``n_init`` initializations and keeps the one with the largest lower
        bound. Each iterates E- and M-steps until the lower bound changes by
        less than ``tol`` or ``max_iter`` is reached (then a
        ``ConvergenceWarning`` is issued).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, one row per sample.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row: its share in every statistic, as if
            it were repeated that many times (weights need not be integers).
            ``None`` weighs every row 1.

        Returns
        -------
        self : GaussianMixture
            The fitted estimator.
        """
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    @_fit_context(prefer_skip_nested_validation=True)
    @pinning
    def fit_predict(self, X, y=None, sample_weight=None):
        """Fit the model to ``X`` and return the most probable component of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data, one row per sample.
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row: its share in every statistic, as if
            it were repeated that many times (weights need not be integers).
            ``None`` weighs every row 1.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels, identical to ``fit(X).predict(X)``.
        """
        if _is_dask(X):
            from ._dask import check_dask_input

            # Weights are checked and scaled in the Dask source's first pass.
            X, sample_weight = check_dask_input(self, X, sample_weight, reset=True)
            log_scale = 0.0
        elif _is_array_api(X):
            from ._array_api import check_array_api_input

            X, sample_weight, log_scale = check_array_api_input(
                self, X, sample_weight, reset=True
            )
        else:
            X = validate_data(
                self,
                X,
                dtype=[np.float64, np.float32],
                ensure_min_samples=2,
                ensure_all_finite="allow-nan",
            )
            sample_weight, log_scale = _validate_sample_weight(sample_weight, X)
        if X.shape[0] < self.n_components:
            raise ValueError(
                "Expected n_samples >= n_components but got "
                f"n_components = {self.n_components}, n_samples = {X.shape[0]}"
            )
        do_init = not (self.warm_start and hasattr(self, "converged_"))
        self._callbacks_begin(X, self.n_init if do_init else 1)
        try:
            with single_threaded_blas():
                labels = self._fit(X, sample_weight, log_scale)
            if _is_array_api(X):
                from ._array_api import move_fitted

                # Fitted on the host (the tiny M-step); kept where X lives.
                move_fitted(self, X)
        finally:
            self._close_progress()
        self._callbacks_end()
        return labels

    @classmethod
    def _get_param_names(cls):
        # scikit-learn inspects the signature of __init__ on every call
        # (get_params, and so every fit's parameter validation): ~30 us.
        return list(_param_names(cls))

    def _validate_params(self):
        super()._validate_params()
        # A bool is an Integral to scikit-learn's validation; not a count here.
        if isinstance(self.n_components, bool):
            raise InvalidParameterError(
                f"The 'n_components' parameter of {type(self).__name__} must be an "
                f"int in the range [1, inf). Got {self.n_components!r} instead."
            )
        if self.n_jobs == 0:
            raise InvalidParameterError(
                f"The 'n_jobs' parameter of {type(self).__name__} must be None, a "
                "positive int or a negative int (-1: all cores). Got 0 instead."
            )

    @_fit_context(prefer_skip_nested_validation=True)
    @pinning
    def partial_fit(self, X, y=None, sample_weight=None):
        """Update the model with one batch of rows: online learning.

        :class:`GaussianMixture` performs stepwise EM, and
        :class:`BayesianGaussianMixture` stochastic variational inference:
        an E-step on the batch, then an update from running statistics that
        move towards the batch's with step ``(t + learning_offset) **
        -learning_decay``. The first call on an unfitted estimator initialises
        the parameters from its batch (``init_params``, or the user's initial
        values); after :meth:`fit`, ``partial_fit`` continues from the fitted
        parameters, the fit counting as the data it saw. Memory is bounded by
        the batch, so data larger than memory can be streamed; a Dask array
        is streamed block by block.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            One batch of rows (may contain NaN, as in :meth:`fit`).
        y : Ignored
            Not used, present for API consistency.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the batch's rows.

        Returns
        -------
        self : object
            The updated estimator. ``n_iter_`` counts the updates,
            ``lower_bound_`` is the last batch's mean log-likelihood (before its
            update) and ``lower_bounds_`` holds one entry per update.
        """
        if _is_dask(X):
            from ._dask import iter_blocks

            # Streamed: one update per block, each block in memory in turn.
            for x, w in iter_blocks(X, sample_weight):
                if len(x):
                    self.partial_fit(x, sample_weight=w)
            return self
        if _is_array_api(X):
            raise TypeError(
                "partial_fit takes numpy (or Dask) batches; array-API input is "
                "supported by fit, predict, predict_proba, score_samples, score "
                "and sample. Pass a numpy copy of the batch."
            )
        first = not hasattr(self, "means_")
        X = validate_data(
            self,
            X,
            dtype=[np.float64, np.float32],
            reset=first,
            ensure_all_finite="allow-nan",
        )
        sample_weight, log_scale = _validate_sample_weight(sample_weight, X)
        if not first:
            self._check_unchanged_structure("partial_fit")
        elif X.shape[0] < max(self.n_components, 2):
            raise ValueError(
                "The first partial_fit batch initialises the model and needs "
                f"n_samples >= max(n_components, 2); got n_components = "
                f"{self.n_components}, n_samples = {X.shape[0]}"
            )
        if first:
            self.n_iter_, self.lower_bounds_ = 0, []
        with single_threaded_blas():
            lower_bound = self._partial_fit(X, sample_weight, log_scale, first)
        self.converged_ = False
        self.n_iter_ = getattr(self, "n_iter_", 0) + 1
        self.lower_bound_ = lower_bound
        self.lower_bounds_ = [*getattr(self, "lower_bounds_", []), lower_bound]
        return self

    def _check_unchanged_structure(self, what):
        """A fitted model continues only with the structure it was fitted with."""
        fitted_k = self.means_.shape[0]
        fitted_type = getattr(self, "_fitted_covariance_type", self.covariance_type)
        if (self.n_components, self.covariance_type) != (fitted_k, fitted_type):
            raise ValueError(
                f"{what} continues the fitted model, which has n_components="
                f"{fitted_k} and covariance_type={fitted_type!r}, but the "
                f"estimator now has n_components={self.n_components} and "
                f"covariance_type={self.covariance_type!r}. Restore those "
                "parameters, or fit afresh (fit with warm_start=False)."
            )

    def _source(
        self,
        X,
        sample_weight,
        covariance,
        center=None,
        training=True,
        n_components=None,
        finite=None,
        optimistic=False,
    ):
        """The data source of validated ``X``: in memory, Dask or array API.

        ``finite``: whether in-memory ``X`` is known to hold no NaN;
        ``optimistic``: whether it is yet to be checked (see
        :class:`.TrainingData`).
        """
        options = {"chunk_size": self.chunk_size, "center": center}
        if _is_array_api(X):
            from ._array_api import ArrayAPIData as source
        elif _is_dask(X):
            from ._dask import DaskData as source
        else:
            source, options["n_jobs"] = TrainingData, self.n_jobs
            options.update(finite=finite, optimistic=optimistic)
        k = self.n_components if n_components is None else n_components
        return source(X, sample_weight, covariance, k, training=training, **options)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # -- the model value <-> attributes --
    def _set_fitted(self, model: Mixture, dtype) -> None:
        self._fitted_covariance_type = model.covariance.name
        if not isinstance(dtype, np.dtype):
            from ._array_api import host_dtype

            # An array-API input's dtype: the attributes are made in its numpy
            # twin, then moved to X's namespace (see fit_predict).
            dtype = host_dtype(dtype)
        covariances = model.covariance_array()
        largest = max(np.abs(a).max() for a in (model.means, covariances))
        if largest > np.finfo(dtype).max:
            warnings.warn(
                f"The fitted parameters (up to {largest:.3g}) exceed the range of "
                f"{np.dtype(dtype).name}, the dtype of X; they are kept in float64.",
                UserWarning,
                stacklevel=3,
            )
            dtype = np.float64
        # No copies in float64: the model is a value nothing mutates.
        self.weights_ = model.weights.astype(dtype, copy=False)
        self.means_ = model.means.astype(dtype, copy=False)
        self.covariances_ = covariances.astype(dtype, copy=False)
        self.precisions_cholesky_ = model.precisions_cholesky.astype(dtype, copy=False)
        self.precisions_ = model.precisions.astype(dtype, copy=False)

    def _fitted_covariance(self) -> Covariance:
        name = getattr(self, "_fitted_covariance_type", self.covariance_type)
        return get_covariance(name)

    def _fitted_model(self, dtype=np.float64) -> Mixture:
        """The fitted attributes as a model value, with the fitted covariance type."""

        def cast(a):
            if not isinstance(a, np.ndarray):
                from ._array_api import to_numpy

                # Attributes of an array-API fit: the model is a host value.
                a = to_numpy(a)
            return a if dtype is None else np.asarray(a, dtype=dtype)

        return Mixture(
            cast(self.weights_),
            cast(self.means_),
            cast(self.covariances_),
            cast(self.precisions_cholesky_),
            self._fitted_covariance(),
        )

    # -- inference --
    def _inference_source(self, X, optimistic=False, validated=False):
        """Validated new rows as a data source, and the fitted model.

        Centred on the mixture mean, as good a fixed point as the data mean.
        ``optimistic``: in-memory rows are not summed to check that they are
        finite (see :class:`.TrainingData`); the source's methods may raise
        :class:`.NotFinite`. ``validated``: in-memory ``X`` is already
        validated (but not checked for infinity).
        """
        check_is_fitted(self)
        model = self._fitted_model()
        center = model.weights @ model.means
        options = {}
        if _is_dask(X):
            from ._dask import check_dask_input

            X, _ = check_dask_input(self, X, reset=False)
        elif _is_array_api(X):
            from ._array_api import check_array_api_input

            X, _, _ = check_array_api_input(self, X, reset=False)
        else:
            if not validated:
                X = _validated_rows(self, X)
            if optimistic:
                options["optimistic"] = True
            else:
                options["finite"] = _checked_finite(self, X)
        data = self._source(
            X,
            None,
            model.covariance,
            center=center,
            training=False,
            n_components=model.n_components,
            **options,
        )
        return data, model

    def _infer(self, X, method: str):
        """``method`` of the data source of new rows ``X`` (see
        :meth:`_inference_source`) under the fitted model.

        In-memory rows go to the kernel unchecked, and are checked (summed)
        only where it finds a value that is not finite: then everything is
        redone as validated (with NaN rows on the missing-value kernel, and
        scikit-learn's error for infinity).
        """
        if _is_dask(X) or _is_array_api(X):
            data, model = self._inference_source(X)
            with single_threaded_blas():
                return getattr(data, method)(model)
        check_is_fitted(self)
        X = _validated_rows(self, X)
        with single_threaded_blas():
            try:
                data, model = self._inference_source(X, optimistic=True, validated=True)
                return getattr(data, method)(model)
            except NotFinite:
                data, model = self._inference_source(X, validated=True)
                return getattr(data, method)(model)

    def predict(self, X):
        """Most probable component of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to label.

        Returns
        -------
        labels : ndarray of shape (n_samples,)
            Component labels.
        """
        return self._infer(X, "labels")

    def predict_proba(self, X):
        """Posterior probability of each component for each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
            Responsibilities; each row sums to 1.
        """
        return self._infer(X, "responsibilities")

    def score_samples(self, X):
        """Log-likelihood of each row under the model.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.

        Returns
        -------
        log_prob : ndarray of shape (n_samples,)
            ``log p(x)`` of every row.
        """
        return self._infer(X, "log_prob")

    def score(self, X, y=None, sample_weight=None):
        """Mean log-likelihood per sample of ``X``.

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
            (Weighted) mean of :meth:`score_samples`; higher is better.
        """
        if _is_array_api(X):
            from ._array_api import weighted_mean

            return weighted_mean(self.score_samples(X), sample_weight)
        log_prob = self.score_samples(X).astype(np.float64)
        if _is_dask(log_prob):
            from ._dask import weighted_mean

            return weighted_mean(log_prob, sample_weight)
        if sample_weight is not None:
            sample_weight = _validate_sample_weight(sample_weight, log_prob[:, None])[0]
        return float(np.average(log_prob, weights=sample_weight))

    # -- conversions --
    # Fitted attributes scikit-learn's estimator of the same name has too.
    _SHARED_FITTED: tuple[str, ...] = (
        "weights_",
        "means_",
        "covariances_",
        "precisions_",
        "precisions_cholesky_",
        "converged_",
        "n_iter_",
        "lower_bound_",
        "lower_bounds_",
        "n_features_in_",
        "feature_names_in_",
    )

    def to_sklearn(self):
        """This fitted model as scikit-learn's estimator of the same name.

        The parameters both have and every fitted attribute are copied, so the
        result predicts, scores and samples as this model does; it can be
        kept or shared where only scikit-learn is installed.

        Returns
        -------
        model : sklearn.mixture.GaussianMixture or BayesianGaussianMixture
        """
        check_is_fitted(self)
        from sklearn import mixture

        theirs = _with_params(getattr(mixture, type(self).__name__), self)
        _copy_fitted(self, theirs, self._SHARED_FITTED)
        return theirs

    @classmethod
    def from_sklearn(cls, model):
        """A fitted estimator of this library from scikit-learn's fitted one.

        Parameters
        ----------
        model : sklearn.mixture.GaussianMixture or BayesianGaussianMixture
            A fitted model of the same class name.

        Returns
        -------
        estimator : the same model, as this library's estimator. Its
            ``partial_fit`` starts the running statistics afresh (the data
            the model was fitted on are not known).
        """
        check_is_fitted(model)
        if type(model).__name__ != cls.__name__:
            raise TypeError(
                f"{cls.__name__}.from_sklearn needs a fitted scikit-learn "
                f"{cls.__name__}, got {type(model).__name__}."
            )
        ours = _with_params(cls, model)
        _copy_fitted(model, ours, cls._SHARED_FITTED)
        # scikit-learn < 1.7 keeps only the last lower bound.
        bounds = getattr(model, "lower_bounds_", [model.lower_bound_])
        ours.lower_bounds_ = [float(np.ravel(v)[0]) for v in bounds]
        ours._fitted_covariance_type = model.covariance_type
        return ours

    def sample(self, n_samples=1):
        """Draw random samples from the fitted mixture.

        Uses the estimator's ``random_state`` afresh at every call, as
        scikit-learn does.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples to draw.

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            The samples, grouped by component.
        y : ndarray of shape (n_samples,)
            Component of each sample.
        """
        check_is_fitted(self)
        if not isinstance(n_samples, Integral) or n_samples < 1:
            raise ValueError(
                f"Invalid value for 'n_samples': {n_samples!r}. The sampling "
                "requires at least one sample."
            )
        # The attributes as they are (float32 stays float32), as scikit-learn.
        X, y = self._fitted_model(dtype=None).sample(
            check_random_state(self.random_state), n_samples
        )
        if not isinstance(self.means_, np.ndarray):
            from ._array_api import move_like

            # Drawn on the host (the draws of scikit-learn's numpy sampler);
            # returned where the fitted attributes live.
            return move_like(X, self.means_), move_like(y, self.means_)
        return X, y

    # -- progress: verbosity as in scikit-learn, a progress bar, callbacks --
    def _callbacks_begin(self, X, n_init):
        """The fit's task for scikit-learn's callbacks (None without them)."""
        self._callback_init = self._callback_iter = None
        if not getattr(self, "_skl_callbacks", None):
            self._callback_fit = None
            return
        self._callback_fit = self._init_callback_context(max_subtasks=n_init)
        self._callback_fit.call_on_fit_task_begin(estimator=self, X=X)
        self._callback_X = X

    def _callbacks_end(self):
        fit = self.__dict__.pop("_callback_fit", None)
        if fit is not None:
            fit.call_on_fit_task_end(estimator=self, X=self.__dict__.pop("_callback_X"))
        for name in ("_callback_init", "_callback_iter"):
            self.__dict__.pop(name, None)

    def _iteration_hook(self):
        """:meth:`_on_iteration`, or ``None`` where it would do nothing (no
        progress bar, messages or callbacks): EM may then run its iterations
        without returning to Python after each (see :func:`._em.run_em`)."""
        quiet = not self.verbose and getattr(self, "_progress_bar", None) is None
        if quiet and getattr(self, "_callback_init", None) is None:
            return None
        return self._on_iteration

    def _on_iteration(self, n_iter, change, lower_bound):
        """After each iteration: progress, messages and callbacks; True stops.
        Called only where :meth:`_iteration_hook` hands it to EM (a subclass
        that needs it on every iteration overrides that too)."""
        self._print_iteration(n_iter, change, lower_bound)
        init = getattr(self, "_callback_init", None)
        if init is None:
            return False
        task = init.subcontext(task_name="iteration")
        task.call_on_fit_task_begin(estimator=self, X=self._callback_X)
        return bool(task.call_on_fit_task_end(estimator=self, X=self._callback_X))

    def _print_init_begin(self, init, n_init=1):
        fit = getattr(self, "_callback_fit", None)
        if fit is not None:
            self._callback_init = fit.subcontext(
                task_name="initialization", max_subtasks=self.max_iter
            )
            self._callback_init.call_on_fit_task_begin(
                estimator=self, X=self._callback_X
            )
        if self.verbose >= 1:
            print(f"Initialization {init}")
        self._init_time = self._iter_time = perf_counter()
        self._close_progress()
        if self.progress and self.max_iter > 0:
            self._progress_bar = _progress_bar(
                total=self.max_iter,
                desc=f"{type(self).__name__} init {init + 1}/{n_init}",
                unit="iter",
                leave=False,
            )

    def _close_progress(self):
        bar = self.__dict__.pop("_progress_bar", None)
        if bar is not None:
            bar.close()

    def _print_iteration(self, n_iter, change, lower_bound=np.nan):
        bar = getattr(self, "_progress_bar", None)
        if bar is not None:
            bar.set_postfix(lower_bound=f"{lower_bound:.6g}", change=f"{change:.3g}")
            bar.update()
        if n_iter % self.verbose_interval:
            return
        if self.verbose == 1:
            print(f"  Iteration {n_iter}")
        elif self.verbose >= 2:
            now = perf_counter()
            print(
                f"  Iteration {n_iter}\t time lapse {now - self._iter_time:.5f}s\t "
                f"ll change {change:.5f}"
            )
            self._iter_time = now

    def _print_init_end(self, lower_bound, converged):
        self._close_progress()
        init = getattr(self, "_callback_init", None)
        if init is not None:
            init.call_on_fit_task_end(estimator=self, X=self._callback_X)
            self._callback_init = None
        status = "converged" if converged else "did not converge"
        if self.verbose == 1:
            print(f"Initialization {status}.")
        elif self.verbose >= 2:
            elapsed = perf_counter() - self._init_time
            print(
                f"Initialization {status}. time lapse {elapsed:.5f}s\t "
                f"lower bound {lower_bound:.5f}."
            )


class GaussianMixture(_BaseMixture):
    """Gaussian mixture clustering by Expectation-Maximization.

    A drop-in replacement for :class:`sklearn.mixture.GaussianMixture`: the same
    parameters, the same fitted attributes and, from the same initialisation, the
    same answer. The EM engine works on sufficient statistics over chunks of rows,
    which keeps memory beyond ``X`` independent of the number of samples and
    sums the statistics of float32 input in float64.

    Parameters
    ----------
    n_components : int, default=3
        Number of mixture components. **Differs from scikit-learn** (default 1):
        this estimator is a clusterer, and one cluster is never a useful default.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        Form of the covariance matrices: each component its own general matrix
        ('full'), one shared general matrix ('tied'), its own diagonal matrix
        ('diag') or its own single variance ('spherical').
    tol : float, default=1e-3
        Convergence threshold on the change of the lower bound (mean
        log-likelihood per sample) between iterations.
    reg_covar : float, default=1e-6
        Non-negative regularization added to the diagonal of covariances.
    max_iter : int, default=100
        Number of EM iterations to perform.
    n_init : int, default=1
        Number of initializations; the best result is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data', \
'multistart'}, default='kmeans'
        How the initial responsibilities are drawn (as in scikit-learn).
        ``'multistart'`` (not in scikit-learn) searches for a better optimum
        instead: short EM runs from about twenty varied starts (k-means,
        k-means++ on the rows and on the whitened rows, Ward's agglomeration),
        the best few continued to convergence (Biernacki, Celeux & Govaert
        2003); the fit continues from the best. On a sample of at most 20 000
        rows for larger data. Each of ``n_init`` initializations runs its own
        search.
    weights_init : array-like of shape (n_components,), default=None
        Initial weights.
    means_init : array-like of shape (n_components, n_features), default=None
        Initial means.
    precisions_init : array-like, default=None
        Initial precisions (inverse covariances); shape depends on
        ``covariance_type`` as in scikit-learn.
    random_state : int, RandomState instance or None, default=None
        Controls the random initialization.
    warm_start : bool, default=False
        If True, each ``fit`` starts from the previous solution (``n_init`` is
        then ignored after the first fit).
    verbose : int, default=0
        Print progress: 1 per initialization, 2 also per iteration.
    verbose_interval : int, default=10
        Iterations between progress messages.
    progress : bool, default=False
        Show a progress bar (tqdm, in a terminal or a notebook) over each
        initialization's iterations, with the lower bound and its change.
        Needs ``tqdm`` installed.
    chunk_size : int or None, default=None
        Rows processed at once in the E-step. ``None`` picks a size that keeps
        the working set in cache. It changes speed and memory, not the result
        (beyond floating-point summation order).
    n_jobs : int or None, default=None
        Threads sharing the E-step, each on a contiguous range of chunks while
        BLAS is held to one thread. ``None`` chooses: every core when an E-step
        is large (rows x components x features >= 5e7, e.g. 1e5 rows of 32-D
        data with 16 full components, or 1e7 2-D rows), else one thread; on 2
        cores two threads were measured 1.7x faster on the former and no faster
        on 1e5-1e6 2-D rows, whose kernel is bound by memory traffic and Python
        overhead. Data with missing values take one thread under ``None``
        (their kernel holds the GIL; two threads were measured 1.6x slower).
        ``-1`` always uses every core, ``1`` never threads. Results
        depend (to rounding) on the number of threads, never on timing.

    learning_decay : float, default=0.7
        Online learning (:meth:`partial_fit`): the step size of update ``t`` is
        ``(t + learning_offset) ** -learning_decay`` (names as in scikit-learn's
        ``LatentDirichletAllocation``). Values in (0.5, 1] guarantee
        convergence of stepwise EM; 0 makes each call one full EM iteration on
        its batch.
    learning_offset : float, default=10.0
        Online learning: a larger offset makes early batches weigh less.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        The weight of each mixture component; they sum to 1.
    means_ : ndarray of shape (n_components, n_features)
        The mean of each mixture component.
    covariances_ : ndarray
        The covariance of each mixture component. The shape depends on
        ``covariance_type``::

            (n_components,)                        if 'spherical',
            (n_features, n_features)               if 'tied',
            (n_components, n_features)             if 'diag',
            (n_components, n_features, n_features) if 'full'

    precisions_ : ndarray
        The precision matrices (inverses of the covariances), same shape as
        ``covariances_``. Storing precisions makes the log-density cheap to
        evaluate.
    precisions_cholesky_ : ndarray
        Cholesky factors of the precisions, same shape as ``covariances_``:
        the upper-triangular ``U`` with ``U @ U.T == precisions_`` for
        'full' (per component) and 'tied'; for 'diag' and 'spherical' the
        square roots of the precisions.
    converged_ : bool
        Whether the best initialization converged (``False`` after
        :meth:`partial_fit`).
    n_iter_ : int
        EM iterations of the best initialization (updates, after
        :meth:`partial_fit`).
    lower_bound_ : float
        Mean log-likelihood per sample under the parameters entering the last
        iteration of the best initialization.
    lower_bounds_ : list of float
        The lower bound at every iteration of the best initialization.
    lower_bounds_per_init_ : list of list of float
        The lower bounds of every initialization of the last :meth:`fit`, in
        order (not in scikit-learn; for plotting all ``n_init`` runs).
    labels_ : ndarray of shape (n_samples,)
        Most probable component of each training row under the fitted model.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when ``X``
        has feature names that are all strings.

    See Also
    --------
    sklearn.mixture.GaussianMixture : the reference implementation.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_em import GaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]])
    >>> gm = GaussianMixture(n_components=2, random_state=0).fit(X)
    >>> gm.means_
    array([[10.,  2.],
           [ 1.,  2.]])
    >>> gm.predict([[0, 0], [12, 3]])
    array([1, 0])
    """

    _parameter_constraints: dict = {
        **_SHARED_CONSTRAINTS,
        "weights_init": ["array-like", None],
        "means_init": ["array-like", None],
        "precisions_init": ["array-like", None],
    }

    def __init__(
        self,
        n_components=3,
        *,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        verbose_interval=10,
        progress=False,
        chunk_size=None,
        n_jobs=None,
        learning_decay=0.7,
        learning_offset=10.0,
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.progress = progress
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    # -- fitting --
    def _fit(self, X, sample_weight, log_scale=0.0):
        n_features = X.shape[1]
        covariance = get_covariance(self.covariance_type)
        user_init = self._check_initial_parameters(covariance, n_features)
        data = self._source(X, sample_weight, covariance)

        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init:
            self._check_unchanged_structure("a warm_start fit")
        n_init = self.n_init if do_init else 1
        drawn = do_init and any(value is None for value in user_init.values())
        # A RandomState only where something is drawn (the generator is
        # unused otherwise), and re-seeded (see random_state_of).
        try:
            with random_state_of(self.random_state if drawn else None) as state:
                best = self._run_inits(
                    data, n_init, do_init, state if drawn else None, user_init
                )
        except IllDefinedCovariance as error:
            raise _explain_collapse(error, X, self.reg_covar) from None

        if best.n_reseeded:
            warnings.warn(
                f"{best.n_reseeded} time(s) a component collapsed (its covariance "
                "was not positive definite) and was re-seeded at the worst-"
                "explained sample. Consider fewer components or a larger reg_covar.",
                DegenerateComponentWarning,
                stacklevel=2,
            )
        if best.floored:
            warnings.warn(
                "Components kept collapsing onto degenerate sets of rows after "
                "every re-seed; variances were held above "
                f"{COLLAPSE_FLOOR:g} of each feature's variance (plus reg_covar) "
                "from then on. Consider fewer components or a larger reg_covar.",
                DegenerateComponentWarning,
                stacklevel=2,
            )
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different "
                "init parameters, or increase max_iter, tol, or check for "
                "degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_fitted(best.model, X.dtype)
        # What partial_fit continues from: the fit counts as this much data.
        self._online = None
        self._log_fit_weight = float(
            np.log(data.total_weight) + log_scale + data.log_weight_scale
        )
        self.converged_ = bool(best.converged)
        self.n_iter_ = best.n_iter
        self.lower_bound_ = float(best.lower_bound)
        self.lower_bounds_ = [float(v) for v in best.lower_bounds]
        # A final E-step with the kept parameters makes fit_predict(X) equal to
        # fit(X).predict(X) whatever max_iter, tol and random_state are (lazy,
        # a Dask array, for Dask input).
        self.labels_ = data.labels(best.model)
        return self.labels_

    def _run_inits(self, data, n_init, do_init, random_state, user_init):
        best = None
        runs = []
        for init in range(n_init):
            self._print_init_begin(init, n_init)
            if do_init:
                drawn = any(value is None for value in user_init.values())
                start = initial_model(
                    data.initialization_source(random_state) if drawn else data,
                    init_params=self.init_params,
                    random_state=random_state,
                    reg_covar=self.reg_covar,
                    **user_init,
                )
                start_bound = -np.inf
            else:
                start = self._fitted_model()
                start_bound = self.lower_bound_
            # Hand the start over without keeping it alive here: at large d
            # each model is two (k, d, d) arrays.
            starts = [start]
            del start
            result = run_em(
                data,
                starts.pop(),
                tol=self.tol,
                max_iter=self.max_iter,
                reg_covar=self.reg_covar,
                lower_bound=start_bound,
                on_iteration=self._iteration_hook(),
            )
            if self.max_iter > 0:
                self._print_init_end(result.lower_bound, result.converged)
            runs.append([float(v) for v in result.lower_bounds])
            if best is None or result.lower_bound > best.lower_bound:
                best = result
        self.lower_bounds_per_init_ = runs
        return best

    def _partial_fit(self, X, sample_weight, log_scale, first):
        covariance = get_covariance(self.covariance_type)
        state = None if first else getattr(self, "_online", None)
        if first:
            data = self._source(X, sample_weight, covariance)
            with random_state_of(self.random_state) as random_state:
                model = initial_model(
                    data,
                    init_params=self.init_params,
                    random_state=random_state,
                    reg_covar=self.reg_covar,
                    **self._check_initial_parameters(covariance, X.shape[1]),
                )
            state = OnlineState(None, 0, data.center)
        else:
            model = self._fitted_model()
            center = model.weights @ model.means if state is None else state.center
            data = self._source(
                X, sample_weight, covariance, center=center, training=False
            )
            if state is None:
                state = self._state_after_fit(model, data.center)
        state, model, lower_bound = online_step(
            data,
            state,
            model,
            reg_covar=self.reg_covar,
            decay=self.learning_decay,
            offset=self.learning_offset,
            log_weight=float(np.log(data.total_weight) + log_scale),
        )
        self._online = state
        self._set_fitted(model, X.dtype)
        return lower_bound

    def _state_after_fit(self, model, center):
        """Online state continuing a model fitted by :meth:`fit` (or restored).

        The running statistics are the ones the model is the M-step of, and
        they count as the data the fit saw; without that record (attributes
        set by hand), the next batch starts the statistics afresh.
        """
        log_weight = getattr(self, "_log_fit_weight", None)
        if log_weight is None:
            return OnlineState(None, 0, center)
        stats = stats_from_model(model, center, self.reg_covar)
        return OnlineState(stats, 0, center, log_weight)

    def _check_initial_parameters(self, covariance, n_features):
        """Validated copies of the user's initial values (never the originals)."""
        k = self.n_components
        out = {"weights_init": None, "means_init": None, "precisions_init": None}
        if self.weights_init is not None:
            weights = _check_initial_array(self.weights_init)
            _check_shape(weights, (k,), "weights")
            if np.any(weights < 0.0) or np.any(weights > 1.0):
                raise ValueError(
                    "The parameter 'weights' should be in the range [0, 1], but got "
                    f"max value {weights.max():.5f}, min value {weights.min():.5f}"
                )
            atol = 1e-6 if weights.dtype == np.float32 else 1e-8
            if abs(1.0 - weights.sum()) > atol:
                raise ValueError(
                    "The parameter 'weights' should be normalized, but got "
                    f"sum(weights) = {weights.sum():.5f}"
                )
            out["weights_init"] = weights
        if self.means_init is not None:
            means = _check_initial_array(self.means_init)
            _check_shape(means, (k, n_features), "means")
            out["means_init"] = means
        if self.precisions_init is not None:
            shape = covariance.shape(k, n_features)
            precisions = _check_initial_array(
                self.precisions_init, allow_nd=len(shape) == 3
            )
            _check_shape(precisions, shape, f"{self.covariance_type} precision")
            covariance.check_precisions(precisions)
            out["precisions_init"] = precisions
        return out

    def _n_parameters(self) -> int:
        """Number of free parameters of the model."""
        return self._fitted_model().n_parameters()

    def bic(self, X):
        """Bayesian information criterion of the model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.

        Returns
        -------
        bic : float
        """
        n = _num_samples(X)
        return -2 * self.score(X) * n + self._n_parameters() * math.log(n)

    def aic(self, X):
        """Akaike information criterion of the model on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows to evaluate.

        Returns
        -------
        aic : float
        """
        return -2 * self.score(X) * _num_samples(X) + 2 * self._n_parameters()


def _progress_bar(**kwargs):
    """A tqdm bar that suits the terminal or the notebook it is shown in."""
    try:
        from tqdm.auto import tqdm
    except ImportError:
        raise ImportError(
            "progress=True shows a progress bar with tqdm, which is not installed: "
            "pip install tqdm"
        ) from None
    return tqdm(**kwargs)


def _with_params(cls, source):
    """An unfitted ``cls`` with the parameters it shares with ``source``."""
    known = cls().get_params()
    return cls(**{k: v for k, v in source.get_params().items() if k in known})


def _copy_fitted(source, target, names) -> None:
    for name in names:
        if hasattr(source, name):
            setattr(target, name, copy.deepcopy(getattr(source, name)))


def _is_dask(X) -> bool:
    """Whether ``X`` is a Dask collection; Dask input can only exist once Dask
    is imported, so this never imports it."""
    if "dask" not in sys.modules:
        return False
    import dask

    return dask.is_dask_collection(X)


def _is_array_api(X) -> bool:
    """Whether ``X`` goes to the array-API engine: an array of a non-numpy
    namespace while scikit-learn's ``array_api_dispatch`` is on (numpy input
    never pays more than an isinstance check)."""
    if isinstance(X, np.ndarray) or not get_config()["array_api_dispatch"]:
        return False
    from ._array_api import is_array_api_input

    return is_array_api_input(X)


def _on_host(value):
    """An initial value given as an array-API array (as scikit-learn's
    array-API path asks for them), as a host numpy copy; others unchanged."""
    if value is None or isinstance(value, np.ndarray) or not _is_array_api(value):
        return value
    from ._array_api import to_numpy

    return to_numpy(value)


@cache
def _param_names(cls) -> tuple[str, ...]:
    return tuple(BaseEstimator._get_param_names.__func__(cls))


def _check_initial_array(value, allow_nd=False):
    """``check_array`` of a user's initial value, as scikit-learn checks it.

    A float ndarray that passes is returned as it is, as ``check_array``
    would; checked here first, because ``check_array``'s checks for data
    frames cost ~50 us per call, a share of a small fit.
    """
    value = _on_host(value)
    if (
        type(value) is np.ndarray
        and value.dtype in (np.float64, np.float32)
        and 1 <= value.ndim <= (3 if allow_nd else 2)
        and value.size
        and np.isfinite(value).all()
    ):
        return value
    return check_array(
        value, dtype=[np.float64, np.float32], ensure_2d=False, allow_nd=allow_nd
    )


def _validated_rows(estimator, X):
    """New rows validated as ``validate_data(..., ensure_all_finite=False)``
    does, for :func:`_checked_finite` (or the compiled kernel) to check."""
    return validate_data(
        estimator,
        X,
        dtype=[np.float64, np.float32],
        reset=False,
        ensure_all_finite=False,
    )


def _checked_finite(estimator, X) -> bool:
    """Whether validated rows ``X`` are all finite (then they have no NaN),
    raising scikit-learn's error for infinite values.

    scikit-learn's check sums ``X`` to rule out infinities, and the data
    source would sum it again to look for NaN (at 1e6 rows, 0.6 ms each):
    one sum here serves both. Only where it is not finite does the full
    check run (``ensure_all_finite='allow-nan'``).
    """
    finite = all_finite(X)
    if not finite and not get_config()["assume_finite"]:
        check_array(
            X,
            dtype=None,
            ensure_all_finite="allow-nan",
            estimator=estimator,
            input_name="X",
        )
    return finite


def _validate_sample_weight(sample_weight, X):
    """float64 weights, one per row, finite, non-negative and not all zero,
    divided by their maximum, and the log of that maximum.

    Only ratios of weights change a fit; normalising once here makes any
    positive scale (1e-300 or 1e300) give the same fit, where the absolute
    ``10 * eps`` of the M-step or an overflowing sum would otherwise tell.
    """
    if sample_weight is None:
        return None, 0.0
    sample_weight = _check_sample_weight(
        sample_weight, X, dtype=np.float64, ensure_non_negative=True
    )
    largest = sample_weight.max()
    if not largest > 0:
        # The wording of scikit-learn >= 1.8, whose check raises first there.
        raise ValueError("Sample weights must contain at least one non-zero number.")
    return sample_weight / largest, float(np.log(largest))


def _explain_collapse(error, X, reg_covar):
    """The collapse error, with its cause where it is identical rows and no
    regularisation."""
    if reg_covar > 0:
        return error
    if _is_dask(X) or _is_array_api(X):
        # Finding identical rows would take a sort of X: say what to do only.
        X = np.empty((0, X.shape[1]))
    complete = X[~np.isnan(X).any(axis=1)]
    message = str(error)
    if len(complete):
        rows, counts = np.unique(complete, axis=0, return_counts=True)
        if counts.max() > 1:
            row = rows[counts.argmax()]
            message += (
                f" {counts.max()} rows of X are identical (equal to {row.tolist()}):"
                " a component on them has zero variance, so the likelihood is"
                " unbounded."
            )
    message += (
        " With reg_covar=0 nothing bounds a component's variance from below;"
        " set reg_covar > 0 (scikit-learn's default is 1e-6)."
    )
    return ValueError(message)


def _check_shape(param, shape, name):
    if param.shape != shape:
        raise ValueError(
            f"The parameter '{name}' should have the shape of {shape}, "
            f"but got {param.shape}"
        )
