"""What every analysis shares: a study's runs as pandas tables (one row per configuration and
seed, then one per configuration with t-intervals over seeds), their markdown and the plots'
common parts. Knows nothing of MLflow: the runs come in as `mlflow.search_runs` output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats


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


