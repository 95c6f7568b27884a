"""The benchmark's arithmetic and its result schema (no timing assertions)."""

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


def fake_result(ours_accuracy=0.90, ratio_wall=(30.0, 10.0)):
    def side(accuracy, epoch):
        return {"runs": [{"units": u, "seed": s, "test_accuracy": accuracy, "epoch_time_s": epoch,
                          "samples_per_s": 55000 / epoch, "wall_s": 2 * epoch + 4}
                         for u in (8, 128) for s in (0, 1)]}

    rate = 65e9
    baseline, ours = side(0.9, 6.0), side(ours_accuracy, 2.0)
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


def test_result_schema_and_targets():
    result = fake_result()
    row = result["per_units"][128]["ours"]
    assert set(row) == {"epoch_time_s", "samples_per_s", "test_accuracy", "flops_per_epoch",
                        "percent_of_bound"}
    assert row["percent_of_bound"] == pytest.approx(
        100 * bench.training_flops_per_epoch(128) / 65e9 / 2.0)
    assert result["targets"][0].startswith("baseline/ours ≥ 3 on this CPU: met (3.00×)")
    assert "128 units, took 50% of the baseline's time and is 3.0× there" in result["targets"][0]
    assert "ours is 3.0–3.0× the baseline's speed" in result["targets"][0]
    assert "within 1 point of the baseline: met" in result["targets"][1]
    text = bench.markdown(result)
    assert "**3.00×**" in text and "| 128 |" in text
    assert "65.0 GFLOP/s on 1 thread(s), 120.0 GFLOP/s on 2 thread(s)" in text
    missed = fake_result(ours_accuracy=0.85, ratio_wall=(20.0, 10.0))
    assert "MISSED (2.00×)" in missed["targets"][0]
    assert "What limits it" in missed["targets"][0] and "What limits" not in result["targets"][0]
    assert "MISSED (largest difference 5.00 points)" in missed["targets"][1]
    # fake runs are unpacked: all 4 see the baseline's initialisation and batch order
    assert "(4: unpacked runs and each pack's first seed) differ by at most 5.00" in (
        missed["targets"][1])
    assert "spread by up to 0.0 points" in missed["targets"][1]
