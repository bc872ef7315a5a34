"""The model zoo: shapes on tiny clips, parameter counts, options and their errors."""

from __future__ import annotations

import pytest
import torch

from deepepil.errors import ValidationError
from deepepil.ml import build_model, count_parameters, list_models
from deepepil.ml.models import MODELS

TINY = {
    "i3d": {"width": 0.125},
    "r2plus1d": {"width": 0.125},
    "cnn2d": {"width": 0.125, "hidden": 16},
}


@pytest.mark.parametrize("name, options", [
    ("i3d", TINY["i3d"]),
    ("r2plus1d", TINY["r2plus1d"]),
    ("cnn2d", {**TINY["cnn2d"], "head": "gru"}),
    ("cnn2d", {**TINY["cnn2d"], "head": "conv1d"}),
    ("cnn2d", {**TINY["cnn2d"], "head": "mean"}),
])
def test_forward_and_backward_on_a_tiny_clip(name, options):
    torch.manual_seed(0)
    model = build_model(name, num_classes=3, in_channels=2, **options)
    clips = torch.randn(2, 2, MODELS[name].min_frames if name == "i3d" else 4, 32, 32)
    logits = model(clips)
    assert logits.shape == (2, 3) and torch.isfinite(logits).all()
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2]))
    loss.backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert model.config == {"name": name, "num_classes": 3, "in_channels": 2,
                            **{**MODELS[name].options, **options}}
    # the config rebuilds the same network
    config = dict(model.config)
    rebuilt = build_model(config.pop("name"), config.pop("num_classes"), config.pop("in_channels"), **config)
    assert [p.shape for p in rebuilt.parameters()] == [p.shape for p in model.parameters()]


def test_i3d_takes_longer_and_larger_clips():
    model = build_model("i3d", 2, 1, width=0.125).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 16, 64, 48)).shape == (1, 2)


def test_parameter_counts_are_reported_and_match_the_published_networks():
    table = list_models().set_index("name")
    assert set(table.index) == {"i3d", "r2plus1d", "cnn2d"}
    assert (table["parameters"] > 1_000_000).all()
    with torch.device("meta"):  # counting needs no memory
        # the reference architectures: R(2+1)D-18 for Kinetics-400 and ResNet-18 for ImageNet
        assert count_parameters(build_model("r2plus1d", 400, 3)) == 31_505_325
        assert count_parameters(build_model("cnn2d", 1000, 3, head="mean", dropout=0.0)) == 11_689_512
        i3d = count_parameters(build_model("i3d", 400, 3))
        narrow = count_parameters(build_model("i3d", 400, 3, width=0.5))
    assert 12_000_000 < i3d < 13_000_000 and narrow < i3d / 3  # I3D: ~12M (Carreira & Zisserman 2017)
    model = build_model("cnn2d", 2, 1, width=0.125)
    for p in model.backbone.parameters():
        p.requires_grad = False
    assert 0 < count_parameters(model, trainable_only=True) < count_parameters(model)


def test_bad_model_requests_name_what_is_allowed():
    with pytest.raises(ValidationError, match="unknown model 'c3d'; models are: i3d, r2plus1d, cnn2d"):
        build_model("c3d", 2, 1)
    with pytest.raises(ValidationError, match="has no option depth; its options are: width=1.0, dropout=0.5"):
        build_model("i3d", 2, 1, depth=50)
    with pytest.raises(ValidationError, match="head must be one of"):
        build_model("cnn2d", 2, 1, head="lstm")
    with pytest.raises(ValidationError, match="num_classes must be an integer >= 1"):
        build_model("i3d", 0, 1)
