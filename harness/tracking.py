"""Everything the harness writes to or reads from MLflow: the store, the study's experiment,
the sweep's parent run and each job's child run."""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import socket
import sqlite3
import tempfile
import threading
import time
import traceback
from pathlib import Path

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

from harness import slurm

DEFAULT_URI = "sqlite:///results/mlflow.db"
UI_PORT = "5000"  # `make ui`'s default port (Makefile: UI_PORT)
# MLflow 3 opens an experiment on its GenAI overview unless the URL asks for the training view.
TRAINING_VIEW = "workflowType=machine_learning"
VIEW_KEY = "harness"  # the runs page's preset view: experiment tag mlflow.sharedViewState.harness
PARENT_TAG = "mlflow.parentRunId"
PARENT_TAG_COLUMN = f"tags.{PARENT_TAG}"  # in mlflow.search_runs' frame
NOTE_TAG = "mlflow.note.content"  # what the MLflow UI shows as a run's or experiment's description


class TrackingError(RuntimeError):
    """The tracking store cannot be used; the message is one line."""


def resolve_uri(uri: str | None) -> str:
    """Make a relative SQLite path absolute (relative to the working directory), so jobs that
    run elsewhere write to the same database."""
    uri = uri or DEFAULT_URI
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri[len("sqlite:///") :]).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return uri


def artifact_root(uri: str) -> str | None:
    """Artifacts of a SQLite store live beside the database; a server chooses its own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///") :]).parent / "artifacts").as_uri()
    return None


def connect(uri: str | None) -> str:
    uri = resolve_uri(uri)
    mlflow.set_tracking_uri(uri)
    ride_out_busy_servers()
    return uri


# What a busy tracking server answers and a later try gets through: the server's database pool
# exhausted (answered 400, which MLflow's client does not retry), SQLite's write lock and
# PostgreSQL's connection limit (503s, after MLflow's own retries of them), dropped connections.
REFUSED = (  # answered before the server did anything: safe to send again
    "QueuePool limit", "database is locked", "too many clients", "remaining connection slots",
    "too many 503 error responses",
)
DROPPED = ("Connection reset by peer", "Connection aborted", "RemoteDisconnected")
# Calls that would do their work twice if a dropped one had gone through before the drop;
# the others are idempotent (a tag or param set again, the same metric points: MLflow keeps one).
CREATES = ("CreateRun", "CreateExperiment", "CreateLoggedModel", "CreateDataset")


def patience_s() -> float:
    """The longest a job waits out a busy store, per call, before it fails (600 s; the
    environment's HARNESS_TRACKING_PATIENCE_S)."""
    text = os.environ.get("HARNESS_TRACKING_PATIENCE_S", "600")
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not 0 <= seconds < math.inf:
        raise TrackingError(f"HARNESS_TRACKING_PATIENCE_S: {text!r} is not allowed; use seconds ≥ 0")
    return seconds


RETRY_LOG = logging.getLogger("harness.tracking")


def transient(error: BaseException, creates: bool = False) -> bool:
    """A busy server's answer that a later try gets through (TrackingError: ours, final)."""
    if isinstance(error, TrackingError):
        return False
    return any(text in str(error) for text in REFUSED + (() if creates else DROPPED))


_patch_lock = threading.Lock()


def ride_out_busy_servers() -> None:
    """Every call MLflow's client makes to a tracking server (RestStore._call_endpoint, which
    all of them go through) is tried again on a transient error, with jittered exponential
    backoff (1 s doubling to 30 s) for at most patience_s(); then the job fails with one line
    naming the store. Each call alone, so a retry repeats no other call; a call that creates
    (a run, an experiment) is tried again only when the server refused it, not when the
    connection dropped after it may have gone through. Patches the class once per process."""
    import tenacity
    from mlflow.store.tracking.rest_store import RestStore

    with _patch_lock:
        if getattr(RestStore._call_endpoint, "harness_retries", False):
            return
        plain = RestStore._call_endpoint
        RestStore._call_endpoint = _retrying(plain, tenacity, patience_s())


def _retrying(plain, tenacity, patience: float):
    """RestStore._call_endpoint (`plain`) wrapped as ride_out_busy_servers says."""
    retrying = tenacity.Retrying(
        wait=tenacity.wait_random_exponential(multiplier=1, max=30),
        stop=tenacity.stop_after_delay(patience),
        reraise=True,
        before_sleep=lambda state: RETRY_LOG.warning(
            "tracking: the server is busy (%s); trying again in %.1f s",
            str(state.outcome.exception()).splitlines()[0][:120], state.next_action.sleep),
    )

    def call_endpoint(self, api, *args, **kwargs):
        creates = getattr(api, "__name__", "") in CREATES
        try:
            # a copy per call: its state is the call's (threads share the store)
            return retrying.copy(retry=tenacity.retry_if_exception(
                lambda error: transient(error, creates)))(plain, self, api, *args, **kwargs)
        except Exception as error:
            if not transient(error, creates):
                raise
            host = self.get_host_creds().host
            reason = str(error).splitlines()[0][:300]
            raise TrackingError(f"MLFLOW_TRACKING_URI: the tracking server {host} stayed busy for "
                                f"{patience:.0f} s of retries ({reason})") from None

    call_endpoint.harness_retries = True
    return call_endpoint


def check_reachable(uri: str) -> None:
    """A tracking server must answer now, not after MLflow's minutes of retries."""
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=5).raise_for_status()
    except Exception as error:
        raise TrackingError(
            f"MLFLOW_TRACKING_URI: the tracking server {uri} does not answer "
            f"({type(error).__name__}); start it with `make server` or fix the URI"
        ) from None


