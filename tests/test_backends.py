"""Keras 3 backends: the same sweep on JAX (on the CPU here; the GPU is measured on a device,
not asserted): runs FINISHED with the `backend` tag and exact parameter counts, compiled steps
cached, packing and model reuse exact."""

import os
import subprocess
import sys

import pytest
from mlflow.tracking import MlflowClient

from harness import models
from tests.conftest import ROOT, run_sweep

TINY = ["data.train_size=300", "data.val_size=100", "train.epochs=1"]


def test_smoke_sweep_on_jax(store, tmp_path):
    cache = tmp_path / "jax-cache"
    result = run_sweep("smoke", "backend=jax", "model.units=2,3", "seed=0,1",
                       "pack_max_units=2", *TINY, store=store,
                       extra_env={"JAX_COMPILATION_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("smoke")
    runs = [r for r in client.search_runs([experiment.experiment_id])
            if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 4 and {r.info.status for r in runs} == {"FINISHED"}
    assert {r.data.tags["backend"] for r in runs} == {"jax"}
    assert {r.data.tags["kernel"] for r in runs} == {"keras"}  # the fused kernel is TensorFlow's
    for run in runs:
        units = int(run.data.params["units"])
        assert run.data.metrics["param_count"] == models.param_count("lstm", units, 28, 10)
        # Under JAX a packed seed costs a whole run (plan.EPOCH_COST): every seed alone.
        assert "packed_with" not in run.data.tags
    # The jobs compiled their steps into JAX's compilation cache, for the next seeds and sweeps.
    assert len(list(cache.iterdir())) > 5


# The exactness checks of test_packing.py and test_runner.py, called as plain functions in a
# process whose Keras runs on JAX (Keras loads one backend per process).
ON_JAX = """
import keras
from harness import data
from tests import test_packing, test_runner
assert keras.backend.backend() == "jax"
small = data.mnist_splits(train_size=700, val_size=200)
test_packing.test_packed_seed_is_its_separate_run(small, "lstm")  # all three cells: on TensorFlow
print("packed lstm equals its separate runs", flush=True)
test_runner.test_next_seed_reuses_the_compiled_model_and_trains_as_a_fresh_one(small)
print("reused model equals a fresh one", flush=True)
"""


@pytest.mark.slow
def test_packing_and_model_reuse_are_exact_on_jax():
    """Packed members equal their separate runs, and a reused compiled model trains as a fresh
    one, on JAX as on TensorFlow."""
    result = subprocess.run([sys.executable, "-c", ON_JAX], cwd=ROOT, capture_output=True,
                            text=True, timeout=900, env=dict(os.environ, KERAS_BACKEND="jax"))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    checked = [line for line in result.stdout.splitlines() if line.startswith(("packed", "reused"))]
    assert checked == ["packed lstm equals its separate runs", "reused model equals a fresh one"]
