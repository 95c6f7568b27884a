"""The analyses that answer a study's question from its summary table (harness/report.py):
`capacity`, `batch_timesteps`, `memorization` and `double_descent`. Each returns an Analysis:
the Answer in words with the numbers, the tables and the plots that show it."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from harness.config import parse_target
from harness.models import explain
from harness.summary import (
    MIN_SEEDS_FOR_CI, aggregate, band, finish, fmt, groups, markdown, pct, pyplot, save,
    interval_kind, swept_factors, with_ci,
)

COLLINS_BITS_PER_PARAM = 5.0  # Collins, Sohl-Dickstein & Sussillo 2017, any RNN cell
FITTED = 0.99  # fit accuracy that counts as "fits its training labels" (training error ≤ 1%)


@dataclass
class Analysis:
    answer: list[str]  # the Answer section, markdown lines
    sections: list[str] = field(default_factory=list)  # markdown blocks after it
    plots: dict[str, Callable[[Path], None]] = field(default_factory=dict)  # file → writer
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)  # further CSV files
    # the answer's numbers, logged as the sweep parent run's metrics (the MLflow UI shows them)
    metrics: dict[str, float] = field(default_factory=dict)


def metric_name(label: str, name: str) -> str:
    """`name` for one group of a swept factor (`train_size=500` → `train_size 500/name`), in
    the characters MLflow allows in a metric name."""
    if not label:
        return name
    return " ".join(re.sub(r"[^\w./-]+", " ", label).split()) + "/" + name


def interval_name(row) -> str:
    """What a row's interval is (harness/summary.py:interval)."""
    return "95% CI" if row["n_seeds"] >= MIN_SEEDS_FOR_CI else "seed range"


def seeds(row) -> str:
    return f"{int(row['n_seeds'])} seed{'s' if row['n_seeds'] != 1 else ''}"


def recipe(summary: pd.DataFrame) -> str:
    """The training recipe the study's runs share, e.g. `Adam 0.01, 200 epochs, batch 128`."""
    def values(column):
        return "/".join(fmt(v) for v in sorted(summary[column].unique()))

    return (f"Adam {values('learning_rate')}, {values('epochs')} epochs, "
            f"batch {values('batch_size')}")


def classes_of(summary: pd.DataFrame) -> int:
    return int(summary["num_classes"].iloc[0]) if "num_classes" in summary else 10


# --------------------------------------------------------------------------------------------
# capacity: what do the units buy?


def target_text(target: float) -> str:
    """A target as a percentage with the digits it has: 90%, 95.9%."""
    return f"{target:.0%}" if round(target * 100, 6).is_integer() else f"{target:.1%}"


def ceiling_of(group: pd.DataFrame) -> float | None:
    """The best accuracy the group's task allows (the synthetic task's Bayes ceiling, logged
    with its runs), or None where it is not known."""
    if "bayes_accuracy_mean" not in group or group["bayes_accuracy_mean"].isna().all():
        return None
    return float(group["bayes_accuracy_mean"].mean())


def target_at(target, group: pd.DataFrame) -> float:
    """The accuracy `target` (report.target) asks of a group: a number itself, or that fraction
    of the group's ceiling ("0.95 of bayes")."""
    fraction, of_ceiling = parse_target(target)
    if not of_ceiling:
        return fraction
    ceiling = ceiling_of(group)
    if ceiling is None:
        raise ValueError(f"report.target: {target!r} needs a task whose best accuracy is known "
                         "(data=motifs); use a number in (0, 1]")
    return fraction * ceiling


def goal_text(target, group: pd.DataFrame) -> str:
    """`target_at` in words: "75%", or "72.8% (95% of the Bayes ceiling, 76.7%)"."""
    fraction, of_ceiling = parse_target(target)
    text = target_text(target_at(target, group))
    return (f"{text} ({fraction:.0%} of the Bayes ceiling, {pct(ceiling_of(group))})"
            if of_ceiling else text)


def of_ceiling(row, metric: str = "test_accuracy_mean") -> str:
    """", 93% of the ceiling" for a row with a known ceiling, else nothing."""
    ceiling = row.get("bayes_accuracy_mean", np.nan)
    return "" if pd.isna(ceiling) else f", {row[metric] / ceiling:.0%} of the ceiling"


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


