"""A worker's next job of the same shape reuses the compiled model (runner.compiled_model):
the run it gives is the run a fresh model gives. Parallel workers each hold CPUs of their own."""

import json
import os
import signal
import subprocess
import sys

import keras
import numpy as np
import pytest

from harness import data, runner


@pytest.fixture(scope="module")
def small():
    return data.mnist_splits(train_size=700, val_size=200)


def config_for(seed: int, units: int = 6) -> dict:
    return {
        "data": {"name": "mnist", "label_noise": 0.0}, "model": {"cell": "lstm", "units": units},
        "train": {"batch_size": 128, "epochs": 2, "learning_rate": 0.01},
        "seed": seed, "device": "cpu",
        "backend": keras.backend.backend(),  # test_backends.py runs this test on JAX too
    }


def test_next_seed_reuses_the_compiled_model_and_trains_as_a_fresh_one(small):
    trained = []

    class Keep(keras.callbacks.Callback):  # the trained model and its weights
        def on_train_end(self, logs=None):
            trained.append((self.model, self.model.get_weights()))

    def run(seed, units=6):
        return runner.train(config_for(seed, units), splits=small, callbacks=[Keep()])

    runner._last_compiled.clear()
    fresh = run(5)  # compiles a new model
    other = run(4)  # the next seed: the same model object, its own initial weights
    again = run(5)  # seed 5 once more, on the reused model
    (first, fresh_weights), (second, other_weights), (third, again_weights) = trained
    assert second is first and third is first
    assert not np.allclose(fresh_weights[0], other_weights[0])  # seed 4 is its own run
    for mine, reference in zip(again_weights, fresh_weights):
        np.testing.assert_allclose(mine, reference, rtol=0, atol=1e-6)
    for name in ("test_accuracy", "test_loss", "train_accuracy", "best_val_accuracy"):
        assert again["metrics"][name] == pytest.approx(fresh["metrics"][name], abs=1e-6)
    for curve in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(again["history"][curve], fresh["history"][curve], atol=1e-6)
    assert other["metrics"]["test_loss"] != fresh["metrics"]["test_loss"]
    run(5, units=7)  # another shape: a model of its own
    assert trained[-1][0] is not first


def test_early_stopping_restores_the_best_weights_and_reports_their_validation(small):
    """With train.patience the run stops once validation accuracy has not improved for that many
    epochs, and the weights tested are the best epoch's: the validation accuracy it reports is
    the restored model's own."""
    kept = []

    class Keep(keras.callbacks.Callback):
        def on_train_end(self, logs=None):
            kept.append(self.model)

    # a learning rate so large that validation accuracy soon stops improving
    config = {**config_for(0), "train": {"batch_size": 128, "epochs": 12, "learning_rate": 0.3,
                                         "patience": 1}}
    result = runner.train(config, splits=small, callbacks=[Keep()])
    metrics, history = result["metrics"], result["history"]
    assert metrics["epochs_trained"] == len(history["loss"]) < 12  # stopped early
    assert metrics["best_epoch"] == int(np.argmax(history["val_accuracy"]))
    assert metrics["epochs_trained"] - 1 - metrics["best_epoch"] == 1  # patience 1
    assert metrics["final_val_accuracy"] == metrics["best_val_accuracy"]
    restored = kept[0].predict(small.x_val, batch_size=runner.PREDICT_BATCH, verbose=0)
    accuracy, _ = runner.scores(restored, small.y_val)
    assert accuracy == pytest.approx(metrics["final_val_accuracy"], abs=1e-6)
    assert result["params"]["patience"] == 1
    # without it: every epoch, the last epoch's weights tested
    plain = runner.train(config_for(0), splits=small)
    assert plain["metrics"]["epochs_trained"] == 2 and "patience" not in plain["params"]
    assert plain["metrics"]["final_val_accuracy"] == plain["history"]["val_accuracy"][-1]
    assert "last_test_accuracy" not in plain["metrics"]


