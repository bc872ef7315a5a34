"""Building blocks shared by the video models, written once for 2D and 3D."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ConvUnit", "max_pool", "scale_width", "as_tuple"]

Size = Union[int, Sequence[int]]


def as_tuple(value: Size, dims: int) -> tuple[int, ...]:
    """``value`` repeated ``dims`` times, or checked to have ``dims`` entries."""
    if isinstance(value, int):
        return (value,) * dims
    value = tuple(int(v) for v in value)
    if len(value) != dims:
        raise ValueError(f"expected {dims} sizes, got {value}")
    return value


def scale_width(channels: int, width: float) -> int:
    """``channels`` scaled by ``width`` (at least 4)."""
    return max(4, int(round(channels * width)))


class ConvUnit(nn.Module):
    """Convolution, batch norm, ReLU; attributes ``conv`` and ``bn`` (the 2D ImageNet layout's names).

    In 3D the time axis is padded by repeating the edge frames rather than with zeros, so a
    clip that does not change over time gives, at every frame, the response of the 2D network
    whose weights were inflated into this one (zero padding would dim the first and last frames).

    Parameters
    ----------
    kernel, stride : int or tuple
        Per axis: ``(t, h, w)`` in 3D, ``(h, w)`` in 2D. Spatial padding is ``kernel // 2`` (zeros).
    dims : {2, 3}
        Image or video.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: Size, stride: Size = 1, *, dims: int = 3,
                 eps: float = 1e-3) -> None:
        super().__init__()
        self.dims = dims
        kernel, stride = as_tuple(kernel, dims), as_tuple(stride, dims)
        padding = tuple(k // 2 for k in kernel)
        if dims == 3:
            self.time_pad = ((kernel[0] - 1) // 2, kernel[0] // 2)
            padding = (0, *padding[1:])
            self.conv: nn.Module = nn.Conv3d(in_channels, out_channels, kernel, stride, padding, bias=False)
            self.bn: nn.Module = nn.BatchNorm3d(out_channels, eps=eps)
        elif dims == 2:
            self.time_pad = (0, 0)
            self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, padding, bias=False)
            self.bn = nn.BatchNorm2d(out_channels, eps=eps)
        else:
            raise ValueError(f"dims must be 2 or 3, got {dims}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(self.time_pad):
            x = F.pad(x, (0, 0, 0, 0, *self.time_pad), mode="replicate")
        return F.relu(self.bn(self.conv(x)), inplace=True)


def max_pool(kernel: Size, stride: Size, *, dims: int = 3, padding: Size = 0) -> nn.Module:
    """Max pooling with ``ceil_mode`` (the output sizes of the 2D ImageNet layout)."""
    if dims == 3:
        return nn.MaxPool3d(as_tuple(kernel, 3), as_tuple(stride, 3), as_tuple(padding, 3), ceil_mode=True)
    return nn.MaxPool2d(as_tuple(kernel, 2), as_tuple(stride, 2), as_tuple(padding, 2), ceil_mode=True)
