"""A study's report: its child runs from MLflow, summarised across seeds (harness/summary.py),
answered by the analysis the study names (harness/analyses.py) and written as
results/STUDY/{summary.csv, report.md, the analysis's plots}.

`python -m harness.report STUDY [--target 0.9]` writes them and logs them to the study's latest
parent run."""

from __future__ import annotations

import argparse
import datetime
import os
import re
from functools import partial
from pathlib import Path

import pandas as pd

from harness import analyses, tracking
from harness.config import ConfigError, check_report, parse_target
from harness.console import fail
from harness.study import report_settings, study_header
from harness.summary import (
    CONFIG_COLUMNS, choose_analysis, fmt, interval_text, markdown, pct, runs_frame, select,
    summarize,
)


# --------------------------------------------------------------------------------------------
# The report


def write_report(
    study: str, runs: pd.DataFrame, out: Path, *, settings: dict, parent_id: str | None,
    histories=None,
) -> tuple[dict[str, Path], dict[str, float]]:
    """Write summary.csv, the analysis's plots and tables, and report.md for the study; return
    the files and the answer's numbers. `histories(run_ids)` returns per-epoch metrics
    (tracking.metric_histories), for the analyses that plot learning curves."""
    frame = runs_frame(runs)
    if frame.empty:
        raise ValueError(f"STUDY: {study!r} has no FINISHED runs; run `make sweep STUDY={study}`")
    summary = summarize(frame)
    trained = frame  # every run, for the counts and the compute
    keys = list(settings.get("select") or [])
    selection = None
    if keys:  # each configuration's training settings chosen on validation, before any answer
        summary, selection = select(summary, keys, frame,
                                    settings.get("select_on", "final_val_accuracy"),
                                    settings.get("race_seeds", 0))
        columns = [c for c in CONFIG_COLUMNS if c in summary and c in frame]
        frame = frame.merge(summary[columns], on=columns)
    name = choose_analysis(settings.get("analysis", "auto"), summary)
    result = analyses.REGISTRY[name](summary, frame, target=settings.get("target", 0.9),
                                     weights=settings.get("weights", "best"),
                                     histories=histories)
    out.mkdir(parents=True, exist_ok=True)
    files = {"summary": out / "summary.csv"}
    summary.to_csv(files["summary"], index=False, float_format="%.6g")
    if selection is not None:
        files["selection"] = out / "selection.csv"
        selection.to_csv(files["selection"], index=False, float_format="%.6g")
    for file_name, table in result.tables.items():
        files[file_name] = out / file_name
        table.to_csv(files[file_name], index=False, float_format="%.6g")
    for file_name, draw in result.plots.items():
        files[file_name] = out / file_name
        draw(files[file_name])
    children = runs[runs.get("tags.mlflow.parentRunId").notna()] if len(runs) else runs
    counts = children["status"].value_counts().to_dict()
    question, budget = study_header(study)
    started = pd.to_datetime(trained["start_time"])
    text = [
        f"# {question or study}",
        "",
        f"Study `{study}` (`experiments/{study}.yaml`), analysis `{name}`. {budget}".strip(),
        "",
        "## Answer",
        "",
        *result.answer,
        budget_line(summary, selection, name, settings.get("weights", "best"), frame),
        "",
        *(selection_section(selection, keys) if selection is not None else []),
        *[block for section in result.sections if section for block in (section, "")],
        *[f"![{Path(f).stem}]({f})\n" for f in result.plots],
        f"Runs: {len(frame)} counted (newest FINISHED per configuration and seed"
        + (", of the settings selected" if keys else "") + f"; {len(trained)} trained) of "
        f"{len(children)} child runs ({', '.join(f'{v} {k}' for k, v in sorted(counts.items()))}), "
        f"started {started.min():%Y-%m-%d %H:%M} – {started.max():%Y-%m-%d %H:%M} UTC. "
        f"Training compute: {trained['train_time_s'].sum() / 3600:.2f} h. "
        + interval_text(summary),
        "",
        f"Reproduce: `make sweep STUDY={study} && make report STUDY={study}` "
        f"(report written {datetime.date.today().isoformat()}"
        + (f"; MLflow parent run `{parent_id}`" if parent_id else "")
        + ").",
        "",
    ]
    files["report"] = out / "report.md"
    files["report"].write_text("\n".join(text))
    return files, result.metrics


