"""Bad input to every public entry point fails early, with scikit-learn's exception.

Table-driven: each case of ``CASES`` names the bad call, the exception type
scikit-learn itself would raise (``ValueError``; ``TypeError`` for sparse input;
``NotFittedError`` before ``fit``; ``InvalidParameterError``, a subclass of both
``ValueError`` and ``TypeError``, for constructor parameters) and a fragment of
its message. A second family of tests checks that no call ever writes into the
arrays it is given, whether the call fails or succeeds.
"""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_em import GaussianMixture
from sklearn_em.__main__ import main
from sklearn_em.datasets import make_three_gaussians

N_COMPONENTS = 3  # the estimator's default
N_FEATURES = 2
INFERENCE_METHODS = ["predict", "predict_proba", "score", "score_samples", "bic", "aic"]
# Methods that take new rows once the model is fitted.
POST_FIT_METHODS = [*INFERENCE_METHODS, "partial_fit"]


def _data() -> np.ndarray:
    """A fresh, well-posed (60, 2) data set: three separated Gaussians."""
    return make_three_gaussians(60, random_state=0)[0]


def _fitted(**params) -> GaussianMixture:
    return GaussianMixture(random_state=0, **params).fit(_data())


def _with_value(row, col, value) -> Callable[[], np.ndarray]:
    """The data set with ``X[row, col] = value`` (``row``/``col`` may be slices)."""

    def make():
        X = _data()
        X[row, col] = value
        return X

    return make


# ---------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------


class Case(NamedTuple):
    id: str
    call: Callable[[], Any]
    exc: type[BaseException]
    match: str


class XCase(NamedTuple):
    """Bad data for ``fit`` (with estimator ``params``) or for inference."""

    id: str
    make_X: Callable[[], Any]
    exc: type[BaseException]
    match: str
    params: dict | None = None


def _fit_with(**params) -> Callable[[], Any]:
    params = {"random_state": 0, **params}
    return lambda: GaussianMixture(**params).fit(_data())


def _invalid_param(name: str, value) -> Case:
    return Case(
        f"param-{name}={value!r}",
        _fit_with(**{name: value}),
        InvalidParameterError,
        f"The '{name}' parameter of GaussianMixture must be",
    )


def _precisions(covariance_type: str, value) -> Callable[[], Any]:
    return _fit_with(covariance_type=covariance_type, precisions_init=value)


_SHAPE_MSG = "should have the shape of"
_NOT_SPD = "should be symmetric, positive-definite"
_ASYMMETRIC = np.array([[1.0, 0.5], [0.0, 1.0]])
_INDEFINITE = np.array([[1.0, 2.0], [2.0, 1.0]])  # eigenvalues 3 and -1
_NOT_FITTED = "This GaussianMixture instance is not fitted yet"
_EMPTY_ROW = r"row\(s\) of X have every feature missing"
# No wording is settled for a feature that is never observed: ask only that the
# message says a feature is missing, not (as k-means would) that NaN is refused.
_EMPTY_FEATURE = r"(?is)^(?=.*feature)(?=.*(missing|NaN))"

