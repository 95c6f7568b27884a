"""A study's report: its child runs from MLflow as a pandas table, summarised across seeds with
t-intervals, then answered by the analysis the study names (harness/analyses.py) and written as
results/STUDY/{summary.csv, report.md, the analysis's plots}.

`python -m harness.report STUDY [--target 0.9]` writes them and logs them to the study's latest
parent run. This module owns what every analysis shares: loading, aggregation, markdown, plots."""

from __future__ import annotations

import argparse
import datetime
import os
import re
import sys
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
from omegaconf import OmegaConf
from scipy import stats

from harness.config import ANALYSES

# One configuration = these columns; a row of summary.csv per configuration.
CONFIG_COLUMNS = [
    "units", "cell", "dataset", "batch_size", "timesteps", "train_size", "label_noise", "epochs",
    "learning_rate",
]
NUMERIC_PARAMS = [
    "units", "batch_size", "timesteps", "input_dim", "num_classes", "epochs", "learning_rate",
    "seed", "train_size", "label_noise",
]
SUMMARY_METRICS = [
    "test_accuracy", "train_accuracy", "generalization_gap", "best_val_accuracy",
    "fit_accuracy",  # on the (noisy) labels trained on: memorisation shows here
    "test_loss", "train_loss", "samples_per_s",
]
CONFIDENCE = 0.95
ROOT = Path(__file__).resolve().parent.parent
EXPERIMENTS = ROOT / "experiments"


# --------------------------------------------------------------------------------------------
# The study: its question and its report settings


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


def report_settings(study: str) -> dict:
    """The `report:` section of conf/config.yaml, updated by the study's own."""
    settings = OmegaConf.load(ROOT / "conf" / "config.yaml").report
    path = EXPERIMENTS / f"{study}.yaml"
    if path.is_file():
        settings = OmegaConf.merge(settings, OmegaConf.load(path).get("report") or {})
    return OmegaConf.to_container(settings)


# --------------------------------------------------------------------------------------------
# Runs → one row per (configuration, seed) → one row per configuration


