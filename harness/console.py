"""What the console shows: one-line errors, TensorFlow's C++ start-up lines kept off it, each
job's own output (Keras's epoch lines) sent to the job's log file, and the sweep's live display.
Imports neither TensorFlow nor MLflow until the live display runs."""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile


# Lines TensorFlow's C++ side writes straight to file descriptor 2 at start-up on a machine
# without a GPU; since TF 2.19 TF_CPP_MIN_LOG_LEVEL no longer silences them (tensorflow#100442).
STARTUP_NOISE = re.compile(
    r"cudart_stub\.cc|failed call to cuInit|absl::InitializeLog\(\)|oneDNN custom operations"
    r"|cpu_feature_guard\.cc|This TensorFlow binary is optimized|rebuild TensorFlow with"
    r"|Unable to register cu(FFT|DNN|BLAS) factory|computation_placer\.cc"
)


@contextlib.contextmanager
def quiet_startup():
    """Run the block with file descriptor 2 captured; afterwards pass on every line except
    STARTUP_NOISE. Errors and warnings that matter still show (after the block)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines(keepends=True):
                if not STARTUP_NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


@contextlib.contextmanager
def output_to(path):
    """Send the block's Python-level stdout (Keras's epoch lines) to the end of `path`."""
    if path is None:
        yield
        return
    with open(path, "a") as log, contextlib.redirect_stdout(log):
        yield


def fail(message: str, code: int = 2):
    """A user's mistake or an unusable setting: one line on stderr, then exit ≠ 0."""
    print(f"error: {message}", file=sys.stderr, flush=True)
    sys.exit(code)


def say(message: str) -> None:
    """A line for the console even while stdout goes to a job's log file (none while a live
    display shows the sweep: it prints each finished run itself)."""
    if not os.environ.get(LIVE_ENV):
        print(message, file=sys.__stdout__, flush=True)


LIVE_ENV = "HARNESS_LIVE"  # set while a live display owns the terminal: jobs print nothing


def live_wanted() -> bool:
    return sys.stdout.isatty() and os.environ.get("TERM") != "dumb"


class LiveProgress:
    """The sweep's live display (rich): runs done of all, epochs done of the running runs,
    elapsed time and ETA, and a line per finished run. A thread reads it all from the tracking
    store, where the workers log every epoch, so it works whatever process trains."""

    def __init__(self, uri: str, study: str, parent: str, *, total: int, skipped: int,
                 costs: dict[str, float], start: float):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
        from rich.progress import TimeElapsedColumn

        self.uri, self.study, self.parent = uri, study, parent
        self.total, self.skipped, self.costs, self.start = total, skipped, costs, start
        self.reported: set[str] = set()
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("{task.fields[eta]}"), refresh_per_second=2,
            # the terminal itself: a job in this process sends sys.stdout to its log file
            console=Console(file=sys.__stdout__), redirect_stdout=False,
        )
        self.runs = self.progress.add_task("runs", total=total, completed=skipped, eta="")
        self.epochs = self.progress.add_task("epochs of running runs", total=0, eta="")
        self._stop = None

    def rescale(self, *, total: int, skipped: int, costs: dict[str, float]) -> None:
        """A race decided: the runs the sweep will make, how many of them finished before, and
        their modelled costs."""
        self.total, self.skipped, self.costs = total, skipped, costs
        self.progress.update(self.runs, total=total)

    def __enter__(self):
        import threading

        os.environ[LIVE_ENV] = "1"
        self.progress.start()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=30)
        self.update()
        self.progress.stop()
        os.environ.pop(LIVE_ENV, None)

    def _poll(self):
        while not self._stop.wait(2.0):
            try:
                self.update()
            except Exception:  # a busy store: try again at the next tick
                pass

    def update(self) -> None:
        import time

        from mlflow.tracking import MlflowClient

        from harness import tracking  # MLflow: after this module set its logging defaults

        client = MlflowClient(self.uri)
        runs = tracking.child_runs(self.uri, self.study, self.parent)
        done_cost, epochs_done, epochs_total = 0.0, 0, 0
        ended = 0
        for run in sorted(runs, key=lambda r: r.info.end_time or 0):
            status, run_id = run.info.status, run.info.run_id
            if status == "RUNNING":
                epochs_total += int(run.data.params.get("epochs", 0))
                epochs_done += len(client.get_metric_history(run_id, "loss"))
                continue
            ended += 1
            done_cost += self.costs.get(run.data.tags.get("run_key"), 0.0)
            if run_id not in self.reported:
                self.reported.add(run_id)
                accuracy = run.data.metrics.get("test_accuracy")
                outcome = (f"test_accuracy {accuracy:.4f}" if accuracy is not None and
                           status == "FINISHED" else f"{status} {run.data.tags.get('error', '')}")
                self.progress.console.print(f"{run.info.run_name}: {outcome}", markup=False,
                                            highlight=False)
        left = sum(self.costs.values()) - done_cost
        elapsed = time.time() - self.start
        eta = f"ETA {elapsed * left / done_cost / 60:.1f} min" if done_cost else "ETA …"
        self.progress.update(self.runs, completed=self.skipped + ended, eta=eta)
        self.progress.update(self.epochs, completed=epochs_done, total=max(epochs_total, 1))
