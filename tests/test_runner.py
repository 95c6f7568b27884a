"""A worker's next job of the same shape reuses the compiled model (runner.compiled_model):
the run it gives is the run a fresh model gives."""

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
