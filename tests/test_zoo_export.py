"""Every zoo entry added for the exact zoo builds, trains one step (auxiliary classifiers'
losses included) and exports to ONNX and TorchScript, verified against PyTorch.

Full-size VGG-19 is a 550 MB ONNX file, so each network is reduced here: channels scaled by
``scaling.width`` 0.25, the smallest input its downsampling allows, fully connected hidden
layers narrowed to 64. The exact counts at full size are tested from the cost model
(``tests/test_zoo.py``)."""

from __future__ import annotations

import copy

import onnx
import pytest
import torch
import torch.nn.functional as F
from test_export_support import make_checkpoint

from nas.export import export_checkpoint
from search_spaces import SpecError, build, load_spec, load_zoo

torch.set_num_threads(1)

NEW = [
    "alexnet_lrn", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3", "efficientnet_b4",
    "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "googlenet", "inception_v3",
    "mobilenet_v3_large", "mobilenet_v3_small", "nin", "resnet101", "resnet152", "resnet34",
    "resnext50_32x4d", "shufflenet_v2_x1_0", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16_bn", "vgg19",
    "vgg19_bn", "wide_resnet50_2", "xception",
]  # fmt: skip
SIZES = (32, 48, 64, 96, 128, 160, 224, 299)


def reduced(name: str) -> dict:
    """The zoo spec, a quarter of the channels, the smallest input it accepts, narrow FCs."""
    spec = copy.deepcopy(load_zoo(name, aux_logits=True))
    spec["scaling"]["width"] *= 0.25
    spec["scaling"]["resolution"] = 1.0
    spec["head"]["hidden"] = [64 for _ in spec["head"]["hidden"]]
    if spec["head"]["pool"] == "flatten":
        spec["head"]["flatten_size"] = spec["head"]["flatten_size"] or [2, 2]
    for size in SIZES:
        spec["input"]["size"] = [size] * spec["input"]["dims"]
        try:
            return load_spec(spec)
        except SpecError:
            continue
    raise AssertionError(f"{name}: no input size in {SIZES} fits")


@pytest.mark.parametrize("name", NEW)
def test_new_zoo_entry_trains_and_exports(tmp_path, name: str) -> None:
    spec = reduced(name)
    torch.manual_seed(0)
    model = build(spec, 5).train()
    x = torch.randn(2, spec["input"]["channels"], *spec["input"]["size"])
    y = torch.tensor([0, 3])
    out, aux = model.forward_with_aux(x)
    loss = F.cross_entropy(out, y) + sum(w * F.cross_entropy(a, y) for w, a in aux)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.01).step()
    assert len(aux) == len(spec_aux := [s for s in spec["stages"] if s["aux"]]) and all(
        a.shape == (2, 5) for _, a in aux
    ), spec_aux

    ckpt = make_checkpoint(tmp_path / "ckpt.pt", spec, num_classes=5)
    # raises VerificationError unless every file agrees with PyTorch (rtol 1e-3, atol 1e-5)
    res = export_checkpoint(ckpt, "onnx,torchscript", tmp_path / "out", dynamic_batch=True)
    assert set(res.files) == {"onnx", "torchscript"} and res.batch_sizes == [1, 2, 7]
    if aux:  # auxiliary classifiers are for training only: the export has none of them
        graph = onnx.load(str(res.files["onnx"]), load_external_data=False).graph
        assert not [t.name for t in graph.initializer if "aux" in t.name]


def test_aux_losses_reach_the_engine() -> None:
    """The training engine adds each auxiliary classifier's loss with its weight."""
    from workers.engine.loop import build_model

    spec = reduced("googlenet")
    model, _ = build_model(spec, 5)
    heads = list(model.aux_heads.values())
    assert [h.weight for h in heads] == [0.3, 0.3]
    model.eval()
    assert model(torch.randn(1, 3, *spec["input"]["size"])).shape == (1, 5)
