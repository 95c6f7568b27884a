"""The sweep: `python -m harness STUDY [--jobs N] [--force 1] [--launcher L] [overrides]` runs
experiments/STUDY.yaml as a Hydra multirun. Before any training every job's config is checked,
stale runs are closed and the parent MLflow run is created; each job (harness/job.py) is a
nested child run; at the end a table, the study's Answer and the exit code tell how it went."""

from __future__ import annotations

import _thread
import argparse
import os
import shlex
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from harness import backend, console, tracking
from harness.compose import check_names, composed_jobs, job_overrides
from harness.config import ConfigError, check_sweep, run_key
from harness.console import fail
from harness.job import job
from harness.plan import (SweepState, idle_jobs, job_cost, job_pack, plan_packs,
                          race_candidates, race_plan, selected_setting)
from harness.selection import race_choice
from harness.study import EXPERIMENTS, choices, question_text


class Sweep:
    """A sweep in the process that submits it: checks every job before any training, plans the
    packs, opens the parent run and the live display, and at the end closes them, prints the
    outcome and writes the report. Everything here lives in this process only."""

    def __init__(self):
        self.live, self.race = None, None

    def start(self, config: DictConfig) -> None:
        jobs = job_overrides(config)
        try:
            configs = composed_jobs(config, jobs)
            check_sweep(configs)
            self.race = race_plan(configs, jobs)
        except ConfigError as error:
            fail(str(error))
        try:
            backend.use(configs[0]["backend"])  # before anything loads Keras; workers inherit it
            if any(job["device"] == "gpu" for job in configs):
                # Keras reads its backend when first imported: only after backend.use
                from harness.runner import select_device

                select_device("gpu")
        except ConfigError as error:
            fail(str(error))
        try:  # the report is written after the last job: its folder must be usable now
            Path(config.report.out).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            fail(f"report.out: cannot create {config.report.out!r} ({error.strerror}); "
                 "use a writable folder")
        packs = plan_packs(configs)
        runs = [run_key(job) for job in configs]
        keys = set(runs)
        study = config.study
        try:
            uri = tracking.connect(config.tracking.uri)
            tracking.check_reachable(uri)
            tracking.experiment_id(study, uri)  # created once, before any parallel job
            tracking.describe_experiment(uri, study, question_text(study))
            tracking.use_wal(uri)
            stale = tracking.close_stale_runs(uri, study)
            finished = set() if config.force else tracking.finished_keys(uri, study) & keys
            overrides = [shlex.quote(o) for o in config.hydra.overrides.task]
            command = " ".join(["make sweep", f"STUDY={study}", *overrides])
            parent = tracking.start_parent(study, uri, jobs=len(jobs), command=command)
        except tracking.TrackingError as error:
            fail(str(error))
        costs = [0.0 if key in finished else job_cost(job, job_pack(job, packs))
                 for job, key in zip(configs, runs)]
        self.uri, self.parent, self.study = uri, parent, study
        self.configs, self.runs, self.finished = configs, runs, finished
        self.costs = costs  # by the sweep's grid
        if self.race:  # the first seeds of every candidate first; the winners' rest later
            self.first = sorted(n for group in self.race for c in group for n in c["first"])
            # each later job is the winner's, unknown yet: a candidate's share of its cost
            rest = [float(np.mean([costs[c["rest"][k]] for c in group]))
                    for group in self.race for k in range(len(group[0]["rest"]))]
            live_costs = {runs[n]: costs[n] for n in self.first}
            live_costs |= {runs[n]: costs[n] / len(group)
                           for group in self.race for c in group for n in c["rest"]}
            costs = [costs[n] for n in self.first] + rest
            idle = [i for i, n in enumerate(self.first) if runs[n] in finished]
            self.total, self.skipped = len(costs), len(idle)
        else:
            live_costs = dict(zip(runs, costs))
            idle = idle_jobs(configs, runs, finished, packs)
            self.total, self.skipped = len(runs), sum(key in finished for key in runs)
        self.state = SweepState(parent=parent, total=self.total, packs=packs, costs=costs,
                                start=time.time(), idle=idle, submitter=os.getpid())
        self.state.publish()  # every job inherits this process's environment
        skipped = self.skipped
        packed = [pack for group in packs.values() for pack in group]
        print(
            f"sweep {study}: {self.total if self.race else len(jobs)} jobs, {self.total} runs"
            + (self.race_text() if self.race else "")
            + (f" ({sum(map(len, packed))} of them in {len(packed)} packs)" if packed else "")
            + f", {skipped} already finished (skipped"
            f"{'' if config.force else '; FORCE=1 re-runs them'}), store {uri}, parent run {parent}"
            + (f"; marked {stale} stale RUNNING runs KILLED" if stale else ""),
            flush=True,
        )
        if console.live_wanted():  # a terminal: a live display; else plain lines per job
            self.live = console.LiveProgress(
                uri, study, parent, total=self.total, skipped=skipped,
                costs=live_costs, start=self.state.start,
            ).__enter__()

    def race_text(self) -> str:
        """How the sweep races, for its first line."""
        seeds = sorted({config["seed"] for config in self.configs})
        report = self.configs[0]["report"]
        race = report["race_seeds"]
        return (f" ({', '.join(report['select'])} race: {sum(map(len, self.race))} candidates "
                f"of {len(self.race)} configurations train seed{'s' if race > 1 else ''} "
                f"{', '.join(map(str, seeds[:race]))}, then each configuration's best on "
                f"{report.get('select_on', 'final_val_accuracy')} trains seeds "
                f"{', '.join(map(str, seeds[race:]))})")

    def second_rung(self) -> list[int]:
        """After the race's first seeds: each configuration's winner (race_choice on the
        tracking store's scores, the rule the report chooses by) and the numbers, in the
        sweep's grid, of its jobs on the other seeds, in launch order. The counts, the costs,
        the live display and what the jobs are told (the idle jobs' numbers for a launcher that
        skips them) follow."""
        report = self.configs[0]["report"]
        metric = report.get("select_on", "final_val_accuracy")
        scores = tracking.finished_metric(self.uri, self.study, metric)
        launch, chosen = [], []
        for group in self.race:
            winner = race_choice(race_candidates(group, self.configs, self.runs, scores),
                                 report["race_seeds"])
            if winner is None:  # no candidate finished its first seeds: nothing to go on with
                self.total -= len(group[0]["rest"])
                continue
            launch += group[winner]["rest"]
            config = self.configs[group[winner]["first"][0]]
            chosen.append(" ".join(f"{key.split('.')[1]}={value}" for key, value in
                                   zip(config["report"]["select"], selected_setting(config))))
        done = [i for i, n in enumerate(launch) if self.runs[n] in self.finished]
        self.skipped += len(done)
        self.state.idle += [len(self.first) + i for i in done]
        self.state.total = self.total
        self.state.costs = self.state.costs[:len(self.first)] + [self.costs[n] for n in launch]
        self.state.publish()
        if self.live:
            costs = {self.runs[n]: self.costs[n] for n in [*self.first, *launch]}
            self.live.rescale(total=self.total, skipped=self.skipped, costs=costs)
        counts = ", ".join(f"{setting} for {chosen.count(setting)}"
                           for setting in dict.fromkeys(chosen))
        line = (f"race decided on {metric}: {counts or 'no configuration finished its first seeds'}"
                f"; {len(launch)} runs on the other seeds follow")
        if self.live:
            self.live.progress.console.print(line, markup=False, highlight=False)
        else:
            print(line, flush=True)
        return launch

    def end(self, config: DictConfig) -> None:
        self.stop_live()
        study = config.study
        # Jobs the scheduler (or a crash) ended mid-training left their runs RUNNING.
        tracking.close_stale_runs(self.uri, study, self.parent)
        runs = tracking.child_runs(self.uri, study, self.parent)
        counts = {"finished": 0, "failed": 0, "killed": 0, "running": 0}
        rows = []
        for run in sorted(runs, key=lambda r: r.info.start_time):
            status = run.info.status.lower()
            counts[status] = counts.get(status, 0) + 1
            accuracy = run.data.metrics.get("test_accuracy")
            outcome = (
                f"test_accuracy {accuracy:.4f}"
                if accuracy is not None
                else run.data.tags.get("error", "")
            )
            rows.append(f"  {status:<8}  {run.info.run_name:<40} {outcome}")
        missing = self.total - self.skipped - len(runs)
        if counts["failed"]:
            status = "FAILED"
        elif missing or counts["killed"] or counts["running"]:
            status = "KILLED"
        else:
            status = "FINISHED"
        tracking.finish_parent(self.uri, self.parent, status, {**counts, "skipped": self.skipped})
        elapsed = time.time() - self.state.start
        print(f"\nsweep {study}: {status.lower()} in {elapsed / 60:.1f} min — "
              f"{counts['finished']} finished, {counts['failed']} failed, "
              f"{counts['killed']} killed, {self.skipped} skipped, {missing} not run", flush=True)
        print("\n".join(rows), flush=True)
        print(tracking.browse_text(self.uri, self.study, self.parent), flush=True)
        self.answer(config)
        if status != "FINISHED":
            sys.exit(1)

    def stop_live(self) -> None:
        """End the live display (its thread; the terminal's cursor shown again)."""
        live, self.live = self.live, None
        if live:
            live.__exit__(None, None, None)

    def interrupted(self) -> None:
        """Ctrl-C: the processes this one started for jobs (parallel workers, submitit's local
        jobs: they leave Ctrl-C to it) are ended, what is still RUNNING under this parent is
        marked KILLED, and so is the parent. Finished runs stay: the same command resumes the
        sweep. Exit 130, as a shell does."""
        self.stop_live()
        workers = psutil.Process().children(recursive=True)
        for worker in workers:
            worker.terminate()
        _, alive = psutil.wait_procs(workers, timeout=10)
        for worker in alive:
            worker.kill()
        if not hasattr(self, "parent"):  # interrupted before the parent run existed
            print("\nsweep interrupted before any job started", file=sys.stderr, flush=True)
            sys.exit(130)
        client = tracking.MlflowClient(self.uri)
        runs = tracking.child_runs(self.uri, self.study, self.parent)
        for run in runs:
            if run.info.status == "RUNNING":
                client.set_tag(run.info.run_id, "error", "interrupted (Ctrl-C)")
                client.set_terminated(run.info.run_id, "KILLED")
        finished = sum(run.info.status == "FINISHED" for run in runs)
        killed = sum(run.info.status in ("RUNNING", "KILLED") for run in runs)
        tracking.finish_parent(self.uri, self.parent, "KILLED",
                               {"finished": finished, "killed": killed, "skipped": self.skipped})
        print(f"\nsweep {self.study}: interrupted — {finished} runs finished (kept), {killed} "
              f"marked KILLED; the same command resumes the sweep", file=sys.stderr, flush=True)
        sys.exit(130)

    def answer(self, config: DictConfig) -> None:
        """Write the study's report as `make report` does and end with its Answer and path."""
        # pandas, scipy and matplotlib, at the end and here only: the workers import this
        # module with the callback they receive
        from harness import report

        settings = OmegaConf.to_container(config.report, resolve=True)
        try:
            path, _ = report.report_study(self.uri, config.study, Path(settings.pop("out")),
                                          settings=settings, parent=self.parent)
        except ValueError as error:  # nothing finished: nothing to answer
            print(f"no report: {error}", flush=True)
            return
        print(f"\n{report.answer_text(path.read_text())}\nreport: {path}", flush=True)


