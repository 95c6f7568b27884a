"""The code's layout: the import graph has no cycles and runs one way (the contracts in
pyproject.toml, [tool.importlinter], checked by import-linter's own command)."""

import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT


def test_imports_follow_the_contracts():
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(linter), "--no-cache"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "3 kept, 0 broken" in result.stdout


def test_every_analysis_a_study_can_name_is_registered():
    from harness import analyses, config

    assert set(analyses.REGISTRY) == set(config.ANALYSES) - {"auto"}
