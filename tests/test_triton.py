"""The fused Triton E-step (:mod:`sklearn_em._triton_kernels`): the same
statistics and the same fits as the matrix-product form.

On a machine without a GPU the kernel runs under Triton's interpreter
(``TRITON_INTERPRET=1``) on torch CPU tensors, which executes the kernel's own
code with numpy; on a CUDA device the ``gpu`` tests run it compiled.
"""

import importlib
import os
import sys
import warnings

import numpy as np
import pytest
import sklearn
from _helpers import skip_without_array_api_dispatch
from sklearn.exceptions import ConvergenceWarning

skip_without_array_api_dispatch()
torch = pytest.importorskip(
    "torch", reason="torch is not installed (no extra installs it; tested where it is)"
)
HAS_CUDA = torch.cuda.is_available()
if not HAS_CUDA:
    # Triton reads this when it is imported (its own library functions are
    # compiled or interpreted from then on), so it must come first.
    if "triton" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip(
            "Triton was imported before this module, not under its interpreter, "
            "and there is no CUDA device to compile for",
            allow_module_level=True,
        )
    os.environ["TRITON_INTERPRET"] = "1"
pytest.importorskip(
    "triton", reason="Triton is not installed (the 'gpu' extra installs it)"
)

from sklearn_em import GaussianMixture  # noqa: E402
from sklearn_em import _array_api as array_api  # noqa: E402
from sklearn_em._covariance import get_covariance  # noqa: E402
from sklearn_em._model import Mixture  # noqa: E402

NO_CUDA = "no CUDA device (torch with CUDA) on this machine"
MODULE = "sklearn_em._triton_kernels"


def _shim_interpreter(monkeypatch):
    """Triton 3.6's interpreter turns scalar kernel arguments into Python ints
    with ``int()`` of a one-element array, which NumPy >= 2.4 refuses; read
    the element instead. Test-only: compiled kernels never run this code."""
    from triton.runtime import interpreter

    original = interpreter._patch_lang_tensor

    def patched(tensor, scope):
        original(tensor, scope)
        scope.set_attr(
            tensor, "__index__", lambda self: int(self.handle.data.reshape(-1)[0])
        )

    monkeypatch.setattr(interpreter, "_patch_lang_tensor", patched)


@pytest.fixture
def kernels(monkeypatch):
    """The kernel module, interpreted on the CPU unless a GPU is present, and
    the array-API engine told to use it for torch input on any device."""
    if not HAS_CUDA:
        _shim_interpreter(monkeypatch)
    monkeypatch.setattr(
        array_api, "_fused_wanted", lambda X: array_api._torch_tensor(X)
    )
    with sklearn.config_context(array_api_dispatch=True):
        yield importlib.import_module(MODULE)


def _device():
    return "cuda" if HAS_CUDA else "cpu"


