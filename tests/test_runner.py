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
