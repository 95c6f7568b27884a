"""Where a study lives: the project's folders, the study files in experiments/, and what a study
file's header (its question and budget) and `report:` section say. Imports no framework."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "conf"
EXPERIMENTS = ROOT / "experiments"


def choices(folder: Path) -> list[str]:
    """The names of the YAML files in `folder`: the studies, or a config group's options."""
    return sorted(path.stem for path in folder.glob("*.yaml"))


def study_header(study: str) -> tuple[str, str]:
    """The study file's opening comment: (its question, the rest — budget and caveats)."""
    path = EXPERIMENTS / f"{study}.yaml"
    lines = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    if not lines:
        return "", ""
    return lines[0], " ".join(line for line in lines[1:] if line)


def question_text(study: str) -> str:
    """The study's question and budget, from its YAML header, as markdown."""
    question, budget = study_header(study)
    if not question:
        return study
    return "\n\n".join(part for part in (f"**{question}**", budget, f"`experiments/{study}.yaml`")
                       if part)


def report_settings(study: str) -> dict:
    """The `report:` section of conf/config.yaml, updated by the study's own."""
    settings = OmegaConf.load(CONF / "config.yaml").report
    path = EXPERIMENTS / f"{study}.yaml"
    if path.is_file():
        settings = OmegaConf.merge(settings, OmegaConf.load(path).get("report") or {})
    return OmegaConf.to_container(settings)
