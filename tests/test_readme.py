"""The README's code examples run as written and say what they claim.

Every ```python block is executed on its own, in a fresh namespace, with every
warning an error: a block that needs names from another block, or that warns
without saying so, fails. The only skip: a block showing an optional extra
that is not installed (OPTIONAL_EXTRAS), with that reason.
"""

import importlib.util
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FENCE = re.compile(r"^```(\S*)\n(.*?)^```", flags=re.DOTALL | re.MULTILINE)


def fenced_blocks():
    """(language, code) of every fenced block in the README, in order."""
    return FENCE.findall(README.read_text(encoding="utf-8"))


def block_id(index, code):
    """The block's first comment line as a slug, else its index."""
    first = code.lstrip().splitlines()[0] if code.strip() else ""
    if first.startswith("#"):
        slug = re.sub(r"[^a-z0-9]+", "-", first.lstrip("#").strip().lower())
        return slug.strip("-") or f"block-{index}"
    return f"block-{index}"


PYTHON_BLOCKS = [code for language, code in fenced_blocks() if language == "python"]
BLOCK_IDS = [block_id(i, code) for i, code in enumerate(PYTHON_BLOCKS)]


# Blocks that show an optional extra the test extra does not install (CI's
# minimum-versions run has only the test extra): skipped there, with this
# reason, and run wherever the extra is installed (the README's test command
# installs it).
OPTIONAL_EXTRAS = {"dask": "dask", "distributed": "dask"}


def dispatch_unavailable():
    """Why scikit-learn's array-API dispatch cannot be enabled here, or None
    (it needs SciPy >= 1.14, which CI's minimum-versions run does not have)."""
    import sklearn

    try:
        with sklearn.config_context(array_api_dispatch=True):
            return None
    except (ImportError, RuntimeError) as error:
        return str(error)


