"""Smoke test of the benchmark harness under ``benchmarks/``.

``bench_fit.py --quick`` is the CI correctness gate: ours and scikit-learn's
``GaussianMixture`` start from the same parameters, so their lower bounds,
iteration counts and predictions must agree. Here every suite runs at tiny
sizes with one repeat; the gate must pass, record what it measured, and fail
when a result is perturbed.
"""

import importlib.util
import json
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).resolve().parents[1] / "benchmarks"
NUMBA = importlib.util.find_spec("numba") is not None
TINY = [
    "--quick", "--sizes", "300", "--repeats", "1", "--n-iter", "3",
    "--wide-size", "600", "--default-fit-size", "2000", "--predict-size", "1000",
    "--threads-sizes", "500", "--threads", "1",
]  # fmt: skip


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"_b_{name}", BENCH_DIR / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    bench_fit = _load("bench_fit")
    out = tmp_path_factory.mktemp("bench") / "fit.json"
    status = bench_fit.main([*TINY, "--output", str(out)])
    return bench_fit, status, out


def test_quick_gate_passes_and_records_what_it_measured(quick):
    bench_fit, status, out = quick
    result = json.loads(out.read_text(encoding="utf-8"))
    assert status == 0, result["failures"]
    assert result["ok"] is True and result["failures"] == []
    assert list(result["suites"]) == list(bench_fit.SUITES)
    env = result["environment"]
    for key in ("cpu_model", "cpu_count", "numpy", "sklearn", "sklearn_em"):
        assert key in env
    flags = env["cpu_vector_flags"]
    assert flags is None or set(flags) <= {"avx2", "fma", "avx512f"}
    assert env["loadavg_after"] is None or len(env["loadavg_after"]) == 3
    assert all(pool["num_threads"] == 1 for pool in env["threadpool_info_timed"])

    suites = {name: s["cases"] for name, s in result["suites"].items()}
    assert {(c["covariance_type"], c["dtype"]) for c in suites["sizes"]} == {
        (cov, dtype)
        for cov in ("full", "tied", "diag", "spherical")
        for dtype in ("float64", "float32")
    }
    for name, cases in suites.items():
        for c in cases:
            want = 3 if name != "default_fit" else c["sklearn"]["n_iter"]
            for lib in c["libraries"]:
                assert c[lib]["n_iter"] == want
                assert c[lib]["median_fit_s"] > 0
    for c in suites["sizes"]:
        if c["dtype"] == "float32":
            # Ours accumulates in float64: only the rounding to float32 is left.
            assert c["ours"]["max_abs_err_means"] < 1e-5
            assert c["init_dtype"] == "float32"
    engines = result["settings"]["engine"]
    assert engines == (["numpy", "numba"] if NUMBA else ["numpy"])
    for c in suites["sizes"]:
        assert c["libraries"][:-1] == [bench_fit.ENGINE_NAMES[e] for e in engines]
        assert c["floor_s"] > 0
    (default_fit,) = suites["default_fit"]
    assert default_fit["kmeans_s"] > 0  # the start both libraries share, timed
    threads = suites["threads"]
    assert [c["covariance_type"] for c in threads] == result["settings"][
        "covariance_types"
    ]
    for c in threads:
        assert c["ours_n_jobs_1"]["n_jobs_effective"] == 1
        assert c["ours_n_jobs_2"]["n_jobs_effective"] == 2
        assert c["floor_s"] > 0
        assert (c["floor_compiled_s"] is not None) == NUMBA
        assert not NUMBA or c["floor_compiled_s"] > 0
    (predict,) = suites["predict"]
    for lib in predict["libraries"][:-1]:
        assert predict["methods"]["predict"][lib]["n_mismatch"] == 0
        assert predict["methods"]["score_samples"][lib]["max_rel_diff"] <= 1e-8


def test_perturbed_results_fail_the_gate(quick):
    bench_fit, _, out = quick
    result = json.loads(out.read_text(encoding="utf-8"))
    suites, rtol = result["suites"], result["settings"]["rtol"]
    assert bench_fit.gate(suites, rtol) == []
    suites["sizes"]["cases"][0]["ours"]["lower_bound"] *= 1 + 1e-6
    suites["threads"]["cases"][0]["ours_n_jobs_2"]["n_iter"] = 2
    suites["predict"]["cases"][0]["methods"]["predict"]["ours"]["n_mismatch"] = 4
    failures = bench_fit.gate(suites, rtol)
    assert len(failures) == 3
    assert "sizes n=300 full float64: ours: lower bounds differ" in failures[0]
    assert "predict ours: 4 labels differ" in failures[1]
    assert "ours_n_jobs_2: n_iter_ = 2, expected 3" in failures[2]