# X-related cases for fit; each also checks (below) that X is left untouched.
FIT_X_CASES = [
    XCase("X-0-rows", lambda: np.empty((0, N_FEATURES)), ValueError, r"0 sample\(s\)"),
    XCase("X-0-features", lambda: np.empty((10, 0)), ValueError, r"0 feature\(s\)"),
    XCase("X-1d", lambda: _data()[:, 0], ValueError, "Expected 2D array, got 1D"),
    XCase(
        "X-3d", lambda: _data().reshape(20, 3, 2), ValueError, "Found array with dim 3"
    ),
    XCase("X-scalar", lambda: np.float64(3.0), ValueError, "got scalar array"),
    XCase("X-None", lambda: None, ValueError, "got scalar array"),
    XCase(
        "X-fewer-rows-than-components",
        lambda: _data()[:4],
        ValueError,
        "Expected n_samples >= n_components",
        {"n_components": 5},
    ),
    XCase(
        "X-one-row",
        lambda: _data()[:1],
        ValueError,
        r"1 sample\(s\)",
        {"n_components": 1},
    ),
    XCase("X-complex", lambda: _data() + 1j, ValueError, "Complex data not supported"),
    XCase(
        "X-strings",
        lambda: np.array([["a", "b"], ["c", "d"], ["e", "f"]]),
        ValueError,
        "could not convert string to float",
    ),
    XCase(
        "X-object-strings",
        lambda: np.array([["a", "b"], ["c", "d"], ["e", "f"]], dtype=object),
        ValueError,
        "could not convert string to float",
    ),
    # A NaN is a missing value, fitted by EM on the observed coordinates; a row
    # with nothing observed is ignored with a warning (see
    # tests/test_missing_values.py). What cannot be fitted is data with
    # nothing observed at all, or a feature never observed.
    XCase("X-all-nan", lambda: np.full((10, 2), np.nan), ValueError, _EMPTY_ROW),
    XCase(
        "X-nan-column", _with_value(slice(None), 1, np.nan), ValueError, _EMPTY_FEATURE
    ),
    XCase(
        "X-nan-column-random-init",
        _with_value(slice(None), 0, np.nan),
        ValueError,
        _EMPTY_FEATURE,
        {"init_params": "random"},
    ),
    XCase("X-+inf", _with_value(7, 1, np.inf), ValueError, "Input X contains infinity"),
    XCase(
        "X--inf", _with_value(3, 0, -np.inf), ValueError, "Input X contains infinity"
    ),
    XCase("X-csr", lambda: sp.csr_matrix(_data()), TypeError, "dense data is required"),
    XCase(
        "X-csr_array",
        lambda: sp.csr_array(_data()),
        TypeError,
        "dense data is required",
    ),
    XCase(
        "X-ragged-lists",
        lambda: [[1.0, 2.0], [3.0], [4.0, 5.0, 6.0], [7.0, 8.0]],
        ValueError,
        "inhomogeneous",
    ),
]

# The same cases for the first partial_fit, which initialises from its batch.
_FIRST_BATCH = r"needs n_samples >= max\(n_components, 2\)"
PARTIAL_FIT_X_CASES = [
    c._replace(match=_FIRST_BATCH)
    if c.id in ("X-fewer-rows-than-components", "X-one-row")
    else c
    for c in FIT_X_CASES
]

# X-related cases for inference (and further partial_fit) on a fitted model.
PREDICT_X_CASES = [
    XCase(
        "X-3-features",
        lambda: np.ones((5, 3)),
        ValueError,
        "X has 3 features, but GaussianMixture is expecting 2 features",
    ),
    XCase(
        "X-1-feature",
        lambda: np.ones((5, 1)),
        ValueError,
        "X has 1 features, but GaussianMixture is expecting 2 features",
    ),
    XCase("X-0-rows", lambda: np.empty((0, N_FEATURES)), ValueError, r"0 sample\(s\)"),
    XCase("X-1d", lambda: _data()[0], ValueError, "Expected 2D array, got 1D"),
    XCase("X-inf", _with_value(0, 1, -np.inf), ValueError, "Input X contains infinity"),
    XCase("X-complex", lambda: _data() + 1j, ValueError, "Complex data not supported"),
    XCase(
        "X-strings",
        lambda: np.array([["a", "b"]], dtype=object),
        ValueError,
        "could not convert string to float",
    ),
    XCase("X-csr", lambda: sp.csr_matrix(_data()), TypeError, "dense data is required"),
]


_N = len(_data())
SAMPLE_WEIGHT_CASES = [
    ("wrong-length", np.ones(5), ValueError, r"sample_weight.shape == \(5,\)"),
    ("2d", np.ones((_N, 1)), ValueError, "Sample weights must be 1D"),
    ("negative", np.r_[-1.0, np.ones(_N - 1)], ValueError, "Negative values"),
    ("negative-scalar", -1.0, ValueError, "Negative values"),
    ("nan", np.r_[np.nan, np.ones(_N - 1)], ValueError, "sample_weight contains NaN"),
    ("inf", np.r_[np.ones(_N - 1), np.inf], ValueError, "contains infinity"),
    ("all-zero", np.zeros(_N), ValueError, "at least one non-zero"),
    ("zero-scalar", 0.0, ValueError, "at least one non-zero"),
    ("strings", ["a"] * _N, ValueError, "could not convert string to float"),
    ("complex", np.ones(_N) + 1j, ValueError, "Complex data not supported"),
]


