"""Camera calibration stored with every recording.

A calibration is a JSON-serialisable dict::

    {"device": "kinect_v2",
     "depth": {"width": 512, "height": 424, "fx": 365.456, "fy": 365.456,
               "cx": 254.878, "cy": 205.395, "depth_unit_mm": 1.0},
     "rgb":   {"width": 1920, "height": 1080, "fx": 1081.37, "fy": 1081.37,
               "cx": 959.5, "cy": 539.5}}

An optional ``"depth_to_rgb": {"rotation": [[...], [...], [...]], "translation_m": [tx, ty, tz]}``
gives the extrinsics: a point ``p`` (metres) in the depth camera's frame is at ``R @ p + t`` in
the colour camera's (:mod:`deepepil.recordings.geometry` uses it to colour point clouds from
RGB; without it the two cameras are taken to share a centre).

The IR image shares the depth camera. Intrinsics differ per device; when a source
carries none, :func:`default_calibration` gives the documented Kinect v2 values scaled
to the frame size, and ``"is_default": True`` says so.
"""

from __future__ import annotations

from typing import Any

__all__ = ["KINECT_V2_DEPTH", "KINECT_V2_RGB", "default_calibration", "scale_intrinsics"]

#: Typical Kinect v2 depth/IR intrinsics (512x424), from published device readouts.
KINECT_V2_DEPTH: dict[str, float] = {
    "width": 512, "height": 424, "fx": 365.456, "fy": 365.456, "cx": 254.878, "cy": 205.395,
    "depth_unit_mm": 1.0,
}
#: Typical Kinect v2 colour intrinsics (1920x1080).
KINECT_V2_RGB: dict[str, float] = {
    "width": 1920, "height": 1080, "fx": 1081.37, "fy": 1081.37, "cx": 959.5, "cy": 539.5,
}


def scale_intrinsics(intrinsics: dict[str, float], width: int, height: int) -> dict[str, float]:
    """Return ``intrinsics`` rescaled to an image of ``width`` x ``height`` pixels."""
    sx = width / intrinsics["width"]
    sy = height / intrinsics["height"]
    out = dict(intrinsics)
    out.update(
        width=width, height=height,
        fx=intrinsics["fx"] * sx, fy=intrinsics["fy"] * sy,
        cx=(intrinsics["cx"] + 0.5) * sx - 0.5, cy=(intrinsics["cy"] + 0.5) * sy - 0.5,
    )
    return out


def default_calibration(
    depth_size: tuple[int, int] | None = (512, 424), rgb_size: tuple[int, int] | None = (1920, 1080)
) -> dict[str, Any]:
    """Kinect v2 default calibration scaled to the given ``(width, height)`` sizes."""
    cal: dict[str, Any] = {"device": "kinect_v2", "is_default": True}
    if depth_size is not None:
        cal["depth"] = scale_intrinsics(KINECT_V2_DEPTH, *depth_size)
    if rgb_size is not None:
        cal["rgb"] = scale_intrinsics(KINECT_V2_RGB, *rgb_size)
    return cal
