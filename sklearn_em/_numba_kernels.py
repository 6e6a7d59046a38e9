"""Numba kernels of the compiled E-step (imported only by :mod:`._engine`).

The numpy kernel (:mod:`._dense`) makes about ten passes over a chunk's
buffers per E-step: centring, features, a matrix product, maximum, subtract,
``exp``, sum, ``log``, divide, a second matrix product. Here one compiled loop
takes a block of rows small enough for the L1 cache through all of them, so
each row of ``X`` is read from memory once per E-step and every temporary
stays in cache. The arithmetic is the numpy kernel's, term for term: feature
rows ``[1, y, second-order(y)]`` about the common centre, the covariance
type's log-density weights ``W``, a log-sum-exp shifted by each row's
maximum (whose own term, 1, is not computed up to three components), and
moments summed in float64 (where a fit wants only the sum of the rows'
log-likelihoods, by one ``log`` a block of rows).

float32 rows are computed in the dtype of the buffers they are given: in
float32 (as scikit-learn's float32 path, and the GPU kernel, do), with each
block's sums (at most ``BLOCK`` terms) added into float64, or widened to
float64 as they are read. Every kernel below is generic over that dtype;
where a constant or a transcendental function would fix the precision, an
overload (:func:`_exp_of`, :func:`_log_of`, :func:`_zero_of`,
:func:`_one_of`) picks it from its argument's type when numba compiles the
caller.

The llvmlite that pip installs has no SVML, so ``math.exp`` in a loop is a
scalar libm call (~14 ns, a whole row's budget): :func:`_exp` and
:func:`_log` are written out (Cody-Waite range reduction, a polynomial, the
exponent made in the float's bits), and LLVM vectorises them inlined.

Every kernel is ``nogil``: the library's own thread pool runs one range of
rows per thread, as for the numpy kernel, so nothing in numba's process-wide
threading configuration is touched. Compiled code is cached on disk,
where numba finds a writable directory for it (:data:`CACHED`).
"""

from __future__ import annotations

import numba
import numpy as np
from numba import types
from numba.extending import overload

from ._covariance import PAIRS, SQUARES
from ._em import MAX_RELATIVE_PRECISION

# Rows per block: the block's feature rows, log-densities and scratch stay
# within the L1/L2 caches for small d; on wide rows (full, d = 32: 1.15 MB of
# feature rows) within L2 or the L3 slice (where the block's products go to
# BLAS, if _blas_pays says so).
BLOCK = 256

# Rows of scratch (each BLOCK long) that posterior_rows takes.
INFER_SCRATCH = 4

# Where a whole block's two products (log-densities and moments) go to BLAS
# (``np.dot``: numba's binding of scipy's BLAS, held to one thread like every
# BLAS call of a fit) instead of the loops of _log_densities and
# _add_moments (see _blas_pays). The block's feature rows are read from cache
# either way (on the widest rows from L2 or L3, not memory). A partial block
# (the last of a range) keeps the loops. BLAS packs the block's feature rows
# (q x 256) into its own layout for every product: that pays only where
# enough components (k, BLAS's M) share them, and which side wins depends on
# the vector width of the CPU.
#
# Measured on 2 cores (Intel Xeon, AVX-512), make_blobs, 1e5 rows, one
# thread, float64, ms per E-step, loops / BLAS, two runs each: full d=2 k=8
# (k q = 48) 1.6 / 1.7-1.8; d=3 k=8 (80) 2.1 / 2.1-2.2; d=5 k=4 (84) 2.5 /
# 1.8-2.1; d=4 k=8 (120) 3.1 / 2.4-2.6; d=8 k=16 (720) 13-17 / 10-11; d=16
# k=16 (2448) 43 / 31; d=32 k=16 (8976) 198 / 113, where the numpy kernel
# took 152 (this is why wide rows run compiled, where the loops alone lost
# to numpy's matrix products). So with 512-bit vectors at full width, k q
# above GEMM_PRODUCTS goes to BLAS. Measured while the loops took the
# components outermost, two rewrites of the loops ago (see _log_densities),
# and not since: no such machine has been at hand.
GEMM_PRODUCTS = 80
# Elsewhere the loops, which now take two components a pass (see
# _log_densities), won or tied everywhere measured, on 2 cores of an AMD
# EPYC (Zen 4), make_blobs, 5e4 rows, whole fits from the same start, one
# thread, ms per iteration, loops / BLAS for every whole block, medians of 7
# interleaved in one process:
#   without AVX-512 (NUMBA_CPU_FEATURES the host's less avx512*, scipy's
#   OpenBLAS held to its AVX2 kernels by OPENBLAS_CORETYPE=Haswell, as on a
#   VM that hides AVX-512): full d=4 k=8 2.66 / 3.71, d=16 k=8 9.27 /
#   14.2, d=8 k=16 7.68 / 9.18, d=32 k=16 62.5 / 78.5, d=12 k=32 18.2 /
#   20.9, d=16 k=32 33.3 / 35.8, d=32 k=32 121 / 130, d=8 k=64 20.8 / 23.2,
#   d=12 k=64 44.7 / 44.5 (fastest repeats 0.89 the other way), d=8 k=128
#   49.7 / 52.5; diag d=32 k=16 10.4 / 13.1, d=32 k=128 57.1 / 63.2;
#   compiled for the host (AVX-512, whose 512-bit operations Zen 4 runs in
#   two 256-bit halves; and BLAS's kernels for it): full d=5 k=4 1.34 /
#   1.44, d=8 k=4 2.43 / 2.52, d=4 k=8 2.09 / 2.10, d=16 k=8 8.84 / 12.2,
#   d=8 k=16 5.42 / 5.38, d=32 k=16 52.6 / 69.8, d=4 k=32 4.69 / 5.17,
#   d=12 k=32 17.2 / 19.4, d=16 k=32 25.2 / 31.1, d=8 k=64 19.3 / 20.2;
#   diag d=32 k=16 8.35 / 8.29.
# (One component a pass, the loops had lost to BLAS without AVX-512 from
# k=32 at d=12 and from k=64 at d=8.)


def _wide_vectors(features: str | None = None) -> bool:
    """Whether code compiled for ``features`` (LLVM's ``+a,-b`` string) has
    512-bit vectors. By default, the features numba compiles with: those it
    is told (``NUMBA_CPU_FEATURES``), or else the host's, as numba takes
    them (without AVX where ``NUMBA_ENABLE_AVX=0``). A CPU name
    (``NUMBA_CPU_NAME``) changes only numba's tuning, not the features."""
    if features is None:
        from numba.core import codegen, config

        features = config.CPU_FEATURES
        if features is None:
            features = codegen.get_host_cpu_features()
    return "+avx512f" in features.split(",")


def _half_width_512(name: str | None = None, avx512: bool | None = None) -> bool:
    """Whether a CPU that LLVM names ``name`` (with AVX-512 or not; by
    default the host) is an AMD Zen 4, which runs 512-bit operations in two
    halves, and where BLAS's products gained nothing over the loops (see
    :data:`GEMM_PRODUCTS`). LLVM names it ``znver4`` from LLVM 16; older
    ones may call it ``znver3``, which with AVX-512 can only be a Zen 4
    (Zen 3 has none)."""
    if name is None or avx512 is None:
        try:
            from llvmlite import binding

            name = binding.get_host_cpu_name()
            avx512 = bool(binding.get_host_cpu_features().get("avx512f", False))
        except RuntimeError:  # pragma: no cover - llvmlite cannot tell
            return False
    return name == "znver4" or (name == "znver3" and avx512)


# Whether whole blocks' products may go to BLAS (fixed when the kernels
# compile; numba keys its cache by the CPU it compiles for, so another CPU
# compiles anew).
FULL_WIDTH_512 = _wide_vectors() and not _half_width_512()


# exp() of anything below this is below float64's smallest normal number; the
# argument is clamped there so that the exponent built in the bits stays valid.
# (Without the clamp the last select still gives 0 there, and a loop of exp
# took 3-4% less, ad hoc, but arguments just below it make subnormal products
# first, which cost a microcode assist on CPUs without flush-to-zero.)
_EXP_FLOOR = -708.0


def _cache_probe():  # pragma: no cover - never called
    """Stands in for the kernels below in :func:`_cache_available`."""


def _cache_available() -> bool:
    """Whether numba finds a writable place for this module's compiled code:
    ``NUMBA_CACHE_DIR``, next to this file, or the user's cache directory.
    A read-only install run by a user without a writable home (a
    container's non-root user, say) has none, and there every kernel's
    definition with ``cache=True`` would raise numba's RuntimeError."""
    try:
        numba.njit(cache=True)(_cache_probe)
    except RuntimeError:
        return False
    return True


# Whether compiled code is kept on disk for later processes; where it is not,
# the kernels are compiled in memory (see _engine._load).
CACHED = _cache_available()


_jit = numba.njit(
    nogil=True,
    cache=CACHED,
    error_model="numpy",
    # Reassociation lets LLVM vectorise the sums over rows; contraction
    # lets it use FMA. No 'nnan'/'ninf': infinities are meaningful here.
    fastmath={"reassoc", "contract", "nsz", "arcp"},
)
# Row helpers whose bodies (two exponentials) are too big for LLVM to inline
# into a loop, which then would not be vectorised: numba inlines them first.
_jit_inline = numba.njit(
    nogil=True,
    cache=CACHED,
    error_model="numpy",
    fastmath={"reassoc", "contract", "nsz", "arcp"},
    inline="always",
)
# The range reductions of exp and log rely on the exact order of their
# operations (Cody-Waite), so they are compiled without reassociation.
_jit_exact = numba.njit(
    nogil=True, cache=CACHED, error_model="numpy", fastmath={"contract"}
)
# The M-step: loops over a few components and features, nothing to
# vectorise, and compiled without reassociation so that its arithmetic is
# the same inlined into em_rows as called on its own (em_rows is bit for bit
# run_em's loop of stats_rows and m_step; with reassociation, 'tied' came
# out one ulp apart).
_jit_step = _jit_exact