def _weighted(method: str, weights) -> Callable[[], Any]:
    if method == "score":
        return lambda: _fitted().score(_data(), sample_weight=weights)
    return lambda: getattr(GaussianMixture(random_state=0), method)(
        _data(), sample_weight=weights
    )


def _fit_x_call(case: XCase, method: str = "fit") -> Callable[[], Any]:
    def call():
        gmm = GaussianMixture(random_state=0, **(case.params or {}))
        return getattr(gmm, method)(case.make_X())

    return call


def _predict_x_call(method: str, case: XCase) -> Callable[[], Any]:
    return lambda: getattr(_fitted(), method)(case.make_X())


CASES = [
    # -- constructor parameters, validated at fit --
    _invalid_param("n_components", 0),
    _invalid_param("n_components", -1),
    _invalid_param("n_components", 2.5),
    _invalid_param("n_components", "a"),
    _invalid_param("n_components", None),
    # A bool is an Integral to Python but not a component count to anyone.
    _invalid_param("n_components", True),
    _invalid_param("covariance_type", "foo"),
    _invalid_param("covariance_type", None),
    _invalid_param("tol", -1),
    _invalid_param("tol", "a"),
    _invalid_param("tol", np.nan),
    _invalid_param("reg_covar", -1),
    _invalid_param("reg_covar", np.inf),
    _invalid_param("max_iter", -1),
    _invalid_param("max_iter", 2.5),
    _invalid_param("n_init", 0),
    _invalid_param("n_init", 1.5),
    _invalid_param("init_params", "foo"),
    _invalid_param("random_state", "x"),
    _invalid_param("random_state", -1),
    _invalid_param("warm_start", "yes"),
    _invalid_param("verbose", -1),
    _invalid_param("verbose_interval", 0),
    _invalid_param("chunk_size", 0),
    _invalid_param("chunk_size", -1),
    _invalid_param("chunk_size", 2.5),
    _invalid_param("n_jobs", "a"),
    _invalid_param("n_jobs", 2.5),
    _invalid_param("weights_init", "abc"),
    _invalid_param("means_init", 1.0),
    _invalid_param("learning_decay", -0.1),
    _invalid_param("learning_decay", 2),
    _invalid_param("learning_decay", "a"),
    _invalid_param("learning_offset", -1),
    _invalid_param("learning_offset", None),
    Case("param-n_jobs=0", _fit_with(n_jobs=0), ValueError, "n_jobs"),
    # partial_fit validates the constructor parameters as fit does.
    *(
        Case(
            f"partial_fit-param-{name}={value!r}",
            (
                lambda name=name, value=value: GaussianMixture(
                    **{name: value}
                ).partial_fit(_data())
            ),
            InvalidParameterError,
            f"The '{name}' parameter of GaussianMixture must be",
        )
        for name, value in [
            ("n_components", 0),
            ("n_components", "a"),
            ("covariance_type", "foo"),
            ("reg_covar", -1),
            ("init_params", "foo"),
            ("random_state", "x"),
            ("chunk_size", 0),
            ("n_jobs", "a"),
            ("learning_decay", 2),
            ("learning_offset", -1),
        ]
    ),
    Case(
        "partial_fit-weights_init-not-normalized",
        lambda: GaussianMixture(weights_init=[0.2, 0.2, 0.2]).partial_fit(_data()),
        ValueError,
        "'weights' should be normalized",
    ),
    # -- weights_init --
    Case(
        "weights_init-wrong-length",
        _fit_with(weights_init=[0.5, 0.5]),
        ValueError,
        f"'weights' {_SHAPE_MSG}",
    ),
    Case(
        "weights_init-2d",
        _fit_with(weights_init=[[1 / 3, 1 / 3, 1 / 3]]),
        ValueError,
        f"'weights' {_SHAPE_MSG}",
    ),
    Case(
        "weights_init-negative",
        _fit_with(weights_init=[-0.5, 0.75, 0.75]),
        ValueError,
        r"'weights' should be in the range \[0, 1\]",
    ),
    Case(
        "weights_init-above-1",
        _fit_with(weights_init=[1.5, 0.0, 0.0]),
        ValueError,
        r"'weights' should be in the range \[0, 1\]",
    ),
    Case(
        "weights_init-not-normalized",
        _fit_with(weights_init=[0.2, 0.2, 0.2]),
        ValueError,
        "'weights' should be normalized",
    ),
    Case(
        "weights_init-nan",
        _fit_with(weights_init=[np.nan, 0.5, 0.5]),
        ValueError,
        "contains NaN",
    ),
    # -- means_init --
    Case(
        "means_init-too-many-features",
        _fit_with(means_init=np.zeros((N_COMPONENTS, 3))),
        ValueError,
        f"'means' {_SHAPE_MSG}",
    ),
    Case(
        "means_init-too-few-components",
        _fit_with(means_init=np.zeros((2, N_FEATURES))),
        ValueError,
        f"'means' {_SHAPE_MSG}",
    ),
    Case(
        "means_init-1d",
        _fit_with(means_init=np.zeros(N_FEATURES)),
        ValueError,
        f"'means' {_SHAPE_MSG}",
    ),
    Case(
        "means_init-nan",
        _fit_with(means_init=np.array([[0.0, 0.0], [1.0, np.nan], [2.0, 2.0]])),
        ValueError,
        "contains NaN",
    ),
    Case(
        "means_init-inf",
        _fit_with(means_init=np.array([[0.0, 0.0], [1.0, 1.0], [np.inf, 2.0]])),
        ValueError,
        "contains infinity",
    ),
    # -- precisions_init: wrong shape for each covariance type --
    Case(
        "precisions_init-full-shape",
        _precisions("full", np.ones((N_COMPONENTS, N_FEATURES))),
        ValueError,
        f"'full precision' {_SHAPE_MSG}",
    ),
    Case(
        "precisions_init-full-too-few",
        _precisions("full", np.stack([np.eye(N_FEATURES)] * 2)),
        ValueError,
        f"'full precision' {_SHAPE_MSG}",
    ),
    Case(
        "precisions_init-tied-shape",
        _precisions("tied", np.eye(3)),
        ValueError,
        f"'tied precision' {_SHAPE_MSG}",
    ),
    Case(
        "precisions_init-diag-shape",
        _precisions("diag", np.ones((N_COMPONENTS, 3))),
        ValueError,
        f"'diag precision' {_SHAPE_MSG}",
    ),
    Case(
        "precisions_init-spherical-shape",
        _precisions("spherical", np.ones(2)),
        ValueError,
        f"'spherical precision' {_SHAPE_MSG}",
    ),
    Case(
        "precisions_init-spherical-2d",
        _precisions("spherical", np.ones((N_COMPONENTS, 1))),
        ValueError,
        f"'spherical precision' {_SHAPE_MSG}",
    ),
    # -- precisions_init: invalid values --
    Case(
        "precisions_init-full-asymmetric",
        _precisions("full", np.stack([np.eye(2), _ASYMMETRIC, np.eye(2)])),
        ValueError,
        f"'full precision' {_NOT_SPD}",
    ),
    Case(
        "precisions_init-full-indefinite",
        _precisions("full", np.stack([np.eye(2), np.eye(2), _INDEFINITE])),
        ValueError,
        f"'full precision' {_NOT_SPD}",
    ),
    Case(
        "precisions_init-full-singular",
        _precisions("full", np.stack([np.eye(2), np.zeros((2, 2)), np.eye(2)])),
        ValueError,
        f"'full precision' {_NOT_SPD}",
    ),
    Case(
        "precisions_init-tied-asymmetric",
        _precisions("tied", _ASYMMETRIC),
        ValueError,
        f"'tied precision' {_NOT_SPD}",
    ),
    Case(
        "precisions_init-tied-indefinite",
        _precisions("tied", _INDEFINITE),
        ValueError,
        f"'tied precision' {_NOT_SPD}",
    ),
    Case(
        "precisions_init-diag-negative",
        _precisions("diag", np.array([[1.0, 1.0], [1.0, -1.0], [1.0, 1.0]])),
        ValueError,
        "'diag precision' should be positive",
    ),
    Case(
        "precisions_init-diag-zero",
        _precisions("diag", np.array([[1.0, 1.0], [1.0, 1.0], [0.0, 1.0]])),
        ValueError,
        "'diag precision' should be positive",
    ),
    Case(
        "precisions_init-spherical-negative",
        _precisions("spherical", np.array([1.0, -2.0, 1.0])),
        ValueError,
        "'spherical precision' should be positive",
    ),
    Case(
        "precisions_init-spherical-zero",
        _precisions("spherical", np.array([1.0, 1.0, 0.0])),
        ValueError,
        "'spherical precision' should be positive",
    ),
    Case(
        "precisions_init-full-nan",
        _precisions("full", np.full((N_COMPONENTS, 2, 2), np.nan)),
        ValueError,
        "contains NaN",
    ),
    Case(
        "precisions_init-diag-inf",
        _precisions("diag", np.full((N_COMPONENTS, 2), np.inf)),
        ValueError,
        "contains infinity",
    ),
    # -- sample_weight (fit, fit_predict, score) --
    *(
        Case(f"{method}-sample_weight-{name}", _weighted(method, weights), exc, match)
        for method in ("fit", "fit_predict", "score", "partial_fit")
        for name, weights, exc, match in SAMPLE_WEIGHT_CASES
    ),
    Case(
        "fit-sample_weight-fewer-positive-than-components-random_from_data",
        lambda: GaussianMixture(init_params="random_from_data", random_state=0).fit(
            _data(), sample_weight=np.r_[1.0, 1.0, np.zeros(58)]
        ),
        ValueError,
        "n_components|sample_weight",
    ),
    # -- X at fit --
    *(Case(f"fit-{c.id}", _fit_x_call(c), c.exc, c.match) for c in FIT_X_CASES),
    *(
        Case(f"fit_predict-{c.id}", _fit_x_call(c, "fit_predict"), c.exc, c.match)
        for c in FIT_X_CASES
    ),
    *(
        Case(f"partial_fit-first-{c.id}", _fit_x_call(c, "partial_fit"), c.exc, c.match)
        for c in PARTIAL_FIT_X_CASES
    ),
    # -- X at inference, and for partial_fit after the model is fitted --
    *(
        Case(f"{method}-{c.id}", _predict_x_call(method, c), c.exc, c.match)
        for method in POST_FIT_METHODS
        for c in PREDICT_X_CASES
    ),
    # -- inference before fit --
    *(
        Case(
            f"{method}-not-fitted",
            (lambda m=method: getattr(GaussianMixture(), m)(_data())),
            NotFittedError,
            _NOT_FITTED,
        )
        for method in INFERENCE_METHODS
    ),
    Case(
        "sample-not-fitted",
        lambda: GaussianMixture().sample(5),
        NotFittedError,
        _NOT_FITTED,
    ),
    # -- sample --
    *(
        Case(
            f"sample-{n!r}",
            (lambda n=n: _fitted().sample(n)),
            ValueError,
            "Invalid value for 'n_samples'",
        )
        for n in (0, -1, 2.5, "3")
    ),
    # -- make_three_gaussians --
    *(
        Case(
            f"make_three_gaussians-{n!r}",
            (lambda n=n: make_three_gaussians(n, random_state=0)),
            ValueError,
            "n_samples must be",
        )
        for n in (0, 2, -5, 2.5, "a", True, None)
    ),
    # -- the demo: argparse exits with status 2 (checked below) --
    *(
        Case(
            f"demo-n-samples-{n}",
            (lambda n=n: main(["--n-samples", n, "--no-plot"])),
            SystemExit,
            "^2$",
        )
        for n in ("0", "2", "-5", "2.5", "a", "")
    ),
]


