"""Encode one frame of a recording into bytes a browser displays (JPEG, PNG, WebP).

IR is mapped to 8 bits over a stated intensity range with a gamma; depth goes through
a perceptual colormap (viridis: near is bright, far is dark) over a stated range in
millimetres, with missing readings (0) drawn black. When no range is given the one
measured at ingest (``ds.attrs["display"]``) is used, else the Kinect v2 defaults.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import xarray as xr
from PIL import Image

from deepepil.recordings.framereader import read_frame, stored_jpeg

__all__ = ["encode_frame", "frame_to_rgb8", "colorize_depth", "scale_ir", "DEFAULT_DEPTH_RANGE_MM", "DEFAULT_IR_RANGE"]

#: Kinect v2 operating range, used when neither the caller nor the store states one.
DEFAULT_DEPTH_RANGE_MM: tuple[float, float] = (500.0, 4500.0)
#: Typical Kinect IR intensities.
DEFAULT_IR_RANGE: tuple[float, float] = (0.0, 3000.0)
FORMATS = ("jpeg", "png", "webp")

# viridis sampled at 9 evenly spaced points (matplotlib's published colormap data)
_VIRIDIS_ANCHORS = np.array(
    [
        (68, 1, 84), (72, 36, 117), (59, 82, 139), (44, 114, 142), (33, 145, 140),
        (40, 174, 128), (94, 201, 98), (170, 220, 50), (253, 231, 37),
    ],
    dtype=np.float64,
)
_x = np.linspace(0.0, 1.0, len(_VIRIDIS_ANCHORS))
_t = np.linspace(0.0, 1.0, 256)
VIRIDIS_LUT: np.ndarray = np.stack(
    [np.interp(_t, _x, _VIRIDIS_ANCHORS[:, c]) for c in range(3)], axis=1
).round().astype(np.uint8)


def _check_range(name: str, value: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not hi > lo:
        raise ValueError(f"{name} must be (low, high) with high > low, got {value!r}")
    return lo, hi


def colorize_depth(depth_mm: np.ndarray, depth_range_mm: tuple[float, float] = DEFAULT_DEPTH_RANGE_MM) -> np.ndarray:
    """Map a uint16 depth image (mm) to uint8 RGB with viridis; 0 (no reading) is black."""
    lo, hi = _check_range("depth_range_mm", depth_range_mm)
    d = depth_mm.astype(np.float32)
    level = np.clip((hi - d) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8)  # near = bright
    rgb = VIRIDIS_LUT[level]
    rgb[depth_mm == 0] = 0
    return rgb


def scale_ir(ir: np.ndarray, ir_range: tuple[float, float] = DEFAULT_IR_RANGE, gamma: float = 0.5) -> np.ndarray:
    """Map a uint16 IR image to uint8 grey over ``ir_range`` with ``gamma``."""
    lo, hi = _check_range("ir_range", ir_range)
    x = np.clip((ir.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)
    return (np.power(x, gamma) * 255.0 + 0.5).astype(np.uint8)


def frame_to_rgb8(
    ds: xr.Dataset,
    stream: str,
    index: int,
    *,
    depth_range_mm: tuple[float, float] | None = None,
    ir_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Return frame ``index`` of ``stream`` as a displayable uint8 image (H, W) or (H, W, 3)."""
    data = read_frame(ds, stream, index)
    display = ds.attrs.get("display", {})
    if stream == "depth":
        return colorize_depth(data, tuple(depth_range_mm or display.get("depth_range_mm") or DEFAULT_DEPTH_RANGE_MM))
    if stream == "ir":
        return scale_ir(data, tuple(ir_range or display.get("ir_range") or DEFAULT_IR_RANGE))
    return data


def encode_frame(
    dataset: xr.Dataset,
    stream: str,
    index: int,
    format: Literal["jpeg", "png", "webp"] = "jpeg",
    *,
    quality: int = 85,
    depth_range_mm: tuple[float, float] | None = None,
    ir_range: tuple[float, float] | None = None,
) -> bytes:
    """Encode frame ``index`` of ``stream`` as image bytes ready for a browser.

    Parameters
    ----------
    dataset : xarray.Dataset
        A recording from :func:`deepepil.open_recording`.
    stream : {"rgb", "ir", "depth"}
        The stream.
    index : int
        Frame index (``time`` position).
    format : {"jpeg", "png", "webp"}
        Image format; PNG is lossless.
    quality : int
        JPEG/WebP quality, 1 to 100. A colour frame the store holds as JPEG is returned as
        stored (its ingest quality), skipping a decode and a re-encode.
    depth_range_mm, ir_range : (low, high), optional
        Display ranges; default: measured at ingest, else the Kinect v2 defaults
        (:data:`DEFAULT_DEPTH_RANGE_MM`, :data:`DEFAULT_IR_RANGE`).

    Returns
    -------
    bytes
        The encoded image.
    """
    if format not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be from 1 to 100, got {quality}")
    if format == "jpeg" and stream == "rgb" and (stored := stored_jpeg(dataset, stream, index)) is not None:
        return stored  # the colour frame as ingested (JPEG): no decode and re-encode
    pixels = frame_to_rgb8(dataset, stream, index, depth_range_mm=depth_range_mm, ir_range=ir_range)
    buf = io.BytesIO()
    image = Image.fromarray(pixels)
    if format == "png":
        image.save(buf, "PNG", compress_level=1)
    else:
        image.save(buf, format.upper(), quality=quality)
    return buf.getvalue()