def test_early_stopping_also_scores_the_last_epochs_weights(small):
    """A patience that never runs out trains every epoch, as a run without one does: its
    last_* scores are that run's, its test accuracy the best validation epoch's weights'."""
    # a learning rate so large that validation accuracy peaks before the last epoch
    recipe = {"batch_size": 128, "epochs": 5, "learning_rate": 0.3}
    plain = runner.train({**config_for(0), "train": recipe}, splits=small)["metrics"]
    stopped = runner.train({**config_for(0), "train": {**recipe, "patience": 5}},
                           splits=small)["metrics"]
    assert stopped["epochs_trained"] == plain["epochs_trained"] == 5
    assert stopped["best_epoch"] < 4  # so the restored weights are another model
    assert stopped["last_test_accuracy"] == pytest.approx(plain["test_accuracy"], abs=1e-6)
    assert stopped["last_train_accuracy"] == pytest.approx(plain["train_accuracy"], abs=1e-6)
    assert stopped["last_fit_accuracy"] == pytest.approx(plain["fit_accuracy"], abs=1e-6)
    assert stopped["test_accuracy"] != plain["test_accuracy"]
    assert stopped["final_val_accuracy"] == stopped["best_val_accuracy"]


def test_run_key_leaves_out_patience_zero():
    """A store from before train.patience (train.updates) existed still finds its runs:
    patience 0 (every epoch) is the key of the run without the setting; any other value is a
    run of its own."""
    from harness.config import run_key

    before = config_for(0)
    for key, value in (("patience", 3), ("updates", 12)):
        assert run_key({**before, "train": {**before["train"], key: 0}}) == run_key(before)
        assert run_key({**before, "train": {**before["train"], key: value}}) != run_key(before)


def test_a_budget_in_updates_reads_the_batches_straight_on(small):
    """train.updates = U with train.epochs = E trains U batches, validated E times, reading
    the harness's batch order on across Keras's epochs: U = E whole passes is the plain run of
    E epochs, batch for batch; U not a whole number of passes trains U batches all the same."""
    passes = -(-len(small.y_train) // 128)  # 6 batches of 128 (the last one short) per pass
    plain = runner.train(config_for(0), splits=small)  # 2 epochs = 12 batches
    config = config_for(0)
    counted = runner.train({**config, "train": {**config["train"], "updates": 2 * passes}},
                           splits=small)
    for name in ("test_accuracy", "test_loss", "train_loss", "final_val_accuracy"):
        assert counted["metrics"][name] == pytest.approx(plain["metrics"][name], abs=1e-6)
    np.testing.assert_allclose(counted["history"]["val_loss"], plain["history"]["val_loss"],
                               atol=1e-6)
    assert counted["params"]["updates"] == 12 and "updates" not in plain["params"]
    steps = []

    class Count(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            steps.append(batch)

    odd = runner.train({**config, "train": {**config["train"], "epochs": 3, "updates": 15}},
                       splits=small, callbacks=[Count()])
    assert steps == [0, 1, 2, 3, 4] * 3 and odd["metrics"]["epochs_trained"] == 3
    assert odd["metrics"]["test_loss"] != plain["metrics"]["test_loss"]


# A worker as the sweep starts it: a thread already running (as JAX's, MLflow's), then its
# first job's pinning; it reports its CPUs and its thread's, then waits until told to end.
WORKER = """
import json, os, sys, threading
from harness import backend
started, done = threading.Event(), threading.Event()
def wait():
    started.set(); done.wait()
thread = threading.Thread(target=wait); thread.start(); started.wait()
cpus = backend.pin_to_free_cpus(1)
print(json.dumps([cpus, sorted(os.sched_getaffinity(0)),
                  sorted(os.sched_getaffinity(thread.native_id))]), flush=True)
sys.stdin.read(); done.set()
"""


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_parallel_workers_each_hold_a_cpu_of_their_own_until_they_end(tmp_path):
    cpus = sorted(os.sched_getaffinity(0))
    env = dict(os.environ, HARNESS_CPU_LOCKS=str(tmp_path))
    workers = []

    def start():
        worker = subprocess.Popen([sys.executable, "-c", WORKER], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        workers.append(worker)
        return worker, json.loads(worker.stdout.readline())

    try:
        held = []
        for _ in cpus:  # one worker per CPU: each bound, with its threads, to a CPU of its own
            _, (pinned, own, thread) = start()
            assert len(pinned) == 1 and own == pinned and thread == pinned
            held += pinned
        assert sorted(held) == cpus
        extra, (pinned, own, _) = start()  # none free: left to the OS scheduler
        assert pinned == [] and own == cpus
        first = workers[0]
        first.send_signal(signal.SIGKILL)  # a worker killed, as loky or the OOM killer may
        first.wait()
        _, (pinned, _, _) = start()  # its CPU is free again
        assert pinned == [held[0]]
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
