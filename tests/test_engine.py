"""The training engine on digits with tiny modules: results, failures, determinism, resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import workers
from workers import TrainSettings, train
from workers.engine.optim import Schedule

FAST = {"batch_size": 64, "lr": 0.05, "augment": 0.3, "flip": False}


@pytest.fixture(scope="module")
def digits():
    return workers.get_dataset("digits")


def tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.Dropout(0.1),
        nn.Flatten(),
        nn.Linear(8 * 64, 10),
    )


def run(digits, epochs=2, seed=0, **kw):
    torch.manual_seed(seed)
    return train(
        tiny(),
        digits,
        {**FAST, **kw.pop("settings", {})},
        epochs=epochs,
        seed=seed,
        device="cpu",
        **kw,
    )


def test_trains_and_reports(digits):
    seen = []
    r = run(digits, on_epoch=lambda m, s: seen.append((m.epoch, s["epoch"])), use_test=True)
    assert r.ok and r.epochs == 2 and seen == [(1, 1), (2, 2)]
    assert r.val_acc > 0.5 and 0 <= r.test_acc <= 1 and r.train_images_per_s > 0
    assert len(r.history) == 2 and isinstance(r.model, nn.Module) and r.params > 0
    assert run(digits).test_acc is None  # the test split is touched only with use_test


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
def test_optimizers(digits, optimizer):
    lr = 0.05 if optimizer == "sgd" else 0.003
    settings = {"optimizer": optimizer, "lr": lr, "label_smoothing": 0.1, "grad_clip": 1.0}
    r = run(digits, epochs=1, settings=settings)
    assert r.ok and math.isfinite(r.val_loss)


@pytest.mark.parametrize("schedule", ["cosine", "onecycle", "step", "constant"])
def test_schedule_shapes(schedule):
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    s = TrainSettings(schedule=schedule, lr=1.0, warmup_epochs=1)
    sched = Schedule(opt, s, steps_per_epoch=10, epochs=10)
    lrs = []
    for _ in range(100):
        lrs.append(opt.param_groups[0]["lr"])
        sched.step()
    assert lrs[0] < lrs[9] and max(lrs) == pytest.approx(1.0)  # warmup to the peak
    tail = {
        "cosine": lrs[-1] < 0.01,
        "onecycle": lrs[-1] < 0.02,
        "step": lrs[-1] == pytest.approx(0.01),
        "constant": lrs[-1] == 1.0,
    }
    assert tail[schedule]


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_a_search_trial_is_at_its_peak_by_its_lowest_rung(schedule):
    """A trial of 270 steps first ranked at step 10 (its lowest rung, 1/27 of the run) has
    warmed up by step 5 and is near its peak at step 10, not a few percent up its warmup."""
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    s = TrainSettings(schedule=schedule, lr=1.0, warmup_epochs=1)
    sched = Schedule(opt, s, steps_per_epoch=10, epochs=27, first_rank_step=10)
    assert sched.warmup <= 5 and sched.factor(10) > 0.95
    if schedule == "onecycle":  # without it: a quarter of the run warming up
        assert Schedule(opt, s, steps_per_epoch=10, epochs=27).factor(10) < 0.5


def test_same_seed_same_result(digits):
    a, b = run(digits, seed=3), run(digits, seed=3)
    assert a.val_loss == b.val_loss and a.history[0].train_loss == b.history[0].train_loss


def test_resume_equals_uninterrupted(digits, tmp_path):
    full = run(digits, epochs=3, seed=1)
    saved = {}

    def stop_after_one(metrics, state):
        workers.save_checkpoint(tmp_path / "ckpt.pt", state)
        return True

    first = run(digits, epochs=3, seed=1, on_epoch=stop_after_one)
    assert first.epochs == 1
    state = workers.load_checkpoint(tmp_path / "ckpt.pt")
    assert state["epoch"] == 1
    torch.manual_seed(123)  # the caller's RNG state must not matter

    def record(metrics, state):
        saved[metrics.epoch] = metrics
        return False

    resumed = run(digits, epochs=3, seed=1, resume_state=state, on_epoch=record)
    assert sorted(saved) == [2, 3] and resumed.epochs == 3
    assert resumed.val_loss == full.val_loss and resumed.val_acc == full.val_acc
    for p, q in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(p, q)


def _train_samples(digits, samples, report_at, seed=1, **kw):
    torch.manual_seed(seed)
    return train(
        tiny(), digits, FAST, samples=samples, report_at=report_at, seed=seed, device="cpu", **kw
    )


def test_samples_fidelity_reports_inside_epochs(digits):
    n = len(digits.train_x)
    per_epoch = n // 64  # steps of 64 (the ragged last batch is dropped)
    reported = []
    r = _train_samples(
        digits, 3 * n // 2, [300, n], on_epoch=lambda m, s: reported.append(m) and False
    )
    per_step = n / per_epoch  # an epoch counts all n samples
    steps = [math.ceil(300 / per_step), per_epoch, math.ceil(3 * n // 2 / per_step)]
    assert [m.samples for m in reported] == [round(k * per_step) for k in steps]
    assert reported[1].samples == n and reported[1].epoch == 1
    assert [m.epoch for m in reported] == [round(k / per_epoch, 3) for k in steps]
    assert r.ok and r.samples >= 3 * n // 2


def test_resume_inside_an_epoch_equals_uninterrupted(digits, tmp_path):
    n = len(digits.train_x)
    full = _train_samples(digits, 2 * n, [300])

    def stop(metrics, state):
        workers.save_checkpoint(tmp_path / "ckpt.pt", state)
        return True

    first = _train_samples(digits, 2 * n, [300], on_epoch=stop)
    assert 300 <= first.samples < 300 + 64
    state = workers.load_checkpoint(tmp_path / "ckpt.pt")
    torch.manual_seed(7)
    resumed = _train_samples(digits, 2 * n, [300], resume_state=state)
    assert resumed.val_loss == full.val_loss and resumed.samples == full.samples
    for p, q in zip(resumed.model.parameters(), full.model.parameters(), strict=True):
        assert torch.equal(p, q)


def test_every_prefix_of_an_epoch_is_stratified():
    from workers.engine.loop import stratified_order

    y = torch.tensor([0] * 900 + [1] * 90 + [2] * 10)
    g = torch.Generator().manual_seed(0)
    order = stratified_order(y, g)
    assert sorted(order.tolist()) == list(range(1000))
    for k in (50, 100, 300):
        counts = torch.bincount(y[order[:k]], minlength=3).tolist()
        for count, share in zip(counts, (0.9, 0.09, 0.01), strict=True):
            assert abs(count - share * k) <= 1, (k, counts)
    again = stratified_order(y, torch.Generator().manual_seed(0))
    assert torch.equal(order, again)  # fixed per seed


def test_divergence_is_a_status(digits):
    r = run(digits, settings={"lr": 1e6, "augment": 0.0})
    assert r.status == "diverged" and ("nan" in r.reason or "inf" in r.reason)


def test_invalid_model_is_a_status(digits):
    r = train(nn.Sequential(nn.Flatten(), nn.Linear(10, 10)), digits, FAST, epochs=1, device="cpu")
    assert r.status == "invalid" and "shapes cannot be multiplied" in r.reason
    wrong_classes = train(
        nn.Sequential(nn.Flatten(), nn.Linear(64, 3)), digits, FAST, epochs=1, device="cpu"
    )
    assert wrong_classes.status == "invalid" and "expected (2, 10)" in wrong_classes.reason


def test_bad_arguments_raise(digits):
    with pytest.raises(ValueError, match="epochs=0"):
        train(tiny(), digits, FAST, epochs=0)
    with pytest.raises(ValueError, match="exactly one"):
        train(tiny(), digits, FAST, epochs=1, samples=100)
    with pytest.raises(ValueError, match="report_at"):
        train(tiny(), digits, FAST, samples=100, report_at=[0])
    with pytest.raises(ValueError, match="train.optimizer='lbfgs'"):
        train(tiny(), digits, {"optimizer": "lbfgs"}, epochs=1)


def test_settings_validation():
    assert TrainSettings.from_dict({"lr": 1, "batch_size": 32}).lr == 1.0
    assert TrainSettings.from_dict(TrainSettings().to_dict()) == TrainSettings()
    for bad, msg in [
        ({"nope": 1}, "train.nope: unknown setting"),
        ({"schedule": "poly"}, "train.schedule"),
        ({"batch_size": 2.5}, "train.batch_size"),
        ({"augment": -0.1}, "train.augment"),
        ({"lr": float("inf")}, "train.lr"),
        ({"nesterov": "yes"}, "train.nesterov"),
    ]:
        with pytest.raises(ValueError, match=msg):
            TrainSettings.from_dict(bad)


def test_latency_keys():
    out = workers.measure_latency(tiny(), (1, 8, 8), "cpu")
    assert set(out) == {"latency_ms_b1", "latency_ms_b64"} and all(v > 0 for v in out.values())


class _OutOfMemoryInTraining(nn.Module):
    """Runs in eval mode (the probe), then fails like a CUDA allocation in training."""

    def __init__(self) -> None:
        super().__init__()
        self.net = tiny()

    def forward(self, x):
        if self.training:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return self.net(x)


def test_out_of_memory_is_a_status(digits):
    r = train(_OutOfMemoryInTraining(), digits, FAST, epochs=1, device="cpu")
    assert r.status == "oom" and "out of memory" in r.reason


def test_auxiliary_classifier_is_trained_with_its_weight(digits):
    """A spec's auxiliary head (GoogLeNet-style) is trained through forward_with_aux."""
    from search_spaces import build

    aux = {"pool_size": 2, "channels": [4], "kernels": [1], "hidden": [8], "weight": 0.3}
    spec = {
        "version": 1,
        "input": {"dims": 2, "channels": 1, "size": [8, 8]},
        "stages": [
            {"block": {"type": "conv"}, "out": 8, "aux": aux},
            {"block": {"type": "conv"}, "out": 8, "stride": 2},
        ],
    }
    torch.manual_seed(0)
    model = build(spec, 10)
    before = [p.detach().clone() for p in model.aux_heads.parameters()]
    forward_with_aux, seen = model.forward_with_aux, []

    def spy(x):
        out, aux_out = forward_with_aux(x)
        seen.append([w for w, _ in aux_out])
        return out, aux_out

    model.forward_with_aux = spy
    r = train(model, digits, FAST, epochs=1, device="cpu")
    assert r.ok and seen and all(w == [0.3] for w in seen)
    after = list(model.aux_heads.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
