"""Hydra's basic sweeper without its second composition of every job.

Before a sweep launches anything, the basic sweeper composes each job's config once more to
catch composition errors early. harness.sweep.SweepCallback has composed and checked every job
already (on_multirun_start runs first and stops the sweep with a one-line error), so the
second pass only delays the first job: ~0.2 s a job here, 11 s of a 55-job sweep."""

from __future__ import annotations

from typing import Sequence

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper


class CheckedSweeper(BasicSweeper):
    def validate_batch_is_legal(self, batch: Sequence[Sequence[str]]) -> None:
        """Nothing to do: the sweep's callback composed and checked these jobs."""
