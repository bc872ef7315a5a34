"""Pixels of a clip: depth-based cropping of the patient, normalization, augmentation.

Cropping (:func:`patient_box`) assumes the camera looks down on the bed, as in an
epilepsy monitoring unit: the floor is the farthest large surface, the bed the largest
surface nearer than it (fitted as a plane, so a tilted camera works), and the patient
what rises above the bed. The box is found on the depth camera's grid (shared by IR and
depth) and mapped to the colour camera through both cameras' intrinsics.

Normalization maps every stream to ``[0, 1]`` first -- IR over the store's display range
with a gamma (as the labeling app shows it), depth over the display range with near =
1 and no reading = 0, colour by 255 -- then standardizes each channel with ``stats``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, Optional

import numpy as np
import torch
import torch.nn.functional as F

from deepepil.errors import ValidationError

__all__ = [
    "Box",
    "patient_box",
    "fit_box",
    "map_box_to_rgb",
    "crop",
    "resize",
    "crop_resize",
    "frame_differences",
    "standardize",
    "StreamRange",
    "stream_range",
    "to_unit",
    "Augment",
    "DEFAULT_STATS",
]

#: Mean and standard deviation of a channel after :func:`to_unit` when none were measured.
DEFAULT_STATS: tuple[float, float] = (0.5, 0.25)
_BED_GAP_MM = 150.0      # the bed is at least this much nearer than the floor
_BED_TOLERANCE_MM = 60.0  # bed pixels lie this close to the fitted bed plane
_RISE_MM = 30.0          # the patient rises at least this much above the bed plane
_GRID_PX = 80            # the patient is looked for on a grid of at most this many pixels across


@dataclasses.dataclass(frozen=True)
class Box:
    """A pixel box ``[y0, y1) x [x0, x1)``; may reach outside the image (padded with zeros when cropped)."""

    y0: float
    y1: float
    x0: float
    x1: float

    @property
    def height(self) -> float:
        return self.y1 - self.y0

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    def scaled(self, factor: float, shift_y: float = 0.0, shift_x: float = 0.0) -> "Box":
        """The box scaled by ``factor`` about its centre, moved by ``shift_*`` (fractions of its size)."""
        cy, cx = (self.y0 + self.y1) / 2, (self.x0 + self.x1) / 2
        h, w = self.height * factor, self.width * factor
        cy, cx = cy + shift_y * self.height, cx + shift_x * self.width
        return Box(cy - h / 2, cy + h / 2, cx - w / 2, cx + w / 2)


def _span(profile: np.ndarray, fraction: float) -> Optional[tuple[int, int]]:
    """The run of ``profile >= fraction * max`` around its maximum, as ``[first, last + 1)``."""
    if profile.size == 0 or profile.max() <= 0:
        return None
    on = profile >= fraction * profile.max()
    peak = int(np.argmax(profile))
    lo = peak
    while lo > 0 and on[lo - 1]:
        lo -= 1
    hi = peak
    while hi + 1 < len(on) and on[hi + 1]:
        hi += 1
    return lo, hi + 1


def _largest_component(mask: np.ndarray) -> Optional[np.ndarray]:
    """The largest 8-connected component of a small boolean mask.

    Every pixel takes the smallest label among its neighbours, then the label of the pixel its
    label names (pointer jumping), until nothing changes: a few dozen vectorised steps.
    """
    if not mask.any():
        return None
    h, w = mask.shape
    size = mask.size
    flat_mask = mask.ravel()
    labels = np.where(flat_mask, np.arange(size), size)
    lookup = np.empty(size + 1, dtype=labels.dtype)
    for _ in range(size):
        grid = np.pad(labels.reshape(h, w), 1, constant_values=size)
        spread = labels.reshape(h, w)
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                spread = np.minimum(spread, grid[dy:dy + h, dx:dx + w])
        spread = np.where(flat_mask, spread.ravel(), size)
        lookup[:size], lookup[size] = spread, size
        spread = lookup[lookup[spread]]
        if np.array_equal(spread, labels):
            break
        labels = spread
    values, counts = np.unique(labels[flat_mask], return_counts=True)
    return (labels == values[np.argmax(counts)]).reshape(h, w)


def patient_box(depth_mm: np.ndarray, *, target: str = "patient") -> Optional[Box]:
    """Where the patient (or the bed) lies in depth frames.

    Parameters
    ----------
    depth_mm : ndarray
        ``(H, W)`` or ``(N, H, W)`` depth in millimetres, 0 = no reading; several frames give
        the box that holds the patient in all of them (the bed is fitted on the first).
    target : {"patient", "bed"}
        The pixels rising above the bed plane, or the whole bed.

    Returns
    -------
    Box or None
        Tight box in depth-image pixels, or None when no bed is found (crop nothing then).
    """
    if target not in ("patient", "bed"):
        raise ValidationError(f"crop target must be 'patient' or 'bed', got {target!r}")
    frames = depth_mm[None] if depth_mm.ndim == 2 else depth_mm
    h, w = frames.shape[1:]
    step = max(1, int(math.ceil(max(h, w) / _GRID_PX)))  # a coarse grid is enough to place a box
    d = frames[:, ::step, ::step].astype(np.float32)
    valid = d > 0
    if valid.sum() < 16:
        return None
    far = float(np.percentile(d[valid], 95))
    near = valid & (d < far - _BED_GAP_MM)
    d0, near0 = d[0], near[0]
    if near0.sum() < 0.02 * d0.size:
        return None
    ys, xs = np.mgrid[0:d0.shape[0], 0:d0.shape[1]].astype(np.float32)
    # the bed is the far side of what is nearer than the floor: fit a plane, drop what rises above it
    # (patient, pillows, rails), fit again
    on_bed = near0
    for _ in range(5):
        a = np.stack([xs[on_bed], ys[on_bed], np.ones(int(on_bed.sum()), np.float32)], 1)
        plane, *_ = np.linalg.lstsq(a, d0[on_bed], rcond=None)
        bed_d = (xs * plane[0] + ys * plane[1] + plane[2]).astype(np.float32)
        keep = near0 & (d0 - bed_d > -_RISE_MM) & (d0 - bed_d < _BED_TOLERANCE_MM)
        if keep.sum() < 16 or np.array_equal(keep, on_bed):
            break
        on_bed = keep
    # the bed: the run of rows and columns mostly nearer than the floor (whatever lies on it)
    rows, cols = _span(near0.sum(1).astype(float), 0.25), _span(near0.sum(0).astype(float), 0.25)
    if rows is None or cols is None:
        return None
    y0, y1, x0, x1 = rows[0], rows[1], cols[0], cols[1]
    if target == "patient":
        above = (near & (d < bed_d - _RISE_MM)).any(0)
        above[:y0], above[y1:], above[:, :x0], above[:, x1:] = False, False, False, False
        blob = _largest_component(above)
        if blob is not None and blob.sum() >= 4:
            ys_on, xs_on = np.nonzero(blob)
            y0, y1, x0, x1 = int(ys_on.min()), int(ys_on.max()) + 1, int(xs_on.min()), int(xs_on.max()) + 1
    return Box(y0 * step, min(y1 * step, h), x0 * step, min(x1 * step, w))


def fit_box(box: Optional[Box], image_hw: tuple[int, int], out_hw: tuple[int, int], margin: float = 0.1) -> Box:
    """Grow ``box`` by ``margin`` (fraction of its size, each side) to the aspect of ``out_hw``.

    None (no box found): the whole image, grown to the output aspect.
    """
    h, w = image_hw
    if box is None:
        box, margin = Box(0, h, 0, w), 0.0
    bh, bw = box.height * (1 + 2 * margin), box.width * (1 + 2 * margin)
    aspect = out_hw[1] / out_hw[0]
    if bw / max(bh, 1e-6) < aspect:
        bw = bh * aspect
    else:
        bh = bw / aspect
    cy, cx = (box.y0 + box.y1) / 2, (box.x0 + box.x1) / 2
    return Box(cy - bh / 2, cy + bh / 2, cx - bw / 2, cx + bw / 2)


def map_box_to_rgb(box: Box, calibration: Mapping[str, Any]) -> Box:
    """The depth-image box seen in the colour image (cameras side by side, baseline neglected)."""
    d, c = calibration["depth"], calibration["rgb"]
    sx, sy = c["fx"] / d["fx"], c["fy"] / d["fy"]

    def u(x: float) -> float:
        return (x - 0.5 - d["cx"]) * sx + c["cx"] + 0.5

    def v(y: float) -> float:
        return (y - 0.5 - d["cy"]) * sy + c["cy"] + 0.5

    return Box(v(box.y0), v(box.y1), u(box.x0), u(box.x1))


def crop(frames: torch.Tensor, box: Box, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The pixels of ``box`` in ``(..., H, W)`` frames as ``dtype``, zeros where the box leaves the image."""
    h, w = frames.shape[-2:]
    y0, y1 = int(math.floor(box.y0)), int(math.ceil(box.y1))
    x0, x1 = int(math.floor(box.x0)), int(math.ceil(box.x1))
    y1, x1 = max(y1, y0 + 1), max(x1, x0 + 1)
    inner = frames[..., max(y0, 0):min(y1, h), max(x0, 0):min(x1, w)].to(dtype)
    pad = (max(0, -x0), max(0, x1 - w), max(0, -y0), max(0, y1 - h))
    return F.pad(inner, pad) if any(pad) else inner