def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Spearman's rho and its two-sided p-value from the pairings of x with y: every one up to 7
    sizes (exact: with 4 sizes the smallest p is 2/24, where the t-approximation says 0), else
    9,999 drawn from a fixed seed."""
    result = stats.permutation_test(
        (x,), lambda xs: stats.spearmanr(xs, y).statistic, permutation_type="pairings",
        alternative="two-sided", rng=0)
    return float(stats.spearmanr(x, y).statistic), float(result.pvalue)


def gap_trend(group: pd.DataFrame) -> list[str]:
    """One line: the gap (and train accuracy) at the smallest and largest size, and how the gap
    ranks with parameter count; on noisy labels, how much of them the models fit."""
    ordered = group.sort_values("param_count")
    gap = ordered["generalization_gap_mean"].to_numpy()
    if len(gap) < 3 or ("fresh_each_epoch" in ordered and (ordered["fresh_each_epoch"] == 1).all()):
        return []  # new data each epoch: no training set to have a gap to
    constant = np.ptp(gap) == 0  # no ranking to correlate
    rho, p = (float("nan"),) * 2 if constant else spearman(ordered["param_count"].to_numpy(), gap)
    train = ordered["train_accuracy_mean"].to_numpy()
    peak = int(np.argmax(gap))
    line = (
        f"  Generalization gap from {gap[0]:+.2%} (smallest) to {gap[-1]:+.2%} (largest; "
        f"train accuracy {pct(train[0])} → {pct(train[-1])})"
        + (f", largest {gap[peak]:+.2%} at {int(ordered['units'].iloc[peak])} units"
           if 0 < peak < len(gap) - 1 else "")
        + f"; Spearman correlation of the gap with parameter count {rho:+.2f} over {len(gap)} "
        f"sizes (p = {p:.2f}{', not significant' if p >= 0.05 else ''})."
    )
    noise = float(ordered["label_noise"].max()) if "label_noise" in ordered else 0.0
    if "fit_accuracy_mean" in ordered and noise > 0:
        fit = ordered["fit_accuracy_mean"].to_numpy()
        # A model that predicts every true label perfectly scores this on the noisy labels.
        clean_ceiling = 1 - noise * (classes_of(ordered) - 1) / classes_of(ordered)
        verdict = (
            "above what perfect clean predictions score "
            f"({pct(clean_ceiling)}): the excess is memorised noise"
            if fit[-1] > clean_ceiling + 0.01
            else f"not above what perfect clean predictions score ({pct(clean_ceiling)})"
        )
        trained = [trained_label_gap(row) for _, row in ordered.iterrows()]
        line += (
            f" On the noisy labels it was trained on, accuracy goes {pct(fit[0])} → "
            f"{pct(fit[-1])}, {verdict}; the gap on those labels (against test labels noised "
            f"alike) goes {trained[0]:+.2%} → {trained[-1]:+.2%}."
        )
    if "early_test_accuracy_mean" in ordered:  # trained to the end, its best epoch marked
        last, early = ordered.iloc[-1], ordered.iloc[-1]["early_test_accuracy_mean"]
        line += (
            f" At the largest size the best validation epoch's weights test "
            f"{pct(early)} against {pct(last['test_accuracy_mean'])} at the last epoch "
            f"({early - last['test_accuracy_mean']:+.2%} with early stopping)."
        )
    return [line]


def capacity_answer(summary: pd.DataFrame, target) -> list[str]:
    """One block per combination of swept non-units factors."""
    chance = 1 / classes_of(summary)
    lines = []
    for label, group in groups(summary, swept_factors(summary)):
        heading = f"**{label}**: " if label else ""
        goal, target_value = goal_text(target, group), target_at(target, group)
        ceiling = ceiling_of(group)
        if ceiling is not None:
            heading += (f"(best possible {pct(ceiling)}, the Bayes classifier's on these test "
                        f"sequences {pct(group['bayes_test_accuracy_mean'].mean())}) ")
        if group["units"].nunique() == 1:
            row = group.iloc[0]
            reached = "reaches" if row["test_accuracy_mean"] >= target_value else "does not reach"
            lines.append(
                f"- {heading}{row['cell'].upper()}({int(row['units'])}) "
                f"({int(row['param_count']):,} parameters): test accuracy "
                f"{with_ci(row, 'test_accuracy')} over {seeds(row)}{of_ceiling(row)} — "
                f"{row['test_accuracy_mean'] - chance:+.1%} against chance ({pct(chance)}); it "
                f"{reached} the {goal} target. Train accuracy "
                f"{pct(row['train_accuracy_mean'])}, gap {row['generalization_gap_mean']:+.2%}, "
                f"best validation accuracy {pct(row['best_val_accuracy_mean'])}."
            )
            continue
        by_mean = minimal_units(group, target_value, "test_accuracy_mean")
        by_ci = minimal_units(group, target_value, "test_accuracy_ci_low")
        if by_mean is None:
            best = group.loc[group["test_accuracy_mean"].idxmax()]
            lines.append(
                f"- {heading}No size reaches {goal} mean test accuracy; the best is "
                f"{int(best['units'])} units at {with_ci(best, 'test_accuracy')}{of_ceiling(best)} "
                f"({best['test_accuracy_mean'] - chance:+.1%} against chance, {pct(chance)})."
            )
            lines += gap_trend(group)
            continue
        row = group[group["units"] == by_mean].iloc[0]
        text = (
            f"- {heading}The smallest {model_label(row).split('(')[0]} whose mean test accuracy "
            f"reaches {goal} has "
            f"**{by_mean} units** ({int(row['param_count']):,} parameters): "
            f"{pct(row['test_accuracy_mean'])} ({interval_name(row)} {pct(row['test_accuracy_ci_low'])} – "
            f"{pct(row['test_accuracy_ci_high'])}, {seeds(row)}{of_ceiling(row)}). "
        )
        text += (
            f"The smallest whose whole interval is above {goal}: **{by_ci} units**. "
            if by_ci is not None
            else f"No size has its whole interval above {goal}. "
        )
        # sizes the seeds cannot tell from the answer: smaller ones whose interval reaches the
        # target, larger ones whose mean falls below it within their interval
        near = group[(group["units"] < by_mean) & (group["test_accuracy_ci_high"] >= target_value)]
        if len(near):
            text += (f"Smaller, with an interval reaching {goal}: "
                     + ", ".join(f"{int(r['units'])} units {with_ci(r, 'test_accuracy')}"
                                 for _, r in near.iterrows())
                     + f" — not distinguishable from {by_mean} over these seeds. ")
        for units in non_monotone(group, target_value, "test_accuracy_mean"):
            dip = group[group["units"] == units].iloc[0]
            text += (f"{units} units fall below {goal} again, "
                     f"{with_ci(dip, 'test_accuracy')}"
                     + (": within the interval, not a measured drop. "
                        if dip["test_accuracy_ci_high"] >= target_value else ", the whole interval. "))
        big = group[group["units"] == 128]
        if len(big) and by_mean != 128:
            big = big.iloc[0]
            text += (
                f"The habitual 128 units: {pct(big['test_accuracy_mean'])} with "
                f"{int(big['param_count']):,} parameters, "
                f"{big['param_count'] / row['param_count']:.0f}× as many."
            )
        lines.append(text.rstrip())
        lines += gap_trend(group)
    return lines + budget_sensitivity(summary, target)


def budget_sensitivity(summary: pd.DataFrame, target) -> list[str]:
    """Where a study's only swept factors are its training budget (epochs, patience): whether
    the smallest size reaching the target moves when the budget grows, by mean and by whole
    interval, on the sizes every budget ran."""
    factors = swept_factors(summary)
    if not factors or not set(factors) <= {"epochs", "patience"}:
        return []
    common = set.intersection(*(set(g["units"]) for _, g in summary.groupby(factors,
                                                                            dropna=False)))
    shared = summary[summary["units"].isin(common)]
    answers, budgets = [], []
    for label, group in groups(shared, factors):
        budgets.append(group.set_index("units"))
        goal = target_at(target, group)
        answers.append((label, minimal_units(group, goal, "test_accuracy_mean"),
                        minimal_units(group, goal, "test_accuracy_ci_low")))

    def units(value):
        return "none" if value is None else f"{value} units"

    text = "; ".join(f"{label}: {units(mean)} (whole interval: {units(low)})"
                     for label, mean, low in answers)

    def verdict(values: list, how: str) -> str:
        if len(set(values)) == 1:
            return f"by {how} the answer holds ({units(values[0])})"
        text = f"by {how} it moves ({' → '.join(units(v) for v in values)})"
        moved = [v for v in values if v is not None]
        if len(moved) == len(values):  # the size crossing the target: do its budgets differ?
            first, last = (budgets[i].loc[min(moved)] for i in (0, -1))
            if (first["test_accuracy_ci_low"] <= last["test_accuracy_ci_high"]
                    and last["test_accuracy_ci_low"] <= first["test_accuracy_ci_high"]):
                text += (f", though {min(moved)} units' intervals at the smallest and largest "
                         "budget overlap: it crosses the target without a difference the "
                         "seeds resolve")
        return text

    lines = [f"- **Budget sensitivity** (sizes {', '.join(map(str, sorted(common)))}, which "
             f"every budget ran): the smallest size reaching {goal_text(target, shared)} — "
             f"{text}: {verdict([a[1] for a in answers], 'the mean')}, "
             f"{verdict([a[2] for a in answers], 'the whole interval')}."]
    if "best_epoch_mean" in shared and "patience" in shared:
        # at the largest budget, sizes whose best epoch came within a patience of the cap
        largest = shared[shared["epochs"] == shared["epochs"].max()]
        late = largest[largest["best_epoch_mean"] + 1 > largest["epochs"] - largest["patience"]]
        if len(late):
            lines[0] += (f" At the largest budget the best epoch of "
                         f"{', '.join(str(int(u)) for u in late['units'])} units came within "
                         "its patience of the epoch cap (mean over seeds): more epochs may "
                         "still move them.")
    lines[0] += budget_gains(shared, factors)
    return lines


def budget_gains(shared: pd.DataFrame, factors: list[str]) -> str:
    """Which sizes' test accuracy changed from the smallest budget to the largest by more
    than their seeds scatter (Welch's t-test, p < 0.05), and which did not."""
    small, large = (shared[shared["epochs"] == shared["epochs"].agg(end)]
                    for end in ("min", "max"))
    if small["epochs"].iloc[0] == large["epochs"].iloc[0] or "test_accuracy_std" not in shared:
        return ""
    beyond, within = [], []
    for units, before in small.set_index("units").iterrows():
        after = large.set_index("units").loc[units]
        p = stats.ttest_ind_from_stats(after["test_accuracy_mean"], after["test_accuracy_std"],
                                       after["n_seeds"], before["test_accuracy_mean"],
                                       before["test_accuracy_std"], before["n_seeds"],
                                       equal_var=False).pvalue
        gain = (after["test_accuracy_mean"] - before["test_accuracy_mean"]) * 100
        change = f"{int(units)} ({gain:+.1f})"
        (beyond if p < 0.05 else within).append(change)
    return (f" Test accuracy from the smallest budget to the largest, in points: beyond seed "
            f"noise (Welch's t, p < 0.05) at {', '.join(beyond) or 'no size'} units; within it "
            f"at {', '.join(within) or 'no size'}.")


def capacity_metrics(summary: pd.DataFrame, target) -> dict[str, float]:
    """The numbers of `capacity_answer`, per group of swept factors: the smallest units
    reaching the target by mean (its accuracy, interval, parameters) and by whole interval, the
    best size when none does, and 128 units against the smallest."""
    fraction, relative = parse_target(target)
    metrics = {} if relative else {"target": fraction}
    for label, group in groups(summary, swept_factors(summary)):
        def put(name, value):
            metrics[metric_name(label, name)] = float(value)

        target_value = target_at(target, group)
        if relative:  # a target per ceiling
            put("target", target_value)
        if ceiling_of(group) is not None:
            put("bayes_accuracy", ceiling_of(group))

        by_mean = minimal_units(group, target_value, "test_accuracy_mean")
        by_ci = minimal_units(group, target_value, "test_accuracy_ci_low")
        if by_mean is None:
            best = group.loc[group["test_accuracy_mean"].idxmax()]
            put("best_units", best["units"])
            put("best_test_accuracy", best["test_accuracy_mean"])
            continue
        row = group[group["units"] == by_mean].iloc[0]
        put("minimal_units", by_mean)
        put("minimal_units_params", row["param_count"])
        put("minimal_units_test_accuracy", row["test_accuracy_mean"])
        # the row's interval: a 95% CI with 5 seeds or more, else the seeds' range
        put("minimal_units_interval_low", row["test_accuracy_ci_low"])
        put("minimal_units_interval_high", row["test_accuracy_ci_high"])
        if by_ci is not None:
            put("minimal_units_whole_interval", by_ci)
        big = group[group["units"] == 128]
        if len(big) and by_mean != 128:
            put("units_128_test_accuracy", big["test_accuracy_mean"].iloc[0])
            put("units_128_params_ratio", big["param_count"].iloc[0] / row["param_count"])
    return metrics


def to_the_end(summary: pd.DataFrame, weights: str = "best") -> pd.DataFrame:
    """report.weights: last — a study answered on its runs' last epoch's weights (test, train
    and fit accuracy, the gap; the runs stopped early or not, their last_* scores), the best
    validation epoch's test accuracy kept beside them as `early_test_accuracy_*`. With
    `best` (the default), or runs without the last_* scores, the summary as it is."""
    if weights != "last" or "last_test_accuracy_mean" not in summary:
        return summary
    table = summary.copy()
    for stat in ("mean", "std", "ci_low", "ci_high"):
        table[f"early_test_accuracy_{stat}"] = summary[f"test_accuracy_{stat}"]
        for metric in ("test_accuracy", "train_accuracy", "fit_accuracy", "generalization_gap"):
            # a run without early stopping tested its last epoch's weights already
            table[f"{metric}_{stat}"] = summary[f"last_{metric}_{stat}"].fillna(
                summary[f"{metric}_{stat}"])
    table.attrs = dict(summary.attrs, to_the_end=True)
    return table


def trained_label_gap(row) -> float:
    """Accuracy on the noisy labels trained on minus what the same test predictions would
    score on test labels noised alike: a prediction matches a label replaced by a random one of
    K classes with probability 1/K, so the expected score is (1 − p)·test + p/K."""
    noise, classes = float(row["label_noise"]), int(row.get("num_classes", 10))
    return row["fit_accuracy_mean"] - ((1 - noise) * row["test_accuracy_mean"] + noise / classes)


def capacity_table(summary: pd.DataFrame) -> str:
    # the settings chosen per size on validation are shown beside it
    factors = swept_factors(summary) + list(summary.attrs.get("selected", ()))
    noisy = "fit_accuracy_mean" in summary and (summary.get("label_noise", 0) > 0).any()
    ceiling = ceiling_of(summary) is not None
    stops = "patience" in summary and summary["patience"].notna().any()
    rows = []
    for _, row in summary.iterrows():
        cells = {"units": str(int(row["units"]))}
        cells |= {factor: fmt(row[factor]) for factor in factors}
        cells |= {
            "params": f"{int(row['param_count']):,}",
            "seeds": str(int(row["n_seeds"])),
            "test acc (interval)": with_ci(row, "test_accuracy"),
        }
        if ceiling:  # the synthetic task: the best accuracy possible, and how near it is
            cells |= {"Bayes": pct(row["bayes_accuracy_mean"]),
                      "of Bayes": f"{row['test_accuracy_mean'] / row['bayes_accuracy_mean']:.0%}"}
        # new data each epoch: no training set to score (the first epoch's was seen once)
        fresh = row.get("fresh_each_epoch") == 1
        cells["train acc"] = "—" if fresh else pct(row["train_accuracy_mean"])
        if noisy:
            cells["fit acc (noisy labels)"] = pct(row["fit_accuracy_mean"])
        cells["gap"] = "—" if fresh else f"{row['generalization_gap_mean']:+.2%}"
        if noisy:
            cells["gap (trained labels)"] = "—" if fresh else f"{trained_label_gap(row):+.2%}"
        if summary.attrs.get("to_the_end"):
            cells["best-val-epoch test acc"] = with_ci(row, "early_test_accuracy")
        cells |= {
            "best val": pct(row["best_val_accuracy_mean"]),
            "s/epoch": f"{row['epoch_time_s_mean']:.1f}",
        }
        if stops:  # early stopping: where the best epoch was, against the epochs allowed
            cells["best epoch / max"] = (f"{row['best_epoch_mean'] + 1:.0f} / {fmt(row['epochs'])}"
                                         if "best_epoch_mean" in row else "—")
        rows.append(cells)
    return markdown(pd.DataFrame(rows))


def plot_capacity(summary: pd.DataFrame, target, path: Path) -> None:
    plt = pyplot()
    parts = list(groups(summary, swept_factors(summary)))
    many = len(parts) > 3  # test accuracy only, the legend beside the plot
    figure, axes = plt.subplots(figsize=(11, 5) if many else (8, 5))
    for label, group in parts:
        group = group.sort_values("param_count")
        for metric, style in (("test_accuracy", "-o"), ("train_accuracy", "--s"))[:1 if many else 2]:
            band(axes, group, metric, style, f"{metric.split('_')[0]} {label}".strip())
        for _, row in group.iterrows():
            axes.annotate(
                f"{int(row['units'])}", (row["param_count"], row["test_accuracy_mean"]),
                textcoords="offset points", xytext=(0, -12), ha="center", fontsize=7,
            )
    reference_lines(axes, summary, target)
    finish(figure, axes, xlabel="parameters (log scale; labels: units)",
           ylabel="test accuracy (mean, interval band)" if many else
           "accuracy (mean, interval band)", title="Accuracy against capacity")
    if many:
        axes.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save(figure, path)


def reference_lines(axes, summary: pd.DataFrame, target) -> None:
    """The target, chance and, where the task knows it, each ceiling (one per motif draw) as
    horizontal lines."""
    chance = 1 / classes_of(summary)
    axes.axhline(chance, color="black", linestyle="-.", linewidth=0.8,
                 label=f"chance {chance:.0%}")
    draws = (list(groups(summary, ["motifs_seed"]))
             if "motifs_seed" in summary and ceiling_of(summary) is not None else [("", summary)])
    for label, group in draws:
        ceiling = ceiling_of(group)
        if ceiling is not None:
            axes.axhline(ceiling, color="black", linewidth=1.2, alpha=0.7,
                         label=f"Bayes ceiling {pct(ceiling)} {label}".strip())
        if ceiling is not None or label == "" or parse_target(target)[1]:
            value = target_at(target, group)
            if not any(abs(line.get_ydata()[0] - value) < 1e-9 for line in axes.lines):
                axes.axhline(value, color="grey", linestyle=":",
                             label=f"target {goal_text(target, group)}")


def plot_overfitting(summary: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    factors = [f for f in ("train_size", "label_noise") if f in swept_factors(summary)]
    factors += [f for f in swept_factors(summary) if f not in factors]
    figure, axes = plt.subplots(figsize=(8, 5))
    noisy = "fit_accuracy_mean" in summary and (summary.get("label_noise", 0) > 0).any()
    for label, group in groups(summary, factors):
        line = band(axes, group, "generalization_gap", "-o", label or "gap")
        if noisy and (group["label_noise"] > 0).all():  # the labels it was trained on
            group = group.sort_values("param_count")
            axes.plot(group["param_count"], [trained_label_gap(r) for _, r in group.iterrows()],
                      "--^", markersize=4, color=line.get_color(),
                      label=f"{label}: on the noisy labels trained on")
    axes.axhline(0, color="grey", linewidth=0.8)
    finish(figure, axes, xlabel="parameters (log scale)",
           ylabel="train accuracy − test accuracy (mean, interval)",
           title="Generalization gap against capacity" + (
               "\ndashed: fit of the noisy labels − the test score on labels noised alike"
               if noisy else ""))
    save(figure, path)


def weight_shapes(row: pd.Series) -> str:
    """`make explain`'s weight listing for a study of one model."""
    text = explain(cell=row["cell"], units=int(row["units"]), timesteps=int(row["timesteps"]),
                   input_dim=int(row["input_dim"]), num_classes=int(row["num_classes"]),
                   **({"width": int(row["width"])} if pd.notna(row.get("width")) else {}))
    return "## The model's weights (`make explain`)\n\n```\n" + text + "\n```"


def plot_learning_curves(curves: pd.DataFrame, chance: float, target: float, path: Path,
                         ceiling: float | None = None) -> None:
    """Training and validation accuracy per epoch, mean over seeds with interval bands."""
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 4.5))
    for metric, style in (("accuracy", "--"), ("val_accuracy", "-")):
        rows = []
        for step, points in curves[curves["metric"] == metric].groupby("step"):
            rows.append(aggregate({"epoch": step + 1}, points, ["value"]))
        if rows:
            label = "training (its labels)" if metric == "accuracy" else "validation"
            band(axes, pd.DataFrame(rows), "value", style, label, x="epoch")
    axes.axhline(target, color="grey", linestyle=":", label=f"target {target_text(target)}")
    axes.axhline(chance, color="black", linestyle="-.", linewidth=0.8, label=f"chance {chance:.0%}")
    if ceiling is not None:
        axes.axhline(ceiling, color="black", linewidth=1.2, alpha=0.7,
                     label=f"Bayes ceiling {pct(ceiling)}")
    finish(figure, axes, xlabel="epoch", ylabel="accuracy (mean over seeds, interval)",
           title="Learning curves", xscale="linear")
    save(figure, path)


