"""The CLI's rough edges: --version, a closed pipe, --limit, help texts with defaults, the
live view's best trial."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from nas.cli import build_parser, main


def test_version(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("nas ") and out.split()[1][0].isdigit()


@pytest.mark.parametrize(
    "command", ["nas arch summary resnet152", "nas arch summary xception --json"]
)
def test_a_closed_pipe_ends_quietly(command: str) -> None:
    """``| head`` closes the pipe while nas still writes: no traceback, in any of 5 runs."""
    for _ in range(5):
        proc = subprocess.run(
            f"{sys.executable} -m {command} | head -c 100",
            shell=True,
            capture_output=True,
            text=True,
        )
        assert proc.stderr == "", proc.stderr
        assert len(proc.stdout) == 100


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_limit_is_validated(tmp_path, capsys, limit: str) -> None:
    code = main(["leaderboard", "--workdir", str(tmp_path), "--limit", limit])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"--limit {limit}: expected an integer >= 1" in err[0]


def _actions(parser: argparse.ArgumentParser, path: list[str]):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _actions(sub, [*path, name])
        elif not isinstance(action, argparse._HelpAction | argparse._VersionAction):
            yield " ".join(path), action


def test_every_option_has_help_with_its_default() -> None:
    parser = build_parser()
    for where, action in _actions(parser, ["nas"]):
        name = "/".join(action.option_strings) or action.dest
        assert action.help, f"{where} {name}: no help text"
    for command in ("search", "leaderboard", "retrain", "export", "train", "predict"):
        text = subprocess.run(
            [sys.executable, "-m", "nas", command, "--help"], capture_output=True, text=True
        ).stdout
        text = " ".join(text.split())  # help lines wrap anywhere
        if command == "leaderboard":
            assert "(default 20" in text and "(default: nas-work)" in text
        if command == "search":
            assert "(default: tpe)" in text and "(default: 0)" in text


def test_live_view_names_the_best_trial() -> None:
    import io

    from nas.core.budget import parse_budget
    from nas.driver.live_view import LiveView
    from nas.study.events import EpochReported, SearchState

    state = SearchState(budget=parse_budget("3m"), devices_per_trial=1.0)
    view = LiveView(state, stream=io.StringIO())
    state.emit(EpochReported(3, {"status": "running", "val_acc": 0.91, "params": 14_300}))
    state.emit(EpochReported(5, {"status": "running", "val_acc": 0.80, "params": 900}))
    assert view.line().endswith("best val_acc 0.9100 (trial 3, 14.3k params)")