def resize(frames: torch.Tensor, out_hw: tuple[int, int]) -> torch.Tensor:
    """``(N, C, H, W)`` frames resized to ``out_hw`` (bilinear, antialiased when shrinking)."""
    if tuple(frames.shape[-2:]) == tuple(out_hw):
        return frames.contiguous()
    shrink = frames.shape[-2] > out_hw[0] or frames.shape[-1] > out_hw[1]
    return F.interpolate(frames, size=tuple(out_hw), mode="bilinear", align_corners=False, antialias=shrink)


def crop_resize(frames: torch.Tensor, box: Box, out_hw: tuple[int, int]) -> torch.Tensor:
    """:func:`crop` then :func:`resize` of ``(N, C, H, W)`` frames."""
    return resize(crop(frames, box), out_hw)


@dataclasses.dataclass(frozen=True)
class StreamRange:
    """How one stream maps to ``[0, 1]``: a range ``(low, high)`` and, for IR, a gamma."""

    low: float
    high: float
    gamma: float = 1.0
    invert: bool = False


def stream_range(stream: str, attrs: Mapping[str, Any], ir_gamma: float = 0.5) -> StreamRange:
    """The mapping of ``stream`` for a recording with store attributes ``attrs`` (its display ranges)."""
    from deepepil.recordings.encoding import DEFAULT_DEPTH_RANGE_MM, DEFAULT_IR_RANGE

    display = attrs.get("display", {}) or {}
    if stream == "ir":
        lo, hi = display.get("ir_range") or DEFAULT_IR_RANGE
        return StreamRange(float(lo), float(hi), gamma=ir_gamma)
    if stream == "depth":
        lo, hi = display.get("depth_range_mm") or DEFAULT_DEPTH_RANGE_MM
        return StreamRange(float(lo), float(hi), invert=True)
    return StreamRange(0.0, 255.0)


