"""The Python API (``nas.search`` and its result) and transfer learning (``nas retrain
--init-from``): a search on digits, its retrain and export from Python, then that retrain's
weights fine-tuned on a generated dataset with the stem and first stage frozen."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nas
from nas.cli import main
from workers import load_checkpoint

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """Two trials of one epoch on digits, retrained for two epochs, through the API."""
    work = tmp_path_factory.mktemp("api") / "w"
    result = nas.search(dataset="digits", budget="2trials", epochs=1, workdir=work, seed=1)
    retrained = result.retrain(epochs=2)
    return work, result, retrained


def test_search_returns_its_leaderboard_best_retrain_and_export(searched) -> None:
    work, result, retrained = searched
    assert len(result.leaderboard) == 2 and result.best is not None
    frame = result.leaderboard_frame()
    assert list(frame["trial"]) == [r["trial"] for r in result.leaderboard]
    assert {"val_acc", "params", "status"} <= set(frame.columns) or "value" in frame.columns
    assert retrained.trial == result.best.trial and 0.0 <= retrained.test_acc <= 1.0
    exported = result.export("onnx", register=False)
    assert exported.files["onnx"].is_file() and not exported.registered
    again = nas.load(work)
    assert [r.trial for r in again.records] == [r.trial for r in result.records]
    warm = result.retrain(epochs=1, init_from=retrained.checkpoint)  # the same network: all
    assert warm.trial == retrained.trial and warm.checkpoint != retrained.checkpoint


def test_bad_input_raises_the_cli_message_and_writes_nothing(tmp_path, capsys) -> None:
    work = tmp_path / "w"
    with pytest.raises(nas.UsageError) as api_error:
        nas.search(budget="banana", workdir=work)
    assert isinstance(api_error.value, ValueError) and not work.exists()
    assert main(["search", "--budget", "banana", "--workdir", str(work)]) == 2
    assert capsys.readouterr().err.strip() == f"nas: error: {api_error.value}"
    with pytest.raises(nas.UsageError, match="unrecognized arguments: --colour=red"):
        nas.search(budget="1m", workdir=work, colour="red")
    with pytest.raises(nas.UsageError, match="--folds 0"):
        nas.search(budget="1m", workdir=work, folds=0)
    assert not work.exists()


def _generated(path):
    """4 classes of 8x8 grey images: a bright bar in one of four places, on noise."""
    rng = np.random.default_rng(0)

    def draw(n):
        y = rng.integers(0, 4, n)
        x = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
        for i, k in enumerate(y):
            if k < 2:
                x[i, :, 2 + 4 * k] = 250
            else:
                x[i, 2 + 4 * (k - 2), :] = 250
        return x, y

    (xt, yt), (xs, ys) = draw(400), draw(100)
    np.savez(path, x_train=xt, y_train=yt, x_test=xs, y_test=ys)
    return path


def test_fine_tune_on_another_dataset_with_frozen_layers(searched, tmp_path, capsys) -> None:
    _, _, retrained = searched
    source = load_checkpoint(retrained.checkpoint)
    data = _generated(tmp_path / "bars.npz")
    argv = ["retrain", "--init-from", retrained.checkpoint, "--dataset", str(data),
            "--freeze", "stem,stages:1", "--epochs", "3", "--workdir", str(tmp_path / "ft"),
            "--name", "bars", "--json"]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr()
    assert "init from" in out.err and "stem" in out.err and "frozen" in out.err
    tuned = load_checkpoint(json.loads(out.out)["checkpoint"])
    before, after = source["state_dict"], tuned["state_dict"]
    assert tuned["num_classes"] == 4 and source["num_classes"] == 10
    frozen = [k for k in before if k.startswith(("stem.", "stages.0.")) and "running" not in k
              and "num_batches" not in k]  # fmt: skip
    assert frozen and all(torch.equal(before[k], after[k]) for k in frozen)
    trained = [k for k in before if k.startswith("stages.1.") and k.endswith("weight")]
    assert trained and any(not torch.equal(before[k], after[k]) for k in trained)
    assert tuned["init_from"] == retrained.checkpoint and tuned["metrics"]["test_acc"] > 0.5


def test_transfer_errors_are_one_line(searched, tmp_path, capsys) -> None:
    _, _, retrained = searched
    cases = [
        (["--freeze", "stem"], "--freeze: give it with --init-from"),
        (["--init-from", retrained.checkpoint, "--dataset", "digits", "--freeze", "head"],
         "--freeze 'head': expected a comma list of stem and stages:N"),
        (["--init-from", str(tmp_path / "none.pt"), "--dataset", "digits"], "no such file"),
    ]  # fmt: skip
    for extra, needle in cases:
        code = main(["retrain", "--workdir", str(tmp_path), *extra])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and needle in err[0], err


def test_options_become_the_cli_flags_a_constraint_once_per_limit() -> None:
    from nas.api import _flags

    argv = _flags({"objective": ["accuracy", "params"], "constraint": ["latency<=2ms",
                   "params<=100k"], "resume": True, "max_params": None})  # fmt: skip
    assert argv == ["--objective=accuracy,params", "--constraint=latency<=2ms",
                    "--constraint=params<=100k", "--resume"]  # fmt: skip
    assert _flags({"constraint": "macs<=5M"}) == ["--constraint=macs<=5M"]