def use_wal(uri: str) -> None:
    """Write-ahead logging lets parallel jobs write while others read; MLflow itself sets a
    20 s busy timeout on every session. The mode is stored in the database file."""
    if uri.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(uri[len("sqlite:///") :], timeout=30)) as db:
            db.execute("PRAGMA journal_mode=WAL")


def process_tags() -> dict:
    """Where a run's process lives: host and pid, and its Slurm job when it runs in one."""
    return {"host": socket.gethostname(), "pid": str(os.getpid()), **slurm.job_tags()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def close_stale_runs(uri: str, study: str, parent_id: str | None = None) -> int:
    """Mark KILLED the RUNNING runs of this study (of one parent's, if given) whose process is
    gone: a run of a Slurm job the scheduler here no longer runs (scancel, time limit, a dead
    node), or a run whose process on this host has exited (a sweep killed with -9, a crashed
    worker). Runs nothing here can judge are left alone. Returns how many."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return 0
    query = "attributes.status = 'RUNNING'"
    if parent_id:
        query += f" and tags.`{PARENT_TAG}` = '{parent_id}'"
    runs = client.search_runs([experiment.experiment_id], query, max_results=50000)
    scheduler = (slurm.Scheduler.here()
                 if any("slurm_job_id" in run.data.tags for run in runs) else None)
    closed = 0
    for run in runs:
        tags = run.data.tags
        reason = None
        if "slurm_job_id" in tags:
            if scheduler and scheduler.knows(tags):
                state = scheduler.ended(tags["slurm_job_id"])
                if state:
                    reason = f"the scheduler ended Slurm job {tags['slurm_job_id']}: {state}"
        elif (tags.get("host") == socket.gethostname() and int(tags.get("pid", "0")) > 0
              and not _alive(int(tags["pid"]))):
            reason = "process gone: the sweep was killed"
        if reason:
            client.set_tag(run.info.run_id, "error", reason)
            client.set_terminated(run.info.run_id, "KILLED")
            closed += 1
    return closed


def finished_run(uri: str, study: str, key: str) -> str | None:
    """The id of a FINISHED child run of the study with this run_key, if any."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs(
        [experiment.experiment_id],
        f"tags.run_key = '{key}' and attributes.status = 'FINISHED'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def finished_keys(uri: str, study: str) -> set[str]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs(
        [experiment.experiment_id], "attributes.status = 'FINISHED'", max_results=50000
    )
    return {run.data.tags["run_key"] for run in runs if "run_key" in run.data.tags}