def test_a_library_that_disagrees_fails_the_run(quick, tmp_path, monkeypatch):
    bench_fit = quick[0]

    class Skewed(bench_fit.OurGaussianMixture):
        def fit(self, X, y=None, sample_weight=None):
            self.reg_covar = 1e-3
            return super().fit(X, y, sample_weight=sample_weight)

    monkeypatch.setattr(bench_fit, "OurGaussianMixture", Skewed)
    argv = ["--suite", "sizes", "--sizes", "300", "--covariance-types", "diag"]
    argv += ["--dtype", "float64", "--repeats", "1", "--n-iter", "2"]
    assert bench_fit.main([*argv, "--output", str(tmp_path / "b.json")]) == 1
    result = json.loads((tmp_path / "b.json").read_text(encoding="utf-8"))
    assert result["ok"] is False
    assert "lower bounds differ" in result["failures"][0]


def test_plot_results_reads_the_new_json(quick, tmp_path):
    pytest.importorskip(
        "matplotlib", reason="plot_results needs matplotlib (test extra)"
    )
    png = tmp_path / "fit.png"
    assert _load("plot_results").main([str(quick[2]), "--output", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def harness():
    return _load("_harness")


def test_fastest_repeat_and_spread_of_hand_made_times(harness):
    assert harness.fastest([3.0, 1.0, 2.0]) == 1.0
    assert harness.spread([1, 1, 1, 2, 2]) == 2.0  # slowest / fastest
    assert harness.spread([1.0, 1.0]) == harness.spread([0.3]) == 1.0
    assert harness.fastest([]) is None and harness.spread([]) is None


def test_repeats_in_two_groups_are_noisy_and_close_repeats_are_not(harness):
    assert harness.NOISY_SPREAD == 1.25
    assert harness.noisy([[1, 1, 1, 2, 2]])  # a stolen core: two groups
    assert not harness.noisy([[1, 1.01, 1.02]])  # a quiet machine's jitter
    # One library in two groups is enough to flag its case.
    assert harness.noisy([[1, 1.01, 1.02], [2, 2, 3]])
    # The rule is "more than the threshold".
    assert not harness.noisy([[1.0, 1.25]])
    assert harness.noisy([[1.0, 1.26]])
    assert harness.noisy([[1.0, 1.1]], threshold=1.05)
    # One repeat (or none) cannot tell.
    assert not harness.noisy([[1.0], [], [5.0]])


def test_quick_records_fastest_repeats_beside_the_medians(quick):
    bench_fit, _, out = quick
    result = json.loads(out.read_text(encoding="utf-8"))
    for suite in result["suites"].values():
        for c in suite["cases"]:
            libs = c["libraries"]
            for lib in libs:
                e, times = c[lib], c[lib]["times_s"]
                # The medians stay as they were, the fastest repeat beside them.
                assert e["min_fit_s"] == min(times) <= e["median_fit_s"] <= max(times)
                assert e["min_s_per_iter"] <= e["median_s_per_iter"]
                assert e["min_s_per_iter"] == pytest.approx(
                    e["min_fit_s"] / e["n_iter"]
                )
                assert e["spread"] >= 1
                assert e["spread"] == pytest.approx(max(times) / min(times))
            assert c["speedups_fastest"].keys() == c["speedups"].keys()
            for lib, speedup in c["speedups_fastest"].items():
                want = c["sklearn"]["min_fit_s"] / c[lib]["min_fit_s"]
                assert speedup == pytest.approx(want)
            assert c["speedup_fastest"] == c["speedups_fastest"].get("ours")
            assert c["speedup"] == c["speedups"].get("ours")
            assert c["noisy_threshold"] == bench_fit.h.NOISY_SPREAD
            spreads = [c[lib]["spread"] for lib in libs]
            assert c["noisy"] is any(s > c["noisy_threshold"] for s in spreads)
    (predict,) = result["suites"]["predict"]["cases"]
    for m in predict["methods"].values():
        for lib in predict["libraries"]:
            times = m[lib]["times_s"]
            assert m[lib]["min_s"] == min(times) <= m[lib]["median_s"] <= max(times)
            assert m[lib]["spread"] == pytest.approx(max(times) / min(times))
        for lib in predict["libraries"][:-1]:
            want = m["sklearn"]["min_s"] / m[lib]["min_s"]
            assert m[lib]["speedup_fastest"] == pytest.approx(want)
        assert m["speedup_fastest"] == m["ours"]["speedup_fastest"]
        spreads = [m[lib]["spread"] for lib in predict["libraries"]]
        assert m["noisy"] is any(s > predict["noisy_threshold"] for s in spreads)
    assert "| fastest speed-up |" in bench_fit.predict_table([predict])


def test_a_case_with_a_library_in_two_groups_is_starred(quick):
    bench_fit, _, out = quick
    result = json.loads(out.read_text(encoding="utf-8"))
    case = result["suites"]["sizes"]["cases"][0]  # n=300, 3 iterations
    for lib in case["libraries"]:
        case[lib]["times_s"] = [0.5, 0.505, 0.51]
    case["sklearn"]["times_s"] = [1.0, 1.0, 1.0, 2.0, 2.0]
    bench_fit.fastest_figures(case)
    assert case["noisy"] is True
    assert case["sklearn"]["spread"] == 2.0
    assert case["speedups_fastest"]["ours"] == 2.0  # 1.0 / 0.5
    assert case["ours"]["min_s_per_iter"] == pytest.approx(0.5 / 3)
    header, _, row, *rest = bench_fit.fit_table([case]).splitlines()
    cells = dict(
        zip(header.strip("| ").split(" | "), row.strip("| ").split(" | "), strict=True)
    )
    assert cells["speed-up ours"].endswith("x*")  # the ratio of medians, starred
    assert cells["fastest speed-up ours"] == "2.00x"
    assert cells["max spread"] == "2.00"
    assert rest[-1].startswith("\\* noisy (1 of 1): a library's slowest repeat")

    case["sklearn"]["times_s"] = [1.0, 1.01, 1.02]
    assert bench_fit.fastest_figures(case)["noisy"] is False
    table = bench_fit.fit_table([case])
    assert "*" not in table and "noisy" not in table


ONLINE = ["--n-rows", "1e5", "--batch-size", "5e3", "--batch-fit-size", "5e3"]
MISSING = [
    "--sizes",
    "400",
    "--covariance-types",
    "full",
    "--repeats",
    "1",
    "--threads",
    "1",
]


@pytest.mark.parametrize(
    "script, argv", [("bench_online", ONLINE), ("bench_missing", MISSING)]
)
def test_other_benchmarks_pass_at_tiny_sizes(script, argv, tmp_path):
    out = tmp_path / f"{script}.json"
    status = _load(script).main(["--quick", *argv, "--output", str(out)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert status == 0, result["failures"]
    assert result["ok"] is True and result["settings"]["quick"] is True


BAYESIAN = [
    "--sizes", "400", "--covariance-types", "full", "tied", "--wide-size", "300",
    "--memory-sizes", "2000", "--n-iter", "3", "--blas", "default", "1",
]  # fmt: skip


def test_bench_bayesian_quick_gate(tmp_path):
    bench = _load("bench_bayesian")
    out = tmp_path / "bayesian.json"
    status = bench.main(["--quick", *BAYESIAN, "--output", str(out)])
    result = json.loads(out.read_text(encoding="utf-8"))
    assert status == 0, result["failures"]
    assert result["ok"] is True and result["settings"]["quick"] is True
    cases, memory = result["cases"], result["memory"]
    assert {(c["suite"], c["covariance_type"], c["prior"]) for c in cases} >= {
        ("sizes", "tied", "dirichlet_process"),
        ("sizes", "full", "dirichlet_distribution"),
        ("wide", "diag", "dirichlet_process"),
    }
    for c in cases:
        assert c["variants"] == ["ours", "sklearn", "ours_blas1", "sklearn_blas1"]
        assert all(c[k]["n_iter"] == 3 and c[k]["n_iter_1"] == 1 for k in c["variants"])
        assert c["lower_bound_rel_diff"] <= 1e-8
    (m,) = memory
    assert m["ours"]["warm"]["tracemalloc_peak_mib"] > 0
    # A perturbed lower bound or iteration count fails the recomputed gate.
    assert bench.gate(cases, memory, 1e-8) == []
    cases[0]["ours_blas1"]["lower_bound"] *= 1 + 1e-6
    cases[1]["sklearn"]["n_iter"] = 2
    failures = bench.gate(cases, memory, 1e-8)
    assert len(failures) == 2
    assert "BLAS 1: lower bounds differ" in failures[0]
    assert "sklearn: n_iter_ = 2, expected 3" in failures[1]