def run_block(code, name):
    """Execute one block as a script of its own; returns its namespace."""
    for module, extra in OPTIONAL_EXTRAS.items():
        uses = re.search(rf"^\s*(import|from) {module}\b", code, flags=re.MULTILINE)
        if uses and importlib.util.find_spec(module) is None:
            pytest.skip(f"this block needs the '{extra}' extra, not installed here")
    if "array_api_dispatch=True" in code and dispatch_unavailable():
        pytest.skip(
            "this block needs scikit-learn's array-API dispatch, unavailable "
            f"here: {dispatch_unavailable()}"
        )
    namespace = {"__name__": "__main__"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(compile(code, f"README.md[{name}]", "exec"), namespace)
    return namespace


# -- what the key blocks claim ------------------------------------------------


def check_quick_start(ns):
    X, gmm = ns["X"], ns["gmm"]
    assert ns["labels"].shape == (len(X),)
    assert ns["proba"].shape == (len(X), 3)
    assert_allclose(gmm.weights_, 1 / 3, atol=0.02)
    assert_allclose(gmm.score(X), -3.912, atol=1e-3)


def check_pipelines_and_model_selection(ns):
    assert len(ns["labels"]) == 1500
    assert ns["by_likelihood"].best_params_["n_components"] == 3
    assert ns["by_bic"].best_params_["n_components"] == 3


def check_sample_weights(ns):
    assert ns["w"].min() >= 1 and len(np.unique(ns["w"])) > 1
    assert_allclose(ns["scaled"].means_, ns["gmm"].means_, rtol=1e-12)
    assert_allclose(ns["scaled"].covariances_, ns["gmm"].covariances_, rtol=1e-12)


def check_missing_values(ns):
    X_missing, gmm = ns["X_missing"], ns["gmm"]
    missing = np.isnan(X_missing)
    assert X_missing.shape[1] == 2
    assert 0.08 < missing.mean() < 0.12  # about 10% of the values
    assert missing.all(axis=1).sum() > 0  # including rows with both missing
    assert hasattr(gmm, "means_") and np.isfinite(gmm.means_).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning from NaN rows
        assert gmm.predict([[np.nan, 4.0]]).shape == (1,)
        empty = [[np.nan, np.nan]]
        assert_allclose(gmm.predict_proba(empty)[0], gmm.weights_)
        assert gmm.predict(empty)[0] == np.argmax(gmm.weights_)
        # log of the weights' sum: 0 to rounding (exactly 0 on some CPUs,
        # one ulp of 1 on an AMD EPYC, where numpy's exp and log differ).
        assert abs(gmm.score_samples(empty)[0]) <= 4 * np.finfo(np.float64).eps


def check_online_fitting(ns):
    from sklearn_em import GaussianMixture

    X, gmm = ns["X"], ns["gmm"]
    assert len(ns["batches"]) == 6
    batch = GaussianMixture(3, random_state=0).fit(X)
    # The fit-then-partial_fit model is as good as the batch fit on all rows.
    assert abs(gmm.score(X) - batch.score(X)) < 0.01 * abs(batch.score(X))


def check_data_beyond_memory_dask(ns):
    import dask.array as da

    gmm, X = ns["gmm"], ns["X"]
    assert isinstance(X, da.Array) and isinstance(ns["labels"], da.Array)
    assert ns["labels"].chunks == (X.chunks[0],)
    assert_allclose(gmm.weights_, 1 / 3, atol=0.02)


def check_bayesian_mixture(ns):
    bgm = ns["bgm"]
    assert bgm.n_components == 10 and (bgm.weights_ > 0.05).sum() == 3


def check_model_selection(ns):
    ic, table = ns["ic"], ns["table"]
    assert (ic.n_components_, ic.covariance_type_) == (3, "full")
    assert table.shape == (6, 4) and table.values.min() == ic.criteria_["bic"].min()


def check_array_api(ns):
    assert type(ns["proba"]).__module__.startswith("array_api_strict")
    assert ns["proba"].shape == (3000, 3)
    assert ns["gmm"].means_.shape == (3, 2)


def check_conversions_and_persistence(ns):
    X, gmm = ns["X"], ns["gmm"]
    for other in (ns["theirs"], ns["back"], ns["loaded"]):
        assert_allclose(other.predict_proba(X), gmm.predict_proba(X), atol=1e-13)


CHECKS = {
    "quick-start": check_quick_start,
    "pipelines-and-model-selection": check_pipelines_and_model_selection,
    "sample-weights": check_sample_weights,
    "missing-values": check_missing_values,
    "online-fitting": check_online_fitting,
    "data-beyond-memory-dask": check_data_beyond_memory_dask,
    "bayesian-mixture": check_bayesian_mixture,
    "model-selection": check_model_selection,
    "conversions-and-persistence": check_conversions_and_persistence,
    "array-api-torch-cuda-or-cpu-cupy-array-api-strict": check_array_api,
}


@pytest.mark.parametrize(
    "index",
    range(len(PYTHON_BLOCKS)),
    ids=[f"{i}-{n}" for i, n in enumerate(BLOCK_IDS)],
)
def test_readme_python_block_runs_as_written(index):
    name = BLOCK_IDS[index]
    namespace = run_block(PYTHON_BLOCKS[index], name)
    check = CHECKS.get(name)
    if check is not None:
        check(namespace)


def test_readme_blocks_are_all_found_and_checked():
    """Every key example is present (by its first comment line), ids are
    unique, and no example hides under a language tag this test does not run."""
    assert len(set(BLOCK_IDS)) == len(BLOCK_IDS), BLOCK_IDS
    assert set(CHECKS) <= set(BLOCK_IDS), set(CHECKS) - set(BLOCK_IDS)
    languages = {language for language, _ in fenced_blocks()}
    assert languages <= {"python", "bash", "text"}, languages


def test_readme_states_the_expected_estimator_check_failures():
    checks = (ROOT / "tests" / "test_sklearn_checks.py").read_text(encoding="utf-8")
    table = checks.split("EXPECTED_FAILED_CHECKS", 1)[1].split("\n}\n", 1)[0]
    expected = re.findall(r'^\s+"(check_\w+)":', table, flags=re.MULTILINE)
    text = README.read_text(encoding="utf-8")
    for name in expected:
        assert f"`{name}`" in text, f"README does not mention {name}"


def test_readme_commands_match_ci():
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8")
    text = README.read_text(encoding="utf-8")
    assert 'pip install -e ".[test,dask,fast]" && python -m pytest' in text
    assert 'pip install -e ".[plot]" && python -m sklearn_em' in text
    assert "python -m pytest" in ci
