"""The zoo reproduces published networks: exact parameter counts, MACs within 3%.

Counts come from :func:`search_spaces.count`, which builds the network with
:func:`search_spaces.build` on the meta device, so the parameters are exactly what ``build``
produces (checked for real on the small networks below)."""

from __future__ import annotations

import pytest
import torch

from search_spaces import SpecError, build, count, list_zoo, load_zoo
from search_spaces.zoo import ZOO_DIR

torch.set_num_threads(1)

# name: (classes, params, GMACs or None, torchvision's input size) -- torchvision 0.29's
# published ``num_params`` and ``_ops`` (GFLOPS, i.e. GMACs), measured at the size of the
# weights' transforms; the count must be exact, MACs within max(1%, 0.5 M, half a unit of the
# figure's last published digit: ShuffleNet's "0.14")
PUBLISHED = {
    "resnet18": (1000, 11_689_512, "1.814", 224),
    "resnet34": (1000, 21_797_672, "3.664", 224),
    "resnet50": (1000, 25_557_032, "4.089", 224),
    "resnet101": (1000, 44_549_160, "7.801", 224),
    "resnet152": (1000, 60_192_808, "11.514", 224),
    "resnext50_32x4d": (1000, 25_028_904, "4.23", 224),
    "wide_resnet50_2": (1000, 68_883_240, "11.398", 224),
    "vgg11": (1000, 132_863_336, "7.609", 224),
    "vgg11_bn": (1000, 132_868_840, "7.609", 224),
    "vgg13": (1000, 133_047_848, "11.308", 224),
    "vgg13_bn": (1000, 133_053_736, "11.308", 224),
    "vgg16": (1000, 138_357_544, "15.47", 224),
    "vgg16_bn": (1000, 138_365_992, "15.47", 224),
    "vgg19": (1000, 143_667_240, "19.632", 224),
    "vgg19_bn": (1000, 143_678_248, "19.632", 224),
    "densenet121": (1000, 7_978_856, "2.834", 224),
    "mobilenet_v2": (1000, 3_504_872, "0.301", 224),
    "mobilenet_v3_large": (1000, 5_483_032, "0.217", 224),
    "mobilenet_v3_small": (1000, 2_542_856, "0.057", 224),
    "shufflenet_v2_x1_0": (1000, 2_278_604, "0.14", 224),
    "efficientnet_b0": (1000, 5_288_548, "0.386", 224),
    "efficientnet_b1": (1000, 7_794_184, "0.687", 240),
    "efficientnet_b2": (1000, 9_109_994, "1.088", 288),
    "efficientnet_b3": (1000, 12_233_232, "1.827", 300),
    "efficientnet_b4": (1000, 19_341_616, "4.394", 380),
    "efficientnet_b5": (1000, 30_389_784, "10.266", 456),
    "efficientnet_b6": (1000, 43_040_704, "19.068", 528),
    "efficientnet_b7": (1000, 66_347_960, "37.746", 600),
    "googlenet": (1000, 6_624_904, "1.498", 224),
    "inception_v3": (1000, 27_161_264, "5.713", 299),
    "squeezenet1_1": (1000, 1_235_496, "0.349", 224),
    "alexnet": (1000, 61_100_840, "0.714", 224),
    "lenet5": (10, 61_706, None, 32),  # modern form: 156 + 2,416 + 48,120 + 10,164 + 850
}
# papers' rounded figures: (classes, params, relative tolerance, GMACs)
PAPER = {
    "mobilenet_v1": (1000, 4.2e6, 0.01, 0.569),  # Howard et al. 2017, Table 8
    "se_resnet50": (1000, 28.09e6, 0.001, None),  # Hu et al. 2018, Table 2
}


def _bn(c: int) -> int:
    return 2 * c  # a norm's weight and bias (running statistics are buffers)


def _sep(i: int, o: int, k: int = 3) -> int:
    return i * k * k + i * o  # depthwise k x k + pointwise 1x1, no biases


def _xception() -> int:
    """Xception (Chollet 2017, figure 5), every conv without bias and followed by BN."""
    total = 3 * 32 * 9 + _bn(32) + 32 * 64 * 9 + _bn(64)  # entry flow's two 3x3 convs

    def block(i: int, o: int, convs: int, grow_first: bool = True) -> int:
        widths = [i] + [o if grow_first or n == convs - 1 else i for n in range(convs)]
        body = sum(_sep(a, b) + _bn(b) for a, b in zip(widths, widths[1:], strict=False))
        return body + (i * o + _bn(o) if i != o else 0)  # strided 1x1 shortcut

    total += block(64, 128, 2) + block(128, 256, 2) + block(256, 728, 2)
    total += 8 * block(728, 728, 3)  # middle flow
    total += block(728, 1024, 2, grow_first=False)  # exit flow
    total += _sep(1024, 1536) + _bn(1536) + _sep(1536, 2048) + _bn(2048)
    return total + 2048 * 1000 + 1000