def capacity(summary: pd.DataFrame, frame: pd.DataFrame, *, target, weights: str = "best",
             histories=None) -> Analysis:
    """Accuracy and the train–test gap against parameter count; the smallest units that reach
    the study's target. A study of one model gets its weights and learning curves instead."""
    summary = to_the_end(summary, weights)
    sections = [capacity_table(summary)]
    if len(summary) == 1:
        sections.append(weight_shapes({**summary.iloc[0], "input_dim": frame["input_dim"].iloc[0]}))
        plots = {}
        if histories is not None:
            curves = histories(list(frame["run_id"]))
            plots["learning_curves.png"] = partial(
                plot_learning_curves, curves, 1 / classes_of(summary),
                target_at(target, summary), ceiling=ceiling_of(summary))
        return Analysis(answer=capacity_answer(summary, target), sections=sections, plots=plots,
                        metrics=capacity_metrics(summary, target))
    plots = {
        "capacity.png": partial(plot_capacity, summary, target),
        "overfitting.png": partial(plot_overfitting, summary),
    }
    limits = held_back(summary, leaving_chance(frame, histories, models_of(summary))
                       if ceiling_of(summary) is not None else None)  # the synthetic task
    if limits:
        plots["data_curves.png"] = partial(plot_data_curves, summary)
    return Analysis(
        answer=best_share(summary) + limits + capacity_answer(summary, target),
        sections=sections,
        plots=plots,
        metrics=capacity_metrics(summary, target),
    )


