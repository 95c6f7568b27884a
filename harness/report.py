"""The capacity report: a study's child runs from MLflow as a pandas table, summarised across
seeds with t-intervals, plotted against parameter count, and answered in words.

`python -m harness.report STUDY [--target 0.9]` writes results/STUDY/{summary.csv, capacity.png,
overfitting.png, report.md} and logs them to the study's latest parent run."""

from __future__ import annotations

import argparse
import datetime
import sys
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
]
CONFIDENCE = 0.95
EXPERIMENTS = Path(__file__).resolve().parent.parent / "experiments"


def study_header(study: str) -> list[str]:
    """The study file's opening comment: its question, then its budget and caveats."""
    path = EXPERIMENTS / f"{study}.yaml"
    if not path.is_file():
        return []
    lines = []
    for line in path.read_text().splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    if not lines:
        return []
    question, rest = lines[0], " ".join(line for line in lines[1:] if line)
    return [f"**Question:** {question}", "", rest, ""] if rest else [f"**Question:** {question}", ""]


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
    values = values.dropna()
    if len(values) < 2:
        return float("nan"), float("nan")
    half = stats.t.ppf((1 + CONFIDENCE) / 2, len(values) - 1) * values.std(ddof=1)
    half /= np.sqrt(len(values))
    return float(values.mean() - half), float(values.mean() + half)


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
        for metric in (m for m in SUMMARY_METRICS if m in group):
            low, high = t_interval(group[metric])
            row[f"{metric}_mean"] = float(group[metric].mean())
            row[f"{metric}_std"] = float(group[metric].std(ddof=1)) if len(group) > 1 else np.nan
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = low, high
        row["epoch_time_s_mean"] = float(group["epoch_time_s"].mean())
        rows.append(row)
    return pd.DataFrame(rows).sort_values(columns).reset_index(drop=True)


def minimal_units(summary: pd.DataFrame, target: float, column: str) -> int | None:
    """The smallest units whose `column` (e.g. test_accuracy_mean or test_accuracy_ci_low)
    reaches `target`; None if no size does. A larger size falling below the target again does
    not change the answer (see `non_monotone`)."""
    reached = summary[summary[column] >= target]
    return int(reached["units"].min()) if len(reached) else None


def non_monotone(summary: pd.DataFrame, target: float, column: str) -> list[int]:
    """Sizes above the minimal one that fall below the target again."""
    smallest = minimal_units(summary, target, column)
    if smallest is None:
        return []
    above = summary[(summary["units"] > smallest) & (summary[column] < target)]
    return sorted(int(u) for u in above["units"])


def memorization(frame: pd.DataFrame, threshold: float = 0.99) -> pd.DataFrame:
    """For runs on fully random labels (label_noise = 1): per size, the largest training set
    fitted to ≥ `threshold` accuracy on its own random labels (mean over seeds), and what that
    stores: N·log2(classes) bits over the parameter count (Collins et al. 2017: about 5)."""
    random = frame[(frame.get("label_noise") == 1.0) & frame.get("fit_accuracy").notna()]
    if random.empty:
        return pd.DataFrame()
    rows = []
    for (units, params), group in random.groupby(["units", "param_count"]):
        fits = group.groupby("train_size")["fit_accuracy"].mean()
        fitted = fits[fits >= threshold]
        largest = int(fitted.index.max()) if len(fitted) else 0
        classes = int(group["num_classes"].iloc[0])
        rows.append({
            "units": int(units), "param_count": int(params), "largest_fitted": largest,
            "tried": ", ".join(str(int(n)) for n in fits.index),
            "bits_per_param": largest * np.log2(classes) / params,
        })
    return pd.DataFrame(rows)


def swept_factors(summary: pd.DataFrame) -> list[str]:
    """Configuration columns other than units that take more than one value."""
    return [
        c for c in CONFIG_COLUMNS if c != "units" and c in summary and summary[c].nunique() > 1
    ]