def _nin() -> int:
    """NiN for CIFAR-10 (Lin et al. 2013; the authors' released definition), biased convs."""
    convs = [(3, 192, 5), (192, 160, 1), (160, 96, 1), (96, 192, 5), (192, 192, 1), (192, 192, 1)]
    convs += [(192, 192, 3), (192, 192, 1), (192, 10, 1)]
    return sum(i * o * k * k + o for i, o, k in convs)


def _alexnet_lrn() -> int:
    """AlexNet (Krizhevsky et al. 2012, figure 2): conv2, conv4, conv5 see only their GPU's
    half of the channels (groups 2); LRN has no parameters."""
    convs = [(3, 96, 11, 1), (96, 256, 5, 2), (256, 384, 3, 1), (384, 384, 3, 2), (384, 256, 3, 2)]
    fcs = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]
    return sum(i // g * o * k * k + o for i, o, k, g in convs) + sum(i * o + o for i, o in fcs)


#: name: (classes, params) derived from the paper's layer table by the functions above
DERIVED = {
    "xception": (1000, _xception()),  # 22,855,952 (timm's legacy_xception agrees)
    "nin": (10, _nin()),  # 966,986
    "alexnet_lrn": (1000, _alexnet_lrn()),  # 60,965,224 (Caffe's bvlc_alexnet agrees)
}


def test_zoo_lists_every_network() -> None:
    assert set(list_zoo()) == set(PUBLISHED) | set(PAPER) | set(DERIVED)
    with pytest.raises(SpecError, match="unknown network 'resnet19'"):
        load_zoo("resnet19")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_counts(name: str) -> None:
    classes, params, gmacs, size = PUBLISHED[name]
    spec = load_zoo(name)
    report = count(spec, classes, [spec["input"]["channels"], size, size])
    assert report.params + report.aux_params == params  # torchvision counts shipped aux heads
    if gmacs is not None:
        published = float(gmacs) * 1e9
        rounding = 0.5 * 10 ** -len(gmacs.split(".")[1]) * 1e9
        assert abs(report.macs - published) <= max(0.01 * published, 0.5e6, rounding)


@pytest.mark.parametrize("name", sorted(DERIVED))
def test_counts_derived_from_the_paper(name: str) -> None:
    classes, params = DERIVED[name]
    assert count(load_zoo(name), classes).params == params


def test_derivations_match_the_known_totals() -> None:
    assert (_xception(), _nin(), _alexnet_lrn()) == (22_855_952, 966_986, 60_965_224)


def test_auxiliary_classifiers_are_an_option_counted_apart() -> None:
    with_aux = count(load_zoo("googlenet", aux_logits=True), 1000)
    assert (with_aux.params, with_aux.aux_params) == (6_624_904, 6_379_984)
    without = count(load_zoo("inception_v3", aux_logits=False), 1000)
    assert (without.params, without.aux_params) == (23_834_568, 0)
    assert count(load_zoo("inception_v3"), 1000).params == 23_834_568


def test_a_zoo_file_and_its_name_count_the_same(capsys) -> None:
    from nas.cli import main

    for target in ("googlenet", str(ZOO_DIR / "googlenet.yaml")):
        assert main(["arch", "summary", target]) == 0
        totals = [
            line for line in capsys.readouterr().out.splitlines() if line.startswith("params")
        ]
        assert totals[0].startswith("params: 6,624,904"), (target, totals)


def test_efficientnets_are_b0_scaled_alone() -> None:
    b0 = load_zoo("efficientnet_b0")
    for k in range(1, 8):
        bk = load_zoo(f"efficientnet_b{k}")
        assert bk["stages"] == b0["stages"] and bk["stem"] == b0["stem"]
        assert bk["head"]["conv"] == b0["head"]["conv"] == 1280


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_counts(name: str) -> None:
    classes, params, tol, gmacs = PAPER[name]
    report = count(load_zoo(name), classes)
    assert report.params == pytest.approx(params, rel=tol)
    if gmacs is not None:
        assert report.macs / 1e9 == pytest.approx(gmacs, rel=0.01)


def test_se_resnet50_matches_timm_exactly() -> None:
    assert count(load_zoo("se_resnet50"), 1000).params == 28_088_024


@pytest.mark.parametrize("name", ["lenet5", "squeezenet1_1", "mobilenet_v2"])
def test_real_build_has_the_counted_parameters(name: str) -> None:
    spec = load_zoo(name)
    model = build(spec, 10)
    assert sum(p.numel() for p in model.parameters()) == count(spec, 10).params


def test_zoo_network_runs_on_its_input() -> None:
    model = build(load_zoo("lenet5"), 10).eval()
    assert model(torch.randn(2, 1, 32, 32)).shape == (2, 10)
    model = build(load_zoo("squeezenet1_1"), 7).eval()
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 7)


@pytest.mark.parametrize("name", ["googlenet", "densenet121", "efficientnet_b0"])
def test_zoo_specs_round_trip(name: str, tmp_path) -> None:
    from search_spaces import dump_spec, load_spec, spec_id

    spec = load_zoo(name)
    for suffix in (".json", ".yaml"):
        again = load_spec(dump_spec(spec, tmp_path / f"{name}{suffix}"))
        assert again == spec and spec_id(again) == spec_id(spec)
