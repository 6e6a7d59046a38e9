"""Array-API input under scikit-learn's ``array_api_dispatch``: the same fit as
numpy's, with every attribute and output where the input lives.

array-api-strict (which has non-default CPU devices, so "stays on its device"
is tested here too) always; torch on CPU where it is installed; torch on CUDA
in the ``gpu`` tests, where a CUDA device exists.
"""

import inspect
import warnings

import numpy as np
import pytest
import sklearn
from _helpers import skip_without_array_api_dispatch
from sklearn.exceptions import ConvergenceWarning

skip_without_array_api_dispatch()

array_api_strict = pytest.importorskip(
    "array_api_strict", reason="array-api-strict (the 'test' extra) is not installed"
)

from _helpers import collapsing_spike  # noqa: E402
from sklearn.externals import array_api_compat  # noqa: E402
from sklearn.utils import _array_api as array_api_utils  # noqa: E402

from sklearn_em import BayesianGaussianMixture, GaussianMixture, config_context  # noqa: E402
from sklearn_em import _array_api as array_api_engine  # noqa: E402
from sklearn_em._array_api import (  # noqa: E402
    ArrayAPIData,
    to_numpy,
)
from sklearn_em._covariance import get_covariance  # noqa: E402
from sklearn_em._data import TrainingData  # noqa: E402
from sklearn_em._estimator import (  # noqa: E402
    _SHARED_CONSTRAINTS,
    _validate_sample_weight,
)

try:
    import torch
except ImportError:  # torch is no dependency of any extra; tested where present
    torch = None

# Every value the estimator accepts (ours, such as 'multistart', included).
INIT_PARAMS = sorted(_SHARED_CONSTRAINTS["init_params"][0].options)
FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")
RTOL = 1e-12


def _strict(Xn):
    return array_api_strict.asarray(Xn)


def _strict_device1(Xn):
    # A device other than the default: attributes and outputs must follow it.
    return array_api_strict.asarray(Xn, device=array_api_strict.Device("device1"))


def _torch_cpu(Xn):
    return torch.asarray(Xn)


def _torch_cuda(Xn):
    return torch.asarray(Xn, device="cuda")


NO_TORCH = "torch is not installed (no extra installs it; CI tests array-api-strict)"
NO_CUDA = "no CUDA device (torch with CUDA) on this machine"
HAS_CUDA = torch is not None and torch.cuda.is_available()

NAMESPACES = [
    pytest.param(_strict, id="strict"),
    pytest.param(_strict_device1, id="strict-device1"),
    pytest.param(
        _torch_cpu,
        id="torch-cpu",
        marks=pytest.mark.skipif(torch is None, reason=NO_TORCH),
    ),
    pytest.param(
        _torch_cuda,
        id="torch-cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)],
    ),
]


@pytest.fixture(params=NAMESPACES)
def to_xp(request):
    """Turns a numpy array into one namespace's array, on its device."""
    return request.param


@pytest.fixture(autouse=True)
def dispatch():
    """scikit-learn's array-API dispatch, on for the test (the session's
    conftest sets SCIPY_ARRAY_API=1 before SciPy is imported)."""
    with sklearn.config_context(array_api_dispatch=True):
        yield


