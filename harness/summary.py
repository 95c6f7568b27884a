"""What every analysis shares: a study's runs as pandas tables (one row per configuration and
seed, then one per configuration with t-intervals over seeds), their markdown and the plots'
common parts. Knows nothing of MLflow: the runs come in as `mlflow.search_runs` output."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from harness.selection import race_choice, race_seeds_of


# One configuration = these columns; a row of summary.csv per configuration.
CONFIG_COLUMNS = [
    "units", "cell", "width", "dataset", "batch_size", "timesteps", "train_size",
    "fresh_each_epoch", "motifs_seed",  # the synthetic task's: new data each epoch, motif draw
    "label_noise", "random_inputs", "epochs", "learning_rate",
    "patience",  # patience: only runs that stop early have it
    "updates",  # only runs whose budget is counted in batches (train.updates) have it
]
NUMERIC_PARAMS = [
    "units", "batch_size", "timesteps", "input_dim", "num_classes", "epochs", "learning_rate",
    "seed", "train_size", "label_noise", "patience", "fresh_each_epoch", "motifs_seed", "width",
    "random_inputs", "updates",
]
SUMMARY_METRICS = [
    "test_accuracy", "train_accuracy", "generalization_gap", "best_val_accuracy",
    "fit_accuracy",  # on the (noisy) labels trained on: memorisation shows here
    "test_loss", "train_loss", "samples_per_s",
    "final_val_accuracy",  # of the tested weights: what a selection on validation compares
    "epochs_trained", "best_epoch",
    "bayes_accuracy", "bayes_test_accuracy",  # the synthetic task's ceiling (harness/data.py)
    # the last epoch's weights where early stopping restored the best epoch's
    "last_test_accuracy", "last_train_accuracy", "last_fit_accuracy", "last_generalization_gap",
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


# Below this many seeds an interval shows the seeds' range (min–max), not a t-interval.
MIN_SEEDS_FOR_CI = 5
# The range a metric can take, for an interval that stays inside it: fractions in [0, 1], the
# gap in [-1, 1], positive quantities (losses, throughput) above 0.
BOUNDS = {
    "test_accuracy": (0, 1), "train_accuracy": (0, 1), "best_val_accuracy": (0, 1),
    "final_val_accuracy": (0, 1), "fit_accuracy": (0, 1), "generalization_gap": (-1, 1),
    "test_loss": (0, np.inf), "train_loss": (0, np.inf), "samples_per_s": (0, np.inf),
    "epochs_trained": (0, np.inf), "best_epoch": (0, np.inf),
    "bayes_accuracy": (0, 1), "bayes_test_accuracy": (0, 1),
    "last_test_accuracy": (0, 1), "last_train_accuracy": (0, 1), "last_fit_accuracy": (0, 1),
    "last_generalization_gap": (-1, 1),
}


def t_interval(values: pd.Series, bounds: tuple[float, float] = (-np.inf, np.inf)
               ) -> tuple[float, float]:
    """Two-sided 95% Student-t interval of the mean, cut at `bounds`, the range the metric can
    take (an accuracy's interval near 100% ends at 100%); NaN with fewer than two values."""
    values = pd.Series(values, dtype=float).dropna()
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1) * values.std(ddof=1)
    half /= np.sqrt(len(values))
    low, high = bounds
    return float(max(values.mean() - half, low)), float(min(values.mean() + half, high))


def interval(values: pd.Series, metric: str) -> tuple[float, float]:
    """The interval a report shows for a metric over seeds: the bounded 95% t-interval with
    MIN_SEEDS_FOR_CI seeds or more, the seeds' range (min–max) with fewer, NaN for one."""
    values = pd.Series(values, dtype=float).dropna()
    if len(values) < 2:
        return float("nan"), float("nan")
    if len(values) < MIN_SEEDS_FOR_CI:
        return float(values.min()), float(values.max())
    return t_interval(values, BOUNDS.get(metric, (-np.inf, np.inf)))


def interval_kind(seeds: int) -> str:
    """What a row's *_ci_low and *_ci_high columns hold (`interval`): "t95" (the bounded 95%
    t-interval), "range" (the seeds' min–max) or "none" (one seed)."""
    return "t95" if seeds >= MIN_SEEDS_FOR_CI else "range" if seeds > 1 else "none"


def interval_text(summary: pd.DataFrame) -> str:
    """How the report's intervals were made, for its footer."""
    seeds = summary["n_seeds"] if "n_seeds" in summary else pd.Series(dtype=int)
    parts = []
    if (seeds >= MIN_SEEDS_FOR_CI).any():
        parts.append(f"with ≥ {MIN_SEEDS_FOR_CI} seeds, 95% Student t over seeds, cut at the "
                     "metric's range (accuracies within 0–100%, throughput and losses above 0)")
    if ((seeds > 1) & (seeds < MIN_SEEDS_FOR_CI)).any():
        parts.append(f"with 2–{MIN_SEEDS_FOR_CI - 1} seeds, the seeds' range (min – max)")
    return "Intervals: " + "; ".join(parts) + "." if parts else "Intervals: one seed, none."


