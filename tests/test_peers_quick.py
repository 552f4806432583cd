"""``benchmarks/peers.py --quick``: every arm runs on digits with a 30-second budget and
writes a result row. Never a timing or an accuracy: only that each arm produced a result
(a test accuracy, or the reason it handed over no model)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def test_quick_mode_gives_a_result_for_every_arm(tmp_path):
    results = tmp_path / "peers.jsonl"
    cmd = [sys.executable, str(REPO / "benchmarks" / "peers.py"), "--quick", "--results"]
    proc = subprocess.run([*cmd, str(results)], capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    assert sorted(r["arm"] for r in rows) == sorted(["nas", "random", "tune", "reference"])
    for row in rows:
        assert row["dataset"] == "digits" and row["budget"] == "30s" and row["seed"] == 0
        if row["test_acc"] is None:
            assert row["error"], row  # the reason this arm handed over no model
        else:
            assert 0.0 <= row["test_acc"] <= 1.0
