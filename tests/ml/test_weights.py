"""Pretrained weights from local files: inflation keeps the 2D response; bad files give clear errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from deepepil.errors import ValidationError
from deepepil.ml import build_model, load_weights
from deepepil.errors import CorruptWeightsError, WeightsMismatchError
from deepepil.ml.models import InceptionV1
from deepepil.ml.models.cnn2d_temporal import ResNet2d

WIDTH = 0.125


def calibrate(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Random batch-norm scales and statistics measured on ``example``: outputs that depend on the input.

    (Untrained, a deep network's activations fade out and every input gives the same output,
    which would let a wrong weight copy pass unnoticed.)
    """
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a plain average over the calibration pass
            with torch.no_grad():
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) * 0.4 - 0.2)
    model.train()
    with torch.no_grad():
        model(example)
    return model.eval()


@pytest.fixture
def inception2d_file(tmp_path):
    """An ImageNet-style 2D Inception-v1 state dict (3 colour channels, 10 classes, auxiliary heads)."""
    torch.manual_seed(0)
    net = calibrate(InceptionV1(10, 3, width=WIDTH, dims=2), torch.randn(8, 3, 64, 64))
    state = net.state_dict()
    state["aux1.fc2.weight"] = torch.zeros(10, 4)  # what ImageNet files carry beside the network
    path = tmp_path / "inception-v1-imagenet.pth"
    torch.save(state, path)
    return net, path


def test_inflated_i3d_gives_the_2d_response_on_a_still_clip(inception2d_file):
    net2d, path = inception2d_file
    i3d = build_model("i3d", 10, 3, pretrained_path=path, width=WIDTH).eval()
    report = i3d.pretrained
    assert len(report.inflated) == sum(isinstance(m, nn.Conv3d) for m in i3d.modules())
    assert report.head == "loaded" and report.ignored == ("aux1.fc2.weight",) and not report.adapted
    image = torch.randn(2, 3, 64, 64)
    still = image.unsqueeze(2).repeat(1, 1, 12, 1, 1)  # the image held for 12 frames
    with torch.no_grad():
        expected = net2d(image)
        assert (expected[0] - expected[1]).abs().max() > 0.1  # the response depends on the image
        torch.testing.assert_close(i3d(still), expected, atol=1e-4, rtol=1e-4)
        moving = still + 0.5 * torch.randn_like(still)
        assert not torch.allclose(i3d(moving), net2d(image), atol=1e-3)


def test_rgb_weights_adapted_to_ir_keep_the_response_to_grey_images(inception2d_file):
    net2d, path = inception2d_file
    for channels in (1, 2):
        i3d = build_model("i3d", 10, channels, pretrained_path=path, width=WIDTH).eval()
        assert i3d.pretrained.adapted == ("conv1.conv.weight",)
        grey = torch.randn(1, 1, 64, 64)
        with torch.no_grad():
            expected = net2d(grey.repeat(1, 3, 1, 1))
            got = i3d(grey.unsqueeze(2).repeat(1, channels, 8, 1, 1))
        torch.testing.assert_close(got, expected, atol=1e-4, rtol=1e-4)


def test_other_class_counts_keep_the_new_classifier(inception2d_file):
    _, path = inception2d_file
    torch.manual_seed(3)
    model = build_model("i3d", 2, 1, pretrained_path=path, width=WIDTH)
    assert model.pretrained.head.startswith("kept as initialized")
    assert model.fc.weight.shape == (2, model.num_features)
    with pytest.raises(WeightsMismatchError, match=r"fc.weight: file \[10, \d+\] -> model \[2, \d+\]"):
        build_model("i3d", 2, 1, pretrained_path=path, width=WIDTH, head_weights="require")
    skipped = build_model("i3d", 10, 3, pretrained_path=path, width=WIDTH, head_weights="skip")
    assert skipped.pretrained.head == "skipped"