def aggregate(row: dict, group: pd.DataFrame, metrics) -> dict:
    """Add mean, std and the interval (ci_low, ci_high; see `interval`) over the group's seeds
    of each metric to `row`."""
    for metric in (m for m in metrics if m in group):
        low, high = interval(group[metric], metric)
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
        row["interval"] = interval_kind(row["n_seeds"])  # what every *_ci_low/_ci_high holds
        row["param_count"] = int(group["param_count"].iloc[0])
        if "num_classes" in group:
            row["num_classes"] = int(group["num_classes"].iloc[0])
        aggregate(row, group, SUMMARY_METRICS)
        row["epoch_time_s_mean"] = float(group["epoch_time_s"].mean())
        rows.append(row)
    return pd.DataFrame(rows).sort_values(columns).reset_index(drop=True)


def select(summary: pd.DataFrame, keys: list[str], frame: pd.DataFrame | None = None,
           on: str = "final_val_accuracy", race_seeds: int = 0
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Model selection on validation: for each configuration apart from the selected training
    settings (`keys`, e.g. ["train.learning_rate"]), the row whose tested weights have the best
    mean validation accuracy over seeds (`on`; a memorisation study chooses on fit_accuracy,
    the fit of its training labels); a tie goes to the smallest setting. Test metrics never
    enter. A study that raced (`race_seeds` > 0, `frame` its runs, one row per seed) chooses by
    the race's own rule (harness/selection.py: compared on the race's seeds, a candidate with
    one of them missing out), so the report keeps the setting the sweep trained further.
    Returns the selected rows and the selection table (every candidate, its score on the seeds
    compared, `selected`)."""
    chosen = [key.split(".")[-1] for key in keys]
    columns = [c for c in CONFIG_COLUMNS if c in summary and c not in chosen]
    score = (f"{on}_mean" if f"{on}_mean" in summary or on != "final_val_accuracy"
             else "best_val_accuracy_mean")
    scores = summary[score].copy()
    configurations = summary.groupby(columns, dropna=False, sort=False).ngroup()
    compared = pd.Series("all", index=summary.index)
    winners = {}
    if race_seeds and frame is not None and not frame.empty:
        config = [c for c in CONFIG_COLUMNS if c in summary]
        runs = frame.merge(summary[config].reset_index(), on=config)
        by_seed = {i: dict(zip(rows["seed"].astype(int), rows[score.removesuffix("_mean")]))
                   for i, rows in runs.groupby("index")}
        for number, members in configurations.groupby(configurations):
            candidates = [(tuple(summary.loc[i, c] for c in chosen), by_seed.get(i, {}))
                          for i in members.index]
            seeds = race_seeds_of(candidates, race_seeds)
            for i, (_, per_seed) in zip(members.index, candidates):
                values = [per_seed.get(seed, np.nan) for seed in seeds]
                scores[i] = float(np.mean(values)) if seeds else np.nan
                compared[i] = ", ".join(map(str, seeds))
            winner = race_choice(candidates, race_seeds)
            if winner is not None:
                winners[number] = members.index[winner]
    best = [winners.get(number, group.idxmax() if group.notna().any() else group.index[0])
            for number, group in scores.groupby(configurations)]
    table = summary[[c for c in (*columns, *chosen) if c in summary]].copy()
    name = "val_accuracy" if on == "final_val_accuracy" else on
    table[f"{name}_mean"] = scores  # over the seeds compared
    table["n_seeds"] = summary["n_seeds"]
    if race_seeds:
        table["compared_on_seeds"] = compared
        table[f"{name}_all_seeds"] = summary[score]  # over all its n_seeds
    table["selected"] = summary.index.isin(best)
    selected = summary.loc[sorted(best)].reset_index(drop=True)
    selected.attrs["selected"] = chosen  # settings chosen per configuration, not factors
    selected.attrs["selected_on"] = on
    return selected, table


def swept_factors(summary: pd.DataFrame, leave_out=("units",)) -> list[str]:
    """Configuration columns, other than `leave_out` and the settings chosen on validation
    (`select`), that take more than one value."""
    leave_out = (*leave_out, *summary.attrs.get("selected", ()))
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
        yield ", ".join(factor_text(f, v) for f, v in zip(factors, key)), group


def factor_text(factor: str, value) -> str:
    if factor == "fresh_each_epoch":
        return "new data each epoch" if value == 1 else "fixed data"
    return f"{factor}={fmt(value)}"


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


