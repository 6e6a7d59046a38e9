"""Smoke tests for ``benchmarks/bench_fit.py`` and ``benchmarks/plot_results.py``.

The benchmark doubles as a correctness gate: ours and scikit-learn's
``GaussianMixture`` are run from the same initial parameters for the same
number of EM iterations, so their final ``lower_bound_`` must agree.
"""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
SIZES = (500, 2000)


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"_bench_{name}", BENCH_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_results(tmp_path_factory):
    bench_fit = _load("bench_fit")
    out = tmp_path_factory.mktemp("bench") / "b.json"
    argv = ["--quick", "--sizes", *map(str, SIZES), "--repeats", "1"]
    status = bench_fit.main([*argv, "--output", str(out)])
    results = json.loads(out.read_text(encoding="utf-8"))
    return status, results, out


def test_bench_fit_quick_every_case_agrees(quick_results):
    status, results, _ = quick_results
    assert status == 0, results["failures"]
    assert results["ok"] is True
    assert results["failures"] == []

    settings = results["settings"]
    n_iter = settings["n_iter"]
    assert settings["quick"] is True
    assert n_iter == 10
    assert settings["repeats"] == 1

    cases = results["cases"]
    got = {(c["n"], c["covariance_type"]) for c in cases}
    assert got == {(n, cov) for n in SIZES for cov in COVARIANCE_TYPES}
    assert len(cases) == len(got)
    for c in cases:
        assert c["dtype"] == "float64"
        assert c["errors"] == []
        for lib in ("ours", "sklearn"):
            assert c[lib]["n_iter"] == n_iter
            assert len(c[lib]["times_s"]) == 1
            assert c[lib]["median_s_per_iter"] > 0
        lb_ours, lb_sk = c["ours"]["lower_bound"], c["sklearn"]["lower_bound"]
        assert lb_ours == pytest.approx(lb_sk, rel=1e-8, abs=0)
        assert c["lower_bound_rel_diff"] <= 1e-8
        assert c["speedup"] > 0


def test_bench_fit_records_environment(quick_results):
    _, results, _ = quick_results
    env = results["environment"]
    for key in ("cpu_count", "platform", "python", "numpy", "scipy", "sklearn"):
        assert env[key]
    assert "sklearn_em" in env
    assert isinstance(env["threadpool_info"], list)
    assert isinstance(env["threadpool_info_timed"], list)


def test_bench_fit_fails_on_lower_bound_mismatch(tmp_path, monkeypatch):
    bench_fit = _load("bench_fit")
    real = bench_fit.run_case

    def skewed(*args, **kwargs):
        case = real(*args, **kwargs)
        case["ours"]["lower_bound"] *= 1 + 1e-6
        case["lower_bound_rel_diff"] = bench_fit.relative_difference(
            case["ours"]["lower_bound"], case["sklearn"]["lower_bound"]
        )
        return case

    monkeypatch.setattr(bench_fit, "run_case", skewed)
    out = tmp_path / "b.json"
    argv = ["--quick", "--sizes", "200", "--repeats", "1", "--n-iter", "2"]
    status = bench_fit.main([*argv, "--covariance-types", "diag", "--output", str(out)])
    assert status == 1
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["ok"] is False
    assert "lower bounds differ" in results["failures"][0]


def test_plot_results_writes_png(quick_results, tmp_path):
    pytest.importorskip("matplotlib")
    _, _, json_path = quick_results
    plot_results = _load("plot_results")
    png = tmp_path / "b.png"
    assert plot_results.main([str(json_path), "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
