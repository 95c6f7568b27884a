"""LAUNCHER=slurm against a real Slurm (`make slurm-up`: slurmctld, slurmd, slurmdbd with
MariaDB) and a real `make server` (on PostgreSQL where it can run): a sweep submitted as one job array, a submitter that dies
while the cluster finishes its work, a task cancelled with scancel and one killed by its time
limit — and the same command again training only what is missing."""

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import ROOT, postgres_here, server_folder, tracking_server


def slurm_ready() -> str | None:
    """None when a Slurm node is idle and accounting answers here; else why not."""
    if not shutil.which("sinfo"):
        return "no Slurm installed here; `make slurm-up` (as root) starts a one-node cluster"
    try:
        state = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                               timeout=20).stdout
        accounting = subprocess.run(["sacct", "-n", "-X"], capture_output=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "Slurm does not answer; run `make slurm-up`"
    if not re.search(r"idle|mixed|allocated", state):
        return f"no Slurm node is up (sinfo: {state.strip() or 'nothing'}); run `make slurm-up`"
    if accounting.returncode:
        return "Slurm has no accounting (sacct fails); `make slurm-up` sets it up"
    return None


pytestmark = [
    pytest.mark.slurm,
    pytest.mark.xdist_group("slurm"),  # one test at a time on the one-node cluster
    pytest.mark.slow,
    pytest.mark.skipif(slurm_ready() is not None, reason=str(slurm_ready())),
]

# Small jobs for a 2-core node: one CPU and 2 GB each, no GPU.
NODE = ["hydra.launcher.gpus_per_node=null", "hydra.launcher.cpus_per_task=1",
        "hydra.launcher.mem_gb=2"]
TINY = ["data.train_size=300", "data.val_size=100", "train.epochs=1"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The cluster's tracking server: on PostgreSQL where it can run here, as docs/cluster.md
    recommends for a cluster; else on SQLite."""
    db = "sqlite" if postgres_here() else "postgres"
    with server_folder(db, tmp_path_factory.mktemp("server")) as folder, \
            tracking_server(folder, db=db) as uri:
        yield uri


def sweep_command(folder: Path, *args: str) -> list[str]:
    """`make sweep STUDY=smoke LAUNCHER=slurm ARGS=...` with outputs under `folder`."""
    args = [*args, *NODE, f"hydra.sweep.dir={folder}/hydra", f"report.out={folder}/reports"]
    return ["make", "-s", "sweep", "STUDY=smoke", "LAUNCHER=slurm", f"ARGS={' '.join(args)}"]


def run(command, uri: str, timeout: int = 600):
    return subprocess.run(command, cwd=ROOT, env=dict(os.environ, MLFLOW_TRACKING_URI=uri),
                          capture_output=True, text=True, timeout=timeout)


def runs_of(uri: str, experiment: str) -> list:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    return client.search_runs([found.experiment_id], max_results=1000) if found else []


def children(uri: str, experiment: str) -> dict[str, object]:
    """The newest child run per run name."""
    runs = [r for r in runs_of(uri, experiment) if "mlflow.parentRunId" in r.data.tags]
    return {r.info.run_name: r for r in sorted(runs, key=lambda r: r.info.start_time)}


def wait_until(condition, seconds: float, what: str):
    deadline = time.time() + seconds
    while not (value := condition()):
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(1)
    return value


def array_tasks(folder: Path) -> list[str]:
    """The Slurm ids submitit created job folders for, e.g. ['12_0', '12_1']."""
    return sorted(path.name for path in (folder / "hydra" / ".submitit").glob("[0-9]*_[0-9]*"))


def in_queue(job: str) -> bool:
    listed = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True)
    return bool(listed.stdout.strip())


def test_submit_walk_away_and_pick_up(server, tmp_path):
    """One array; the submitter is killed (a logout) after the first run; the cluster finishes
    the rest alone; the same command again submits nothing and reports everything."""
    experiment = "smoke"  # the study's experiment, shared with the other tests on this server
    args = ["model.units=2,3", "seed=7", *TINY, "hydra.launcher.array_parallelism=1"]
    command = sweep_command(tmp_path / "first", *args)
    submitter = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ,
                                 MLFLOW_TRACKING_URI=server), stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL, start_new_session=True)
    names = {f"model.units={units} seed=7 {' '.join(TINY)}" for units in (2, 3)}
    wait_until(lambda: any(r.info.status == "FINISHED" for name, r in
                           children(server, experiment).items() if name in names),
               300, "the first run")
    os.killpg(submitter.pid, signal.SIGKILL)
    submitter.wait()
    tasks = array_tasks(tmp_path / "first")
    arrays = {task.split("_")[0] for task in tasks}
    assert len(tasks) == 2 and len(arrays) == 1, tasks  # one array of two tasks
    (array,) = arrays
    wait_until(lambda: not in_queue(array), 300, "the array to end")
    runs = {name: r for name, r in children(server, experiment).items() if name in names}
    assert {r.info.status for r in runs.values()} == {"FINISHED"}
    assert sorted(r.data.tags["slurm_job_id"] for r in runs.values()) == tasks
    assert {r.data.tags["slurm_cluster"] for r in runs.values()} == {"harness"}

    again = run(sweep_command(tmp_path / "second", *args), server)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "slurm: 0 of 2 jobs submitted" in again.stdout
    assert "0 finished, 0 failed, 0 killed, 2 skipped" in again.stdout
    assert (tmp_path / "second" / "reports" / "smoke" / "report.md").exists()
    parents = sorted((r for r in runs_of(server, experiment)
                      if r.data.tags.get("sweep") == "parent"
                      and "seed=7" in r.data.tags.get("command", "")),
                     key=lambda r: r.info.start_time)
    assert [p.info.status for p in parents] == ["KILLED", "FINISHED"]
    assert "process gone" in parents[0].data.tags["error"]


def test_scancel_mid_training_then_resume(server, tmp_path):
    """A task cancelled while it trains: its run is KILLED with the scheduler's word for it,
    the sweep says so and exits ≠ 0; the same command again trains only that one."""
    args = ["model.units=2,3", "seed=8", "data.train_size=2000", "data.val_size=100",
            "train.epochs=40"]
    command = sweep_command(tmp_path, *args)
    sweep = subprocess.Popen(command, cwd=ROOT, env=dict(os.environ, MLFLOW_TRACKING_URI=server),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name = "model.units=3 seed=8 data.train_size=2000 data.val_size=100 train.epochs=40"
    client = MlflowClient(server)

    def training():  # the run of units=3, once it has finished an epoch
        run = children(server, "smoke").get(name)
        if run and run.info.status == "RUNNING" and client.get_metric_history(
                run.info.run_id, "loss"):
            return run
        return None

    victim = wait_until(training, 300, "units=3 to train")
    subprocess.run(["scancel", victim.data.tags["slurm_job_id"]], check=True)
    stdout, stderr = sweep.communicate(timeout=300)
    assert sweep.returncode != 0, stdout[-3000:]
    assert "1 finished, 0 failed, 1 killed" in stdout, stdout[-3000:]
    assert "state CANCELLED" in stdout
    killed = client.get_run(victim.info.run_id)
    assert killed.info.status == "KILLED"
    assert killed.data.tags["error"].startswith(
        f"the scheduler ended Slurm job {victim.data.tags['slurm_job_id']}: CANCELLED")

    again = run(command, server)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "slurm: 1 of 2 jobs submitted" in again.stdout
    assert "1 finished, 0 failed, 0 killed, 1 skipped" in again.stdout
    assert children(server, "smoke")[name].info.status == "FINISHED"


def test_time_limit_kill_is_reported(server, tmp_path):
    """A task that outruns its time limit (1 min, 3,000 epochs; no early warning signal) is killed by the
    scheduler: its run is KILLED as TIMEOUT and the parent is closed."""
    args = ["model.units=6", "seed=9", "data.train_size=2000", "data.val_size=100",
            "train.epochs=3000", "hydra.launcher.timeout_min=1", "hydra.launcher.signal_delay_s=0"]
    result = run(sweep_command(tmp_path, *args), server)
    assert result.returncode != 0
    assert "state TIMEOUT" in result.stdout and "0 finished, 0 failed, 1 killed" in result.stdout
    run_ = children(server, "smoke")[
        "model.units=6 seed=9 data.train_size=2000 data.val_size=100 train.epochs=3000"]
    assert run_.info.status == "KILLED" and run_.data.tags["error"].endswith(": TIMEOUT")
    parent = MlflowClient(server).get_run(run_.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED"
    # The sweep reached its end: a report over the study's finished runs (those of the other
    # tests on this server), or, run alone, the reason there is none.
    assert ((tmp_path / "reports" / "smoke" / "report.md").exists()
            or "no report: " in result.stdout), result.stdout[-2000:]


def test_sbatch_refusal_is_one_line_and_the_parent_fails(tmp_path):
    """This node has no GPUs: an array asking for one is refused by sbatch. One line naming the
    setting, exit 2, the sweep's parent run FAILED, nothing trained."""
    args = [*TINY, "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2",
            "hydra.launcher.gpus_per_node=1", f"hydra.sweep.dir={tmp_path}/hydra",
            f"report.out={tmp_path}/reports"]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    result = run(["make", "-s", "sweep", "STUDY=smoke", "LAUNCHER=slurm",
                  f"ARGS={' '.join(args)}"], uri, timeout=300)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len([line for line in lines if not line.startswith("make")]) == 1, result.stderr
    assert lines[0].startswith("error: hydra.launcher: sbatch refused the job array: ")
    assert "hydra.launcher.gpus_per_node=null" in lines[0]
    assert [(r.info.run_name, r.info.status) for r in runs_of(uri, "smoke")] == [
        ("smoke sweep", "FAILED")]
