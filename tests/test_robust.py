"""Sweeps that survive: skip finished runs, resume after kill -9, isolate a failing job, run in
parallel on one SQLite store, log through a tracking server, launch through submitit. Real
processes, real SQLite, tiny data."""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, free_port, run_sweep, tracking_server

pytestmark = pytest.mark.slow  # real sweeps, servers and processes

TINY = ["data.train_size=300", "data.val_size=100", "train.epochs=1"]


def children(uri: str, study: str = "smoke"):
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    return [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def finished_count(store) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(store, timeout=1) as db:
            return db.execute(
                "select count(*) from runs r join tags t on r.run_uuid = t.run_uuid "
                "where t.key = 'run_key' and r.status = 'FINISHED'"
            ).fetchone()[0]
    except sqlite3.OperationalError:  # tables not created yet
        return 0


def test_kill_then_resume(store):
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{store}")
    command = [sys.executable, "-m", "harness", "smoke", "model.units=2,3,4", "seed=0", *TINY,
               f"hydra.sweep.dir={store.parent}/hydra", f"report.out={store.parent}/reports"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while finished_count(store) < 1:
        assert process.poll() is None, "the sweep ended before it could be killed"
        assert time.time() < deadline
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = {r.info.run_id for r in children(f"sqlite:///{store}") if r.info.status == "FINISHED"}
    assert 1 <= len(first) < 3

    result = run_sweep("smoke", "model.units=2,3,4", "seed=0", *TINY, store=store)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("skipped, finished as run") == len(first)
    runs = children(f"sqlite:///{store}")
    finished = [r for r in runs if r.info.status == "FINISHED"]
    per_key = Counter(r.data.tags["run_key"] for r in finished)
    assert len(per_key) == 3 and set(per_key.values()) == {1}  # exactly one FINISHED per key
    assert first <= {r.info.run_id for r in finished}  # finished jobs were not retrained
    # The job killed midway (if it had started its run) never shows as FINISHED.
    assert all(r.info.status in ("FINISHED", "KILLED") for r in runs)

    forced = run_sweep("smoke", "model.units=2", "seed=0", *TINY, "force=true", store=store)
    assert forced.returncode == 0 and "1 finished, 0 failed, 0 killed, 0 skipped" in forced.stdout


def test_failing_job_is_isolated_among_four_parallel_jobs(store):
    # A learning rate of 1e38 overflows Adam's first step: the loss becomes inf or nan (which
    # one depends on the batches), the job fails; the three others, in processes of their own
    # on the same SQLite store, finish.
    result = run_sweep("smoke", "model.units=4", "seed=0",
                       "train.learning_rate=0.01,0.02,0.03,1e38", *TINY, "jobs=4",
                       "hydra/launcher=parallel", store=store)
    assert result.returncode != 0
    assert "3 finished, 1 failed" in result.stdout
    assert "database is locked" not in result.stdout + result.stderr
    runs = children(f"sqlite:///{store}")
    status = Counter(r.info.status for r in runs)
    assert status == {"FINISHED": 3, "FAILED": 1}
    assert len({r.data.tags["pid"] for r in runs}) > 1  # really in several processes
    failed = next(r for r in runs if r.info.status == "FAILED")
    assert re.search(r"training loss became (inf|nan) in epoch 0; lower train.learning_rate",
                     failed.data.tags["error"])
    assert failed.data.params["learning_rate"] == "1e+38"
    client = MlflowClient(f"sqlite:///{store}")
    assert "traceback.txt" in [a.path for a in client.list_artifacts(failed.info.run_id)]
    assert len([e for e in client.search_experiments() if e.name == "smoke"]) == 1


# LAUNCHER=local and its resume run in a terminal: tests/test_terminal.py.


def test_sweep_through_tracking_server(tmp_path):
    with tracking_server(tmp_path / "server") as uri:
        env = dict(os.environ, MLFLOW_TRACKING_URI=uri)
        result = subprocess.run(
            [sys.executable, "-m", "harness", "smoke", "model.units=2", "seed=0", *TINY,
             f"hydra.sweep.dir={tmp_path}/hydra", f"report.out={tmp_path}/reports"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        # The report is written through the server too, at the end of the sweep.
        assert (tmp_path / "reports" / "smoke" / "report.md").exists()
        runs = children(uri)
        assert len(runs) == 1 and runs[0].info.status == "FINISHED"
        assert (tmp_path / "server" / "mlflow.db").exists()


def test_unreachable_tracking_server_fails_fast(store):
    port = free_port()  # nothing listens there
    result = run_sweep("smoke", store=store,
                       extra_env={"MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"})
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1].startswith("error: MLFLOW_TRACKING_URI:")
    assert "Epoch" not in result.stdout


@pytest.mark.parametrize(
    "variable,value",
    [("JOBS", "0"), ("JOBS", "two"), ("FORCE", "yes"), ("LAUNCHER", "kubernetes"),
     ("PORT", "http"), ("PORT", "70000"), ("DB", "mysql"), ("PG_PORT", "x"), ("UI_PORT", "http"),
     ("OUT", "/dev/null/reports"), ("TARGET", "1.5")],
)
def test_bad_make_variables(variable, value):
    target = {"PORT": "server", "DB": "server", "PG_PORT": "server", "UI_PORT": "ui",
              "OUT": "report", "TARGET": "report"}.get(variable, "sweep")
    result = subprocess.run(["make", "-s", target, "STUDY=smoke", f"{variable}={value}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and lines[0].startswith(f"error: {variable}:"), result.stderr
