"""A fused E-step for few features on CUDA, in Triton: one read of ``X``.

The array-API engine's E-step (:mod:`._array_api`) forms feature rows and runs
two matrix products per chunk, which moves each row's ``q`` features through
device memory several times. For small ``d`` that traffic, and not arithmetic,
sets the time. This kernel reads each row once and keeps everything else in
registers:

* feature rows ``g = [1, y, y_a y_b]`` about the fixed centre, every column the
  product ``u_a u_b`` of two factors that are either a centred feature or 1
  (the pairs come from :func:`._array_api.second_order_plan`, so the
  covariance type is known only through the covariance module);
* log-densities ``g @ W'^T``, log-sum-exp, responsibilities;
* moments ``R^T g`` and the log-likelihood, summed per program in float64.

Each program walks a contiguous range of rows and writes one row of partial
sums; the host adds the programs' rows in a fixed order (a device sum of a
fixed shape), so a fit is reproducible on a given device. float64 data get
float64 arithmetic: results equal the matrix-product form's to rounding
(tested at 1e-12 under Triton's interpreter, and on a GPU where there is
one). float32 data get float32 arithmetic per row, as scikit-learn's float32
path, with sums over rows in float64 (tested at 1e-5).

Measured on an H200 (``benchmarks/bench_fused.py``, d=2, k=3, full), the
kernel alone: 1e8 float32 rows 0.373 ms, 1.8x the time of one read of ``X``
(0.60 ms before the per-row work below was cut from ~124 to ~71 SASS
instructions a row, loads went a step ahead and the launch settings were
tuned); 1e7 float64 rows 0.231 ms.

Only imported where Triton is installed; the engine falls back to the
matrix-product form everywhere else (see :func:`available`).
"""

from __future__ import annotations

import linecache

import numpy as np
import triton
import triton.language as tl

# Largest (components x feature columns) per row: the kernel is written out
# term by term, one float64 accumulator per product, all held in registers.
# ptxas for sm_90 (4 warps, 128 rows per step, weighted): d=2 full, k=3 (18
# products) ~120 registers, k=6 (36) ~220, k=8 (48) 252-255 without spills;
# 60 products spill.
MAX_PRODUCTS = 48

# Programs per multiprocessor: enough resident work to hide memory latency,
# few enough that the partial sums stay a negligible write.
PROGRAMS_PER_SM = 8

# Rows per step of a program: one per thread lane at 4 warps.
BLOCK = 128

LOG2E = 1.0 / np.log(2.0)

# Launch settings for kernels of at most TUNED_PRODUCTS products (d=2, k=3,
# full, the only shape swept), by arithmetic: a register cap per thread and
# programs per multiprocessor. Larger kernels keep the compiler's registers
# and PROGRAMS_PER_SM. From bench_fused's sweep on an H200 (1e8 float32 rows,
# kernel alone): a cap of 128 at 4 programs per SM 0.373 ms, at 8 0.385; 96 at
# 5 0.385; 80 at 12 0.397; 64 at 8 0.467; no cap at 3 0.422. float64 (1e7
# rows): no cap at 8 0.231 ms, a cap of 96 at 5 or 10 0.247-0.249.
TUNED_PRODUCTS = 18
TUNED = {
    True: {"maxnreg": 128, "programs_per_sm": 4},
    False: {"maxnreg": None, "programs_per_sm": 8},
}

# Load each step's rows a step ahead of their arithmetic. Measured on an
# H200 (d=2, k=3, full, 8 programs per multiprocessor): 1e8 float32 rows
# 0.513 -> 0.406 ms, 1e7 float64 rows 0.220 -> 0.199 ms; with the prefetch
# unmasked and the tuned settings (cap 96 at 5 per SM), 0.416 -> 0.385 ms.
PREFETCH = True


