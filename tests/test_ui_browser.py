"""The MLflow UI in a real browser: `make ui` on a free loopback port over a store holding a
finished smoke sweep and its report; the links it prints opened in headless Debian Chromium
through Playwright.
Skipped where Chromium or Playwright is missing; .ci/run installs both."""

import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import threading
import time

import pytest

from tests.conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright = pytest.importorskip("playwright.sync_api")
pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed"),
]
# Flags for a closed network: no background connections, no sandbox as root.
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SCREENSHOTS = ROOT / "results" / "ui-test"
QUESTION = "Does the whole chain work — real MNIST, model, Hydra sweep, MLflow record"


@pytest.fixture
def ui(smoke_report):
    """`make ui` on a free port over the smoke sweep's store, as a user starts it: (the links it
    prints — the latest study's answer and its runs page —, client, report folder)."""
    folder, client, _ = smoke_report
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        ["make", "ui", f"UI_PORT={port}"], cwd=ROOT, text=True, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True,
        env=dict(os.environ, MLFLOW_TRACKING_URI=client.tracking_uri),
    )
    lines = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in server.stdout],
                     daemon=True).start()
    links, printed, deadline = {}, [], time.time() + 300
    try:
        while len(links) < 2 and time.time() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                assert server.poll() is None, "".join(printed)
                continue
            printed.append(line)
            for name in ("its answer", "every run"):
                if line.strip().startswith(f"{name}:"):
                    links[name] = line.split(":", 1)[1].strip()
        assert len(links) == 2, "".join(printed)
        yield links, client, folder
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)


def test_the_printed_links_show_the_answer(ui):
    """The links `make ui` prints, opened in a fresh browser profile (no local storage, as a
    new user's): MLflow's training view, not its GenAI overview; the parent run's page shows
    the answer with its numbers and has them as metrics; the runs page lists every child run
    flat with its test accuracy; the report's plots and files are the parent's."""
    links, client, folder = ui
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sweep") == "parent")
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert links["its answer"].endswith(
        f"/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
        "?workflowType=machine_learning")
    answer = (folder / "report.md").read_text().split("## Answer\n\n")[1].split("\n")[0]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()

        # The answer's link: the parent run, its description is the report.
        page.goto(links["its answer"])
        page.get_by_text(answer[2:60]).first.wait_for(state="visible", timeout=60000)
        page.get_by_text("Model registry").first.wait_for(timeout=30000)  # the training view's
        body = page.inner_text("body")
        assert "Judges" not in body and "Traces 0" not in body  # not the GenAI overview
        for number in re.findall(r"\d+\.\d+%|\d[\d,]* units|[\d,]+ parameters", answer):
            assert number in body, number  # the answer's numbers
        for child in children:  # the run page lists them above the description, once loaded
            page.get_by_text(child.info.run_name, exact=True).first.wait_for(timeout=30000)
        box = page.get_by_text(answer[2:60]).first.bounding_box()
        assert box["y"] + box["height"] / 2 < 900, box  # on the first screen (1400×900)
        page.screenshot(path=str(SCREENSHOTS / "answer_first_screen.png"))
        # the parent's metrics are the answer's numbers, in its metrics table (name, value)
        metrics = {name: value for name, value in parent.data.metrics.items()
                   if value == value}  # NaN: left over from a report at another target
        assert "minimal_units" in metrics
        page.get_by_text("minimal_units", exact=True).first.wait_for(timeout=30000)
        body = page.inner_text("body")
        for name, value in metrics.items():
            shown = str(int(value)) if value.is_integer() else repr(value)
            assert f"{name}\n{shown}" in body, (name, shown)
        plot = page.locator('img[src*="report%2Fcapacity.png"]').first
        plot.scroll_into_view_if_needed(timeout=30000)
        page.wait_for_function(
            "() => [...document.images].some(i => i.src.includes('capacity.png') && i.naturalWidth > 0)",
            timeout=30000)
        page.screenshot(path=str(SCREENSHOTS / "answer.png"), full_page=True)

        # Every run: the children in a table, not collapsed under the parent, smallest first.
        page.goto(links["every run"])
        page.get_by_text(QUESTION).first.wait_for(timeout=60000)  # the experiment's description
        page.get_by_text(f"{len(children)} matching runs").first.wait_for(timeout=60000)
        for child in children:
            page.get_by_text(child.info.run_name, exact=True).first.wait_for(timeout=30000)
            assert f"{child.data.metrics['test_accuracy']:.4g}"[:5] in page.content()
        page.screenshot(path=str(SCREENSHOTS / "every_run.png"))

        page.goto(links["its answer"].replace("?", "/artifacts?"))
        page.get_by_text("report", exact=True).first.wait_for(timeout=60000)
        page.get_by_text("report", exact=True).first.click()
        for name in ("report.md", "summary.csv", "summary.json", "capacity.png"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=30000)
        page.get_by_text("report.md", exact=True).first.click()
        page.get_by_text(QUESTION).first.wait_for(timeout=30000)  # rendered
        page.screenshot(path=str(SCREENSHOTS / "parent_artifacts.png"), full_page=True)
        browser.close()
