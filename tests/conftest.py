"""Shared helpers: run the real sweep entry point in a subprocess against a temporary store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_sweep(study: str, *overrides: str, store: Path, timeout: int = 600, extra_env=None):
    """`python -m harness STUDY OVERRIDES...` with MLflow pointed at `store`."""
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    env.update(extra_env or {})
    overrides = (*overrides, f"hydra.sweep.dir={store.parent}/hydra")
    return subprocess.run(
        [sys.executable, "-m", "harness", study, *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "mlflow.db"