def runs_frame(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per (configuration, seed) from `mlflow.search_runs` output: child runs only,
    params as numbers, and where a configuration and seed ran more than once (re-run with
    FORCE=1, or once packed and once alone) the newest FINISHED run counts.
    Columns are the bare names (`units`, `test_accuracy`, ...) plus run_id, status, run_key."""
    if runs.empty:
        return pd.DataFrame()
    parent_column = "tags.mlflow.parentRunId"
    children = runs[runs[parent_column].notna()] if parent_column in runs else runs.iloc[:0]
    frame = pd.DataFrame(
        {
            "run_id": children["run_id"],
            "status": children["status"],
            "start_time": children["start_time"],
            "end_time": children["end_time"],
            "run_key": children.get("tags.run_key"),
        }
    )
    for column in children.columns:
        for prefix in ("params.", "metrics."):
            if column.startswith(prefix):
                frame[column[len(prefix) :]] = children[column]
    for name in NUMERIC_PARAMS:
        if name in frame:
            frame[name] = pd.to_numeric(frame[name], errors="coerce")
    finished = frame[frame["status"] == "FINISHED"].sort_values("start_time")
    identity = [name for name in (*CONFIG_COLUMNS, "input_dim", "num_classes", "seed")
                if name in finished]
    newest = finished.drop_duplicates(identity or ["run_key"], keep="last")
    return newest.reset_index(drop=True)


def t_interval(values: pd.Series) -> tuple[float, float]:
    """Two-sided 95% Student-t interval of the mean; NaN with fewer than two values."""
    values = pd.Series(values).dropna()
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1) * values.std(ddof=1)
    half /= np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


def aggregate(row: dict, group: pd.DataFrame, metrics) -> dict:
    """Add mean, std, ci_low and ci_high over the group's seeds of each metric to `row`."""
    for metric in (m for m in metrics if m in group):
        low, high = t_interval(group[metric])
        row[f"{metric}_mean"] = float(group[metric].mean())
        row[f"{metric}_std"] = float(group[metric].std(ddof=1)) if len(group) > 1 else np.nan
        row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
    return row


def summarize(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: n_seeds, param_count, mean/std/ci_low/ci_high of the summary
    metrics and the mean epoch_time_s, sorted by configuration."""
    columns = [c for c in CONFIG_COLUMNS if c in frame]
    rows = []
    for key, group in frame.groupby(columns, dropna=False, sort=True):
        row = dict(zip(columns, key if isinstance(key, tuple) else (key,)))
        row["n_seeds"] = int(group["seed"].nunique())
        row["param_count"] = int(group["param_count"].iloc[0])
        if "num_classes" in group:
            row["num_classes"] = int(group["num_classes"].iloc[0])
        aggregate(row, group, SUMMARY_METRICS)
        row["epoch_time_s_mean"] = float(group["epoch_time_s"].mean())
        rows.append(row)
    return pd.DataFrame(rows).sort_values(columns).reset_index(drop=True)


def swept_factors(summary: pd.DataFrame, leave_out=("units",)) -> list[str]:
    """Configuration columns, other than `leave_out`, that take more than one value."""
    return [
        c for c in CONFIG_COLUMNS if c not in leave_out and c in summary and summary[c].nunique() > 1
    ]


def groups(summary: pd.DataFrame, factors: list[str]):
    """(label, rows) per combination of `factors`, e.g. ("train_size=500", ...)."""
    if not factors:
        yield "", summary
        return
    for key, group in summary.groupby(factors, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield ", ".join(f"{f}={fmt(v)}" for f, v in zip(factors, key)), group


def choose_analysis(setting: str, summary: pd.DataFrame) -> str:
    """The study's analysis; `auto` picks it from what was swept."""
    if setting != "auto":
        return setting
    if "label_noise" in summary and (summary["label_noise"] == 1.0).all():
        return "memorization"
    factors = swept_factors(summary)
    if summary["units"].nunique() == 1 and {"batch_size", "timesteps"} & set(factors):
        return "batch_timesteps"
    return "capacity"


# --------------------------------------------------------------------------------------------
# Text


def fmt(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def pct(value) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.2%}"


def with_ci(row, metric: str, show=pct) -> str:
    """`mean (ci_low – ci_high)` of a summary row's metric."""
    low, high = row[f"{metric}_ci_low"], row[f"{metric}_ci_high"]
    interval = "" if np.isnan(low) else f" ({show(low)} – {show(high)})"
    return f"{show(row[f'{metric}_mean'])}{interval}"


def markdown(frame: pd.DataFrame) -> str:
    """A DataFrame as a markdown table; floats to three significant digits."""
    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Plots


def pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    return plt


def band(axes, group: pd.DataFrame, metric: str, style: str, label: str, x="param_count",
         scale: float = 1.0):
    """Mean of `metric` against `x` with its 95% CI as a shaded band; `scale` multiplies y."""
    group = group.sort_values(x)
    line = axes.plot(group[x], scale * group[f"{metric}_mean"], style, markersize=4,
                     label=label)[0]
    axes.fill_between(group[x], scale * group[f"{metric}_ci_low"],
                      scale * group[f"{metric}_ci_high"], color=line.get_color(), alpha=0.15)
    return line


def finish(figure, axes, *, xlabel: str, ylabel: str, title: str, xscale="log") -> None:
    axes.set_xscale(xscale)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title, fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=7)


def save(figure, path: Path) -> None:
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    pyplot().close(figure)


# --------------------------------------------------------------------------------------------
# The report


def write_report(
    study: str, runs: pd.DataFrame, out: Path, *, settings: dict, parent_id: str | None,
    histories=None,
) -> dict[str, Path]:
    """Write summary.csv, the analysis's plots and tables, and report.md for the study.
    `histories(run_ids)` returns per-epoch metrics (tracking.metric_histories), for the
    analyses that plot learning curves."""
    from harness import analyses

    frame = runs_frame(runs)
    if frame.empty:
        raise ValueError(f"STUDY: {study!r} has no FINISHED runs; run `make sweep STUDY={study}`")
    summary = summarize(frame)
    name = choose_analysis(settings.get("analysis", "auto"), summary)
    result = getattr(analyses, name)(summary, frame, target=float(settings.get("target", 0.9)),
                                     histories=histories)
    out.mkdir(parents=True, exist_ok=True)
    files = {"summary": out / "summary.csv"}
    summary.to_csv(files["summary"], index=False, float_format="%.6g")
    for file_name, table in result.tables.items():
        files[file_name] = out / file_name
        table.to_csv(files[file_name], index=False, float_format="%.6g")
    for file_name, draw in result.plots.items():
        files[file_name] = out / file_name
        draw(files[file_name])
    children = runs[runs.get("tags.mlflow.parentRunId").notna()] if len(runs) else runs
    counts = children["status"].value_counts().to_dict()
    question, budget = study_header(study)
    started = pd.to_datetime(frame["start_time"])
    text = [
        f"# {question or study}",
        "",
        f"Study `{study}` (`experiments/{study}.yaml`), analysis `{name}`. {budget}".strip(),
        "",
        "## Answer",
        "",
        *result.answer,
        "",
        *[block for section in result.sections if section for block in (section, "")],
        *[f"![{Path(f).stem}]({f})\n" for f in result.plots],
        f"Runs: {len(frame)} counted (newest FINISHED per configuration and seed) of "
        f"{len(children)} child runs ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}), "
        f"started {started.min():%Y-%m-%d %H:%M} – {started.max():%Y-%m-%d %H:%M} UTC. "
        f"Training compute: {frame['train_time_s'].sum() / 3600:.2f} h. "
        "CI: 95% Student t over seeds.",
        "",
        f"Reproduce: `make sweep STUDY={study} && make report STUDY={study}` "
        f"(report written {datetime.date.today().isoformat()}"
        + (f"; MLflow parent run `{parent_id}`" if parent_id else "")
        + ").",
        "",
    ]
    files["report"] = out / "report.md"
    files["report"].write_text("\n".join(text))
    return files


def answer_text(report_md: str) -> str:
    """The Answer section of a report.md."""
    return report_md.split("## Answer\n\n", 1)[1].split("\n\n", 1)[0]


def report_study(uri: str, study: str, out: Path, *, settings: dict,
                 parent: str | None = None) -> Path:
    """Write results/STUDY/ from the store at `uri`, attach the files to the parent run (default:
    the study's latest) and make the report its description. Returns report.md's path;
    ValueError when nothing finished."""
    from harness import tracking

    runs = tracking.study_runs(uri, study)
    if runs is None:
        raise ValueError(f"STUDY: no experiment {study!r} in {uri}")
    parent = parent or tracking.latest_parent(runs)
    files = write_report(study, runs, out / study, settings=settings, parent_id=parent,
                         histories=partial(tracking.metric_histories, uri))
    if parent:
        tracking.log_report(uri, parent, list(files.values()))
        tracking.describe_run(uri, parent, ui_markdown(files["report"].read_text(), parent))
    return files["report"]


def ui_markdown(text: str, run_id: str) -> str:
    """report.md for the MLflow UI, which shows a description's first lines: the question in
    bold, the Answer straight after it (the budget is the experiment's description), and the
    plots pointing at the parent run's artifacts."""
    title, _, rest = text.partition("\n\n")
    rest = rest.split("\n\n", 1)[1] if rest.startswith("Study `") else rest
    text = f"**{title.lstrip('# ')}**\n\n{rest}"
    return re.sub(r"!\[([^]]*)\]\(([^)/]+\.png)\)",
                  rf"![\1](get-artifact?path=report%2F\2&run_uuid={run_id})", text)


def main(argv: list[str] | None = None) -> None:
    from harness import tracking

    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__)
    parser.add_argument("study")
    parser.add_argument("--target", default="", help="overrides the study's report.target")
    parser.add_argument("--out", default="results")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    settings = report_settings(args.study)
    if args.target:
        try:
            settings["target"] = float(args.target)
        except ValueError:
            settings["target"] = -1.0
        if not 0 < settings["target"] <= 1:
            print(f"error: TARGET: {args.target} is outside (0, 1]", file=sys.stderr)
            sys.exit(2)
    if settings.get("analysis") not in ANALYSES:
        print(f"error: report.analysis: {settings.get('analysis')!r} is unknown; allowed: "
              f"{', '.join(ANALYSES)}", file=sys.stderr)
        sys.exit(2)
    uri = tracking.connect(args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
    try:
        path = report_study(uri, args.study, Path(args.out), settings=settings)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    print(f"{answer_text(path.read_text())}\nreport: {path}")


if __name__ == "__main__":
    main()
