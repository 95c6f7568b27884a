"""How a job's config is made: the study file composed with conf/ by Hydra, a sweep's overrides
expanded into jobs, each choice of config groups composed once and a job's values applied to a
copy, and the names in the overrides checked first. What `sweep` and `explain` both use."""

from __future__ import annotations

import copy

import hydra
from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from harness.config import ConfigError, check_config, check_sweep
from harness.study import CONF, EXPERIMENTS, choices


def check_names(study: str, overrides: list[str]) -> None:
    """Unknown study / data / model / key → ConfigError, one line (Hydra's own is several)."""
    if study not in choices(EXPERIMENTS):
        raise ConfigError(f"STUDY: unknown study {study!r}; "
                          f"allowed: {', '.join(choices(EXPERIMENTS))}")
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except Exception as error:
        raise ConfigError(f"ARGS: cannot parse overrides {overrides}: "
                          f"{str(error).splitlines()[0]}") from None
    for override in parsed:
        group = override.key_or_group
        if not (CONF / group).is_dir():  # a config group's choice (data, model, budget, shape)
            continue
        allowed = choices(CONF / group)
        values = (
            list(override.sweep_string_iterator())
            if override.is_sweep_override()
            else [override.get_value_element_as_str()]
        )
        for value in values:
            if value not in allowed:
                raise ConfigError(f"{group}: unknown {group} {value!r}; allowed: {', '.join(allowed)}")
    check_keys(study, parsed)


def check_keys(study: str, parsed: list) -> None:
    """An override of a key the study's config does not have (`model.unitz=3`) → one line
    naming it and the keys there (Hydra's own error is several lines). Keys added with `+`,
    deleted with `~`, and Hydra's own are left to Hydra."""
    groups = [o for o in parsed if (CONF / o.key_or_group).is_dir()]
    first = [f"{o.key_or_group}={next(iter(o.sweep_string_iterator()))}"
             if o.is_sweep_override() else o.input_line for o in groups]
    with hydra.initialize_config_dir(config_dir=str(EXPERIMENTS), version_base="1.3"):
        config = hydra.compose(study, overrides=[f"hydra.searchpath=[file://{CONF}]", *first])
    for override in parsed:
        key = override.key_or_group
        if (override in groups or override.is_add() or override.is_force_add()
                or override.is_delete() or key.split(".")[0] == "hydra"):
            continue
        parent, _, name = key.rpartition(".")
        node = OmegaConf.select(config, parent) if parent else config
        if not isinstance(node, DictConfig):
            raise ConfigError(f"{key}: unknown key; {parent} is a value, not a section")
        if name not in node:
            raise ConfigError(f"{key}: unknown key; allowed in {parent or 'the config'}: {', '.join(node)} "
                 f"(a new key: +{key}=...)")


def job_overrides(config: DictConfig) -> list[list[str]]:
    """The override list of every job, expanded as Hydra's basic sweeper expands them."""
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
            if ((repository.group_exists(o.key_or_group) or (CONF / o.key_or_group).is_dir())
                and not isinstance(o.value(), dict))
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
        except ConfigError:
            raise
        except Exception as error:  # composition: unknown key or group option
            raise ConfigError(
                f"ARGS {' '.join(overrides)}: {str(error).splitlines()[0]}") from None
    return configs


def one_job(overrides: list[str]) -> dict:
    """The config of a single job of conf/config.yaml with `overrides` (`make explain`),
    checked; ConfigError, one line, for anything wrong."""
    check_names("smoke", overrides)  # unknown data / model / key
    with hydra.initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        try:
            config = job_config(hydra.compose("config", overrides=[*overrides, "study=explain"]))
        except Exception as error:
            raise ConfigError(f"ARGS {' '.join(overrides)}: {str(error).splitlines()[0]}") from None
    check_config(config)
    return config


def study_jobs(study: str, overrides: list[str]) -> list[dict]:
    """Every job's config of `make sweep STUDY=study ARGS='overrides'`, composed and checked as
    the sweep does before any training, in this process; ConfigError, one line, for the first
    thing wrong."""
    check_names(study, overrides)
    with hydra.initialize_config_dir(config_dir=str(EXPERIMENTS), version_base="1.3"):
        master = hydra.compose(study, overrides=[f"hydra.searchpath=[file://{CONF}]"],
                               return_hydra_config=True)
        with open_dict(master):
            master.hydra.overrides.task = list(overrides)
        HydraConfig.instance().set_config(master)
        configs = composed_jobs(master, job_overrides(master))
    check_sweep(configs)
    return configs