# --------------------------------------------------------------------------------------------
# the synthetic task: how near its ceiling, and what holds a model back


def model_label(row) -> str:
    """LSTM(64), conv(64): the model of a summary row."""
    name = "conv" if row["cell"] == "conv" else str(row["cell"]).upper()
    return f"{name}({int(row['units'])})"


def shares(summary: pd.DataFrame) -> pd.DataFrame:
    """Rows of a study on the synthetic task with `share`, test accuracy as a fraction of the
    row's ceiling, and `drawn`, the distinct training sequences it had (with new data each
    epoch: every epoch's)."""
    table = summary.copy()
    table["share"] = table["test_accuracy_mean"] / table["bayes_accuracy_mean"]
    table["drawn"] = table["train_size"] * np.where(
        table["fresh_each_epoch"] == 1, table["epochs"], 1)
    return table


def models_of(table: pd.DataFrame) -> list[str]:
    """The columns that tell one model (and sequence length) from another in a study."""
    return [c for c in ("cell", "units", "timesteps") if c in table and table[c].nunique() > 1] \
        or ["units"]


LEFT_CHANCE = 0.55  # validation accuracy ~3 standard errors above 50% on 1,000 sequences


def leaving_chance(frame: pd.DataFrame, histories, columns: list[str]) -> dict:
    """For the runs with new data each epoch, per model (`columns`): after how many training
    sequences validation accuracy first reached LEFT_CHANCE (median over runs), in words."""
    if histories is None or "fresh_each_epoch" not in frame:
        return {}
    fresh = frame[frame["fresh_each_epoch"] == 1]
    if fresh.empty:
        return {}
    curves = histories(list(fresh["run_id"]))
    curves = curves[(curves["metric"] == "val_accuracy") & (curves["value"] >= LEFT_CHANCE)]
    first = curves.groupby("run_id")["step"].min()
    texts = {}
    for key, runs in fresh.groupby(columns, sort=True):
        seen = [(first[run.run_id] + 1) * run.train_size if run.run_id in first.index else np.inf
                for run in runs.itertuples()]
        never = int(np.isinf(seen).sum())
        text = (f"validation first reached {LEFT_CHANCE:.0%} after "
                f"{np.median(seen):,.0f} sequences (median of {len(seen)} runs"
                + (f"; {never} never did" if never else "") + ")"
                if never < len(seen) / 2 else
                f"validation never reached {LEFT_CHANCE:.0%} in {never} of {len(seen)} runs")
        texts[key if isinstance(key, tuple) else (key,)] = text
    return texts