@_jit_exact
def _exp(x0):  # pragma: no cover - compiled
    """``exp(x0)`` within 1 ulp for arguments in [-708, 709], and 0 below
    (where the true value is subnormal, at most 2.2e-308).

    exp(x) = 2^n exp(r), n = round(x / ln 2), r = x - n ln 2 in two parts
    (Cody-Waite; |r| <= ln 2 / 2), exp(r) by a polynomial of degree 11
    fitted on that interval (Chebyshev, ``mpmath.chebyfit``: error 3e-18,
    where Taylor needs degree 13; 5% off the E-step). 2^n is made in the
    bits: adding 1.5 * 2^52 + 1023 to x / ln 2 rounds it to an integer held
    in the low bits of the sum's mantissa, which a left shift by 52 moves
    into the exponent field. Inlined into loops, LLVM vectorises all of it.
    """
    shifter = 6755399441055744.0 + 1023.0
    x = max(x0, _EXP_FLOOR)
    t = x * 1.4426950408889634 + shifter
    n = t - shifter
    r = (x - n * 0.6931471803691238) - n * 1.9082149292705877e-10
    p = 2.5110037605963777e-08
    p = p * r + 2.763263963904103e-07
    p = p * r + 2.755724091857897e-06
    p = p * r + 2.4801485482328494e-05
    p = p * r + 0.00019841269890047113
    p = p * r + 0.0013888888952314775
    p = p * r + 0.008333333333319601
    p = p * r + 0.0416666666664881
    p = p * r + 0.1666666666666668
    p = p * r + 0.5000000000000019
    p = p * r + 1.0
    p = p * r + 1.0
    scale = np.int64(np.float64(t).view(np.int64) << 52).view(np.float64)
    return p * scale if x0 >= _EXP_FLOOR else 0.0