def finished_metric(uri: str, study: str, metric: str) -> dict[str, float]:
    """run_key → `metric` of the study's FINISHED runs that logged it (the newest run of a key)."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    runs = client.search_runs([experiment.experiment_id], "attributes.status = 'FINISHED'",
                              max_results=50000, order_by=["attributes.start_time ASC"])
    return {run.data.tags["run_key"]: run.data.metrics[metric] for run in runs
            if "run_key" in run.data.tags and metric in run.data.metrics}


def experiment_id(study: str, uri: str) -> str:
    """The study's experiment, created on first use with its artifacts beside a SQLite store
    (results/artifacts/<study>/<run id>/)."""
    client = MlflowClient(uri)
    try:
        experiment = client.get_experiment_by_name(study)
        if experiment is None:
            root = artifact_root(uri)
            return client.create_experiment(
                study, artifact_location=f"{root}/{study}" if root else None
            )
    except TrackingError:  # a busy server: its own line
        raise
    except Exception as error:
        raise TrackingError(
            f"tracking.uri: cannot use the MLflow store {uri} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None
    return experiment.experiment_id


def describe_experiment(uri: str, study: str, text: str) -> None:
    """The experiment's description in the UI (the study's question and budget)."""
    MlflowClient(uri).set_experiment_tag(experiment_id(study, uri), NOTE_TAG, text)


def ui_address(uri: str) -> str:
    """Where a browser finds the MLflow UI of this store: a tracking server is its own UI; a
    SQLite store is shown by `make ui` (on UI_PORT)."""
    if uri.startswith(("http://", "https://")):
        return uri.rstrip("/")
    return f"http://127.0.0.1:{os.environ.get('UI_PORT') or UI_PORT}"


def run_link(uri: str, study: str, run_id: str) -> str:
    """The UI page of one run (the sweep's parent: the report with its answer), training view."""
    return (f"{ui_address(uri)}/#/experiments/{experiment_id(study, uri)}/runs/{run_id}"
            f"?{TRAINING_VIEW}")


def runs_link(uri: str, study: str) -> str:
    """The study's runs page in the training view, with the preset view `preset_runs_view`
    stores: every child run in a table, smallest first (its charts one click away)."""
    return (f"{ui_address(uri)}/#/experiments/{experiment_id(study, uri)}/runs?{TRAINING_VIEW}"
            f"&viewStateShareKey={VIEW_KEY}")


def browse_text(uri: str, study: str, parent_id: str) -> str:
    """Two lines: the parent run's page (its answer) and the runs page, for the store in use."""
    where = "" if uri.startswith(("http://", "https://")) else " (after `make ui`)"
    return (f"browse{where}: {run_link(uri, study, parent_id)}\n"
            f"  every run: {runs_link(uri, study)}")


def swept_params(runs) -> list[str]:
    """The params that differ between the child runs of a `study_runs` frame (units first, seed
    last)."""
    if runs is None or PARENT_TAG_COLUMN not in runs:
        return ["units", "seed"]
    children = runs[runs[PARENT_TAG_COLUMN].notna()]
    names = [column[len("params."):] for column in children if column.startswith("params.")
             and children[column].nunique() > 1]
    return sorted(names, key=lambda name: (name != "units", name == "seed", name))


def preset_runs_view(uri: str, study: str, runs=None) -> None:
    """A view of the runs page the UI loads from an experiment tag (its "Share" button stores
    them the same way): the child runs only, not collapsed under their parent, smallest first;
    all of them in the charts (MLflow shows the first 10 by default; a chart takes at most
    100); scatter charts of test accuracy and the train–test gap against parameter count; the
    swept params and the accuracies as columns. `runs`: the study's `study_runs` frame, if read
    already."""
    def chart(x: str, y: str) -> dict:
        return {"uuid": f"{y}-{x}", "type": "SCATTER", "xaxis": {"key": x, "type": "METRIC"},
                "yaxis": {"key": y, "type": "METRIC"}, "runsCountToCompare": 100,
                "metricSectionId": "answer", "deleted": False, "isGenerated": False}

    view = {
        "searchFilter": "tags.run_key LIKE '%'",  # children carry a run_key, the parent none
        "orderByKey": "metrics.`param_count`", "orderByAsc": True,
        "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": [chart("param_count", "test_accuracy"),
                             chart("param_count", "generalization_gap")],
        "compareRunSections": [{"uuid": "answer", "name": "The study's question", "display": True,
                                "isReordered": False, "deleted": False, "isGenerated": False}],
        "selectedColumns": [f"params.`{name}`" for name in swept_params(
            study_runs(uri, study) if runs is None else runs)]
        + [f"metrics.`{name}`" for name in ("param_count", "test_accuracy", "train_accuracy",
                                              "generalization_gap")],
    }
    MlflowClient(uri).set_experiment_tag(experiment_id(study, uri),
                                         f"mlflow.sharedViewState.{VIEW_KEY}", json.dumps(view))


def describe_run(uri: str, run_id: str, text: str) -> None:
    """A run's description in the UI (markdown). MLflow keeps a tag's first 8,000 characters
    (and warns at the console): a longer text ends at its last paragraph that fits, with a
    pointer to the whole report among the run's artifacts."""
    from mlflow.utils.validation import MAX_TAG_VAL_LENGTH

    if len(text) > MAX_TAG_VAL_LENGTH:
        pointer = "\n\n… the whole report: this run's artifact `report/report.md`."
        text = text[: MAX_TAG_VAL_LENGTH - len(pointer)].rsplit("\n\n", 1)[0] + pointer
    MlflowClient(uri).set_tag(run_id, NOTE_TAG, text)


# The last training set described (its arrays, name and dataset): a worker's next job on the same
# data reuses it instead of hashing the 55k images again (~30 ms a job here).
_last_dataset: dict = {}


def training_dataset(splits, params: dict):
    """The training set as an MLflow dataset: a name saying what it is, a digest of its
    contents, its size and shapes (the UI's Dataset column)."""
    from mlflow.data import from_numpy

    name = f"{params['dataset']}-{params['timesteps']}x{params['input_dim']}-n{params['train_size']}"
    if params["label_noise"]:
        name += f"-noise{params['label_noise']}"
    last = _last_dataset
    if not (last and last["x"] is splits.x_train and last["y"] is splits.y_train
            and last["name"] == name):
        last.update(x=splits.x_train, y=splits.y_train, name=name,
                    dataset=from_numpy(splits.x_train, targets=splits.y_train, name=name))
    return last["dataset"]


def log_dataset(uri: str, run_id: str, dataset) -> None:
    """Record `dataset` as the run's training input (works for runs that are not active too,
    such as the members of a pack)."""
    from mlflow.entities import DatasetInput, InputTag

    from mlflow.exceptions import MlflowException

    entity = dataset._to_mlflow_entity()  # the entity mlflow.log_input builds
    inputs = [DatasetInput(entity, [InputTag("mlflow.data.context", "train")])]
    try:
        MlflowClient(uri).log_inputs(run_id, inputs)
    except MlflowException as error:
        # Parallel jobs with the same training set race to insert its row (UNIQUE experiment,
        # name, digest); the loser finds the row there on a second try.
        if "UNIQUE constraint failed: datasets" not in str(error):
            raise
        MlflowClient(uri).log_inputs(run_id, inputs)


def start_parent(study: str, uri: str, *, jobs: int, command: str) -> str:
    """Create the sweep's parent run (left RUNNING until `finish_parent`); returns its id."""
    client = MlflowClient(uri)
    run = client.create_run(
        experiment_id(study, uri),
        run_name=f"{study} sweep",
        tags={"study": study, "sweep": "parent", "command": command, **process_tags()},
    )
    client.log_param(run.info.run_id, "jobs", jobs)
    return run.info.run_id


def child_runs(uri: str, study: str, parent_id: str) -> list:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    return client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{PARENT_TAG}` = '{parent_id}'",
        max_results=50000,
    )


def finish_parent(uri: str, parent_id: str, status: str, counts: dict[str, int]) -> None:
    """End the parent run; the job counts are its params (its metrics are the answer's; as
    tags they took a line of the run page's first screen, above the answer)."""
    from mlflow.entities import Param

    client = MlflowClient(uri)
    client.log_batch(parent_id, params=[Param(f"jobs_{name}", str(count))
                                        for name, count in counts.items()])
    client.set_terminated(parent_id, status)


@contextlib.contextmanager
def child_run(uri: str, study: str, parent_id: str, *, run_name: str, tags: dict):
    """A job's nested run. An exception inside marks it FAILED with the reason as the `error`
    tag and the traceback as `traceback.txt`, then propagates; Ctrl-C marks it KILLED."""
    mlflow.set_tracking_uri(uri)
    run = mlflow.start_run(
        experiment_id=experiment_id(study, uri),
        run_name=run_name,
        parent_run_id=parent_id,
        tags={"study": study, **process_tags(), **tags},
    )
    try:
        yield run
    except KeyboardInterrupt:
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException as error:
        mlflow.set_tag("error", f"{type(error).__name__}: {error}".splitlines()[0][:5000])
        mlflow.log_text(traceback.format_exc(), "traceback.txt")
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))


def log_start(params: dict, config_yaml: str) -> None:
    """Record a job's params and resolved config in the active run, before training."""
    mlflow.log_params(params)
    mlflow.log_text(config_yaml, "config.yaml")


def log_result(metrics: dict, tags: dict) -> None:
    """Record a job's final metrics in the active run."""
    mlflow.log_metrics(metrics)
    mlflow.set_tags(tags)


@contextlib.contextmanager
def member_runs(uri: str, study: str, parent_id: str, members: list[dict]):
    """Child runs for the members of one packed job (one per seed), created RUNNING with their
    params and config before training; FINISHED, FAILED (reason and traceback) or KILLED
    together. Each member dict has name, key, params, config_yaml, packed_with."""
    from mlflow.entities import Param

    client = MlflowClient(uri)
    experiment = experiment_id(study, uri)
    ids = []
    for member in members:
        run = client.create_run(
            experiment,
            run_name=member["name"],
            tags={
                PARENT_TAG: parent_id, "study": study, "run_key": member["key"],
                "packed_with": member["packed_with"], **process_tags(),
            },
        )
        params = [Param(key, str(value)) for key, value in member["params"].items()]
        client.log_batch(run.info.run_id, params=params)
        client.log_text(run.info.run_id, member["config_yaml"], "config.yaml")
        ids.append(run.info.run_id)
    try:
        yield ids
    except KeyboardInterrupt:
        for run_id in ids:
            client.set_terminated(run_id, "KILLED")
        raise
    except BaseException as error:
        for run_id in ids:
            client.set_tag(run_id, "error", f"{type(error).__name__}: {error}".splitlines()[0])
            client.log_text(run_id, traceback.format_exc(), "traceback.txt")
            client.set_terminated(run_id, "FAILED")
        raise
    else:
        for run_id in ids:
            client.set_terminated(run_id, "FINISHED")


def log_member(uri: str, run_id: str, result: dict) -> None:
    """A packed member's per-epoch curves (step = epoch) and final metrics."""
    from mlflow.entities import Metric

    now = int(time.time() * 1000)
    metrics = [
        Metric(name, float(value), now, step)
        for name, values in result["history"].items()
        for step, value in enumerate(values)
    ]
    metrics += [Metric(name, float(value), now, 0) for name, value in result["metrics"].items()]
    client = MlflowClient(uri)
    client.log_batch(run_id, metrics=metrics)
    client.set_tag(run_id, "device", result["device"])
    client.set_tag(run_id, "backend", result["backend"])
    client.set_tag(run_id, "kernel", result["kernel"])
    client.set_tag(run_id, "cudnn", str(result["kernel"] == "cudnn").lower())
    client.log_metric(run_id, "pack_train_time_s", result["packed"]["train_time_s"])


def epoch_logger():
    """Keras callback logging loss, accuracy, val_loss, val_accuracy at step = epoch (0-based):
    MLflow's, logging synchronously. Its asynchronous queue costs each run 0.6 s on average at
    its end (the queue's thread looks for a stop once a second), more than the logging itself;
    and an epoch's metrics are in the store when the epoch ends. Made here, not at import:
    mlflow.keras imports Keras, which must wait for the sweep's backend."""
    from mlflow.keras import MlflowCallback

    class EpochLogger(MlflowCallback):
        def on_epoch_end(self, epoch, logs=None):
            if logs:
                mlflow.log_metrics(logs, step=epoch, model_id=self.model_id)

        def on_test_end(self, logs=None):
            if logs:
                mlflow.log_metrics({f"validation_{name}": value for name, value in logs.items()},
                                   model_id=self.model_id)

    return EpochLogger(log_every_epoch=True)


def study_runs(uri: str, study: str):
    """All runs of the study as MLflow's pandas DataFrame, or None if there is no experiment."""
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(study)
    if experiment is None:
        return None
    return mlflow.search_runs([experiment.experiment_id], max_results=100000)


def metric_histories(uri: str, run_ids: list[str],
                     names=("loss", "accuracy", "val_loss", "val_accuracy")):
    """Per-epoch metrics of the given runs as a pandas frame: run_id, metric, step, value."""
    import pandas as pd

    client = MlflowClient(uri)
    rows = [
        {"run_id": run_id, "metric": name, "step": point.step, "value": point.value}
        for run_id in run_ids
        for name in names
        for point in client.get_metric_history(run_id, name)
    ]
    return pd.DataFrame(rows, columns=["run_id", "metric", "step", "value"])


def latest_parent(runs) -> str | None:
    """The newest sweep parent run in a `study_runs` frame."""
    if runs is None or runs.empty or "tags.sweep" not in runs:
        return None
    parents = runs[runs["tags.sweep"] == "parent"].sort_values("start_time")
    return parents["run_id"].iloc[-1] if len(parents) else None


def log_report(uri: str, parent_id: str, paths: list, metrics: dict[str, float],
               summary) -> None:
    """Attach the report files to the parent run, under `report/`; the answer's numbers become
    its metrics (a report written again replaces them: step 0, newest wins) and the summary an
    MLflow table (`report/summary.json`, sortable in the UI's artifact view)."""
    from mlflow.entities import Metric

    client = MlflowClient(uri)
    for path in paths:
        client.log_artifact(parent_id, str(path), "report")
    # Finite values only (one seed has no interval), to 6 significant digits. MLflow cannot
    # delete a metric: one an earlier report logged that this one has not (another target,
    # another analysis, an older version's job counts) is set to NaN, so that the parent's
    # finite metrics are this answer's only.
    numbers = {name: float(f"{value:.6g}") for name, value in metrics.items()
               if math.isfinite(value)}
    stale = set(client.get_run(parent_id).data.metrics) - set(numbers)
    now = int(time.time() * 1000)
    client.log_batch(parent_id, metrics=[
        Metric(name, numbers.get(name, math.nan), now, 0) for name in [*numbers, *stale]])
    # The table as MlflowClient.log_table stores one (pandas' split JSON, listed in the run's
    # mlflow.loggedArtifacts tag), but replaced: log_table appends to a table already there,
    # and a report written again would double its rows.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "summary.json"
        summary.to_json(path, orient="split", index=False)
        client.log_artifact(parent_id, str(path), "report")
    client.set_tag(parent_id, "mlflow.loggedArtifacts",
                   json.dumps([{"path": "report/summary.json", "type": "table"}]))
