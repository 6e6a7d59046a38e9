"""Test-session set-up."""

import importlib.util
import os

# scikit-learn's array-API estimator check (numpy inputs with array_api_dispatch
# enabled) runs only when scipy was imported with this flag; set it before any
# test module imports scipy so that check runs instead of being skipped.
os.environ.setdefault("SCIPY_ARRAY_API", "1")

# In CI, property tests replay the same examples every run: a new
# counterexample found by chance must not decide whether a submission lands
# (run locally without CI set, they explore afresh each time).
if os.environ.get("CI"):
    from hypothesis import settings

    settings.register_profile("ci", derandomize=True)
    settings.load_profile("ci")

# The Dask engine's module imports Dask at the top; without the 'dask' extra
# (as in CI's minimum-versions run) its doctests cannot be collected, and the
# Dask tests skip themselves with that reason.
collect_ignore = []
if importlib.util.find_spec("dask") is None:
    collect_ignore.append("sklearn_em/_dask.py")
# Likewise the compiled kernels without the 'fast' extra (numba); their tests
# skip themselves with that reason.
if importlib.util.find_spec("numba") is None:
    collect_ignore.append("sklearn_em/_numba_kernels.py")
# The Triton kernels have no doctests, and importing Triton here would fix its
# mode before tests/test_triton.py can choose the interpreter (no GPU).
collect_ignore.append("sklearn_em/_triton_kernels.py")
