"""Seed packing is exact: a packed member is the separate run of its seed (initialisation, batch
order, updates) to float tolerance, and each member becomes its own child run."""

import re

import keras
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from harness import batches, data, models, packing, plan, runner
from harness.compose import study_jobs
from harness.config import run_key
from tests.conftest import run_sweep


@pytest.fixture(scope="module")
def small():
    return data.mnist_splits(train_size=700, val_size=200)


def config_for(cell: str, units: int = 6, epochs: int = 2) -> dict:
    return {
        "data": {"name": "mnist", "label_noise": 0.0}, "model": {"cell": cell, "units": units},
        # 700 examples: the last batch of each epoch is partial, as with the real 55,000
        "train": {"batch_size": 128, "epochs": epochs, "learning_rate": 0.01},
        "seed": 0, "device": "cpu",
        "backend": keras.backend.backend(),  # test_backends.py runs these tests on JAX too
    }


@pytest.mark.parametrize("cell", ["lstm", "gru", "simple_rnn"])
def test_packed_seed_is_its_separate_run(small, cell):
    """Initialisation, batch order and updates: each member of a pack of three equals the run
    of its seed trained alone (weights to float tolerance, metrics and curves)."""
    seeds = [3, 7, 11]
    trained = []

    class Keep(keras.callbacks.Callback):  # the trained model, to read its weights
        def on_train_end(self, logs=None):
            trained.append(self.model)

    packed = runner.train_packed(config_for(cell), seeds, splits=small, callbacks=[Keep()])
    model = trained[0]
    units, gates = 6, packing.GATES[cell]
    kernel, recurrent = model.get_layer(cell).get_weights()[:2]
    for weight, rows in ((kernel, 28), (recurrent, units)):
        mask = packing.BlockDiagonal(3, units, gates, rows=rows).mask
        assert np.abs(weight * (1 - mask)).max() == 0  # members never see each other
    for member, seed in enumerate(seeds):
        alone = runner.train({**config_for(cell), "seed": seed}, splits=small,
                             callbacks=[Keep()])
        keras.utils.set_random_seed(seed)
        initial = models.build_model(cell=cell, units=units, timesteps=28, input_dim=28,
                                     num_classes=10).get_weights()
        mine = packing.member_weights(model, member, 3, units, cell)
        for own, separate, start in zip(mine, trained[-1].get_weights(), initial):
            assert own.shape == separate.shape
            np.testing.assert_allclose(own, separate, atol=1e-5)
            assert not np.allclose(start, separate)  # training really moved the weights
        for name in ("test_accuracy", "train_accuracy", "best_val_accuracy", "test_loss"):
            assert packed[member]["metrics"][name] == pytest.approx(alone["metrics"][name],
                                                                    abs=1e-3)
        for curve in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(packed[member]["history"][curve],
                                       alone["history"][curve], atol=1e-4)
    # the seeds really differ: independent runs, not one run three times
    assert len({tuple(r["history"]["loss"]) for r in packed}) == 3


def test_batch_order_is_a_permutation_per_seed_and_epoch():
    orders = {(seed, epoch): batches.batch_order(seed, epoch, 1000)
              for seed in (0, 1, 2) for epoch in (0, 1)}
    for order in orders.values():
        assert sorted(order) == list(range(1000))
    assert len({tuple(order) for order in orders.values()}) == 6
    assert np.array_equal(batches.batch_order(1, 1, 1000), orders[1, 1])  # drawn from both alone


def test_pack_and_alone_see_the_same_batches(small):
    alone = batches.TrainingBatches(small.x_train, small.y_train, [7], 128, 2, packed=False)
    pack = batches.TrainingBatches(small.x_train, small.y_train, [3, 7], 128, 2, packed=True)
    assert alone.num_batches == pack.num_batches == 12  # 700 examples: 6 batches per epoch
    for index in (0, 5, 6, 11):  # first and last (partial) batch of each epoch
        x, y = alone[index]
        packed_x, packed_y = pack[index]
        np.testing.assert_array_equal(packed_x[..., 28:], x)  # member 1's inputs
        np.testing.assert_array_equal(packed_y[1], y)
        assert not np.array_equal(packed_y[0], y)
    assert len(alone[5][1]) == 700 - 5 * 128
    for name, stream in (("alone", alone), ("pack", pack)):  # TensorFlow's pipeline: the same
        for index, batch in enumerate(stream.as_tf_dataset()):
            x, y = stream[index]
            np.testing.assert_array_equal(batch[0].numpy(), x, err_msg=name)
            np.testing.assert_array_equal(np.asarray(batch[1]), np.asarray(y), err_msg=name)
        assert index == stream.num_batches - 1


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
    # A packed seed is its separate run: the same sweep unpacked has the same run keys, so it
    # would skip all four (the sweep skips every job whose run key has a FINISHED run).
    unpacked = study_jobs("smoke", ["pack_max_units=0", "data.train_size=300", "data.val_size=100"])
    finished = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'")
    assert {run_key(job) for job in unpacked} == {r.data.tags.get("run_key") for r in finished} - {None}


def test_sweep_plans_packs_per_configuration_by_cost():
    def job(units, seed, pack_max_units=64, epochs=2):
        return {"data": {"name": "mnist"}, "model": {"cell": "lstm", "units": units},
                "train": {"epochs": epochs}, "seed": seed, "pack_max_units": pack_max_units}

    seeds = (4, 2, 0, 1, 3)
    jobs = [job(units, seed) for units in (4, 16, 64) for seed in seeds] + [job(4, 0, epochs=3)]
    packs = plan.plan_packs(jobs)
    # Small models are per-step overhead: five in one pack. At 16 units a pack's k² matmuls
    # start to count: pairs (the fifth seed alone). At 64 they dominate: no packs.
    assert list(packs.values()) == [[[0, 1, 2, 3, 4]], [[0, 1], [2, 3]]]
    assert plan.plan_packs([job(4, seed, pack_max_units=0) for seed in (0, 1)]) == {}
    assert plan.plan_packs([job(4, 0)]) == {}  # one seed: nothing to pack with
    # Under JAX a member costs a whole run (measured, plan.EPOCH_COST): no packs at any size.
    assert plan.plan_packs([{**job(units, seed), "backend": "jax"}
                             for units in (1, 4, 16) for seed in seeds]) == {}
    for units in (4, 16, 64):  # the plan is the cheapest way to cut the seeds, by the model
        planned = plan.split_seeds(list(range(5)), units, 28)
        cost = sum(plan.epoch_cost(units, len(pack), 28) for pack in planned)
        assert cost <= min(5 * plan.epoch_cost(units, 1, 28), plan.epoch_cost(units, 5, 28))
    assert plan.job_pack(job(16, 3), packs) == [2, 3]
    assert plan.job_pack(job(16, 4), packs) is None
    assert plan.job_pack(job(64, 4), packs) is None


def test_eta_cost_model():
    def job(units, seed):
        return {"data": {"name": "mnist", "timesteps": 28},
                "model": {"cell": "lstm", "units": units}, "train": {"epochs": 10}, "seed": seed}

    # One LSTM(128) epoch costs ~9× an LSTM(8) one on one thread here (23 s vs 2.5 s, measured).
    assert 8 < plan.job_cost(job(128, 0), None) / plan.job_cost(job(8, 0), None) < 10
    assert plan.job_cost(job(8, 1), [0, 1, 2]) == 0  # trained by the pack of seed 0
    assert plan.job_cost(job(8, 0), [0, 1, 2]) == pytest.approx(
        10 * plan.epoch_cost(8, 3, 28))
