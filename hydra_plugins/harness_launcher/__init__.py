"""Hydra's submitit Slurm launcher, changed in one respect: a job that the scheduler ended
without a result (scancel, time limit, preemption, node failure) is reported, not raised, so
that the sweep waits for its other jobs, closes its parent run and writes its report. The
plugin's own `launch` raises at the first such job and leaves the rest unwatched."""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path
from typing import Sequence

from hydra.core.singleton import Singleton
from hydra.core.utils import JobReturn, JobStatus
from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import (
    SlurmLauncher as SubmititSlurmLauncher,
)
from omegaconf import OmegaConf

from harness import tracking
from harness.console import fail
from harness.plan import SweepState


class SlurmLauncher(SubmititSlurmLauncher):
    def launch(self, job_overrides: Sequence[Sequence[str]],
               initial_job_idx: int) -> Sequence[JobReturn]:
        import submitit

        # Executor and parameters exactly as the plugin builds them.
        executor = submitit.AutoExecutor(
            cluster="slurm", folder=self.params["submitit_folder"],
            slurm_max_num_timeout=self.params["max_num_timeout"],
        )
        shared = set(OmegaConf.structured(BaseQueueConf).keys())
        executor.update_parameters(**{
            key if key in shared else f"slurm_{key}": value
            for key, value in self.params.items()
            if key not in ("submitit_folder", "max_num_timeout")
        })
        Path(str(self.config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
        # Jobs with nothing to train (finished already, packed into another job) are not
        # submitted: on a cluster each task waits in the queue and starts Python for nothing.
        idle = set(SweepState.current().idle)
        numbers = [initial_job_idx + offset for offset in range(len(job_overrides))]
        submit = [number for number in numbers if number not in idle]
        print(f"slurm: {len(submit)} of {len(numbers)} jobs submitted as one array"
              + (f" ({len(numbers) - len(submit)} have nothing to train)" if idle else ""),
              flush=True)
        arguments = [
            (list(job_overrides[number - initial_job_idx]), "hydra.sweep.dir", number,
             f"job_id_for_{number}", Singleton.get_state())
            for number in submit
        ]
        printed = io.StringIO()  # submitit prints sbatch's refusal before raising it
        try:
            with contextlib.redirect_stderr(printed):
                jobs = dict(zip(submit, executor.map_array(self, *zip(*arguments))
                                if submit else []))
        except submitit.core.utils.FailedJobError as error:
            self.refused(str(error))
        sys.stderr.write(printed.getvalue())
        return [
            self.outcome(jobs[number], job_overrides[number - initial_job_idx])
            if number in jobs else
            JobReturn(overrides=list(job_overrides[number - initial_job_idx]),
                      status=JobStatus.COMPLETED, _return_value="not submitted")
            for number in numbers
        ]

    def refused(self, message: str) -> None:
        """sbatch refused the array (no job ran): the sweep's parent run FAILED, then one line
        naming the setting to change and exit 2."""
        uri = tracking.connect(self.config.tracking.uri)
        tracking.finish_parent(uri, SweepState.current().parent, "FAILED", {"submitted": 0})
        reason = next((line.strip() for line in message.splitlines() if line.strip()), message)
        hint = ("; on a partition without GPUs set hydra.launcher.gpus_per_node=null "
                "(ARGS='hydra.launcher.gpus_per_node=null')" if "gres" in reason.lower() else
                "; see conf/hydra/launcher/slurm.yaml for the settings (partition, mem_gb, ...)")
        fail(f"hydra.launcher: sbatch refused the job array: {reason}{hint}")

    @staticmethod
    def outcome(job, overrides: Sequence[str]) -> JobReturn:
        """The job's JobReturn. A job that ended without one (killed) or whose task raised
        outside the harness's own handling (e.g. submitit's time-limit signal during start-up)
        is printed with its Slurm state and returned as done: the harness's runs in MLflow
        record what happened to the training, and the sweep's summary counts it."""
        import submitit

        try:
            result = job.results()[0]
            if result.status != JobStatus.FAILED:
                return result
            lines = str(result._return_value).strip().splitlines()
            reason = f": {type(result._return_value).__name__}: {lines[0] if lines else ''}"
        except submitit.core.utils.UncompletedJobError:
            reason = ""  # killed: no result file to read
        print(f"slurm job {job.job_id} ({' '.join(overrides)}) ended without a result, "
              f"state {job.state}{reason}", flush=True)
        return JobReturn(overrides=list(overrides), status=JobStatus.COMPLETED,
                         _return_value=f"slurm job {job.job_id}: {job.state}")
