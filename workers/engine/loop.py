"""The training loop: whole-tensor batches on the device, one optimizer step per batch, and
every failure turned into a :class:`TrainResult` status instead of an exception.

Determinism: the model is initialised after ``torch.manual_seed(seed)``; the data order and
the augmentation of epoch ``e`` come from a generator seeded with ``(seed, e)``, so the epoch
number alone restores them; the global torch RNG (dropout, stochastic depth) is saved in the
epoch state. Same seed, same result on CPU, and a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workers.augment import Augmenter
from workers.data.dataset import Dataset
from workers.engine.optim import Schedule, make_optimizer
from workers.engine.results import EpochMetrics, TrainResult
from workers.settings import TrainSettings
from workers.status import TrialStatus

STATE_FORMAT = "nas-train-state/2"
READS_FORMATS = ("nas-train-state/1", STATE_FORMAT)
EVAL_BATCH = 1024
DIVERGENCE_CHECK_EVERY = 16  # steps between NaN checks (each one syncs a GPU)

OnEpoch = Callable[[EpochMetrics, dict], bool | None]


class _Diverged(Exception):
    pass


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed((seed * 1_000_003 + epoch * 7919 + 17) % (2**63))
    return g


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def is_oom(exc: BaseException) -> bool:
    """True for an out-of-memory error (CUDA, host, or a RuntimeError saying so)."""
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc)
    )


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def build_model(spec: dict | nn.Module, num_classes: int) -> tuple[nn.Module, float]:
    """(model, resolution multiplier) from a spec dict (``search_spaces.build``) or a module."""
    if isinstance(spec, nn.Module):  # a network built from a spec keeps it (Network.spec)
        scaling = (getattr(spec, "spec", None) or {}).get("scaling") or {}
        return spec, float(scaling.get("resolution", 1.0))
    from search_spaces import build  # lazy: workers -> search_spaces, only when given a spec

    resolution = float((spec.get("scaling") or {}).get("resolution", 1.0))
    return build(spec, num_classes), resolution


@torch.no_grad()
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    aug: Augmenter,
    *,
    batch_size: int = EVAL_BATCH,
) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``x, y`` (no augmentation)."""
    was_training = model.training
    model.eval()
    device = x.device
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    with _autocast(device):
        for i in range(0, len(x), batch_size):
            out = model(_layout(aug.normalise(x[i : i + batch_size]))).float()
            yb = y[i : i + batch_size]
            loss_sum += F.cross_entropy(out, yb, reduction="sum")
            correct += (out.argmax(1) == yb).sum()
    model.train(was_training)
    n = max(1, len(x))
    return loss_sum.item() / n, correct.item() / n


