"""Shared helpers: run the real sweep entry point in a subprocess against a temporary store."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


# A test that runs the real entry point into a store of its own, or reads the session's smoke
# sweep, is end to end: `pytest -m "not slow"` leaves it out.
END_TO_END_FIXTURES = {"store", "smoke", "smoke_report"}


def pytest_collection_modifyitems(items):
    for item in items:
        if END_TO_END_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def run_sweep(study: str, *overrides: str, store: Path, timeout: int = 600, extra_env=None,
              report_out: Path | None = None):
    """`python -m harness STUDY OVERRIDES...` with MLflow pointed at `store`; its report goes
    to `report_out` (default: `reports` beside the store)."""
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    env.update(extra_env or {})
    overrides = (*overrides, f"hydra.sweep.dir={store.parent}/hydra",
                 f"report.out={report_out or store.parent / 'reports'}")
    return subprocess.run(
        [sys.executable, "-m", "harness", study, *overrides],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return tmp_path / "mlflow.db"


@pytest.fixture(scope="session")
def smoke(tmp_path_factory):
    """One real `smoke` sweep per test session: (completed process, client, runs, store)."""
    from mlflow.tracking import MlflowClient

    store = tmp_path_factory.mktemp("smoke") / "mlflow.db"
    result = run_sweep("smoke", store=store)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("smoke")
    return result, client, client.search_runs([experiment.experiment_id]), store


@pytest.fixture(scope="session")
def smoke_report(smoke, tmp_path_factory):
    """`python -m harness.report smoke` over the session's smoke store: (folder, client, result)."""
    _, client, _, store = smoke
    out = tmp_path_factory.mktemp("report")
    env = dict(os.environ, MLFLOW_TRACKING_URI=f"sqlite:///{store}")
    result = subprocess.run(
        [sys.executable, "-m", "harness.report", "smoke", "--out", str(out), "--target", "0.4"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out / "smoke", client, result


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def postgres_here() -> str | None:
    """Why `make server DB=postgres` cannot run here, or None: it needs Debian's PostgreSQL
    (root installs it when missing)."""
    if os.geteuid() != 0 and not list(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl")):
        return "PostgreSQL is not installed and this user cannot install it"
    return None


@contextlib.contextmanager
def server_folder(db: str, tmp_path: Path):
    """A folder for a server's store: PostgreSQL runs as its own user, which cannot enter
    pytest's private temporary folders, so its instance lives under /var/tmp."""
    import shutil
    import tempfile

    if db != "postgres":
        yield tmp_path / "server"
        return
    folder = Path(tempfile.mkdtemp(prefix="harness-server-", dir="/var/tmp"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def tracking_server(folder: Path, db: str = "sqlite"):
    """A real `make server` (DB=sqlite or postgres) on a free loopback port with its store in
    `folder`; yields its URI. Ended with SIGTERM to its process group, as Ctrl-C would, and
    waited for until every process of it is gone (PostgreSQL stopped)."""
    import requests

    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "make-server.log"
    with open(log, "w") as output:
        server = subprocess.Popen(
            ["make", "-s", "server", f"PORT={port}", f"SERVER_DIR={folder}", f"DB={db}",
             f"PG_PORT={free_port()}"],
            cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
        )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            try:
                if requests.get(f"{uri}/health", timeout=2).ok:
                    break
            except requests.RequestException:  # not up yet
                pass
            if server.poll() is not None:
                lines = log.read_text().strip().splitlines() or ["no output"]
                message = f"make server DB={db} exited {server.returncode}: {lines[-1]}"
                if db == "postgres":
                    pytest.skip(message)
                raise AssertionError(message)
            assert time.time() < deadline, f"the tracking server did not start: {log.read_text()}"
            time.sleep(0.5)
        yield uri
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        deadline = time.time() + 60
        with contextlib.suppress(ProcessLookupError):
            while time.time() < deadline:
                os.killpg(server.pid, 0)  # raises once the group is empty
                time.sleep(0.2)


ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def screen_text(output: str) -> str:
    """What a terminal shows, without its escape sequences (cursor moves, colours)."""
    return ESCAPE.sub("", output)


def run_in_terminal(argv: list[str], *, env: dict, timeout: int = 600,
                    interrupt_after: str | None = None, interrupt_when=None) -> tuple[int, str]:
    """`argv` as a user types it, in a pseudo-terminal of its own (pexpect; 120×40) that is its
    controlling terminal, so that it sees a TTY and Ctrl-C reaches its whole process group.
    With `interrupt_after` (a regular expression), Ctrl-C is typed once the output matches it
    and `interrupt_when()`, if given, is true (polled, at most 120 s).
    Returns the exit status (minus the signal number when a signal ended it) and everything the
    terminal received, escape sequences included."""
    import pexpect

    received = io.BytesIO()
    # Ctrl-C as in a user's shell: a suite started in the background (`make test &`, nohup)
    # ignores SIGINT, and its children would inherit that.
    child = pexpect.spawn(argv[0], argv[1:], env=env, cwd=str(ROOT), dimensions=(40, 120),
                          timeout=timeout,
                          preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    child.logfile_read = received
    if interrupt_after:
        child.expect(interrupt_after)
        deadline = time.time() + 120
        while interrupt_when and not interrupt_when() and time.time() < deadline:
            with contextlib.suppress(pexpect.TIMEOUT):
                child.expect(pexpect.TIMEOUT, timeout=0.2)  # keep reading the terminal
        child.sendcontrol("c")
    child.expect(pexpect.EOF)
    child.close()
    status = child.exitstatus if child.exitstatus is not None else -child.signalstatus
    return status, received.getvalue().decode(errors="replace")
