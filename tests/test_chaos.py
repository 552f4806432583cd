"""Chaos, part 1: real processes are killed and a real disk fills, and nothing is lost.

Each test drives ``nas search`` as a subprocess on digits (the embedded default: local Ray,
SQLite stores), breaks something for real (SIGKILL of a Ray trial worker, SIGKILL of the
driver at three moments, damaged checkpoints, a full tmpfs under the workdir) and checks
what the user keeps. The table of scenarios is docs/RELIABILITY.md; the lost worker node is
in tests/test_cluster.py.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from mlflow.tracking import MlflowClient
from test_search_e2e import assert_stores_agree

from nas.cli import main
from nas.driver.ledger import ACCOUNTING_INTERVAL_S

pytestmark = pytest.mark.slow

SEARCH_LINE = re.compile(r"^nas: search '")
#: Seconds Ray takes to stop every trial once the budget is spent, and SIGKILL to land.
STOP_SLACK_S = 1.0


class Search:
    """A ``nas search`` subprocess; its stderr lines are kept with the time they came."""

    def __init__(self, workdir: Path, *args: str) -> None:
        self.marker = uuid.uuid4().hex
        env = dict(os.environ, NAS_CHAOS_MARKER=self.marker)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nas", "search", "--workdir", str(workdir), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[tuple[float, str]] = []
        self.stdout = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append((time.monotonic(), line.rstrip("\n")))

    def wait_line(self, pattern: re.Pattern[str], timeout: float = 180) -> float:
        """The time the first line matching ``pattern`` came."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, line in list(self.lines):
                if pattern.search(line):
                    return t
            if self.proc.poll() is not None and not self._reader.is_alive():
                break
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern.pattern!r}: {self.text()[-3000:]}")

    def kill(self) -> float:
        """SIGKILL the driver alone (its Ray processes see it die, as on a real crash)."""
        self.proc.kill()
        self.proc.wait(30)
        return time.monotonic()

    def finish(self, timeout: float = 300) -> int:
        """Wait for the search to exit (stderr stays with the reader thread)."""
        self.stdout = self.proc.stdout.read()
        self.proc.wait(timeout)
        self._reader.join(10)
        return self.proc.returncode

    def text(self) -> str:
        return "\n".join(line for _, line in self.lines)

    def last_live_line(self) -> float:
        """When the final live-view line came (the search's trials had all ended)."""
        return [t for t, line in self.lines if line.startswith("[")][-1]

    def trial_workers(self) -> list[int]:
        """Ray worker processes of this search running a trial now."""
        pids = []
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                cmd = (proc / "cmdline").read_bytes()
                env = (proc / "environ").read_bytes()
            except OSError:
                continue
            if b"ImplicitFunc" in cmd and self.marker.encode() in env:
                pids.append(int(proc.name))
        return pids


