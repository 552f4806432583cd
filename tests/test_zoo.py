"""The zoo reproduces published networks: exact parameter counts, MACs within 3%.

Counts come from :func:`search_spaces.count`, which builds the network with
:func:`search_spaces.build` on the meta device, so the parameters are exactly what ``build``
produces (checked for real on the small networks below)."""

from __future__ import annotations

import pytest
import torch

from search_spaces import SpecError, build, count, list_zoo, load_zoo

torch.set_num_threads(1)

# name: (classes, params, GMACs or None) -- torchvision's published figures unless noted
PUBLISHED = {
    "resnet18": (1000, 11_689_512, 1.81),
    "resnet50": (1000, 25_557_032, 4.09),
    "vgg16": (1000, 138_357_544, 15.47),
    "densenet121": (1000, 7_978_856, 2.83),
    "mobilenet_v2": (1000, 3_504_872, 0.30),
    "efficientnet_b0": (1000, 5_288_548, 0.39),
    "googlenet": (1000, 6_624_904, 1.50),
    "squeezenet1_1": (1000, 1_235_496, 0.35),
    "alexnet": (1000, 61_100_840, 0.71),
    "lenet5": (10, 61_706, None),  # modern form: 156 + 2,416 + 48,120 + 10,164 + 850
}
# papers' rounded figures: (classes, params, relative tolerance, GMACs)
PAPER = {
    "mobilenet_v1": (1000, 4.2e6, 0.01, 0.569),  # Howard et al. 2017, Table 8
    "se_resnet50": (1000, 28.09e6, 0.001, None),  # Hu et al. 2018, Table 2
}


def test_zoo_lists_every_network() -> None:
    assert set(list_zoo()) == set(PUBLISHED) | set(PAPER)
    with pytest.raises(SpecError, match="unknown network 'resnet19'"):
        load_zoo("resnet19")


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_published_counts(name: str) -> None:
    classes, params, gmacs = PUBLISHED[name]
    report = count(load_zoo(name), classes)
    assert report.params == params
    if gmacs is not None:
        assert report.macs / 1e9 == pytest.approx(gmacs, rel=0.03)


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
