"""The MLflow UI in a real browser: `mlflow ui` on a free loopback port over a store holding a
finished smoke sweep and its report, opened in headless Debian Chromium through Playwright.
Skipped where Chromium or Playwright is missing; .ci/run installs both."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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
    folder, client, _ = smoke_report
    store = client.tracking_uri
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "mlflow"), "ui", "--backend-store-uri", store,
         "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    import requests

    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        try:
            if requests.get(f"{url}/health", timeout=2).ok:
                break
        except requests.RequestException:
            pass
        assert server.poll() is None and time.time() < deadline, "mlflow ui did not start"
        time.sleep(0.5)
    yield url, client, folder
    os.killpg(server.pid, signal.SIGTERM)
    server.wait(timeout=30)


def test_experiment_runs_and_report_are_visible(ui, tmp_path):
    url, client, folder = ui
    experiment = client.get_experiment_by_name("smoke")
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("sweep") == "parent")
    child = next(r for r in runs if "mlflow.parentRunId" in r.data.tags)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    base = f"{url}/#/experiments/{experiment.experiment_id}"
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 900})

        page.goto(f"{base}/runs")
        page.get_by_text("smoke sweep").first.wait_for(timeout=60000)
        # The experiment's name: the header can render after the runs table, so wait for it.
        page.get_by_text("smoke", exact=True).first.wait_for(timeout=30000)
        assert page.get_by_text("smoke", exact=True).count() >= 1
        # The experiment's description: the study's question, above the runs.
        page.get_by_text(QUESTION).first.wait_for(timeout=30000)
        if page.get_by_label("Close").count():  # the assistant side panel hides the table
            page.get_by_label("Close").first.click()
        # Child runs are nested under the parent row: expand it.
        page.locator('button[data-component-id*="runnamecellrenderer"]').first.click()
        for run in runs:
            if run is not parent:
                page.get_by_text(run.info.run_name, exact=True).first.wait_for(timeout=30000)
        page.screenshot(path=str(SCREENSHOTS / "experiment.png"))

        page.goto(f"{base}/runs/{child.info.run_id}")
        page.get_by_text("param_count").first.wait_for(timeout=60000)
        page.get_by_text("test_accuracy").first.wait_for(timeout=60000)
        accuracy = f"{child.data.metrics['test_accuracy']:.4g}"[:5]
        assert accuracy in page.content()
        assert str(int(child.data.metrics["param_count"])) in page.content()
        page.screenshot(path=str(SCREENSHOTS / "child_run.png"), full_page=True)

        # The parent run's description is the report: the Answer and its plots, no clicks.
        page.goto(f"{base}/runs/{parent.info.run_id}")
        answer = (folder / "report.md").read_text().split("## Answer\n\n")[1].split("\n")[0]
        page.get_by_text(answer[2:60]).first.wait_for(state="visible", timeout=60000)
        plot = page.locator('img[src*="report%2Fcapacity.png"]').first
        plot.scroll_into_view_if_needed(timeout=30000)
        page.wait_for_function(
            "() => [...document.images].some(i => i.src.includes('capacity.png') && i.naturalWidth > 0)",
            timeout=30000)
        page.screenshot(path=str(SCREENSHOTS / "parent_run.png"), full_page=True)
        plot.screenshot(path=str(SCREENSHOTS / "parent_run_plot.png"))

        page.goto(f"{base}/runs/{parent.info.run_id}/artifacts")
        page.get_by_text("report", exact=True).first.wait_for(timeout=60000)
        page.get_by_text("report", exact=True).first.click()
        for name in ("report.md", "summary.csv", "capacity.png", "overfitting.png"):
            page.get_by_text(name, exact=True).first.wait_for(timeout=30000)
        page.get_by_text("report.md", exact=True).first.click()
        page.get_by_text(QUESTION).first.wait_for(timeout=30000)  # rendered
        page.screenshot(path=str(SCREENSHOTS / "parent_artifacts.png"), full_page=True)
        browser.close()
