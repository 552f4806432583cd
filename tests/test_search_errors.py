"""Bad input to ``nas search`` / ``nas leaderboard``: one line, exit code 2, nothing written."""

from __future__ import annotations

import pytest

from nas.cli import main


@pytest.fixture
def run_cli(tmp_path, capsys):
    """Run ``nas`` in-process; return (exit code, stderr lines)."""

    def _run(*argv: str) -> tuple[int, list[str]]:
        try:
            code = main(list(argv))
        except SystemExit as exc:  # argparse's own errors
            code = exc.code
        err = capsys.readouterr().err
        return code, [line for line in err.splitlines() if line.strip()]

    return _run


def _search(tmp_path, *extra: str) -> list[str]:
    return ["search", "--workdir", str(tmp_path / "w"), *extra]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("--budget", "banana"), "'banana'"),
        (("--budget", "-5m"), "'-5m'"),
        (("--budget", "0s"), "'0s'"),
        (("--budget", "3m", "--dataset", "no-such-dataset"), "no-such-dataset"),
        (("--budget", "3m", "--space", "no-such-space"), "no-such-space"),
        (("--budget", "3m", "--objective", "speed"), "'speed'"),
        (("--budget", "3m", "--objective", "params,accuracy"), "accuracy"),
        (("--budget", "3m", "--max-params", "lots"), "'lots'"),
        (("--budget", "3m", "--constraint", "speed<=2"), "'speed<=2'"),
        (("--budget", "3m", "--max-latency-ms", "fast"), "'fast'"),
        (("--budget", "3m", "--max-latency-ms", "0"), "--max-latency-ms"),
        (("--budget", "3m", "--constraint", "params<=1k", "--sampler", "random"), "random"),
        (("--budget", "3m", "--constraint", "macs<=1M", "--constraint", "macs<=2M"), "macs"),
        (("--budget", "3m", "--name", "bad name!"), "'bad name!'"),
        (("--budget", "3m", "--epochs", "0"), "--epochs"),
        (("--budget", "3m", "--grace-epochs", "20", "--epochs", "5"), "--grace-epochs"),
        (("--budget", "3m", "--sampler", "magic"), "magic"),
        (("--budget", "3m", "--folds", "0"), "--folds 0"),
        (("--budget", "3m", "--folds", "500"), "--folds 500"),
        (("--budget", "3m", "--storage", "redis://x"), "redis://x"),
        (("--budget", "3m", "--ray-address", "10.0.0.1:6380"), "postgresql"),
        (("--budget", "1gpu-h", "--gpus-per-trial", "0"), "'1gpu-h'"),
        (("--resume",), "--resume"),
        ((), "--budget"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, run_cli, args, needle):
    code, lines = run_cli(*_search(tmp_path, *args))
    assert code == 2
    assert len(lines) == 1, lines
    assert needle in lines[0]
    assert "Traceback" not in lines[0]
    assert not (tmp_path / "w").exists()


def test_missing_data_dir(tmp_path, run_cli):
    code, lines = run_cli(
        *_search(
            tmp_path,
            "--budget",
            "3m",
            "--dataset",
            "fashion-mnist",
            "--data-dir",
            str(tmp_path / "nowhere"),
        )
    )
    assert code == 2 and len(lines) == 1 and "nowhere" in lines[0]
    assert not (tmp_path / "w").exists()


def test_unwritable_workdir(tmp_path, run_cli):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, lines = run_cli("search", "--budget", "3m", "--workdir", str(blocker / "w"))
    assert code == 2 and len(lines) == 1 and "not a folder" in lines[0]


def test_unreachable_postgres_storage(tmp_path, run_cli):
    url = "postgresql://nobody@127.0.0.1:1/none"
    code, lines = run_cli(*_search(tmp_path, "--budget", "3m", "--storage", url))
    assert code == 2 and len(lines) == 1 and "cannot connect" in lines[0]


def test_leaderboard_without_search(tmp_path, run_cli):
    code, lines = run_cli("leaderboard", "--workdir", str(tmp_path / "w"))
    assert code == 2 and len(lines) == 1 and "no search" in lines[0]
