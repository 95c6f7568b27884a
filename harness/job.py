"""One job of a sweep, in whatever process runs it (the sweep's own, a parallel worker, a
submitit process, a Slurm task): Hydra's task function. A job trains one (configuration, seed)
as a child run, or a pack of seeds as one child run each (harness/packing.py), and records a
failure instead of raising it, so that the sweep goes on."""

from __future__ import annotations

import gc
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from harness import backend, console, tracking
from harness.compose import job_config
from harness.config import run_key
from harness.plan import SweepState, job_pack
from harness.study import CONF


def share_gpus(config: dict) -> None:
    """With JOBS > 1 on a machine with several GPUs, give each worker process its own GPU
    (by the number of the first job it runs), before TensorFlow starts in that process."""
    if config["jobs"] <= 1 or config["device"] == "cpu" or "CUDA_VISIBLE_DEVICES" in os.environ:
        return
    if "keras" in sys.modules or not shutil.which("nvidia-smi"):
        return
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True).stdout
    gpus = [line for line in listing.splitlines() if line.startswith("GPU ")]
    if len(gpus) > 1:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(HydraConfig.get().job.num % len(gpus))


def job_label(config: dict, seed: int | None = None) -> str:
    """The job's swept overrides, e.g. `model.units=8 seed=2`: its run name and progress label;
    with `seed`, the label of that seed's job (for the members of a pack)."""
    overrides = HydraConfig.get().overrides.task
    swept = [o for o in overrides
             if o.split("=")[0] not in ("jobs", "force") and not o.startswith("report.")]
    if seed is not None:
        swept = [f"seed={seed}" if o.split("=")[0] == "seed" else o for o in swept]
    return " ".join(swept) or f"{config['model']['cell']} units={config['model']['units']}"


def progress(sweep: SweepState) -> tuple[int, int]:
    """This job's number (from 1) and the sweep's number of jobs."""
    number = HydraConfig.get().job.num + 1
    return number, sweep.total or number


def freeze_imports() -> None:
    """Once per process, after importing Keras, the backend and MLflow: move the objects alive
    now (~360k, nearly all of them from those imports) out of reach of Python's garbage
    collector. joblib's worker runs a full collection after its jobs, which walked all of them
    (0.2-0.3 s, about every job here); frozen, it walks only what the jobs made (~5 ms)."""
    from harness import runner  # noqa: F401  (Keras, loaded by it, is among what is frozen)

    if not gc.get_freeze_count():
        gc.collect()
        gc.freeze()


def leave_interrupts_to_the_sweep(sweep: SweepState) -> None:
    """In a process other than the one that submitted the sweep (a parallel worker, a submitit
    job), ignore Ctrl-C, which a terminal sends to its whole process group: the sweep ends the
    processes it started and marks their runs KILLED (sweep.Sweep.interrupted). Raised here, the
    KeyboardInterrupt could land in a garbage-collection callback, where Python prints a
    traceback and carries on training."""
    if sweep.submitter and os.getpid() != sweep.submitter:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
def job(cfg: DictConfig) -> str:
    """One Hydra job = one child run (a pack's runs are made by the job of its first seed).
    A failure is recorded and the sweep goes on."""
    sweep = SweepState.current()
    leave_interrupts_to_the_sweep(sweep)  # first: the imports below take seconds
    config = job_config(cfg)
    backend.use(config["backend"])  # in a worker the sweep started, KERAS_BACKEND is set already
    share_gpus(config)
    freeze_imports()
    uri = tracking.connect(config["tracking"]["uri"])
    pack = job_pack(config, sweep.packs)
    hydra_job = HydraConfig.get()
    log = Path(hydra_job.runtime.output_dir) / f"{hydra_job.job.name}.log"
    with console.output_to(log):  # Keras's epoch lines: the job's log, not the console
        if pack:
            return pack_job(config, pack, uri, sweep, *progress(sweep))
        return single_run(config, uri, sweep, job_label(config), *progress(sweep))


