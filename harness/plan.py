"""How a sweep's jobs are planned before any runs: which seeds train packed into one layer
(harness/packing.py) by a cost model of an epoch, each job's modelled cost for the ETA, which
jobs have nothing to train, and how the settings a study selects race (report.race_seeds); and
SweepState, what the submitting process tells every job."""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from harness import data, models
from harness.config import ConfigError, run_key


@dataclass
class SweepState:
    """What the submitting process tells its jobs, wherever they run — a joblib worker, a
    submitit process, a Slurm task all inherit its environment: the parent run, the number of
    jobs, the packs, each job's modelled cost and the sweep's start (for the ETA), and the jobs
    with nothing to train, and the submitting process's id. Plain data, as one JSON environment
    variable."""

    parent: str
    total: int
    packs: dict[str, list[list[int]]]
    costs: list[float]
    start: float
    idle: list[int]
    submitter: int = 0

    ENV = "HARNESS_SWEEP"

    def publish(self) -> None:
        """Into this process's environment, which every job inherits."""
        os.environ[self.ENV] = json.dumps(asdict(self))

    @classmethod
    def current(cls) -> SweepState:
        """The state the sweep published; a job run outside a sweep gets an empty one."""
        text = os.environ.get(cls.ENV)
        if not text:
            return cls(parent="", total=0, packs={}, costs=[], start=time.time(), idle=[])
        return cls(**json.loads(text))

    def eta(self, number: int) -> str:
        """Time left after the first `number` jobs, from the time they took and the cost
        model."""
        done, left = sum(self.costs[:number]), sum(self.costs[number:])
        elapsed = time.time() - self.start
        return f"ETA {elapsed * left / done / 60:.1f} min" if done else "ETA unknown"


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
        if (config["model"]["units"] <= config["pack_max_units"]
                and config["model"]["cell"] in models.RECURRENT  # packing.py packs recurrent layers
                and not config["train"].get("patience")  # early stopping: each seed alone
                # a file's series may be ragged: a pack's members would share one mask
                and not data.from_file(config["data"])
                # new data every epoch: each seed draws its own
                and not config["data"].get("fresh_each_epoch")
                # a race trains a loser's first seeds only
                and not config.get("report", {}).get("race_seeds")):
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


def job_pack(config: dict, packs: dict[str, list[list[int]]]) -> list[int] | None:
    """The seeds a job is packed with (itself included) in the sweep's plan; None when it
    trains alone."""
    return next((pack for pack in packs.get(pack_group(config), []) if config["seed"] in pack),
                None)


def job_cost(config: dict, pack: list[int] | None) -> float:
    """A job's modelled seconds on one thread (epoch_cost, scaled by examples, steps and
    epochs), for the ETA."""
    if pack and config["seed"] != pack[0]:
        return 0.0  # trained by its pack's first job
    timesteps, input_dim, _ = data.sequence_shape(config["data"]["name"],
                                                  data.settings(config["data"]))
    train = config["train"]
    seen = (train["updates"] * train["batch_size"] if train.get("updates") else
            train["epochs"] * (config["data"].get("train_size") or 55000))  # examples trained on
    epoch = epoch_cost(config["model"]["units"], len(pack) if pack else 1, input_dim,
                       config.get("backend", "tensorflow"))
    return epoch * seen / 55000 * timesteps / 28


def idle_jobs(configs: list[dict], keys: list[str], finished: set[str],
              packs: dict[str, list[list[int]]]) -> list[int]:
    """The numbers of the jobs with nothing to train: finished already, or a pack member that
    its pack's first job trains. A launcher that pays per job (a Slurm array task waits in the
    queue and starts Python) leaves them out."""
    idle = []
    for number, (config, key) in enumerate(zip(configs, keys)):
        pack = job_pack(config, packs)
        if pack:
            keys_of_pack = [run_key({**config, "seed": seed}) for seed in pack]
            if config["seed"] != pack[0] or set(keys_of_pack) <= finished:
                idle.append(number)
        elif key in finished:
            idle.append(number)
    return idle


# --------------------------------------------------------------------------------------------
# Racing the selected settings (report.race_seeds: N). A study that selects a training setting per
# configuration on validation (report.select) trains every candidate on the N smallest seeds
# only; the candidate harness.selection.race_choice keeps then trains the other seeds
# (harness.sweep.Sweep.second_rung). A single cut, after racing in algorithm configuration
# (Birattari et al. 2002), or successive halving with seeds rather than epochs as the resource:
# every run that trains is a whole run, so a short budget's bias towards large learning rates
# never chooses, and each run is the full grid's run (its run_key).


def selected_setting(config: dict) -> tuple:
    """The values of the settings a study selects (report.select, e.g. train.learning_rate)
    in this job's config."""
    return tuple(config[key.split(".")[0]][key.split(".")[1]]
                 for key in config["report"]["select"])


def race_plan(configs: list[dict], jobs: list[list[str]]
              ) -> list[list[dict[str, list[int]]]] | None:
    """The race of a sweep whose jobs race (report.race_seeds > 0): one list per configuration — the
    jobs whose overrides (`jobs`) differ only in seed and the selected settings —, of its
    candidate settings in the sweep's order, each {"first": the numbers of its jobs on the
    sweep's race_seeds smallest seeds, "rest": its other jobs' numbers}. By the overrides, not the
    configs: a study's data.seed may follow the seed (units_mnist_tuned). None without a race."""
    race = configs[0]["report"].get("race_seeds", 0) if configs else 0
    if not race:
        return None
    racing = set(sorted({config["seed"] for config in configs})[:race])
    raced = {"seed", *configs[0]["report"]["select"]}
    groups: dict[str, dict[str, dict[str, list[int]]]] = {}
    for number, (config, overrides) in enumerate(zip(configs, jobs)):
        setting = json.dumps(selected_setting(config))
        group = json.dumps(sorted(o for o in overrides if o.split("=")[0] not in raced))
        candidate = groups.setdefault(group, {}).setdefault(setting, {"first": [], "rest": []})
        candidate["first" if config["seed"] in racing else "rest"].append(number)
    for group, candidates in groups.items():
        if len(candidates) < 2:
            raise ConfigError(f"report.race_seeds: {race}, but the jobs "
                              f"{' '.join(json.loads(group))} have one candidate of "
                              f"{', '.join(configs[0]['report']['select'])} to race; sweep "
                              "several (e.g. train.learning_rate=0.001,0.01) or use 0")
    return [list(candidates.values()) for candidates in groups.values()]


def race_candidates(group: list[dict], configs: list[dict], keys: list[str],
                    scores: dict[str, float]) -> list[tuple[tuple, dict[int, float]]]:
    """A configuration's candidates as harness.selection.race_choice takes them: each one's
    setting and its score (`scores` by run_key; NaN where its run has not finished) on each of
    its first seeds."""
    return [(selected_setting(configs[c["first"][0]]),
             {configs[n]["seed"]: scores.get(keys[n], float("nan")) for n in c["first"]})
            for c in group]
