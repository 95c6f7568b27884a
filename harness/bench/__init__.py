"""`make bench`: the harness against the naive Keras way on the same grid, seeds and epochs, in
one run on one machine. Writes results/bench/bench.json and bench.md.

Baseline: one fresh Python process per (units, seed) running harness/bench/naive_keras.py, one after
another. Ours: `python -m harness units_mnist` on the same grid into a temporary MLflow store,
JOBS worker processes, on the study's backend (JAX: XLA compiles each training step, and the
seeds of a size share the compiled programs); under TensorFlow the seeds of each size up to
PACK_MAX_UNITS train packed as the sweep's cost model plans (harness/packing.py,
plan.plan_packs), the LSTM loop in TensorFlow's fused CPU kernel (harness/fused.py).
Also: the matmul rate measured in the same run for the threads each side's jobs had (before and
after), analytic training FLOPs per epoch and the % of that bound each epoch reaches, peak RSS of
each side. `--baseline=skip` runs ours alone: the study-level figure (our wall time against the
grid's FLOP bound) without the naive way's hours (`make bench BENCH_GRID=full
BENCH_BASELINE=skip`: ~15 min on 2 cores instead of ~3 h)."""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.backend import JAX_CACHE
from harness.console import fail

UNITS_MNIST = {"units": [1, 2, 3, 4, 6, 8, 12, 16, 32, 64, 128], "seeds": [0, 1, 2, 3, 4]}
GRIDS = {
    # units_mnist with 1 epoch instead of 10: the study's mix of sizes and seeds (40 of its 55
    # runs have ≤ 16 units), about 10 minutes for both sides on 2 cores.
    "default": {**UNITS_MNIST, "epochs": 1},
    # Four sizes × two seeds × two epochs: weighted towards LSTM(128), the compute-bound case.
    "four_sizes": {"units": [2, 8, 32, 128], "seeds": [0, 1], "epochs": 2},
    "full": {**UNITS_MNIST, "epochs": 10},
}
TRAIN, VALIDATION, TIMESTEPS, INPUTS, CLASSES = 55000, 5000, 28, 28, 10
PACK_MAX_UNITS = 16  # the sweep trains the seeds of sizes up to this packed (harness/packing.py)


def training_flops_per_epoch(units: int, *, examples: int = TRAIN, timesteps: int = TIMESTEPS,
                             inputs: int = INPUTS, classes: int = CLASSES,
                             validation: int = VALIDATION) -> float:
    """Matmul FLOPs of one epoch of LSTM training (elementwise work left out).

    Forward, per example: each step multiplies [x_t, h_{t-1}] (inputs + units) by the four
    gates' kernel (4·units columns): 2·4·units·(inputs + units); the head adds 2·units·classes.
    Backward costs twice the forward (gradients for activations and for weights), so training
    is 3× forward on the training set, plus one forward pass over the validation set.
    """
    forward = timesteps * 2 * 4 * units * (inputs + units) + 2 * units * classes
    return 3 * forward * examples + forward * validation


def matmul_rate(size: int = 2048, repeats: int = 10) -> float:
    """FLOP/s of TensorFlow's float32 matmul in this process, best of `repeats`."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    (a @ b).numpy()  # warm up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        (a @ b).numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best


def matmul_rate_with(threads: int) -> float:
    """matmul_rate in a fresh process whose TensorFlow uses `threads` threads, as a job does."""
    code = (
        "import tensorflow as tf; from harness.bench import matmul_rate; "
        f"tf.config.threading.set_intra_op_parallelism_threads({threads}); "
        f"tf.config.threading.set_inter_op_parallelism_threads({threads}); print(matmul_rate())"
    )
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"), check=True)
    return float(process.stdout.strip().splitlines()[-1])


def _timed(command: list[str], env: dict) -> tuple[subprocess.CompletedProcess, float, int]:
    """Run under GNU time: (process, wall seconds, peak RSS in MiB of it and its children)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
        started = time.perf_counter()
        process = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, *command],
                                 env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        peak_kib = int((report.read().strip().splitlines() or ["0"])[-1])
    return process, wall, peak_kib // 1024