@pytest.mark.parametrize(
    ("call", "exc", "match"), [c[1:] for c in CASES], ids=[c.id for c in CASES]
)
def test_bad_input_raises(call, exc, match, capsys):
    with pytest.raises(exc, match=match) as excinfo:
        call()
    if exc is SystemExit:
        assert excinfo.value.code == 2
        assert "argument --n-samples" in capsys.readouterr().err


def test_case_ids_are_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))


def test_invalid_parameter_error_is_value_and_type_error():
    # The contract the table relies on for constructor parameters.
    assert issubclass(InvalidParameterError, ValueError)
    assert issubclass(InvalidParameterError, TypeError)


# ---------------------------------------------------------------------------
# Inputs are never written to
# ---------------------------------------------------------------------------


def _snapshot(obj):
    """A deep, layout-preserving copy to compare ``obj`` against later."""
    if isinstance(obj, np.ndarray):
        return obj.copy(order="K"), obj.flags.writeable, obj.strides
    if sp.issparse(obj):
        return obj.copy()
    return copy.deepcopy(obj)


def _assert_unchanged(obj, snapshot):
    if isinstance(obj, np.ndarray):
        saved, writeable, strides = snapshot
        assert obj.dtype == saved.dtype
        assert obj.shape == saved.shape
        assert obj.strides == strides
        assert obj.flags.writeable == writeable
        if obj.dtype == object:
            assert all(a is b for a, b in zip(obj.ravel(), saved.ravel(), strict=True))
        else:
            assert obj.tobytes() == saved.tobytes()  # bit-identical, NaNs included
    elif sp.issparse(obj):
        assert obj.format == snapshot.format
        for part in ("data", "indices", "indptr"):
            assert getattr(obj, part).tobytes() == getattr(snapshot, part).tobytes()
    else:
        assert obj == snapshot