def _groups(summary: pd.DataFrame, factors: list[str]):
    if not factors:
        yield "", summary
        return
    for key, group in summary.groupby(factors, dropna=False, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        yield ", ".join(f"{f}={_fmt(v)}" for f, v in zip(factors, key)), group


def _fmt(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # files only, no screen
    import matplotlib.pyplot as plt

    return plt


def _band(axes, group: pd.DataFrame, metric: str, style: str, label: str):
    """Mean of `metric` against param_count with its 95% CI as a shaded band."""
    line = axes.plot(group["param_count"], group[f"{metric}_mean"], style, markersize=4,
                     label=label)[0]
    axes.fill_between(group["param_count"], group[f"{metric}_ci_low"],
                      group[f"{metric}_ci_high"], color=line.get_color(), alpha=0.15)


def _save(figure, axes, *, xlabel: str, ylabel: str, title: str, path: Path) -> None:
    axes.set_xscale("log")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def plot_capacity(summary: pd.DataFrame, target: float, path: Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    for label, group in _groups(summary, swept_factors(summary)):
        group = group.sort_values("param_count")
        for metric, style in (("test_accuracy", "-o"), ("train_accuracy", "--s")):
            _band(axes, group, metric, style, f"{metric.split('_')[0]} {label}".strip())
        for _, row in group.iterrows():
            axes.annotate(
                f"{int(row['units'])}", (row["param_count"], row["test_accuracy_mean"]),
                textcoords="offset points", xytext=(0, -12), ha="center", fontsize=7,
            )
    axes.axhline(target, color="grey", linestyle=":", label=f"target {target:.0%}")
    _save(figure, axes, xlabel="parameters (log scale; labels: units)",
          ylabel="accuracy (mean, 95% CI band)", title="Accuracy against capacity", path=path)
    plt.close(figure)


def plot_overfitting(summary: pd.DataFrame, path: Path) -> None:
    plt = _pyplot()
    factors = [f for f in ("train_size", "label_noise") if f in swept_factors(summary)]
    factors += [f for f in swept_factors(summary) if f not in factors]
    figure, axes = plt.subplots(figsize=(8, 5))
    for label, group in _groups(summary, factors):
        _band(axes, group.sort_values("param_count"), "generalization_gap", "-o", label or "gap")
    axes.axhline(0, color="grey", linewidth=0.8)
    _save(figure, axes, xlabel="parameters (log scale)",
          ylabel="train accuracy − test accuracy (mean, 95% CI)",
          title="Generalization gap against capacity", path=path)
    plt.close(figure)


def _pct(value) -> str:
    return "—" if value is None or (isinstance(value, float) and np.isnan(value)) else f"{value:.2%}"


def answer(summary: pd.DataFrame, target: float) -> list[str]:
    """The report's answer, one block per combination of swept non-units factors."""
    lines = []
    for label, group in _groups(summary, swept_factors(summary)):
        by_mean = minimal_units(group, target, "test_accuracy_mean")
        by_ci = minimal_units(group, target, "test_accuracy_ci_low")
        heading = f"**{label}**: " if label else ""
        if by_mean is None:
            best = group.loc[group["test_accuracy_mean"].idxmax()]
            lines.append(
                f"- {heading}No size reaches {target:.0%} mean test accuracy; the best is "
                f"{int(best['units'])} units at {_pct(best['test_accuracy_mean'])}."
            )
            lines += gap_trend(group)
            continue
        row = group[group["units"] == by_mean].iloc[0]
        text = (
            f"- {heading}The smallest LSTM whose mean test accuracy reaches {target:.0%} has "
            f"**{by_mean} units** ({int(row['param_count']):,} parameters): "
            f"{_pct(row['test_accuracy_mean'])} (95% CI {_pct(row['test_accuracy_ci_low'])} – "
            f"{_pct(row['test_accuracy_ci_high'])}, {int(row['n_seeds'])} seeds). "
        )
        text += (
            f"The smallest whose whole CI is above {target:.0%}: **{by_ci} units**. "
            if by_ci is not None
            else f"No size has its whole CI above {target:.0%}. "
        )
        dips = non_monotone(group, target, "test_accuracy_mean")
        if dips:
            text += f"Not monotone: {', '.join(map(str, dips))} units fall below again. "
        big = group[group["units"] == 128]
        if len(big) and by_mean != 128:
            big = big.iloc[0]
            text += (
                f"The habitual 128 units: {_pct(big['test_accuracy_mean'])} with "
                f"{int(big['param_count']):,} parameters, "
                f"{big['param_count'] / row['param_count']:.0f}× as many."
            )
        lines.append(text)
        lines += gap_trend(group)
    return lines


def gap_trend(group: pd.DataFrame) -> list[str]:
    """One line: the gap (and train accuracy) at the smallest and largest size, and how the gap
    ranks with parameter count."""
    ordered = group.sort_values("param_count")
    gap = ordered["generalization_gap_mean"].to_numpy()
    if len(gap) < 3:
        return []
    constant = np.ptp(gap) == 0  # no ranking to correlate
    rho = float("nan") if constant else stats.spearmanr(ordered["param_count"], gap)[0]
    train = ordered["train_accuracy_mean"].to_numpy()
    line = (
        f"  Generalization gap from {gap[0]:+.2%} (smallest) to {gap[-1]:+.2%} (largest; "
        f"train accuracy {_pct(train[0])} → {_pct(train[-1])}); Spearman correlation of the gap "
        f"with parameter count {rho:+.2f}."
    )
    noise = float(ordered["label_noise"].max()) if "label_noise" in ordered else 0.0
    if "fit_accuracy_mean" in ordered and noise > 0:
        fit = ordered["fit_accuracy_mean"].to_numpy()
        # A model that predicts every true label perfectly scores this on the noisy labels.
        classes = int(ordered["num_classes"].iloc[0]) if "num_classes" in ordered else 10
        clean_ceiling = 1 - noise * (classes - 1) / classes
        verdict = (
            "above what perfect clean predictions score "
            f"({_pct(clean_ceiling)}): the excess is memorised noise"
            if fit[-1] > clean_ceiling + 0.01
            else f"not above what perfect clean predictions score ({_pct(clean_ceiling)})"
        )
        line += (
            f" On the noisy labels it was trained on, accuracy goes {_pct(fit[0])} → "
            f"{_pct(fit[-1])}, {verdict}."
        )
    return [line]


def markdown_table(summary: pd.DataFrame) -> str:
    factors = swept_factors(summary)
    noisy = "fit_accuracy_mean" in summary and (summary.get("label_noise", 0) > 0).any()
    header = ["units", *factors, "params", "seeds", "test acc (95% CI)", "train acc",
              *(["fit acc (noisy labels)"] if noisy else []), "gap", "best val", "s/epoch"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for _, row in summary.iterrows():
        cells = [str(int(row["units"]))] + [_fmt(row[f]) for f in factors] + [
            f"{int(row['param_count']):,}",
            str(int(row["n_seeds"])),
            f"{_pct(row['test_accuracy_mean'])} ({_pct(row['test_accuracy_ci_low'])} – "
            f"{_pct(row['test_accuracy_ci_high'])})",
            _pct(row["train_accuracy_mean"]),
            *([_pct(row["fit_accuracy_mean"])] if noisy else []),
            f"{row['generalization_gap_mean']:+.2%}",
            _pct(row["best_val_accuracy_mean"]),
            f"{row['epoch_time_s_mean']:.1f}",
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def write_report(
    study: str, runs: pd.DataFrame, out: Path, *, target: float, parent_id: str | None
) -> dict[str, Path]:
    """Write summary.csv, capacity.png, overfitting.png and report.md for the study."""
    frame = runs_frame(runs)
    if frame.empty:
        raise ValueError(f"STUDY: {study!r} has no FINISHED runs; run `make sweep STUDY={study}`")
    summary = summarize(frame)
    out.mkdir(parents=True, exist_ok=True)
    files = {
        "summary": out / "summary.csv",
        "capacity": out / "capacity.png",
        "overfitting": out / "overfitting.png",
        "report": out / "report.md",
    }
    summary.to_csv(files["summary"], index=False, float_format="%.6g")
    plot_capacity(summary, target, files["capacity"])
    plot_overfitting(summary, files["overfitting"])
    children = runs[runs.get("tags.mlflow.parentRunId").notna()] if len(runs) else runs
    counts = children["status"].value_counts().to_dict()
    compute_h = (frame["train_time_s"].sum()) / 3600
    today = datetime.date.today().isoformat()
    text = [
        f"# {study}: what do the units buy?",
        "",
        *study_header(study),
        "## Answer",
        "",
        *answer(summary, target),
        "",
        markdown_table(summary),
        "",
        f"Runs: {len(frame)} counted (newest FINISHED per configuration and seed) of "
        f"{len(children)} child runs ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}). "
        f"Training compute: {compute_h:.2f} h. Target: {target:.0%}. CI: 95% Student t over seeds.",
        "",
        "![capacity](capacity.png)",
        "",
        "![overfitting](overfitting.png)",
        "",
        f"Reproduce: `make sweep STUDY={study} && make report STUDY={study}` "
        f"(report written {today}"
        + (f"; MLflow parent run `{parent_id}`" if parent_id else "")
        + ").",
        "",
    ]
    memorised = memorization(frame)
    if len(memorised):
        files["memorization"] = out / "memorization.csv"
        memorised.to_csv(files["memorization"], index=False, float_format="%.4g")
        text[-2:-2] = [
            "## Memorisation of random labels",
            "",
            "Largest training set fitted to ≥ 99% of its random labels, per size, in bits per "
            "parameter (Collins et al. 2017 report about 5 bits per parameter for trained RNNs; "
            "a lower bound here, limited by the sizes tried and the training budget):",
            "",
            _markdown(memorised),
            "",
        ]
    files["report"].write_text("\n".join(text))
    return files


def _markdown(frame: pd.DataFrame) -> str:
    def cell(value) -> str:
        return f"{value:.3g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(frame.columns) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    from harness import tracking

    parser = argparse.ArgumentParser(prog="python -m harness.report", description=__doc__)
    parser.add_argument("study")
    parser.add_argument("--target", type=float, default=0.90)
    parser.add_argument("--out", default="results")
    parser.add_argument("--tracking-uri", default=None)
    args = parser.parse_args(argv)
    if not 0 < args.target <= 1:
        print(f"error: TARGET: {args.target} is outside (0, 1]", file=sys.stderr)
        sys.exit(2)
    import os

    uri = tracking.connect(args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
    runs = tracking.study_runs(uri, args.study)
    if runs is None:
        print(f"error: STUDY: no experiment {args.study!r} in {uri}", file=sys.stderr)
        sys.exit(2)
    parent = tracking.latest_parent(runs)
    try:
        files = write_report(
            args.study, runs, Path(args.out) / args.study, target=args.target, parent_id=parent
        )
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    if parent:
        tracking.log_report(uri, parent, list(files.values()))
    for path in files.values():
        print(path)
    text = (Path(args.out) / args.study / "report.md").read_text()
    print(text.split("## Answer\n\n")[1].split("\n\n")[0])


if __name__ == "__main__":
    main()