def run_naive(units: int, seed: int, epochs: int, env: dict) -> tuple[dict, int]:
    """One fresh `python -m harness.bench.naive_keras` process: its JSON line with the process's wall
    time added, and its peak RSS in MiB."""
    process, wall, rss = _timed([sys.executable, "-m", "harness.bench.naive_keras", str(units),
                                 str(seed), str(epochs)], env)
    if process.returncode:
        raise RuntimeError(f"baseline units={units} seed={seed} failed:\n"
                           f"{process.stderr[-2000:]}")
    result = json.loads(process.stdout.strip().splitlines()[-1])
    result["wall_s"] = wall
    return result, rss


def run_baseline(grid: dict, env: dict) -> dict:
    runs, peak, started = [], 0, time.perf_counter()
    for units in grid["units"]:
        for seed in grid["seeds"]:
            result, rss = run_naive(units, seed, grid["epochs"], env)
            runs.append(result)
            peak = max(peak, rss)
            print(f"  baseline units={units} seed={seed}: {result['wall_s']:.1f} s, "
                  f"test_accuracy {result['test_accuracy']:.4f}", flush=True)
    return {"wall_s": time.perf_counter() - started, "peak_rss_mib": peak, "runs": runs}


def run_ours(grid: dict, env: dict, jobs: int, workdir: Path) -> dict:
    from mlflow.tracking import MlflowClient

    store = workdir / "mlflow.db"
    env = dict(env, MLFLOW_TRACKING_URI=f"sqlite:///{store}")
    # One job per (size, seed); seeds of sizes up to pack_max_units train packed as the sweep
    # plans, in the job of each pack's first seed. Largest sizes first, so the longest jobs do
    # not start last.
    command = [
        sys.executable, "-m", "harness", "units_mnist", f"--jobs={jobs}",
        f"model.units={','.join(map(str, sorted(grid['units'], reverse=True)))}",
        f"seed={','.join(map(str, grid['seeds']))}", f"train.epochs={grid['epochs']}",
        f"pack_max_units={PACK_MAX_UNITS}", f"hydra.sweep.dir={workdir}/hydra",
        f"report.out={workdir}/reports",  # not over the study's own report in results/
    ]
    cached = compiled_programs(env)
    process, wall, rss = _timed(command, env)
    if process.returncode:
        raise RuntimeError(f"our sweep failed:\n{process.stdout[-2000:]}{process.stderr[-2000:]}")
    compiled = len(compiled_programs(env) - cached)
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("units_mnist")
    runs = [
        {
            "units": int(run.data.params["units"]), "seed": int(run.data.params["seed"]),
            "test_accuracy": run.data.metrics["test_accuracy"],
            "epoch_time_s": run.data.metrics["epoch_time_s"],
            "samples_per_s": run.data.metrics["samples_per_s"],
            "train_time_s": run.data.metrics["train_time_s"],
            "kernel": run.data.tags.get("kernel", ""),
            "backend": run.data.tags.get("backend", ""),
            "packed_with": run.data.tags.get("packed_with", ""),
        }
        for run in client.search_runs([experiment.experiment_id], "tags.run_key != ''")
    ]
    return {"wall_s": wall, "peak_rss_mib": rss, "jobs": jobs, "command": " ".join(command[1:]),
            "threads_per_job": max(1, (os.cpu_count() or 1) // jobs), "runs": runs,
            "compiled_programs": compiled}


def run_paired(units: int, seeds: list[int], epochs: int, env: dict, workdir: Path) -> dict:
    """LSTM(`units`) the two ways with the same threads (all the cores), one run of each per seed
    taken in turn (naive, ours, naive, ours), so that both see the machine in the same state:
    the naive way's LSTM(128) epoch swings between ~13.4 s and ~21.8 s from one run to the next
    here (a fresh process each, same command; measured 2026-11-24), more than ours does.
    An epoch is the whole fit's time over its epochs, validation included, on both sides."""
    pairs = []
    for seed in seeds:
        naive, _ = run_naive(units, seed, epochs, env)
        ours = run_ours({"units": [units], "seeds": [seed], "epochs": epochs}, env, 1,
                        workdir / f"seed{seed}")["runs"][0]
        pairs.append({"seed": seed, "naive_epoch_s": naive["epoch_time_s"],
                      "ours_epoch_s": ours["train_time_s"] / epochs})
        print(f"  LSTM({units}) seed {seed} in turn, {os.cpu_count()} threads each: naive "
              f"{pairs[-1]['naive_epoch_s']:.2f} s, ours {pairs[-1]['ours_epoch_s']:.2f} s an "
              "epoch", flush=True)
    return paired_summary(units, os.cpu_count() or 1, pairs)


def paired_summary(units: int, threads: int, pairs: list[dict]) -> dict:
    """The paired runs' ratio: the naive way's epoch time over ours, summed over the pairs."""
    ratio = (sum(pair["naive_epoch_s"] for pair in pairs)
             / sum(pair["ours_epoch_s"] for pair in pairs))
    return {"units": units, "threads": threads, "pairs": pairs, "ratio": ratio}


def compiled_programs(env: dict) -> set[str]:
    """The programs in JAX's compilation cache (harness/backend.py) that a sweep with `env` uses:
    the ones our sweep adds were compiled inside its wall time, not loaded."""
    folder = Path(env.get("JAX_COMPILATION_CACHE_DIR") or JAX_CACHE)
    return {path.name for path in folder.glob("*-cache")} if folder.is_dir() else set()


def per_configuration(side: dict, rate: float) -> dict:
    """Mean over seeds per units: seconds per epoch, samples/s, test accuracy (and its std over
    seeds), % of bound."""
    table = {}
    for units in sorted({run["units"] for run in side["runs"]}):
        runs = [run for run in side["runs"] if run["units"] == units]
        epoch = sum(run["epoch_time_s"] for run in runs) / len(runs)
        accuracies = [run["test_accuracy"] for run in runs]
        table[units] = {
            "seed_std": statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0,
            "epoch_time_s": epoch,
            "samples_per_s": sum(run["samples_per_s"] for run in runs) / len(runs),
            "test_accuracy": sum(run["test_accuracy"] for run in runs) / len(runs),
            "flops_per_epoch": training_flops_per_epoch(units),
            "percent_of_bound": 100 * training_flops_per_epoch(units) / rate / epoch,
        }
    return table


def markdown(result: dict) -> str:
    baseline, ours = result["baseline"], result["ours"]
    bound = study_bound(result)
    rates = result["matmul_gflops"]
    after = result.get("matmul_gflops_after")
    lines = [
        "# make bench: the harness against the naive Keras way" if baseline else
        "# make bench: the harness against its FLOP bound (naive way not run)",
        "",
        f"Measured {result['date']} on {result['machine']} ({result['cores']} cores), "
        f"TensorFlow {result['tensorflow']}, "
        + (f"JAX {result['jax']}, " if result.get("jax") else "")
        + f"Keras {result['keras']}; grid `{result['grid']}`: "
        f"units {result['units']} × seeds {result['seeds']} × {result['epochs']} epochs, row "
        "MNIST (55k train, 5k validation, 10k test), Adam 1e-3, batch 128.",
        "",
        "| | wall time | peak RSS |",
        "|---|---|---|",
    ]
    if baseline:
        lines.append(f"| baseline: one `python naive_keras.py` per job, {result['cores']} threads | "
                     f"{baseline['wall_s']:.0f} s | {baseline['peak_rss_mib']} MiB |")
    lines += [
        f"| ours: `make sweep JOBS={ours['jobs']}` ({ours['threads_per_job']} thread(s) per job), "
        f"{method(ours)} | {ours['wall_s']:.0f} s | {ours['peak_rss_mib']} MiB |",
        *([f"| **ratio baseline / ours** | **{result['ratio']:.2f}×** | |"] if baseline else []),
        f"| FLOP bound of the grid ({bound['flops'] / 1e12:.1f} TFLOP at the {result['cores']}-"
        f"thread matmul rate) | {bound['bound_s']:.0f} s | ours at **{bound['ratio']:.2f}×** it |",
        "",
        "Matmul rate measured in this run (TensorFlow float32, 2048², best of 10): "
        + rate_text(rates)
        + (f" before, {rate_text(after)} after (the bound at the rate after: ours at "
           f"{study_bound(result, after)['ratio']:.2f}× it)" if after else "")
        + ". A % of bound is against the rate before for the threads one job of that side had.",
        "",
    ]
    if ours.get("compiled_programs") is not None:
        compiled = ours["compiled_programs"]
        lines += [
            f"JAX's compilation cache: {compiled} program(s) compiled during our sweep"
            + (" — every program was loaded from the cache, as in a user's second sweep."
               if not compiled else
               " (their compilation is inside our wall time; a second sweep loads them)."),
            "",
        ]
    if baseline:
        lines += [
            "| units | s/epoch baseline | s/epoch ours | samples/s baseline | samples/s ours | "
            "test acc baseline (± std over seeds) | test acc ours (± std) | GFLOP/epoch | "
            "% of bound baseline | % ours |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for units, row in result["per_units"].items():
            b, o = row["baseline"], row["ours"]
            lines.append(
                f"| {units} | {b['epoch_time_s']:.2f} | {o['epoch_time_s']:.2f} | "
                f"{b['samples_per_s']:.0f} | {o['samples_per_s']:.0f} | "
                f"{b['test_accuracy']:.4f} ± {b['seed_std']:.4f} | "
                f"{o['test_accuracy']:.4f} ± {o['seed_std']:.4f} | "
                f"{o['flops_per_epoch'] / 1e9:.1f} | "
                f"{b['percent_of_bound']:.1f}% | {o['percent_of_bound']:.1f}% |"
            )
    else:
        lines += [
            "| units | s/epoch ours | samples/s ours | test acc ours (± std over seeds) | "
            "GFLOP/epoch | % of bound ours |",
            "|---|---|---|---|---|---|",
        ]
        for units, row in result["per_units"].items():
            o = row["ours"]
            lines.append(
                f"| {units} | {o['epoch_time_s']:.2f} | {o['samples_per_s']:.0f} | "
                f"{o['test_accuracy']:.4f} ± {o['seed_std']:.4f} | "
                f"{o['flops_per_epoch'] / 1e9:.1f} | {o['percent_of_bound']:.1f}% |"
            )
    lines += [
        "",
        "s/epoch ours is a run's share: a pack of k seeds counts its epoch time / k per seed.",
        "", "## Targets", "",
    ] + [f"- {line}" for line in result["targets"]]
    lines += ["", f"Command: `{result['command']}`", ""]
    return "\n".join(lines)


def rate_text(rates: dict) -> str:
    return ", ".join(f"{rate:.1f} GFLOP/s on {threads} thread(s)" for threads, rate in
                     sorted(rates.items(), key=lambda item: int(item[0])))


BACKEND_NAMES = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}


def method(side: dict) -> str:
    """How our runs trained, from their tags: backend, loop kernel, packing."""
    backends = sorted({run.get("backend") or "tensorflow" for run in side["runs"]})
    kernels = {run.get("kernel") for run in side["runs"]}
    parts = [f"Keras on {', '.join(BACKEND_NAMES.get(name, name) for name in backends)}"]
    if "block_lstm" in kernels:
        parts.append("the LSTM loop in TensorFlow's fused CPU kernel")
    if "jax" in backends:
        parts.append("each training step compiled by XLA, the compiled programs shared by the "
                     "seeds of a size (on disk, and a worker's compiled model reused by its next "
                     "seed)")
    if any(run.get("packed_with") for run in side["runs"]):
        parts.append(f"seeds packed where the cost model says it pays (≤ {PACK_MAX_UNITS} units)")
    else:
        parts.append("every seed trained alone")
    return ", ".join(parts) + ", each seed on its own batch order"


def study_flops(units: list[int], seeds: list[int], epochs: int) -> float:
    """Analytic training FLOPs of a grid: every (units, seed) for `epochs` epochs."""
    return len(seeds) * epochs * sum(training_flops_per_epoch(size) for size in units)


def study_bound(result: dict, rates: dict | None = None) -> dict:
    """Our wall time against the grid's FLOP bound: its analytic FLOPs at the matmul rate of
    all the machine's cores (the most arithmetic the machine does per second), the rate
    measured before our sweep unless `rates` says otherwise."""
    flops = study_flops(result["units"], result["seeds"], result["epochs"])
    rate = 1e9 * (rates or result["matmul_gflops"])[str(result["cores"])]
    bound_s = flops / rate
    return {"flops": flops, "bound_s": bound_s, "ratio": result["ours"]["wall_s"] / bound_s}


def targets(result: dict) -> list[str]:
    """The bench's targets (6× the naive way on the default grid, ≤ 2× the FLOP bound for the
    full study, 2× per LSTM(128) seed), each met or MISSED with its number and what limits it."""
    lines = []
    per_units = result["per_units"]
    largest = max(per_units)
    if result["baseline"]:
        lines += baseline_targets(result, largest)
    else:
        lines.append("against the naive way (grid ≥ 6×, accuracy within its seed spread, "
                     f"LSTM({largest}) ≥ 2× per seed): not measured, the naive way was not run "
                     "(BENCH_BASELINE=skip).")
    bound = study_bound(result)
    line = (f"study within 2× its FLOP bound: {bound['ratio']:.2f}× (wall "
            f"{result['ours']['wall_s']:.0f} s against {bound['bound_s']:.0f} s: "
            f"{bound['flops'] / 1e12:.1f} TFLOP at "
            f"{result['matmul_gflops'][str(result['cores'])]:.1f} GFLOP/s on "
            f"{result['cores']} threads)")
    if result["grid"] == "full":
        line += f": {'met' if bound['ratio'] <= 2 else 'MISSED'}."
        if bound["ratio"] > 2:
            line += " What limits it: " + bound_limit(result)
    else:
        line += (f"; the target is for the full study (`make bench BENCH_GRID=full`), this is "
                 f"the `{result['grid']}` grid, where fixed costs (start-up, tracing) weigh more.")
    lines.append(line)
    return lines


def bound_limit(result: dict) -> str:
    """Where our wall time goes against the bound: each size's share of the sweep's job-seconds
    (its runs' training time) and the % of the bound its epochs reached."""
    runs = result["ours"]["runs"]
    total = sum(run["train_time_s"] for run in runs) or 1.0
    shares = []
    for units, row in sorted(result["per_units"].items(), reverse=True)[:3]:
        share = sum(run["train_time_s"] for run in runs if run["units"] == units) / total
        shares.append(f"LSTM({units}) {100 * share:.0f}% of the training time at "
                      f"{row['ours']['percent_of_bound']:.0f}% of a job's bound")
    ours = result["ours"]
    return (f"the bound counts every core's whole matmul rate; our {ours['jobs']} jobs at once "
            f"run {ours['threads_per_job']} thread(s) each on an LSTM's small sequential "
            "matmuls: "
            + "; ".join(shares) + ".")


def baseline_targets(result: dict, largest: int) -> list[str]:
    """The targets against the naive way: grid ratio, accuracy, LSTM(largest) per seed."""
    lines = []
    per_units = result["per_units"]
    ratio = result["ratio"]
    line = (f"{result['grid']} grid ≥ 6× the naive way: "
            f"{'met' if ratio >= 6 else 'MISSED'} ({ratio:.2f}×).")
    if ratio < 6:
        ours = result["ours"]
        job_seconds = ours["jobs"] * ours["wall_s"]
        training = sum(run["train_time_s"] for run in ours["runs"])
        line += (f" What limits it: the largest sizes, whose epochs are arithmetic "
                 f"(LSTM({largest}) took {100 * time_share(result, largest):.0f}% of the "
                 f"baseline's time), and our fixed costs: of our {ours['jobs']} workers' "
                 f"{job_seconds:.0f} job-seconds, {training:.0f} were training epochs (with "
                 "validation); the rest is start-up, loading or compiling programs, predicting "
                 "the training and test sets for each run's final metrics, and logging.")
    lines.append(line)
    worst = max(per_units, key=lambda units: accuracy_gap(per_units[units]))
    gap, spread = accuracy_gap(per_units[worst]), per_units[worst]["baseline"]["seed_std"]
    outside = [units for units, row in per_units.items()
               if accuracy_gap(row) > row["baseline"]["seed_std"]]
    line = (
        f"test accuracy per configuration within the baseline's own seed spread (mean "
        f"difference ≤ the baseline's std over seeds): {'MISSED' if outside else 'met'} "
        f"(largest difference {100 * gap:.2f} points, at {worst} units, where the "
        f"baseline's seeds spread by {100 * spread:.2f} points)."
    )
    if outside:
        line += " Outside it: " + "; ".join(
            f"{units} units, {100 * accuracy_gap(per_units[units]):.2f} points against a spread "
            f"of {100 * per_units[units]['baseline']['seed_std']:.2f} (ours "
            f"{100 * per_units[units]['ours']['seed_std']:.2f})" for units in outside) + "."
    line += " " + seed_test_text(result)
    lines.append(line)
    lines.append(throughput_target(result, largest))
    return lines


def throughput_target(result: dict, largest: int) -> str:
    """LSTM(largest) per seed: decided by the paired runs with the same threads when the bench
    took them (result["paired"]), else by the grid's runs (one thread per job against two)."""
    row = result["per_units"][largest]
    grid = row["ours"]["samples_per_s"] / row["baseline"]["samples_per_s"]
    in_grid = (f"its epoch at {row['ours']['percent_of_bound']:.1f}% of the FLOP bound ours, "
               f"{row['baseline']['percent_of_bound']:.1f}% baseline")
    paired = result.get("paired")
    if paired is None:
        speedup, line = grid, f"{grid:.2f}×; {in_grid})."
        threads = str(result["ours"].get("threads_per_job", 1))
    else:
        pairs = paired["pairs"]
        speedup, threads = paired["ratio"], str(paired["threads"])

        def listed(key: str, form: str = "{:.2f}") -> str:
            return ", ".join(form.format(pair[key]) for pair in pairs)

        line = (f"{speedup:.2f}× with the same {threads} threads, runs taken in turn: the naive "
                f"way {listed('naive_epoch_s')} s an epoch, ours {listed('ours_epoch_s')} s "
                f"(seeds {listed('seed', '{}')}, validation included). In the grid, one thread "
                f"per job: {grid:.2f}×, {in_grid}).")
    text = (f"LSTM({largest}) throughput per seed ≥ 2× the naive way's: "
            f"{'met' if speedup >= 2 else 'MISSED'} ({line}")
    if speedup < 2:
        text += (" What limits it: "
                 + ("each of its jobs has one thread's matmul rate, the baseline two, and "
                    if paired is None else "")
                 + "an LSTM step is small matmuls (batch × (inputs + units) by (inputs + units) "
                 "× 4·units, 28 in sequence, again for the gradient) that run well below a "
                 "2048² matmul's rate"
                 + (", and a second thread speeds one job up by little (XLA runs independent "
                    "ops of a step at once, each matmul on one thread)." if paired else ".")
                 + floor_text(result, largest, threads))
    return text


def seed_tests(result: dict) -> dict[int, float]:
    """Per size, the p-value of Welch's t-test of our seeds' test accuracies against the
    baseline's: could the two sides' means differ by chance? (nan: neither side's seeds vary.)"""
    import warnings

    from scipy.stats import ttest_ind

    def accuracies(side: str, units: int) -> list[float]:
        return [run["test_accuracy"] for run in result[side]["runs"] if run["units"] == units]

    with warnings.catch_warnings():  # seeds that agree to the digit: scipy warns, p stays right
        warnings.simplefilter("ignore", RuntimeWarning)
        return {units: float(ttest_ind(accuracies("ours", units), accuracies("baseline", units),
                                       equal_var=False).pvalue)
                for units in sorted(result["per_units"])}


def seed_test_text(result: dict) -> str:
    """The sizes whose two sides differ beyond their seeds' spread (Welch, p < 0.05)."""
    tests = {units: p for units, p in seed_tests(result).items() if p == p}  # p == p: not nan
    if not tests:
        return "Welch's t-test over seeds: not computable (no spread on either side)."
    differ = [units for units, p in tests.items() if p < 0.05]
    smallest = min(tests, key=tests.get)
    return ("Welch's t-test of the two sides' seeds, per size: "
            + (f"the means differ at p < 0.05 at {', '.join(map(str, differ))} units"
               if differ else "no size's means differ at p < 0.05")
            + f" (smallest p {tests[smallest]:.2f}, at {smallest} units; {len(tests)} sizes "
            "tested, so about one in 20 would fall below 0.05 by chance).")


def floor_text(result: dict, units: int, threads: str) -> str:
    """How fast one of our jobs could train `units` at most: its epoch's FLOPs at the whole
    matmul rate of the threads it had, against the epoch 2× the naive way needs (from the
    paired runs when there are)."""
    rate = result["matmul_gflops"].get(threads)
    if rate is None:
        return ""
    best = training_flops_per_epoch(units) / (rate * 1e9)
    paired = result.get("paired")
    naive = ([pair["naive_epoch_s"] for pair in paired["pairs"]] if paired
             else [result["per_units"][units]["baseline"]["epoch_time_s"]])
    needed = sum(naive) / len(naive) / 2
    return (f" Even at the whole {rate:.1f} GFLOP/s of {threads} thread(s) its epoch would take "
            f"{best:.1f} s; 2× the naive way needs ≤ {needed:.1f} s.")


def accuracy_gap(row: dict) -> float:
    return abs(row["ours"]["test_accuracy"] - row["baseline"]["test_accuracy"])


def time_share(result: dict, units: int) -> float:
    runs = result["baseline"]["runs"]
    return (sum(r["wall_s"] for r in runs if r["units"] == units)
            / (sum(r["wall_s"] for r in runs) or 1.0))


def version_or_none(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def default_out(grid: str, with_baseline: bool) -> str:
    """results/bench for the default grid, results/bench/GRID for the others; a run without
    the naive way never overwrites a comparison: results/bench/GRID-ours."""
    if not with_baseline:
        return f"results/bench/{grid}-ours"
    return "results/bench" if grid == "default" else f"results/bench/{grid}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__)
    parser.add_argument("--grid", default="default")
    parser.add_argument("--jobs", default=str(os.cpu_count() or 1))
    parser.add_argument("--out", default=None,
                        help="default: results/bench, results/bench/GRID for other grids, "
                        "results/bench/GRID-ours without the naive way")
    parser.add_argument("--baseline", default="run",
                        help="run: the naive way too (default); skip: ours alone, against the "
                        "FLOP bound")
    args = parser.parse_args(argv)
    if args.grid not in GRIDS:
        fail(f"BENCH_GRID: {args.grid!r} is unknown; allowed: {', '.join(GRIDS)}")
    if not re.fullmatch(r"[1-9][0-9]*", args.jobs):
        fail(f"JOBS: {args.jobs!r} is not allowed; use a whole number ≥ 1")
    if args.baseline not in ("run", "skip"):
        fail(f"BENCH_BASELINE: {args.baseline!r} is unknown; allowed: run, skip")
    grid = GRIDS[args.grid]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    jobs = int(args.jobs)
    threads = {os.cpu_count() or 1, max(1, (os.cpu_count() or 1) // jobs)}

    def measure_rates() -> dict:
        return {str(count): matmul_rate_with(count) / 1e9 for count in sorted(threads)}

    rates = measure_rates()
    print(f"matmul rate (GFLOP/s by threads) {rates}; ours first"
          + (f", then the baseline, then LSTM({max(grid['units'])}) both ways in turn"
             if args.baseline == "run" else ", the naive way skipped"),
          flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        ours = run_ours(grid, env, jobs, Path(workdir))
    print(f"  ours: {ours['wall_s']:.1f} s", flush=True)
    rates_after = measure_rates()
    print(f"matmul rate after ours {rates_after}", flush=True)
    baseline = run_baseline(grid, env) if args.baseline == "run" else None
    paired = None
    if baseline:
        with tempfile.TemporaryDirectory() as workdir:
            paired = run_paired(max(grid["units"]), grid["seeds"], grid["epochs"], env,
                                Path(workdir))
    ours_table = per_configuration(ours, 1e9 * rates[str(ours["threads_per_job"])])
    if baseline:
        baseline_table = per_configuration(baseline, 1e9 * rates[str(os.cpu_count() or 1)])
        per_units = {units: {"baseline": baseline_table[units], "ours": ours_table[units]}
                     for units in ours_table}
    else:
        per_units = {units: {"ours": row} for units, row in ours_table.items()}
    result = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": platform.node() or platform.machine(),
        "cores": os.cpu_count(),
        "tensorflow": importlib.metadata.version("tensorflow"),
        "keras": importlib.metadata.version("keras"),
        "jax": version_or_none("jax"),
        "grid": args.grid, **{k: grid[k] for k in ("units", "seeds", "epochs")},
        "matmul_gflops": rates, "matmul_gflops_after": rates_after,
        "baseline": baseline, "ours": ours, "paired": paired,
        "ratio": baseline["wall_s"] / ours["wall_s"] if baseline else None,
        "per_units": per_units,
        "command": f"make bench BENCH_GRID={args.grid} JOBS={args.jobs}"
                   + (" BENCH_BASELINE=skip" if not baseline else ""),
    }
    result["targets"] = targets(result)
    out = Path(args.out or default_out(args.grid, bool(baseline)))
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "bench.md").write_text(markdown(result))
    print(markdown(result))