# The sweep submitted from this process, for Ctrl-C (main), its race (the sweeper) and the end
# of the multirun.
_submitting: Sweep | None = None


def submitted() -> Sweep | None:
    """The sweep this process submitted, once its callback has started it."""
    return _submitting


class SweepCallback(Callback):
    """Hydra's hooks around the multirun, handing over to Sweep. Hydra's launchers pickle the
    callbacks with every job (joblib with each task, submitit with the launcher) and a worker
    calls only the on_job_* hooks, which do nothing here: so the callback holds nothing, and
    nothing of the submitting process (the live display, its lock and thread, the store)
    travels with a job."""

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        global _submitting
        _submitting = Sweep()
        _submitting.start(config)

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        _submitting.end(config)


LAUNCHERS = ("", "local", "slurm")


def launcher_overrides(jobs: str, force: str, launcher: str) -> list[str]:
    """Turn the Makefile's JOBS, FORCE and LAUNCHER into Hydra overrides (one-line errors)."""
    if not jobs.isdigit() or int(jobs) < 1:
        fail(f"JOBS: {jobs!r} is not allowed; use a whole number ≥ 1")
    if force not in ("", "0", "1"):
        fail(f"FORCE: {force!r} is not allowed; use FORCE=1 (or leave it unset)")
    if launcher not in LAUNCHERS:
        fail(f"LAUNCHER: {launcher!r} is unknown; allowed: local, slurm (or unset for this process)")
    force = f"force={'true' if force == '1' else 'false'}"
    if launcher == "slurm":
        # One array for the whole sweep; each task has its own CPUs (cpus_per_task), so JOBS
        # (this machine's cores) means nothing there: array_parallelism says how many run.
        return ["jobs=1", force, "hydra/launcher=slurm"]
    overrides = [f"jobs={int(jobs)}", force]
    if launcher:
        # Hydra's sweeper hands the launcher batches of JOBS jobs: that is the parallelism.
        overrides += [f"hydra/launcher={launcher}", f"hydra.sweeper.max_batch_size={int(jobs)}"]
    elif int(jobs) > 1:
        overrides += ["hydra/launcher=parallel"]
    return overrides