# A selection whose winner leads the runner-up by less than this is said to be a close call.
CLOSE = 0.005


def margins(selection: pd.DataFrame) -> pd.Series:
    """Per configuration (indexed by its chosen row), how far the chosen setting's score led
    the next best's (0: a tie, which goes to the smallest setting)."""
    score = "val_accuracy_mean" if "val_accuracy_mean" in selection else "fit_accuracy_mean"
    fixed = [c for c in CONFIG_COLUMNS if c in selection and c != "learning_rate"]
    lead = {}
    for _, group in selection.groupby(fixed, dropna=False, sort=True):
        chosen = group[group["selected"]]
        others = group[~group["selected"]][score].dropna()
        if len(chosen) and len(others):
            lead[chosen.index[0]] = float(chosen[score].iloc[0] - others.max())
    return pd.Series(lead, dtype=float)


def labels(table: pd.DataFrame, rows: pd.DataFrame) -> list[str]:
    """Names for `rows` of `table`'s configurations: their units and, of the other columns
    that vary in `table` (the selected learning rate aside), their values ("6 units, patience
    4")."""
    varying = [c for c in CONFIG_COLUMNS if c in table and c not in ("units", "learning_rate")
               and table[c].nunique() > 1]
    return [f"{int(row['units'])} unit{'s' * (row['units'] != 1)}"
            + "".join(f", {c} {fmt(row[c])}" for c in varying) for _, row in rows.iterrows()]


def close_calls(selection: pd.DataFrame) -> list[str]:
    """The configurations whose chosen setting led the next best by less than CLOSE in the
    score that chose it (ties, where the smallest setting was taken, left out)."""
    lead = margins(selection)
    return labels(selection, selection.loc[lead[(lead > 0) & (lead < CLOSE)].index])


def capped(summary: pd.DataFrame, frame: pd.DataFrame | None) -> list[str]:
    """The configurations with seeds that trained every epoch allowed (early stopping never
    stopped them: they may still improve), each with how many of its seeds did."""
    if frame is None or "epochs_trained" not in frame:
        return []
    columns = [c for c in CONFIG_COLUMNS if c in summary and c in frame]
    runs = frame[columns + ["epochs_trained"]].copy()
    runs["capped"] = runs["epochs_trained"] >= runs["epochs"]
    counts = runs.groupby(columns, dropna=False)["capped"].agg(["sum", "size"]).reset_index()
    hit = counts[counts["sum"] > 0]
    return [f"{name} ({int(row['sum'])} of {int(row['size'])} seeds)"
            for name, (_, row) in zip(labels(summary, hit), hit.iterrows())]


