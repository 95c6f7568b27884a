"""Bad input: one line naming the key and what is allowed, before any training. The checks run
in-process, as the sweep runs them on every job (compose.study_jobs); a few end-to-end cases
run the real entry point: exit ≠ 0, one line on stderr, nothing trained or recorded."""

import re
import sqlite3
from pathlib import Path

import pytest

from harness.compose import study_jobs
from harness.config import ConfigError
from harness.study import EXPERIMENTS, choices
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
    (["report.target='0.9 of chance'"], "report.target"),
    (["report.weights=final"], "report.weights"),
    (["report.target='0.9 of bayes'"], "report.target"),  # MNIST has no known ceiling
    (["report.select=[train.momentum]"], "report.select"),
    (["train.patience=-1"], "train.patience"),
    (["train.updates=-5"], "train.updates"),
    (["train.updates=10", "train.epochs=2", "train.patience=1"], "train.updates"),
    (["train.updates=7", "train.epochs=2"], "train.updates"),  # not a multiple of the validations
    (["report.race_seeds=-1"], "report.race_seeds"),
    (["report.select_on=test_accuracy"], "report.select_on"),  # test never chooses
    (["data.random_inputs=maybe"], "data.random_inputs"),
    (["report.race_seeds=1"], "report.race_seeds"),  # smoke selects nothing: nothing to race
    (["report.race_seeds=2", "report.select=[train.learning_rate]"], "report.race_seeds"),  # 2 seeds: none left
    (["data=cifar"], "data"),
    (["model=transformer"], "model"),
    (["model=lstm,transformer"], "model"),
    (["shape=steps28_units99"], "shape"),
    (["budget=tuned,huge"], "budget"),
    (["model.unitz=3,4"], "model.unitz"),
    (["data=motifs", "data.n_motifs=3"], "data.n_motifs"),
    (["epochs=3"], "epochs"),
]


@pytest.mark.parametrize("overrides,key", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_rejected_with_one_line_naming_the_key(overrides, key):
    with pytest.raises(ConfigError) as error:
        study_jobs("smoke", overrides)
    message = str(error.value)
    assert "\n" not in message and message.startswith(f"{key}:"), message


def test_a_good_sweep_passes_the_checks():
    jobs = study_jobs("smoke", ["model.units=4,8", "seed=3"])
    assert [(job["model"]["units"], job["seed"]) for job in jobs] == [(4, 3), (8, 3)]


@pytest.mark.parametrize("study", choices(EXPERIMENTS))
def test_every_study_composes_and_passes_the_checks(study):
    """What the sweep checks before any training, for every committed study as it stands (a
    swept config group, budget=..., included)."""
    jobs = study_jobs(study, [])
    assert jobs and all(job["study"] == study for job in jobs)


def test_unknown_key_names_the_keys_allowed_there():
    with pytest.raises(ConfigError, match=re.escape(
            "model.unitz: unknown key; allowed in model: cell, units (a new key: +model.unitz=...)")):
        study_jobs("smoke", ["model.unitz=3"])


def finished_runs(store) -> int:
    if not store.exists():
        return 0
    with sqlite3.connect(store) as db:
        return db.execute("select count(*) from runs where status = 'FINISHED'").fetchone()[0]


@pytest.mark.parametrize("overrides,key,report_out", [
    (["model.units=0"], "model.units", None),             # a job's config
    (["model=lstm,transformer"], "model", None),          # a name, before Hydra starts
    ([], "report.out", Path("/dev/null/reports")),        # the report's folder, checked at start
], ids=["value", "name", "folder"])
def test_the_entry_point_stops_before_training(overrides, key, report_out, store):
    result = run_sweep("smoke", *overrides, store=store, report_out=report_out)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {key}"), result.stderr
    assert "Epoch" not in result.stdout  # no training started
    assert finished_runs(store) == 0


def test_unknown_study(store):
    result = run_sweep("no_such_study", store=store)
    assert result.returncode == 2
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


def test_bad_tracking_patience(store):
    result = run_sweep("smoke", store=store, extra_env={"HARNESS_TRACKING_PATIENCE_S": "soon"})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: HARNESS_TRACKING_PATIENCE_S: 'soon' is not allowed; use seconds ≥ 0"]
    assert finished_runs(store) == 0
