"""The README's commands as a user types them: in a terminal (a pseudo-terminal the test makes;
CI has none), where the sweep shows its live display, and where Ctrl-C reaches every process
of the sweep. And what a launcher sends a worker with each job: plain data only."""

import contextlib
import os
import re
import signal
import sqlite3

import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import run_in_terminal, screen_text

SHRUNK = "train.epochs=1 data.train_size=200"


def terminal_env(store) -> dict:
    return dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{store}", TERM="xterm-256color")


def outputs(store) -> str:
    return f"hydra.sweep.dir={store.parent}/hydra report.out={store.parent}/reports"


def runs_of(store, study="smoke"):
    client = MlflowClient(f"sqlite:///{store}")
    runs = client.search_runs([client.get_experiment_by_name(study).experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    return parent, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def cursor_shown(output: str) -> bool:
    """The live display hides the cursor while it draws; a usable terminal has it back."""
    return output.rfind("\x1b[?25h") > output.rfind("\x1b[?25l")


@pytest.mark.parametrize("jobs,launcher,seeds", [
    (2, "", (0, 1)),   # the parallel (joblib) launcher, as `make sweep` on 2 cores (a worker
                       # takes a second job)
    (2, "local", (0,)),  # submitit's local executor, a process per job
    (1, "", (0,)),     # the jobs in the sweep's own process, its stdout sent to their logs
])
def test_make_sweep_in_a_terminal(store, jobs, launcher, seeds):
    """`make sweep STUDY=smoke` (shrunk) typed in a terminal: the live display (a line per
    finished run, the runs bar, no Keras epoch lines), every run FINISHED, the Answer, exit 0."""
    runs = 2 * len(seeds)
    command = ["make", "sweep", "STUDY=smoke", f"JOBS={jobs}", f"LAUNCHER={launcher}",
               f"ARGS={SHRUNK} seed={','.join(map(str, seeds))} {outputs(store)}"]
    code, output = run_in_terminal(command, env=terminal_env(store))
    screen = screen_text(output)
    assert code == 0, screen[-3000:]
    for units in (4, 16):
        for seed in seeds:
            assert re.search(rf"model.units={units} seed={seed}[^:\n]*: test_accuracy 0\.\d{{4}}",
                             screen)
    assert re.search(rf"runs +━+ {runs}/{runs}", screen)
    assert "Traceback" not in screen and "Epoch 1/" not in screen and cursor_shown(output)
    assert "report: " in screen.split("browse (after `make ui`): http://127.0.0.1:")[1]
    parent, children = runs_of(store)
    assert [r.info.status for r in parent] == ["FINISHED"]
    assert sorted(r.info.status for r in children) == ["FINISHED"] * runs
    if launcher == "local":  # the same command again: everything finished, nothing trained
        code, output = run_in_terminal(command, env=terminal_env(store))
        assert code == 0 and f"{runs} already finished" in screen_text(output)
        assert f"0 finished, 0 failed, 0 killed, {runs} skipped" in screen_text(output)


def test_ctrl_c_in_a_terminal(store):
    """Ctrl-C once a run has finished: every process of the sweep gets it (one process group,
    as in a shell); the finished runs stay, the others and the parent are KILLED, nothing is
    left RUNNING; one line says so, no traceback, the cursor is back; exit ≠ 0. (The same command
    resumes a sweep: test_make_sweep_in_a_terminal[2-local-…], test_kill_then_resume.)"""
    # 128 units train for many seconds after the 4-unit runs have finished: Ctrl-C finds them
    command = ["make", "sweep", "STUDY=smoke", "JOBS=2", f"ARGS=model.units=4,128 {outputs(store)}"]
    def training_128_units() -> bool:  # a busy machine may take seconds to start the next job
        with contextlib.suppress(sqlite3.Error), sqlite3.connect(store) as db:
            return bool(db.execute(
                "select count(*) from runs join params using (run_uuid) where status = 'RUNNING'"
                " and params.key = 'units' and params.value = '128'").fetchone()[0])
        return False

    code, output = run_in_terminal(
        command, env=terminal_env(store),
        interrupt_after=r"seed=\d: test_accuracy", interrupt_when=training_128_units)
    screen = screen_text(output)
    assert code != 0, screen[-3000:]
    assert re.search(r"sweep smoke: interrupted — \d runs finished \(kept\), \d marked KILLED",
                     screen)
    assert "Traceback" not in screen and cursor_shown(output)
    parent, children = runs_of(store)
    assert [r.info.status for r in parent] == ["KILLED"]
    statuses = [r.info.status for r in children]
    assert "RUNNING" not in statuses and "FINISHED" in statuses and "KILLED" in statuses


def test_make_report_explain_help_in_a_terminal(smoke, tmp_path):
    """The README's other commands, once each, in a terminal; make explain's shapes are
    Keras's."""
    _, _, _, store = smoke
    env = terminal_env(store)
    # the target smoke_report used: the parent run's description (the browser test reads it)
    # is rewritten with the same report
    code, output = run_in_terminal(["make", "report", "STUDY=smoke", "TARGET=0.4",
                                    f"OUT={tmp_path}"], env=env)
    assert code == 0 and f"report: {tmp_path}/smoke/report.md" in screen_text(output), output
    code, output = run_in_terminal(["make", "explain", "ARGS=data=motifs model.units=64"], env=env)
    screen = screen_text(output)
    assert code == 0, screen
    assert "kernel (12+64, 4·64) = (76, 256)" in screen and "= 19,712" in screen
    assert "lstm/lstm_cell/recurrent_kernel  (64, 256)" in screen
    import keras  # the shapes make explain states are Keras's own

    sequence, h, c = keras.layers.LSTM(64, return_sequences=True, return_state=True)(
        keras.Input((820, 12)))
    last = keras.layers.LSTM(64)(keras.Input((820, 12)))
    assert tuple(last.shape) == (None, 64) and tuple(sequence.shape) == (None, 820, 64)
    assert f"return_sequences=False  (batch, units)            = {tuple(last.shape)}" in screen
    assert f"return_sequences=True   (batch, timesteps, units) = {tuple(sequence.shape)}" in screen
    assert f"final states h {tuple(h.shape)}, c {tuple(c.shape)}" in screen
    code, output = run_in_terminal(["make", "help"], env=env)
    assert code == 0 and "make sweep" in output and "make test" in output


@pytest.mark.parametrize("launcher", ["parallel", "local", "slurm"])
def test_a_job_takes_plain_data_to_its_worker(launcher, tmp_path, monkeypatch):
    """What each launcher pickles and sends with a job (joblib: the hydra context, config and
    task function; submitit: the launcher itself), taken while the sweep's callback holds
    what lives only in the submitting process — its live display with its lock and thread,
    the store, the parent run — pickles, and carries none of that callback's state."""
    import cloudpickle
    from hydra import compose, initialize_config_dir
    from hydra._internal.callbacks import Callbacks
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton
    from hydra.types import HydraContext

    from harness import console, study, sweep

    environ = dict(os.environ)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    monkeypatch.setattr(console, "live_wanted", lambda: True)  # as in a terminal
    overrides = [f"hydra.searchpath=[file://{study.CONF}]", f"hydra/launcher={launcher}",
                 f"report.out={tmp_path}", "jobs=2"]
    try:
        with initialize_config_dir(config_dir=str(study.EXPERIMENTS), version_base="1.3"):
            config = compose("smoke", overrides=overrides, return_hydra_config=True)
            HydraConfig.instance().set_config(config)
            callbacks = Callbacks(config)
            callback = next(c for c in callbacks.callbacks if isinstance(c, sweep.SweepCallback))
            callback.on_multirun_start(config)
            submitting = sweep._submitting
            assert submitting.live is not None and submitting.parent
            try:
                context = HydraContext(
                    config_loader=GlobalHydra.instance().config_loader(), callbacks=callbacks)
                launcher_object = Plugins.instance().instantiate_launcher(
                    hydra_context=context, task_function=sweep.job, config=config)
                payload = cloudpickle.dumps((launcher_object, Singleton.get_state()))
            finally:
                submitting.stop_live()
                sweep._submitting = None
    finally:
        GlobalHydra.instance().clear()
        os.environ.clear()
        os.environ.update(environ)
    received, _ = cloudpickle.loads(payload)
    sent = [c for c in received.hydra_context.callbacks.callbacks
            if isinstance(c, sweep.SweepCallback)]
    assert len(sent) == 1 and vars(sent[0]) == {}


DROPPED = """
import os, signal, sys, time
from harness import sweep

sys.unraisablehook = sweep.raise_dropped_interrupt  # as sweep.main installs it

class Freed:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.5)  # the KeyboardInterrupt is raised here, inside the finalizer

try:
    Freed()  # freed at once
    time.sleep(10)
    print("ran on")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_ctrl_c_inside_a_finalizer_still_interrupts():
    """A KeyboardInterrupt raised while a finalizer runs (as when a job's result is freed in
    the submitting process) is dropped by Python; the sweep raises it again, silently."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    result = subprocess.run([sys.executable, "-c", DROPPED], cwd=ROOT, capture_output=True,
                            text=True, timeout=120,  # Ctrl-C not ignored, as in a terminal
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert result.stdout.strip() == "interrupted", result.stdout + result.stderr
    assert "Exception ignored" not in result.stderr and "Traceback" not in result.stderr
