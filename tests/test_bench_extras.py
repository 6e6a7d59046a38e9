"""Smoke tests for ``benchmarks/bench_missing.py`` and ``benchmarks/bench_online.py``.

Both scripts run in ``--quick`` mode at tiny sizes; the tests check the
JSON they write and the claims the benchmarks exist to show: exact EM on the
NaN data is closer to the complete-data fit than mean imputation, and
streaming with ``partial_fit`` needs memory of the order of one batch.
"""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
MISSING_SIZES = (500,)
FRACTIONS = (0.1, 0.3)
ONLINE = {"n_rows": 100_000, "batch_size": 2_000, "holdout": 2_000, "batch_fit": 10_000}


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"_bench_{name}", BENCH_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_missing():
    return _load("bench_missing")


@pytest.fixture(scope="module")
def bench_online():
    return _load("bench_online")


@pytest.fixture(scope="module")
def missing_results(bench_missing, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "missing.json"
    argv = ["--quick", "--sizes", *map(str, MISSING_SIZES), "--repeats", "1"]
    argv += ["--n-iter", "3", "--output", str(out)]
    status = bench_missing.main(argv)
    return status, json.loads(out.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def online_results(bench_online, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "online.json"
    argv = [
        "--quick",
        "--n-rows", str(ONLINE["n_rows"]),
        "--batch-size", str(ONLINE["batch_size"]),
        "--holdout-size", str(ONLINE["holdout"]),
        "--batch-fit-size", str(ONLINE["batch_fit"]),
        "--output", str(out),
    ]  # fmt: skip
    status = bench_online.main(argv)
    return status, json.loads(out.read_text(encoding="utf-8"))


# --------------------------------------------------------------------------
# bench_missing
# --------------------------------------------------------------------------


def test_missing_mask_exact_count_and_no_empty_row(bench_missing):
    for fraction in (0.1, 0.3, 0.5):
        mask = bench_missing.missing_mask((1000, 2), fraction, random_state=1)
        assert mask.sum() == round(fraction * 2000)
        assert not mask.all(axis=1).any()
    mask3 = bench_missing.missing_mask((200, 3), 0.6, random_state=0)
    assert mask3.sum() == 360
    assert not mask3.all(axis=1).any()
    with pytest.raises(ValueError, match="without emptying a row"):
        bench_missing.missing_mask((10, 2), 0.6)
    np.testing.assert_array_equal(
        bench_missing.missing_mask((50, 2), 0.3, random_state=[0, 3]),
        bench_missing.missing_mask((50, 2), 0.3, random_state=[0, 3]),
    )


def test_match_components_undoes_a_permutation(bench_missing):
    ref = np.array([[0.0, 0.0], [5.0, 5.0], [0.0, 9.0]])
    order = bench_missing.match_components(ref[[2, 0, 1]] + 0.01, ref)
    np.testing.assert_array_equal(order, [1, 2, 0])


def test_bench_missing_quick_json(missing_results):
    status, results = missing_results
    assert status == 0, results["failures"]
    assert results["ok"] is True
    assert results["benchmark"] == "bench_missing"
    assert {"environment", "settings", "cases", "failures", "elapsed_s"} <= set(results)
    settings = results["settings"]
    assert settings["quick"] is True
    assert settings["repeats"] == 1
    assert settings["n_iter"] == 3
    assert settings["fractions"] == list(FRACTIONS)

    cases = results["cases"]
    got = {(c["n"], c["covariance_type"], c["missing_fraction"]) for c in cases}
    assert got == {
        (n, cov, f)
        for n in MISSING_SIZES
        for cov in COVARIANCE_TYPES
        for f in FRACTIONS
    }
    for c in cases:
        assert c["errors"] == []
        assert c["n_missing_values"] == round(c["missing_fraction"] * c["n"] * 2)
        assert 0 < c["n_rows_with_missing"] <= c["n"]
        for variant in ("complete", "nan"):
            timing = c[variant]
            assert timing["fixed_n_iter"] == 3
            assert len(timing["fixed_times_s"]) == 1
            assert len(timing["fit_times_s"]) == 1
            assert timing["median_s_per_iter"] > 0
            assert timing["median_fit_s"] > 0
            assert timing["n_iter"] >= 1
        assert c["s_per_iter_ratio"] > 0
        assert c["fit_ratio"] > 0
        acc = c["accuracy"]
        assert acc["reference"]["converged"] is True
        for name in (
            "ours_nan",
            "impute_sklearn",
            "ours_nan_default",
            "impute_sklearn_default",
        ):
            for key in (
                "max_abs_err_weights",
                "max_abs_err_means",
                "max_abs_err_covariances",
            ):
                assert np.isfinite(acc[name][key])
                assert acc[name][key] >= 0


def test_bench_missing_ours_beats_mean_imputation(missing_results):
    _, results = missing_results
    for c in results["cases"]:
        ours, imputed = c["accuracy"]["ours_nan"], c["accuracy"]["impute_sklearn"]
        assert ours["max_abs_err_means"] < imputed["max_abs_err_means"], c
        assert ours["max_abs_err_covariances"] < imputed["max_abs_err_covariances"], c
        assert c["ours_more_accurate"] is True


def test_bench_missing_tables(bench_missing, missing_results):
    _, results = missing_results
    cases = results["cases"]
    for table in (
        bench_missing.timing_table(cases),
        bench_missing.accuracy_table(cases),
    ):
        lines = table.splitlines()
        assert len(lines) == 2 + len(cases)
        assert "NO" not in table


# --------------------------------------------------------------------------
# bench_online
# --------------------------------------------------------------------------


def test_batch_sizes(bench_online):
    assert bench_online.batch_sizes(10, 5) == [5, 5]
    assert bench_online.batch_sizes(13, 5) == [5, 5, 3]
    with pytest.raises(ValueError, match="last batch"):
        bench_online.batch_sizes(11, 5)


def test_bench_online_quick_json(online_results):
    status, results = online_results
    assert status == 0, results["failures"]
    assert results["ok"] is True
    assert results["benchmark"] == "bench_online"
    expected = {"environment", "settings", "stream", "memory", "online"}
    expected |= {"batch_fit", "batch_fit_tight", "truth", "trajectory", "failures"}
    assert expected <= set(results)

    n_batches = ONLINE["n_rows"] // ONLINE["batch_size"]
    stream = results["stream"]
    assert stream["n_rows"] == ONLINE["n_rows"]
    assert stream["n_batches"] == stream["n_updates"] == n_batches
    assert stream["total_s"] > 0
    assert stream["rows_per_s"] > 0
    assert stream["deterministic"] is True
    assert results["trajectory"][-1]["n_updates"] == n_batches
    assert results["trajectory"][-1]["n_rows_seen"] == ONLINE["n_rows"]

    for key in ("online", "batch_fit", "batch_fit_tight"):
        r = results[key]
        assert np.isfinite(r["holdout_mean_log_likelihood"])
        # Well-separated components: both estimates are close to the truth.
        assert r["max_abs_err_means"] < 0.5
        assert r["max_abs_err_covariances"] < 1.0
        assert r["max_abs_err_weights"] < 0.1
    truth_ll = results["truth"]["holdout_mean_log_likelihood"]
    assert abs(results["online"]["holdout_mean_log_likelihood"] - truth_ll) < 0.05


def test_bench_online_memory_is_bounded_by_the_batch(online_results):
    _, results = online_results
    m = results["memory"]
    bytes_per_row = 2 * 8
    assert m["dataset_mib"] == pytest.approx(ONLINE["n_rows"] * bytes_per_row / 2**20)
    assert m["batch_mib"] == pytest.approx(ONLINE["batch_size"] * bytes_per_row / 2**20)
    assert 0 < m["tracemalloc_peak_mib"] < m["dataset_mib"]
    assert m["tracemalloc_peak_below_dataset"] is True
    for key in (
        "tracemalloc_peak_generate_batch_mib",
        "tracemalloc_peak_first_update_mib",
        "tracemalloc_peak_update_mib",
    ):
        assert 0 < m[key] <= m["tracemalloc_peak_mib"] + 1e-9
    if m["ru_maxrss_after_stream_mib"] is not None:
        assert m["ru_maxrss_after_stream_mib"] > 0
