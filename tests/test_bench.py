"""The benchmark's arithmetic and its result schema (no timing assertions)."""

import re

import pytest

from harness import bench


def test_training_flops_formula():
    # LSTM(128) on row MNIST: 28 steps × 2·4·128·(28+128) + head 2·128·10 per example forward.
    forward = 28 * 2 * 4 * 128 * 156 + 2 * 128 * 10
    assert forward == 4_475_392
    assert bench.training_flops_per_epoch(128) == 3 * forward * 55000 + forward * 5000
    assert 0.7e12 < bench.training_flops_per_epoch(128) < 0.8e12  # "~0.8 TFLOP per epoch"
    assert bench.training_flops_per_epoch(8) < 0.06e12  # "~0.05 GFLOP"-scale small models
    assert bench.training_flops_per_epoch(256) > 3 * bench.training_flops_per_epoch(128)


def fake_result(ours_accuracy=0.90, ratio_wall=(60.0, 10.0), ours_epoch=2.0):
    def side(accuracy, epoch, spread):
        return {"runs": [{"units": u, "seed": s, "test_accuracy": accuracy + spread * s,
                          "epoch_time_s": epoch, "samples_per_s": 55000 / epoch,
                          "wall_s": 2 * epoch + 4, "train_time_s": 2 * epoch}
                         for u in (8, 128) for s in (0, 1)]}

    rate = 65e9
    baseline, ours = side(0.9, 6.0, 0.02), side(ours_accuracy, ours_epoch, 0.0)
    baseline.update(wall_s=ratio_wall[0], peak_rss_mib=900)
    ours.update(wall_s=ratio_wall[1], peak_rss_mib=1200, jobs=2, threads_per_job=1)
    b, o = bench.per_configuration(baseline, rate), bench.per_configuration(ours, rate)
    result = {
        "date": "2026-11-22", "machine": "test", "cores": 2, "tensorflow": "x", "keras": "y",
        "grid": "default", "units": [8, 128], "seeds": [0, 1], "epochs": 2,
        "matmul_gflops": {"1": 65.0, "2": 120.0}, "baseline": baseline, "ours": ours,
        "ratio": ratio_wall[0] / ratio_wall[1],
        "per_units": {u: {"baseline": b[u], "ours": o[u]} for u in b}, "command": "make bench",
    }
    result["targets"] = bench.targets(result)
    return result


def test_study_bound_formula():
    # two seeds × two epochs of LSTM(8) and LSTM(128)
    flops = bench.study_flops([8, 128], [0, 1], 2)
    assert flops == 4 * (bench.training_flops_per_epoch(8) + bench.training_flops_per_epoch(128))
    result = fake_result()
    bound = bench.study_bound(result)
    assert bound["bound_s"] == pytest.approx(flops / 120e9)  # all cores' rate
    assert bound["ratio"] == pytest.approx(10.0 / bound["bound_s"])
    # the full units_mnist study: 55 runs × 10 epochs, ~56 TFLOP
    full = bench.GRIDS["full"]
    assert 50e12 < bench.study_flops(full["units"], full["seeds"], full["epochs"]) < 60e12


