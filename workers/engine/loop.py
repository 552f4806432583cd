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
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from workers.augment import Augmenter
from workers.data.base import Dataset
from workers.engine.optim import Schedule, make_optimizer
from workers.engine.results import EpochMetrics, TrainResult
from workers.settings import TrainSettings

STATE_FORMAT = "nas-train-state/1"
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


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:500]


def _is_oom(exc: BaseException) -> bool:
    return isinstance(exc, (torch.cuda.OutOfMemoryError, MemoryError)) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc)
    )


def _free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def build_model(spec: dict | nn.Module, num_classes: int) -> tuple[nn.Module, float]:
    """(model, resolution multiplier) from a spec dict (``search_spaces.build``) or a module."""
    if isinstance(spec, nn.Module):
        return spec, 1.0
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


class _Run:
    """One training run's moving parts (kept together so the loop reads top to bottom)."""

    def __init__(self, model, dataset, settings, epochs, device, seed, resolution):
        self.model, self.data, self.s = model, dataset, settings
        self.epochs, self.device, self.seed = epochs, device, seed
        self.aug = Augmenter.for_dataset(
            dataset,
            settings.augment,
            flip=settings.flip and dataset.mirror_invariant,
            resolution=resolution,
        )
        n = len(dataset.train_x)
        self.batch = min(settings.batch_size, n)
        self.steps = max(1, n // self.batch)  # drop the ragged last batch (BatchNorm needs > 1)
        self.opt = make_optimizer(model, settings)
        self.sched = Schedule(self.opt, settings, self.steps, epochs)
        self.history: list[EpochMetrics] = []
        self.start_epoch = 0
        self.train_images = 0
        self.train_seconds = 0.0

    def state(self, epoch: int) -> dict:
        return {
            "format": STATE_FORMAT,
            "epoch": epoch,
            "seed": self.seed,
            "settings": self.s.to_dict(),
            "model": _snapshot(self.model.state_dict()),
            "optimizer": _snapshot(self.opt.state_dict()),
            "schedule": self.sched.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            },
            "history": [m.to_dict() for m in self.history],
            "train_images": self.train_images,
            "train_seconds": self.train_seconds,
        }

    def restore(self, state: dict) -> None:
        if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
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
        self.start_epoch = int(state["epoch"])
        self.train_images = int(state.get("train_images", 0))
        self.train_seconds = float(state.get("train_seconds", 0.0))

    def train_epoch(self, epoch: int) -> float:
        """One pass over the training split; mean training loss. Raises _Diverged on NaN/Inf."""
        model, opt, sched, aug, s = self.model, self.opt, self.sched, self.aug, self.s
        x_all, y_all = self.data.train_x, self.data.train_y
        g = _epoch_generator(self.seed, epoch, self.device)
        perm = torch.randperm(len(x_all), generator=g, device=self.device)
        loss_sum = torch.zeros((), device=self.device)
        model.train()
        for i in range(self.steps):
            idx = perm[i * self.batch : (i + 1) * self.batch]
            xb = _layout(aug.train(x_all[idx], g))
            with _autocast(self.device):
                out = model(xb)
            loss = F.cross_entropy(out.float(), y_all[idx], label_smoothing=s.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if s.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), s.grad_clip)
            opt.step()
            sched.step()
            loss_sum += loss.detach()
            if (i + 1) % DIVERGENCE_CHECK_EVERY == 0 and not math.isfinite(loss_sum.item()):
                raise _Diverged(f"loss became {loss_sum.item()} at epoch {epoch + 1}, step {i + 1}")
        mean = loss_sum.item() / self.steps
        if not math.isfinite(mean):
            raise _Diverged(f"training loss {mean} at epoch {epoch + 1}")
        return mean

    def loop(self, on_epoch: OnEpoch | None) -> None:
        for epoch in range(self.start_epoch, self.epochs):
            t0 = time.perf_counter()
            train_loss = self.train_epoch(epoch)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            t_train = time.perf_counter() - t0
            val_loss, val_acc = evaluate(self.model, self.data.val_x, self.data.val_y, self.aug)
            if len(self.data.val_x) and not math.isfinite(val_loss):
                raise _Diverged(f"validation loss {val_loss} at epoch {epoch + 1}")
            images = self.steps * self.batch
            self.train_images += images
            self.train_seconds += t_train
            metrics = EpochMetrics(
                epoch=epoch + 1,
                train_loss=train_loss,
                val_loss=val_loss,
                val_acc=val_acc,
                images_per_s=images / max(t_train, 1e-9),
                seconds=time.perf_counter() - t0,
                lr=self.opt.param_groups[0]["lr"],
            )
            self.history.append(metrics)
            if on_epoch is not None and on_epoch(metrics, self.state(epoch + 1)):
                break