def default_group(n_products: int, float32_arithmetic: bool) -> int:
    """Rows each thread loads ahead of its arithmetic, as many as pay and fit
    in its registers next to ``n_products`` (components x feature columns)
    sums.

    Measured on an H200 (``benchmarks/bench_fused.py``, d=2, k=3, full): 1e8
    float32 rows, float32 arithmetic, kernel 0.46 / 0.41 ms with 2 / 4 rows
    (an earlier version: 1.06 / 0.60 / 0.75 ms with 1 / 4 / 8; bandwidth
    floor 0.20 ms); 1e7 float64 rows, float64 arithmetic, 0.199 / 0.200 ms
    with 1 / 2 (compute-bound: no gain). With the unmasked prefetch: float32
    4 rows 0.373 ms (cap 128) against 2 rows 0.435-0.451 ms (caps 80, 64);
    float64 0.231 / 0.232 ms with 1 / 2. ptxas for sm_90, 4 warps, rows
    loaded a step ahead: float32 k=3 (18 products) with 4 rows 163
    registers, k=8 (48) with 2 rows 235; float64 k=8 255, with 3 values
    reloaded from local memory per row.
    """
    if float32_arithmetic:
        return 4 if n_products <= 30 else 2
    return 1


# Rows per thread summed in float32 before a float64 sum: at most this many
# (float32 sums of 32 terms keep ~2e-6 of their own size), fewer where the
# product of that many normalisers (each <= k) could overflow float32.
# Measured on an H200 (1e8 float32 rows, d=2, k=3, 4 rows a step): kernel
# 0.55 ms flushing every step (4 rows), 0.41 ms every 8 steps (32 rows).
MAX_FLUSH_ROWS = 32


def flush_rows(n_components: int) -> int:
    """Rows per thread whose float32 sums (and product of normalisers, each
    at most ``n_components``: below 2**120) may run before a float64 sum."""
    return min(MAX_FLUSH_ROWS, int(120 / np.log2(max(n_components, 2))))