def _autocast(device: torch.device):
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _layout(x: torch.Tensor) -> torch.Tensor:
    if x.is_cuda and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _snapshot(obj: Any) -> Any:
    """A detached CPU copy of a (nested) state dict, safe to persist while training goes on."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _snapshot(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_snapshot(v) for v in obj)
    return copy.deepcopy(obj)


def stratified_order(y: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """A random permutation of ``range(len(y))`` whose every prefix holds the classes in
    about their proportions: the first ``k`` samples of an epoch are a stratified subset, so
    a trial stopped after part of an epoch trained on a fair sample of every class."""
    n = len(y)
    perm = torch.randperm(n, generator=g, device=y.device)
    ys = y[perm]
    counts = torch.bincount(ys)
    order = torch.argsort(ys, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.float64, device=y.device)
    rank[order] = (torch.arange(n, device=y.device) - starts[ys[order]]).double()
    jitter = torch.rand(n, generator=g, device=y.device, dtype=torch.float64)
    return perm[torch.argsort((rank + jitter) / counts[ys].double())]


class _Run:
    """One training run's moving parts (kept together so the loop reads top to bottom).

    Training is counted in optimizer steps; ``report_steps`` are the steps after which the
    model is evaluated and ``on_epoch`` called (every epoch end, or the fidelity points of a
    search's plan, which may fall inside an epoch)."""

    def __init__(self, model, dataset, settings, fidelity, device, seed, resolution):
        self.model, self.data, self.s = model, dataset, settings
        self.device, self.seed = device, seed
        self.aug = Augmenter.for_dataset(
            dataset,
            settings.augment,
            flip=settings.flip and dataset.mirror_invariant,
            resolution=resolution,
        )
        n = len(dataset.train_x)
        self.batch = min(settings.batch_size, n)
        self.steps_per_epoch = max(1, n // self.batch)  # drop the ragged last batch (BatchNorm)
        # an epoch counts as all n samples (the ragged batch it drops included), so that a
        # fidelity of k * n samples is exactly k epochs
        self.samples_per_step = n / self.steps_per_epoch
        epochs, samples, report_at = fidelity
        if samples is None:
            self.total_steps = epochs * self.steps_per_epoch
            points = [e * self.steps_per_epoch for e in range(1, epochs + 1)]
        else:
            self.total_steps = self._steps(samples)
            points = [self._steps(s) for s in report_at or ()]
        self.report_steps = sorted({min(p, self.total_steps) for p in points} | {self.total_steps})
        self.opt = make_optimizer(model, settings)
        self.sched = Schedule(
            self.opt,
            settings,
            self.steps_per_epoch,
            self.total_steps / self.steps_per_epoch,
            # a search's trial (samples and report points) is first ranked at its first report
            first_rank_step=self.report_steps[0] if samples is not None and report_at else None,
        )
        self.history: list[EpochMetrics] = []
        self.step = 0
        self.generator_state: torch.Tensor | None = None  # set when resuming inside an epoch
        self.train_images = 0
        self.train_seconds = 0.0

    def _steps(self, samples: int) -> int:
        """Optimizer steps that see at least ``samples`` samples (at least one)."""
        return max(1, math.ceil(samples / self.samples_per_step - 1e-9))

    def state(self, g: torch.Generator) -> dict:
        return {
            "format": STATE_FORMAT,
            "step": self.step,
            "epoch": self.step / self.steps_per_epoch,
            "seed": self.seed,
            "settings": self.s.to_dict(),
            "model": _snapshot(self.model.state_dict()),
            "optimizer": _snapshot(self.opt.state_dict()),
            "schedule": self.sched.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
                "epoch": g.get_state().cpu(),
            },
            "history": [m.to_dict() for m in self.history],
            "train_images": self.train_images,
            "train_seconds": self.train_seconds,
        }

    def restore(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("format") not in READS_FORMATS:
            raise ValueError(
                f"resume_state: not a training state, expected format {STATE_FORMAT!r}"
            )
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["schedule"])
        torch.set_rng_state(state["rng"]["torch"])
        if self.device.type == "cuda" and state["rng"]["cuda"]:
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.history = [EpochMetrics(**m) for m in state["history"]]
        # format 1 stopped only at epoch ends and counted epochs
        self.step = int(state.get("step", int(state["epoch"]) * self.steps_per_epoch))
        if self.step % self.steps_per_epoch and state["rng"].get("epoch") is not None:
            self.generator_state = state["rng"]["epoch"]
        self.train_images = int(state.get("train_images", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))

    def _epoch_order(self, epoch: int) -> tuple[torch.Tensor, torch.Generator]:
        """The epoch's sample order and the generator its augmentation draws from; inside an
        epoch after a resume, the generator continues where the saved run left it."""
        g = _epoch_generator(self.seed, epoch, self.device)
        perm = stratified_order(self.data.train_y, g)
        if self.generator_state is not None:
            g.set_state(self.generator_state.to(g.get_state().device))
            self.generator_state = None
        return perm, g

    def _train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
        model, opt, s = self.model, self.opt, self.s
        aux_forward = getattr(model, "forward_with_aux", None)
        with _autocast(self.device):
            out, aux = aux_forward(xb) if aux_forward is not None else (model(xb), [])
        loss = F.cross_entropy(out.float(), yb, label_smoothing=s.label_smoothing)
        for weight, logits in aux:  # auxiliary classifiers (GoogLeNet, Inception v3)
            loss = loss + weight * F.cross_entropy(
                logits.float(), yb, label_smoothing=s.label_smoothing
            )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if s.grad_clip > 0:
            nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
        opt.step()
        self.sched.step()
        return loss.detach()

    def loop(self, on_epoch: OnEpoch | None) -> None:
        """Train to ``total_steps``, reporting at ``report_steps``. Raises _Diverged on
        NaN/Inf."""
        x_all, y_all = self.data.train_x, self.data.train_y
        reports = [r for r in self.report_steps if r > self.step]
        perm, g, epoch = None, None, -1
        loss_sum = torch.zeros((), device=self.device)
        since, t0 = 0, time.perf_counter()
        self.model.train()
        while self.step < self.total_steps:
            e, i = divmod(self.step, self.steps_per_epoch)
            if e != epoch:
                perm, g = self._epoch_order(e)
                epoch = e
            idx = perm[i * self.batch : (i + 1) * self.batch]
            loss_sum += self._train_step(_layout(self.aug.train(x_all[idx], g)), y_all[idx])
            self.step += 1
            since += 1
            if since % DIVERGENCE_CHECK_EVERY == 0 and not math.isfinite(loss_sum.item()):
                raise _Diverged(f"loss became {loss_sum.item()} at step {self.step}")
            if self.step != reports[0]:
                continue
            reports.pop(0)
            if self._report(loss_sum.item() / since, since, t0, g, on_epoch):
                if self.step % self.steps_per_epoch:  # a later loop() goes on from here
                    self.generator_state = g.get_state()
                break
            loss_sum.zero_()
            since, t0 = 0, time.perf_counter()
            self.model.train()

    def _report(self, train_loss, steps, t0, g, on_epoch) -> bool:
        """Evaluate, record the metrics, call ``on_epoch``; True stops the run."""
        if not math.isfinite(train_loss):
            raise _Diverged(f"training loss {train_loss} at step {self.step}")
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        t_train = time.perf_counter() - t0
        val_loss, val_acc = evaluate(self.model, self.data.val_x, self.data.val_y, self.aug)
        if len(self.data.val_x) and not math.isfinite(val_loss):
            raise _Diverged(f"validation loss {val_loss} at step {self.step}")
        images = steps * self.batch
        self.train_images += images
        self.train_seconds += t_train
        metrics = EpochMetrics(
            epoch=_round_epoch(self.step / self.steps_per_epoch),
            train_loss=train_loss,
            val_loss=val_loss,
            val_acc=val_acc,
            images_per_s=images / max(t_train, 1e-9),
            seconds=time.perf_counter() - t0,
            lr=self.opt.param_groups[0]["lr"],
            samples=int(round(self.step * self.samples_per_step)),
        )
        self.history.append(metrics)
        return bool(on_epoch is not None and on_epoch(metrics, self.state(g)))


def _round_epoch(x: float) -> int | float:
    """Whole epochs as ints (``3``), parts of one to 3 decimals (``0.278``)."""
    return int(round(x)) if abs(x - round(x)) < 1e-9 else round(x, 3)


def train(
    spec: dict | nn.Module,
    dataset: Dataset,
    settings: TrainSettings | dict | None = None,
    *,
    epochs: int | None = None,
    samples: int | None = None,
    report_at: Sequence[int] | None = None,
    device: str | torch.device | None = None,
    seed: int = 0,
    on_epoch: OnEpoch | None = None,
    resume_state: dict | None = None,
    use_test: bool = False,
) -> TrainResult:
    """Train ``spec`` (an architecture spec dict, built with ``search_spaces.build``, or a
    ready ``nn.Module``) on ``dataset`` for ``epochs`` epochs, or for ``samples`` training
    samples (a search's fidelity, reporting after ``report_at`` samples and at the end), and
    evaluate it.

    ``on_epoch(metrics, state)`` is called after every epoch (every report point with
    ``samples``); returning True stops the run
    (early stopping / pruning). ``state`` is a detached CPU snapshot that
    :func:`workers.save_checkpoint` can persist; ``resume_state=state`` continues from it and
    gives the same result as an uninterrupted run. The test split is evaluated only when
    ``use_test``. Divergence, out-of-memory and specs that cannot run end as a status; bad
    ``settings`` / ``epochs`` / ``resume_state`` raise ValueError.
    """
    t_start = time.perf_counter()
    settings = TrainSettings.from_dict(settings)
    fidelity = _fidelity(epochs, samples, report_at)
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    dataset, failure = _to_device(dataset, device)
    if failure is None:
        run, failure = _start(spec, dataset, settings, fidelity, device, seed)
    if failure is not None:  # outside the except block, so the traceback's tensors are gone
        _free_memory(device)
        return _result(t_start, None, *failure)
    if resume_state is not None:
        run.restore(resume_state)
    failure = _guarded(run, on_epoch, device)
    if failure is not None:
        return _result(t_start, run, *failure)
    test_acc = None
    if use_test:
        test_acc = evaluate(run.model, dataset.test_x, dataset.test_y, run.aug)[1]
    return _result(t_start, run, TrialStatus.COMPLETED, "", test_acc=test_acc)


def _to_device(
    dataset: Dataset, device: torch.device
) -> tuple[Dataset, tuple[TrialStatus, str] | None]:
    """(the dataset on ``device``, None), or (as it was, an ``oom`` failure) when it does
    not fit there."""
    try:
        return dataset.to(device), None
    except (RuntimeError, MemoryError) as exc:
        if not is_oom(exc):
            raise
        return dataset, (TrialStatus.OOM, f"moving the data to {device}: {one_line(exc)}")


def _guarded(
    run: _Run, on_epoch: OnEpoch | None, device: torch.device
) -> tuple[TrialStatus, str] | None:
    """``run.loop(on_epoch)`` with every failure turned into (status, reason)."""
    try:
        run.loop(on_epoch)
    except _Diverged as exc:
        return TrialStatus.DIVERGED, str(exc)
    except (RuntimeError, MemoryError) as exc:
        oom = is_oom(exc)
        if oom:
            run.opt.zero_grad(set_to_none=True)
            run.model.zero_grad(set_to_none=True)
            _free_memory(device)
        return (
            TrialStatus.OOM if oom else TrialStatus.INVALID,
            ("" if oom else "during training: ") + one_line(exc),
        )
    return None


def _fidelity(
    epochs: int | None, samples: int | None, report_at: Sequence[int] | None
) -> tuple[int | None, int | None, Sequence[int] | None]:
    """Check that exactly one of ``epochs`` / ``samples`` is a positive integer."""

    def bad(x: Any) -> bool:
        return isinstance(x, bool) or not isinstance(x, int) or x < 1

    if (epochs is None) == (samples is None):
        raise ValueError(f"epochs={epochs!r}, samples={samples!r}: give exactly one of them")
    if epochs is not None and bad(epochs):
        raise ValueError(f"epochs={epochs!r}: expected an integer >= 1")
    if samples is not None and bad(samples):
        raise ValueError(f"samples={samples!r}: expected an integer >= 1")
    if report_at is not None and any(bad(p) for p in report_at):
        raise ValueError(f"report_at={list(report_at)!r}: expected integers >= 1")
    return epochs, samples, report_at


def _start(
    spec: dict | nn.Module,
    dataset: Dataset,
    settings: TrainSettings,
    fidelity: tuple[int | None, int | None, Sequence[int] | None],
    device: torch.device,
    seed: int,
) -> tuple[_Run | None, tuple[TrialStatus, str] | None]:
    """Build the model and its run, and probe it: (run, None) or (None, (status, reason))."""
    try:
        model, resolution = build_model(spec, dataset.num_classes)
        model = model.to(device)
        if device.type == "cuda" and dataset.dims == 2:
            model = model.to(memory_format=torch.channels_last)
        run = _Run(model, dataset, settings, fidelity, device, seed, resolution)
        _probe(model, dataset, run.aug)
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, NotImplementedError) as exc:
        return None, (TrialStatus.OOM if is_oom(exc) else TrialStatus.INVALID, one_line(exc))
    return run, None


