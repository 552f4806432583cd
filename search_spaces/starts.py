"""Known-good starting points of a search: small networks of proven families, written in the
shape the sampler draws (one stem conv, stages that halve the size after the first, a
pooled head), for the data's input, with the training recipes they are known to train well
with.

A search enqueues the ones its space can express (:func:`search_spaces.inverse.params_for`)
before its sampler proposes anything (``nas search --warm-start zoo``, the default):

- images: a plain VGG-style CNN (the shape of ``benchmarks/specs/fashion_mnist_reference``
  with a pooled head), a ResNet-style network of basic blocks (ResNet-18's block at a
  laptop's width) and a MobileNetV2-style one of inverted residuals;
- series: a fully convolutional network (Wang, Yan & Oates 2017) and a ResNet of basic
  blocks (the same paper's ResNet baseline), both with strided later stages.
"""

from __future__ import annotations

from typing import Any

from search_spaces.sampler import halvings

#: Recipes: SGD + Nesterov + one-cycle for images (timm / torchvision style), Adam + cosine
#: for series (as the FCN / ResNet baselines of Wang et al.).
IMAGE_RECIPE = {"optimizer": "sgd", "lr": 0.1, "momentum": 0.9, "nesterov": True,
                "weight_decay": 5.0e-4, "batch_size": 128, "schedule": "onecycle",
                "warmup_epochs": 0.0, "label_smoothing": 0.1, "augment": 0.25,
                "grad_clip": 0.0}  # fmt: skip
SERIES_RECIPE = {"optimizer": "adam", "lr": 1.0e-3, "momentum": 0.0, "nesterov": False,
                 "weight_decay": 1.0e-4, "batch_size": 32, "schedule": "cosine",
                 "warmup_epochs": 0.0, "label_smoothing": 0.0, "augment": 0.0,
                 "grad_clip": 0.0}  # fmt: skip
MAX_STAGES = 3


def _stage(block: dict[str, Any], out: int, repeats: int, first: bool) -> dict[str, Any]:
    return {"block": block, "out": out, "repeats": repeats, "stride": 1 if first else 2}


def _net(
    name: str,
    inp: dict[str, Any],
    stem: tuple[int, int],
    stages: list[tuple[dict[str, Any], int, int]],
    defaults: dict[str, Any],
) -> dict[str, Any]:
    return {
        "version": 1,
        "name": name,
        "input": inp,
        "defaults": {"norm_position": "before_act", **defaults},
        "stem": [{"type": "conv", "out": stem[0], "kernel": stem[1], "stride": 1}],
        "stages": [_stage(b, out, r, i == 0) for i, (b, out, r) in enumerate(stages)],
        "head": {"pool": "avg", "hidden": [], "dropout": 0.0},
        "scaling": {"width": 1.0, "depth": 1.0, "resolution": 1.0, "divisor": 8},
    }


def starting_points(
    dims: int, channels: int, size: tuple[int, ...]
) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """``(name, spec, train settings)`` of every starting point for this input, best-known
    first. The number of stages (at most three) follows the input: each halves it."""
    inp = {"dims": dims, "channels": channels, "size": list(size)}
    n = min(MAX_STAGES, halvings(min(size), 1) + 1)
    if dims == 1:
        relu = {"act": "relu", "norm": "batch"}
        fcn = [({"type": "conv", "kernel": k}, w, 1) for k, w in ((5, 64), (3, 64), (3, 32))]
        res = [({"type": "basic", "se": 0.0}, w, 1) for w in (32, 64, 64)]
        return [
            ("fcn", _net("fcn", inp, (32, 7), fcn[:n], relu), SERIES_RECIPE),
            ("resnet", _net("resnet", inp, (32, 7), res[:n], relu), SERIES_RECIPE),
        ]
    relu, silu = {"act": "relu", "norm": "batch"}, {"act": "silu", "norm": "batch"}
    plain = [({"type": "conv", "kernel": 3, "dilation": 1, "se": 0.0}, w, r)
             for w, r in ((32, 1), (64, 2), (64, 1))]  # fmt: skip
    basic = [({"type": "basic", "se": 0.0}, w, 2) for w in (32, 48, 64)]
    inverted = [({"type": "inverted_residual", "expansion": e, "kernel": 3, "se": 0.0}, w, r)
                for e, w, r in ((4, 24, 1), (6, 32, 2), (6, 64, 2))]  # fmt: skip
    return [
        ("plain_cnn", _net("plain_cnn", inp, (32, 3), plain[:n], relu), IMAGE_RECIPE),
        ("resnet", _net("resnet", inp, (16, 3), basic[:n], relu), IMAGE_RECIPE),
        ("mobilenet_v2", _net("mobilenet_v2", inp, (16, 3), inverted[:n], silu), IMAGE_RECIPE),
    ]