def default_flush(n_components: int, group: int) -> int:
    """Steps of ``group`` rows per thread summed in float32 at a time."""
    return max(1, flush_rows(n_components) // group)


def _kernel_source(
    name: str,
    d: int,
    k: int,
    a,
    b,
    weighted: bool,
    f32: bool,
    group: int,
    flush: int,
    prefetch: bool,
):
    """Source of a kernel for one shape: straight-line code over 1-D row
    vectors, so that every value of a row stays in one thread's registers and
    nothing crosses threads until the programs' final sums.

    Column ``c`` of the feature rows is ``u_a * u_b`` with ``u_i = x_i - c_i``
    and ``u_d = 1``. A step loads ``group`` rows per thread before it works on
    any of them: with one row in flight per thread, memory latency and not
    arithmetic set the time (0.94 ms for 1e8 float32 rows on an H200, whose
    bandwidth floor is 0.2 ms). Whole steps run unmasked; one masked step ends
    each program's range.

    With ``f32`` (float32 data) the per-row arithmetic is float32 in base-2
    units (the weights come scaled by ``log2(e)``, so each density is one
    ``exp2``), and the products of ``flush`` steps are summed in float32
    before they join each thread's float64 sums: a conversion and a float64
    addition per product and row cost more than the float32 row itself.
    Unweighted, the log-likelihood takes one ``log2`` per ``flush`` steps, of
    the product of the rows' normalisers (each in ``[1, k]``). Sums over more
    rows are float64 either way, and float64 data keep float64 arithmetic.
    """
    q = len(a)
    ty = "tl.float32" if f32 else "tl.float64"
    partial = f32
    product = f32 and not weighted
    lines = [
        f"def {name}(x_ptr, w_ptr, center_ptr, weights_ptr, out_ptr, n, "
        "stride_row, stride_col, rows_per_program, BLOCK: tl.constexpr):",
        "    pid = tl.program_id(0)",
        "    start = pid.to(tl.int64) * rows_per_program",
        # 64-bit offsets once per program; 32-bit ones within it (the caller
        # keeps a program's elements below 2**31).
        "    x_base = x_ptr + start * stride_row",
        "    w_base = weights_ptr + start",
        "    count = tl.minimum(n - start, rows_per_program).to(tl.int32)",
        "    lanes = tl.arange(0, BLOCK)",
    ]
    add = lines.append
    for i in range(d):
        add(f"    c{i} = tl.load(center_ptr + {i}).to({ty})")
    for j in range(k):
        for c in range(q):
            add(f"    w{j}_{c} = tl.load(w_ptr + {j * q + c}).to({ty})")
            add(f"    m{j}_{c} = tl.zeros((BLOCK,), dtype=tl.float64)")
    add("    ll = tl.zeros((BLOCK,), dtype=tl.float64)")

    def zero_partials(indent):
        if not partial:
            return
        for j in range(k):
            for c in range(q):
                add(f"{indent}p{j}_{c} = tl.zeros((BLOCK,), dtype=tl.float32)")
        add(f"{indent}pl = tl.zeros((BLOCK,), dtype=tl.float32)")
        if product:
            add(f"{indent}prod = tl.full((BLOCK,), 1.0, dtype=tl.float32)")

    def flush_partials(indent):
        if not partial:
            return
        for j in range(k):
            for c in range(q):
                add(f"{indent}m{j}_{c} += p{j}_{c}.to(tl.float64)")
        if product:
            add(f"{indent}pl += tl.log2(prod)")
        add(f"{indent}ll += pl.to(tl.float64)")

    def load(indent, first, masked, prefix=""):
        """Load ``group`` rows per thread from row ``first``."""
        for t in range(group):
            add(f"{indent}offs_{t} = {first} + {t} * BLOCK + lanes")
            mask = ""
            if masked:
                add(f"{indent}live_{t} = offs_{t} < count")
                mask = f", mask=live_{t}, other=0.0"
            for i in range(d):
                add(
                    f"{indent}{prefix}x{i}_{t} = tl.load(x_base + offs_{t} * "
                    f"stride_row + {i} * stride_col{mask})"
                )
            if weighted:
                add(f"{indent}{prefix}weight_{t} = tl.load(w_base + offs_{t}{mask})")

    def take_prefetched(indent):
        for t in range(group):
            for i in range(d):
                add(f"{indent}x{i}_{t} = nx{i}_{t}")
            if weighted:
                add(f"{indent}weight_{t} = nweight_{t}")

    def weigh(indent, name, t, masked):
        """``name`` times row ``t``'s weight, and 0 on rows past the end."""
        if weighted:
            add(f"{indent}{name} = {name} * weight_{t}.to({ty})")
        if masked:
            add(f"{indent}{name} = tl.where(live_{t}, {name}, 0.0)")

    def step(indent, index, masked):
        """Step ``index``: ``group`` rows per thread. With ``prefetch`` a
        whole step's rows were loaded a step earlier, and it loads the next
        whole step's now (unmasked: past the last one, that one again)."""
        first = f"({index}) * (BLOCK * {group})"
        if prefetch and not masked:
            take_prefetched(indent)
            following = f"tl.minimum({index} + 1, full - 1) * (BLOCK * {group})"
            load(indent, following, False, "n")
        else:
            load(indent, first, masked)
        sums = "p" if partial else "m"
        ll = "pl" if partial else "ll"
        for t in range(group):
            for i in range(d):
                add(f"{indent}y{i} = x{i}_{t}.to({ty}) - c{i}")
            terms = []
            for c in range(q):
                factors = [f"y{i}" for i in (a[c], b[c]) if i < d]
                if not factors:
                    terms.append(None)  # the constant column
                elif len(factors) == 1:
                    terms.append(factors[0])
                else:
                    add(f"{indent}g{c} = {factors[0]} * {factors[1]}")
                    terms.append(f"g{c}")
            for j in range(k):
                expr = " + ".join(
                    f"w{j}_{c}" if v is None else f"w{j}_{c} * {v}"
                    for c, v in enumerate(terms)
                )
                add(f"{indent}lp{j} = {expr}")
            top = "lp0"
            for j in range(1, k):
                top = f"tl.maximum({top}, lp{j})"
            add(f"{indent}top = {top}")
            exp = "tl.exp2" if f32 else "tl.exp"
            for j in range(k):
                add(f"{indent}e{j} = {exp}(lp{j} - top)")
            add(f"{indent}total = " + " + ".join(f"e{j}" for j in range(k)))
            add(f"{indent}scale = 1.0 / total")
            if product:
                if masked:
                    add(f"{indent}total = tl.where(live_{t}, total, 1.0)")
                    add(f"{indent}top = tl.where(live_{t}, top, 0.0)")
                add(f"{indent}prod = prod * total")
                add(f"{indent}pl += top")
            else:
                log = "tl.log2" if f32 else "tl.log"
                add(f"{indent}log_norm = {log}(total) + top")
                weigh(indent, "log_norm", t, masked)
                value = "log_norm" if partial else "log_norm.to(tl.float64)"
                add(f"{indent}{ll} += {value}")
            weigh(indent, "scale", t, masked)
            for j in range(k):
                add(f"{indent}r{j} = e{j} * scale")
                for c, v in enumerate(terms):
                    term = f"r{j}" if v is None else f"r{j} * {v}"
                    if not partial:
                        term = f"({term}).to(tl.float64)"
                    add(f"{indent}{sums}{j}_{c} += {term}")

    add(f"    full = count // (BLOCK * {group})")
    if prefetch:
        load("    ", "0", True, "n")
    if partial:
        # float32 partial sums over at most `flush` steps at a time.
        add(f"    for outer in range(0, full // {flush}):")
        zero_partials("        ")
        add(f"        for inner in range(0, {flush}):")
        step("            ", f"outer * {flush} + inner", False)
        flush_partials("        ")
        zero_partials("    ")
        add(f"    for s in range(full // {flush} * {flush}, full):")
        step("        ", "s", False)
    else:
        add("    for s in range(0, full):")
        step("        ", "s", False)
    step("    ", "full", True)
    flush_partials("    ")
    add(f"    out = out_ptr + pid * {k * q + 1}")
    for j in range(k):
        for c in range(q):
            add(f"    tl.store(out + {j * q + c}, tl.sum(m{j}_{c}, axis=0))")
    add(f"    tl.store(out + {k * q}, tl.sum(ll, axis=0))")
    return "\n".join(lines) + "\n"


_KERNELS: dict = {}


def kernel_for(
    d: int,
    k: int,
    a,
    b,
    weighted: bool,
    f32: bool,
    group: int = 1,
    flush: int = 1,
    prefetch: bool = False,
):
    """The jitted kernel of one shape, written and decorated once per process.

    Triton reads a kernel's source with :func:`inspect.getsource`; the
    generated source is registered with :mod:`linecache` under a name of its
    own, as for any code without a file.
    """
    key = (
        d, k, tuple(int(i) for i in a), tuple(int(i) for i in b), weighted, f32,
        group, flush, prefetch,
    )  # fmt: skip
    kernel = _KERNELS.get(key)
    if kernel is None:
        name = f"_estep_{len(_KERNELS)}"
        source = _kernel_source(name, d, k, a, b, weighted, f32, group, flush, prefetch)
        filename = f"<sklearn_em fused E-step {name} {key}>"
        linecache.cache[filename] = (
            len(source),
            None,
            source.splitlines(True),
            filename,
        )
        namespace = {"tl": tl, "triton": triton}
        exec(compile(source, filename, "exec"), namespace)
        kernel = _KERNELS[key] = triton.jit(namespace[name])
    return kernel


def eligible(n_components: int, n_pairs: int, n_features: int) -> bool:
    """Whether the kernel of this shape stays within its register budget."""
    return n_components * (1 + n_features + n_pairs) <= MAX_PRODUCTS


_MAX_OFFSET = 2**31 - 1


def _row_span(X) -> int:
    """Elements from a row's first feature to its last, plus a row's step."""
    n_features = X.shape[1]
    return max(1, abs(X.stride(0))) + (n_features - 1) * abs(X.stride(1))


def _steps_within_offsets(X, step: int) -> int:
    """Steps of ``step`` rows a program may take so that its 32-bit offsets
    (with a step to spare) fit."""
    return _MAX_OFFSET // (_row_span(X) * step) - 1


def offsets_fit(X, step: int = BLOCK * 4) -> bool:
    """Whether steps of ``step`` rows of ``X`` (the default launch's) fit the
    kernel's 32-bit offsets: any ``X`` but a view of rows millions of elements
    apart."""
    return _steps_within_offsets(X, step) >= 1


class FusedEStep:
    """The fused kernel for one data set's shape, launched once per E-step.

    Parameters
    ----------
    X : torch.Tensor of shape (n_samples, n_features)
        float32 or float64 rows on a CUDA device (or on the CPU under Triton's
        interpreter, ``TRITON_INTERPRET=1``, for tests).
    sample_weight : torch.Tensor of shape (n_samples,) or None
        float64 weights on ``X``'s device.
    rows, cols : ndarray of int
        The pairs whose products are the second-order columns (see
        :func:`._array_api.second_order_plan`).
    mixing : ndarray of shape (n_second, n_pairs) or None
        Maps pair products to the covariance type's second-order features
        (``None``: the identity).
    n_components : int
    center : ndarray of shape (n_features,)
    programs : int or None
        Programs in the launch; by default a fixed number per multiprocessor
        (:data:`TUNED` for the smallest kernels, else
        :data:`PROGRAMS_PER_SM`), so results repeat on a device.
    block : int
        Rows per step of a program (a power of 2).
    num_warps : int
        Warps per program.
    float32_arithmetic : bool or None
        Per-row arithmetic in float32 (sums over rows stay float64). By
        default for float32 data only.
    group : int or None
        Rows each thread loads at once (by default :func:`default_group`).
    flush : int or None
        With float32 arithmetic, steps summed in float32 before they join the
        float64 sums (by default :func:`default_flush`).
    prefetch : bool
        Load each step's rows one step ahead of their arithmetic.
    maxnreg : int or None
        Registers per thread the compiler may use on a GPU (None: the
        :data:`TUNED` cap for the smallest kernels, else the compiler's
        choice; 0: the compiler's choice).
    """

    def __init__(
        self,
        X,
        sample_weight,
        rows: np.ndarray,
        cols: np.ndarray,
        mixing: np.ndarray | None,
        n_components: int,
        center: np.ndarray,
        *,
        programs: int | None = None,
        block: int = BLOCK,
        num_warps: int = 4,
        float32_arithmetic: bool | None = None,
        group: int | None = None,
        flush: int | None = None,
        prefetch: bool = PREFETCH,
        maxnreg: int | None = None,
    ):
        import torch

        self.torch = torch
        self.X = X
        self.sample_weight = sample_weight
        n, d = (int(s) for s in X.shape)
        if n < 1:
            raise ValueError("the fused E-step needs at least one row")
        self.n, self.d, self.k = n, d, n_components
        self.mixing = mixing
        self.q_raw = 1 + d + len(rows)
        # Factor indices of each feature column; d stands for the constant 1.
        a = np.full(self.q_raw, d, dtype=np.int64)
        b = np.full(self.q_raw, d, dtype=np.int64)
        a[1 : d + 1] = np.arange(d)
        a[d + 1 :] = rows
        b[d + 1 :] = cols
        if float32_arithmetic is None:
            float32_arithmetic = X.dtype == torch.float32
        self.float32_arithmetic = bool(float32_arithmetic)
        if group is None:
            group = default_group(n_components * self.q_raw, self.float32_arithmetic)
        self.group = int(group)
        if flush is None:
            flush = default_flush(n_components, self.group)
        self.flush = int(flush) if self.float32_arithmetic else 1
        if self.float32_arithmetic and self.group * self.flush > flush_rows(
            n_components
        ):
            raise ValueError(
                f"group * flush = {self.group * self.flush} rows per float32 sum; "
                f"at most {flush_rows(n_components)} with {n_components} components"
            )
        self.kernel = kernel_for(
            d,
            n_components,
            a,
            b,
            sample_weight is not None,
            self.float32_arithmetic,
            self.group,
            self.flush,
            bool(prefetch),
        )
        self.prefetch = bool(prefetch)
        tuned = {"maxnreg": None, "programs_per_sm": PROGRAMS_PER_SM}
        if n_components * self.q_raw <= TUNED_PRODUCTS:
            tuned = TUNED[self.float32_arithmetic]
        if maxnreg is None:
            maxnreg = tuned["maxnreg"]
        # A register cap is a compiler option for the GPU (the interpreter
        # has no registers).
        self.maxnreg = (maxnreg or None) if X.device.type == "cuda" else None
        self._options = {} if self.maxnreg is None else {"maxnreg": self.maxnreg}
        device = X.device
        self._center = torch.as_tensor(
            np.asarray(center, dtype=np.float64), device=device
        )
        self.block = int(block)
        self.num_warps = int(num_warps)
        self.calls = 0
        if programs is None:
            if device.type == "cuda":
                sms = torch.cuda.get_device_properties(device).multi_processor_count
                programs = tuned["programs_per_sm"] * sms
            else:
                programs = 4
        step = self.block * self.group
        steps = triton.cdiv(n, step)
        self.programs = max(1, min(int(programs), steps))
        # Whole steps per program, so no program's range splits a step, and
        # offsets within a program's range (with a step to spare) that fit in
        # 32 bits.
        steps_per_program = triton.cdiv(steps, self.programs)
        limit = _steps_within_offsets(X, step)
        if limit < 1:
            raise ValueError(
                "rows lie too far apart in memory for the fused kernel's 32-bit "
                f"offsets (strides {X.stride(0)}, {X.stride(1)})"
            )
        steps_per_program = min(steps_per_program, limit)
        self.rows_per_program = step * steps_per_program
        self.programs = triton.cdiv(n, self.rows_per_program)
        # float32 arithmetic works in base 2: weights times log2(e), and the
        # log-likelihood comes back times log2(e).
        self._w_scale = LOG2E if self.float32_arithmetic else 1.0
        # Page-locked host buffers: the weights go out and the sums come back
        # without a staging copy; an event says when the weights have left.
        on_cuda = device.type == "cuda"
        shape = (n_components, self.q_raw)
        self._w = torch.zeros(shape, dtype=torch.float64, device=device)
        self._w_host = torch.zeros(shape, dtype=torch.float64, pin_memory=on_cuda)
        self._sent = torch.cuda.Event() if on_cuda else None
        width = n_components * self.q_raw + 1
        self._out = torch.empty(
            (self.programs, width), dtype=torch.float64, device=device
        )
        self._sums = torch.empty(width, dtype=torch.float64, device=device)
        self._sums_host = torch.empty(width, dtype=torch.float64, pin_memory=on_cuda)

    def weights_of(self, w_matrix: np.ndarray) -> np.ndarray:
        """The kernel's ``(k, q_raw)`` log-density weights: the second-order
        block acts on pair products through ``mixing``."""
        d = self.d
        if self.mixing is None:
            return w_matrix
        return np.hstack([w_matrix[:, : d + 1], w_matrix[:, d + 1 :] @ self.mixing])

    def moments_of(self, raw: np.ndarray) -> np.ndarray:
        """``(k, q)`` moments in the covariance type's features from the
        kernel's moments over pair products."""
        d = self.d
        if self.mixing is None:
            return raw
        return np.hstack([raw[:, : d + 1], raw[:, d + 1 :] @ self.mixing.T])

    def __call__(self, w_matrix: np.ndarray) -> tuple[np.ndarray, float]:
        """Moments ``(k, q)`` and the (weighted) log-likelihood of one E-step."""
        self.launch(w_matrix)
        self.torch.sum(self._out, dim=0, out=self._sums)
        self._sums_host.copy_(self._sums)  # waits for the kernel
        sums = self._sums_host.numpy().copy()
        self.calls += 1
        raw = sums[:-1].reshape(self.k, self.q_raw)
        return self.moments_of(raw), float(sums[-1]) / self._w_scale

    def launch(self, w_matrix: np.ndarray) -> None:
        """Send the weights and launch the kernel: each program's partial
        sums land in a row of ``self._out`` (asynchronously on a GPU)."""
        if self._sent is not None:
            self._sent.synchronize()  # the last weights have left the buffer
        np.multiply(self.weights_of(w_matrix), self._w_scale, out=self._w_host.numpy())
        self._w.copy_(self._w_host, non_blocking=True)
        if self._sent is not None:
            # On X's device: the copy runs on its stream.
            self._sent.record(self.torch.cuda.current_stream(self.X.device))
        weights = self.sample_weight
        self.kernel[(self.programs,)](
            self.X,
            self._w,
            self._center,
            self.X if weights is None else weights,
            self._out,
            self.n,
            self.X.stride(0),
            self.X.stride(1),
            self.rows_per_program,
            BLOCK=self.block,
            num_warps=self.num_warps,
            **self._options,
        )