def test_cnn2d_takes_a_2d_resnet_file(tmp_path):
    torch.manual_seed(0)
    resnet = calibrate(ResNet2d(3, width=WIDTH), torch.randn(8, 3, 64, 64))
    state = {**resnet.state_dict(), "fc.weight": torch.zeros(1000, resnet.num_features),
             "fc.bias": torch.zeros(1000)}
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save({"epoch": 90, "state_dict": {f"module.{k}": v for k, v in state.items()}}, path)  # a DDP checkpoint
    model = build_model("cnn2d", 2, 1, pretrained_path=path, width=WIDTH, head="mean").eval()
    assert model.pretrained.adapted == ("backbone.conv1.weight",)
    grey = torch.randn(1, 1, 3, 64, 64)
    with torch.no_grad():
        per_frame = model.frame_features(grey)
        for t in range(3):
            torch.testing.assert_close(per_frame[0, t], resnet(grey[:, :, t].repeat(1, 3, 1, 1))[0],
                                       atol=1e-4, rtol=1e-4)
        assert not torch.allclose(per_frame[0, 0], per_frame[0, 1], atol=1e-3)


def test_own_weights_round_trip(tmp_path):
    model = calibrate(build_model("r2plus1d", 2, 1, width=WIDTH), torch.randn(4, 1, 4, 32, 32))
    path = tmp_path / "r2plus1d.pt"
    torch.save(model.state_dict(), path)
    again = build_model("r2plus1d", 2, 1, pretrained_path=path, width=WIDTH).eval()
    assert not again.pretrained.inflated and again.pretrained.head == "loaded"
    clip = torch.randn(1, 1, 4, 32, 32)
    with torch.no_grad():
        expected = model(clip)
        torch.testing.assert_close(again(clip), expected)
        assert not torch.allclose(model(torch.randn_like(clip)), expected, atol=1e-3)


def test_corrupt_files_are_named(tmp_path):
    noise = tmp_path / "noise.pt"
    noise.write_bytes(b"\x00\x13not a checkpoint" * 10)
    with pytest.raises(CorruptWeightsError, match=r"noise\.pt: not a readable PyTorch weights file"):
        build_model("i3d", 2, 1, pretrained_path=noise, width=WIDTH)
    good = tmp_path / "good.pt"
    torch.save(build_model("i3d", 2, 1, width=WIDTH).state_dict(), good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CorruptWeightsError, match=r"truncated\.pt: not a readable"):
        build_model("i3d", 2, 1, pretrained_path=truncated, width=WIDTH)
    a_list = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], a_list)
    with pytest.raises(CorruptWeightsError, match="holds a list, not a state dict"):
        build_model("i3d", 2, 1, pretrained_path=a_list, width=WIDTH)
    with pytest.raises(CorruptWeightsError, match="no such file.*nothing is downloaded") as err:
        build_model("i3d", 2, 1, pretrained_path=tmp_path / "missing.pt")
    assert isinstance(err.value, ValueError) and err.value.path.endswith("missing.pt")


def test_mismatched_files_list_keys_and_shapes(tmp_path):
    other_model = tmp_path / "r2plus1d.pt"
    torch.save(build_model("r2plus1d", 2, 1, width=WIDTH).state_dict(), other_model)
    with pytest.raises(WeightsMismatchError, match=r"r2plus1d\.pt: does not fit model 'i3d'.*missing in the file "
                                                   r"\(\d+\): conv1.conv.weight.*another model") as err:
        build_model("i3d", 2, 1, pretrained_path=other_model, width=WIDTH)
    assert "stem.0.weight" in err.value.unexpected and "conv1.conv.weight" in err.value.missing
    narrow = tmp_path / "i3d-narrow.pt"
    torch.save(build_model("i3d", 2, 1, width=WIDTH).state_dict(), narrow)
    with pytest.raises(WeightsMismatchError, match=r"shapes differ.*conv1.conv.weight: file \[8, 1, 7, 7, 7\] -> "
                                                   r"model \[16, 1, 7, 7, 7\].*another width"):
        build_model("i3d", 2, 1, pretrained_path=narrow, width=0.25)
    model = build_model("i3d", 2, 1, width=WIDTH)
    state = model.state_dict()
    state["extra.weight"] = torch.zeros(1)
    extra = tmp_path / "extra.pt"
    torch.save(state, extra)
    with pytest.raises(WeightsMismatchError, match=r"not in the model \(1\): extra.weight"):
        load_weights(model, extra)
    assert load_weights(model, extra, strict=False).loaded  # non-strict: extras ignored
    with pytest.raises(ValidationError, match="head must be one of auto, skip, require"):
        load_weights(model, extra, head="maybe")