def budget_line(summary: pd.DataFrame, selection: pd.DataFrame | None,
                analysis: str = "capacity", weights: str = "best",
                frame: pd.DataFrame | None = None) -> str:
    """What the answer is for, in one sentence: the optimiser and how its settings were
    chosen, how long each model trained (and which did not converge, and what that means for
    the analysis's figures), the batch and seeds. `frame`: the counted runs, one per seed, to
    say which seeds early stopping never stopped."""
    def values(frame, column):
        return "/".join(fmt(v) for v in sorted(frame[column].dropna().unique()))

    if selection is not None and "learning_rate" in selection:
        rates = selection["learning_rate"]
        kept = selection[selection["selected"]]["learning_rate"]
        text = ("Adam with the learning rate chosen per configuration "
                + ("on validation" if "val_accuracy_mean" in selection else
                   "on the fit of its training labels")
                + " from " + values(selection, "learning_rate"))
        if "compared_on_seeds" in selection:
            raced = selection["compared_on_seeds"]
            text += (f" (raced: every rate trained seed{'s' * (', ' in raced.iloc[0])} "
                     f"{raced.iloc[0]}, only the best there the others)")
        close = close_calls(selection)
        if close:
            text += (f" (close calls at {'; '.join(close)}: the chosen rate led the next by "
                     f"under {CLOSE * 100:.1f} points on "
                     + ("the race's seeds, where another draw of seeds may choose otherwise)"
                        if "compared_on_seeds" in selection else "the mean over seeds)"))
        lead = margins(selection)
        ties = selection.loc[lead[lead <= 0].index, "learning_rate"]
        if len(ties):
            text += f" ({len(ties)} of {len(kept)} a tie, the smallest taken)"
        decided = kept.drop(ties.index, errors="ignore")
        for name, edge in (("largest", rates.max()), ("smallest", rates.min())):
            if rates.nunique() > 1 and (decided == edge).any():  # the best may lie beyond it
                text += (f" ({int((decided == edge).sum())} of {len(kept)} chose the {name} "
                         "tried: one beyond it might do better)")
        parts = [text]
    else:
        parts = [f"Adam {values(summary, 'learning_rate')}"]
    patience = summary["patience"] if "patience" in summary else pd.Series(dtype=float)
    if len(patience) and (patience >= summary["epochs"]).all():
        parts.append(f"every run trained all its {values(summary, 'epochs')} epochs (the "
                     f"patience, {values(summary, 'patience')}, never runs out) and is answered "
                     + ("on its last epoch's weights, the best validation epoch's test "
                        "accuracy beside them" if weights == "last" else
                        "on its best validation epoch's weights"))
    elif patience.notna().any():
        text = (f"early stopping on validation accuracy (patience {values(summary, 'patience')}, "
                f"at most {values(summary, 'epochs')} epochs, best weights restored)")
        at_cap = capped(summary, frame)
        if at_cap:
            text += (f"; seeds that trained every epoch allowed, never stopped, and may still "
                     f"improve: {'; '.join(at_cap)}")
        elif frame is not None and "epochs_trained" in frame:
            text += "; every run stopped before the epoch cap"
        parts.append(text)
    elif analyses.updates_of(summary):
        parts.append(f"a fixed {analyses.updates_of(summary):,} updates (batches) for every "
                     f"configuration whatever its batch size, validated "
                     f"{values(summary, 'epochs')} times, the last weights tested — not trained "
                     "to convergence: its differences may change with more updates")
    else:
        meaning = {
            "capacity": "so a smallest size that reaches a target is an upper bound on what is "
                        "needed",
            "memorization": "so the bits stored are a lower bound on what each size can store",
        }.get(analysis, "so its differences may change with longer training")
        parts.append(f"a fixed {values(summary, 'epochs')} epochs for every configuration, not "
                     f"trained to convergence: its accuracies are what this recipe reaches, "
                     f"{meaning}")
    seeds = summary["n_seeds"]
    parts.append(f"batch {values(summary, 'batch_size')}, "
                 f"{seeds.min()}{'' if seeds.min() == seeds.max() else f'–{seeds.max()}'} seeds")
    return "- **Budget:** this answer is for " + ", ".join(parts) + "."


