"""The sweep: `python -m harness STUDY [--jobs N] [--force 1] [--launcher L] [overrides]` runs
experiments/STUDY.yaml as a Hydra multirun. Before any training every job's config is checked,
stale runs are closed and the parent MLflow run is created; each job is a nested child run; at
the end a table and the exit code tell how it went."""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import hydra
import numpy as np
from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from harness import backend, console, data
from harness.config import ConfigError, check_config, run_key

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
EXPERIMENTS = ROOT / "experiments"
# Set by the sweep for its jobs (they may run in other processes).
PARENT_ENV = "HARNESS_PARENT_RUN_ID"
TOTAL_ENV = "HARNESS_SWEEP_JOBS"
PACKS_ENV = "HARNESS_PACKS"
COSTS_ENV = "HARNESS_SWEEP_COSTS"
START_ENV = "HARNESS_SWEEP_START"
IDLE_ENV = "HARNESS_IDLE_JOBS"


def fail(message: str, code: int = 2):
    """One line on stderr, then exit ≠ 0."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def choices(folder: Path) -> list[str]:
    return sorted(path.stem for path in folder.glob("*.yaml"))


def check_names(study: str, overrides: list[str]) -> None:
    """Unknown study / data / model → one-line error (Hydra's own is several lines)."""
    if study not in choices(EXPERIMENTS):
        fail(f"STUDY: unknown study {study!r}; allowed: {', '.join(choices(EXPERIMENTS))}")
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as error:
        fail(f"ARGS: cannot parse overrides {overrides}: {str(error).splitlines()[0]}")
    for override in parsed:
        group = override.key_or_group
        if group not in ("data", "model"):
            continue
        allowed = choices(CONF / group)
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        for value in values:
            if value not in allowed:
                fail(f"{group}: unknown {group} {value!r}; allowed: {', '.join(allowed)}")
    check_keys(study, parsed)


def check_keys(study: str, parsed: list) -> None:
    """An override of a key the study's config does not have (`model.unitz=3`) → one line
    naming it and the keys there (Hydra's own error is several lines). Keys added with `+`,
    deleted with `~`, and Hydra's own are left to Hydra."""
    from hydra import compose, initialize_config_dir

    groups = [o for o in parsed if (CONF / o.key_or_group).is_dir()]
    first = [f"{o.key_or_group}={next(iter(o.sweep_string_iterator()))}"
             if o.is_sweep_override() else o.input_line for o in groups]
    with initialize_config_dir(config_dir=str(EXPERIMENTS), version_base="1.3"):
        config = compose(study, overrides=[f"hydra.searchpath=[file://{CONF}]", *first])
    for override in parsed:
        key = override.key_or_group
        if (override in groups or override.is_add() or override.is_force_add()
                or override.is_delete() or key.split(".")[0] == "hydra"):
            continue
        parent, _, name = key.rpartition(".")
        node = OmegaConf.select(config, parent) if parent else config
        if not isinstance(node, DictConfig):
            fail(f"{key}: unknown key; {parent} is a value, not a section")
        if name not in node:
            fail(f"{key}: unknown key; allowed in {parent or 'the config'}: {', '.join(node)} "
                 f"(a new key: +{key}=...)")


def question_text(study: str) -> str:
    """The study's question and budget, from its YAML header, as markdown."""
    from harness.report import study_header

    question, budget = study_header(study)
    if not question:
        return study
    return "\n\n".join(part for part in (f"**{question}**", budget, f"`experiments/{study}.yaml`")
                       if part)


def job_overrides(config: DictConfig) -> list[list[str]]:
    """The override list of every job, expanded as Hydra's basic sweeper expands them."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper

    params = config.hydra.sweeper.get("params") or {}
    lines = [f"{key}={value}" for key, value in params.items()]
    lines += list(config.hydra.overrides.task)
    parsed = OverridesParser.create().parse_overrides(lines)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def job_config(config: DictConfig) -> dict:
    """A job's config as a plain dict, without Hydra's own node."""
    return OmegaConf.to_container(without_hydra(config), resolve=True)


def without_hydra(config: DictConfig) -> DictConfig:
    config = config.copy()
    with open_dict(config):
        config.pop("hydra", None)
    return config


def composing(parsed: list, repository) -> list:
    """The overrides that change what Hydra composes — config group choices, and hydra.* keys,
    which compose with them — as Hydra's defaults list tells them apart; the others are values
    Hydra applies to the composed config."""
    return [o for o in parsed
            if (repository.group_exists(o.key_or_group) and not isinstance(o.value(), dict))
            or o.key_or_group.split(".")[0].split("/")[0] == "hydra"]


# A worker's compositions (the parallel launcher's, hydra_plugins/harness_launcher/parallel.py):
# (config name, hydra overrides, composing overrides) → config. Here, not in the plugin: joblib
# sends the plugin's loader to the workers by value, a fresh copy of its module with every job.
_worker_compositions: dict[tuple, DictConfig] = {}


def sweep_job_config(loader, master: DictConfig, overrides: list[str], compose) -> DictConfig:
    """A sweep job's config as Hydra's `load_sweep_config(master, overrides)` makes it, from
    `compose(master, composing overrides)` made once per choice of groups in this process:
    the job's value overrides applied to a copy with Hydra's own function, its overrides and
    override_dirname recorded as Hydra records them."""
    from hydra._internal.config_loader_impl import get_overrides_dirname

    parsed = OverridesParser.create().parse_overrides(overrides)
    composes = composing(parsed, loader.repository)
    key = (master.hydra.job.config_name, tuple(master.hydra.overrides.hydra),
           tuple(o.input_line for o in composes))
    if key not in _worker_compositions:
        _worker_compositions[key] = compose(master, [o.input_line for o in composes])
    config = copy.deepcopy(_worker_compositions[key])
    ConfigLoaderImpl._apply_overrides_to_config([o for o in parsed if o not in composes], config)
    task = [o for o in parsed if not o.is_hydra_override()]
    config.hydra.overrides.task = [o.input_line for o in task]
    naming = config.hydra.job.config.override_dirname
    config.hydra.job.override_dirname = get_overrides_dirname(
        overrides=task, kv_sep=naming.kv_sep, item_sep=naming.item_sep,
        exclude_keys=naming.exclude_keys,
    )
    return config


def composed_jobs(config: DictConfig, jobs: list[list[str]]) -> list[dict]:
    """Every job's config (job_config), as Hydra's launcher will compose it, composed once per
    choice of config groups: a job's value overrides (`seed=3`, `model.units=8`) are applied
    to a copy by the function Hydra applies them with after composing. Composing each job
    instead costs ~0.2 s a job here, 11 s before a 55-job sweep could start."""
    loader = GlobalHydra.instance().config_loader()
    parser = OverridesParser.create()
    bases: dict[tuple[str, ...], tuple[DictConfig, DictConfig]] = {}
    configs, current = [], None
    for overrides in jobs:
        try:
            parsed = parser.parse_overrides(list(overrides))
            groups = tuple(o.input_line for o in composing(parsed, loader.repository))
            if groups not in bases:
                composed = loader.load_sweep_config(config, list(groups))
                bases[groups] = composed, without_hydra(composed)
            composed, base = bases[groups]
            if current is not composed:  # for ${hydra:...} interpolations
                HydraConfig.instance().set_config(composed)
                current = composed
            job = copy.deepcopy(base)
            ConfigLoaderImpl._apply_overrides_to_config(
                [o for o in parsed if o.input_line not in groups], job)
            configs.append(OmegaConf.to_container(job, resolve=True))
            check_config(configs[-1])
        except ConfigError as error:
            fail(str(error))
        except Exception as error:  # composition: unknown key or group option
            fail(f"ARGS {' '.join(overrides)}: {str(error).splitlines()[0]}")
    return configs


def pack_group(config: dict) -> str:
    """Jobs whose configs differ only in seed share this key."""
    return run_key({**config, "seed": 0})


# Seconds per epoch of a row-MNIST job on one thread of the CPU, per backend: a fixed per-step
# cost, a cost per extra member of a pack (its gather, head, loss and metrics), and the step's
# matmuls. A pack of k members of `units` multiplies k side-by-side inputs and states,
# k·(inputs + units) rows, by 4·k·units gate columns: k² times one member's work
# (harness/packing.py). Fitted to epochs measured on 2 cores (1 thread per job, batch 128, 55k
# examples, 2026-11-23); only the ratios matter, for planning and for the ETA.
EPOCH_COST = {
    # TensorFlow's fused kernel (harness/fused.py): LSTM(4) alone 2.33 s, a pack of five 7.6 s;
    # LSTM(16) 3.6 / 3 packed 9.3 / 5 packed 19.9 s; LSTM(32) 5.1 / 2 packed 11.2 s; LSTM(128)
    # alone 23 s. A member costs far less than a run: packs pay up to ~16 units.
    "tensorflow": (2.2, 0.52, 2.6e-4),
    # JAX: XLA compiles the whole training step, so a run has little fixed cost to share and a
    # member costs a whole run: LSTM(1) alone 0.49 s, five packed 3.7 s; LSTM(8) 1.33 / 5 packed
    # 6.2 s; LSTM(16) 1.89 / 2 packed 4.0 / 5 packed 13.4 s; LSTM(32) 2.4 s, LSTM(64) 7.0 s,
    # LSTM(128) 15.2 s alone. Packs never pay here.
    "jax": (0.8, 0.8, 1.75e-4),
}


def epoch_cost(units: int, members: int, input_dim: int, backend: str = "tensorflow") -> float:
    """Modelled seconds per row-MNIST epoch of a job training `members` seeds of `units` (a
    backend without measurements here, PyTorch, is modelled as TensorFlow)."""
    fixed, per_member, per_weight = EPOCH_COST.get(backend, EPOCH_COST["tensorflow"])
    return (fixed + per_member * (members - 1)
            + per_weight * members**2 * 4 * units * (input_dim + units))


def split_seeds(seeds: list[int], units: int, input_dim: int,
                backend: str = "tensorflow") -> list[list[int]]:
    """The seeds cut into the packs that cost least in all (each pack pays the fixed cost once
    and k² the matmuls of one member), as even in size as they can be; ties go to fewer
    packs."""
    def packs_of(count: int) -> list[list[int]]:
        return [list(pack) for pack in np.array_split(seeds, count)]

    def cost(packs: list[list[int]]) -> float:
        return sum(epoch_cost(units, len(pack), input_dim, backend) for pack in packs)

    best = min(range(1, len(seeds) + 1), key=lambda count: cost(packs_of(count)))
    return [[int(seed) for seed in pack] for pack in packs_of(best)]


def plan_packs(configs: list[dict]) -> dict[str, list[list[int]]]:
    """Which jobs train together, packed into one layer (harness/packing.py): the seeds of each
    configuration of at most pack_max_units (0: none), cut into packs by the cost model.
    Group key → its packs of two seeds or more."""
    groups: dict[str, tuple[dict, set[int]]] = {}
    for config in configs:
        if config["model"]["units"] <= config["pack_max_units"]:
            groups.setdefault(pack_group(config), (config, set()))[1].add(config["seed"])
    plan = {}
    for key, (config, seeds) in groups.items():
        _, input_dim, _ = data.sequence_shape(config["data"]["name"],
                                              data.settings(config["data"]))
        packs = [pack for pack in split_seeds(sorted(seeds), config["model"]["units"], input_dim,
                                              config.get("backend", "tensorflow"))
                 if len(pack) > 1]
        if packs:
            plan[key] = packs
    return plan


def job_pack(config: dict) -> list[int] | None:
    """The seeds a job is packed with (itself included), as the sweep planned them; None when
    it trains alone."""
    packs = json.loads(os.environ.get(PACKS_ENV, "{}")).get(pack_group(config), [])
    return next((pack for pack in packs if config["seed"] in pack), None)


def job_cost(config: dict, pack: list[int] | None) -> float:
    """A job's modelled seconds on one thread (epoch_cost, scaled by examples, steps and
    epochs), for the ETA."""
    if pack and config["seed"] != pack[0]:
        return 0.0  # trained by its pack's first job
    timesteps, input_dim, _ = data.sequence_shape(config["data"]["name"],
                                                  data.settings(config["data"]))
    examples = config["data"].get("train_size") or 55000
    epoch = epoch_cost(config["model"]["units"], len(pack) if pack else 1, input_dim,
                       config.get("backend", "tensorflow"))
    return config["train"]["epochs"] * epoch * examples / 55000 * timesteps / 28


def idle_jobs(configs: list[dict], keys: list[str], finished: set[str]) -> list[int]:
    """The numbers of the jobs with nothing to train: finished already, or a pack member that
    its pack's first job trains. A launcher that pays per job (a Slurm array task waits in the
    queue and starts Python) leaves them out."""
    idle = []
    for number, (config, key) in enumerate(zip(configs, keys)):
        pack = job_pack(config)
        if pack:
            keys_of_pack = [run_key({**config, "seed": seed}) for seed in pack]
            if config["seed"] != pack[0] or set(keys_of_pack) <= finished:
                idle.append(number)
        elif key in finished:
            idle.append(number)
    return idle


def eta(number: int) -> str:
    """Time left after the first `number` jobs, from the time they took and the cost model."""
    costs = json.loads(os.environ.get(COSTS_ENV, "[]"))
    done, left = sum(costs[:number]), sum(costs[number:])
    elapsed = time.time() - float(os.environ.get(START_ENV, time.time()))
    return f"ETA {elapsed * left / done / 60:.1f} min" if done else "ETA unknown"


# The sweep being submitted from this process (its parent run, its live display), for Ctrl-C.
_submitting: SweepCallback | None = None


class SweepCallback(Callback):
    """Checks every job before any training, opens and closes the parent run.

    Its state (the store, the parent run, the live display with its lock and thread) belongs
    to the submitting process. Hydra's launchers pickle the callbacks with every job (joblib
    with each task, submitit with the launcher), and a worker only calls the callback's
    on_job_* hooks, which do nothing here: a job receives an empty callback."""

    def __getstate__(self) -> dict:
        return {}

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        from harness import tracking

        global _submitting
        _submitting = self
        self.live = None

        jobs = job_overrides(config)
        configs = composed_jobs(config, jobs)
        backends = sorted({job["backend"] for job in configs})
        if len(backends) > 1:
            fail(f"backend: {', '.join(backends)} in one sweep; Keras loads one backend per "
                 "process, so run one sweep per backend")
        try:
            backend.use(backends[0])  # before anything loads Keras; workers inherit it
            if any(job["device"] == "gpu" for job in configs):
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
        os.environ[PACKS_ENV] = json.dumps(packs)
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
        os.environ[PARENT_ENV] = parent
        os.environ[TOTAL_ENV] = str(len(jobs))
        os.environ[START_ENV] = str(time.time())
        os.environ[COSTS_ENV] = json.dumps([
            0.0 if key in finished else job_cost(job, job_pack(job))
            for job, key in zip(configs, runs)
        ])
        skipped = sum(key in finished for key in runs)
        os.environ[IDLE_ENV] = json.dumps(idle_jobs(configs, runs, finished))
        self.uri, self.parent, self.total, self.skipped = uri, parent, len(runs), skipped
        self.study = study
        packed = [pack for group in packs.values() for pack in group]
        print(
            f"sweep {study}: {len(jobs)} jobs, {len(runs)} runs"
            + (f" ({sum(map(len, packed))} of them in {len(packed)} packs)" if packed else "")
            + f", {skipped} already finished (skipped"
            f"{'' if config.force else '; FORCE=1 re-runs them'}), store {uri}, parent run {parent}"
            + (f"; marked {stale} stale RUNNING runs KILLED" if stale else ""),
            flush=True,
        )
        if console.live_wanted():  # a terminal: a live display; else plain lines per job
            costs = dict(zip(runs, json.loads(os.environ[COSTS_ENV])))
            self.live = console.LiveProgress(
                uri, study, parent, total=len(runs), skipped=skipped, costs=costs,
                start=float(os.environ[START_ENV]),
            ).__enter__()

    def on_multirun_end(self, config: DictConfig, **kwargs) -> None:
        from harness import tracking

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
        elapsed = time.time() - float(os.environ.get(START_ENV, time.time()))
        print(f"\nsweep {study}: {status.lower()} in {elapsed / 60:.1f} min — "
              f"{counts['finished']} finished, {counts['failed']} failed, "
              f"{counts['killed']} killed, {self.skipped} skipped, {missing} not run", flush=True)
        print("\n".join(rows), flush=True)
        print(f"browse: make ui   (parent run {self.parent})", flush=True)
        self.answer(config)
        if status != "FINISHED":
            sys.exit(1)

    def stop_live(self) -> None:
        """End the live display (its thread; the terminal's cursor shown again)."""
        live, self.live = getattr(self, "live", None), None
        if live:
            live.__exit__(None, None, None)

    def interrupted(self) -> None:
        """Ctrl-C: the jobs got the signal too (one process group) and marked their runs
        KILLED; what is still RUNNING under this parent is marked KILLED, and so is the parent.
        Finished runs stay: the same command resumes the sweep. Exit 130, as a shell does."""
        from harness import tracking

        self.stop_live()
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
        from harness import report

        settings = OmegaConf.to_container(config.report, resolve=True)
        try:
            path = report.report_study(self.uri, config.study, Path(settings.pop("out")),
                                       settings=settings, parent=self.parent)
        except ValueError as error:  # nothing finished: nothing to answer
            print(f"no report: {error}", flush=True)
            return
        print(f"\n{report.answer_text(path.read_text())}\nreport: {path}", flush=True)


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


def progress() -> tuple[int, int]:
    number = HydraConfig.get().job.num + 1
    return number, int(os.environ.get(TOTAL_ENV, number))


def freeze_imports() -> None:
    """Once per process, after importing Keras, the backend and MLflow: move the objects alive
    now (~360k, nearly all of them from those imports) out of reach of Python's garbage
    collector. joblib's worker runs a full collection after its jobs, which walked all of them
    (0.2-0.3 s, about every job here); frozen, it walks only what the jobs made (~5 ms)."""
    from harness import runner, tracking  # noqa: F401  (the imports to freeze)

    if not gc.get_freeze_count():
        gc.collect()
        gc.freeze()


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="config")
def job(cfg: DictConfig) -> str:
    """One Hydra job = one child run (a pack's runs are made by the job of its first seed).
    A failure is recorded and the sweep goes on."""
    from harness import tracking

    config = job_config(cfg)
    backend.use(config["backend"])  # in a worker the sweep started, KERAS_BACKEND is set already
    share_gpus(config)
    freeze_imports()
    uri = tracking.connect(config["tracking"]["uri"])
    pack = job_pack(config)
    hydra_job = HydraConfig.get()
    log = Path(hydra_job.runtime.output_dir) / f"{hydra_job.job.name}.log"
    with console.output_to(log):  # Keras's epoch lines: the job's log, not the console
        if pack:
            return pack_job(config, pack, uri, os.environ[PARENT_ENV], *progress())
        return single_run(config, uri, os.environ[PARENT_ENV], job_label(config), *progress())