@pytest.mark.parametrize("method", ["fit", "partial_fit"])
@pytest.mark.parametrize(
    "index", range(len(FIT_X_CASES)), ids=[c.id for c in FIT_X_CASES]
)
def test_fit_does_not_mutate_bad_X(index, method):
    case = (FIT_X_CASES if method == "fit" else PARTIAL_FIT_X_CASES)[index]
    X = case.make_X()
    saved = _snapshot(X)
    with pytest.raises(case.exc, match=case.match):
        getattr(GaussianMixture(random_state=0, **(case.params or {})), method)(X)
    _assert_unchanged(X, saved)


@pytest.mark.parametrize("method", POST_FIT_METHODS)
@pytest.mark.parametrize("case", PREDICT_X_CASES, ids=[c.id for c in PREDICT_X_CASES])
def test_inference_does_not_mutate_bad_X(case, method):
    gmm = _fitted()
    X = case.make_X()
    saved = _snapshot(X)
    with pytest.raises(case.exc, match=case.match):
        getattr(gmm, method)(X)
    _assert_unchanged(X, saved)


def _valid_init(covariance_type: str, dtype) -> dict[str, np.ndarray]:
    """Valid, non-trivial initial values (near the true components) of ``dtype``."""
    means = np.array([[4.4, 4.4], [0.5, 1.5], [2.0, 7.5]])
    precisions = {
        "full": np.array([[[0.4, 0.05], [0.05, 1.6]], [[1.2, -0.4], [-0.4, 0.8]]] * 2)[
            :N_COMPONENTS
        ],
        "tied": np.array([[1.0, 0.2], [0.2, 1.5]]),
        "diag": np.array([[0.4, 1.6], [1.0, 0.7], [0.8, 1.1]]),
        "spherical": np.array([0.5, 1.0, 0.9]),
    }[covariance_type]
    return {
        "weights_init": np.array([0.25, 0.35, 0.4], dtype=dtype),
        "means_init": means.astype(dtype),
        "precisions_init": precisions.astype(dtype),
    }