def test_result_schema_and_targets():
    result = fake_result()
    row = result["per_units"][128]["ours"]
    assert set(row) == {"epoch_time_s", "samples_per_s", "test_accuracy", "seed_std",
                        "flops_per_epoch", "percent_of_bound"}
    assert row["percent_of_bound"] == pytest.approx(
        100 * bench.training_flops_per_epoch(128) / 65e9 / 2.0)
    targets = result["targets"]
    assert "6×" in targets[0] and "met (6.00×)" in targets[0]
    # ours 0.90 on every seed; the baseline 0.90 and 0.92: 1 point off, std 1.41 points
    assert targets[1].startswith("test accuracy") and "met (largest difference 1.00 points" in (
        targets[1])
    assert "1.41 points" in targets[1]
    assert targets[2].startswith("LSTM(128)") and "met (3.00×" in targets[2]
    assert targets[3].startswith("study within 2× its FLOP bound: ")
    assert "the target is for the full study" in targets[3]
    text = bench.markdown(result)
    assert "**6.00×**" in text and "| 128 |" in text and "0.9100 ± 0.0141" in text
    assert "65.0 GFLOP/s on 1 thread(s), 120.0 GFLOP/s on 2 thread(s)" in text
    # how ours trained comes from the runs' tags
    for run in result["ours"]["runs"]:
        run.update(backend="jax", kernel="keras", packed_with="")
    assert "Keras on JAX, each training step compiled by XLA" in bench.markdown(result)
    assert "every seed trained alone" in bench.markdown(result)
    for run in result["ours"]["runs"]:
        run.update(backend="tensorflow", kernel="block_lstm",
                   packed_with="0,1" if run["units"] == 8 else "")
    text = bench.markdown(result)
    assert "Keras on TensorFlow, the LSTM loop in TensorFlow's fused CPU kernel" in text
    assert "seeds packed where the cost model says it pays" in text
    missed = fake_result(ours_accuracy=0.85, ratio_wall=(20.0, 10.0), ours_epoch=4.0)
    assert "MISSED (2.00×). What limits it" in missed["targets"][0]
    # 2 workers × 10 s = 20 job-seconds, of them 4 runs × 2 epochs × 4 s training
    assert "of our 2 workers' 20 job-seconds, 32 were training epochs" in missed["targets"][0]
    assert "MISSED (largest difference 6.00 points" in missed["targets"][1]
    assert re.search(r"8 units, 6.00 points against a spread of 1.41.*128 units",
                     missed["targets"][1])
    assert "MISSED (1.50×" in missed["targets"][2] and "What limits it" in missed["targets"][2]
    assert "What limits" not in result["targets"][2]


def test_missed_throughput_target_states_the_floor():
    # ours at 12 s an epoch against the baseline's 6 s: missed; at the whole 65 GFLOP/s of one
    # thread (a job's), LSTM(128)'s epoch would still take its FLOPs / 65e9 seconds
    line = fake_result(ours_epoch=12.0)["targets"][2]
    assert line.startswith("LSTM(128)") and "MISSED (0.50×" in line
    best = bench.training_flops_per_epoch(128) / 65e9
    assert re.search(rf"65.0 GFLOP/s of 1 thread.* {best:.1f} s; .* ≤ 3.0 s", line)


def test_paired_runs_decide_the_throughput_target_with_the_same_threads():
    # in the grid ours ran at 2 s an epoch against 6 s (3×, one thread against two); taken in
    # turn with the same two threads, the naive way 6 and 4 s, ours 3 and 3 s: 10 / 6
    result = fake_result()
    result["paired"] = bench.paired_summary(128, 2, [
        {"seed": 0, "naive_epoch_s": 6.0, "ours_epoch_s": 3.0},
        {"seed": 1, "naive_epoch_s": 4.0, "ours_epoch_s": 3.0}])
    assert result["paired"]["ratio"] == pytest.approx(10 / 6)
    line = bench.targets(result)[2]
    assert "MISSED (1.67×" in line and "same 2 threads" in line
    assert "6.00, 4.00 s" in line and "3.00, 3.00 s" in line  # each side's epochs, pair by pair
    assert "one thread per job: 3.00×" in line  # the grid's figure beside it
    # the floor at both threads' rate, against half the naive way's mean epoch in the pairs
    best = bench.training_flops_per_epoch(128) / 120e9
    assert re.search(rf"120.0 GFLOP/s of 2 thread.* {best:.1f} s; .* ≤ 2.5 s", line)
    assert "one thread's matmul rate, the baseline two" not in line
    result["paired"] = bench.paired_summary(128, 2, [
        {"seed": 0, "naive_epoch_s": 6.0, "ours_epoch_s": 2.0}])
    assert bench.targets(result)[2].startswith(
        "LSTM(128) throughput per seed ≥ 2× the naive way's: met (3.00× with the same 2 threads")
    assert "What limits it" not in bench.targets(result)[2]


