"""The rule that chooses a configuration's training setting in a race (race_seeds): used by the
sweep to decide which candidate trains the other seeds (harness/plan.py) and by the report to
say which one it chose (harness/summary.py), so the two cannot disagree. Pure Python."""

from __future__ import annotations

import math


def race_choice(candidates: list[tuple[tuple, dict[int, float]]], race_seeds: int) -> int | None:
    """The index of the candidate a race keeps. `candidates`: (its setting's values, its score
    — validation accuracy or what report.select_on names — by seed). They are compared on the
    `race_seeds` smallest seeds any of them trained; one without a finite score on each of those
    seeds (a failed or unfinished run) cannot win. The best mean wins; a tie goes to the
    smallest setting. None when no candidate has all those seeds."""
    seeds = race_seeds_of(candidates, race_seeds)
    best, best_key = None, None
    for index, (setting, scores) in enumerate(candidates):
        values = [scores.get(seed, math.nan) for seed in seeds]
        if not seeds or not all(math.isfinite(value) for value in values):
            continue
        key = (-sum(values) / len(values), setting)
        if best_key is None or key < best_key:
            best, best_key = index, key
    return best


def race_seeds_of(candidates: list[tuple[tuple, dict[int, float]]], race_seeds: int) -> list[int]:
    """The seeds a race compares its candidates on (see race_choice)."""
    return sorted(set().union(*(scores for _, scores in candidates)))[:race_seeds]
