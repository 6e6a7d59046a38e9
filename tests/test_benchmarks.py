"""Smoke tests for the scripts under ``benchmarks/``.

The benchmarks double as a correctness gate: ours and scikit-learn's
``GaussianMixture`` run from the same initial parameters (or, for the default
fit, the same ``random_state``), so their lower bounds and predictions must
agree. Everything here runs at tiny sizes with one repeat.
"""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
DTYPES = ("float64", "float32")
SUITES = ("sizes", "wide", "default_fit", "predict", "threads")
SIZES = (300, 1000)
TINY = [
    "--repeats", "1", "--wide-size", "1000", "--default-fit-size", "3000",
    "--predict-size", "2000", "--threads-sizes", "1000", "--threads", "1",
]  # fmt: skip


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"_bench_{name}", BENCH_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_fit():
    return _load("bench_fit")


@pytest.fixture(scope="module")
def quick_results(bench_fit, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "b.json"
    argv = ["--quick", "--sizes", *map(str, SIZES), *TINY]
    status = bench_fit.main([*argv, "--output", str(out)])
    results = json.loads(out.read_text(encoding="utf-8"))
    return status, results, out


def test_quick_runs_every_suite_and_passes(quick_results):
    status, results, _ = quick_results
    assert status == 0, results["failures"]
    assert results["ok"] is True
    assert results["failures"] == []
    assert list(results["suites"]) == list(SUITES)
    settings = results["settings"]
    assert settings["quick"] is True
    assert settings["n_iter"] == 10
    assert settings["repeats"] == 1
    assert settings["threads"] == 1
    assert settings["init_params_fixed_iteration_fits"] == "random_from_data"


def test_sizes_suite_every_case_agrees(quick_results):
    _, results, _ = quick_results
    suite = results["suites"]["sizes"]
    n_iter = suite["settings"]["n_iter"]
    cases = suite["cases"]
    got = {(c["n"], c["covariance_type"], c["dtype"]) for c in cases}
    assert got == {
        (n, cov, t) for n in SIZES for cov in COVARIANCE_TYPES for t in DTYPES
    }
    assert len(cases) == len(got)
    for c in cases:
        assert c["errors"] == []
        assert c["init_dtype"] == c["dtype"]
        for lib in ("ours", "sklearn"):
            assert c[lib]["n_iter"] == n_iter
            assert len(c[lib]["times_s"]) == 1
            assert c[lib]["median_s_per_iter"] > 0
        rtol = 1e-8 if c["dtype"] == "float64" else 1e-4
        lb_ours, lb_sk = c["ours"]["lower_bound"], c["sklearn"]["lower_bound"]
        assert lb_ours == pytest.approx(lb_sk, rel=rtol, abs=0)
        assert c["lower_bound_rel_diff"] <= rtol
        assert c["speedup"] > 0


def test_sizes_suite_float32_reports_errors_against_float64(quick_results):
    _, results, _ = quick_results
    f32 = [c for c in results["suites"]["sizes"]["cases"] if c["dtype"] == "float32"]
    assert f32
    for c in f32:
        assert "float64" in c["accuracy_reference"]
        assert isinstance(c["ours_closer_to_float64"], bool)
        for lib in ("ours", "sklearn"):
            for key in ("max_abs_err_means", "max_abs_err_covariances"):
                assert 0 <= c[lib][key] < 1e-2
        # Ours accumulates in float64: only the final rounding to float32 remains.
        assert c["ours"]["max_abs_err_means"] < 1e-5
        assert c["ours"]["max_abs_err_covariances"] < 1e-5
    f64 = [c for c in results["suites"]["sizes"]["cases"] if c["dtype"] == "float64"]
    assert all("max_abs_err_means" not in c["ours"] for c in f64)


def test_wide_suite(quick_results):
    _, results, _ = quick_results
    cases = results["suites"]["wide"]["cases"]
    assert [c["covariance_type"] for c in cases] == ["full", "diag"]
    for c in cases:
        assert (c["n"], c["n_features"], c["n_components"]) == (1000, 32, 16)
        assert c["errors"] == []
        assert c["lower_bound_rel_diff"] <= 1e-8


def test_default_fit_suite(quick_results):
    _, results, _ = quick_results
    (case,) = results["suites"]["default_fit"]["cases"]
    assert case["n"] == 3000
    assert case["errors"] == []
    assert case["n_iter_match"] is True
    assert case["ours"]["n_iter"] == case["sklearn"]["n_iter"] >= 1
    assert case["lower_bound_rel_diff"] <= 1e-8
    assert case["ours"]["median_fit_s"] > 0 and case["sklearn"]["median_fit_s"] > 0
    assert case["speedup"] > 0
    from sklearn.mixture import GaussianMixture

    defaults = GaussianMixture().get_params()
    sk = case["params"]["sklearn"]
    assert sk == {**defaults, "n_components": 3, "random_state": 0}
    ours = case["params"]["ours"]
    assert {k: ours[k] for k in defaults} == sk
    assert ours["n_jobs"] is None


def test_predict_suite(quick_results):
    _, results, _ = quick_results
    (case,) = results["suites"]["predict"]["cases"]
    assert case["n"] == 2000
    assert case["errors"] == []
    assert list(case["methods"]) == ["predict", "predict_proba", "score_samples"]
    assert case["methods"]["predict"]["n_mismatch"] == 0
    for method in ("predict_proba", "score_samples"):
        assert case["methods"][method]["max_rel_diff"] <= 1e-8
    for m in case["methods"].values():
        assert m["ours"]["median_s"] > 0 and m["sklearn"]["median_s"] > 0
        assert m["speedup"] > 0


def test_threads_suite(quick_results):
    _, results, _ = quick_results
    (case,) = results["suites"]["threads"]["cases"]
    assert case["libraries"] == ["ours_n_jobs_1", "ours_n_jobs_2", "sklearn"]
    assert case["ours_n_jobs_1"]["n_jobs_effective"] == 1
    assert case["ours_n_jobs_2"]["n_jobs_effective"] == 2
    for name in case["libraries"]:
        assert case[name]["median_s_per_iter"] > 0
    assert set(case["speedups"]) == {"ours_n_jobs_1", "ours_n_jobs_2"}
    assert case["lower_bound_rel_diff"] <= 1e-8


def test_bench_fit_records_environment(quick_results):
    _, results, _ = quick_results
    env = results["environment"]
    for key in ("cpu_count", "platform", "python", "numpy", "scipy", "sklearn"):
        assert env[key]
    assert "sklearn_em" in env
    assert isinstance(env["threadpool_info"], list)
    assert isinstance(env["threadpool_info_timed"], list)
    assert all(p["num_threads"] == 1 for p in env["threadpool_info_timed"])
    assert results["settings"]["n_jobs"] is None
    effective = results["settings"]["n_jobs_effective"]
    assert effective == "auto" or effective >= 1


def test_default_settings_and_output_names(bench_fit):
    def cfg(*argv):
        return bench_fit.resolve_settings(bench_fit.build_parser().parse_args(argv))

    default = cfg()
    assert default["suites"] == ["sizes"]
    assert default["sizes"] == [100, 1_000, 10_000, 100_000, 1_000_000]
    assert default["dtypes"] == ["float64", "float32"]
    assert default["output"].name == "bench_fit-sizes.json"
    assert cfg("--full")["sizes"][-1] == 10_000_000
    quick = cfg("--quick")
    assert quick["suites"] == list(SUITES)
    assert quick["output"].name == "bench_fit-all-quick.json"
    assert quick["default_fit_size"] == 100_000 and quick["predict_size"] == 10_000
    assert cfg("--suite", "threads", "wide")["output"].name == (
        "bench_fit-wide+threads.json"
    )
    assert cfg("--suite", "all")["suites"] == list(SUITES)
    assert cfg("--rtol", "1e-6")["rtol"] == {"float64": 1e-6, "float32": 1e-6}
    with pytest.raises(SystemExit):
        cfg("--quick", "--full")


def test_bench_fit_fails_on_lower_bound_mismatch(bench_fit, tmp_path, monkeypatch):
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
    argv = ["--quick", "--suite", "sizes", "--sizes", "200", "--repeats", "1"]
    argv += ["--n-iter", "2", "--covariance-types", "diag", "--dtype", "float64"]
    status = bench_fit.main([*argv, "--output", str(out)])
    assert status == 1
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["ok"] is False
    assert "lower bounds differ" in results["failures"][0]


def test_bench_fit_fails_on_prediction_mismatch(bench_fit, tmp_path, monkeypatch):
    real = bench_fit.run_predict_case

    def skewed(*args, **kwargs):
        case = real(*args, **kwargs)
        case["methods"]["predict"]["n_mismatch"] = 3
        case["methods"]["score_samples"]["max_rel_diff"] = 1e-5
        return case

    monkeypatch.setattr(bench_fit, "run_predict_case", skewed)
    out = tmp_path / "b.json"
    argv = ["--quick", "--suite", "predict", "--predict-size", "500"]
    status = bench_fit.main([*argv, "--repeats", "1", "--output", str(out)])
    assert status == 1
    failures = json.loads(out.read_text(encoding="utf-8"))["failures"]
    assert any("3 labels differ" in f for f in failures)
    assert any("score_samples: outputs differ" in f for f in failures)


def test_max_relative_difference(bench_fit):
    f = bench_fit.max_relative_difference
    assert f([0.0, 1.0, -2.0], [0.0, 1.0, -2.0]) == 0.0
    assert f([1.0, 2.0], [1.0, 2.0 * (1 + 1e-6)]) == pytest.approx(1e-6, rel=1e-5)
    assert f([1.0], [1.0, 2.0]) == float("inf")
    assert f([float("-inf")], [float("-inf")]) == 0.0


def test_plot_results_writes_png(quick_results, tmp_path):
    pytest.importorskip("matplotlib")
    _, _, json_path = quick_results
    plot_results = _load("plot_results")
    png = tmp_path / "b.png"
    assert plot_results.main([str(json_path), "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_results_needs_sizes_suite(tmp_path):
    plot_results = _load("plot_results")
    path = tmp_path / "w.json"
    path.write_text(json.dumps({"suites": {"wide": {"cases": []}}}), encoding="utf-8")
    assert plot_results.main([str(path), "--output", str(tmp_path / "w.png")]) == 2


def test_bench_memory_quick(tmp_path):
    bench_memory = _load("bench_memory")
    out = tmp_path / "m.json"
    assert bench_memory.main(["--sizes", "2000", "--output", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert results["ok"] is True
    assert results["settings"]["n_iter"] == 10
    assert results["environment"]["threadpool_info"]
    (case,) = results["cases"]
    assert case["n"] == 2000 and case["errors"] == []
    assert case["lower_bound_rel_diff"] <= 1e-8
    for lib in ("ours", "sklearn"):
        r = case[lib]
        assert r["n_iter"] == 10
        assert r["tracemalloc_peak_mib"] > 0
        assert r["maxrss_growth_mib"] is None or r["maxrss_growth_mib"] >= 0


def test_bench_memory_fails_when_a_worker_fails(tmp_path, monkeypatch):
    bench_memory = _load("bench_memory")
    monkeypatch.setattr(
        bench_memory, "run_worker", lambda spec, timeout=None: {"error": "boom"}
    )
    out = tmp_path / "m.json"
    assert bench_memory.main(["--sizes", "1000", "--output", str(out)]) == 1
    failures = json.loads(out.read_text(encoding="utf-8"))["failures"]
    assert failures == ["n=1000: ours: boom", "n=1000: sklearn: boom"]