_interrupted = False  # set first thing once main() has the KeyboardInterrupt of a Ctrl-C


def raise_dropped_interrupt(unraisable) -> None:
    """Python drops (and prints as "Exception ignored") a KeyboardInterrupt raised while the
    main thread runs a finalizer — a `__del__` or weakref callback, as when a finished job's
    result is freed —, and the sweep would run on. Raise it again where main() can handle it;
    anything else goes to Python's own hook."""
    if isinstance(unraisable.exc_value, KeyboardInterrupt):
        if not _interrupted:  # from another thread: raised here, it would be dropped again
            threading.Timer(0.1, _thread.interrupt_main, (signal.SIGINT,)).start()
        return
    sys.__unraisablehook__(unraisable)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    parser.add_argument("study", nargs="?", help="a file name in experiments/")
    parser.add_argument("--jobs", default="1")
    parser.add_argument("--force", default="")
    parser.add_argument("--launcher", default="")
    known, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.study is None:
        fail(f"STUDY: missing; allowed: {', '.join(choices(EXPERIMENTS))}")
    try:
        check_names(known.study, overrides)
    except ConfigError as error:
        fail(str(error))
    overrides = launcher_overrides(known.jobs, known.force, known.launcher) + overrides
    sys.argv = [sys.argv[0], "--config-dir", str(EXPERIMENTS), "--config-name", known.study]
    sys.argv += overrides
    global _interrupted
    sys.unraisablehook = raise_dropped_interrupt
    try:
        job()
    except KeyboardInterrupt:
        _interrupted = True
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the clean-up below runs to its end
        if _submitting is None:
            print("\ninterrupted", file=sys.stderr, flush=True)
            sys.exit(130)
        _submitting.interrupted()
    finally:
        if _submitting is not None:
            _submitting.stop_live()
