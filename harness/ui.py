"""`make ui`: MLflow's UI over the store, then the links to open — each study's answer (the
parent run of its latest sweep) and its runs page, in MLflow's training view.

`python -m harness.ui [--port 5000] [--store URI]`; Ctrl-C stops the UI."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests
from mlflow.tracking import MlflowClient

from harness import tracking
from harness.console import fail


def latest_parents(uri: str) -> list[tuple[str, str]]:
    """(study, parent run id) of each study's latest sweep with a report (one interrupted
    before its end has none), the latest study first."""
    client = MlflowClient(uri)
    found = []
    for experiment in client.search_experiments():
        parents = client.search_runs([experiment.experiment_id], "tags.sweep = 'parent'",
                                     order_by=["attributes.start_time DESC"], max_results=50)
        answered = [run for run in parents if tracking.NOTE_TAG in run.data.tags]
        if parents:
            run = (answered or parents)[0]
            found.append((run.info.start_time, experiment.name, run.info.run_id))
    return [(study, run_id) for _, study, run_id in sorted(found, reverse=True)]


def links_text(uri: str) -> str:
    parents = latest_parents(uri)
    if not parents:
        return "no sweep in this store yet: run `make sweep`"
    study, parent = parents[0]
    tracking.preset_runs_view(uri, study)  # its runs page's view (reports set it; older stores)
    lines = [f"latest study, {study}:",
             f"  its answer: {tracking.run_link(uri, study, parent)}",
             f"  every run:  {tracking.runs_link(uri, study)}"]
    if len(parents) > 1:
        width = max(len(name) for name, _ in parents[1:])
        lines.append("the other studies' answers:")
        lines += [f"  {name:<{width}}  {tracking.run_link(uri, name, run_id)}"
                  for name, run_id in parents[1:]]
    return "\n".join(lines)


def wait_until_up(address: str, server: subprocess.Popen, log: Path,
                  timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while server.poll() is None:
        try:
            if requests.get(f"{address}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        if time.time() > deadline:
            fail(f"mlflow ui did not answer at {address} within {timeout:.0f} s (its log: {log})")
        time.sleep(0.5)
    fail(f"mlflow ui exited ({server.returncode}); its log: {log}")


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def stop(server: subprocess.Popen) -> None:
    """End the UI and the workers it started (its own process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.ui", description=__doc__)
    parser.add_argument("--port", default=os.environ.get("UI_PORT") or tracking.UI_PORT)
    parser.add_argument("--store", default=os.environ.get("MLFLOW_TRACKING_URI"))
    args = parser.parse_args(argv)
    if not (str(args.port).isdigit() and 1 <= int(args.port) <= 65535):
        fail(f"UI_PORT: {args.port!r} is not allowed; use a port number 1..65535")
    uri = tracking.resolve_uri(args.store)
    if uri.startswith(("http://", "https://")):  # a tracking server is its own UI: links only
        try:
            tracking.check_reachable(uri)
        except tracking.TrackingError as error:
            fail(str(error))
        print(links_text(uri), flush=True)
        return
    if not port_free(int(args.port)):
        fail(f"UI_PORT: port {args.port} is in use (another make ui?); choose another: "
             "make ui UI_PORT=5050")
    os.environ["UI_PORT"] = str(args.port)
    address = tracking.ui_address(uri)
    mlflow = Path(sys.executable).parent / "mlflow"
    folder = Path(uri[len("sqlite:///"):]).parent if uri.startswith("sqlite:///") else Path(".")
    log = folder / "mlflow-ui.log"  # the server's own lines
    # One worker: a UI for one person (MLflow's default of 4 takes minutes to start on 2 busy
    # cores). Its own process group, which stop() ends whatever ends this process.
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(mlflow), "ui", "--backend-store-uri", uri, "--host", "127.0.0.1", "--port",
             str(args.port), "--workers", "1"],
            stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    for ending in (signal.SIGTERM, signal.SIGHUP):  # kill, or the terminal closed: end the UI too
        signal.signal(ending, lambda number, _: sys.exit(128 + number))
    try:
        wait_until_up(address, server, log)
        print(f"MLflow UI at {address} (its log: {log}; Ctrl-C stops it)\n{links_text(uri)}",
              flush=True)
        server.wait()
        fail(f"mlflow ui exited ({server.returncode}); its log: {log}")
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stop(server)


if __name__ == "__main__":
    main()