def single_run(config: dict, uri: str, parent: str, label: str, number: int, total: int) -> str:
    """Train one (configuration, seed) as a child run unless its run_key already finished."""
    from harness import runner, tracking

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
        with tracking.child_run(uri, study, parent, run_name=label, tags={"run_key": key}) as run:
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
        f"({elapsed:.0f} s; {eta(number)})"
    )
    return "finished"


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


def pack_job(config: dict, pack: list[int], uri: str, parent: str, number: int,
             total: int) -> str:
    """A job of a pack: the job of the pack's first seed trains every seed of the pack in one
    packed model (harness/packing.py), each seed its own child run; the others have nothing
    left to do."""
    from harness import runner, tracking

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
        with tracking.member_runs(uri, study, parent, members) as run_ids:
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
        f"({time.perf_counter() - started:.0f} s; {eta(number)})",
    )
    return "finished"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__)
    parser.add_argument("study", nargs="?", help="a file name in experiments/")
    parser.add_argument("--jobs", default="1")
    parser.add_argument("--force", default="")
    parser.add_argument("--launcher", default="")
    known, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    if known.study is None:
        fail(f"STUDY: missing; allowed: {', '.join(choices(EXPERIMENTS))}")
    check_names(known.study, overrides)
    overrides = launcher_overrides(known.jobs, known.force, known.launcher) + overrides
    sys.argv = [sys.argv[0], "--config-dir", str(EXPERIMENTS), "--config-name", known.study]
    sys.argv += overrides
    try:
        job()
    except KeyboardInterrupt:
        if _submitting is None:
            print("\ninterrupted", file=sys.stderr, flush=True)
            sys.exit(130)
        _submitting.interrupted()
    finally:
        if _submitting is not None:
            _submitting.stop_live()
