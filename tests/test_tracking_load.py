"""A burst of jobs' tracking against a real `make server`: N clients at once (threads in a few
processes, each logging what a job logs through harness.tracking), and every run FINISHED with
all its metric points, no client error. SQLite at N = 32; PostgreSQL at N = 128 where it can
start (`make server DB=postgres` installs and starts Debian's PostgreSQL as root; skipped with
the reason elsewhere). Busy answers come from a proxy in front of the real server that answers
some requests as an exhausted server does: each retried with a warning, or one line naming the server
when it stays busy."""

import contextlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness import tracking
from tests.conftest import ROOT, postgres_here, server_folder, tracking_server
from tests.load_client import FINAL, PER_EPOCH

pytestmark = pytest.mark.slow  # a real server, real processes
EPOCHS = 10


def burst(uri: str, clients: int, processes: int, *, via: str | None = None,
          env: dict | None = None) -> tuple[float, str]:
    """Start `clients` clients in `processes` processes at once, talking to `via` (a proxy) or
    straight to the server at `uri`; check every run and point; (wall seconds, their stderr)."""
    from mlflow.tracking import MlflowClient

    study = "load"
    parent = tracking.start_parent(study, tracking.connect(uri), jobs=clients, command="burst")
    per_process = clients // processes
    logged = via or uri
    env = dict(os.environ, MLFLOW_TRACKING_URI=logged, **(env or {}))
    started = time.time()
    runs = [subprocess.Popen([sys.executable, "-m", "tests.load_client", logged, study, parent,
                              str(k * per_process), str(per_process), str(EPOCHS)],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
            for k in range(processes)]
    errors, output = [], ""
    for run in runs:
        _, stderr = run.communicate(timeout=900)
        output += stderr
        if run.returncode:
            errors.append(stderr.strip().splitlines()[-1] if stderr.strip() else "no output")
    wall = time.time() - started
    client = MlflowClient(uri)
    children = tracking.child_runs(uri, study, parent)
    assert errors == [], errors
    assert len(children) == clients
    assert {run.info.status for run in children} == {"FINISHED"}

    def points(run_id: str) -> int:
        return sum(len(client.get_metric_history(run_id, name)) for name in PER_EPOCH)

    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(points, [run.info.run_id for run in children]))
    assert counts == [len(PER_EPOCH) * EPOCHS] * clients
    assert all(set(FINAL) <= set(run.data.metrics) for run in children)
    return wall, output


BUSY = {"error_code": "BAD_REQUEST", "message": "(sqlalchemy.exc.TimeoutError) QueuePool limit "
        "of size 5 overflow 10 reached, connection timed out, timeout 30.00"}


@contextlib.contextmanager
def busy_proxy(server: str, busy_every: int):
    """An HTTP proxy to `server` that answers every `busy_every`-th tracking request (0: all)
    with the 400 an exhausted database pool gives, and passes the others on; yields its URI."""
    import requests

    count = {"requests": 0}
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def relay(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with lock:
                count["requests"] += 1
                # the tracking API: artifacts pass through the server without its database
                busy = "/mlflow/" in self.path and (busy_every == 0
                                                  or count["requests"] % busy_every == 0)
            if busy:
                status, headers, content = 400, {"Content-Type": "application/json"}, \
                    json.dumps(BUSY).encode()
            else:
                answer = requests.request(self.command, server + self.path, data=body,
                                          headers={k: v for k, v in self.headers.items()
                                                   if k.lower() != "host"}, timeout=60)
                status, content = answer.status_code, answer.content
                headers = {"Content-Type": answer.headers.get("Content-Type", "text/plain")}
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = relay

        def log_message(self, *args):  # quiet
            pass

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{proxy.server_address[1]}"
    finally:
        proxy.shutdown()


def test_refused_requests_are_retried(sqlite_server):
    with busy_proxy(sqlite_server, busy_every=3) as proxy:
        _, output = burst(sqlite_server, clients=8, processes=1, via=proxy)
    # a third of the requests refused, each tried again: every run and point there (burst checks)
    assert "tracking: the server is busy (BAD_REQUEST: (sqlalchemy.exc.TimeoutError) QueuePool" in output


def test_a_server_that_stays_busy_fails_the_job_with_one_line(sqlite_server):
    with busy_proxy(sqlite_server, busy_every=0) as proxy:
        result = subprocess.run(
            [sys.executable, "-m", "tests.load_client", proxy, "load", "none", "0", "1", "1"],
            cwd=ROOT, env=dict(os.environ, HARNESS_TRACKING_PATIENCE_S="3"),
            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"client 0: TrackingError: MLFLOW_TRACKING_URI: the tracking server "
                           f"{proxy} stayed busy for 3 s of retries (")


@pytest.fixture(scope="module")
def sqlite_server(tmp_path_factory):
    """One SQLite `make server` for this module's tests (each burst is a parent of its own)."""
    with tracking_server(tmp_path_factory.mktemp("server")) as uri:
        yield uri


def test_sqlite_server_holds_a_burst(sqlite_server):
    wall, _ = burst(sqlite_server, clients=32, processes=4)
    print(f"sqlite: 32 clients in {wall:.0f} s")


@pytest.mark.skipif(postgres_here() is not None, reason=postgres_here() or "")
def test_postgres_server_holds_128_clients(tmp_path):
    with server_folder("postgres", tmp_path) as folder, \
            tracking_server(folder, db="postgres") as uri:
        wall, _ = burst(uri, clients=128, processes=8)
    print(f"postgres: 128 clients in {wall:.0f} s")