def blobs(n, d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    centres = 5.0 * rng.standard_normal((3, d))
    X = centres[rng.integers(0, 3, n)] + rng.standard_normal((n, d))
    return (X + 50.0).astype(dtype)


def _model(Xn, covariance_type):
    # Three iterations: any parameters will do, converged or not.
    with sklearn.config_context(array_api_dispatch=False), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(
            3, covariance_type=covariance_type, max_iter=3, random_state=0
        ).fit(Xn)
    return Mixture(
        gm.weights_,
        gm.means_,
        gm.covariances_,
        gm.precisions_cholesky_,
        get_covariance(covariance_type),
    )


def _fused_and_gemm(kernels, Xn, w, covariance_type, **options):
    """Statistics of the fused kernel and of the matrix-product form."""
    d = Xn.shape[1]
    X = torch.asarray(Xn, device=_device())
    if w is not None:
        w = torch.asarray(w / w.max(), device=_device())
    covariance = get_covariance(covariance_type)
    model = _model(Xn, covariance_type)
    fused = array_api.ArrayAPIData(X, w, covariance, 3)
    assert fused._fused is not None
    fused._fused = kernels.FusedEStep(
        X,
        w,
        *array_api.second_order_plan(covariance, d),
        3,
        fused.center,
        **options,
    )
    gemm = array_api.ArrayAPIData(X, w, covariance, 3)
    gemm._fused = None
    return fused.stats(model), gemm.stats(model)


@pytest.mark.parametrize("n_features", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fused_statistics_equal_the_matrix_product_form(
    kernels, covariance_type, n_features, dtype, weighted
):
    # The ragged last block and several programs are exercised: 700 rows in
    # blocks of 32, four programs.
    w = np.random.default_rng(1).random(700) if weighted else None
    got, want = _fused_and_gemm(
        kernels,
        blobs(700, n_features, dtype),
        w,
        covariance_type,
        programs=4,
        block=32,
        float32_arithmetic=False,
    )
    scale = np.abs(want.moments).max()
    assert np.abs(got.moments - want.moments).max() <= 1e-12 * scale
    assert got.log_likelihood == pytest.approx(want.log_likelihood, rel=1e-12)
    assert got.total_weight == want.total_weight
    np.testing.assert_array_equal(got.centers, want.centers)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_float32_rows_are_computed_in_float32_and_summed_in_float64(
    kernels, covariance_type, weighted
):
    # The default for float32 data: per-row arithmetic in float32 (as
    # scikit-learn's float32 path), sums over rows in float64, so the
    # statistics of 5,000 rows stay within float32's rounding of each row.
    w = np.random.default_rng(2).random(5000) if weighted else None
    got, want = _fused_and_gemm(
        kernels, blobs(5000, 2, np.float32), w, covariance_type, block=64
    )
    scale = np.abs(want.moments).max(axis=1, keepdims=True)
    assert np.abs(got.moments - want.moments).max() <= 1e-5 * scale.max()
    assert np.all(np.abs(got.moments - want.moments) <= 1e-5 * scale)
    assert got.log_likelihood == pytest.approx(want.log_likelihood, rel=1e-6)


@pytest.mark.parametrize(
    "group, flush, prefetch",
    [(1, 1, False), (1, 1, True), (4, 3, True), (2, 5, False), (4, 1, True)],
)
@pytest.mark.parametrize("float32_arithmetic", [False, True], ids=["f64", "f32"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_every_launch_setting_gives_the_same_statistics(
    kernels, group, flush, prefetch, float32_arithmetic, weighted
):
    # 5,000 rows, four programs of ten 128-row steps (group 4): whole float32
    # flushes, leftover steps and a ragged last step all occur.
    w = np.random.default_rng(4).random(5000) if weighted else None
    got, want = _fused_and_gemm(
        kernels,
        blobs(5000, 2, np.float32),
        w,
        "full",
        programs=4,
        block=32,
        group=group,
        flush=flush,
        prefetch=prefetch,
        float32_arithmetic=float32_arithmetic,
    )
    rtol = 1e-5 if float32_arithmetic else 1e-12
    scale = np.abs(want.moments).max(axis=1, keepdims=True)
    assert np.all(np.abs(got.moments - want.moments) <= rtol * scale)
    assert got.log_likelihood == pytest.approx(want.log_likelihood, rel=rtol)


@pytest.mark.parametrize(
    "n_features, n_components, covariance_type",
    [(1, 8, "full"), (1, 16, "spherical"), (3, 4, "full"), (3, 6, "diag")],
)
def test_float32_arithmetic_across_shapes_runs_whole_float32_sums(
    kernels, n_features, n_components, covariance_type
):
    # Two programs of 6,000 rows in steps of 32 x group: the outer loop
    # flushes its float32 sums into float64 several times per program.
    Xn = blobs(12_000, n_features, np.float32, seed=7)
    covariance = get_covariance(covariance_type)
    with sklearn.config_context(array_api_dispatch=False), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(
            n_components, covariance_type=covariance_type, max_iter=3, random_state=0
        ).fit(Xn)
    model = Mixture(
        gm.weights_, gm.means_, gm.covariances_, gm.precisions_cholesky_, covariance
    )
    X = torch.asarray(Xn, device=_device())
    source = array_api.ArrayAPIData(X, None, covariance, n_components)
    fused = kernels.FusedEStep(
        X,
        None,
        *array_api.second_order_plan(covariance, n_features),
        n_components,
        source.center,
        programs=2,
        block=32,
    )
    assert fused.float32_arithmetic
    steps = 6_000 // (32 * fused.group)
    assert steps >= 2 * fused.flush
    source._fused = fused
    got = source.stats(model)
    source._fused = None
    want = source.stats(model)
    scale = np.abs(want.moments).max(axis=1, keepdims=True)
    assert np.all(np.abs(got.moments - want.moments) <= 1e-5 * scale)
    assert got.log_likelihood == pytest.approx(want.log_likelihood, rel=1e-6)


def test_the_product_of_normalisers_stays_finite_at_its_bound(kernels):
    # Sixteen identical components: every row's normaliser is exactly 16,
    # the largest there is, and a float32 sum runs over 30 rows (16**30 =
    # 2**120 before its log2).
    n_components = 16
    Xn = blobs(16_000, 1, np.float32, seed=8)
    covariance = get_covariance("full")
    mean, var = Xn.mean(axis=0), Xn.var(axis=0)
    covariances = np.tile(np.diag(var)[None], (n_components, 1, 1))
    model = Mixture(
        np.full(n_components, 1 / n_components),
        np.tile(mean, (n_components, 1)),
        covariances,
        covariance.precisions_cholesky(covariances),
        covariance,
    )
    X = torch.asarray(Xn, device=_device())
    source = array_api.ArrayAPIData(X, None, covariance, n_components)
    assert source._fused is not None
    default = source._fused
    assert default.group * default.flush == 30
    # Four programs, whatever the device's count of multiprocessors, so that
    # a whole float32 sum runs in every program.
    fused = kernels.FusedEStep(
        X,
        None,
        *array_api.second_order_plan(covariance, 1),
        n_components,
        source.center,
        programs=4,
    )
    assert (fused.group, fused.flush) == (default.group, default.flush)
    assert fused.rows_per_program // (fused.block * fused.group) >= fused.flush
    source._fused = fused
    got = source.stats(model)
    source._fused = None
    want = source.stats(model)
    assert np.isfinite(got.log_likelihood)
    assert got.log_likelihood == pytest.approx(want.log_likelihood, rel=1e-6)


def test_float32_sums_longer_than_the_product_bound_are_refused(kernels):
    X = torch.asarray(blobs(100, 2, np.float32), device=_device())
    with pytest.raises(ValueError, match="rows per float32 sum"):
        kernels.FusedEStep(X, None, *_plan(), 8, np.zeros(2), group=4, flush=16)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_column_major_rows_give_the_same_statistics(kernels, dtype):
    # Features a row apart in memory (Fortran order): strided loads.
    Xn = blobs(3000, 2, dtype)
    X = torch.asarray(np.asfortranarray(Xn), device=_device())
    assert X.stride(1) != 1
    covariance = get_covariance("full")
    model = _model(Xn, "full")
    source = array_api.ArrayAPIData(X, None, covariance, 3)
    assert source._fused is not None
    got = source.stats(model)
    source._fused = None
    want = source.stats(model)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    scale = np.abs(want.moments).max(axis=1, keepdims=True)
    assert np.all(np.abs(got.moments - want.moments) <= rtol * scale)
    assert got.log_likelihood == pytest.approx(want.log_likelihood, rel=rtol)


def test_a_fit_through_the_fused_kernel_is_the_numpy_fit(kernels, covariance_type):
    calls = []
    original = kernels.FusedEStep.__call__

    def counted(self, w_matrix):
        calls.append(1)
        return original(self, w_matrix)

    Xn = blobs(500, 2, np.float64, seed=3)
    params = dict(
        n_components=3, covariance_type=covariance_type, max_iter=200, random_state=0
    )
    with sklearn.config_context(array_api_dispatch=False):
        want = GaussianMixture(**params).fit(Xn)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels.FusedEStep, "__call__", counted)
        got = GaussianMixture(**params).fit(torch.asarray(Xn, device=_device()))
    assert len(calls) == want.n_iter_
    assert got.n_iter_ == want.n_iter_
    assert got.lower_bound_ == pytest.approx(want.lower_bound_, rel=1e-12)
    for name in ("weights_", "means_", "covariances_"):
        got_value = got.__dict__[name].cpu().numpy()
        scale = np.abs(want.__dict__[name]).max()
        assert np.abs(got_value - want.__dict__[name]).max() <= 1e-10 * scale


class _FarApartRows:
    """Rows ``stride`` elements apart in memory, as a view of a very wide
    array would be: only what the kernel's set-up reads."""

    def __init__(self, n, stride):
        self.shape = (n, 2)
        self.dtype = torch.float32
        self.device = torch.device("cpu")
        self._strides = (stride, 1)

    def stride(self, dim):
        return self._strides[dim]


def _plan():
    return array_api.second_order_plan(get_covariance("full"), 2)


def test_each_program_keeps_its_offsets_within_32_bits(kernels):
    rows = _FarApartRows(100_000, 2**16)
    fused = kernels.FusedEStep(rows, None, *_plan(), 3, np.zeros(2), programs=1)
    step = fused.block * fused.group
    # One program was asked for; more are used, none of whose offsets (a step
    # past its range included) passes 2**31 - 1.
    assert fused.programs > 1
    assert fused.programs * fused.rows_per_program >= rows.shape[0]
    assert (fused.rows_per_program + step) * (2**16 + 1) < 2**31
    assert kernels.offsets_fit(rows)


def test_rows_too_far_apart_for_32_bit_offsets_keep_the_matrix_product_form(
    kernels,
):
    rows = _FarApartRows(1000, 2**28)
    assert not kernels.offsets_fit(rows)
    with pytest.raises(ValueError, match="32-bit offsets"):
        kernels.FusedEStep(rows, None, *_plan(), 3, np.zeros(2))
    assert kernels.offsets_fit(torch.zeros((10, 2)))


def test_wide_data_keep_the_matrix_product_form(kernels):
    # 32 features, full: 561 columns per row would not fit in registers.
    X = torch.asarray(blobs(300, 32, np.float64), device=_device())
    source = array_api.ArrayAPIData(X, None, get_covariance("full"), 16)
    assert source._fused is None
    assert not kernels.eligible(16, 32 * 33 // 2, 32)
    assert kernels.eligible(3, 3, 2)
    assert not kernels.eligible(16, 10, 4)


@pytest.mark.gpu
@pytest.mark.skipif(not HAS_CUDA, reason=NO_CUDA)
@pytest.mark.parametrize(
    "dtype, bound_rtol, means_rtol, seed",
    # float64 rows: float64 arithmetic, the numpy fit to rounding; float32
    # rows: float32 arithmetic per row, float32's rounding. (Both passed on
    # an H200 with these data.)
    [(np.float64, 1e-10, 1e-10, 5), (np.float32, 1e-6, 1e-5, 6)],
    ids=["float64", "float32"],
)
def test_cuda_fits_of_few_features_take_the_fused_kernel_unasked(
    dtype, bound_rtol, means_rtol, seed
):
    # No patching: torch on CUDA with Triton installed is the kernel's case.
    # Beyond 1e5 rows the array-API engine initialises from a sample, so both
    # fits are given the same start.
    Xn = blobs(200_000, 2, dtype, seed=seed)
    start = _start(Xn)
    with sklearn.config_context(array_api_dispatch=True):
        X = torch.asarray(Xn, device="cuda")
        source = array_api.ArrayAPIData(X, None, get_covariance("full"), 3)
        assert source._fused is not None
        got = GaussianMixture(3, random_state=0, **start).fit(X)
    want = GaussianMixture(3, random_state=0, **start).fit(Xn)
    assert got.lower_bound_ == pytest.approx(want.lower_bound_, rel=bound_rtol)
    np.testing.assert_allclose(got.means_.cpu().numpy(), want.means_, rtol=means_rtol)


def _start(Xn):
    """Initial parameters from two numpy EM steps, as estimator arguments."""
    with sklearn.config_context(array_api_dispatch=False), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        gm = GaussianMixture(3, max_iter=2, random_state=0).fit(Xn)
    return {
        "weights_init": gm.weights_,
        "means_init": gm.means_,
        "precisions_init": gm.precisions_,
    }


def test_a_kernel_that_fails_at_first_falls_back_with_a_warning(kernels):
    # E.g. a Triton too old for this GPU: the fit goes on in the matrix-product
    # form and says why, once.
    def broken(self, w_matrix):
        raise RuntimeError("no kernel for this device")

    Xn = blobs(400, 2, np.float64, seed=4)
    with sklearn.config_context(array_api_dispatch=False):
        want = GaussianMixture(3, random_state=0).fit(Xn)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(kernels.FusedEStep, "__call__", broken)
        with pytest.warns(RuntimeWarning, match="no kernel for this device") as seen:
            got = GaussianMixture(3, random_state=0).fit(
                torch.asarray(Xn, device=_device())
            )
    assert len(seen) == 1
    assert got.lower_bound_ == pytest.approx(want.lower_bound_, rel=1e-12)


def test_a_kernel_that_worked_and_then_fails_raises(kernels):
    X = torch.asarray(blobs(300, 2, np.float64), device=_device())
    covariance = get_covariance("full")
    source = array_api.ArrayAPIData(X, None, covariance, 3)
    model = _model(blobs(300, 2, np.float64), "full")
    source.stats(model)
    assert source._fused.calls == 1

    def broken(w_matrix):
        raise MemoryError("out of device memory")

    source._fused.launch = broken
    with pytest.raises(MemoryError, match="out of device memory"):
        source.stats(model)