def train(
    spec: dict | nn.Module,
    dataset: Dataset,
    settings: TrainSettings | dict | None = None,
    *,
    epochs: int,
    device: str | torch.device | None = None,
    seed: int = 0,
    on_epoch: OnEpoch | None = None,
    resume_state: dict | None = None,
    use_test: bool = False,
) -> TrainResult:
    """Train ``spec`` (an architecture spec dict, built with ``search_spaces.build``, or a
    ready ``nn.Module``) on ``dataset`` for ``epochs`` epochs and evaluate it.

    ``on_epoch(metrics, state)`` is called after every epoch; returning True stops the run
    (early stopping / pruning). ``state`` is a detached CPU snapshot that
    :func:`workers.save_checkpoint` can persist; ``resume_state=state`` continues from it and
    gives the same result as an uninterrupted run. The test split is evaluated only when
    ``use_test``. Divergence, out-of-memory and specs that cannot run end as a status; bad
    ``settings`` / ``epochs`` / ``resume_state`` raise ValueError.
    """
    t_start = time.perf_counter()
    settings = TrainSettings.from_dict(settings)
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise ValueError(f"epochs={epochs!r}: expected an integer >= 1")
    device = torch.device(device) if device is not None else default_device()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(seed)
    dataset = dataset.to(device)

    def finish(status: str, reason: str = "", run: _Run | None = None, **kw) -> TrainResult:
        hist = run.history if run else []
        last = hist[-1] if hist else None
        return TrainResult(
            status=status,
            reason=reason,
            epochs=len(hist),
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

    model = None
    failure: tuple[str, str] | None = None
    try:
        model, resolution = build_model(spec, dataset.num_classes)
        model = model.to(device)
        if device.type == "cuda" and dataset.dims == 2:
            model = model.to(memory_format=torch.channels_last)
        run = _Run(model, dataset, settings, epochs, device, seed, resolution)
        _probe(model, dataset, run.aug)
    except (ValueError, TypeError, KeyError, IndexError, RuntimeError, NotImplementedError) as exc:
        failure = ("oom" if _is_oom(exc) else "invalid", _one_line(exc))
    if failure is not None:  # outside the except block, so the traceback's tensors are gone
        _free_memory(device)
        return finish(*failure)
    if resume_state is not None:
        run.restore(resume_state)
    test_acc = None
    try:
        run.loop(on_epoch)
        if use_test:
            test_acc = evaluate(model, dataset.test_x, dataset.test_y, run.aug)[1]
    except _Diverged as exc:
        failure = ("diverged", str(exc))
    except (RuntimeError, MemoryError) as exc:
        oom = _is_oom(exc)
        failure = (
            "oom" if oom else "invalid",
            ("" if oom else "during training: ") + _one_line(exc),
        )
    if failure is not None:
        if failure[0] == "oom":
            run.opt.zero_grad(set_to_none=True)
            model.zero_grad(set_to_none=True)
            _free_memory(device)
        return finish(*failure, run)
    return finish("ok", "", run, test_acc=test_acc)


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