def _client(workdir: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{workdir / 'mlflow.db'}")


def _trial_runs(workdir: Path) -> list:
    client = _client(workdir)
    exp = client.get_experiment_by_name("search")
    if exp is None:
        return []
    return client.search_runs(
        [exp.experiment_id], filter_string="tags.`nas.role` = 'trial'", max_results=1000
    )


def _study(workdir: Path) -> optuna.Study:
    return optuna.load_study(study_name="search", storage=f"sqlite:///{workdir / 'optuna.db'}")


def _steps(workdir: Path, run) -> list[int]:
    return [m.step for m in _client(workdir).get_metric_history(run.info.run_id, "val_acc")]


def _saved(workdir: Path) -> dict:
    return json.loads((workdir / "search" / "search.json").read_text())


def _wait(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}")


def _assert_all_closed(workdir: Path) -> None:
    """Nothing RUNNING in either store, one MLflow run per trial, both stores agree."""
    study = _study(workdir)
    runs = _trial_runs(workdir)
    numbers = [int(r.data.tags["nas.trial"]) for r in runs]
    assert len(numbers) == len(set(numbers)), "a trial number has two MLflow runs"
    assert not [t.number for t in study.trials if t.state.name == "RUNNING"]
    assert not [r.info.run_id for r in runs if r.info.status == "RUNNING"]
    assert_stores_agree(study, {int(r.data.tags["nas.trial"]): r for r in runs})


def test_a_killed_trial_worker_resumes_from_its_checkpoint(tmp_path):
    search = Search(
        tmp_path, "--budget", "5trials", "--epochs", "4", "--grace-epochs", "4",
        "--scheduler", "none", "--warm-start", "none", "--max-concurrent", "1",
    )  # fmt: skip
    search.wait_line(SEARCH_LINE)

    def reported_once() -> bool:
        return any(len(_steps(tmp_path, r)) >= 1 for r in _trial_runs(tmp_path))

    _wait(reported_once, 180, "a trial's first report")
    (victim,) = search.trial_workers()
    os.kill(victim, signal.SIGKILL)
    assert search.finish() == 0, search.text()[-3000:]

    runs = _trial_runs(tmp_path)
    recovered = [r for r in runs if "nas.recoveries" in r.data.tags]
    assert recovered, "no trial recorded that Ray retried it"
    plan = _saved(tmp_path)["plan"]
    for run in recovered:
        assert run.data.tags["nas.status"] in ("completed", "pruned", "diverged")
        steps = _steps(tmp_path, run)
        assert steps == [s for s in plan["report_at"] if s <= steps[-1]], steps
    _assert_all_closed(tmp_path)


def test_the_driver_killed_three_times_loses_nothing_and_keeps_the_budget(tmp_path):
    budget = 45.0
    args = ["--budget", f"{budget:.0f}s", "--epochs", "3", "--grace-epochs", "1"]
    windows: list[float] = []  # seconds each run spent training and searching

    # 1. before the first trial reports
    first = Search(tmp_path, *args)
    started = first.wait_line(SEARCH_LINE)
    time.sleep(1.0)
    windows.append(first.kill() - started)

    # 2. mid-epoch, with two trials running
    second = Search(tmp_path, "--resume")
    started = second.wait_line(SEARCH_LINE)

    def two_running() -> bool:
        busy = [r for r in _trial_runs(tmp_path) if r.info.status == "RUNNING"]
        return len(busy) >= 2 and all(_steps(tmp_path, r) for r in busy)

    _wait(two_running, 120, "two running trials that reported")
    completed_before = {
        t.number: t.values for t in _study(tmp_path).trials if t.state.name == "COMPLETE"
    }
    windows.append(second.kill() - started)
    # damaged checkpoints: the resumed trials must refuse them and train again
    damaged = list((tmp_path / "ray").rglob("trial_state.pt"))
    for path in damaged:
        path.write_bytes(path.read_bytes()[:100])

    # 3. while the search finishes at the end of its budget
    third = Search(tmp_path, "--resume")
    started = third.wait_line(SEARCH_LINE)
    left = budget - _saved(tmp_path)["spent"]
    time.sleep(max(0.0, left) + 0.3)
    windows.append(third.kill() - started)

    # the last run finds the budget spent: it trains nothing and closes what is open
    last = Search(tmp_path, "--resume")
    assert last.finish() == 0, last.text()[-3000:]
    opened = time.time() - (time.monotonic() - last.wait_line(SEARCH_LINE))
    client = _client(tmp_path)
    for run in _trial_runs(tmp_path):
        history = client.get_metric_history(run.info.run_id, "val_acc")
        assert all(m.timestamp / 1000 < opened for m in history), "the last run trained"

    # run 3 was killed 0.3 s after its budget ended; the rest is the ledger's own slack
    assert sum(windows) <= budget + ACCOUNTING_INTERVAL_S + 0.3 + STOP_SLACK_S, windows
    _assert_all_closed(tmp_path)
    study = _study(tmp_path)
    for number, values in completed_before.items():
        assert study.trials[number].state.name == "COMPLETE"
        assert study.trials[number].values == values
    statuses = {r.data.tags["nas.status"] for r in _trial_runs(tmp_path)}
    assert "failed" not in statuses
    notes = [r.data.tags.get("nas.note", "") for r in _trial_runs(tmp_path)]
    restored = [n for n in notes if "checkpoint refused" in n]
    if damaged:  # a trial Ray restored from a damaged checkpoint trained again
        assert restored or "driver_lost" in statuses, (statuses, notes)


def test_a_full_disk_stops_the_search_with_one_line_and_resume_continues(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=160m", "nas-disk", str(disk)], check=True)
    try:
        workdir = disk / "work"
        search = Search(workdir, "--budget", "40s", "--epochs", "2", "--grace-epochs", "1")
        search.wait_line(SEARCH_LINE)
        _wait(lambda: any(_steps(workdir, r) for r in _trial_runs(workdir)), 120, "a report")
        filler = disk / "filler"
        with open(filler, "wb") as f, pytest.raises(OSError):
            while True:
                f.write(b"\0" * 2**20)
                f.flush()
        assert search.finish() == 2, search.text()[-3000:]
        errors = [line for _, line in search.lines if line.startswith("nas: error:")]
        assert len(errors) == 1 and "is full" in errors[0] and "--resume" in errors[0]
        # the stores stay readable
        assert _study(workdir).trials and _trial_runs(workdir)

        filler.unlink()
        resumed = Search(workdir, "--resume")
        assert resumed.finish() == 0, resumed.text()[-3000:]
        _assert_all_closed(workdir)
        assert _saved(workdir)["status"] == "finished"
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_damaged_retrain_checkpoint_is_refused_with_one_line(tmp_path, capsys):
    from test_export_support import make_checkpoint

    path = make_checkpoint(tmp_path / "retrain.pt")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    assert main(["export", "--checkpoint", str(path), "--out", str(tmp_path / "x")]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and str(path) in err[0]