@_jit_exact
def _log(a):  # pragma: no cover - compiled
    """``log(a)`` for positive normal ``a``, within 4 ulp (3 measured).

    a = 2^e m with m in [sqrt(1/2), sqrt(2)); log m = 2 atanh(f), f =
    (m - 1) / (m + 1), |f| < 0.172, by its odd series to f^23
    (truncation < 1e-17 relative). Exponent and mantissa come from the
    bits, so this vectorises too.
    """
    b = np.float64(a).view(np.int64)
    e = np.float64((b >> 52) - 1023)
    m = np.int64((b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000).view(np.float64)
    if m > 1.4142135623730951:
        m *= 0.5
        e += 1.0
    f = (m - 1.0) / (m + 1.0)
    f2 = f * f
    s = 1.0 / 23.0
    s = s * f2 + 1.0 / 21.0
    s = s * f2 + 1.0 / 19.0
    s = s * f2 + 1.0 / 17.0
    s = s * f2 + 1.0 / 15.0
    s = s * f2 + 1.0 / 13.0
    s = s * f2 + 1.0 / 11.0
    s = s * f2 + 1.0 / 9.0
    s = s * f2 + 1.0 / 7.0
    s = s * f2 + 1.0 / 5.0
    s = s * f2 + 1.0 / 3.0
    s = s * f2 + 1.0
    return e * 0.6931471805599453 + 2.0 * f * s


# float32 versions, for rows computed in float32: every constant is a
# float32, or numba would widen the whole computation to float64.
_F32 = np.float32
_EXP_FLOOR_32 = _F32(-87.3)  # exp() below float32's smallest normal number
_SHIFTER_32 = _F32(12582912.0 + 127.0)  # 1.5 * 2^23 + the exponent bias
_LOG2E_32 = _F32(1.4426950408889634)
_LN2_HI_32, _LN2_LO_32 = _F32(0.693359375), _F32(-2.1219444005469057e-4)
_EXP_POLY_32 = tuple(
    _F32(c)
    for c in (
        0.0013941108433972674,
        0.008375126398153335,
        0.04166635289677516,
        0.16666415514653277,
        0.5000000047117757,
        1.000000037716214,
        1.0,
    )
)
_SQRT2_32, _LN2_32 = _F32(1.4142135623730951), _F32(0.6931471805599453)
_ONE_32, _TWO_32, _ZERO_32, _HALF_32 = _F32(1.0), _F32(2.0), _F32(0.0), _F32(0.5)
_LOG_SERIES_32 = tuple(_F32(1.0 / n) for n in (9, 7, 5, 3, 1))


@_jit_exact
def _exp32(x0):  # pragma: no cover - compiled
    """:func:`_exp` for float32: within 2 ulp (float32) in [-87.3, 88],
    0 below. The same construction, with the float32 exponent field (23
    bits, bias 127) and a polynomial of degree 6 (Chebyshev, error 2e-9)."""
    x = max(x0, _EXP_FLOOR_32)
    t = x * _LOG2E_32 + _SHIFTER_32
    n = t - _SHIFTER_32
    r = (x - n * _LN2_HI_32) - n * _LN2_LO_32
    p = _EXP_POLY_32[0]
    for c in _EXP_POLY_32[1:]:
        p = p * r + c
    scale = np.int32(np.float32(t).view(np.int32) << 23).view(np.float32)
    return p * scale if x0 >= _EXP_FLOOR_32 else _ZERO_32


@_jit_exact
def _log32(a):  # pragma: no cover - compiled
    """:func:`_log` for positive normal float32 ``a``, within 3 ulp
    (float32; 2.6 measured): the series of ``atanh`` to f^9 (truncation
    < 2e-9)."""
    b = np.float32(a).view(np.int32)
    e = np.float32((b >> 23) - 127)
    m = np.int32((b & 0x7FFFFF) | 0x3F800000).view(np.float32)
    if m > _SQRT2_32:
        m *= _HALF_32
        e += _ONE_32
    f = (m - _ONE_32) / (m + _ONE_32)
    f2 = f * f
    s = _LOG_SERIES_32[0]
    for c in _LOG_SERIES_32[1:]:
        s = s * f2 + c
    return e * _LN2_32 + _TWO_32 * f * s


def _exp_of(x):  # pragma: no cover - replaced in compiled code
    """``exp`` in the precision of ``x`` (:func:`_exp32` or :func:`_exp`)."""


def _log_of(a):  # pragma: no cover - replaced in compiled code
    """``log`` in the precision of ``a`` (:func:`_log32` or :func:`_log`)."""


def _by_precision(single, double):
    """An overload that picks the float32 or float64 kernel at typing."""

    def typer(x):
        if x == types.float32:
            return lambda x: single(x)
        return lambda x: double(x)

    return typer


def _zero_of(x):  # pragma: no cover - replaced in compiled code
    """0 in the precision of ``x``."""


def _one_of(x):  # pragma: no cover - replaced in compiled code
    """1 in the precision of ``x``."""


@_jit
def _zero32(x):  # pragma: no cover - compiled
    return _ZERO_32


@_jit
def _zero64(x):  # pragma: no cover - compiled
    return 0.0


@_jit
def _one32(x):  # pragma: no cover - compiled
    return _ONE_32


@_jit
def _one64(x):  # pragma: no cover - compiled
    return 1.0


overload(_exp_of)(_by_precision(_exp32, _exp))
overload(_log_of)(_by_precision(_log32, _log))
overload(_zero_of)(_by_precision(_zero32, _zero64))
overload(_one_of)(_by_precision(_one32, _one64))


@_jit_exact
def _blas_pays(k, q):  # pragma: no cover - compiled
    """Whether a whole block's two products, of ``k`` components and ``q``
    feature rows, go to BLAS (see :data:`GEMM_PRODUCTS`)."""
    return FULL_WIDTH_512 and k * q > GEMM_PRODUCTS


@_jit
def _ones(f):  # pragma: no cover - compiled
    """The constant feature row ``f[0] = 1``, which :func:`_features` leaves
    as it is: set once a call, not a block (3% of a 2-D E-step, ad hoc)."""
    for i in range(f.shape[1]):
        f[0, i] = 1.0


@_jit
def _plane_features(xf, m, c0, c1, a, b, missing=False):  # pragma: no cover
    """``a[:m], b[:m]``: the two coordinates of 2-D rows ``xf`` (flat,
    ``x0 y0 x1 y1 ...``) minus ``c0, c1``; with ``missing``, 0 for a
    missing value (NaN), which then counts as the centre.

    Rows as one flat run, read at a constant stride of two, into rows of
    their own: LLVM vectorises these reads with shuffles. Indexed as 2-D
    rows (``x[start + i, 0]``) or with an offset (``xf[base + 2 * i]``), it
    kept to one value at a time."""
    for i in range(m):
        u = xf[2 * i]
        v = xf[2 * i + 1]
        a[i] = _zero_of(c0) if missing and u != u else u - c0
        b[i] = _zero_of(c1) if missing and v != v else v - c1


@_jit
def _features(x, start, stop, center, kind, f, by_column=False):  # pragma: no cover
    """Feature rows ``[1, y, second-order(y)]`` (q, m) of rows
    ``start:stop`` of ``x``, ``y = x - center``, in ``f``'s precision; with
    ``by_column``, ``x`` is the rows' transpose (d, n): ``X.T`` of an
    F-ordered ``X``, C-ordered without a copy. Row 0, the constant 1, is
    :func:`_ones`' (once before the first block)."""
    m = stop - start
    d = center.shape[0]
    if by_column:
        for a in range(d):
            c = center[a]
            for i in range(m):
                f[1 + a, i] = x[a, start + i] - c
    elif d == 2:
        _plane_features(
            x[start:stop].reshape(2 * m), m, center[0], center[1], f[1], f[2]
        )
    else:
        for a in range(d):
            c = center[a]
            for i in range(m):
                f[1 + a, i] = x[start + i, a] - c
    if kind == PAIRS:
        row = 1 + d
        for a in range(d):
            for b in range(a, d):
                for i in range(m):
                    f[row, i] = f[1 + a, i] * f[1 + b, i]
                row += 1
    elif kind == SQUARES:
        for a in range(d):
            for i in range(m):
                f[1 + d + a, i] = f[1 + a, i] * f[1 + a, i]
    else:
        for i in range(m):
            f[1 + d, i] = 0.0
        for a in range(d):
            for i in range(m):
                f[1 + d, i] += f[1 + a, i] * f[1 + a, i]


@_jit
def _log_densities_by_blas(f, w_matrix, lp):  # pragma: no cover - compiled
    """:func:`_log_densities` of a whole block by BLAS (``np.dot``, numba's
    binding of scipy's)."""
    product = np.dot(w_matrix, f)
    for j in range(lp.shape[0]):
        for i in range(f.shape[1]):
            lp[j, i] = product[j, i]


@_jit
def _add_moments_by_blas(lp, f, scale, moments):  # pragma: no cover - compiled
    """:func:`_add_moments` of a whole block by BLAS (``lp`` scaled in
    place)."""
    _scale(lp, f.shape[1], scale)
    moments += np.dot(lp, f.T)


@_jit
def _log_densities(f, m, w_matrix, lp):  # pragma: no cover
    """``lp[:, :m] = W @ f[:, :m]``, four feature rows per pass over
    ``lp`` (a quarter of its loads and stores), or by BLAS (see
    :func:`_blas_pays`)."""
    k, q = w_matrix.shape
    if m == f.shape[1] and _blas_pays(k, q):
        _log_densities_by_blas(f, w_matrix, lp)
        return
    # The constant term rides with the first features' pass, and a last
    # one to three features take one pass: 2-D data (q = 4 to 6) writes
    # each row of lp once, not three or four times.
    for j in range(k):
        w0 = w_matrix[j, 0]
        if q == 6:  # full and tied 2-D (spherical 4-D): the row in one pass
            wa, wb = w_matrix[j, 1], w_matrix[j, 2]
            wc, wd, we = w_matrix[j, 3], w_matrix[j, 4], w_matrix[j, 5]
            for i in range(m):
                lp[j, i] = w0 + (
                    (wa * f[1, i] + wb * f[2, i])
                    + ((wc * f[3, i] + wd * f[4, i]) + we * f[5, i])
                )
            continue
        if q >= 5:
            wa, wb = w_matrix[j, 1], w_matrix[j, 2]
            wc, wd = w_matrix[j, 3], w_matrix[j, 4]
            for i in range(m):
                lp[j, i] = w0 + (
                    (wa * f[1, i] + wb * f[2, i]) + (wc * f[3, i] + wd * f[4, i])
                )
        elif q == 4:  # spherical 2-D
            wa, wb, wc = w_matrix[j, 1], w_matrix[j, 2], w_matrix[j, 3]
            for i in range(m):
                lp[j, i] = w0 + ((wa * f[1, i] + wb * f[2, i]) + wc * f[3, i])
        else:  # q = 3: 1-D data
            wa, wb = w_matrix[j, 1], w_matrix[j, 2]
            for i in range(m):
                lp[j, i] = w0 + (wa * f[1, i] + wb * f[2, i])
    p = q if q <= 6 else 5  # the feature rows that pass took
    # Then four feature rows at a time, each group for every component: the
    # group (8 KB of a float64 block) stays in L1 while every row of lp takes it.
    # With the components outermost, each re-read all q feature rows, from
    # L2 once a block's exceed L1 (q = 16 up): full d=16, k=4 took 1.5 times
    # as long. Two components a pass load the group's four values once for
    # both (six loads for eight products instead of five for four): whole
    # fits of full d=32, k=16 took 0.90 of the time without AVX-512 and 0.75
    # with it (ad hoc, Zen 4; AVX-512 gives LLVM 32 vector registers, AVX2
    # 16). Each lp[j, i] adds the same terms in the same order.
    while p + 4 <= q:
        j = 0
        while j + 2 <= k:
            wa, wb = w_matrix[j, p], w_matrix[j, p + 1]
            wc, wd = w_matrix[j, p + 2], w_matrix[j, p + 3]
            va, vb = w_matrix[j + 1, p], w_matrix[j + 1, p + 1]
            vc, vd = w_matrix[j + 1, p + 2], w_matrix[j + 1, p + 3]
            for i in range(m):
                f0, f1, f2, f3 = f[p, i], f[p + 1, i], f[p + 2, i], f[p + 3, i]
                lp[j, i] += (wa * f0 + wb * f1) + (wc * f2 + wd * f3)
                lp[j + 1, i] += (va * f0 + vb * f1) + (vc * f2 + vd * f3)
            j += 2
        if j < k:
            wa, wb = w_matrix[j, p], w_matrix[j, p + 1]
            wc, wd = w_matrix[j, p + 2], w_matrix[j, p + 3]
            for i in range(m):
                lp[j, i] += (wa * f[p, i] + wb * f[p + 1, i]) + (
                    wc * f[p + 2, i] + wd * f[p + 3, i]
                )
        p += 4
    for j in range(k):
        if q - p == 3:
            wa, wb, wc = w_matrix[j, p], w_matrix[j, p + 1], w_matrix[j, p + 2]
            for i in range(m):
                lp[j, i] += (wa * f[p, i] + wb * f[p + 1, i]) + wc * f[p + 2, i]
        elif q - p == 2:
            wa, wb = w_matrix[j, p], w_matrix[j, p + 1]
            for i in range(m):
                lp[j, i] += wa * f[p, i] + wb * f[p + 1, i]
        elif q - p == 1:
            wa = w_matrix[j, p]
            for i in range(m):
                lp[j, i] += wa * f[p, i]


@_jit
def _add_moments(lp, f, m, scale, moments):  # pragma: no cover
    """``moments += (lp[:, :m] * scale[:m]) @ f[:, :m].T``, four feature
    rows per pass (all of them for q = 4 to 6), each block's sums in the
    buffers' precision (by BLAS where :func:`_blas_pays` says).
    ``scale`` is each row's reciprocal total (times its weight). Up to six
    feature rows it is taken in the one pass (the responsibilities are never
    stored); from seven, where each component's row of ``lp`` is read once
    for every four feature rows, ``lp`` is scaled in place first and holds
    the responsibilities afterwards."""
    k, q = moments.shape
    if m == f.shape[1] and m == lp.shape[1] and _blas_pays(k, q):
        _add_moments_by_blas(lp, f, scale, moments)
        return
    first = _moments_in_pairs(lp, f, m, scale, moments) if q == 4 or q == 5 else 0
    for j in range(first, k):
        if q == 6:  # full and tied 2-D (spherical 4-D): one pass a component
            a = b = c = e = g = h = _zero_of(lp[j, 0])
            for i in range(m):
                r = lp[j, i] * scale[i]
                a += r  # times f[0], which is 1
                b += r * f[1, i]
                c += r * f[2, i]
                e += r * f[3, i]
                g += r * f[4, i]
                h += r * f[5, i]
            moments[j, 0] += a
            moments[j, 1] += b
            moments[j, 2] += c
            moments[j, 3] += e
            moments[j, 4] += g
            moments[j, 5] += h
            continue
        if q == 5:  # diag 2-D (spherical 3-D)
            a = b = c = e = g = _zero_of(lp[j, 0])
            for i in range(m):
                r = lp[j, i] * scale[i]
                a += r
                b += r * f[1, i]
                c += r * f[2, i]
                e += r * f[3, i]
                g += r * f[4, i]
            moments[j, 0] += a
            moments[j, 1] += b
            moments[j, 2] += c
            moments[j, 3] += e
            moments[j, 4] += g
    if q == 5 or q == 6:
        return
    # The responsibilities once (lp is not read after this), then four
    # feature rows at a time for two components a pass, as in _log_densities
    # (spherical 2-D, q = 4: the component _moments_in_pairs left, if any):
    # eight running sums, the group's four values loaded once for both.
    _scale(lp, m, scale, first)
    p = 0
    while p + 4 <= q:
        j = first
        while j + 2 <= k:
            a = b = c = e = _zero_of(lp[j, 0])
            a2 = b2 = c2 = e2 = _zero_of(lp[j, 0])
            for i in range(m):
                r, r2 = lp[j, i], lp[j + 1, i]
                f0, f1, f2, f3 = f[p, i], f[p + 1, i], f[p + 2, i], f[p + 3, i]
                a += r * f0
                b += r * f1
                c += r * f2
                e += r * f3
                a2 += r2 * f0
                b2 += r2 * f1
                c2 += r2 * f2
                e2 += r2 * f3
            moments[j, p] += a
            moments[j, p + 1] += b
            moments[j, p + 2] += c
            moments[j, p + 3] += e
            moments[j + 1, p] += a2
            moments[j + 1, p + 1] += b2
            moments[j + 1, p + 2] += c2
            moments[j + 1, p + 3] += e2
            j += 2
        if j < k:
            a = b = c = e = _zero_of(lp[j, 0])
            for i in range(m):
                r = lp[j, i]
                a += r * f[p, i]
                b += r * f[p + 1, i]
                c += r * f[p + 2, i]
                e += r * f[p + 3, i]
            moments[j, p] += a
            moments[j, p + 1] += b
            moments[j, p + 2] += c
            moments[j, p + 3] += e
        p += 4
    # The last one to three features in one pass (diag 3-D data: q = 7,
    # two passes a component, not four).
    for j in range(first, k):
        if q - p == 3:
            a = b = c = _zero_of(lp[j, 0])
            for i in range(m):
                r = lp[j, i]
                a += r * f[p, i]
                b += r * f[p + 1, i]
                c += r * f[p + 2, i]
            moments[j, p] += a
            moments[j, p + 1] += b
            moments[j, p + 2] += c
        elif q - p == 2:
            a = b = _zero_of(lp[j, 0])
            for i in range(m):
                r = lp[j, i]
                a += r * f[p, i]
                b += r * f[p + 1, i]
            moments[j, p] += a
            moments[j, p + 1] += b
        elif q - p == 1:
            a = _zero_of(lp[j, 0])
            for i in range(m):
                a += lp[j, i] * f[p, i]
            moments[j, p] += a


@_jit
def _moments_in_pairs(lp, f, m, scale, moments):  # pragma: no cover - compiled
    """:func:`_add_moments` of four or five feature rows (spherical and diag
    2-D) for components ``0, 1``, ``2, 3``, ...: each pass reads a row's
    features and scale once for two components, whose sums (ten at most)
    stay in registers. Returns the first component not taken (``k - k %
    2``). Ad hoc, one thread, the moments alone of 1e6 rows, k = 3, AMD
    EPYC: q = 5 0.83-0.94 ms against 1.01-1.32 one component a pass, q = 4
    0.70-0.84 against 1.05-1.37; q = 6 (twelve sums) took 1.3-1.7 times as
    long as one a pass, so it is not paired."""
    k, q = moments.shape
    for j in range(0, k - 1, 2):
        a = b = c = e = g = _zero_of(lp[j, 0])
        a2 = b2 = c2 = e2 = g2 = _zero_of(lp[j, 0])
        if q == 5:
            for i in range(m):
                s = scale[i]
                r, r2 = lp[j, i] * s, lp[j + 1, i] * s
                f1, f2, f3, f4 = f[1, i], f[2, i], f[3, i], f[4, i]
                a += r
                b += r * f1
                c += r * f2
                e += r * f3
                g += r * f4
                a2 += r2
                b2 += r2 * f1
                c2 += r2 * f2
                e2 += r2 * f3
                g2 += r2 * f4
            moments[j, 4] += g
            moments[j + 1, 4] += g2
        else:
            for i in range(m):
                s = scale[i]
                r, r2 = lp[j, i] * s, lp[j + 1, i] * s
                f1, f2, f3 = f[1, i], f[2, i], f[3, i]
                a += r
                b += r * f1
                c += r * f2
                e += r * f3
                a2 += r2
                b2 += r2 * f1
                c2 += r2 * f2
                e2 += r2 * f3
        moments[j, 0] += a
        moments[j, 1] += b
        moments[j, 2] += c
        moments[j, 3] += e
        moments[j + 1, 0] += a2
        moments[j + 1, 1] += b2
        moments[j + 1, 2] += c2
        moments[j + 1, 3] += e2
    return k - k % 2


@_jit_exact
def _sum_of(a, b):  # pragma: no cover - compiled
    """``a + b``, never reassociated with the sums around it."""
    return a + b


@_jit_exact
def _finite_part(x):  # pragma: no cover - compiled
    """``x - x``: 0 where ``x`` is finite, NaN where it is not. Compiled
    without reassociation: with it, LLVM folds ``(a + b) - (a + b)`` to 0
    (a sum's finiteness test then always passed)."""
    return x - x


@_jit_exact
def _finite(x):  # pragma: no cover - compiled
    """Whether ``x`` is finite (see :func:`_finite_part`)."""
    return _finite_part(x) == 0.0


@_jit
def _term(a, z, t, s):  # pragma: no cover - compiled
    """A row's term ``exp(a - t)`` of a component's log-density ``a``
    (``t`` the row's maximum), and the last component's term ``s`` so
    far: where ``a`` is the maximum, its term is 1 and the exponential
    computed is the last component's, ``exp(z - t)``
    (see :func:`_exponentiate`)."""
    at = a == t
    e = _exp_of((z if at else a) - t)
    return (_one_of(e) if at else e), (e if at else s)


@_jit
def _top(t):  # pragma: no cover - compiled
    """A row's maximum as its terms take it: 0 where it is ``-inf`` (every
    log-density ``-inf``), so that every term is 0; NaN where it is
    ``+inf`` (:func:`_finite_part`, in ``t``'s precision), so that every
    term is 0 too (``exp(inf - inf)`` is NaN's, 0), where _term would
    otherwise take the infinite one's slot for the maximum's, 1."""
    if t == -np.inf:
        return _zero_of(t)
    return _finite_part(t) if t == np.inf else t


@_jit
def _maxima(lp, m, top, spare):  # pragma: no cover - compiled
    """``top[:m]``: each row's maximum (:func:`_top`) over four or more
    components (three at least: the first pass writes the buffer that the
    second reads); ``spare`` is scratch.

    No loop here stores into an array, under a condition, what it read from
    the same place (``top[i] = max(top[i], v)``): LLVM makes that a masked
    store, microcoded on AMD Zen (this pass took 3.7 times as long). The
    row maxima go back and forth between ``top`` and ``spare`` instead,
    each loop on named buffers (LLVM does not vectorise as well through
    swapped references)."""
    k = lp.shape[0]
    # The first pass writes where the running maximum must start so that
    # it ends in ``spare`` for the last component's pass.
    if k % 2:
        for i in range(m):
            spare[i] = max(lp[0, i], lp[1, i])
    else:
        for i in range(m):
            top[i] = max(lp[0, i], lp[1, i])
    for j in range(2, k - 1):
        if (j + k) % 2:
            for i in range(m):
                top[i] = max(spare[i], lp[j, i])
        else:
            for i in range(m):
                spare[i] = max(top[i], lp[j, i])
    for i in range(m):
        top[i] = _top(max(spare[i], lp[k - 1, i]))


@_jit_inline
def _three_terms(a, b, z, t):  # pragma: no cover - compiled
    """A row of three components' log-densities ``a, b, z`` and its
    maximum ``t`` as the terms take it (:func:`_top` of it; or the maximum
    itself, in :func:`_fit_terms`, whose caller redoes a block where one
    is not finite): its three terms (two exponentials, see _term) and their sum,
    added in component order."""
    e, s = _term(a, z, t, _one_of(t) if z == t else _zero_of(t))
    g, s = _term(b, z, t, s)
    return e, g, s, _sum_of(_sum_of(e, g), s)


@_jit_inline
def _two_terms(a, z, t):  # pragma: no cover - compiled
    """:func:`_three_terms` of two components."""
    e, s = _term(a, z, t, _one_of(t) if z == t else _zero_of(t))
    return e, s, _sum_of(e, s)


@_jit_inline
def _one_term(a, t):  # pragma: no cover - compiled
    """:func:`_three_terms` of one component: its term is 1 (0 where its
    log-density is ``-inf`` or NaN, as ``exp`` gives, with ``t`` from
    :func:`_top`)."""
    return _one_of(t) if a == t else _zero_of(t)


@_jit
def _exponentiate(lp, m, top, total, log_total):  # pragma: no cover
    """``lp[:, :m] = exp(lp - top)`` in place, with ``top[:m]`` each row's
    maximum and ``total[:m]`` the row sums (in [1, k]); a row with every
    log-density ``-inf`` gets ones, ``total`` k and ``top`` ``-inf``.
    ``log_total`` is scratch."""
    k = lp.shape[0]
    # Every row's largest term is exp(0) = 1: up to three components, the
    # kernel computes k - 1 exponentials a row, not k (a third fewer at
    # k = 3), in one pass with the row's maximum. Over rows, in vectors,
    # which component is the largest differs from row to row, so each
    # row's last component takes its place: where ``lp[j]`` is the row's
    # maximum, its slot computes ``exp(lp[k - 1] - top)`` and becomes 1
    # (_term). Every value is the exp of the same argument as with k
    # exponentials, and each row's sum is added in the same order, so the
    # results are bit for bit the same (NaN and all -inf rows included:
    # ``_exp`` gives 0 for both). From four components up, the selects this
    # takes cost more than the exponential they save (ad hoc, one thread,
    # 1e6 rows, AMD EPYC, the exponentials' pass alone: 10% faster at k =
    # 3, 20-25% at k = 2, even at k = 4, 6% slower at k = 8). Each pass also
    # counts the rows with nothing. The sums are _sum_of's: LLVM may
    # reassociate additions in the loops of _jit, and each row's sum must
    # come out the same in every kernel that inlines this.
    empty = 0
    if k == 3:
        for i in range(m):
            a, b, z = lp[0, i], lp[1, i], lp[2, i]
            t = _top(max(max(a, b), z))
            e, g, s, sum_ = _three_terms(a, b, z, t)
            top[i] = t
            lp[0, i] = e
            lp[1, i] = g
            lp[2, i] = s
            total[i] = sum_
            empty += sum_ == 0.0
    elif k == 2:
        for i in range(m):
            a, z = lp[0, i], lp[1, i]
            t = _top(max(a, z))
            e, s, sum_ = _two_terms(a, z, t)
            top[i] = t
            lp[0, i] = e
            lp[1, i] = s
            total[i] = sum_
            empty += sum_ == 0.0
    elif k == 1:
        for i in range(m):
            t = _top(lp[0, i])
            s = _one_term(lp[0, i], t)
            top[i] = t
            lp[0, i] = s
            total[i] = s
            empty += s == 0.0
    else:
        _maxima(lp, m, top, log_total)
        # Two components per pass: twice the independent work in flight
        # for the latency of exp's polynomial, half the passes over
        # ``total``.
        for i in range(m):
            total[i] = 0.0
        for j in range(0, k - 1, 2):
            for i in range(m):
                t = top[i]
                e = _exp_of(lp[j, i] - t)
                g = _exp_of(lp[j + 1, i] - t)
                lp[j, i] = e
                lp[j + 1, i] = g
                total[i] = _sum_of(_sum_of(total[i], e), g)
        if k % 2:
            for i in range(m):
                e = _exp_of(lp[k - 1, i] - top[i])
                lp[k - 1, i] = e
                total[i] = _sum_of(total[i], e)
        for i in range(m):
            empty += total[i] == 0.0
    if empty:
        _mend_empty(lp, m, top, total)


@_jit
def _mend_empty(lp, m, top, total):  # pragma: no cover
    """Rows with nothing (every log-density ``-inf``), whose ``total`` is 0:
    equal responsibilities (ones), ``total`` k and ``top`` ``-inf``, as the
    numpy kernel gives them."""
    k = lp.shape[0]
    for i in range(m):
        if total[i] == 0.0:
            for j in range(k):
                lp[j, i] = 1.0
            total[i] = k
            top[i] = -np.inf


@_jit
def _scale(lp, m, scale, first=0):  # pragma: no cover - compiled
    """``lp[first:, :m] *= scale[:m]``."""
    for j in range(first, lp.shape[0]):
        for i in range(m):
            lp[j, i] *= scale[i]


# Row sums multiplied together before one log (see _normalize_summed): each
# of the products takes at most BLOCK / _PRODUCTS = 32 sums, each in [1, k],
# so in float64 it stays finite for any k below 2**31.
_PRODUCTS = 8
assert BLOCK % _PRODUCTS == 0


@_jit
def _normalize_summed(lp, m, top, total, log_total):  # pragma: no cover
    """:func:`_exponentiate`, for a caller that wants no ``log p(x)`` of
    its own rows: returns the sum of the rows' ``log p(x)`` in float64
    (``sum(top) + log(prod(totals))``) and leaves in ``total[:m]`` each
    row's reciprocal total (what scales its responsibilities).

    The row totals lie in [1, k] (the row's largest term is ``exp(0)``):
    a product of at most 32 cannot overflow in float64, so one log of a
    block's product, taken as a mantissa and an exponent, replaces one per
    row (each a division and a series): eight running products (rows
    ``i``, ``i + 8``, ...) follow the exponentials' pass. (Up to three
    components, a fit takes :func:`_fit_terms`' single pass instead, and
    this only for a block with a row whose maximum is not finite.) Ad hoc,
    one thread, 1e6 rows, k = 3 (AMD EPYC, interleaved): eight logs a block
    instead of one a row took 3-6% off an E-step. The block's product is
    within 255 roundings (2.9e-14 relative, the log's absolute error),
    its log within 4 ulp of a value below ln 256, and the exponent's ``n
    ln 2`` exact to ln 2's second part: no further from the exact sum than
    one log per row (each within 4 ulp of ln(k), 256 of them)."""
    _exponentiate(lp, m, top, total, log_total)
    summed = 0.0
    for i in range(m):
        summed += top[i]
    # Eight named products, not an array: a buffer would need one more
    # argument (or an allocation per block), where scalars stay in
    # registers.
    p0 = p1 = p2 = p3 = p4 = p5 = p6 = p7 = 1.0
    # The rows up to the next multiple of eight count as totals of 1 (the
    # buffers hold BLOCK rows, a multiple of eight).
    padded = -(-m // _PRODUCTS) * _PRODUCTS
    for i in range(m, padded):
        total[i] = 1.0
    for i in range(0, padded, _PRODUCTS):
        p0 *= total[i]
        p1 *= total[i + 1]
        p2 *= total[i + 2]
        p3 *= total[i + 3]
        p4 *= total[i + 4]
        p5 *= total[i + 5]
        p6 *= total[i + 6]
        p7 *= total[i + 7]
    for i in range(m):
        total[i] = 1.0 / total[i]
    # One log of the eight: their exponents summed as integers, their
    # mantissas (each in [1, 2)) multiplied, below 256.
    mantissa, exponent = _times(1.0, 0, p0)
    mantissa, exponent = _times(mantissa, exponent, p1)
    mantissa, exponent = _times(mantissa, exponent, p2)
    mantissa, exponent = _times(mantissa, exponent, p3)
    mantissa, exponent = _times(mantissa, exponent, p4)
    mantissa, exponent = _times(mantissa, exponent, p5)
    mantissa, exponent = _times(mantissa, exponent, p6)
    mantissa, exponent = _times(mantissa, exponent, p7)
    return _plus_log(summed, mantissa, exponent)


@_jit
def _fit_terms(lp, m, total):  # pragma: no cover - compiled
    """:func:`_normalize_summed` in one pass for up to three components,
    where every row's maximum is finite: ``lp[:, :m]`` the terms,
    ``total[:m]`` the rows' reciprocal totals; returns the sum of the
    rows' ``log p(x)``, not finite where a row's maximum is not (every
    log-density ``-inf``, one ``+inf``, or NaN), for the caller to redo the
    block by :func:`_normalize_summed`, whose :func:`_top` and mending of
    rows with nothing such rows need. Where every row's maximum is finite
    they change nothing (the largest term is 1, so no total is 0), and this
    pass saves their selects and count: ad hoc, one thread, 1e6 rows, k =
    3, AMD EPYC, the pass took 4.0-4.2 ms against 4.5-4.9.

    The totals lie in [1, k], so the product of a block's (at most 3**256
    < 1e123) stays finite in float64: one log of it, as a mantissa and an
    exponent, replaces one a row (see :func:`_normalize_summed`)."""
    k = lp.shape[0]
    summed, product = 0.0, 1.0
    if k == 3:
        for i in range(m):
            a, b, z = lp[0, i], lp[1, i], lp[2, i]
            t = max(max(a, b), z)
            e, g, s, sum_ = _three_terms(a, b, z, t)
            lp[0, i] = e
            lp[1, i] = g
            lp[2, i] = s
            total[i] = _one_of(sum_) / sum_
            summed += t
            product *= sum_
    elif k == 2:
        for i in range(m):
            a, z = lp[0, i], lp[1, i]
            t = max(a, z)
            e, s, sum_ = _two_terms(a, z, t)
            lp[0, i] = e
            lp[1, i] = s
            total[i] = _one_of(sum_) / sum_
            summed += t
            product *= sum_
    else:
        for i in range(m):
            t = lp[0, i]
            s = _one_term(t, t)
            lp[0, i] = s
            total[i] = _one_of(s) / s
            summed += t
    mantissa, exponent = _times(1.0, 0, product)
    return _plus_log(summed, mantissa, exponent)


@_jit_exact
def _plus_log(summed, mantissa, exponent):  # pragma: no cover - compiled
    """``summed + log(mantissa * 2**exponent)``."""
    return _sum_of(summed, _log(mantissa) + _ln2_times(exponent))


@_jit_exact
def _times(mantissa, exponent, p):  # pragma: no cover - compiled
    """``mantissa * 2**exponent`` times a positive normal ``p``, as the
    product of the mantissas and the sum of the exponents."""
    b = np.float64(p).view(np.int64)
    bits = (b & 0xFFFFFFFFFFFFF) | 0x3FF0000000000000
    return mantissa * np.int64(bits).view(np.float64), exponent + ((b >> 52) - 1023)


@_jit_exact
def _ln2_times(n):  # pragma: no cover - compiled
    """``n ln 2`` for an integer ``n``, ln 2 in two parts (as in _exp): the
    first has trailing zero bits, so its product is exact for |n| < 2**20."""
    x = np.float64(n)
    return x * 0.6931471803691238 + x * 1.9082149292705877e-10


@_jit
def _weigh(m, w, top, total, log_total):  # pragma: no cover - compiled
    """After :func:`_exponentiate`: ``log p(x)`` in ``log_total[:m]`` and
    each row's weight over its total in ``total[:m]`` (what scales its
    responsibilities); returns the weighted log-likelihood."""
    for i in range(m):
        log_total[i] = _log_of(total[i]) + top[i]
        total[i] = w[i] / total[i]
    # A loop of its own: this sum must come out the same inlined into
    # em_rows as in stats_rows called alone (the test of compiled runs),
    # and fused into the loop above it did not.
    summed = 0.0
    for i in range(m):
        summed += w[i] * log_total[i]
    return summed


@_jit
def stats_rows(  # pragma: no cover - compiled
    x, w, center, w_matrix, kind, moments, f, lp, scratch
):
    """Add the moments (k, q) of all rows of ``x`` to ``moments``; return
    their summed (weighted) log-likelihood. ``w`` is empty for unit
    weights. ``f`` (q, BLOCK), ``lp`` (k, BLOCK) and ``scratch`` (3, BLOCK)
    are buffers."""
    return _stats_range(
        x, False, 0, x.shape[0], w, center, w_matrix, kind, moments, f, lp, scratch
    )


@_jit
def _stats_range(  # pragma: no cover - compiled
    x, by_column, first, last, w, center, w_matrix, kind, moments, f, lp, scratch
):
    """:func:`stats_rows` of rows ``first:last`` of ``x`` (of ``x.T`` with
    ``by_column``, see :func:`_features`), ``w`` all rows' weights or
    empty."""
    weighted = w.shape[0] > 0
    log_likelihood = 0.0
    top, total, log_total = scratch[0], scratch[1], scratch[2]
    _ones(f)
    for start in range(first, last, BLOCK):
        stop = min(start + BLOCK, last)
        m = stop - start
        _features(x, start, stop, center, kind, f, by_column)
        _log_densities(f, m, w_matrix, lp)
        if weighted:
            _exponentiate(lp, m, top, total, log_total)
            log_likelihood += _weigh(m, w[start:stop], top, total, log_total)
        elif lp.shape[0] > 3:
            log_likelihood += _normalize_summed(lp, m, top, total, log_total)
        else:
            summed = _fit_terms(lp, m, total)
            if not _finite(summed):  # a row's maximum was not: lp anew, with care
                _log_densities(f, m, w_matrix, lp)
                summed = _normalize_summed(lp, m, top, total, log_total)
            log_likelihood += summed
        _add_moments(lp, f, m, total, moments)
    return log_likelihood


@_jit
def log_prob_rows(x, center, w_matrix, kind, out, f):  # pragma: no cover
    """``out[:, i] = log pi_j + log N_j(x_i)`` (k, n) for every row."""
    n = x.shape[0]
    _ones(f)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        _features(x, start, stop, center, kind, f)
        _log_densities(f, stop - start, w_matrix, out[:, start:stop])


@_jit
def _flag_rows(lp, m, flags):  # pragma: no cover - compiled
    """``flags[:m]``: 0 for a row whose log-densities are all finite, NaN
    where a square overflowed (NaN or infinite log-densities), for the numpy
    kernel's guard to redo; returns how many were flagged. (Kernels called
    from another keep the loops over rows innermost and their arrays apart,
    so that LLVM vectorises them.)"""
    k = lp.shape[0]
    for i in range(m):
        flags[i] = lp[0, i]
    for j in range(1, k):
        for i in range(m):
            flags[i] += lp[j, i]
    bad = 0
    for i in range(m):
        flags[i] = _finite_part(flags[i])
        bad += flags[i] != flags[i]
    return bad


@_jit
def _argmax_step(lp, j, m, best, label, best_out, label_out):  # pragma: no cover
    """Fold component ``j`` into the running maxima ``best`` and their
    components ``label``, written to the ``_out`` buffers: never in place,
    where LLVM would make the update a masked store (see
    :func:`_maxima`)."""
    for i in range(m):
        v, b = lp[j, i], best[i]
        better = v > b
        best_out[i] = v if better else b
        label_out[i] = j if better else label[i]


@_jit
def _argmax(lp, m, scratch, out, spare):  # pragma: no cover - compiled
    """``out[:m] = lp[:, :m].argmax(axis=0)``: the first maximum, as argmax
    (a later component takes over only when strictly higher); -1 for a row
    with a log-density that is not finite (as :func:`_flag_rows` flags it),
    set only where a count says there is one; returns how many. ``scratch``:
    three rows of ``BLOCK``; ``spare``: ``BLOCK`` integers like ``out``'s, the
    labels' other buffer (neither used up to three components, which
    :func:`_argmax_few` takes in one pass).

    From four components, LLVM vectorises the steps into ``spare`` but not
    those back into ``out`` (nor, in :func:`_nearest`, the second buffers'
    steps back); a step and a copy back per component instead measured
    slower. With the masked stores of the in-place form gone, these steps
    took labels-only ``posterior_rows`` to 5.5-5.9 ms from 6.2 at 1e6 rows,
    k = 3, one thread (AMD EPYC, ad hoc, two runs), and ``lloyd_rows`` to
    7.5-7.8 from 7.7-10.2."""
    k = lp.shape[0]
    if k <= 3:
        return _argmax_few(lp, m, out)
    best, best2, total = scratch[0], scratch[1], scratch[2]
    for i in range(m):
        best[i] = lp[0, i]
        total[i] = lp[0, i]
        out[i] = 0
    for j in range(1, k):
        if j % 2:
            _argmax_step(lp, j, m, best, out, best2, spare)
        else:
            _argmax_step(lp, j, m, best2, spare, best, out)
        for i in range(m):
            total[i] += lp[j, i]
    if k % 2 == 0:
        for i in range(m):
            out[i] = spare[i]
    bad = 0
    for i in range(m):
        bad += not _finite(total[i])
    if bad:
        for i in range(m):
            if not _finite(total[i]):
                out[i] = -1
    return bad


@_jit
def _argmax_few(lp, m, out):  # pragma: no cover - compiled
    """:func:`_argmax` of up to three components in one pass: each row's
    label, and whether its log-densities are finite, from values held in
    registers, written once. Ad hoc, one thread, 1e6 rows (AMD EPYC,
    interleaved, labels-only ``posterior_rows``): k = 3 full 3.0 ms against
    5.2 with _argmax's steps, diag 2.6 against 4.6; k = 2 2.5 against 4.5.
    Components past the third are not read: _argmax sends only k <= 3."""
    k = lp.shape[0]
    bad = 0
    for i in range(m):
        best = total = lp[0, i]
        label = 0
        if k > 1:
            v = lp[1, i]
            total += v
            label = 1 if v > best else label
            best = v if v > best else best
        if k > 2:
            v = lp[2, i]
            total += v
            label = 2 if v > best else label
        finite = _finite(total)
        out[i] = label if finite else -1
        bad += not finite
    return bad


@_jit
def posterior_rows(  # pragma: no cover - compiled
    x, center, w_matrix, kind, resp, log_norm, labels, f, lp, scratch
):
    """Inference on every row of ``x``.

    ``log_norm`` (n,) gets ``log p(x)``; ``resp`` (n, k), unless empty, the
    responsibilities (then ``log_norm`` is computed anyway); ``labels`` (n,),
    unless empty, the most probable component (the first on ties, as
    argmax). With only labels asked, no ``exp`` is taken and ``log_norm`` is
    not written. Rows with a log-density that is not finite (squares that
    overflowed) get ``log_norm`` NaN and label -1, for the caller to redo;
    returns their count. ``scratch`` is (INFER_SCRATCH, BLOCK).
    """
    n = x.shape[0]
    want_resp, want_labels = resp.shape[0] > 0, labels.shape[0] > 0
    normalize = want_resp or not want_labels
    top, total, log_total, nan = scratch[0], scratch[1], scratch[2], scratch[3]
    spare = np.empty(BLOCK, dtype=labels.dtype)
    n_bad = 0
    _ones(f)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        m = stop - start
        _features(x, start, stop, center, kind, f)
        _log_densities(f, m, w_matrix, lp)
        bad = 0
        if want_labels:
            bad = _argmax(lp, m, scratch, labels[start:stop], spare)
        if normalize:
            bad = _flag_rows(lp, m, nan)
            _exponentiate(lp, m, top, total, log_total)
            for i in range(m):
                log_norm[start + i] = (_log_of(total[i]) + top[i]) + nan[i]
            if want_resp:
                for i in range(m):
                    total[i] = 1.0 / total[i]
                _store_scaled(lp, m, total, resp[start:stop])
        n_bad += bad
    return n_bad


@_jit
def _store_scaled(lp, m, scale, out):  # pragma: no cover - compiled
    """``out[:m] = (lp[:, :m] * scale[:m]).T``: responsibilities scaled as
    they are stored, not in a pass of their own."""
    k = lp.shape[0]
    for i in range(m):
        for j in range(k):
            out[i, j] = lp[j, i] * scale[i]


# -- the M-step and the next E-step's log-density weights, in one call --
#
# On small data an EM iteration is mostly the few dozen numpy and LAPACK
# calls of the M-step (`._em.params_from_stats`) and of preparing the next
# E-step (`._dense.DenseKernel.prepare`), each a microsecond or more of call
# overhead on matrices of a few entries: 1e4 rows of 2-D data, k = 3, full,
# ~50 us of the ~175 us an iteration took, where the E-step kernel took 89.
# These two kernels do the same arithmetic in one call each. They report
# instead of raising: anything but the common case (a covariance that is not
# positive definite, one collapsed, one too narrow for the feature-row form)
# returns a non-zero status, and the caller redoes the step on the numpy path,
# which handles it.

M_STEP_OK, M_STEP_ILL_DEFINED, M_STEP_COLLAPSED, M_STEP_LOCAL = 0, 1, 2, 3

# scikit-learn's guard against empty components, added to every N_k.
_TEN_EPS = 10.0 * np.finfo(np.float64).eps


@_jit_step
def _estimates(moments, centers, center, nk, means, centred):  # pragma: no cover
    """``nk`` (with scikit-learn's ``10 eps``), the means, and the means
    about ``center`` (what the log-density weights are expanded about);
    returns the total ``nk``."""
    k, d = means.shape
    total = 0.0
    for j in range(k):
        nk[j] = moments[j, 0] + _TEN_EPS
        total += nk[j]
        for a in range(d):
            means[j, a] = moments[j, 1 + a] / nk[j] + centers[j, a]
            centred[j, a] = means[j, a] - center[a]
    return total


@_jit_step
def _verdict(centred_j, spread, largest, scaled, checked, limit):  # pragma: no cover
    """One component's status: collapsed (its precision, scaled by the
    features' variances, beyond ``MAX_RELATIVE_PRECISION``; only where
    ``checked``), too narrow for the feature rows about the common centre
    (as :meth:`._dense.DenseKernel.prepare` judges it, against ``limit``),
    or fine."""
    if checked and scaled > MAX_RELATIVE_PRECISION:
        return M_STEP_COLLAPSED
    reach = spread
    for a in range(centred_j.shape[0]):
        reach += centred_j[a] * centred_j[a]
    return M_STEP_LOCAL if reach * largest > limit else M_STEP_OK


@_jit_step
def _inverse_cholesky(cov, u, low):  # pragma: no cover - compiled
    """``u = inv(L).T`` (upper) for ``cov = L L^T``, ``low`` (d, d) scratch;
    False where ``cov`` is not positive definite (or not finite)."""
    d = cov.shape[0]
    for i in range(d):
        for j in range(i + 1):
            s = cov[i, j]
            for c in range(j):
                s -= low[i, c] * low[j, c]
            if i == j:
                if not (s > 0.0 and s < np.inf):
                    return False
                low[i, i] = np.sqrt(s)
            else:
                low[i, j] = s / low[j, j]
    for j in range(d):
        u[j, j] = 1.0 / low[j, j]
        for i in range(j + 1, d):
            s = 0.0
            for c in range(j, i):
                s -= low[i, c] * u[j, c]
            u[j, i] = s / low[i, i]
        for i in range(j):
            u[j, i] = 0.0
    return True


@_jit_step
def _matrix_weights(u, centred_j, scale, w_row, precision):  # pragma: no cover
    """One component's log-density weights ``[constant, P mu, packed -P/2]``
    (the constant without its peak), from ``u`` with ``P = u u^T``; returns
    ``(log det u, sum of u^2, sum of u^2 weighted by scale)``."""
    d = u.shape[0]
    log_det = 0.0
    squares = scaled = 0.0
    for a in range(d):
        log_det += np.log(u[a, a])
        row = 0.0
        for c in range(a, d):
            row += u[a, c] * u[a, c]
        squares += row
        scaled += row * (scale[a] if scale.shape[0] else 1.0)
        for b in range(a, d):
            s = 0.0
            for c in range(b, d):
                s += u[a, c] * u[b, c]
            precision[a, b] = precision[b, a] = s
    constant = 0.0
    for a in range(d):
        s = 0.0
        for b in range(d):
            s += precision[a, b] * centred_j[b]
        w_row[1 + a] = s
        constant += s * centred_j[a]
    w_row[0] = -0.5 * constant
    col = 1 + d
    for a in range(d):
        w_row[col] = -0.5 * precision[a, a]
        col += 1
        for b in range(a + 1, d):
            w_row[col] = -precision[a, b]
            col += 1
    return log_det, squares, scaled


@_jit_step
def m_step_matrix(  # pragma: no cover - compiled
    moments,
    centers,
    center,
    reg,
    scale,
    spread,
    limit,
    shared,
    weights,
    means,
    covariances,
    cholesky,
    w_matrix,
    peaks,
):
    """The M-step of 'full' (``shared`` False; ``covariances`` and
    ``cholesky`` (k, d, d)) or 'tied' (True; (1, d, d)) from ``moments``
    (k, q) about ``centers`` (k, d), and the log-density weights
    ``w_matrix`` (k, q) about ``center`` with their ``peaks``; ``reg`` (d,)
    is added to every variance, ``scale`` (d,) (or empty) are the features'
    variances for the collapse test, ``limit`` the largest reach of a
    component on the feature rows. Returns an ``M_STEP_*`` status."""
    k, d = means.shape
    nk = np.empty(k)
    centred = np.empty((k, d))
    total = _estimates(moments, centers, center, nk, means, centred)
    low = np.zeros((d, d))
    precision = np.empty((d, d))
    if shared:
        cov = covariances[0]
        col = 1 + d
        for a in range(d):
            for b in range(a, d):
                s = t = 0.0
                for j in range(k):
                    s += moments[j, col]
                    ma, mb = moments[j, 1 + a] / nk[j], moments[j, 1 + b] / nk[j]
                    t += nk[j] * ma * mb
                cov[a, b] = (s - t) / total
                cov[b, a] = cov[a, b]
                col += 1
        for a in range(d):
            cov[a, a] += reg[a]
    else:
        for j in range(k):
            cov = covariances[j]
            col = 1 + d
            for a in range(d):
                ma = moments[j, 1 + a] / nk[j]
                for b in range(a, d):
                    mb = moments[j, 1 + b] / nk[j]
                    cov[a, b] = moments[j, col] / nk[j] - ma * mb
                    cov[b, a] = cov[a, b]
                    col += 1
                cov[a, a] += reg[a]
    for m in range(covariances.shape[0]):
        if not _inverse_cholesky(covariances[m], cholesky[m], low):
            return M_STEP_ILL_DEFINED
    status = M_STEP_OK
    log_norm = 0.5 * d * np.log(2.0 * np.pi)
    for j in range(k):
        weights[j] = nk[j] / total
        u = cholesky[0] if shared else cholesky[j]
        log_det, squares, scaled = _matrix_weights(
            u, centred[j], scale, w_matrix[j], precision
        )
        peaks[j] = np.log(weights[j]) + log_det - log_norm
        w_matrix[j, 0] += peaks[j]
        verdict = _verdict(
            centred[j], spread, squares, scaled, scale.shape[0] > 0, limit
        )
        if verdict == M_STEP_COLLAPSED:
            return verdict
        status = max(status, verdict)
    return status


@_jit_step
def m_step_vector(  # pragma: no cover - compiled
    moments,
    centers,
    center,
    reg,
    scale,
    spread,
    limit,
    spherical,
    weights,
    means,
    covariances,
    cholesky,
    w_matrix,
    peaks,
):
    """:func:`m_step_matrix` for 'diag' (``spherical`` False; covariances
    and their inverse square roots (k, d)) and 'spherical' (True; (k, 1),
    ``reg`` then holding the mean regularisation in every entry)."""
    k, d = means.shape
    nk = np.empty(k)
    centred = np.empty((k, d))
    total = _estimates(moments, centers, center, nk, means, centred)
    log_norm = 0.5 * d * np.log(2.0 * np.pi)
    status = M_STEP_OK
    largest_scale = 1.0
    if scale.shape[0]:
        largest_scale = scale.max()
    for j in range(k):
        if spherical:
            s = 0.0
            for a in range(d):
                ma = moments[j, 1 + a] / nk[j]
                s += ma * ma
            covariances[j, 0] = (moments[j, 1 + d] / nk[j] - s) / d + reg[0]
        else:
            for a in range(d):
                ma = moments[j, 1 + a] / nk[j]
                covariances[j, a] = moments[j, 1 + d + a] / nk[j] - ma * ma + reg[a]
        width = covariances.shape[1]
        log_det = largest = scaled = 0.0
        for a in range(width):
            c = covariances[j, a]
            if not (c > 0.0 and c < np.inf):
                return M_STEP_ILL_DEFINED
            u = 1.0 / np.sqrt(c)
            cholesky[j, a] = u
            log_det += np.log(u)
            p = u * u
            largest = max(largest, p)
            if scale.shape[0]:
                scaled = max(scaled, p * (largest_scale if spherical else scale[a]))
        if spherical:
            log_det *= d
        weights[j] = nk[j] / total
        peaks[j] = np.log(weights[j]) + log_det - log_norm
        constant = 0.0
        for a in range(d):
            p = cholesky[j, 0 if spherical else a] ** 2
            linear = p * centred[j, a]
            w_matrix[j, 1 + a] = linear
            constant += linear * centred[j, a]
            if not spherical:
                w_matrix[j, 1 + d + a] = -0.5 * p
        if spherical:
            w_matrix[j, 1 + d] = -0.5 * cholesky[j, 0] ** 2
        w_matrix[j, 0] = -0.5 * constant + peaks[j]
        verdict = _verdict(
            centred[j], spread, largest, scaled, scale.shape[0] > 0, limit
        )
        if verdict == M_STEP_COLLAPSED:
            return verdict
        status = max(status, verdict)
    return status


def _m_step_layout(kernel, reg_covar, k: int, d: int):
    """The compiled M-step ``kernel``'s function, the shape of its
    covariances and their factors ((k or 1, d, d) or (k, d or 1)), and the
    regularisation (d,) it takes."""
    name, variant = kernel
    reg = np.asarray(reg_covar, dtype=np.float64)
    if name == "m_step_matrix":
        function, shape = m_step_matrix, (1 if variant else k, d, d)
    else:
        function, shape = m_step_vector, (k, 1 if variant else d)
        if variant:
            reg = np.mean(reg)  # a per-feature regularisation acts through its mean
    return function, shape, np.full(d, reg) if reg.ndim == 0 else reg


def m_step(kernel, moments, centers, center, reg_covar, scale, spread, n_terms, limit):
    """Run the compiled M-step ``kernel`` (a covariance type's
    ``m_step_kernel``: :func:`m_step_matrix` or :func:`m_step_vector` and
    its variant flag) with buffers of the shapes it works in.

    Returns ``(status, weights, means, covariances, cholesky, w_matrix,
    peaks)``; ``covariances`` and ``cholesky`` in the kernel's shape
    ((k or 1, d, d) or (k, d or 1)), for the caller to reshape to the type's.
    """
    k, d = centers.shape
    function, shape, reg = _m_step_layout(kernel, reg_covar, k, d)
    weights, peaks = np.empty(k), np.empty(k)
    means = np.empty((k, d))
    covariances, cholesky = np.empty(shape), np.empty(shape)
    w_matrix = np.empty((k, n_terms))
    status = function(
        moments,
        np.ascontiguousarray(centers),
        center,
        reg,
        scale,
        spread,
        limit,
        kernel[1],
        weights,
        means,
        covariances,
        cholesky,
        w_matrix,
        peaks,
    )
    return status, weights, means, covariances, cholesky, w_matrix, peaks


# -- whole EM runs (see ._dense.DenseKernel.run) --

# How a run of em_rows ended, beside the M_STEP_* statuses of
# an M-step it could not take: converged, or a model whose log-density
# weights do not fit the rows' float32 arithmetic.
EM_CONVERGED, EM_NOT_SINGLE = -1, 4


@_jit
def _arithmetic_weights(w_matrix, out):  # pragma: no cover - compiled
    """``out[:] = w_matrix`` in ``out``'s dtype; False where a value is not
    finite there (a float32 overflow)."""
    for j in range(w_matrix.shape[0]):
        for c in range(w_matrix.shape[1]):
            out[j, c] = w_matrix[j, c]
            if not np.isfinite(out[j, c]):
                return False
    return True


def _m_step_of(moments, centers, center, reg, scale, spread, limit, variant,
               weights, means, covariances, cholesky, w_matrix, peaks):  # fmt: skip
    """:func:`m_step_matrix` for covariances (k or 1, d, d), else
    :func:`m_step_vector` (picked at typing: a function passed as an
    argument would keep its caller out of the disk cache)."""


@overload(_m_step_of)
def _m_step_by_rank(moments, centers, center, reg, scale, spread, limit,
                    variant, weights, means, covariances, cholesky, w_matrix,
                    peaks):  # fmt: skip
    kernel = m_step_matrix if covariances.ndim == 3 else m_step_vector

    def implementation(moments, centers, center, reg, scale, spread, limit,
                       variant, weights, means, covariances, cholesky,
                       w_matrix, peaks):  # fmt: skip
        return kernel(moments, centers, center, reg, scale, spread, limit,
                      variant, weights, means, covariances, cholesky,
                      w_matrix, peaks)  # fmt: skip

    return implementation


@_jit_exact
def _ratio_of(a, b):  # pragma: no cover - compiled
    """``a / b``, a true division (not by a reciprocal hoisted out of a
    loop)."""
    return a / b


@_jit
def em_rows(  # pragma: no cover - compiled
    x,
    by_column,
    w,
    chunk,
    center,
    center64,
    kind,
    f,
    lp,
    scratch,
    moments,
    reg,
    scale,
    spread,
    limit,
    variant,
    total_weight,
    tol,
    lower_bound,
    bounds,
    weights,
    means,
    covariances,
    cholesky,
    w_matrix,
    w_arith,
    peaks,
):
    """EM iterations from the model whose log-density weights are
    ``w_arith[0]``: the E-step of :func:`stats_rows` over chunks of ``chunk``
    rows (summed as :meth:`._data.TrainingData.stats` sums them; of ``x.T``
    with ``by_column``, see :func:`_features`) and the
    M-step of the covariances' shape (:func:`_m_step_of`), into the other
    half of the double buffers
    (leading axis 2: the model entering an iteration stays intact).

    Stops after ``bounds.shape[0]`` iterations, when the mean log-likelihood
    changes by less than ``tol``, or at an M-step that is not the common
    case. Returns ``(iterations, status, set, log_likelihood)``: ``status``
    ``M_STEP_OK`` (out of iterations), ``EM_CONVERGED``, or why the last
    iteration's M-step was not taken (its statistics are in ``moments``);
    ``set`` the half holding the last model taken; ``log_likelihood`` the
    last E-step's sum."""
    n = x.shape[1] if by_column else x.shape[0]
    k, d = moments.shape[0], center64.shape[0]
    centers = np.empty((k, d))
    for j in range(k):
        centers[j] = center64
    current = 0
    total = 0.0
    for it in range(bounds.shape[0]):
        moments[:] = 0.0
        total = 0.0
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            # As Python adds the chunks' sums (see the docstring).
            total = _sum_of(
                total,
                _stats_range(
                    x,
                    by_column,
                    start,
                    stop,
                    w,
                    center,
                    w_arith[current],
                    kind,
                    moments,
                    f,
                    lp,
                    scratch,
                ),
            )
        bound = _ratio_of(total, total_weight)
        bounds[it] = bound
        following = 1 - current
        status = _m_step_of(
            moments,
            centers,
            center64,
            reg,
            scale,
            spread,
            limit,
            variant,
            weights[following],
            means[following],
            covariances[following],
            cholesky[following],
            w_matrix[following],
            peaks[following],
        )
        if status != M_STEP_OK:
            return it + 1, status, current, total
        if not _arithmetic_weights(w_matrix[following], w_arith[following]):
            return it + 1, EM_NOT_SINGLE, current, total
        current = following
        if abs(bound - lower_bound) < tol:
            return it + 1, EM_CONVERGED, current, total
        lower_bound = bound
    return bounds.shape[0], M_STEP_OK, current, total


# The double buffers of em_rows, in the order it takes them.
EM_BUFFERS = (
    "bounds", "weights", "means", "covariances", "cholesky", "w_matrix", "w_arith",
    "peaks",
)  # fmt: skip


def em_buffers(kernel, reg_covar, k: int, d: int, q: int, max_iter: int, arithmetic):
    """The regularisation that :func:`em_rows` takes for the M-step
    ``kernel``, and its double buffers (leading axis 2), a dict of
    :data:`EM_BUFFERS`: ``covariances`` and ``cholesky`` in the kernel's
    shape, ``w_arith`` the log-density weights in ``arithmetic``, ``bounds``
    (max_iter,)."""
    _, shape, reg = _m_step_layout(kernel, reg_covar, k, d)
    buffers = {
        "bounds": np.empty(max_iter),
        "weights": np.empty((2, k)),
        "means": np.empty((2, k, d)),
        "covariances": np.empty((2, *shape)),
        "cholesky": np.empty((2, *shape)),
        "w_matrix": np.empty((2, k, q)),
        "w_arith": np.empty((2, k, q), dtype=arithmetic),
        "peaks": np.empty((2, k)),
    }
    return reg, buffers


# -- scikit-learn's k-means, for the default initialisation (see ._kmeans) --


@_jit
def _distances(x, start, stop, center, centres, y, dist):  # pragma: no cover
    """``y[:, :m]`` (d, m): rows ``start:stop`` of ``x`` about ``center``, a
    missing value (NaN) at the centre; ``dist[:, :m]`` (c, m): their squared
    distances to ``centres``."""
    m = stop - start
    d = x.shape[1]
    if d == 2:
        xf = x[start:stop].reshape(2 * m)
        _plane_features(xf, m, center[0], center[1], y[0], y[1], True)
    else:
        for a in range(d):
            c = center[a]
            for i in range(m):
                v = x[start + i, a]
                y[a, i] = v - c if v == v else 0.0
    for j in range(centres.shape[0]):
        for i in range(m):
            dist[j, i] = 0.0
        for a in range(d):
            c = centres[j, a]
            for i in range(m):
                t = y[a, i] - c
                dist[j, i] += t * t


@_jit
def _nearest_step(  # pragma: no cover - compiled
    dist, j, m, best, second, label, best_out, second_out, label_out
):
    """Fold row ``j`` of ``dist`` into :func:`_nearest`'s running values,
    written to the ``_out`` buffers, never in place (see
    :func:`_argmax_step`)."""
    for i in range(m):
        dj, b = dist[j, i], best[i]
        second_out[i] = min(second[i], max(dj, b))
        label_out[i] = j if dj < b else label[i]
        best_out[i] = min(dj, b)


@_jit
def _nearest(  # pragma: no cover - compiled
    dist, c, m, best, second, label, best2, second2, label2
):
    """Of the first ``c`` rows of ``dist`` (c, m), per column: the smallest
    ``best`` (inf if ``c`` is 0), the second smallest ``second``, and the row
    of the smallest ``label`` (the first of equals, as scikit-learn's
    argmin). The ``2`` buffers take every other step (never an update in
    place: see :func:`_argmax`). Separate arrays, not rows of one: LLVM
    vectorises the loop only where it can tell the stores apart (3.5 times
    faster)."""
    for i in range(m):
        best[i] = np.inf
        second[i] = np.inf
        label[i] = 0
    for j in range(c):
        if j % 2:
            _nearest_step(dist, j, m, best2, second2, label2, best, second, label)
        else:
            _nearest_step(dist, j, m, best, second, label, best2, second2, label2)
    if c % 2:
        for i in range(m):
            best[i] = best2[i]
            second[i] = second2[i]
            label[i] = label2[i]


@_jit
def lloyd_rows(  # pragma: no cover - compiled
    x, w, center, centres, labels, sums, weights, counts, tie, floor
):
    """One assignment step of Lloyd's algorithm over the rows of ``x``.

    Each row gets the label (int32, as scikit-learn's) of its nearest centre
    (the first of equals); its weight times ``y = x - center`` is added to
    ``sums`` (k, d), its weight to ``weights`` (k) and 1 to ``counts`` (k).
    Returns the rows whose label changed and the rows whose two nearest
    centres are within ``tie * (4 D + floor)`` of each other, ``D`` the
    nearest's squared distance: with ``floor`` from the caller, a bound on
    ``|y|^2 + |c|^2`` in scikit-learn's coordinates, the scale of the
    rounding of a distance it computes as ``|c|^2 - 2 y.c``."""
    n, d = x.shape
    k = centres.shape[0]
    weighted = w.shape[0] > 0
    y = np.empty((d, BLOCK))
    dist = np.empty((k, BLOCK))
    best, second = np.empty(BLOCK), np.empty(BLOCK)
    nearest = np.empty(BLOCK, dtype=np.int64)
    best2, second2 = np.empty(BLOCK), np.empty(BLOCK)
    nearest2 = np.empty(BLOCK, dtype=np.int64)
    changed = 0
    ambiguous = 0
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        m = stop - start
        _distances(x, start, stop, center, centres, y, dist)
        _nearest(dist, k, m, best, second, nearest, best2, second2, nearest2)
        for i in range(m):
            ambiguous += second[i] - best[i] <= tie * (4.0 * best[i] + floor)
        for i in range(m):
            changed += labels[start + i] != nearest[i]
            labels[start + i] = nearest[i]
        for j in range(k):
            count = 0
            total = 0.0
            for i in range(m):
                mine = nearest[i] == j
                count += mine
                total += (w[start + i] if weighted else 1.0) if mine else 0.0
            counts[j] += count
            weights[j] += total
            for a in range(d):
                part = 0.0
                for i in range(m):
                    weight = w[start + i] if weighted else 1.0
                    part += weight * y[a, i] if nearest[i] == j else 0.0
                sums[j, a] += part
    return changed, ambiguous


@_jit
def add_spread(x, w, center, out):  # pragma: no cover - compiled
    """Add each feature's sum (``out[0]``), sum of squares (``out[1]``)
    and weighted sum of squares (``out[2]``; ``w`` empty for unit weights)
    of ``y = x - center`` over the rows of ``x``, a missing value (NaN) at
    the centre."""
    n, d = x.shape
    weighted = w.shape[0] > 0
    for a in range(d):
        c = center[a]
        first = 0.0
        second = 0.0
        third = 0.0
        for i in range(n):
            v = x[i, a]
            t = v - c if v == v else 0.0
            first += t
            second += t * t
            third += (w[i] if weighted else 1.0) * t * t
        out[0, a] += first
        out[1, a] += second
        out[2, a] += third


@_jit
def seeding_potentials(
    x, w, center, chosen, candidates, potentials
):  # pragma: no cover
    """For each candidate centre ``t``, add ``sum_i w_i min(D_i, |y_i -
    candidates[t]|^2)`` to ``potentials[t]``, ``D_i`` the squared distance of
    row ``i`` to its nearest ``chosen`` centre (inf if none): k-means++'s
    potential were the candidate added."""
    n, d = x.shape
    c, t = chosen.shape[0], candidates.shape[0]
    weighted = w.shape[0] > 0
    both = np.vstack((chosen, candidates))
    # The buffers and block loop of lloyd_rows, written out again: made by a
    # shared helper and handed over as a tuple, they cost the Lloyd pass 8%
    # (4.15 -> 4.47 ms at 1e6 rows, measured three times each).
    y = np.empty((d, BLOCK))
    dist = np.empty((c + t, BLOCK))
    best, second = np.empty(BLOCK), np.empty(BLOCK)
    nearest = np.empty(BLOCK, dtype=np.int64)
    best2, second2 = np.empty(BLOCK), np.empty(BLOCK)
    nearest2 = np.empty(BLOCK, dtype=np.int64)
    for start in range(0, n, BLOCK):
        stop = min(start + BLOCK, n)
        m = stop - start
        _distances(x, start, stop, center, both, y, dist)
        _nearest(dist, c, m, best, second, nearest, best2, second2, nearest2)
        for j in range(t):
            part = 0.0
            for i in range(m):
                weight = w[start + i] if weighted else 1.0
                part += weight * min(best[i], dist[c + j, i])
            potentials[j] += part


@_jit_exact
def seeding_search(  # pragma: no cover - compiled
    x, w, center, chosen, targets, first, running, found, ids, gaps
):
    """``np.searchsorted(np.cumsum(w * D), targets)`` over rows fed chunk by
    chunk in order, ``D`` the squared distance of each row to its nearest
    ``chosen`` centre: k-means++'s draw of candidates. ``targets`` ascend;
    ``x`` holds rows ``first:first + len(x)``; ``running`` (1,) carries the sum
    and ``found`` (1,) the targets placed so far between chunks. ``gaps[t]``
    is the distance of ``targets[t]`` to the nearer end of its row's step of
    the cumulative sum: a target within rounding of an end could fall in
    the next row in another summation."""
    n, d = x.shape
    weighted = w.shape[0] > 0
    y = np.empty((d, BLOCK))
    dist = np.empty((chosen.shape[0], BLOCK))
    best, second = np.empty(BLOCK), np.empty(BLOCK)
    nearest = np.empty(BLOCK, dtype=np.int64)
    best2, second2 = np.empty(BLOCK), np.empty(BLOCK)
    nearest2 = np.empty(BLOCK, dtype=np.int64)
    total = running[0]
    t = found[0]
    for start in range(0, n, BLOCK):
        if t == targets.shape[0]:
            break
        stop = min(start + BLOCK, n)
        m = stop - start
        _distances(x, start, stop, center, chosen, y, dist)
        _nearest(
            dist, chosen.shape[0], m, best, second, nearest, best2, second2, nearest2
        )
        for i in range(m):
            before = total
            total += (w[start + i] if weighted else 1.0) * best[i]
            while t < targets.shape[0] and total >= targets[t]:
                ids[t] = first + start + i
                gaps[t] = min(total - targets[t], targets[t] - before)
                t += 1
    running[0] = total
    found[0] = t


@_jit_exact
def weighted_choice(w, total, u):  # pragma: no cover - compiled
    """``RandomState.choice(n, p=w / total)`` for its uniform draw ``u``,
    operation for operation (a cumulative sum of ``p``, divided by its last
    element, searched to the right) without ``p``; ``w`` empty for unit
    weights (``total`` is then n)."""
    weighted = w.shape[0] > 0
    n = w.shape[0] if weighted else int(total)
    unit = 1.0 / total
    last = 0.0
    for i in range(n):
        last += (w[i] / total) if weighted else unit
    running = 0.0
    for i in range(n):
        running += (w[i] / total) if weighted else unit
        if running / last > u:
            return i
    return n - 1
