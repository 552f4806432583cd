"""The define-by-run sampler: Optuna trials -> concrete specs that build, run and adapt."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
import yaml

import search_spaces
from search_spaces.sampler import RandomTrial, halvings, sample
from search_spaces.space import SPACES_DIR, TRAIN_KEYS, SpaceError, load_space, parse_space

optuna.logging.set_verbosity(optuna.logging.WARNING)

DIGITS = {"dims": 2, "channels": 1, "size": (8, 8), "num_classes": 10}
#: A small input per space (the spaces' own dims) for build / forward / backward.
SMALL = {
    "image": DIGITS,
    "mobile": {"dims": 2, "channels": 3, "size": (16, 16), "num_classes": 10},
    "residual_dense": {"dims": 1, "channels": 2, "size": (32,), "num_classes": 5},
    "timeseries_1d": {"dims": 1, "channels": 3, "size": (64,), "num_classes": 4},
    "volume_3d": {"dims": 3, "channels": 1, "size": (8, 8, 8), "num_classes": 3},
}


pytestmark = pytest.mark.usefixtures("one_thread")


def downsamplings(spec: dict) -> int:
    """Stride-2 steps of a spec (stem entries and stage strides)."""
    strides = [e["stride"] for e in spec["stem"]] + [s["stride"] for s in spec["stages"]]
    return sum(int(math.log2(s)) for s in strides if s > 1)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_specs_build_and_run_forward_backward(name):
    torch.manual_seed(0)
    inp = SMALL[name]
    space = load_space(name)
    for seed in range(3 if space.limits["max_macs"] else 6):  # limits cost a count()
        spec, train = sample(RandomTrial(seed), space, **inp)
        model = search_spaces.build(spec, inp["num_classes"])
        x = torch.randn(2, inp["channels"], *inp["size"])
        out = model(x)
        assert out.shape == (2, inp["num_classes"])
        out.logsumexp(1).mean().backward()
        assert spec["input"] == {"dims": inp["dims"], "channels": inp["channels"],
                                 "size": list(inp["size"])}  # fmt: skip
        assert tuple(train) == TRAIN_KEYS


def test_optuna_trial_and_fixed_trial_give_the_same_spec():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(4):
        trial = study.ask()
        spec, train = sample(trial, "image", **DIGITS)
        again, train_again = sample(optuna.trial.FixedTrial(trial.params), "image", **DIGITS)
        assert search_spaces.spec_id(spec) == search_spaces.spec_id(again)
        assert spec == again and train == train_again
        study.tell(trial, 0.5)


def test_choices_keep_their_distribution_across_a_study():
    """Optuna refuses categorical choices that change under one name: 30 TPE trials."""
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=10))
    for i in range(30):
        trial = study.ask()
        sample(trial, "image", **DIGITS)
        study.tell(trial, float(i % 7))
    names = {n for t in study.trials for n in t.params}
    assert not any("/" in n for n in names)
    assert {"stage1.block", "stage1.width", "train.optimizer", "stages"} <= names


def test_conditional_choices_follow_the_block():
    space = load_space("image")
    for seed in range(40):
        trial = RandomTrial(seed)
        spec, train = sample(trial, space, **DIGITS)
        block = trial.params["stage1.block"]
        has_growth = any(k.endswith("growth") for k in trial.params if k.startswith("stage1."))
        assert has_growth == (block == "dense")
        if train["optimizer"] in ("adam", "adamw"):
            assert train["momentum"] == 0.0 and train["nesterov"] is False
            assert not any(k.startswith("train.") and "momentum" in k for k in trial.params)


def test_train_settings_validate_in_workers():
    import workers

    for seed in range(10):
        _, train = sample(RandomTrial(seed), "timeseries_1d", dims=1, channels=1, size=150,
                          num_classes=3)  # fmt: skip
        workers.TrainSettings.from_dict(train)


def _wide_space(**stages) -> dict:
    doc = yaml.safe_load((SPACES_DIR / "image.yaml").read_text())
    doc["dims"] = [1, 2, 3]
    doc["stages"].update({"count": {"low": 2, "high": 9}, **stages})
    doc["scaling"]["resolution"] = [1.0]
    doc["stages"]["blocks"] = [{"type": "conv", "kernel": [3]}, {"type": "dense", "growth": [4]}]
    return doc


@pytest.mark.parametrize(
    ("dims", "size", "most"),
    [(2, (8, 8), 3), (2, (28, 28), 4), (1, (150,), 7), (3, (4, 6, 6), 2), (2, (1, 1), 0)],
)
def test_depth_adapts_to_the_input_size(dims, size, most):
    space = parse_space(_wide_space(), "wide")
    seen = set()
    for seed in range(40):  # sample() returns load_spec's canonical form: sizes are checked
        spec, _ = sample(RandomTrial(seed), space, dims=dims, channels=1, size=size, num_classes=3)
        seen.add(downsamplings(spec))
    search_spaces.build(spec, 3)(torch.randn(2, 1, *size)).sum().backward()
    assert max(seen) <= most
    assert max(seen) >= most - 1  # and the sampler uses the room it has


def test_instance_norm_keeps_two_pixels():
    doc = _wide_space()
    doc["defaults"]["norm"] = ["instance"]
    space = parse_space(doc, "inst")
    for seed in range(20):
        spec, _ = sample(RandomTrial(seed), space, **DIGITS)
        assert downsamplings(spec) <= halvings(8, 2) == 2
        search_spaces.build(spec, 10)(torch.randn(1, 1, 8, 8))


def test_small_digits_models():
    params = []
    for seed in range(30):
        spec, _ = sample(RandomTrial(seed), "image", **DIGITS)
        params.append(sum(p.numel() for p in search_spaces.build(spec, 10).parameters()))
    params.sort()
    assert 1_000 <= params[0] and params[len(params) // 2] <= 200_000


def test_spec_id_is_stable_and_follows_the_choices():
    trial = RandomTrial(5)
    spec, _ = sample(trial, "image", **DIGITS)
    same, _ = sample(optuna.trial.FixedTrial(trial.params), "image", **DIGITS)
    assert search_spaces.spec_id(spec) == search_spaces.spec_id(same)
    params = dict(trial.params)
    params["stem.width"] = 16 if params["stem.width"] != 16 else 32
    other, _ = sample(optuna.trial.FixedTrial(params), "image", **DIGITS)
    assert search_spaces.spec_id(other) != search_spaces.spec_id(spec)


def test_mobile_limit_shrinks_or_rejects():
    from search_spaces.sampler import SampleRejected

    space = load_space("mobile")
    inp = {"dims": 2, "channels": 3, "size": (64, 64), "num_classes": 10}
    for seed in range(2):
        try:
            spec, _ = sample(RandomTrial(seed), space, **inp)
        except SampleRejected as exc:
            assert "limits.max_macs" in exc.reason
            continue
        assert search_spaces.count(spec, 10).macs <= space.limits["max_macs"]


def test_bad_input_is_refused():
    with pytest.raises(SpaceError, match="dims=3"):
        sample(RandomTrial(0), "image", dims=3, channels=1, size=8, num_classes=10)
    with pytest.raises(SpaceError, match="size"):
        sample(RandomTrial(0), "image", dims=2, channels=1, size=(8, 8, 8), num_classes=10)
    with pytest.raises(SpaceError, match="num_classes"):
        sample(RandomTrial(0), "image", dims=2, channels=1, size=8, num_classes=1)