def to_unit(frames: torch.Tensor, mapping: StreamRange, *, depth: bool = False) -> torch.Tensor:
    """Map raw frames (uint8/uint16 as float) to ``[0, 1]`` with ``mapping``; depth 0 (no reading) stays 0."""
    span = mapping.high - mapping.low
    if mapping.invert:
        x = ((mapping.high - frames) / span).clamp_(0.0, 1.0)
    else:
        x = ((frames - mapping.low) / span).clamp_(0.0, 1.0)
    if mapping.gamma != 1.0:
        x = x.pow_(mapping.gamma)
    if depth:
        x = x.masked_fill_(frames <= 0, 0.0)
    return x


@dataclasses.dataclass(frozen=True)
class Augment:
    """Random changes applied to each training clip (never to evaluation clips).

    Parameters
    ----------
    flip_p : float
        Probability of a horizontal flip. The patient's left becomes the right: the clip's
        target becomes its mirrored target (left and right regions and sides swapped); a
        clip whose mirrored target is not a class is not flipped.
    crop_scale : (float, float)
        Random crop: the patient box is scaled by a factor drawn from this range and moved
        by up to half the difference.
    brightness, contrast : float
        IR and colour only: add ``U(-b, b)``, and scale about the clip mean by ``U(1-c, 1+c)``,
        in the ``[0, 1]`` space. Depth is geometry and is never jittered.
    temporal_jitter_frames : int
        Move the clip start by up to this many source frames either way (the target stays).
    """

    flip_p: float = 0.5
    crop_scale: tuple[float, float] = (0.85, 1.0)
    brightness: float = 0.1
    contrast: float = 0.1
    temporal_jitter_frames: int = 2

    def __post_init__(self) -> None:
        if not 0.0 <= self.flip_p <= 1.0:
            raise ValidationError(f"flip_p must be from 0 to 1, got {self.flip_p}")
        lo, hi = self.crop_scale
        if not 0.1 <= lo <= hi <= 2.0:
            raise ValidationError(f"crop_scale must be (low, high) with 0.1 <= low <= high <= 2, got {self.crop_scale}")
        if self.brightness < 0 or self.contrast < 0 or not self.contrast < 1:
            raise ValidationError(f"brightness must be >= 0 and contrast from 0 to 1, got {self.brightness}, "
                                  f"{self.contrast}")
        if self.temporal_jitter_frames < 0:
            raise ValidationError(f"temporal_jitter_frames must be >= 0, got {self.temporal_jitter_frames}")

    # torch's generator: DataLoader seeds it per worker, so workers draw different augmentations
    def draw_shift(self) -> int:
        j = self.temporal_jitter_frames
        return int(torch.randint(-j, j + 1, ()).item()) if j else 0

    def draw_box(self, box: Box) -> Box:
        lo, hi = self.crop_scale
        scale = lo + (hi - lo) * float(torch.rand(()))
        room = max(0.0, 1.0 - scale) / 2
        sy, sx = ((torch.rand(2) * 2 - 1) * room).tolist()
        return box.scaled(scale, sy, sx)

    def draw_flip(self) -> bool:
        return bool(torch.rand(()) < self.flip_p)

    def jitter(self, x: torch.Tensor) -> torch.Tensor:
        """Brightness/contrast on a ``(T, C, H, W)`` block of one stream in ``[0, 1]``."""
        if self.contrast:
            c = 1.0 + (float(torch.rand(())) * 2 - 1) * self.contrast
            mean = x.mean()
            x = (x - mean) * c + mean
        if self.brightness:
            x = x + (float(torch.rand(())) * 2 - 1) * self.brightness
        return x.clamp_(0.0, 1.0)


def frame_differences(x: torch.Tensor) -> torch.Tensor:
    """Each frame minus the one before, for a ``(T, C, H, W)`` clip; the first frame repeats the second's.

    A clip of one frame has no motion: zeros.
    """
    if x.shape[0] < 2:
        return torch.zeros_like(x)
    d = x[1:] - x[:-1]
    return torch.cat([d[:1], d], dim=0)


def standardize(x: torch.Tensor, stats: Sequence[tuple[float, float]]) -> torch.Tensor:
    """``(x - mean) / std`` per channel of a ``(C, T, H, W)`` clip."""
    mean = torch.tensor([m for m, _ in stats], dtype=x.dtype).view(-1, 1, 1, 1)
    std = torch.tensor([s for _, s in stats], dtype=x.dtype).view(-1, 1, 1, 1)
    return (x - mean) / std
