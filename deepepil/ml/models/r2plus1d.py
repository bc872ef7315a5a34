"""R(2+1)D: a ResNet-18 whose 3D convolutions are split into a spatial and a temporal one.

Tran et al., CVPR 2018, "A Closer Look at Spatiotemporal Convolutions for Action
Recognition". Each ``t x d x d`` convolution becomes ``1 x d x d`` to ``M`` channels, then
``t x 1 x 1``, with ``M = t d^2 N_in N_out / (d^2 N_in + t N_out)`` so the parameter count
matches the full 3D convolution. Lighter than I3D per clip and a strong baseline on small
datasets. The layer names follow the widely shared R(2+1)D-18 Kinetics state dicts
(``stem.0.weight``, ``layer1.0.conv1.0.0.weight``, ..., ``fc.weight``), so such a file loads.
"""

from __future__ import annotations

import torch
from torch import nn

from deepepil.ml.models._layers import scale_width

__all__ = ["R2Plus1D", "r2plus1d"]


def _mid_channels(in_channels: int, out_channels: int) -> int:
    return (in_channels * out_channels * 3 * 3 * 3) // (in_channels * 3 * 3 + 3 * out_channels)


class _Conv2Plus1D(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, mid_channels: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv3d(in_channels, mid_channels, (1, 3, 3), (1, stride, stride), (0, 1, 1), bias=False),
            nn.BatchNorm3d(mid_channels),
            nn.ReLU(inplace=True),
            nn.Conv3d(mid_channels, out_channels, (3, 1, 1), (stride, 1, 1), (1, 0, 0), bias=False),
        )


class _Block(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        # both convolutions use the middle width of the first (as the shared Kinetics weights do)
        mid = _mid_channels(in_channels, out_channels)
        self.conv1 = nn.Sequential(_Conv2Plus1D(in_channels, out_channels, mid, stride),
                                   nn.BatchNorm3d(out_channels), nn.ReLU(inplace=True))
        self.conv2 = nn.Sequential(_Conv2Plus1D(out_channels, out_channels, mid), nn.BatchNorm3d(out_channels))
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, stride, bias=False),
                                            nn.BatchNorm3d(out_channels))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class R2Plus1D(nn.Module):
    """R(2+1)D-18 for ``(N, C, T, H, W)`` clips.

    Parameters
    ----------
    num_classes : int
        Outputs of ``fc``.
    in_channels : int
        Input channels.
    width : float
        Multiplies every layer's channels (1.0: the published network).
    dropout : float
        Dropout before ``fc``.
    """

    head_prefixes = ("fc.",)
    ignore_pretrained: tuple[str, ...] = ()
    input_conv = "stem.0.weight"

    def __init__(self, num_classes: int, in_channels: int = 3, *, width: float = 1.0, dropout: float = 0.0) -> None:
        super().__init__()
        widths = [scale_width(c, width) for c in (64, 128, 256, 512)]
        stem_mid = scale_width(45, width)
        self.stem = nn.Sequential(
            nn.Conv3d(in_channels, stem_mid, (1, 7, 7), (1, 2, 2), (0, 3, 3), bias=False),
            nn.BatchNorm3d(stem_mid), nn.ReLU(inplace=True),
            nn.Conv3d(stem_mid, widths[0], (3, 1, 1), 1, (1, 0, 0), bias=False),
            nn.BatchNorm3d(widths[0]), nn.ReLU(inplace=True),
        )
        channels = widths[0]
        for i, out in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(_Block(channels, out, stride), _Block(out, out, 1)))
            channels = out
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool3d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map ``(N, F, T', H', W')``."""
        x = self.stem(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), ``(N, num_classes)``."""
        return self.fc(self.dropout(torch.flatten(self.avgpool(self.features(x)), 1)))


def r2plus1d(num_classes: int, in_channels: int = 1, *, width: float = 1.0, dropout: float = 0.0) -> R2Plus1D:
    """The R(2+1)D-18 video network (see :class:`R2Plus1D`)."""
    return R2Plus1D(num_classes, in_channels, width=width, dropout=dropout)
