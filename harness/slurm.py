"""What the Slurm scheduler says: the job this process runs in, and whether a job recorded on a
run is still alive — so that a run left RUNNING by a job the scheduler killed is found from any
host that can reach the scheduler, not only from the node it ran on."""

from __future__ import annotations

import os
import shutil
import subprocess


def job_tags() -> dict[str, str]:
    """The Slurm job of this process as squeue and sacct name it (an array task: ARRAY_TASK),
    and its cluster; empty outside Slurm."""
    env = os.environ
    if "SLURM_ARRAY_JOB_ID" in env and "SLURM_ARRAY_TASK_ID" in env:
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    else:
        job = env.get("SLURM_JOB_ID")
    if not job:
        return {}
    return {"slurm_job_id": job, "slurm_cluster": env.get("SLURM_CLUSTER_NAME", "")}


def _run(*command: str) -> str | None:
    """A Slurm command's stdout, or None where it is missing, fails or hangs."""
    if not shutil.which(command[0]):
        return None
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


class Scheduler:
    """One look at the scheduler this host talks to: its cluster name and its live jobs."""

    def __init__(self, cluster: str, alive: set[str]):
        self.cluster, self.alive = cluster, alive

    @classmethod
    def here(cls) -> Scheduler | None:
        """The local scheduler, or None where no Slurm answers (then nothing is judged)."""
        config = _run("scontrol", "show", "config")
        queue = _run("squeue", "--noheader", "--array", "--format=%i")
        if config is None or queue is None:
            return None
        cluster = next((line.split("=", 1)[1].strip() for line in config.splitlines()
                        if line.startswith("ClusterName")), "")
        return cls(cluster, set(queue.split()))

    def knows(self, tags: dict) -> bool:
        """Whether a run's job ran on this scheduler's cluster."""
        return "slurm_job_id" in tags and tags.get("slurm_cluster", "") == self.cluster

    def ended(self, job: str) -> str | None:
        """None while the job is pending or running; else how it ended, from accounting where
        the cluster has it (e.g. 'CANCELLED by 0', 'TIMEOUT')."""
        if job in self.alive:
            return None
        state = _run("sacct", "--noheader", "--allocations", "--parsable2",
                     "--format=State", f"--jobs={job}")
        lines = [line for line in (state or "").splitlines() if line.strip()]
        return lines[-1] if lines else "no longer in the queue"