def without_baseline(result: dict, grid: str = "full") -> dict:
    """fake_result as `--baseline=skip` leaves it: ours alone."""
    result = dict(result, grid=grid, baseline=None, ratio=None,
                  per_units={u: {"ours": row["ours"]} for u, row in result["per_units"].items()})
    for run in result["ours"]["runs"]:
        run["train_time_s"] = run["epoch_time_s"] * result["epochs"]
    result["targets"] = bench.targets(result)
    return result


def test_ours_alone_states_the_study_bound_and_no_ratio():
    result = without_baseline(fake_result(ratio_wall=(60.0, 1000.0)))
    bound = bench.study_bound(result)
    assert bound["ratio"] == pytest.approx(1000.0 / bound["bound_s"])
    against_naive, study = result["targets"]
    assert against_naive.startswith("against the naive way") and "not measured" in against_naive
    assert study.startswith(f"study within 2× its FLOP bound: {bound['ratio']:.2f}×")
    assert ": MISSED. What limits it:" in study and "LSTM(128) 50% of the training time" in study
    text = bench.markdown(result)
    assert "naive way not run" in text and "ratio baseline / ours" not in text
    assert "| 128 | 2.00 |" in text and "baseline" not in text.split("## Targets")[0].lower()
    met = without_baseline(fake_result(ratio_wall=(60.0, 1.0)))
    assert met["targets"][1].endswith(": met.")
    # the rate after the sweep, when measured, gives the bound at that rate too
    result["matmul_gflops_after"] = {"1": 60.0, "2": 100.0}
    assert "100.0 GFLOP/s on 2 thread(s) after" in bench.markdown(result)
    assert bench.study_bound(result, result["matmul_gflops_after"])["bound_s"] == pytest.approx(
        bound["bound_s"] * 120 / 100)


def test_programs_compiled_during_our_sweep_are_stated(tmp_path):
    env = {"JAX_COMPILATION_CACHE_DIR": str(tmp_path)}
    assert bench.compiled_programs(env) == set()
    (tmp_path / "jit_train_step-abc-cache").write_bytes(b"x")
    (tmp_path / "jit_train_step-abc-atime").write_bytes(b"x")  # JAX's access times: no program
    assert bench.compiled_programs(env) == {"jit_train_step-abc-cache"}
    result = fake_result()
    assert "compilation cache" not in bench.markdown(result)  # not measured: not stated
    result["ours"]["compiled_programs"] = 0
    assert "0 program(s) compiled during our sweep — every program" in bench.markdown(result)
    result["ours"]["compiled_programs"] = 12
    assert "12 program(s) compiled during our sweep (their compilation" in bench.markdown(result)


def test_a_run_without_the_naive_way_never_overwrites_a_comparison():
    assert bench.default_out("default", True) == "results/bench"
    assert bench.default_out("full", True) == "results/bench/full"
    assert bench.default_out("default", False) == "results/bench/default-ours"
    assert bench.default_out("full", False) == "results/bench/full-ours"


@pytest.mark.parametrize("argv, message", [
    (["--baseline=none"], "error: BENCH_BASELINE: 'none' is unknown; allowed: run, skip"),
    (["--grid=huge"], "error: BENCH_GRID: 'huge' is unknown; allowed: default, four_sizes, full"),
    (["--jobs=0"], "error: JOBS: '0' is not allowed; use a whole number ≥ 1"),
])
def test_bad_bench_settings_stop_before_measuring(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(bench, "matmul_rate_with", lambda threads: pytest.fail("measured"))
    with pytest.raises(SystemExit) as stopped:
        bench.main(argv)
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == message


def test_welch_test_of_the_seeds_per_size():
    same = fake_result()  # ours 0.90, 0.90 against the baseline's 0.90, 0.92 at each size
    assert bench.seed_tests(same)[8] == pytest.approx(0.5)
    assert "no size's means differ at p < 0.05 (smallest p 0.50" in same["targets"][1]
    apart = fake_result(ours_accuracy=0.5)
    assert all(p < 0.05 for p in bench.seed_tests(apart).values())
    assert "the means differ at p < 0.05 at 8, 128 units" in apart["targets"][1]
