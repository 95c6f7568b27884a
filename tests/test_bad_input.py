"""Bad input: one line naming the key and what is allowed, exit ≠ 0, nothing trained or recorded.
Each case runs the real entry point in a subprocess."""

import sqlite3

import pytest

from tests.conftest import run_sweep

CASES = [
    (["model.units=0"], "model.units"),
    (["model.units=-4"], "model.units"),
    (["model.units=2.5"], "model.units"),
    (["model.units=4,eight"], "model.units"),
    (["train.batch_size=0"], "train.batch_size"),
    (["train.epochs=0"], "train.epochs"),
    (["train.learning_rate=0"], "train.learning_rate"),
    (["train.learning_rate=-0.1"], "train.learning_rate"),
    (["data.timesteps=30"], "data.timesteps"),
    (["data.label_noise=1.5"], "data.label_noise"),
    (["data.train_size=60000"], "data.train_size"),
    (["data.train_size=0"], "data.train_size"),
    (["device=tpu"], "device"),
    (["backend=mxnet"], "backend"),
    (["backend=jax,tensorflow"], "backend"),
    (["report.analysis=nonsense"], "report.analysis"),
    (["report.target=1.5"], "report.target"),
    (["report.out=/dev/null/reports"], "report.out"),
    (["data=cifar"], "data"),
    (["model=transformer"], "model"),
    (["model=lstm,transformer"], "model"),
    (["model.unitz=3"], "model.unitz"),
    (["model.unitz=3,4"], "model.unitz"),
    (["data=motifs", "data.n_motifs=3"], "data.n_motifs"),
    (["epochs=3"], "epochs"),
]


def finished_runs(store) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        return db.execute("select count(*) from runs where status = 'FINISHED'").fetchone()[0]


@pytest.mark.parametrize("overrides,key", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_rejected_before_training(overrides, key, store):
    result = run_sweep("smoke", *overrides, store=store)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {key}"), lines[0]
    assert "Epoch" not in result.stdout  # no training started
    assert finished_runs(store) == 0


def test_unknown_study(store):
    result = run_sweep("no_such_study", store=store)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        result.stderr.strip()
    ] and result.stderr.startswith("error: STUDY: unknown study 'no_such_study'; allowed:")
    assert "smoke" in result.stderr and "units_mnist" in result.stderr


def test_gpu_without_gpu(store):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    result = run_sweep("smoke", "device=gpu", store=store)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: device: gpu")
    assert finished_runs(store) == 0


def test_unknown_key_names_the_keys_allowed_there(store):
    result = run_sweep("smoke", "model.unitz=3", store=store)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        "error: model.unitz: unknown key; allowed in model: cell, units "
        "(a new key: +model.unitz=...)")
