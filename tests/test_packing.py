"""Seed packing is exact: packed members match separately trained models to float tolerance,
and each member becomes its own child run."""

import re

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from harness import data, models, packing, runner, sweep
from tests.conftest import run_sweep


@pytest.fixture(scope="module")
def small():
    return data.mnist_splits(train_size=640, val_size=200)


@pytest.mark.parametrize("cell,fused", [("lstm", False), ("lstm", True), ("gru", False),
                                        ("simple_rnn", False)])
def test_members_match_separate_models(small, cell, fused):
    seeds, units = [3, 7, 11], 6
    shape = dict(timesteps=28, input_dim=28, num_classes=10)
    packed = packing.build_packed(cell=cell, units=units, seeds=seeds, fused=fused, **shape)
    packed.compile(optimizer=keras.optimizers.Adam(1e-2),
                   loss=["sparse_categorical_crossentropy"] * len(seeds))
    packed.fit(small.x_train, [small.y_train] * 3, batch_size=128, epochs=2, shuffle=False,
               verbose=0)
    recurrent = packed.get_layer(cell).get_weights()[1]
    mask = packing.BlockDiagonal(3, units, packing.GATES[cell]).mask
    assert np.abs(recurrent * (1 - mask)).max() == 0  # members never see each other
    for member, seed in enumerate(seeds):
        keras.utils.set_random_seed(seed)
        alone = models.build_model(cell=cell, units=units, **shape)
        start = [w.copy() for w in alone.get_weights()]
        alone.compile(optimizer=keras.optimizers.Adam(1e-2),
                      loss="sparse_categorical_crossentropy")
        alone.fit(small.x_train, small.y_train, batch_size=128, epochs=2, shuffle=False,
                  verbose=0)
        mine = packing.member_weights(packed, member, 3, units, cell)
        for trained, own, initial in zip(alone.get_weights(), mine, start):
            assert own.shape == trained.shape
            np.testing.assert_allclose(own, trained, atol=1e-5)
            assert not np.allclose(initial, trained)  # training really moved the weights


def test_first_member_equals_the_unpacked_run(small):
    # The pack's batch order is drawn from its first seed, as an unpacked run of that seed does.
    config = {
        "data": {"name": "mnist", "label_noise": 0.0}, "model": {"cell": "lstm", "units": 4},
        "train": {"batch_size": 128, "epochs": 2, "learning_rate": 0.01},
        "seed": 5, "device": "cpu",
    }
    alone = runner.train(config, splits=small)
    packed = runner.train_packed(config, [5, 6], splits=small)
    assert [r["params"]["seed"] for r in packed] == [5, 6]
    for name in ("test_accuracy", "train_accuracy", "best_val_accuracy", "param_count"):
        assert packed[0]["metrics"][name] == pytest.approx(alone["metrics"][name], abs=1e-4)
    np.testing.assert_allclose(packed[0]["history"]["loss"], alone["history"]["loss"], rtol=1e-4)
    assert packed[0]["metrics"]["param_count"] == models.param_count("lstm", 4, 28, 10)


def test_packed_members_are_child_runs(store):
    # The smoke grid is units {4, 16} × seeds {0, 1}: 4 units is packed, 16 units is not.
    result = run_sweep("smoke", "pack_max_units=8", "data.train_size=300", "data.val_size=100",
                       store=store)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "4 jobs, 4 runs (2 of them in 1 packs)" in result.stdout
    assert re.search(r"model.units=4 seed=0 .*\(pack \[0, 1\]\): test_accuracy", result.stdout)
    assert re.search(r"model.units=4 seed=1 .*: trained in the pack of seed 0", result.stdout)
    assert "4 finished, 0 failed, 0 killed, 0 skipped, 0 not run" in result.stdout
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id], "tags.packed_with = '0,1'")
    assert sorted((r.data.params["units"], r.data.params["seed"]) for r in runs) == [
        ("4", "0"), ("4", "1")]
    alone = client.search_runs([experiment.experiment_id], "params.units = '16'")
    assert len(alone) == 2 and all("packed_with" not in r.data.tags for r in alone)
    parent = client.search_runs([experiment.experiment_id], "tags.sweep = 'parent'")[0]
    for run in runs:
        assert run.info.status == "FINISHED"
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.metrics["param_count"] == models.param_count("lstm", 4, 28, 10)
        assert run.data.tags["kernel"] == "block_lstm"
        assert 0 <= run.data.metrics["test_accuracy"] <= 1
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history) == [0, 1]
    assert len({r.data.tags["run_key"] for r in runs}) == 2
    again = run_sweep("smoke", "pack_max_units=8", "data.train_size=300", "data.val_size=100",
                      store=store)
    assert "0 finished, 0 failed, 0 killed, 4 skipped" in again.stdout


def test_sweep_plans_packs_per_configuration():
    def job(units, seed, pack_max_units=16, epochs=2):
        return {"data": {"name": "mnist"}, "model": {"cell": "lstm", "units": units},
                "train": {"epochs": epochs}, "seed": seed, "pack_max_units": pack_max_units}

    jobs = [job(units, seed) for units in (4, 32) for seed in (2, 0, 1)] + [job(4, 0, epochs=3)]
    packs = sweep.plan_packs(jobs)
    assert list(packs.values()) == [[0, 1, 2]]  # 4 units, 2 epochs; 32 units is too wide
    assert sweep.plan_packs([job(4, seed, pack_max_units=0) for seed in (0, 1)]) == {}
    assert sweep.plan_packs([job(4, 0)]) == {}  # one seed: nothing to pack with


def test_eta_cost_model():
    def job(units, seed):
        return {"data": {"name": "mnist", "timesteps": 28},
                "model": {"cell": "lstm", "units": units}, "train": {"epochs": 10}, "seed": seed}

    # One LSTM(128) epoch costs ~5× an LSTM(8) one on the CPU (9.3 s vs 1.8 s, measured).
    assert 4 < sweep.job_cost(job(128, 0), None) / sweep.job_cost(job(8, 0), None) < 6
    assert sweep.job_cost(job(8, 1), [0, 1, 2]) == 0  # trained by the pack of seed 0
    assert sweep.job_cost(job(8, 0), [0, 1, 2]) == sweep.job_cost(job(24, 0), None)