def blobs(n=600, d=3, dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array(
        [[0.0] * d, [6.0] + [0.0] * (d - 1), [0.0, 6.0] + [1.0] * (d - 2)]
    )
    X = centres[rng.integers(0, 3, n)] + rng.normal(size=(n, d))
    return (X + 100.0).astype(dtype)


def rel_diff(a, b):
    """Largest |a - b| relative to the largest |b|."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


def same_place(a, X):
    """Whether ``a`` is an array of ``X``'s namespace, on ``X``'s device."""
    return array_api_compat.array_namespace(a) is array_api_compat.array_namespace(
        X
    ) and array_api_compat.device(a) == array_api_compat.device(X)


def fit_both(Xn, to_xp, sample_weight=None, **params):
    """The numpy fit and the array-API fit of the same data and parameters."""
    ours = GaussianMixture(**params).fit(Xn, sample_weight=sample_weight)
    X = to_xp(Xn)
    theirs = GaussianMixture(**params).fit(X, sample_weight=sample_weight)
    return ours, theirs, X


def assert_same_fit(numpy_fit, xp_fit, rtol=RTOL):
    for name in FITTED:
        diff = rel_diff(to_numpy(getattr(xp_fit, name)), getattr(numpy_fit, name))
        assert diff <= rtol, (name, diff)
    assert xp_fit.n_iter_ == numpy_fit.n_iter_
    assert xp_fit.converged_ == numpy_fit.converged_
    assert xp_fit.lower_bound_ == pytest.approx(numpy_fit.lower_bound_, rel=rtol)


# -- the same fit as numpy's --
@pytest.mark.parametrize("init_params", INIT_PARAMS)
def test_every_init_and_covariance_type_fits_as_numpy_does(
    covariance_type, init_params
):
    Xn = blobs()
    weights = np.random.default_rng(1).uniform(0.2, 3.0, len(Xn))
    numpy_fit, xp_fit, _ = fit_both(
        Xn,
        _strict,
        sample_weight=weights,
        n_components=3,
        covariance_type=covariance_type,
        init_params=init_params,
        random_state=0,
    )
    assert_same_fit(numpy_fit, xp_fit)
    np.testing.assert_array_equal(to_numpy(xp_fit.labels_), numpy_fit.labels_)


def test_each_namespace_fits_and_infers_as_numpy_does(to_xp, covariance_type):
    Xn = blobs()
    numpy_fit, xp_fit, X = fit_both(
        Xn, to_xp, n_components=3, covariance_type=covariance_type, random_state=0
    )
    assert_same_fit(numpy_fit, xp_fit)
    assert (
        rel_diff(to_numpy(xp_fit.score_samples(X)), numpy_fit.score_samples(Xn)) <= RTOL
    )
    assert (
        rel_diff(to_numpy(xp_fit.predict_proba(X)), numpy_fit.predict_proba(Xn))
        <= 1e-10
    )
    np.testing.assert_array_equal(to_numpy(xp_fit.predict(X)), numpy_fit.predict(Xn))
    assert xp_fit.score(X) == pytest.approx(numpy_fit.score(Xn), rel=RTOL)
    assert xp_fit.bic(X) == pytest.approx(numpy_fit.bic(Xn), rel=RTOL)
    assert xp_fit.aic(X) == pytest.approx(numpy_fit.aic(Xn), rel=RTOL)


def test_warm_start_continues_as_numpy_does(covariance_type):
    Xn = blobs()
    params = dict(
        n_components=3,
        covariance_type=covariance_type,
        warm_start=True,
        max_iter=2,
        random_state=0,
    )
    ours, theirs = GaussianMixture(**params), GaussianMixture(**params)
    X = _strict(Xn)
    with warnings.catch_warnings():
        # Two iterations per fit: not converged, on purpose.
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(3):
            ours.fit(Xn)
            theirs.fit(X)
    assert_same_fit(ours, theirs)
    assert all(same_place(getattr(theirs, name), X) for name in FITTED)


@pytest.mark.parametrize("given_as", ["numpy", "namespace"])
def test_user_initial_values_start_both_paths_alike(covariance_type, given_as):
    # scikit-learn's array-API path asks for initial values in X's namespace;
    # numpy ones are taken too.
    Xn = blobs()
    start = GaussianMixture(3, covariance_type=covariance_type, random_state=1).fit(Xn)
    init = dict(
        weights_init=np.array([0.2, 0.3, 0.5]),
        means_init=Xn[[0, 1, 2]],
        precisions_init=0.5 * start.precisions_,
    )
    numpy_fit = GaussianMixture(3, covariance_type=covariance_type, **init).fit(Xn)
    if given_as == "namespace":
        init = {name: _strict_device1(value) for name, value in init.items()}
    xp_fit = GaussianMixture(3, covariance_type=covariance_type, **init)
    xp_fit.fit(_strict_device1(Xn))
    assert_same_fit(numpy_fit, xp_fit)


def test_score_takes_sample_weight():
    Xn = blobs()
    numpy_fit, xp_fit, X = fit_both(Xn, _strict, n_components=3, random_state=0)
    w = np.arange(len(Xn), dtype=np.float64)
    assert xp_fit.score(X, sample_weight=w) == pytest.approx(
        numpy_fit.score(Xn, sample_weight=w), rel=RTOL
    )


def test_chunk_size_changes_nothing(covariance_type):
    Xn = blobs(n=300)
    X = _strict(Xn)
    params = dict(n_components=3, covariance_type=covariance_type, random_state=0)
    whole = GaussianMixture(**params).fit(X)
    chunked = GaussianMixture(chunk_size=7, **params).fit(X)
    assert_same_fit(whole, chunked)


def test_many_features_take_the_direct_form_as_numpy_does():
    # 'full' at d = 56 has 1596 second-order features: the numpy kernel (and
    # this engine after it) forms no feature rows.
    Xn = blobs(n=400, d=56)
    numpy_fit, xp_fit, _ = fit_both(
        Xn, _strict, n_components=2, covariance_type="full", random_state=0
    )
    assert_same_fit(numpy_fit, xp_fit)


def test_a_collapsing_component_is_reseeded_as_in_numpy():
    # A spike of precision 1e12 is served by the direct form about its own
    # mean, collapses, and is re-seeded at the worst-explained row.
    Xn, params = collapsing_spike()
    fits = []
    for X in (Xn, _strict(Xn)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            fits.append(GaussianMixture(3, **params).fit(X))
        assert any("re-seeded" in str(w.message) for w in caught)
    assert_same_fit(*fits, rtol=1e-10)


def test_worst_rows_are_numpy_sources_worst_rows(covariance_type):
    Xn = blobs(n=200)
    w = np.ones(len(Xn))
    w[::3] = 0.0  # rows of zero weight are never picked
    model = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(Xn)
    model = model._fitted_model()
    w_numpy, _ = _validate_sample_weight(w, Xn)
    cov = model.covariance
    expected = TrainingData(Xn, w_numpy, cov, 3).worst_rows(model, 5)
    w_xp = array_api_strict.asarray(w_numpy)
    got = ArrayAPIData(_strict(Xn), w_xp, cov, 3, chunk_size=16).worst_rows(model, 5)
    np.testing.assert_array_equal(got, expected)


def test_far_rows_for_inference_are_guarded_as_in_numpy():
    Xn = blobs()
    numpy_fit, xp_fit, _ = fit_both(Xn, _strict, n_components=3, random_state=0)
    # Squares of 1e200 overflow float64 in the feature rows.
    far = np.array([[1e200, 0.0, 0.0], [100.0, 100.0, 100.0]])
    expected = numpy_fit.score_samples(far)
    got = to_numpy(xp_fit.score_samples(_strict(far)))
    np.testing.assert_allclose(got, expected, rtol=RTOL)
    # Their true log-density, -inf, not the NaN of inf - inf.
    assert got[0] == -np.inf and np.isfinite(got[1])


def test_large_data_initialise_from_a_bounded_sample(monkeypatch):
    import sklearn_em._array_api as engine

    monkeypatch.setattr(engine, "INIT_SAMPLE_ROWS", 50)
    Xn = blobs(n=600)
    params = dict(n_components=3, random_state=0, tol=1e-10)
    numpy_fit = GaussianMixture(**params).fit(Xn)
    data = ArrayAPIData(_strict(Xn), None, get_covariance("full"), 3)
    assert data.initialization_source(np.random.RandomState(0)).n_samples == 50
    xp_fit = GaussianMixture(**params).fit(_strict(Xn))
    # Another start, on well-separated clusters: the same optimum.
    assert xp_fit.lower_bound_ == pytest.approx(numpy_fit.lower_bound_, rel=1e-8)


def test_data_beyond_the_host_copy_are_summarised_on_their_device(monkeypatch):
    # Above INIT_SAMPLE_ROWS the centre and checks come from the device.
    import sklearn_em._array_api as engine

    monkeypatch.setattr(engine, "INIT_SAMPLE_ROWS", 50)
    Xn = blobs(n=600)
    w = np.random.default_rng(3).uniform(0.0, 2.0, len(Xn))
    start = GaussianMixture(3, random_state=0).fit(Xn)
    init = dict(
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
    )
    numpy_fit = GaussianMixture(3, **init).fit(Xn, sample_weight=w)
    xp_fit = GaussianMixture(3, **init).fit(_strict(Xn), sample_weight=w)
    assert_same_fit(numpy_fit, xp_fit)


# -- where things live --
def test_attributes_and_outputs_live_in_the_inputs_namespace_and_device(to_xp):
    Xn = blobs()
    X = to_xp(Xn)
    gm = GaussianMixture(3, random_state=0)
    labels = gm.fit_predict(X)
    outputs = {
        "fit_predict": labels,
        "labels_": gm.labels_,
        "predict": gm.predict(X),
        "predict_proba": gm.predict_proba(X),
        "score_samples": gm.score_samples(X),
        **{name: getattr(gm, name) for name in FITTED},
        **dict(zip(("sample X", "sample y"), gm.sample(5), strict=True)),
    }
    for name, value in outputs.items():
        assert same_place(value, X), name
    xp = array_api_compat.array_namespace(X)
    for name in ("predict_proba", "score_samples", "sample X", *FITTED):
        assert outputs[name].dtype == xp.float64, name
    assert xp.isdtype(outputs["predict"].dtype, "integral")
    assert xp.isdtype(outputs["sample y"].dtype, "integral")
    assert isinstance(gm.score(X), float)


def test_float32_rows_give_float32_attributes_from_float64_sums(to_xp):
    Xn = blobs(dtype=np.float32)
    # The numpy engine, whatever SKLEARN_EM_ENGINE says: the compiled kernel
    # computes float32 rows in float32 arithmetic (as scikit-learn does), so
    # its fits differ from float64 sums by float32 rounding (2e-6 measured on
    # an AMD EPYC), which test_compiled checks against its own bounds.
    with config_context(engine="numpy"):
        numpy_fit, xp_fit, X = fit_both(Xn, to_xp, n_components=3, random_state=0)
    xp = array_api_compat.array_namespace(X)
    for name in FITTED:
        assert getattr(xp_fit, name).dtype == xp.float32, name
    # Both sum in float64 from the same float32 rows; only the final rounding
    # to float32 can tell them apart.
    assert_same_fit(numpy_fit, xp_fit, rtol=1e-6)
    assert xp_fit.score_samples(X).dtype == xp.float32
    assert xp_fit.predict_proba(X).dtype == xp.float32


# -- what is refused, clearly --
def test_missing_values_are_refused_with_a_clear_error():
    Xn = blobs()
    Xn[5, 1] = np.nan
    with pytest.raises(ValueError, match="not yet by the array-API engine"):
        GaussianMixture(3, random_state=0).fit(_strict(Xn))
    fitted = GaussianMixture(3, random_state=0).fit(_strict(blobs()))
    with pytest.raises(ValueError, match="not yet by the array-API engine"):
        fitted.predict(_strict(Xn))


def test_partial_fit_asks_for_numpy_batches():
    with pytest.raises(TypeError, match="partial_fit takes numpy"):
        GaussianMixture(3).partial_fit(_strict(blobs()))


def test_bayesian_mixture_asks_for_numpy_input():
    with pytest.raises(TypeError, match="does not take array-API input yet"):
        BayesianGaussianMixture(n_components=3).fit(_strict(blobs()))


def test_bad_sample_weight_is_refused_as_for_numpy():
    X = _strict(blobs())
    gm = GaussianMixture(3, random_state=0)
    with pytest.raises(ValueError, match="Negative values"):
        gm.fit(X, sample_weight=-np.ones(600))
    with pytest.raises(ValueError, match="expected"):
        gm.fit(X, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="at least one non-zero"):
        gm.fit(X, sample_weight=np.zeros(600))


def test_numpy_input_under_dispatch_takes_the_numpy_path():
    # The engine is only for non-numpy arrays: numpy input is untouched.
    Xn = blobs()
    gm = GaussianMixture(3, random_state=0).fit(Xn)
    assert isinstance(gm.means_, np.ndarray)
    assert isinstance(gm.predict_proba(Xn), np.ndarray)


# -- on a CUDA device --
@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
def test_a_million_float32_rows_fit_on_cuda_in_chunks_as_numpy_does():
    Xn = blobs(n=1_000_000, d=2, dtype=np.float32)
    tf32 = torch.backends.cuda.matmul.allow_tf32
    # Beyond 1e5 rows the engine initialises from a sample of the rows: both
    # fits get the same start, from two EM steps on the host.
    with sklearn.config_context(array_api_dispatch=False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            start = GaussianMixture(3, max_iter=2, random_state=0).fit(Xn)
    params = dict(
        n_components=3,
        random_state=0,
        chunk_size=100_000,
        weights_init=start.weights_,
        means_init=start.means_,
        precisions_init=start.precisions_,
    )
    numpy_fit = GaussianMixture(**params).fit(Xn)
    # The matrix-product form in chunks (the fused kernel is tested in
    # test_triton.py).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(array_api_engine, "_fused_wanted", lambda X: False)
        cuda_fit = GaussianMixture(**params).fit(_torch_cuda(Xn))
    assert_same_fit(numpy_fit, cuda_fit, rtol=1e-6)
    assert cuda_fit.lower_bound_ == pytest.approx(numpy_fit.lower_bound_, rel=1e-10)
    assert all(getattr(cuda_fit, name).is_cuda for name in FITTED)
    # float64 products only: the process-wide TF32 switch is left as it was.
    assert torch.backends.cuda.matmul.allow_tf32 == tf32


# -- scikit-learn's own array-API checks --
SKLEARN_NAMESPACES = [
    pytest.param("array_api_strict", None, id="strict"),
    pytest.param("array_api_strict", "device1", id="strict-device1"),
    pytest.param(
        "torch",
        "cpu",
        id="torch-cpu",
        marks=pytest.mark.skipif(torch is None, reason=NO_TORCH),
    ),
    pytest.param(
        "torch",
        "cuda",
        id="torch-cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)],
    ),
]


@pytest.mark.parametrize("namespace, device", SKLEARN_NAMESPACES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_sklearn_array_api_check_passes(namespace, device, dtype, covariance_type):
    # Namespace, device, shape and dtype of every array attribute and of
    # every method's output, against a numpy fit, with sample weights.
    from sklearn.utils.estimator_checks import check_array_api_input

    if "check_sample_weight" not in inspect.signature(check_array_api_input).parameters:
        pytest.skip("this scikit-learn's check_array_api_input takes no weights")
    estimator = GaussianMixture(2, covariance_type=covariance_type, random_state=0)
    check_array_api_input(
        "GaussianMixture",
        estimator,
        namespace,
        device_name=device,
        dtype_name=dtype,
        check_sample_weight=True,
    )


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
def test_sklearn_array_api_values_check_passes(covariance_type):
    # Values to scikit-learn's atol of 2.2e-14 (absolute). Not run for 'full'
    # and 'tied': the check's data (30 rows, 10 features, 2 components) give
    # near-singular covariances (precisions up to 6e5), where any other order
    # of summation moves score() by ~2e-11, although every attribute agrees
    # to ~1e-12 relative.
    from sklearn.utils.estimator_checks import check_array_api_input_and_values

    parameters = inspect.signature(check_array_api_input_and_values).parameters
    if "check_sample_weight" not in parameters:
        pytest.skip("this scikit-learn's check_array_api_input takes no weights")
    check_array_api_input_and_values(
        "GaussianMixture",
        GaussianMixture(2, covariance_type=covariance_type, random_state=0),
        "array_api_strict",
        check_sample_weight=True,
    )


@pytest.mark.skipif(torch is None, reason=NO_TORCH)
def test_sklearn_mixed_namespace_check_passes():
    # X on array-api-strict's device1, sample_weight a torch CPU tensor.
    NamespaceAndDevice = getattr(array_api_utils, "NamespaceAndDevice", None)
    if NamespaceAndDevice is None:
        pytest.skip("this scikit-learn has no mixed-namespace array-API check")
    from sklearn.utils.estimator_checks import check_array_api_mixed_inputs

    check_array_api_mixed_inputs(
        "GaussianMixture",
        GaussianMixture(2, random_state=0),
        NamespaceAndDevice("array_api_strict", "device1"),
        NamespaceAndDevice("torch", "cpu"),
    )


# -- benchmarks/bench_gpu.py, on the CPU --
def _bench_gpu():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_gpu.py"
    spec = importlib.util.spec_from_file_location("bench_gpu", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_gpu_quick_mode_runs_and_agrees_on_the_cpu(tmp_path):
    import json

    out = tmp_path / "bench_gpu.json"
    argv = ["--device", "cpu", "--quick", "--namespace", "array_api_strict"]
    argv += ["--n-iter", "2", "--output", str(out)]
    status = _bench_gpu().main(argv)
    result = json.loads(out.read_text(encoding="utf-8"))
    assert status == 0, result["failures"]
    assert {c["case"] for c in result["cases"]} == {
        "d2_k3_f64",
        "d2_k3_f32",
        "d32_k16_f64",
    }
    for case in result["cases"]:
        assert case["ours"]["n_iter"] == case["sklearn"]["n_iter"] == 2
        assert case["floor_ms"] > 0
        rtol = 1e-4 if case["dtype"] == "float32" else 1e-8
        assert case["lower_bound_rel_diff_sklearn"] <= rtol
        assert case["lower_bound_rel_diff_sklearn_cpu"] <= rtol


@pytest.mark.skipif(HAS_CUDA, reason="a CUDA device is present: the run would start")
def test_bench_gpu_says_why_it_measures_nothing_without_cuda(capsys):
    assert _bench_gpu().main(["--device", "cuda"]) == 2
    assert "nothing measured" in capsys.readouterr().err


def test_readme_example_runs(capsys):
    # Also run by tests/test_readme.py; here with the namespace checks.
    from pathlib import Path

    readme = Path(__file__).resolve().parents[1] / "README.md"
    section = readme.read_text(encoding="utf-8").split("## Array API and GPUs", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace = {"__name__": "__main__"}
    exec(compile(code, "README.md[array-api]", "exec"), namespace)
    assert same_place(namespace["proba"], namespace["X"])
    assert namespace["proba"].shape == (3000, 3)
    assert "array_api_strict" in capsys.readouterr().out


def test_sample_weight_may_be_given_where_x_lives():
    Xn = blobs()
    w = np.random.default_rng(2).uniform(0.0, 2.0, len(Xn))
    numpy_fit = GaussianMixture(3, random_state=0).fit(Xn, sample_weight=w)
    xp_fit = GaussianMixture(3, random_state=0)
    xp_fit.fit(_strict_device1(Xn), sample_weight=_strict_device1(w))
    assert_same_fit(numpy_fit, xp_fit)
