"""Training-engine overhead: ``workers.train`` images/s against a minimal hand-written PyTorch
loop over the same model and the same in-memory tensors, on CPU, in the same process.

The fixed reference spec (benchmarks/specs/fashion_mnist_reference.yaml) is trained on
Fashion-MNIST. The comparison runs without augmentation on both sides (the baseline has
none), alternating engine / baseline rounds and keeping each side's best round, so load from
other processes hits both alike. Prints one line per round and the ratio (target >= 0.95).
Also prints the engine's throughput with the spec's own augmentation, for reference.

    python benchmarks/trainer_overhead.py [--quick] [--data-dir DIR] [--rounds N] [--images N]
                                         [--threads N]
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parents[1]
SPEC = REPO / "benchmarks" / "specs" / "fashion_mnist_reference.yaml"
DATA = REPO.parent / "shared" / "data"


def reference_model(num_classes: int) -> tuple[nn.Module, dict]:
    """The reference spec built by search_spaces (or, while the catalog lacks ``build``, a
    hand-written module of the same layers), and the spec file's train: section."""
    import yaml

    import search_spaces

    data = yaml.safe_load(SPEC.read_text())
    settings = data.pop("train", {})
    if hasattr(search_spaces, "build"):
        return search_spaces.build(search_spaces.load_spec(data), num_classes), settings
    print("search_spaces.build missing: using the hand-written equivalent", file=sys.stderr)

    def cbr(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU(inplace=True)]

    model = nn.Sequential(
        *cbr(1, 24),
        nn.MaxPool2d(2),
        *cbr(24, 48),
        *cbr(48, 48),
        nn.MaxPool2d(2),
        *cbr(48, 64),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, num_classes),
    )
    return model, settings


def baseline_images_per_s(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, mean, std, s
) -> float:
    """The minimal loop: shuffle, slice, normalise, forward, loss, backward, step."""
    opt = torch.optim.SGD(
        model.parameters(),
        lr=s.lr,
        momentum=s.momentum,
        nesterov=s.nesterov,
        weight_decay=s.weight_decay,
    )
    mean, std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)
    model.train()
    bs = s.batch_size
    steps = len(x) // bs
    perm = torch.randperm(len(x))
    t0 = time.perf_counter()
    for i in range(steps):
        idx = perm[i * bs : (i + 1) * bs]
        out = model((x[idx].float() - mean) / std)
        loss = F.cross_entropy(out, y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return steps * bs / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="short run: 1 round of 2,048 images")
    p.add_argument("--data-dir", default=str(DATA), help="folder holding fashion-mnist/")
    p.add_argument("--rounds", type=int, default=3, help="alternating rounds per side (default 3)")
    p.add_argument("--images", type=int, default=12_800, help="training images per round")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    rounds, images = (1, 2048) if args.quick else (args.rounds, args.images)

    import workers
    from workers import TrainSettings

    torch.manual_seed(0)
    full = workers.get_dataset("fashion-mnist", args.data_dir, device="cpu")
    ds = dataclasses.replace(
        full,
        train_x=full.train_x[:images],
        train_y=full.train_y[:images],
        val_x=full.val_x[:256],
        val_y=full.val_y[:256],
    )
    model, section = reference_model(ds.num_classes)
    settings = TrainSettings.from_dict(section).replace(
        augment=0.0, schedule="constant", warmup_epochs=0
    )
    print(
        f"reference spec {SPEC.name}: {sum(p.numel() for p in model.parameters()):,} params; "
        f"{len(ds.train_x):,} images/round, batch {settings.batch_size}, {torch.get_num_threads()} threads",
        file=sys.stderr,
    )
    init = copy.deepcopy(model.state_dict())
    engine_best = base_best = 0.0
    # one untimed warm-up of each side (allocator, kernels)
    workers.train(
        copy.deepcopy(model),
        dataclasses.replace(ds, train_x=ds.train_x[:512], train_y=ds.train_y[:512]),
        settings,
        epochs=1,
        device="cpu",
    )
    for r in range(rounds):
        model.load_state_dict(init)
        res = workers.train(model, ds, settings, epochs=1, device="cpu", seed=r)
        model.load_state_dict(init)
        base = baseline_images_per_s(model, ds.train_x, ds.train_y, ds.mean, ds.std, settings)
        engine_best, base_best = max(engine_best, res.train_images_per_s), max(base_best, base)
        print(
            f"round {r + 1}: engine {res.train_images_per_s:,.0f} img/s  baseline {base:,.0f} img/s  "
            f"ratio {res.train_images_per_s / base:.3f}"
        )
    model.load_state_dict(init)
    aug = workers.train(model, ds, TrainSettings.from_dict(section), epochs=1, device="cpu")
    print(
        f"engine with the spec's augmentation (augment={section.get('augment', 'default')}): "
        f"{aug.train_images_per_s:,.0f} img/s"
    )
    print(
        f"best: engine {engine_best:,.0f} img/s  baseline {base_best:,.0f} img/s  "
        f"ratio {engine_best / base_best:.3f} (target >= 0.95)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
