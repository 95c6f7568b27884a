"""Everything the harness writes to or reads from MLflow: the store, the study's experiment,
the sweep's parent run and each job's child run."""

from __future__ import annotations

import contextlib
import traceback
from pathlib import Path

import mlflow
from mlflow.entities import RunStatus
from mlflow.tracking import MlflowClient

DEFAULT_URI = "sqlite:///results/mlflow.db"
PARENT_TAG = "mlflow.parentRunId"


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
    return uri


def experiment_id(study: str, uri: str) -> str:
    """The study's experiment, created on first use with artifacts beside a SQLite store."""
    client = MlflowClient(uri)
    try:
        experiment = client.get_experiment_by_name(study)
        if experiment is None:
            return client.create_experiment(study, artifact_location=artifact_root(uri))
    except Exception as error:
        raise TrackingError(
            f"tracking.uri: cannot use the MLflow store {uri} ({type(error).__name__}: "
            f"{str(error).splitlines()[0] if str(error) else ''})"
        ) from None
    return experiment.experiment_id


def start_parent(study: str, uri: str, *, jobs: int, command: str) -> str:
    """Create the sweep's parent run (left RUNNING until `finish_parent`); returns its id."""
    client = MlflowClient(uri)
    run = client.create_run(
        experiment_id(study, uri),
        run_name=f"{study} sweep",
        tags={"study": study, "sweep": "parent", "command": command},
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
    client = MlflowClient(uri)
    for name, count in counts.items():
        client.log_metric(parent_id, f"jobs_{name}", count)
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
        tags={"study": study, **tags},
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


def epoch_logger():
    """Keras callback logging loss, accuracy, val_loss, val_accuracy at step = epoch (0-based)."""
    return mlflow.keras.MlflowCallback(log_every_epoch=True)
