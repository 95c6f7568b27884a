"""Shared helpers: run the real sweep entry point in a subprocess against a temporary store."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import termios
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


def run_sweep(study: str, *overrides: str, store: Path, timeout: int = 600, extra_env=None):
    """`python -m harness STUDY OVERRIDES...` with MLflow pointed at `store`."""
    env = dict(os.environ)
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{store}"
    env.update(extra_env or {})
    overrides = (*overrides, f"hydra.sweep.dir={store.parent}/hydra")
    if not any(o.startswith("report.out=") for o in overrides):
        overrides += (f"report.out={store.parent}/reports",)
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


@contextlib.contextmanager
def tracking_server(folder: Path):
    """A real `make server` on a free loopback port with its store in `folder`; yields its URI."""
    import requests

    port = free_port()
    server = subprocess.Popen(
        ["make", "-s", "server", f"PORT={port}", f"SERVER_DIR={folder}"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                if requests.get(f"{uri}/health", timeout=2).ok:
                    break
            except requests.RequestException:  # not up yet
                pass
            assert time.time() < deadline, "the tracking server did not start"
            time.sleep(0.5)
        yield uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def screen_text(output: str) -> str:
    """What a terminal shows, without its escape sequences (cursor moves, colours)."""
    return ESCAPE.sub("", output)


def run_in_terminal(argv: list[str], *, env: dict, timeout: int = 600,
                    interrupt_when=None) -> tuple[int, str]:
    """`argv` as a user types it: in a new pseudo-terminal (120×40) that is its controlling
    terminal, so that it sees a TTY and Ctrl-C reaches its whole process group. With
    `interrupt_when(screen)`, Ctrl-C is typed once that returns True. Returns the exit status
    and everything the terminal received, escape sequences included."""
    pid, terminal = pty.fork()
    if pid == 0:  # the child: the terminal is its stdin, stdout and stderr
        try:
            fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
            os.chdir(ROOT)
            os.execvpe(argv[0], argv, env)
        finally:
            os._exit(127)
    output, typed, status = bytearray(), False, None
    deadline = time.time() + timeout
    while True:
        ready, _, _ = select.select([terminal], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(terminal, 65536)
            except OSError:  # EIO: every process holding the terminal has closed it
                chunk = b""
            output += chunk
            if not chunk and status is not None:
                break
        if status is None:
            done, code = os.waitpid(pid, os.WNOHANG)
            if done:
                status = os.waitstatus_to_exitcode(code)
                deadline = min(deadline, time.time() + 30)  # drain what is left
        elif not ready:
            break
        if interrupt_when and not typed and interrupt_when(screen_text(output.decode(errors="replace"))):
            os.write(terminal, b"\x03")  # Ctrl-C: the terminal signals its foreground group
            typed = True
        if time.time() > deadline:
            if status is None:
                os.killpg(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise TimeoutError(f"{argv} still running after {timeout} s:\n"
                                   + screen_text(output.decode(errors="replace"))[-3000:])
            break
    os.close(terminal)
    return status, output.decode(errors="replace")
