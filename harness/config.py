"""What a job's config may hold: the one-line checks run on every job before any training, and
the run key that identifies a result. Imports neither TensorFlow nor MLflow, so it is quick."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re

from harness import data, models

DEVICES = ("auto", "cpu", "gpu")
BACKENDS = ("tensorflow", "jax", "torch")
INSTALL = {
    "tensorflow": "make install",
    "jax": "make install-jax (requirements-jax.txt; a GPU machine: docs/backends-gpu.md)",
    "torch": "make install-torch (requirements-torch.txt)",
}
ANALYSES = ("auto", "capacity", "batch_timesteps", "memorization", "double_descent")
# Which weights of a run that stopped early (or marked its best epoch) a report answers on.
WEIGHTS = ("best", "last")
# Training settings a report may choose per configuration on validation (report.select).
SELECTABLE = ("train.learning_rate", "train.epochs", "train.patience", "train.batch_size")
# What chooses them: validation accuracy, or for memorisation the fit of the training labels.
SELECT_ON = ("final_val_accuracy", "fit_accuracy")
# The sections that change a result; launcher, tracking and output paths are left out.
RESULT_AFFECTING = ("data", "model", "train", "seed")
BATCH_ORDER = "seed-epoch"  # harness/batches.py: one permutation per (seed, epoch)


class ConfigError(ValueError):
    """A setting no job can run with; the message is one line naming the key and what is allowed."""


def run_key(config: dict) -> str:
    """Stable hash of the result-affecting part of a job's config (data, model, train, seed,
    and the backend unless it is TensorFlow; a file's data by its content). Packing is not part of it: a packed seed is the
    separate run of that seed (harness/packing.py), as the number of threads is."""
    affecting = {section: config[section] for section in RESULT_AFFECTING}
    digest = data.content_digest(config["data"])
    if digest is not None:  # a file's data: its content, not where it lies, is the result's
        affecting["data"] = {**{k: v for k, v in config["data"].items() if k != "path"},
                             "content": digest}
    if config.get("backend", "tensorflow") != "tensorflow":  # TensorFlow keys predate the key
        affecting["backend"] = config["backend"]
    if not affecting["data"].get("random_inputs", True):  # real images, as before the key
        affecting["data"] = {k: v for k, v in affecting["data"].items() if k != "random_inputs"}
    for key in ("patience", "updates"):  # 0: training every epoch, as before the key
        if not affecting["train"].get(key):
            affecting["train"] = {k: v for k, v in affecting["train"].items() if k != key}
    # Runs from before the harness owned the batch order (Keras's shuffle, packs sharing one
    # order) are other results and must not count as finished.
    affecting["batch_order"] = BATCH_ORDER
    if config["data"]["name"] == "motifs":  # sequences from before its events stopped overlapping
        affecting["motif_events"] = data.MOTIF_EVENTS  # are another task
    text = json.dumps(affecting, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _positive(value, *, integer: bool) -> bool:
    kinds = (int,) if integer else (int, float)
    return isinstance(value, kinds) and not isinstance(value, bool) and value > 0


def check_config(config: dict) -> None:
    """Raise ConfigError for the first setting a job cannot run with. Loads no data but a
    file's (data=table, a UEA set), where what can be wrong is in the file."""
    try:
        data.check_settings(config["data"]["name"], data.settings(config["data"]))
        models.check_cell(config["model"]["cell"])
        models.check_units(config["model"]["units"])
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if config["model"]["cell"] == "conv":
        check_conv(config)
    train = config["train"]
    if not _positive(train["batch_size"], integer=True):
        raise ConfigError(
            f"train.batch_size: {train['batch_size']!r} is not allowed; use a positive integer"
        )
    epochs = train["epochs"]
    if not _positive(epochs, integer=True):
        raise ConfigError(f"train.epochs: {epochs!r} is not allowed; use an integer ≥ 1")
    if not _positive(train["learning_rate"], integer=False):
        raise ConfigError(
            f"train.learning_rate: {train['learning_rate']!r} is not allowed; use a number > 0"
        )
    patience = train.get("patience", 0)
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ConfigError(f"train.patience: {patience!r} is not allowed; use an integer ≥ 0 "
                          "(0: no early stopping)")
    updates = train.get("updates", 0)
    if isinstance(updates, bool) or not isinstance(updates, int) or updates < 0:
        raise ConfigError(f"train.updates: {updates!r} is not allowed; use an integer ≥ 0 "
                          "(0: train.epochs passes over the training set)")
    if updates and patience:
        raise ConfigError(f"train.updates: {updates} with train.patience {patience}: a budget in "
                          "updates trains all of them; use train.patience=0 (or train.updates=0 "
                          "for early stopping)")
    if updates % epochs:
        raise ConfigError(f"train.updates: {updates} is not a multiple of train.epochs {epochs} "
                          "(the validations, one every updates / epochs batches); use one")
    seed = config["seed"]
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"seed: {seed!r} is not allowed; use an integer ≥ 0")
    pack_max = config.get("pack_max_units", 0)
    if isinstance(pack_max, bool) or not isinstance(pack_max, int) or pack_max < 0:
        raise ConfigError(f"pack_max_units: {pack_max!r} is not allowed; use an integer ≥ 0")
    if config["device"] not in DEVICES:
        raise ConfigError(f"device: {config['device']!r} is unknown; allowed: {', '.join(DEVICES)}")
    check_backend(config.get("backend", "tensorflow"))
    check_report(config.get("report", {}))
    weights, patience = config.get("report", {}).get("weights", "best"), train.get("patience", 0)
    if weights == "last" and 0 < patience < train["epochs"]:
        raise ConfigError(f"report.weights: last needs every epoch trained; train.patience "
                          f"{patience} can end a run early (use 0, or ≥ train.epochs "
                          f"{train['epochs']}, which marks the best epoch without stopping)")
    if (parse_target(config.get("report", {}).get("target", 0.9))[1]
            and config["data"]["name"] != "motifs"):
        raise ConfigError(f"report.target: {config['report']['target']!r} needs a task whose "
                          "best accuracy is known (data=motifs); use a number in (0, 1]")


