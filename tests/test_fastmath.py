"""The compiled kernels' fast-math contract, read from their source.

The numba kernels are compiled with LLVM fast-math flags chosen one by one
(``sklearn_em/_numba_kernels.py``): reassociation, so that sums over rows
vectorise, but never ``nnan`` or ``ninf``, because NaN and infinities carry
meaning there (rows with nothing, rows to flag, ``x != x`` tests). Under
reassociation LLVM may fold ``x - x`` to 0, as it folded ``(a + b) - (a +
b)``, so that a finiteness test written that way passes every NaN; such
tests go through ``_finite_part``, compiled without reassociation. A kernel
that breaks either rule gives the same results until a row that is not
finite comes along, so both rules are checked here, in the source, for every
kernel (this needs no numba).
"""

import ast
from pathlib import Path

import pytest

import sklearn_em

KERNELS = Path(sklearn_em.__file__).with_name("_numba_kernels.py")
# Flags that would change results on NaN or infinite values ('fast' is all).
FORBIDDEN = {"nnan", "ninf", "fast"}


def _fastmath_of(call: ast.Call) -> frozenset:
    """The fastmath flags of a ``numba.njit(...)`` call."""
    for keyword in call.keywords:
        if keyword.arg == "fastmath":
            value = ast.literal_eval(keyword.value)
            if value is True:
                return frozenset({"fast"})
            return frozenset(value or ())
    return frozenset()


def _is_jit(call: ast.AST) -> bool:
    return isinstance(call, ast.Call) and ast.unparse(call.func) in {
        "numba.njit",
        "numba.jit",
        "njit",
        "jit",
    }


def decorator_flags(tree: ast.Module) -> dict[str, frozenset]:
    """Each module-level decorator (``_jit = numba.njit(...)``, or an alias
    of one) and its fastmath flags."""
    flags: dict[str, frozenset] = {}
    for node in tree.body:
        if not (isinstance(node, ast.Assign) and len(node.targets) == 1):
            continue
        target, value = node.targets[0], node.value
        if not isinstance(target, ast.Name):
            continue
        if _is_jit(value):
            flags[target.id] = _fastmath_of(value)
        elif isinstance(value, ast.Name) and value.id in flags:
            flags[target.id] = flags[value.id]
    return flags


def compiled_functions(tree: ast.Module, flags: dict[str, frozenset]):
    """``(function, its fastmath flags)`` for every compiled function."""
    for node in ast.walk(tree):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Name) and decorator.id in flags:
                yield node, flags[decorator.id]
            elif _is_jit(decorator):
                yield node, _fastmath_of(decorator)


def self_subtractions(source: str) -> list[str]:
    """``name:line`` of every ``x - x`` (or ``x -= x``) in a function
    compiled with reassociation."""
    tree = ast.parse(source)
    found = []
    for function, fastmath in compiled_functions(tree, decorator_flags(tree)):
        if "reassoc" not in fastmath and "fast" not in fastmath:
            continue
        for node in ast.walk(function):
            if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
                left, right = node.left, node.right
            elif isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Sub):
                left, right = node.target, node.value
            else:
                continue
            if ast.unparse(left) == ast.unparse(right):
                found.append(f"{function.name}:{node.lineno}")
    return found


@pytest.fixture(scope="module")
def kernel_tree():
    return ast.parse(KERNELS.read_text())


def test_no_kernel_is_compiled_with_flags_that_drop_nan_or_infinity(kernel_tree):
    flags = decorator_flags(kernel_tree)
    functions = list(compiled_functions(kernel_tree, flags))
    # The source is read as the kernels are written: decorators found, and
    # most kernels reassociating (else the next test would check nothing).
    assert {"_jit", "_jit_inline", "_jit_exact"} <= set(flags)
    assert sum("reassoc" in f for _, f in functions) > 20
    bad = sorted(
        function.name for function, fastmath in functions if fastmath & FORBIDDEN
    )
    assert not bad, f"compiled with {FORBIDDEN & set().union(*flags.values())}: {bad}"


def test_finiteness_tests_are_compiled_without_reassociation(kernel_tree):
    flags = decorator_flags(kernel_tree)
    exact = {
        function.name
        for function, fastmath in compiled_functions(kernel_tree, flags)
        if "reassoc" not in fastmath
    }
    assert {"_finite_part", "_finite", "_exp", "_log", "_sum_of"} <= exact


def test_no_reassociating_kernel_subtracts_a_value_from_itself():
    found = self_subtractions(KERNELS.read_text())
    assert not found, (
        f"x - x in kernels compiled with reassociation (LLVM may fold it to 0; "
        f"use _finite_part): {found}"
    )


def test_the_self_subtraction_check_finds_what_it_looks_for():
    source = """
import numba
_jit = numba.njit(fastmath={"reassoc", "contract"})
_exact = numba.njit(fastmath={"contract"})
_alias = _jit

@_jit
def folded(a, b):
    return (a + b) - (a + b)

@_alias
def in_place(x):
    x -= x
    return x

@numba.njit(fastmath=True)
def direct(t):
    return t - t if t > 0 else t

@_exact
def allowed(x):
    return x - x

@_jit
def different(a, b):
    return (a + b) - (b + a)
"""
    assert self_subtractions(source) == ["folded:9", "in_place:13", "direct:18"]
