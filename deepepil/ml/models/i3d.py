"""I3D: Inception-v1 inflated to 3D (Carreira & Zisserman, CVPR 2017, "Quo Vadis, Action Recognition?").

The layer names are those of the common 2D Inception-v1 (GoogLeNet) ImageNet state dicts
(``conv1.conv.weight``, ``inception3a.branch2.1.bn.running_mean``, ..., ``fc.weight``), so
such a file inflates into this network key by key (:func:`deepepil.ml.weights.load_weights`).
As in I3D, the 3x3 convolutions become 3x3x3, the 7x7 stem 7x7x7 with stride 2 in time,
the first two max pools stay spatial, and the later two pool time as well. ``dims=2``
builds the 2D network itself (to make or check 2D weights).
"""

from __future__ import annotations

import torch
from torch import nn

from deepepil.ml.models._layers import ConvUnit, max_pool, scale_width

__all__ = ["InceptionV1", "i3d", "INCEPTION_BLOCKS"]

#: Inception blocks: name -> (1x1, 3x3 reduce, 3x3, second 3x3 reduce, second 3x3, pool projection).
INCEPTION_BLOCKS: dict[str, tuple[int, int, int, int, int, int]] = {
    "inception3a": (64, 96, 128, 16, 32, 32),
    "inception3b": (128, 128, 192, 32, 96, 64),
    "inception4a": (192, 96, 208, 16, 48, 64),
    "inception4b": (160, 112, 224, 24, 64, 64),
    "inception4c": (128, 128, 256, 24, 64, 64),
    "inception4d": (112, 144, 288, 32, 64, 64),
    "inception4e": (256, 160, 320, 32, 128, 128),
    "inception5a": (256, 160, 320, 32, 128, 128),
    "inception5b": (384, 192, 384, 48, 128, 128),
}


class _Inception(nn.Module):
    """Four parallel branches concatenated on channels: 1x1; 1x1 -> 3x3; 1x1 -> 3x3; pool -> 1x1."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], dims: int) -> None:
        super().__init__()
        c1, c3r, c3, c5r, c5, cp = widths
        k3 = 3 if dims == 2 else (3, 3, 3)
        self.branch1 = ConvUnit(in_channels, c1, 1, dims=dims)
        self.branch2 = nn.Sequential(ConvUnit(in_channels, c3r, 1, dims=dims), ConvUnit(c3r, c3, k3, dims=dims))
        self.branch3 = nn.Sequential(ConvUnit(in_channels, c5r, 1, dims=dims), ConvUnit(c5r, c5, k3, dims=dims))
        self.branch4 = nn.Sequential(max_pool(3, 1, dims=dims, padding=1), ConvUnit(in_channels, cp, 1, dims=dims))
        self.out_channels = c1 + c3 + c5 + cp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionV1(nn.Module):
    """Inception-v1 in 3D (I3D) or 2D.

    Parameters
    ----------
    num_classes : int
        Outputs of the final linear layer ``fc``.
    in_channels : int
        Input channels (1 for IR, 2 for IR + depth, 3 for colour, ...).
    width : float
        Multiplies every layer's channels (1.0: the published network; 0.25 a quarter as wide).
    dropout : float
        Dropout before ``fc``.
    dims : {3, 2}
        Video ``(N, C, T, H, W)`` or image ``(N, C, H, W)`` input.
    """

    #: Prefix of the classifier's parameters (left out when pretrained weights have another class count).
    head_prefixes = ("fc.",)
    #: Entries of 2D ImageNet files this network has no place for (auxiliary classifiers).
    ignore_pretrained = ("aux1.", "aux2.")
    #: The first convolution (its input channels are adapted when loading weights of another channel count).
    input_conv = "conv1.conv.weight"

    def __init__(self, num_classes: int, in_channels: int = 3, *, width: float = 1.0, dropout: float = 0.5,
                 dims: int = 3) -> None:
        super().__init__()
        if dims not in (2, 3):
            raise ValueError(f"dims must be 2 or 3, got {dims}")
        self.dims = dims

        def c(n: int) -> int:
            return scale_width(n, width)

        def k(t: int, s: int) -> tuple[int, ...]:
            return (t, s, s) if dims == 3 else (s, s)

        self.conv1 = ConvUnit(in_channels, c(64), k(7, 7), k(2, 2), dims=dims)
        self.maxpool1 = max_pool(k(1, 3), k(1, 2), dims=dims)
        self.conv2 = ConvUnit(c(64), c(64), 1, dims=dims)
        self.conv3 = ConvUnit(c(64), c(192), k(3, 3), dims=dims)
        self.maxpool2 = max_pool(k(1, 3), k(1, 2), dims=dims)
        channels = c(192)
        for name in ("inception3a", "inception3b", "maxpool3", "inception4a", "inception4b", "inception4c",
                     "inception4d", "inception4e", "maxpool4", "inception5a", "inception5b"):
            if name == "maxpool3":
                self.maxpool3 = max_pool(k(3, 3), k(2, 2), dims=dims)
            elif name == "maxpool4":
                self.maxpool4 = max_pool(k(2, 2), k(2, 2), dims=dims)
            else:
                block = _Inception(channels, tuple(c(n) for n in INCEPTION_BLOCKS[name]), dims)
                setattr(self, name, block)
                channels = block.out_channels
        self.num_features = channels
        self.avgpool = nn.AdaptiveAvgPool3d(1) if dims == 3 else nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(channels, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The last feature map, ``(N, F, T', H', W')`` (or ``(N, F, H', W')`` in 2D)."""
        x = self.maxpool1(self.conv1(x))
        x = self.maxpool2(self.conv3(self.conv2(x)))
        x = self.inception3b(self.inception3a(x))
        x = self.maxpool3(x)
        for name in ("inception4a", "inception4b", "inception4c", "inception4d", "inception4e"):
            x = getattr(self, name)(x)
        x = self.maxpool4(x)
        return self.inception5b(self.inception5a(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class scores (logits), ``(N, num_classes)``."""
        return self.fc(self.dropout(torch.flatten(self.avgpool(self.features(x)), 1)))


def i3d(num_classes: int, in_channels: int = 1, *, width: float = 1.0, dropout: float = 0.5) -> InceptionV1:
    """The I3D video network (see :class:`InceptionV1`)."""
    return InceptionV1(num_classes, in_channels, width=width, dropout=dropout, dims=3)
