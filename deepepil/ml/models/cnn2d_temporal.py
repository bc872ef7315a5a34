"""A 2D CNN on every frame, then a temporal head over the per-frame features.

The backbone is a ResNet-18 (or -34) with the layer names of the common 2D ImageNet state
dicts (``conv1.weight``, ``layer1.0.bn1.running_var``, ...), kept under ``backbone.``: such
a file loads as it is (its ``fc`` is left out). The head pools over time:

* ``"mean"``: average of the frame features (order-blind, the cheapest);
* ``"conv1d"``: a temporal convolution (kernel 3) and ReLU, then the average;
* ``"gru"``: a GRU over the frames; its last state is classified.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from deepepil.ml.models._layers import scale_width

__all__ = ["ResNet2d", "Cnn2dTemporal", "cnn2d", "HEADS"]

#: Temporal heads.
HEADS: tuple[str, ...] = ("mean", "conv1d", "gru")
_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class _BasicBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm2d(out_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + shortcut)


class ResNet2d(nn.Module):
    """ResNet-18/34 feature extractor for ``(N, C, H, W)`` images; ``forward`` gives ``(N, num_features)``."""

    def __init__(self, in_channels: int = 3, *, depth: int = 18, width: float = 1.0) -> None:
        super().__init__()
        if depth not in _BLOCKS:
            raise ValueError(f"depth must be one of {sorted(_BLOCKS)}, got {depth}")
        widths = [scale_width(c, width) for c in (64, 128, 256, 512)]
        self.conv1 = nn.Conv2d(in_channels, widths[0], 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        channels = widths[0]
        for i, (out, blocks) in enumerate(zip(widths, _BLOCKS[depth])):
            stride = 1 if i == 0 else 2
            layer = [_BasicBlock(channels, out, stride)] + [_BasicBlock(out, out, 1) for _ in range(blocks - 1)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*layer))
            channels = out
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(self.feature_map(x)), 1)


class Cnn2dTemporal(nn.Module):
    """Per-frame ResNet features and a temporal head, for ``(N, C, T, H, W)`` clips.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc``.
    in_channels : int
        Input channels.
    head : {"mean", "conv1d", "gru"}
        How frame features are combined over time.
    depth : {18, 34}
        Backbone depth.
    width : float
        Multiplies the backbone's channels.
    hidden : int
        Channels of the conv1d head / state size of the GRU.
    dropout : float
        Dropout before ``fc``.
    """

    head_prefixes = ("fc.",)
    ignore_pretrained: tuple[str, ...] = ()
    input_conv = "backbone.conv1.weight"
    #: 2D ImageNet files name the backbone's layers without this prefix.
    pretrained_prefix = "backbone."

    def __init__(self, num_classes: int, in_channels: int = 3, *, head: Literal["mean", "conv1d", "gru"] = "gru",
                 depth: int = 18, width: float = 1.0, hidden: int = 256, dropout: float = 0.3) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.head_kind = head
        self.backbone = ResNet2d(in_channels, depth=depth, width=width)
        features = self.backbone.num_features
        if head == "conv1d":
            self.temporal: nn.Module = nn.Sequential(nn.Conv1d(features, hidden, 3, padding=1), nn.ReLU(inplace=True))
            out = hidden
        elif head == "gru":
            self.temporal = nn.GRU(features, hidden, batch_first=True)
            out = hidden
        else:
            self.temporal = nn.Identity()
            out = features
        self.num_features = out
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(out, num_classes)

    def frame_features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone features of every frame, ``(N, T, F)``."""
        n, c, t, h, w = x.shape
        frames = x.transpose(1, 2).reshape(n * t, c, h, w)
        return self.backbone(frames).reshape(n, t, -1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), ``(N, num_classes)``."""
        f = self.frame_features(x)
        if self.head_kind == "gru":
            _, last = self.temporal(f)
            pooled = last[-1]
        elif self.head_kind == "conv1d":
            pooled = self.temporal(f.transpose(1, 2)).mean(2)
        else:
            pooled = f.mean(1)
        return self.fc(self.dropout(pooled))


def cnn2d(num_classes: int, in_channels: int = 1, *, head: Literal["mean", "conv1d", "gru"] = "gru", depth: int = 18,
          width: float = 1.0, hidden: int = 256, dropout: float = 0.3) -> Cnn2dTemporal:
    """A 2D CNN with a temporal head (see :class:`Cnn2dTemporal`)."""
    return Cnn2dTemporal(num_classes, in_channels, head=head, depth=depth, width=width, hidden=hidden,
                         dropout=dropout)
