"""The scikit-learn face of variational inference: BayesianGaussianMixture."""

from __future__ import annotations

import math
import warnings
from numbers import Real

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions

from ._covariance import Covariance, get_covariance
from ._estimator import _SHARED_CONSTRAINTS, _BaseMixture, _check_shape
from ._init import initial_assignment, random_state_of
from ._model import Mixture
from ._variational import (
    Posterior,
    Prior,
    VBOnlineState,
    online_vb_step,
    run_vb,
    variational_update,
)


class BayesianGaussianMixture(_BaseMixture):
    """Variational Bayesian estimation of a Gaussian mixture.

    A drop-in replacement for :class:`sklearn.mixture.BayesianGaussianMixture`:
    the same parameters, the same fitted attributes and, from the same
    initialisation, the same answer, computed by the library's chunked
    sufficient-statistics engine (so also with ``sample_weight``, missing
    values and Dask arrays). ``n_components`` is an upper bound: the
    Dirichlet (process) prior on the weights lets the data switch off the
    components they do not need.

    Parameters
    ----------
    n_components : int, default=3
        Upper bound on the number of mixture components. **Differs from
        scikit-learn** (default 1), as for :class:`GaussianMixture`: this
        estimator is a clusterer, and one cluster is never a useful default.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        Form of the covariance matrices, as in :class:`GaussianMixture`.
    tol : float, default=1e-3
        Convergence threshold on the change of the lower bound between
        iterations.
    reg_covar : float, default=1e-6
        Non-negative regularization added to the diagonal of covariances.
    max_iter : int, default=100
        Number of variational iterations.
    n_init : int, default=1
        Number of initializations; the one with the largest lower bound is kept.
    init_params : {'kmeans', 'k-means++', 'random', 'random_from_data', \
'multistart'}, default='kmeans'
        How the initial responsibilities are drawn (as in scikit-learn);
        ``'multistart'`` (not in scikit-learn) starts from the posteriors of
        the best maximum-likelihood fit a short-EM search over many starts
        finds (see :class:`GaussianMixture`).
    weight_concentration_prior_type : {'dirichlet_process', \
            'dirichlet_distribution'}, default='dirichlet_process'
        The prior on the weights: a Dirichlet process (stick-breaking) or a
        Dirichlet distribution.
    weight_concentration_prior : float or None, default=None
        Concentration of the weight prior (``1 / n_components`` if None);
        smaller values put the mass on fewer components.
    mean_precision_prior : float or None, default=None
        Precision prior on the means (1 if None).
    mean_prior : array-like of shape (n_features,), default=None
        Prior on the means (the data mean if None).
    degrees_of_freedom_prior : float or None, default=None
        Degrees of freedom of the Wishart prior on the precisions
        (``n_features`` if None); must exceed ``n_features - 1``.
    covariance_prior : float or array-like, default=None
        Prior on the covariances, in the covariance type's shape (the data's
        covariance, ``ddof=1``, if None).
    random_state : int, RandomState instance or None, default=None
        Controls the random initialization.
    warm_start : bool, default=False
        If True, each ``fit`` starts from the previous solution.
    verbose : int, default=0
        Print progress: 1 per initialization, 2 also per iteration.
    verbose_interval : int, default=10
        Iterations between progress messages.
    progress : bool, default=False
        Show a progress bar (tqdm, in a terminal or a notebook) over each
        initialization's iterations, with the lower bound and its change.
        Needs ``tqdm`` installed.
    chunk_size : int or None, default=None
        Rows processed at once in the E-step (speed and memory only).
    n_jobs : int or None, default=None
        Threads sharing the E-step, as in :class:`GaussianMixture`.
    learning_decay : float, default=0.7
        Online learning (:meth:`partial_fit`, stochastic variational
        inference): the step size of update ``t`` is ``(t + learning_offset)
        ** -learning_decay``; values in (0.5, 1] guarantee convergence.
    learning_offset : float, default=10.0
        Online learning: a larger offset makes early batches weigh less.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
        Posterior mean weight of each component.
    means_ : ndarray of shape (n_components, n_features)
        Posterior mean of each component's mean.
    covariances_ : ndarray
        Each component's covariance (the Wishart scale over its degrees of
        freedom); shape per ``covariance_type`` as in :class:`GaussianMixture`.
    precisions_ : ndarray
        The inverses of ``covariances_``.
    precisions_cholesky_ : ndarray
        Cholesky factors of the precisions, as in :class:`GaussianMixture`.
    weight_concentration_ : ndarray of shape (n_components,) or tuple
        Dirichlet concentration of each component, or for the Dirichlet
        process the two Beta parameters of each stick, a tuple of two arrays.
    mean_precision_ : ndarray of shape (n_components,)
        Precision of each mean's posterior (in units of its precision matrix).
    degrees_of_freedom_ : ndarray of shape (n_components,) or float
        Degrees of freedom of each Wishart posterior (one, for 'tied').
    weight_concentration_prior_, mean_precision_prior_, mean_prior_, \
degrees_of_freedom_prior_, covariance_prior_
        The priors used (defaults filled in from the data).
    converged_ : bool
        Whether the best initialization converged.
    n_iter_ : int
        Iterations of the best initialization.
    lower_bound_ : float
        Lower bound on the log evidence (up to constants) of the best fit.
    lower_bounds_ : list of float
        The lower bound at every iteration of the best initialization.
    lower_bounds_per_init_ : list of list of float
        The lower bounds of every initialization of the last :meth:`fit`.
    labels_ : ndarray of shape (n_samples,)
        Most probable component of each training row.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`, when ``X`` has string names.

    See Also
    --------
    sklearn.mixture.BayesianGaussianMixture : the reference implementation.
    GaussianMixture : maximum-likelihood estimation.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_em import BayesianGaussianMixture
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [12, 4], [10, 7]])
    >>> bgm = BayesianGaussianMixture(n_components=2, random_state=42).fit(X)
    >>> bgm.means_.round(2)
    array([[2.5 , 2.29],
           [8.46, 4.52]])
    >>> bgm.predict([[0, 0], [9, 3]])
    array([0, 1])
    """

    _SHARED_FITTED = (
        *_BaseMixture._SHARED_FITTED,
        "weight_concentration_",
        "mean_precision_",
        "degrees_of_freedom_",
        "weight_concentration_prior_",
        "mean_precision_prior_",
        "mean_prior_",
        "degrees_of_freedom_prior_",
        "covariance_prior_",
    )

    _parameter_constraints: dict = {
        **_SHARED_CONSTRAINTS,
        "weight_concentration_prior_type": [
            StrOptions({"dirichlet_process", "dirichlet_distribution"})
        ],
        "weight_concentration_prior": [
            None,
            Interval(Real, 0.0, None, closed="neither"),
        ],
        "mean_precision_prior": [None, Interval(Real, 0.0, None, closed="neither")],
        "mean_prior": [None, "array-like"],
        "degrees_of_freedom_prior": [None, Interval(Real, 0.0, None, closed="neither")],
        "covariance_prior": [
            None,
            "array-like",
            Interval(Real, 0.0, None, closed="neither"),
        ],
    }

    def __init__(
        self,
        *,
        n_components=3,
        covariance_type="full",
        tol=1e-3,
        reg_covar=1e-6,
        max_iter=100,
        n_init=1,
        init_params="kmeans",
        weight_concentration_prior_type="dirichlet_process",
        weight_concentration_prior=None,
        mean_precision_prior=None,
        mean_prior=None,
        degrees_of_freedom_prior=None,
        covariance_prior=None,
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
        self.weight_concentration_prior_type = weight_concentration_prior_type
        self.weight_concentration_prior = weight_concentration_prior
        self.mean_precision_prior = mean_precision_prior
        self.mean_prior = mean_prior
        self.degrees_of_freedom_prior = degrees_of_freedom_prior
        self.covariance_prior = covariance_prior
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.progress = progress
        self.chunk_size = chunk_size
        self.n_jobs = n_jobs
        self.learning_decay = learning_decay
        self.learning_offset = learning_offset

    def _fit(self, X, sample_weight, log_scale=0.0):
        covariance = get_covariance(self.covariance_type)
        data = self._source(X, sample_weight, covariance)
        # Statistics in the user's units of weight: a posterior, unlike a
        # likelihood, depends on how much data there is.
        weight_scale = math.exp(log_scale + data.log_weight_scale)
        prior = self._prior(data, covariance, weight_scale)

        do_init = not (self.warm_start and hasattr(self, "converged_"))
        if not do_init:
            self._check_unchanged_structure("a warm_start fit")
        with random_state_of(self.random_state) as random_state:
            best = None
            runs = []
            for init in range(self.n_init if do_init else 1):
                self._print_init_begin(init, self.n_init if do_init else 1)
                if do_init:
                    source = data.initialization_source(random_state)
                    assignment = initial_assignment(
                        source, self.init_params, random_state
                    )
                    # A sample (Dask) stands for all the rows.
                    share = data.total_weight / source.total_weight
                    stats = source.stats_given(**assignment).scale(weight_scale * share)
                    start = variational_update(stats, prior, covariance, self.reg_covar)
                    start_bound = -np.inf
                else:
                    start, start_bound = self._fitted_posterior(), self.lower_bound_
                result = run_vb(
                    data,
                    start,
                    prior,
                    tol=self.tol,
                    max_iter=self.max_iter,
                    reg_covar=self.reg_covar,
                    weight_scale=weight_scale,
                    lower_bound_start=start_bound,
                    on_iteration=self._on_iteration,
                )
                if self.max_iter > 0:
                    self._print_init_end(result.lower_bound, result.converged)
                runs.append([float(v) for v in result.lower_bounds])
                if best is None or result.lower_bound > best.lower_bound:
                    best = result

        self.lower_bounds_per_init_ = runs
        if not best.converged and self.max_iter > 0:
            warnings.warn(
                "Best performing initialization did not converge. Try different "
                "init parameters, or increase max_iter, tol, or check for "
                "degenerate data.",
                ConvergenceWarning,
                stacklevel=2,
            )
        self._set_posterior(best.posterior, X.dtype)
        self.converged_ = bool(best.converged)
        self.n_iter_ = best.n_iter
        self.lower_bound_ = float(best.lower_bound)
        self.lower_bounds_ = [float(v) for v in best.lower_bounds]
        # partial_fit continues from the statistics the posterior came from,
        # counting as all the weight the fit saw.
        self._online = None
        if best.stats is not None:
            log_seen = math.log(best.stats.total_weight)
            running = best.stats.per_sample().recentered(data.center, covariance)
            self._online = VBOnlineState(running, 0, data.center, log_seen, log_seen)
        self.labels_ = data.labels(best.posterior.estep_model())
        return self.labels_

    def _partial_fit(self, X, sample_weight, log_scale, first):
        covariance = get_covariance(self.covariance_type)
        state = None if first else getattr(self, "_online", None)
        if first:
            data = self._source(X, sample_weight, covariance)
            weight_scale = math.exp(log_scale + data.log_weight_scale)
            prior = self._prior(data, covariance, weight_scale)
            with random_state_of(self.random_state) as random_state:
                assignment = initial_assignment(data, self.init_params, random_state)
            stats = data.stats_given(**assignment).scale(weight_scale)
            posterior = variational_update(stats, prior, covariance, self.reg_covar)
            state = VBOnlineState(None, 0, data.center)
        else:
            posterior, prior = self._fitted_posterior(), self._fitted_prior()
            if state is None:
                # Attributes without the fit's record: statistics start afresh.
                model = posterior.model
                state = VBOnlineState(None, 0, model.weights @ model.means)
            data = self._source(
                X, sample_weight, covariance, center=state.center, training=False
            )
            weight_scale = math.exp(log_scale)
        state, posterior, lower_bound = online_vb_step(
            data,
            state,
            posterior,
            prior,
            reg_covar=self.reg_covar,
            decay=self.learning_decay,
            offset=self.learning_offset,
            weight_scale=weight_scale,
        )
        self._online = state
        self._set_posterior(posterior, X.dtype)
        return lower_bound

    def _prior(self, data, covariance: Covariance, weight_scale: float) -> Prior:
        """The prior, defaults filled in from the data; records the
        ``*_prior_`` attributes as scikit-learn does."""
        d = data.n_features
        self.weight_concentration_prior_ = (
            1.0 / self.n_components
            if self.weight_concentration_prior is None
            else self.weight_concentration_prior
        )
        self.mean_precision_prior_ = (
            1.0 if self.mean_precision_prior is None else self.mean_precision_prior
        )
        if self.mean_prior is None:
            self.mean_prior_ = data.center.copy()
        else:
            self.mean_prior_ = check_array(
                self.mean_prior, dtype=[np.float64, np.float32], ensure_2d=False
            )
            _check_shape(self.mean_prior_, (d,), "means")
        if self.degrees_of_freedom_prior is None:
            self.degrees_of_freedom_prior_ = d
        elif self.degrees_of_freedom_prior > d - 1.0:
            self.degrees_of_freedom_prior_ = self.degrees_of_freedom_prior
        else:
            raise ValueError(
                "The parameter 'degrees_of_freedom_prior' should be greater than "
                f"{d - 1}, but got {self.degrees_of_freedom_prior:.3f}."
            )
        self.covariance_prior_ = self._covariance_prior(data, covariance, weight_scale)
        return self._fitted_prior()

    def _fitted_prior(self) -> Prior:
        """The prior recorded by the first fit."""
        return Prior(
            self.weight_concentration_prior_type == "dirichlet_process",
            float(self.weight_concentration_prior_),
            float(self.mean_precision_prior_),
            np.asarray(self.mean_prior_, dtype=np.float64),
            float(self.degrees_of_freedom_prior_),
            np.asarray(self.covariance_prior_, dtype=np.float64),
        )

    def _covariance_prior(self, data, covariance: Covariance, weight_scale: float):
        d = data.n_features
        if self.covariance_prior is None:
            # The data's covariance with ddof=1 (as numpy.cov), weights
            # counting as repetitions.
            weight = data.total_weight * weight_scale
            scatter = data.scatter() * weight_scale
            return covariance.of_matrix(
                np.atleast_2d(scatter / (weight - 1.0 if weight > 1.0 else weight))
            )
        shape = covariance.prior_shape(d)
        if not shape:
            return self.covariance_prior
        prior = check_array(
            self.covariance_prior, dtype=[np.float64, np.float32], ensure_2d=False
        )
        _check_shape(prior, shape, f"{self.covariance_type} covariance_prior")
        # The same checks as for initial precisions, with the same messages.
        get_covariance("tied" if len(shape) == 2 else "diag").check_precisions(
            prior if len(shape) == 2 else prior[None]
        )
        return prior

    def _set_posterior(self, posterior: Posterior, dtype) -> None:
        self._set_fitted(posterior.model, dtype)
        concentration = posterior.weight_concentration
        if isinstance(concentration, tuple):
            self.weight_concentration_ = tuple(
                np.asarray(c, dtype=dtype) for c in concentration
            )
        else:
            self.weight_concentration_ = np.asarray(concentration, dtype=dtype)
        self.mean_precision_ = np.asarray(posterior.mean_precision, dtype=dtype)
        dof = posterior.degrees_of_freedom
        self.degrees_of_freedom_ = (
            np.asarray(dof, dtype=dtype) if np.ndim(dof) else dtype.type(dof)
        )

    def _fitted_posterior(self) -> Posterior:
        concentration = self.weight_concentration_
        if isinstance(concentration, tuple):
            concentration = tuple(np.asarray(c, np.float64) for c in concentration)
        else:
            concentration = np.asarray(concentration, np.float64)
        dof = self.degrees_of_freedom_
        return Posterior(
            concentration,
            np.asarray(self.mean_precision_, np.float64),
            np.asarray(dof, np.float64) if np.ndim(dof) else float(dof),
            super()._fitted_model(),
        )

    def _fitted_model(self, dtype=np.float64) -> Mixture:
        """The fitted posterior's E-step model (its weights are ``weights_``)."""
        model = super()._fitted_model(dtype)
        if dtype is None:
            return model
        return self._fitted_posterior().estep_model()
