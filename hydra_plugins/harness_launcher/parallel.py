"""Hydra's joblib launcher (`make sweep JOBS=n`), its workers composing each choice of config
groups once instead of every job's config from scratch.

Hydra's joblib workers compose each job's config anew (~0.09 s a job here: the defaults list, the
YAML files, the merge), though the jobs of a sweep differ mostly in values (`model.units=8
seed=3`). Here a worker composes each choice of groups once, then applies a job's value
overrides to a copy with the function Hydra applies them with, and records the job's overrides
as Hydra does (tests/test_sweep.py checks the configs equal Hydra's own, its hydra node included)."""

from __future__ import annotations

from typing import Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra.types import HydraContext, TaskFunction
from hydra_plugins.hydra_joblib_launcher.joblib_launcher import JoblibLauncher
from omegaconf import DictConfig

from harness.compose import sweep_job_config


class ComposingOnceLoader(ConfigLoaderImpl):
    """Hydra's config loader; a sweep job's config from its choice of groups composed once
    (harness.compose.sweep_job_config)."""

    def load_sweep_config(self, master_config: DictConfig,
                          sweep_overrides: Sequence[str]) -> DictConfig:
        return sweep_job_config(self, master_config, list(sweep_overrides),
                                compose=super().load_sweep_config)


class ParallelLauncher(JoblibLauncher):
    """The joblib launcher with ComposingOnceLoader as its jobs' config loader."""

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        loader = ComposingOnceLoader(hydra_context.config_loader.get_search_path())
        super().setup(
            hydra_context=HydraContext(config_loader=loader, callbacks=hydra_context.callbacks),
            task_function=task_function, config=config,
        )