def _result(
    t_start: float, run: _Run | None, status: TrialStatus, reason: str = "", **kw: Any
) -> TrainResult:
    """The :class:`TrainResult` of a run that ended with ``status``."""
    hist = run.history if run else []
    last = hist[-1] if hist else None
    model = run.model if run else None
    return TrainResult(
        status=status,
        reason=reason,
        epochs=last.epoch if last else 0,
        samples=last.samples if last else 0,
        val_acc=last.val_acc if last else float("nan"),
        val_loss=last.val_loss if last else float("nan"),
        train_images_per_s=(run.train_images / run.train_seconds)
        if run and run.train_seconds
        else 0.0,
        seconds=time.perf_counter() - t_start,
        history=list(hist),
        params=sum(p.numel() for p in model.parameters()) if model is not None else 0,
        model=model,
        **kw,
    )


def _probe(model: nn.Module, dataset: Dataset, aug: Augmenter) -> None:
    """Run two samples through ``model`` so a spec that cannot run fails before training."""
    model.eval()
    with torch.no_grad(), _autocast(dataset.device):
        out = model(_layout(aug.normalise(dataset.train_x[:2])))
    model.train()
    expected = (min(2, len(dataset.train_x)), dataset.num_classes)
    if tuple(out.shape) != expected:
        raise ValueError(
            f"model output of shape {tuple(out.shape)}, expected {expected} (N, num_classes)"
        )
