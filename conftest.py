"""Test-session set-up."""

import os

# scikit-learn's array-API estimator check (numpy inputs with array_api_dispatch
# enabled) runs only when scipy was imported with this flag; set it before any
# test module imports scipy so that check runs instead of being skipped.
os.environ.setdefault("SCIPY_ARRAY_API", "1")
