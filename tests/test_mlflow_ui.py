"""The MLflow UI on a finished search's store, in a real browser: Debian's ``chromium``
(installed with apt when missing; never a browser downloaded by Playwright) driven by
Playwright with ``executable_path``.

``nas ui`` serves the store and prints the link; the link opens the runs in model-training
mode, sorted by val_acc with the key columns; the search run links its best trial; the
trials carry their status, the best one its tag; the plots are artifacts of the search run.

``NAS_SCREENSHOTS=docs/images python -m pytest tests/test_mlflow_ui.py`` also writes the
README's screenshots (the runs table, a trial's charts, the search run's plots).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from servers import free_port

from nas.cli import main

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 1700, 950
#: Long enough for the UI's first load on 2 busy cores.
LOAD_TIMEOUT_MS = 90_000


def _chromium() -> str:
    """Debian's chromium, installed with apt when it is missing (CI starts without it)."""
    path = shutil.which("chromium")
    if path is None and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=900)
        path = shutil.which("chromium")
    assert path, "needs Debian's chromium: apt-get install chromium"
    return path


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    executable = _chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=executable, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield b
        b.close()


@pytest.fixture(scope="module")
def finished_search(tmp_path_factory, ray_session) -> Path:
    workdir = tmp_path_factory.mktemp("ui-search")
    args = ["search", "--workdir", str(workdir), "--budget", "5trials", "--seed", "1",
            "--epochs", "2", "--grace-epochs", "1", "--cpus-per-trial", "1"]  # fmt: skip
    assert main(args) == 0
    return workdir


@pytest.fixture(scope="module")
def ui(finished_search):
    """``nas ui`` on the search's store: (its link, the process)."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "nas", "ui", "--workdir", str(finished_search), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()  # printed once the server answers
    match = re.match(r"search: (http://\S+)", line)
    assert match, f"nas ui printed {line!r}"
    yield match.group(1)
    proc.terminate()  # SIGTERM stops the server it started, and the server's worker
    proc.wait(timeout=60)
    left = subprocess.run(["pgrep", "-f", str(finished_search)], capture_output=True, text=True)
    assert not left.stdout.strip(), f"nas ui left processes behind: {left.stdout}"


def _runs(workdir: Path) -> tuple[object, dict[str, object]]:
    client = MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")
    exp = client.get_experiment_by_name("search")
    runs = client.search_runs([exp.experiment_id])
    parent = next(r for r in runs if r.data.tags.get("nas.role") == "search")
    return parent, {r.info.run_name: r for r in runs if r.data.tags.get("nas.role") == "trial"}


def _shoot(page, name: str, tmp_path: Path) -> None:
    """Screenshot into the test's folder, and into $NAS_SCREENSHOTS when set."""
    page.screenshot(path=str(tmp_path / f"{name}.png"))
    target = os.environ.get("NAS_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"))


def _close_assistant(page) -> None:
    """MLflow 3.17 opens its assistant panel beside the page; it is not ours to show."""
    close = page.get_by_role("button", name="Close", exact=True)
    if close.count():
        close.first.click()


def test_the_link_opens_the_trials_by_val_acc_in_model_training(
    browser, ui, finished_search, tmp_path
):
    parent, trials = _runs(finished_search)
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    page.goto(ui)
    page.get_by_text("search-search").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    body = page.inner_text("body")
    assert "nas: trials by val_acc" in body  # our view, by name
    assert "Sort: val_acc" in body
    for column in ("val_acc", "params", "macs", "latency_ms_b1", "nas.status"):
        assert page.get_by_role("columnheader", name=column).count(), column
    assert "Traces" in body and "Detect Issues" not in body  # not the GenAI overview
    # every trial is a row, best val_acc first, its value shown
    names = re.findall(r"trial-\d{4}", body)
    assert sorted(set(names)) == sorted(trials)
    ranked = sorted(
        (r for r in trials.values() if "val_acc" in r.data.metrics),
        key=lambda r: -r.data.metrics["val_acc"],
    )
    assert names[0] == ranked[0].info.run_name
    assert f"{ranked[0].data.metrics['val_acc']:.4f}"[:5] in body
    _close_assistant(page)
    _shoot(page, "mlflow_runs", tmp_path)


def test_the_search_run_links_its_best_trial_and_shows_its_plots(
    browser, ui, finished_search, tmp_path
):
    parent, trials = _runs(finished_search)
    best_id = parent.data.tags["nas.best_run_id"]
    best = next(r for r in trials.values() if r.info.run_id == best_id)
    assert best.data.tags["nas.best"] == "true"
    base = ui.split("/runs?")[0]
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})

    page.goto(f"{base}/runs/{parent.info.run_id}?workflowType=machine_learning")
    link = page.get_by_role("link", name=best.info.run_name)
    link.first.wait_for(timeout=LOAD_TIMEOUT_MS)
    assert best_id in link.first.get_attribute("href")
    assert "Best trial" in page.inner_text("body")

    page.goto(
        f"{base}/runs/{parent.info.run_id}/artifacts/plots/optimization_history.png"
        "?workflowType=machine_learning"
    )
    page.get_by_text("intermediate_values.png").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    body = page.inner_text("body")
    for name in ("optimization_history.png", "parallel_coordinate.png", "leaderboard.csv"):
        assert name in body, name
    page.locator("img[alt*='optimization_history']").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    _close_assistant(page)
    _shoot(page, "mlflow_search_plots", tmp_path)


def test_a_trial_shows_its_status_curves_and_spec(browser, ui, finished_search, tmp_path):
    _, trials = _runs(finished_search)
    pruned = [r for r in trials.values() if r.data.tags["nas.status"] == "pruned"]
    for r in pruned:  # red, not the green of a trained-to-the-end trial; the tag says why
        assert r.info.status == "KILLED" and r.data.tags["mlflow.note.content"].startswith("pruned")
    trial = max(trials.values(), key=lambda r: r.data.metrics.get("val_acc", 0.0))
    base = ui.split("/runs?")[0]
    page = browser.new_page(viewport={"width": WIDTH, "height": HEIGHT})
    page.goto(f"{base}/runs/{trial.info.run_id}?workflowType=machine_learning")
    page.get_by_text("nas.status").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    body = page.inner_text("body")
    assert "arch.blocks" in body and "train.lr" in body  # a few meaningful params
    assert "digits" in body  # the dataset input
    for metric in ("train_loss", "val_loss", "val_acc", "lr", "peak_memory_mb"):
        assert metric in body, metric

    # the charts page, filtered to the validation curves (it draws the charts in view)
    page.goto(f"{base}/runs/{trial.info.run_id}/model-metrics?workflowType=machine_learning")
    search = page.get_by_placeholder("Search metric charts")
    search.wait_for(timeout=LOAD_TIMEOUT_MS)
    search.fill("val_")
    page.get_by_text("val_loss").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    page.wait_for_timeout(3000)  # the charts draw after their titles
    _close_assistant(page)
    _shoot(page, "mlflow_trial", tmp_path)

    page.goto(f"{base}/runs/{trial.info.run_id}/artifacts?workflowType=machine_learning")
    page.get_by_text("arch_summary.txt").first.wait_for(timeout=LOAD_TIMEOUT_MS)
    assert "spec.json" in page.inner_text("body")