LAYOUTS = {
    "float64-C": lambda X: np.ascontiguousarray(X, dtype=np.float64),
    "float32-C": lambda X: np.ascontiguousarray(X, dtype=np.float32),
    "float64-F": lambda X: np.asfortranarray(X, dtype=np.float64),
    "float32-F": lambda X: np.asfortranarray(X, dtype=np.float32),
    "float64-strided": lambda X: np.repeat(X, 2, axis=1)[::2, ::2],
    "float64-readonly": lambda X: _readonly(X),
    # Missing values take another code path (rows grouped by pattern).
    "float64-C-nan": lambda X: _with_nans(X),
    "float32-F-nan": lambda X: np.asfortranarray(_with_nans(X), dtype=np.float32),
}


def _with_nans(X):
    X = X.copy()
    X[::7, 0] = np.nan
    X[3::7, 1] = np.nan  # never the same row: no row is empty
    return X


def _readonly(X):
    X = X.copy()
    X.flags.writeable = False
    return X


def _call_everything(gmm: GaussianMixture, X, sample_weight=None) -> None:
    gmm.fit(X, sample_weight=sample_weight)
    gmm.predict(X)
    gmm.predict_proba(X)
    gmm.score_samples(X)
    gmm.score(X, sample_weight=sample_weight)
    gmm.bic(X)
    gmm.aic(X)
    gmm.fit_predict(X, sample_weight=sample_weight)
    gmm.sample(4)
    gmm.partial_fit(X, sample_weight=sample_weight)
    # A first partial_fit initialises from its batch (and the same init arrays).
    fresh = GaussianMixture(**gmm.get_params())
    fresh.partial_fit(X, sample_weight=sample_weight)
    fresh.partial_fit(X, sample_weight=sample_weight)


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("with_init", [False, True], ids=["no-init", "init"])
@pytest.mark.parametrize(
    "engine",
    [{}, {"chunk_size": 32, "n_jobs": 2}],
    ids=["default-engine", "chunked-threaded"],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_valid_input_is_never_mutated(
    layout, covariance_type, with_init, engine, weighted
):
    X = LAYOUTS[layout](make_three_gaussians(150, random_state=1)[0])
    weights = np.linspace(0.5, 2.0, len(X)) if weighted else None
    saved_weights = _snapshot(weights)
    init = _valid_init(covariance_type, X.dtype) if with_init else {}
    gmm = GaussianMixture(
        covariance_type=covariance_type, random_state=0, **engine, **init
    )
    params = gmm.get_params()
    saved_params = {k: _snapshot(v) for k, v in params.items()}
    saved_X = _snapshot(X)

    with warnings.catch_warnings():
        # Only mutation is under test here, not convergence.
        warnings.simplefilter("ignore", ConvergenceWarning)
        _call_everything(gmm, X, weights)

    _assert_unchanged(X, saved_X)
    _assert_unchanged(weights, saved_weights)
    after = gmm.get_params()
    assert after.keys() == params.keys()
    for name, value in params.items():
        # The very same objects (no validated copy stored back), unmodified.
        assert after[name] is value, name
        _assert_unchanged(value, saved_params[name])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fitted_attributes_do_not_alias_init_arrays(covariance_type, dtype):
    # With max_iter=0 the fitted parameters *are* the initial values: they must
    # still be copies, so that writing to them leaves the user's arrays alone.
    X = make_three_gaussians(90, random_state=2)[0].astype(dtype)
    init = _valid_init(covariance_type, dtype)
    saved = {k: _snapshot(v) for k, v in init.items()}
    gmm = GaussianMixture(covariance_type=covariance_type, max_iter=0, **init).fit(X)
    for attr in ("weights_", "means_", "precisions_", "covariances_"):
        fitted = getattr(gmm, attr)
        for name, value in init.items():
            assert not np.shares_memory(fitted, value), (attr, name)
        fitted[...] = 0
    for name, value in init.items():
        _assert_unchanged(value, saved[name])


def test_warm_start_refit_does_not_mutate_inputs():
    X = make_three_gaussians(150, random_state=3)[0]
    init = _valid_init("full", np.float64)
    saved_X, saved_init = _snapshot(X), {k: _snapshot(v) for k, v in init.items()}
    gmm = GaussianMixture(warm_start=True, random_state=0, **init)
    gmm.fit(X)
    gmm.fit(X[::-1])
    _assert_unchanged(X, saved_X)
    for name, value in init.items():
        assert gmm.get_params()[name] is value
        _assert_unchanged(value, saved_init[name])


def test_message_fragments_are_valid_regexes():
    for case in CASES:
        re.compile(case.match)