def selection_section(selection: pd.DataFrame, keys: list[str]) -> list[str]:
    """The selection table: every candidate setting per configuration, its mean validation
    accuracy over seeds, the one kept."""
    score = "val_accuracy_mean" if "val_accuracy_mean" in selection else "fit_accuracy_mean"
    raced = "compared_on_seeds" in selection
    every = f"{score.removesuffix('_mean')}_all_seeds"
    shown = selection.assign(**{
        column: selection[column].map(pct) for column in (score, every) if column in selection
    }).assign(selected=selection["selected"].map({True: "**selected**", False: ""}))
    shown = shown[[c for c in shown if c in (score, every, "n_seeds", "selected")
                   or shown[c].nunique(dropna=False) > 1]]  # the columns every row shares: out
    if raced:
        shown = shown.rename(columns={score: f"{score} (compared seeds)",
                                      every: f"{every.removesuffix('_all_seeds')}_mean (all seeds)"})
    what = ("tested weights have the best mean validation accuracy" if score == "val_accuracy_mean"
            else "runs fit the most of their training labels (mean fit accuracy)")
    return ["## Selection on validation" if score == "val_accuracy_mean" else
            "## Selection on the fit of the training labels", "",
            f"For each configuration, the {', '.join(f'`{k}`' for k in keys)} whose {what} "
            "over seeds is kept; the answer and the tables below use only those. Test accuracy "
            "never chooses. Columns every candidate shares are left out (the budget above "
            "names them)."
            + (" The candidates raced (`report.race_seeds`): each trained the smallest seeds "
               "(`compared_on_seeds`), where they are compared (a candidate missing one of "
               "them cannot win; a tie goes to the smallest setting); only the best there "
               "trained the other seeds (`n_seeds`), and the last score column is over all "
               "of a candidate's seeds. A winner by less than the seeds' spread is a draw of "
               "those seeds: more racing seeds may choose otherwise." if raced else ""), "",
            markdown(shown), ""]


def answer_text(report_md: str) -> str:
    """The Answer section of a report.md."""
    return report_md.split("## Answer\n\n", 1)[1].split("\n\n", 1)[0]


def report_study(uri: str, study: str, out: Path, *, settings: dict,
                 parent: str | None = None) -> tuple[Path, str | None]:
    """Write results/STUDY/ from the store at `uri`, attach the files to the parent run (default:
    the study's latest) and make the report its description. Returns report.md's path and the
    parent's id; ValueError when nothing finished."""
    runs = tracking.study_runs(uri, study)
    if runs is None:
        raise ValueError(f"STUDY: no experiment {study!r} in {uri}")
    parent = parent or tracking.latest_parent(runs)
    files, metrics = write_report(study, runs, out / study, settings=settings, parent_id=parent,
                                  histories=partial(tracking.metric_histories, uri))
    if parent:
        tracking.log_report(uri, parent, list(files.values()), metrics,
                            pd.read_csv(files["summary"]))
        tracking.describe_run(uri, parent, ui_markdown(files["report"].read_text(), parent))
        tracking.preset_runs_view(uri, study, runs)  # the runs page's view: the swept params
    return files["report"], parent


def ui_markdown(text: str, run_id: str) -> str:
    """report.md for the MLflow UI, which shows a description's first lines, at the foot of the
    run page's first screen: the question in bold, the Answer's sentences straight after it
    (no heading: one line higher; the budget is the experiment's description), and the plots
    pointing at the parent run's artifacts."""
    title, _, rest = text.partition("\n\n")
    rest = rest.split("\n\n", 1)[1] if rest.startswith("Study `") else rest
    rest = rest.removeprefix("## Answer\n\n")
    text = f"**{title.lstrip('# ')}**\n\n{rest}"
    return re.sub(r"!\[([^]]*)\]\(([^)/]+\.png)\)",
                  rf"![\1](get-artifact?path=report%2F\2&run_uuid={run_id})", text)


def main(argv: list[str] | None = None) -> None:
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
            settings["target"] = args.target  # "0.95 of bayes"
        try:
            parse_target(settings["target"])
        except ConfigError:
            fail(f"TARGET: {args.target} is not allowed; use a number in (0, 1] or "
                 "'<fraction> of bayes'")
    try:
        check_report(settings)  # the study's report section: analysis, target, select
    except ConfigError as error:
        fail(str(error))
    try:  # before reading the store: a folder that cannot be written is a one-line error
        Path(args.out).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"OUT: cannot create {args.out!r} ({error.strerror}); use a writable folder")
    try:
        uri = tracking.connect(args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI"))
        path, parent = report_study(uri, args.study, Path(args.out), settings=settings)
    except (ValueError, tracking.TrackingError) as error:
        fail(str(error))
    print(f"{answer_text(path.read_text())}\nreport: {path}")
    if parent:
        print(tracking.browse_text(uri, args.study, parent))


if __name__ == "__main__":
    main()