def check_conv(config: dict) -> None:
    """The conv baseline: fixed-length series (no padding to mask), filters that fit them."""
    if data.from_file(config["data"]):
        raise ConfigError("model: conv takes series of one length (data=mnist or motifs); "
                          "a file's series may be padded, which it cannot mask")
    width = config["model"].get("width", models.CONV_WIDTH)
    timesteps, _, _ = data.sequence_shape(config["data"]["name"], data.settings(config["data"]))
    if isinstance(width, bool) or not isinstance(width, int) or not 1 <= width <= timesteps:
        raise ConfigError(f"model.width: {width!r} is not allowed; use an integer in "
                          f"1..{timesteps} (the series' steps)")


def check_sweep(configs: list[dict]) -> None:
    """What the jobs of one sweep must share: one Keras backend (Keras loads one per process);
    a race needs seeds left over for its winners."""
    seeds = {config["seed"] for config in configs}
    race = configs[0].get("report", {}).get("race_seeds", 0)
    if race and race >= len(seeds):
        raise ConfigError(f"report.race_seeds: {race} leaves no seed to train the winners on; the "
                          f"sweep has {len(seeds)} seeds: use fewer than that, or 0")
    backends = sorted({config.get("backend", "tensorflow") for config in configs})
    if len(backends) > 1:
        raise ConfigError(f"backend: {', '.join(backends)} in one sweep; Keras loads one "
                          "backend per process, so run one sweep per backend")


def check_backend(backend: str) -> None:
    """A Keras backend that is unknown or not installed here → one-line ConfigError."""
    if backend not in BACKENDS:
        raise ConfigError(f"backend: {backend!r} is unknown; allowed: {', '.join(BACKENDS)}")
    if importlib.util.find_spec(backend) is None:
        raise ConfigError(f"backend: {backend} is not installed here; install it with "
                          f"{INSTALL[backend]}")


def parse_target(target) -> tuple[float, bool]:
    """report.target → (fraction, of_ceiling): 0.9 asks for 90% test accuracy, "0.95 of bayes"
    for 95% of the best accuracy the task allows (the synthetic task's Bayes ceiling)."""
    of_ceiling = isinstance(target, str)
    value = target
    if of_ceiling:
        match = re.fullmatch(r"\s*(\d*\.?\d+)\s+of\s+bayes\s*", target, re.IGNORECASE)
        value = float(match.group(1)) if match else -1.0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ConfigError(f"report.target: {target!r} is not allowed; use a number in (0, 1] "
                          "or '<fraction> of bayes' (of the synthetic task's ceiling)")
    return float(value), of_ceiling


def check_report(report: dict) -> None:
    """The study's `report:` section: which analysis answers it and its accuracy target."""
    analysis = report.get("analysis", "auto")
    if analysis not in ANALYSES:
        raise ConfigError(f"report.analysis: {analysis!r} is unknown; allowed: {', '.join(ANALYSES)}")
    parse_target(report.get("target", 0.9))
    weights = report.get("weights", "best")
    if weights not in WEIGHTS:
        raise ConfigError(f"report.weights: {weights!r} is unknown; allowed: {', '.join(WEIGHTS)}")
    select = report.get("select") or []
    if not isinstance(select, (list, tuple)) or any(key not in SELECTABLE for key in select):
        raise ConfigError(f"report.select: {select!r} is not allowed; use a list of "
                          f"{', '.join(SELECTABLE)}")
    select_on = report.get("select_on", SELECT_ON[0])
    if select_on not in SELECT_ON:
        raise ConfigError(f"report.select_on: {select_on!r} is not allowed; use "
                          f"{' or '.join(SELECT_ON)} (test accuracy never chooses)")
    race = report.get("race_seeds", 0)
    if isinstance(race, bool) or not isinstance(race, int) or race < 0:
        raise ConfigError(f"report.race_seeds: {race!r} is not allowed; use an integer ≥ 0 "
                          "(0: no race)")
    if race and not select:
        raise ConfigError(f"report.race_seeds: {race} needs settings to race (report.select, "
                          "e.g. [train.learning_rate]); use 0")
    out = report.get("out", "results")
    if not isinstance(out, str) or not out:
        raise ConfigError(f"report.out: {out!r} is not allowed; use a folder path")
