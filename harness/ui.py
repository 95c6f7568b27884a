"""`make ui`: MLflow's UI over the store, then the links to open — each study's answer (the
parent run of its latest sweep) and its runs page, in MLflow's training view.

`python -m harness.ui [--port 5000] [--store URI]`; Ctrl-C stops the UI."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import requests
from mlflow.tracking import MlflowClient

from harness import tracking
from harness.console import fail


def latest_parents(uri: str) -> list[tuple[str, str]]:
    """(study, parent run id) of each study's latest sweep, the latest study first."""
    client = MlflowClient(uri)
    found = []
    for experiment in client.search_experiments():
        parents = client.search_runs([experiment.experiment_id], "tags.sweep = 'parent'",
                                     order_by=["attributes.start_time DESC"], max_results=1)
        if parents:
            found.append((parents[0].info.start_time, experiment.name, parents[0].info.run_id))
    return [(study, run_id) for _, study, run_id in sorted(found, reverse=True)]


def links_text(uri: str) -> str:
    parents = latest_parents(uri)
    if not parents:
        return "no sweep in this store yet: run `make sweep`"
    study, parent = parents[0]
    tracking.preset_runs_view(uri, study)  # its runs page's view (a sweep sets it; older stores)
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
                  timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            if requests.get(f"{address}/health", timeout=2).ok:
                return
        except requests.RequestException:
            pass
        if server.poll() is not None:
            fail(f"UI_PORT: mlflow ui exited ({server.returncode}; {log}); is port "
                 f"{os.environ['UI_PORT']} in use? Choose another: make ui UI_PORT=5050")
        if time.time() > deadline:
            server.terminate()
            fail(f"mlflow ui did not answer at {address} within {timeout:.0f} s")
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m harness.ui", description=__doc__)
    parser.add_argument("--port", default=os.environ.get("UI_PORT") or tracking.UI_PORT)
    parser.add_argument("--store", default=os.environ.get("MLFLOW_TRACKING_URI"))
    args = parser.parse_args(argv)
    if not (str(args.port).isdigit() and 1 <= int(args.port) <= 65535):
        fail(f"UI_PORT: {args.port!r} is not allowed; use a port number 1..65535")
    uri = tracking.resolve_uri(args.store)
    if uri.startswith(("http://", "https://")):  # a tracking server is its own UI
        tracking.check_reachable(uri)
        print(links_text(uri), flush=True)
        return
    os.environ["UI_PORT"] = str(args.port)
    address = tracking.ui_address(uri)
    mlflow = Path(sys.executable).parent / "mlflow"
    log = Path(uri[len("sqlite:///"):]).parent / "mlflow-ui.log"  # the server's own lines
    with log.open("w") as output:
        server = subprocess.Popen([str(mlflow), "ui", "--backend-store-uri", uri, "--host",
                                   "127.0.0.1", "--port", str(args.port)],
                                  stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until_up(address, server, log)
        print(f"MLflow UI at {address} (its log: {log}; Ctrl-C stops it)\n{links_text(uri)}",
              flush=True)
        server.wait()
    except KeyboardInterrupt:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