def single_run(config: dict, uri: str, sweep: SweepState, label: str, number: int,
               total: int) -> str:
    """Train one (configuration, seed) as a child run unless its run_key already finished."""
    from harness import runner  # Keras reads its backend when first imported: after backend.use

    study = config["study"]
    key = run_key(config)
    if not config["force"]:
        previous = tracking.finished_run(uri, study, key)
        if previous:
            console.say(f"[{number}/{total}] {label}: skipped, finished as run {previous}")
            return "skipped"
    runner.configure_threads(config["jobs"])
    started = time.perf_counter()
    try:
        with tracking.child_run(uri, study, sweep.parent, run_name=label, tags={"run_key": key}) as run:
            splits = runner.splits_for(config)
            params = runner.job_params(config, splits)
            tracking.log_start(params, OmegaConf.to_yaml(config))
            tracking.log_dataset(uri, run.info.run_id, tracking.training_dataset(splits, params))
            result = runner.train(config, callbacks=[tracking.epoch_logger()], splits=splits)
            tracking.log_result(
                result["metrics"],
                tags={"device": result["device"], "backend": result["backend"],
                      "kernel": result["kernel"], "cudnn": str(result["kernel"] == "cudnn").lower()},
            )
    except Exception as error:
        console.say(f"[{number}/{total}] {label}: FAILED — {type(error).__name__}: {error}")
        return "failed"
    elapsed = time.perf_counter() - started
    console.say(
        f"[{number}/{total}] {label}: test_accuracy {result['metrics']['test_accuracy']:.4f} "
        f"({elapsed:.0f} s; {sweep.eta(number)})"
    )
    return "finished"


def pack_job(config: dict, pack: list[int], uri: str, sweep: SweepState, number: int,
             total: int) -> str:
    """A job of a pack: the job of the pack's first seed trains every seed of the pack in one
    packed model (harness/packing.py), each seed its own child run; the others have nothing
    left to do."""
    from harness import runner  # Keras reads its backend when first imported: after backend.use

    study = config["study"]
    label = job_label(config)
    if config["seed"] != pack[0]:
        console.say(f"[{number}/{total}] {label}: trained in the pack of seed {pack[0]}")
        return "packed"
    if not config["force"]:
        done = [seed for seed in pack
                if tracking.finished_run(uri, study, run_key({**config, "seed": seed}))]
        if len(done) == len(pack):
            console.say(f"[{number}/{total}] {label} (pack {pack}): skipped (finished)")
            return "skipped"
        if done:  # each member is its own seed's run, so the others train without them
            console.say(f"[{number}/{total}] {label}: seeds {done} finished already (skipped)")
            pack = [seed for seed in pack if seed not in done]
    keys = [run_key({**config, "seed": seed}) for seed in pack]
    runner.configure_threads(config["jobs"])
    started = time.perf_counter()
    splits = runner.splits_for(config)
    members = [
        {
            "name": job_label(config, seed),
            "key": key,
            "params": runner.job_params({**config, "seed": seed}, splits),
            "config_yaml": OmegaConf.to_yaml({**config, "seed": seed}),
            "packed_with": ",".join(map(str, pack)),
        }
        for seed, key in zip(pack, keys)
    ]
    try:
        with tracking.member_runs(uri, study, sweep.parent, members) as run_ids:
            dataset = tracking.training_dataset(splits, members[0]["params"])
            for run_id in run_ids:
                tracking.log_dataset(uri, run_id, dataset)
            results = runner.train_packed(config, pack, splits=splits)
            for run_id, result in zip(run_ids, results):
                tracking.log_member(uri, run_id, result)
    except Exception as error:
        console.say(f"[{number}/{total}] {label}: FAILED — {type(error).__name__}: {error}")
        return "failed"
    accuracies = ", ".join(f"{r['metrics']['test_accuracy']:.4f}" for r in results)
    console.say(
        f"[{number}/{total}] {label} (pack {pack}): test_accuracy {accuracies} "
        f"({time.perf_counter() - started:.0f} s; {sweep.eta(number)})",
    )
    return "finished"