def held_back(summary: pd.DataFrame, leaves: dict | None = None) -> list[str]:
    """For each model of a study on the synthetic task that varies the training data (sizes,
    or new data each epoch), its test accuracy as a share of the ceiling per amount of data
    (mean over the motif draws) and what keeps it below the ceiling:
    - it does not learn: with new data each epoch it stays within 3 points of chance;
    - nothing: with new data it comes within 5% of the ceiling;
    - training: with new data its best epoch is among its last five (it may still improve);
    - units: with new data it peaked early, and a larger model of the same kind and length
      does better beyond both seed ranges; else this recipe (no larger model does better);
    - and data, where new data each epoch beats its best fixed set by 2 points of the ceiling
      or more."""
    if ceiling_of(summary) is None or "fresh_each_epoch" not in summary:
        return []
    table = shares(summary)
    if (table["fresh_each_epoch"] == 0).all() and table["train_size"].nunique() < 2:
        return []
    chance = sorted({f"{0.5 / c:.0%}" for c in table["bayes_accuracy_mean"]})
    lines = ["- **What holds each model back** (test accuracy as a share of its motif draw's "
             f"ceiling, mean over draws — chance is {chance[0]}"
             + (f"–{chance[-1]}" if len(chance) > 1 else "") + " of it; train accuracy "
             "in brackets):"]
    columns = models_of(table)
    fresh_all = table[table["fresh_each_epoch"] == 1]
    for key, group in table.groupby(columns, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        first = group.iloc[0]
        name = model_label(first) + (f" at {int(first['timesteps'])} steps"
                                     if table["timesteps"].nunique() > 1 else "")
        fixed = (group[group["fresh_each_epoch"] == 0].groupby("train_size")
                 [["share", "train_accuracy_mean"]].mean())
        fresh = group[group["fresh_each_epoch"] == 1]
        parts = [f"{int(size):,} sequences {r['share']:.0%} ({pct(r['train_accuracy_mean'])})"
                 for size, r in fixed.iterrows()]
        verdict = ""
        if len(fresh):
            share = float(fresh["share"].mean())
            best = float(fresh["best_epoch_mean"].mean()) + 1
            latest = float(fresh["best_epoch_mean"].max()) + 1  # the draw that peaked last
            allowed = float(fresh["epochs"].max())
            leave = f"; {leaves[key]}" if leaves and key in leaves else ""
            parts.append(f"new data each epoch {share:.0%} (best epoch {best:.0f} of "
                         f"{allowed:.0f}{leave})")
            # the same kind of model at the same length, larger, on the same new data
            same = np.ones(len(fresh_all), dtype=bool)
            for column in ("cell", "timesteps", "train_size"):
                if column in fresh_all:
                    same &= (fresh_all[column] == fresh[column].iloc[0]).to_numpy()
            larger = fresh_all[same & (fresh_all["param_count"] > first["param_count"]).to_numpy()]

            def beats(rows) -> bool:  # beyond the seed ranges on every motif draw
                for draw, own in fresh.groupby("motifs_seed"):
                    other = rows[rows["motifs_seed"] == draw]
                    if other.empty or (other["test_accuracy_ci_low"].min()
                                       <= own["test_accuracy_ci_high"].max()):
                        return False
                return True

            beaten = [rows for _, rows in larger.groupby("units") if beats(rows)]
            if float(fresh["test_accuracy_mean"].mean()) <= 0.5 + 0.03:
                verdict = ("it does not learn the task with this recipe, even with new data "
                           "every epoch")
            elif share >= 0.95:
                verdict = "nothing much holds it back: with new data it comes within 5% of the ceiling"
            elif latest > allowed - 5:
                verdict = (f"held back by training: with new data its best epoch came within 5 of "
                           f"the {allowed:.0f} it had (on {'a' if len(fresh) > 1 else 'its'} motif "
                           "draw), so it may still be improving")
            elif beaten:
                bigger = beaten[0].iloc[0]  # the smallest larger model that does
                verdict = (f"held back by units: with new data it peaked at epoch {best:.0f} of "
                           f"{allowed:.0f}, and {model_label(bigger)} does better beyond both "
                           f"seed ranges ({beaten[0]['share'].mean():.0%})")
            elif larger.empty:
                verdict = (f"held back by this recipe or by units: with new data it peaked at "
                           f"epoch {best:.0f} of {allowed:.0f}, and no larger size was run")
            else:
                verdict = (f"held back by this recipe: with new data it peaked at epoch {best:.0f} "
                           f"of {allowed:.0f}, and no larger model here does better beyond the "
                           "seed ranges")
            fixed_best = float(fixed["share"].max()) if len(fixed) else float("nan")
            if len(fixed) and share - fixed_best >= 0.02:
                verdict += (f"; data holds back its fixed sets ({fixed_best:.0%} at best, "
                            f"{share - fixed_best:+.0%} with new data)")
        lines.append(f"  - **{name}**: " + ", ".join(parts)
                     + (f" — {verdict}." if verdict else "."))
    return lines + length_effect(table)


def length_effect(table: pd.DataFrame) -> list[str]:
    """Where sequence length varies: each model's share of the ceiling against the length, on
    the same fixed training set — what the length alone costs it."""
    fixed = table[table["fresh_each_epoch"] == 0]
    if "timesteps" not in table or table["timesteps"].nunique() < 2 or fixed.empty:
        fixed = fixed.iloc[:0]
    size = fixed["train_size"].min() if len(fixed) else None
    parts = []
    for _, group in fixed[fixed["train_size"] == size].groupby(["cell", "units"], sort=True):
        steps = group.groupby("timesteps")[["share", "test_accuracy_mean"]].mean()
        parts.append(f"{model_label(group.iloc[0])} "
                     + " → ".join(f"{r['share']:.0%} ({pct(r['test_accuracy_mean'])}) at "
                                  f"{int(t)} steps" for t, r in steps.iterrows()))
    if not parts:
        return []
    return [f"- **Sequence length alone** (the same {int(size):,} training sequences, share of "
            "each length's ceiling): " + "; ".join(parts) + "."]


def best_share(summary: pd.DataFrame) -> list[str]:
    """One line: per motif draw, sequence length and kind of model, the one nearest its
    ceiling (test accuracy as a share of it)."""
    if ceiling_of(summary) is None:
        return []
    table = shares(summary)
    keys = [c for c in ("motifs_seed", "timesteps", "cell") if c in table and table[c].nunique() > 1]
    parts = []
    for key, group in (table.groupby(keys, sort=True) if keys else [((), table)]):
        best = group.loc[group["share"].idxmax()]
        setting = (f"{int(best['train_size']):,} sequences"
                   if best.get("fresh_each_epoch", 0) != 1 else "new data each epoch")
        where = ", ".join(
            f"motif draw {int(best[c])}" if c == "motifs_seed" else f"{int(best[c])} steps"
            for c in keys if c != "cell")
        parts.append(
            (f"{where}: " if where else "")
            + f"{model_label(best)}, {setting}, {pct(best['test_accuracy_mean'])} of the best "
            f"possible {pct(best['bayes_accuracy_mean'])} ({best['share']:.0%} of it, "
            f"{(best['test_accuracy_mean'] - 0.5) / (best['bayes_accuracy_mean'] - 0.5):.0%} of "
            "the way from chance)")
    return ["- **Nearest the ceiling:** " + "; ".join(parts) + "."]


def plot_data_curves(summary: pd.DataFrame, path: Path) -> None:
    """Test accuracy as a share of the ceiling against the training sequences seen, one line
    per model (mean over motif draws); new data each epoch at the sequences seen by its best
    epoch."""
    plt = pyplot()
    table = shares(summary)
    figure, axes = plt.subplots(figsize=(8, 5))
    for _, group in table.groupby(models_of(table), sort=True):
        first = group.iloc[0]
        name = model_label(first) + (f" {int(first['timesteps'])} steps"
                                     if table["timesteps"].nunique() > 1 else "")
        fixed = group[group["fresh_each_epoch"] == 0].groupby("train_size")["share"].mean()
        line = axes.plot(fixed.index, fixed.to_numpy(), "-o", markersize=4, label=name)[0]
        fresh = group[group["fresh_each_epoch"] == 1]
        if len(fresh):
            axes.plot(fresh["drawn"].mean(), fresh["share"].mean(), "*", markersize=11,
                      color=line.get_color())
    axes.axhline(1.0, color="black", linewidth=1.2, alpha=0.7, label="Bayes ceiling")
    # chance's share of each length's ceiling
    for shade, (steps, group) in zip(("black", "grey", "silver"), table.groupby("timesteps")):
        label = f" at {int(steps)} steps" if table["timesteps"].nunique() > 1 else ""
        axes.axhline(0.5 / float(group["bayes_accuracy_mean"].mean()), linestyle="-.",
                     linewidth=0.8, color=shade, label="chance" + label)
    axes.plot([], [], "*", color="grey", label="new data each epoch (every sequence drawn)")
    steps = sorted({int(np.ceil(r["train_size"] / r.get("batch_size", 128))) * int(r["epochs"])
                    for _, r in table.iterrows()})
    finish(figure, axes, xlabel="distinct training sequences (log scale); Adam steps per run: "
           + ", ".join(f"{s:,}" for s in steps),
           ylabel="test accuracy / Bayes ceiling (mean over draws)",
           title="How near the ceiling, against training data")
    save(figure, path)


# --------------------------------------------------------------------------------------------
# batch_timesteps: throughput and what is learned


def speedups(summary: pd.DataFrame) -> pd.DataFrame:
    """Per time steps, the training throughput ratio of each batch size to a quarter of it."""
    rows = []
    for timesteps, group in summary.groupby("timesteps"):
        rate = group.set_index("batch_size")["samples_per_s_mean"]
        for batch in rate.index:
            if batch * 4 in rate.index:
                rows.append({"timesteps": int(timesteps), "batch_size": int(batch),
                             "to_batch_size": int(batch * 4),
                             "speedup": float(rate[batch * 4] / rate[batch])})
    return pd.DataFrame(rows)


def difference(frame: pd.DataFrame, metric: str, where: dict, a: int, b: int):
    """Mean of `metric` at batch size b minus at a (other settings `where`), with its 95% Welch
    interval over seeds: (difference, low, high)."""
    chosen = frame
    for key, value in where.items():
        chosen = chosen[chosen[key] == value]
    first = chosen[chosen["batch_size"] == a][metric]
    second = chosen[chosen["batch_size"] == b][metric]
    delta = float(second.mean() - first.mean())
    if min(len(first), len(second)) < 2:
        return delta, float("nan"), float("nan")
    interval = stats.ttest_ind(second, first, equal_var=False).confidence_interval(0.95)
    return delta, float(interval.low), float(interval.high)


def updates_of(summary: pd.DataFrame) -> int | None:
    """The budget in batches (train.updates) every configuration had, or None (epochs)."""
    if "updates" not in summary or summary["updates"].isna().all():
        return None
    return int(summary["updates"].max())


def equal_budget(summary: pd.DataFrame) -> str:
    """What the batch sizes were held equal on: "equal updates (1,000)" or "equal epochs (5)"."""
    updates = updates_of(summary)
    return (f"equal updates ({updates:,})" if updates else
            f"equal epochs ({int(summary['epochs'].iloc[0])})")


def batch_timesteps_answer(summary: pd.DataFrame, frame: pd.DataFrame) -> list[str]:
    ratios = speedups(summary)
    batches = sorted(int(b) for b in summary["batch_size"].unique())
    steps = sorted(int(t) for t in summary["timesteps"].unique())
    reference = 28 if 28 in steps else steps[len(steps) // 2]
    at = summary[summary["timesteps"] == reference].set_index("batch_size")
    updates = updates_of(summary)
    lines = []
    if len(ratios):
        geometric = float(np.exp(np.log(ratios["speedup"]).mean()))
        text = (
            f"- **Speed:** each 4× larger batch trains ×{geometric:.2f} as many samples per second "
            f"(geometric mean over {len(ratios)} pairs; range ×{ratios['speedup'].min():.2f} – "
            f"×{ratios['speedup'].max():.2f}; samples/s: the median round's training part, on "
            f"the machine and Keras backend the sweep ran on). "
        )
        first = ratios[ratios["batch_size"] == batches[0]]
        if len(first):
            text += (
                f"Batch {batches[0]} → {batches[0] * 4}: ×{first['speedup'].min():.2f} – "
                f"×{first['speedup'].max():.2f} across {', '.join(map(str, steps))} time steps"
            )
            if batches[0] == 1:
                text += " (the popular answer says about 4×)"
            text += ". "
        text += (
            f"At {reference} steps: {at['samples_per_s_mean'].iloc[0]:,.0f} samples/s at batch "
            f"{batches[0]}, {at['samples_per_s_mean'].iloc[-1]:,.0f} at batch {batches[-1]} "
            f"(×{at['samples_per_s_mean'].iloc[-1] / at['samples_per_s_mean'].iloc[0]:.0f})."
        )
        lines.append(text)
    if len(batches) >= 2:
        small, next_ = batches[0], batches[1]
        delta, low, high = difference(frame, "test_accuracy", {"timesteps": reference},
                                      small, next_)
        loss_small, loss_next = at.loc[small, "train_loss_mean"], at.loc[next_, "train_loss_mean"]

        def verdict(low, high):
            close = not np.isnan(low) and low <= 0 <= high
            return "not distinguishable over these seeds" if close else "a real difference"

        largest = batches[-1]
        text = (
            f"- **What is learned, at {equal_budget(summary)}, {reference} steps:** test "
            f"accuracy {with_ci(at.loc[small], 'test_accuracy')} at batch {small}, "
            f"{with_ci(at.loc[next_], 'test_accuracy')} at batch {next_} (difference "
            f"{delta:+.2%}, Welch 95% CI {pct(low)} – {pct(high)}: {verdict(low, high)}); final "
            f"training loss {loss_small:.3f} vs {loss_next:.3f}. At batch {largest} — ")
        if updates:
            gain, low, high = difference(frame, "test_accuracy", {"timesteps": reference},
                                         small, largest)
            seconds = frame[frame["timesteps"] == reference].groupby("batch_size")[
                "train_time_s"].mean()
            text += (
                f"{largest // small}× the examples of batch {small} in as many updates — test "
                f"accuracy is {with_ci(at.loc[largest], 'test_accuracy')} ({gain:+.2%} on batch "
                f"{small}, Welch 95% CI {pct(low)} – {pct(high)}: {verdict(low, high)}) and the "
                f"training loss {at.loc[largest, 'train_loss_mean']:.3f}; its fit (the updates "
                f"and their validations) took {seconds[largest]:.0f} s against "
                f"{seconds[small]:.0f} s. At equal updates a larger batch also sees more "
                "examples: equal examples (epochs) or equal wall time were not compared here.")
            if "learning_rate" in summary.attrs.get("selected", ()):
                text += (" Each batch size had its own learning rate, chosen on validation ("
                         + ", ".join(f"batch {b}: {fmt(at.loc[b, 'learning_rate'])}"
                                     for b in batches) + ").")
        else:
            text += (
                f"{largest // small}× fewer updates per epoch than batch {small} — test accuracy "
                f"is {with_ci(at.loc[largest], 'test_accuracy')} and the training loss "
                f"{at.loc[largest, 'train_loss_mean']:.3f}: at equal epochs a larger batch "
                "buys speed with fewer, less noisy updates, so it learns less per epoch.")
        lines.append(text)
    if len(steps) >= 2:
        # the batch size shown: the best on validation, averaged over the shapes
        score = next(c for c in ("final_val_accuracy_mean", "best_val_accuracy_mean",
                                 "test_accuracy_mean") if c in summary)
        best_batch = int(summary.groupby("batch_size")[score].mean().idxmax())
        by_steps = summary[summary["batch_size"] == best_batch].set_index("timesteps")
        sizes = by_steps["units"]
        shapes = sizes.nunique() > 1  # each cut read by its own size, at about equal parameters
        accuracies = ", ".join(
            f"{t} steps" + (f" (LSTM({int(sizes[t])}))" if shapes else "")
            + f" {with_ci(by_steps.loc[t], 'test_accuracy')}" for t in steps)
        rate = summary.pivot_table(index="batch_size", columns="timesteps",
                                   values="samples_per_s_mean")
        slower = (rate[steps[0]] / rate[steps[-1]]).dropna()
        params = by_steps["param_count"]
        lines.append(
            f"- **Time steps** (how each image is cut; the same pixels"
            + (f"; at about equal parameters, {params.min():,}–{params.max():,}, the units and "
               "the pixels per step changing with the steps: shapes compared, not time steps "
               "alone" if shapes else "")
            + f"): at batch {best_batch} (the best on validation, averaged over "
            f"{'shapes' if shapes else 'time steps'}) test accuracy is {accuracies}. "
            f"{steps[0]} → {steps[-1]} steps trains ×{np.exp(np.log(slower).mean()):.1f} fewer "
            f"samples per second (geometric mean over {len(slower)} batch sizes, "
            f"×{slower.min():.1f} – ×{slower.max():.1f}): each step is a sequential recurrent "
            "update, so time steps change both what the model sees and what it costs."
        )
    if not lines:
        row = summary.iloc[0]
        lines.append(
            f"- One configuration only (batch {int(row['batch_size'])}, "
            f"{int(row['timesteps'])} steps): {row['samples_per_s_mean']:,.0f} training samples/s, "
            f"test accuracy {with_ci(row, 'test_accuracy')}; sweep train.batch_size and "
            "data.timesteps to compare."
        )
    return lines


def plot_throughput(summary: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 5))
    for timesteps, group in summary.groupby("timesteps"):
        band(axes, group, "samples_per_s", "-o", f"{int(timesteps)} steps", x="batch_size")
    smallest = summary[summary["batch_size"] == summary["batch_size"].min()]
    start = float(smallest["samples_per_s_mean"].min())
    batches = np.array(sorted(summary["batch_size"].unique()), dtype=float)
    axes.plot(batches, start * batches / batches[0], "k:", label="slope 1 (linear in batch)")
    axes.set_yscale("log")
    finish(figure, axes, xlabel="batch size (log)", ylabel="training samples/s (log; interval)",
           title="Throughput against batch size")
    save(figure, path)


def plot_batch_accuracy(summary: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    equal = equal_budget(summary)
    for timesteps, group in summary.groupby("timesteps"):
        band(left, group, "test_accuracy", "-o", f"{int(timesteps)} steps", x="batch_size")
        band(right, group, "train_loss", "-o", f"{int(timesteps)} steps", x="batch_size")
    finish(figure, left, xlabel="batch size (log)", ylabel="test accuracy (interval)",
           title=f"Test accuracy at {equal}")
    finish(figure, right, xlabel="batch size (log)", ylabel="training loss, final weights",
           title=f"Final training loss at {equal}")
    save(figure, path)


def plot_timesteps(summary: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(7, 5))
    for batch, group in summary.groupby("batch_size"):
        band(axes, group, "test_accuracy", "-o", f"batch {int(batch)}", x="timesteps")
    finish(figure, axes, xlabel="time steps per image (log; 784 / steps pixels each)",
           ylabel="test accuracy (interval)", title="Test accuracy against time steps")
    save(figure, path)


def batch_timesteps(summary: pd.DataFrame, frame: pd.DataFrame, **_) -> Analysis:
    """Throughput against batch size per time steps, and what each changes in accuracy."""
    per_round = "s/round" if updates_of(summary) else "s/epoch"  # a round: updates / epochs
    rows = [
        {
            "batch_size": int(row["batch_size"]), "timesteps": int(row["timesteps"]),
            "units": int(row["units"]), "params": f"{int(row['param_count']):,}",
            **({"learning rate": fmt(row["learning_rate"])}
               if summary["learning_rate"].nunique() > 1 else {}),
            "seeds": int(row["n_seeds"]),
            "samples/s (interval)": with_ci(row, "samples_per_s", lambda v: f"{v:,.0f}"),
            "test acc (interval)": with_ci(row, "test_accuracy"),
            "final train loss": f"{row['train_loss_mean']:.3f}",
            per_round: f"{row['epoch_time_s_mean']:.1f}",
        }
        for _, row in summary.sort_values(["timesteps", "batch_size"]).iterrows()
    ]
    ratios = speedups(summary)
    metrics = {f"batch {int(row['batch_size'])} steps {int(row['timesteps'])}/{name}": row[column]
               for _, row in summary.iterrows()
               for name, column in (("test_accuracy", "test_accuracy_mean"),
                                    ("samples_per_s", "samples_per_s_mean"))}
    if len(ratios):
        metrics["speedup_per_4x_batch"] = float(np.exp(np.log(ratios["speedup"]).mean()))
    return Analysis(
        metrics=metrics,
        answer=batch_timesteps_answer(summary, frame),
        sections=[markdown(pd.DataFrame(rows)),
                  "Speed-up per 4× batch (training samples/s):\n\n" + markdown(ratios)
                  if len(ratios) else ""],
        plots={
            "throughput.png": partial(plot_throughput, summary),
            "batch_accuracy.png": partial(plot_batch_accuracy, summary),
            "timesteps.png": partial(plot_timesteps, summary),
        },
        tables={"speedups.csv": ratios} if len(ratios) else {},
    )


# --------------------------------------------------------------------------------------------
# memorization: bits per parameter on random labels


def fano_bits(examples, fit_accuracy, classes: int):
    """A lower bound on the information in `examples` fitted random labels of `classes` classes
    at accuracy p (Fano): N·(log2 C − H_b(p) − (1 − p)·log2(C − 1)); 0 at or below chance
    (p ≤ 1/C), N·log2 C at p = 1."""
    p = np.clip(np.asarray(fit_accuracy, dtype=float), 1 / classes, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nan_to_num(p * np.log2(p)) - np.nan_to_num((1 - p) * np.log2(1 - p))
    return np.asarray(examples, dtype=float) * (
        np.log2(classes) - entropy - (1 - p) * np.log2(classes - 1)
    )


def memorization_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (units, train_size): fit accuracy on the random labels and the bits it stores, over
    seeds (mean and interval), and bits per parameter."""
    random = frame[(frame["label_noise"] == 1.0) & frame["fit_accuracy"].notna()].copy()
    random["bits"] = fano_bits(random["train_size"], random["fit_accuracy"],
                               int(random["num_classes"].iloc[0]))
    random["bits_per_param"] = random["bits"] / random["param_count"]
    rows = []
    for (units, size), group in random.groupby(["units", "train_size"]):
        row = {"units": int(units), "train_size": int(size),
               "param_count": int(group["param_count"].iloc[0]),
               "n_seeds": int(group["seed"].nunique())}
        row["interval"] = interval_kind(row["n_seeds"])
        rows.append(aggregate(row, group, ["fit_accuracy", "bits", "bits_per_param"]))
    return pd.DataFrame(rows).sort_values(["units", "train_size"]).reset_index(drop=True)


def memorization_answer(table: pd.DataFrame, budget: str, *, random_inputs: bool = False,
                        tuned: str = "") -> list[str]:
    """`tuned`: what chose the learning rate per size and subset ("the fit", "validation"), or
    "" for one fixed recipe."""
    lines = []
    for units, group in table.groupby("units"):
        best = group.loc[group["bits_per_param_mean"].idxmax()]
        fitted = group[group["fit_accuracy_mean"] >= FITTED]
        largest = group.iloc[-1]
        lines.append(
            f"- **LSTM({units})** ({int(best['param_count']):,} parameters): at least "
            f"**{best['bits_per_param_mean']:.2f} bits per parameter** "
            f"({best['bits_mean']:,.0f} bits, fitting {pct(best['fit_accuracy_mean'])} of "
            f"{int(best['train_size']):,} random labels). "
            + (f"It fits ≥ {FITTED:.0%} of the random labels up to "
               f"{int(fitted['train_size'].max()):,} images"
               if len(fitted) else f"It fits ≥ {FITTED:.0%} of none of the subsets")
            + f"; on {int(largest['train_size']):,} it fits "
            f"{with_ci(largest, 'fit_accuracy')}."
        )
    top = table.loc[table["bits_per_param_mean"].idxmax()]
    # every size whose best interval reaches the top's: the seeds cannot tell them apart
    peaks = table.loc[table.groupby("units")["bits_per_param_mean"].idxmax()]
    tied = peaks[peaks["bits_per_param_ci_high"] >= top["bits_per_param_ci_low"]]
    rising, peaked, smallest = [], [], []  # bits still growing by > 5% at the largest subset
    for units, group in table.groupby("units"):
        if len(group) >= 2 and group["bits_mean"].iloc[-1] > 1.05 * group["bits_mean"].iloc[-2]:
            rising.append(f"LSTM({units}) {group['bits_mean'].iloc[-2]:,.0f} → "
                          f"{group['bits_mean'].iloc[-1]:,.0f} bits")
        else:
            peak = group.loc[group["bits_mean"].idxmax()]
            at, after = peak["train_size"], group[group["train_size"] > peak["train_size"]]
            close = (len(after) and after["bits_per_param_ci_high"].iloc[0]
                     >= peak["bits_per_param_ci_low"])  # the fall within the seeds' scatter
            peaked.append(f"LSTM({units}) at {int(at):,} images"
                          + (" (the next subset's seed range overlapping)" if close else ""))
            if at == table["train_size"].min():
                smallest.append(f"LSTM({units})")
    best = (f"at least {top['bits_per_param_mean']:.2f} bits per parameter (LSTM({int(top['units'])})"
            f" on {int(top['train_size']):,} images)")
    if len(tied) > 1:
        best += (", its seeds' range overlapping " + ", ".join(
            f"LSTM({int(row['units'])})'s {row['bits_per_param_mean']:.2f}"
            for _, row in tied.iterrows() if row["units"] != top["units"]))
    lines.append(
        f"- Best: {best}. "
        + (f"Still rising at the largest subset ({int(table['train_size'].max()):,} images): "
           f"{'; '.join(rising)} — a larger subset may show more: the peak over subset sizes "
           "was not found. " if rising else "")
        + (f"Peaked under this recipe: {', '.join(peaked)}, falling after" if peaked else "")
        + (f" ({', '.join(smallest)}: the smallest subset tried, a smaller one may store more "
           "per parameter)" if smallest else "") + ("." if peaked else "")
    )
    differences = [] if random_inputs else [
        "real MNIST inputs (similar images with unrelated labels)"]
    differences.append(f"{budget} (the rates chosen per size and subset on {tuned}; the "
                       "selection table lists every rate tried)"
                       if tuned else f"one fixed recipe ({budget}, no tuning)")
    differences += ["the softmax head counted", "Fano's bound credits a partial fit only with "
                    "the information it provably holds"]
    lines.append(
        "- Against the ~5 bits per parameter of Collins et al. 2017, who fit random labels of "
        "random inputs with hyperparameters tuned per size and long training and report the "
        "best: " + ("the same kind of data here, " if random_inputs else "not comparable; ")
        + "possible reasons for less, not tested: " + ", ".join(differences) + "."
    )
    return lines


def plot_memorization(table: pd.DataFrame, classes: int, path: Path) -> None:
    plt = pyplot()
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    for units, group in table.groupby("units"):
        label = f"LSTM({units}), {int(group['param_count'].iloc[0]):,} params"
        band(left, group, "fit_accuracy", "-o", label, x="train_size")
        band(right, group, "bits_per_param", "-o", label, x="train_size")
    left.axhline(1 / classes, color="black", linestyle="-.", linewidth=0.8, label="chance")
    right.axhline(COLLINS_BITS_PER_PARAM, color="grey", linestyle=":",
                  label="Collins et al. 2017 (~5)")
    finish(figure, left, xlabel="random-label training images (log)",
           ylabel="fit accuracy on its random labels (interval)", title="How much is fitted")
    finish(figure, right, xlabel="random-label training images (log)",
           ylabel="bits stored per parameter (Fano bound)", title="Bits per parameter")
    right.set_yscale("log")
    save(figure, path)


def memorization(summary: pd.DataFrame, frame: pd.DataFrame, **_) -> Analysis:
    """Bits of random labels stored per parameter, from the fit accuracy on each subset."""
    table = memorization_table(frame)
    shown = pd.DataFrame([
        {
            "units": int(row["units"]), "params": f"{int(row['param_count']):,}",
            "train_size": f"{int(row['train_size']):,}", "seeds": int(row["n_seeds"]),
            "fit acc (interval)": with_ci(row, "fit_accuracy"),
            "bits stored": f"{row['bits_mean']:,.0f}",
            "bits/param (interval)": with_ci(row, "bits_per_param", lambda v: f"{v:.3f}"),
        }
        for _, row in table.iterrows()
    ])
    top = table.loc[table["bits_per_param_mean"].idxmax()]
    metrics = {f"units {int(units)}/bits_per_param_at_least": group["bits_per_param_mean"].max()
               for units, group in table.groupby("units")}
    metrics.update(best_bits_per_param_at_least=top["bits_per_param_mean"],
                   best_units=top["units"], best_train_size=top["train_size"])
    return Analysis(
        metrics=metrics,
        answer=memorization_answer(
            table, recipe(summary),
            random_inputs=bool("random_inputs" in summary and (summary["random_inputs"] == 1).all()),
            tuned=("" if not summary.attrs.get("selected") else "the fit"
                   if summary.attrs.get("selected_on") == "fit_accuracy" else "validation")),
        sections=[markdown(shown)],
        plots={"memorization.png": partial(plot_memorization, table, classes_of(summary))},
        tables={"memorization.csv": table},
    )


# --------------------------------------------------------------------------------------------
# double_descent: test error against parameters through the interpolation threshold


def with_errors(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary with test_error and fit_error (1 − accuracy) as mean and CI columns."""
    columns = {}
    for error, accuracy in (("test_error", "test_accuracy"), ("fit_error", "fit_accuracy")):
        columns[f"{error}_mean"] = 1 - summary[f"{accuracy}_mean"]
        columns[f"{error}_ci_low"] = 1 - summary[f"{accuracy}_ci_high"]
        columns[f"{error}_ci_high"] = 1 - summary[f"{accuracy}_ci_low"]
    return summary.assign(**columns)


def descent(group: pd.DataFrame) -> dict:
    """For one label-noise level, sorted by size: the interpolation threshold (smallest size
    fitting ≥ 99% of its training labels), the largest rise of test error after a lower error
    at a smaller size (the peak), and the error beyond it. Significant = intervals apart."""
    group = group.sort_values("param_count").reset_index(drop=True)
    error = group["test_error_mean"].to_numpy()
    low = group["test_error_ci_low"].to_numpy()
    high = group["test_error_ci_high"].to_numpy()
    fitted = group[group["fit_accuracy_mean"] >= FITTED]
    closest = group.loc[group["fit_accuracy_mean"].idxmax()]
    result = {"threshold": int(fitted["units"].iloc[0]) if len(fitted) else None,
              "closest": (int(closest["units"]), 1 - float(closest["fit_accuracy_mean"])),
              "peak": None}
    rises = [(error[j] - error[:j].min(), j) for j in range(1, len(error))]
    rise, j = max(rises) if rises else (0.0, None)
    if j is not None and rise > 0:
        i = int(np.argmin(error[:j]))
        after = error[j + 1 :]
        k = j + 1 + int(np.argmin(after)) if len(after) else None
        result["peak"] = {
            "dip": int(group["units"][i]), "dip_error": error[i],
            "at": int(group["units"][j]), "error": error[j], "rise": rise,
            "significant": bool(low[j] > high[i]),
            "after": int(group["units"][k]) if k is not None else None,
            "after_error": error[k] if k is not None else None,
            "second_descent": bool(k is not None and high[k] < low[j]),
        }
    result["first"], result["last"] = error[0], error[-1]
    result["best_units"] = int(group["units"][int(np.argmin(error))])
    result["best_error"] = float(error.min())
    return result


def double_descent_answer(summary: pd.DataFrame) -> list[str]:
    lines = []
    for noise, group in summary.groupby("label_noise"):
        found = descent(group)
        threshold = found["threshold"]
        head = f"- **label noise {noise:.0%}:** "
        units, error = found["closest"]
        head += (f"training error reaches ~0 (≥ {FITTED:.0%} of its labels fitted) from "
                 f"**{threshold} units** on; " if threshold is not None else
                 f"no size fits its training labels to {FITTED:.0%} in this budget (closest: "
                 f"{units} units, training error {pct(error)}); ")
        peak = found["peak"]
        if peak is None or peak["rise"] < 0.005:
            head += (f"test error falls from {pct(found['first'])} and never rises again by "
                     f"half a point (best {pct(found['best_error'])} at {found['best_units']} "
                     "units): **no peak**.")
        else:
            near = threshold is not None and 1 / 4 <= peak["at"] / threshold <= 4
            head += (
                f"test error falls to {pct(peak['dip_error'])} at {peak['dip']} units, rises to "
                f"**{pct(peak['error'])} at {peak['at']} units** (+{peak['rise']:.1%}; "
                f"{'intervals apart' if peak['significant'] else 'within seed noise'}"
                + (f"; {'near' if near else 'not near'} the interpolation threshold"
                   if threshold is not None else "")
                + ")"
            )
            if peak["after"] is not None:
                head += f", then falls again to {pct(peak['after_error'])} at {peak['after']} units ("
                if not peak["significant"]:  # no measured peak: nothing to descend a second time
                    head += ("below the peak, intervals apart; the rise is not, so this is one "
                             "descent with a plateau, not a measured double descent)."
                             if peak["second_descent"] else "not interval-separated either).")
                else:
                    head += ("a second descent, intervals apart)." if peak["second_descent"]
                             else "not interval-separated from the peak).")
            else:
                head += ", at the largest size tried."
        lines.append(head)
    return lines


def plot_double_descent(summary: pd.DataFrame, path: Path) -> None:
    plt = pyplot()
    figure, axes = plt.subplots(figsize=(8, 5))
    for noise, group in summary.groupby("label_noise"):
        line = band(axes, group, "test_error", "-o", f"test error, noise {noise:.0%}")
        band(axes, group, "fit_error", "--", f"training error (its labels), noise {noise:.0%}")
        threshold = descent(group)["threshold"]
        if threshold is not None:
            params = group[group["units"] == threshold]["param_count"].iloc[0]
            axes.axvline(params, color=line.get_color(), linestyle=":", linewidth=1,
                         label=f"training error ~0 from {threshold} units (noise {noise:.0%})")
    for _, row in summary[summary["label_noise"] == summary["label_noise"].min()].iterrows():
        axes.annotate(f"{int(row['units'])}", (row["param_count"], row["test_error_mean"]),
                      textcoords="offset points", xytext=(0, 6), ha="center", fontsize=7)
    finish(figure, axes, xlabel="parameters (log scale; labels: units)",
           ylabel="error (mean, interval band)", title="Test error against capacity")
    save(figure, path)


def double_descent(summary: pd.DataFrame, frame: pd.DataFrame, **_) -> Analysis:
    """Test error against parameters per label-noise level, with where training error hits 0."""
    summary = with_errors(summary)
    rows = [
        {
            "units": int(row["units"]), "label_noise": fmt(row["label_noise"]),
            "params": f"{int(row['param_count']):,}", "seeds": int(row["n_seeds"]),
            "test error (interval)": with_ci(row, "test_error"),
            "training error (its labels)": pct(row["fit_error_mean"]),
            "train acc (clean labels)": pct(row["train_accuracy_mean"]),
        }
        for _, row in summary.sort_values(["label_noise", "param_count"]).iterrows()
    ]
    metrics = {}
    for noise, group in summary.groupby("label_noise"):
        found, label = descent(group), f"noise {noise:g}"
        metrics[metric_name(label, "best_test_error")] = found["best_error"]
        metrics[metric_name(label, "best_units")] = found["best_units"]
        if found["threshold"] is not None:
            metrics[metric_name(label, "interpolation_units")] = found["threshold"]
        if found["peak"] is not None:
            metrics[metric_name(label, "peak_units")] = found["peak"]["at"]
            metrics[metric_name(label, "peak_rise")] = found["peak"]["rise"]
    return Analysis(
        metrics=metrics,
        answer=double_descent_answer(summary),
        sections=[markdown(pd.DataFrame(rows))],
        plots={"double_descent.png": partial(plot_double_descent, summary)},
    )


# The analyses a study can name in `report.analysis` (harness/config.py checks the name).
REGISTRY: dict[str, Callable[..., Analysis]] = {
    "capacity": capacity,
    "batch_timesteps": batch_timesteps,
    "memorization": memorization,
    "double_descent": double_descent,
}
