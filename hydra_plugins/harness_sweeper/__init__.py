"""Hydra's basic sweeper without its second composition of every job, and with the race of a
study that races its selected settings (race_seeds, harness/plan.py).

Before a sweep launches anything, the basic sweeper composes each job's config once more to
catch composition errors early. harness.sweep.SweepCallback has composed and checked every job
already (on_multirun_start runs first and stops the sweep with a one-line error), so the
second pass only delays the first job: ~0.2 s a job here, 11 s of a 55-job sweep.

A race launches the grid's jobs in two rungs: every candidate's jobs on the first seeds, then,
once they have ended, the jobs of each configuration's winner on the other seeds — which the
sweep (harness.sweep.Sweep.second_rung) chooses on validation from the tracking store."""

from __future__ import annotations

from pathlib import Path
from collections.abc import Sequence
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf


class CheckedSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Nothing to do: the sweep's callback composed and checked these jobs."""

    def sweep(self, arguments: list[str]) -> Any:
        from harness.sweep import submitted

        sweep = submitted()
        if sweep is None or not sweep.race:
            return super().sweep(arguments)
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*self._parse_config(), *arguments])
        jobs = [job for batch in self.split_arguments(overrides, None) for job in batch]
        if len(jobs) != len(sweep.runs):
            raise RuntimeError(f"the sweeper expanded {len(jobs)} jobs, the sweep planned "
                               f"{len(sweep.runs)}")
        sweep_dir = Path(self.config.hydra.sweep.dir)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        returns, launched = [], 0
        for rung in (lambda: sweep.first, sweep.second_rung):
            numbers = rung()
            # batches of max_batch_size as the basic sweeper's (LAUNCHER=local: JOBS at once)
            size = self.max_batch_size or len(numbers) or 1
            for start in range(0, len(numbers), size):
                batch = [jobs[number] for number in numbers[start:start + size]]
                results = self.launcher.launch(batch, initial_job_idx=launched)
                for result in results:
                    _ = result.return_value  # a job that raised: raised here, as Hydra's own
                returns.append(results)
                launched += len(batch)
        return returns
