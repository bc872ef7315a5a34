"""Depth to 3D: back-projection, point clouds, colour registration, lifting a clicked pixel.

Conventions (those of the Kinect SDKs and of :mod:`deepepil.synthetic`):

- **Camera frame** of the depth camera, in **metres**: ``x`` to the right of the image,
  ``y`` down the image, ``z`` along the optical axis (away from the camera).
- **Depth frames** are 2-D arrays of depth along the optical axis (``z``, not the length
  of the ray) in units of the calibration's ``depth_unit_mm`` (1 mm for Kinect v2 and
  Azure Kinect); ``0`` means no reading (a hole).
- **Pinhole intrinsics** ``fx, fy, cx, cy`` in pixels with pixel centres at integer
  coordinates (``u`` = column, ``v`` = row): a point ``(x, y, z)`` is seen at
  ``u = cx + fx * x / z``, ``v = cy + fy * y / z``. Lens distortion coefficients, when a
  calibration carries them, are ignored (a few pixels near the corners of a Kinect v2).
- **IR** comes from the depth camera itself: it is registered with depth pixel for pixel.
- **RGB** is a second camera: a 3D point ``p`` (depth frame) is ``R @ p + t`` in the colour
  camera's frame, with ``R`` and ``t`` (metres) from the calibration's optional
  ``"depth_to_rgb": {"rotation": 3x3 rows, "translation_m": [tx, ty, tz]}``. Without it
  the two cameras share their centre and axes: exact for the synthetic rig, an
  approximation for a Kinect v2 whose colour camera sits about 52 mm beside the depth
  camera (about ``fx_rgb * 0.052 / z`` pixels off, 37 px at 1.5 m in 1920x1080).
  Points are coloured by projecting them into the colour image (nearest pixel, no
  occlusion test).

>>> import numpy as np
>>> from deepepil.recordings.calibration import default_calibration
>>> cal = default_calibration((64, 53), None)
>>> depth = np.full((53, 64), 1500, dtype="uint16")
>>> cloud = point_cloud(depth, cal, stride=4)
>>> cloud.xyz_m.shape, cloud.xyz_m.dtype
((224, 3), dtype('float32'))
>>> p = lift_pixel(depth, 10.0, 20.0, cal)
>>> round(p.z_m, 3)
1.5
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from deepepil.errors import ValidationError

__all__ = [
    "Intrinsics",
    "PointCloud",
    "LiftedPoint",
    "calibration_of",
    "depth_to_rgb_transform",
    "backproject",
    "point_cloud",
    "frame_point_cloud",
    "project_points",
    "rgb_colours",
    "lift_pixel",
    "lift_pixels",
]

_CAMERAS = ("depth", "rgb")
_INTRINSIC_KEYS = ("width", "height", "fx", "fy", "cx", "cy")


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of one camera: image size and ``fx, fy, cx, cy`` in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    depth_unit_mm: float = 1.0

    @classmethod
    def from_calibration(cls, calibration: Any, camera: Literal["depth", "rgb"] = "depth") -> "Intrinsics":
        """Intrinsics of ``camera`` in ``calibration`` (a calibration dict or an opened recording)."""
        cal = calibration_of(calibration)
        if camera not in _CAMERAS:
            raise ValidationError(f"camera {camera!r} is not one of {_CAMERAS}")
        entry = cal.get(camera)
        if not isinstance(entry, Mapping):
            raise ValidationError(f"the calibration has no {camera!r} camera (it has: {sorted(cal)}); "
                                  f"see deepepil.recordings.calibration.default_calibration")
        missing = [k for k in _INTRINSIC_KEYS if k not in entry]
        if missing:
            raise ValidationError(f"the {camera!r} calibration lacks {missing}; it needs {list(_INTRINSIC_KEYS)}")
        values = {k: float(entry[k]) for k in _INTRINSIC_KEYS}
        if not (values["fx"] > 0 and values["fy"] > 0 and values["width"] >= 1 and values["height"] >= 1):
            raise ValidationError(f"the {camera!r} calibration needs fx, fy > 0 and a positive size, got {values}")
        return cls(int(values["width"]), int(values["height"]), values["fx"], values["fy"], values["cx"],
                   values["cy"], float(entry.get("depth_unit_mm", 1.0)))

    @property
    def shape(self) -> tuple[int, int]:
        """``(height, width)`` of this camera's frames."""
        return self.height, self.width

    def project(self, points_m: np.ndarray) -> np.ndarray:
        """Pixel coordinates ``(..., 2)`` (u, v) of camera-frame points ``(..., 3)``; NaN behind the camera."""
        p = np.asarray(points_m, dtype="float64")
        z = p[..., 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            zi = np.where(z > 0, 1.0 / z, np.nan)
        return np.stack([self.cx + self.fx * p[..., 0] * zi, self.cy + self.fy * p[..., 1] * zi], axis=-1)


@dataclass(frozen=True)
class PointCloud:
    """Points back-projected from one depth frame.

    Attributes
    ----------
    xyz_m : numpy.ndarray
        ``(N, 3)`` float32 depth-camera coordinates, metres.
    uv_px : numpy.ndarray
        ``(N, 2)`` int32 depth pixel (column, row) each point came from (for a voxel,
        the first of its pixels).
    ir : numpy.ndarray or None
        ``(N,)`` infrared intensity of each point (the IR frame's dtype; float32 mean per voxel).
    rgb : numpy.ndarray or None
        ``(N, 3)`` uint8 colour from the RGB frame.
    """

    xyz_m: np.ndarray
    uv_px: np.ndarray
    ir: np.ndarray | None = None
    rgb: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.xyz_m)


@dataclass(frozen=True)
class LiftedPoint:
    """A clicked pixel lifted to 3D (see :func:`lift_pixel`).

    ``x_m, y_m, z_m`` lie on the ray through the clicked ``(u, v)`` at the depth read at
    ``source_px``; ``distance_px`` is 0 when the clicked pixel had a reading itself.
    """

    x_m: float
    y_m: float
    z_m: float
    depth_mm: float
    source_px: tuple[int, int]
    distance_px: float

    @property
    def xyz_m(self) -> np.ndarray:
        """``(3,)`` float64 camera-frame position, metres."""
        return np.array([self.x_m, self.y_m, self.z_m])


# -- inputs ------------------------------------------------------------------------------------


def calibration_of(source: Any) -> dict[str, Any]:
    """The calibration dict of ``source``: a calibration dict, or an opened recording (its ``attrs``)."""
    attrs = getattr(source, "attrs", None)
    if isinstance(attrs, Mapping) and hasattr(source, "data_vars"):  # an xarray Dataset is a Mapping too
        if "calibration" not in attrs:
            raise ValidationError("this recording carries no calibration in its attrs; pass a calibration dict "
                                  "(deepepil.recordings.calibration.default_calibration gives the Kinect v2 one)")
        source = attrs["calibration"]
    if not isinstance(source, Mapping):
        raise ValidationError(f"calibration must be a dict (or an opened recording), got {type(source).__name__}")
    return dict(source)


def _depth_frame(depth: Any, intr: Intrinsics) -> np.ndarray:
    """``depth`` as a 2-D float32 array in millimetres (NaN for holes), checked against ``intr``."""
    a = np.asarray(depth)
    if a.ndim != 2:
        raise ValidationError(f"a depth frame must be 2-D (height, width), got shape {a.shape}; "
                              f"take one frame, e.g. ds.depth[frame_index]")
    if a.dtype.kind not in "uif":
        raise ValidationError(f"a depth frame must hold integers (uint16 as stored) or floats in depth units, "
                              f"got dtype {a.dtype}")
    if a.shape != intr.shape:
        raise ValidationError(f"the depth frame is {a.shape[0]}x{a.shape[1]} (rows x columns) but the calibration's "
                              f"depth camera is {intr.height}x{intr.width}; use the recording's own calibration, "
                              f"or rescale it with deepepil.recordings.calibration.scale_intrinsics")
    mm = a.astype("float32") * np.float32(intr.depth_unit_mm)
    mm[~(mm > 0)] = np.nan  # 0, negative and NaN: no reading
    return mm


def _image(image: Any, intr: Intrinsics, name: str, channels: int | None) -> np.ndarray:
    a = np.asarray(image)
    want = intr.shape if channels is None else (*intr.shape, channels)
    if a.shape != want:
        raise ValidationError(f"the {name} frame has shape {a.shape}, expected {want} "
                              f"(the calibration's {'depth' if name == 'ir' else 'rgb'} camera)")
    return a


def _roi(roi_px: Any, intr: Intrinsics) -> tuple[int, int, int, int]:
    if roi_px is None:
        return 0, intr.width, 0, intr.height
    try:
        u0, u1, v0, v1 = (int(x) for x in roi_px)
    except (TypeError, ValueError):
        raise ValidationError(f"roi_px must be (u0, u1, v0, v1) pixel bounds (end exclusive), got {roi_px!r}") from None
    u0, v0 = max(u0, 0), max(v0, 0)
    u1, v1 = min(u1, intr.width), min(v1, intr.height)
    if u0 >= u1 or v0 >= v1:
        raise ValidationError(f"roi_px {tuple(roi_px)} selects no pixel of the {intr.width}x{intr.height} depth "
                              f"image; give (u0, u1, v0, v1) with u0 < u1 <= width and v0 < v1 <= height")
    return u0, u1, v0, v1


def _positive_int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValidationError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


# -- back-projection ---------------------------------------------------------------------------


def backproject(depth: Any, calibration: Any) -> np.ndarray:
    """Every depth pixel as a 3D point: ``(height, width, 3)`` float32 metres, NaN at holes.

    Parameters
    ----------
    depth : array-like
        One depth frame ``(height, width)`` (uint16 as stored, 0 = no reading).
    calibration : dict or xarray.Dataset
        The recording's calibration (``ds.attrs["calibration"]``) or the opened recording.
    """
    intr = Intrinsics.from_calibration(calibration, "depth")
    z_m = _depth_frame(depth, intr) * np.float32(1e-3)
    u = np.arange(intr.width, dtype="float32") - np.float32(intr.cx)
    v = np.arange(intr.height, dtype="float32") - np.float32(intr.cy)
    return np.stack([u[None, :] * (z_m / np.float32(intr.fx)), v[:, None] * (z_m / np.float32(intr.fy)), z_m],
                    axis=-1)


def depth_to_rgb_transform(calibration: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(R, t_m)`` taking depth-camera points into the colour camera's frame (identity when absent)."""
    cal = calibration_of(calibration)
    ext = cal.get("depth_to_rgb")
    if ext is None:
        return np.eye(3), np.zeros(3)
    try:
        rotation = np.asarray(ext["rotation"], dtype="float64").reshape(3, 3)
        translation = np.asarray(ext["translation_m"], dtype="float64").reshape(3)
    except (KeyError, TypeError, ValueError):
        raise ValidationError('calibration["depth_to_rgb"] must be {"rotation": 3x3 rows, "translation_m": '
                              f"[tx, ty, tz]}}, got {ext!r}") from None
    return rotation, translation


def project_points(points_m: Any, calibration: Any, camera: Literal["depth", "rgb"] = "depth") -> np.ndarray:
    """Pixel coordinates ``(N, 2)`` (u, v) in ``camera`` of depth-camera points ``(N, 3)`` (metres).

    Points behind the camera give NaN. For ``"rgb"`` the points go through
    :func:`depth_to_rgb_transform` first.
    """
    p = np.asarray(points_m, dtype="float64")
    if p.ndim == 0 or p.shape[-1] != 3:
        raise ValidationError(f"points must have shape (..., 3) (x, y, z metres), got {p.shape}")
    intr = Intrinsics.from_calibration(calibration, camera)
    if camera == "rgb":
        rotation, translation = depth_to_rgb_transform(calibration)
        p = p @ rotation.T + translation
    return intr.project(p)


def rgb_colours(points_m: Any, rgb: Any, calibration: Any) -> tuple[np.ndarray, np.ndarray]:
    """Colour of depth-camera points from an RGB frame.

    Returns
    -------
    colours : numpy.ndarray
        ``(N, 3)`` uint8, the nearest colour pixel; black where ``inside`` is False.
    inside : numpy.ndarray
        ``(N,)`` bool, the point projects into the colour image.
    """
    intr = Intrinsics.from_calibration(calibration, "rgb")
    image = _image(rgb, intr, "rgb", 3)
    uv = project_points(points_m, calibration, "rgb")
    with np.errstate(invalid="ignore"):
        iu = np.floor(uv[:, 0] + 0.5)
        iv = np.floor(uv[:, 1] + 0.5)
        inside = (iu >= 0) & (iu < intr.width) & (iv >= 0) & (iv < intr.height)
    colours = np.zeros((len(uv), 3), dtype="uint8")
    colours[inside] = image[iv[inside].astype("intp"), iu[inside].astype("intp")]
    return colours, inside


def point_cloud(depth: Any, calibration: Any, *, ir: Any = None, rgb: Any = None, stride: int = 1,
                voxel_m: float | None = None, roi_px: tuple[int, int, int, int] | None = None,
                box_m: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None) -> PointCloud:
    """The valid pixels of one depth frame as 3D points, optionally coloured, downsampled and cropped.

    Parameters
    ----------
    depth : array-like
        Depth frame ``(height, width)``; holes (0) are dropped.
    calibration : dict or xarray.Dataset
        The recording's calibration, or the opened recording.
    ir : array-like, optional
        IR frame of the same time (pixel-registered with depth): ``PointCloud.ir``.
    rgb : array-like, optional
        RGB frame ``(H, W, 3)`` of the same time: ``PointCloud.rgb``; points that fall
        outside the colour image are dropped.
    stride : int
        Keep every ``stride``-th pixel in both directions (4 keeps 1/16 of the points).
    voxel_m : float, optional
        Average the points (and colours) falling in each cube of this edge (metres).
    roi_px : (u0, u1, v0, v1), optional
        Crop to image columns ``u0 <= u < u1`` and rows ``v0 <= v < v1`` first.
    box_m : ((x0, y0, z0), (x1, y1, z1)), optional
        Keep points inside this camera-frame box (metres, bounds included).
    """
    intr = Intrinsics.from_calibration(calibration, "depth")
    mm = _depth_frame(depth, intr)
    stride = _positive_int(stride, "stride")
    u0, u1, v0, v1 = _roi(roi_px, intr)
    us = np.arange(u0, u1, stride, dtype="int32")
    vs = np.arange(v0, v1, stride, dtype="int32")
    z_m = mm[v0:v1:stride, u0:u1:stride] * np.float32(1e-3)
    valid = np.isfinite(z_m)
    vv, uu = np.nonzero(valid)
    u_px, v_px = us[uu], vs[vv]
    z = z_m[vv, uu]
    x = (u_px.astype("float32") - np.float32(intr.cx)) * (z / np.float32(intr.fx))
    y = (v_px.astype("float32") - np.float32(intr.cy)) * (z / np.float32(intr.fy))
    xyz = np.stack([x, y, z], axis=1)
    uv = np.stack([u_px, v_px], axis=1)
    keep = np.ones(len(xyz), dtype=bool)
    if box_m is not None:
        try:
            lo, hi = (np.asarray(c, dtype="float32").reshape(3) for c in box_m)
        except (TypeError, ValueError):
            raise ValidationError(f"box_m must be ((x0, y0, z0), (x1, y1, z1)) in metres, got {box_m!r}") from None
        keep &= np.all((xyz >= lo) & (xyz <= hi), axis=1)
    ir_values = rgb_values = None
    if ir is not None:
        ir_values = _image(ir, intr, "ir", None)[v_px, u_px]
    if rgb is not None:
        rgb_values, inside = rgb_colours(xyz, rgb, calibration)
        keep &= inside
    if not keep.all():
        xyz, uv = xyz[keep], uv[keep]
        ir_values = None if ir_values is None else ir_values[keep]
        rgb_values = None if rgb_values is None else rgb_values[keep]
    if voxel_m is not None:
        return _voxel_average(xyz, uv, ir_values, rgb_values, voxel_m)
    return PointCloud(xyz, uv, ir_values, rgb_values)


def _voxel_average(xyz: np.ndarray, uv: np.ndarray, ir: np.ndarray | None, rgb: np.ndarray | None,
                   voxel_m: float) -> PointCloud:
    if not (isinstance(voxel_m, (int, float, np.floating)) and math.isfinite(voxel_m) and voxel_m > 0):
        raise ValidationError(f"voxel_m must be a positive number of metres (e.g. 0.01), got {voxel_m!r}")
    if len(xyz) == 0:
        return PointCloud(xyz, uv, None if ir is None else ir.astype("float32"), rgb)
    cells = np.floor(xyz / np.float32(voxel_m)).astype("int64")
    cells -= cells.min(axis=0)
    span = cells.max(axis=0) + 1
    keys = (cells[:, 0] * span[1] + cells[:, 1]) * span[2] + cells[:, 2]  # one integer per voxel
    _, first, inverse, counts = np.unique(keys, return_index=True, return_inverse=True, return_counts=True)

    def mean(values: np.ndarray) -> np.ndarray:
        columns = values.reshape(len(values), -1)
        sums = np.stack([np.bincount(inverse, weights=c, minlength=len(counts)) for c in columns.T], axis=1)
        return (sums / counts[:, None]).reshape(len(counts), *values.shape[1:])

    out_ir = None if ir is None else mean(ir.astype("float64")).astype("float32")
    out_rgb = None if rgb is None else np.rint(mean(rgb.astype("float64"))).astype("uint8")
    return PointCloud(mean(xyz.astype("float64")).astype("float32"), uv[first], out_ir, out_rgb)


def frame_point_cloud(ds: Any, frame_index: int, *, colour: Literal["ir", "rgb"] | None = "ir",
                      **kwargs: Any) -> PointCloud:
    """:func:`point_cloud` of frame ``frame_index`` of an opened recording (``deepepil.open_recording``).

    ``colour`` picks the frame that colours the points (``None``: none); other keyword
    arguments go to :func:`point_cloud`.
    """
    if colour not in ("ir", "rgb", None):
        raise ValidationError(f"colour must be 'ir', 'rgb' or None, got {colour!r}")
    if "depth" not in getattr(ds, "data_vars", {}):
        raise ValidationError("this recording has no depth stream; a point cloud needs one")
    n = int(ds.sizes["time"])
    if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) or not 0 <= frame_index < n:
        raise ValidationError(f"frame_index must be an integer in 0..{n - 1}, got {frame_index!r}")
    extra = {}
    if colour is not None:
        if colour not in ds.data_vars:
            raise ValidationError(f"this recording has no {colour!r} stream (streams: {sorted(ds.data_vars)})")
        extra[colour] = ds[colour][int(frame_index)].values
    return point_cloud(ds.depth[int(frame_index)].values, ds, **extra, **kwargs)


# -- lifting a click ---------------------------------------------------------------------------


def _check_radius(search_radius_px: Any) -> int:
    if isinstance(search_radius_px, bool) or not isinstance(search_radius_px, (int, np.integer)) \
            or search_radius_px < 0:
        raise ValidationError(f"search_radius_px must be an integer >= 0, got {search_radius_px!r}")
    return int(search_radius_px)


def _nearest_reading(mm: np.ndarray, u: float, v: float, r: int) -> tuple[float, int, int, float] | None:
    """``(depth_mm, u, v, distance_px)`` of the nearest reading to ``(u, v)`` within ``r`` pixels."""
    height, width = mm.shape
    iu, iv = int(math.floor(u + 0.5)), int(math.floor(v + 0.5))
    u0, u1 = max(iu - r, 0), min(iu + r + 1, width)
    v0, v1 = max(iv - r, 0), min(iv + r + 1, height)
    window = mm[v0:v1, u0:u1]
    dv, du = np.mgrid[v0 - iv:v1 - iv, u0 - iu:u1 - iu]
    dist = np.hypot(du, dv)
    ok = np.isfinite(window) & (dist <= r + 1e-9)
    if not ok.any():
        return None
    order = np.lexsort((np.where(ok, window, np.inf).ravel(), np.where(ok, dist, np.inf).ravel()))
    sv, su = divmod(int(order[0]), window.shape[1])
    return float(window[sv, su]), u0 + su, v0 + sv, float(dist[sv, su])


def _in_image(intr: Intrinsics, u: float, v: float) -> bool:
    return -0.5 <= u < intr.width - 0.5 and -0.5 <= v < intr.height - 0.5


def _ray_point(intr: Intrinsics, u: float, v: float, depth_mm: float) -> tuple[float, float, float]:
    """The camera-frame point (metres) on the ray through ``(u, v)`` at depth ``depth_mm``."""
    z = depth_mm * 1e-3
    return (u - intr.cx) / intr.fx * z, (v - intr.cy) / intr.fy * z, z


def lift_pixel(depth: Any, u: float, v: float, calibration: Any, *, search_radius_px: int = 3) -> LiftedPoint:
    """Lift a clicked image position to 3D through the depth frame.

    The depth is read at the pixel containing ``(u, v)``; when that pixel is a hole, at
    the nearest pixel with a reading within ``search_radius_px`` (ties go to the one
    nearest the camera: holes gather on the far side of depth edges). The point lies on
    the ray through ``(u, v)`` itself, so it projects back exactly onto the click.

    Parameters
    ----------
    depth : array-like
        Depth frame ``(height, width)`` of the clicked frame.
    u, v : float
        Clicked position in depth-image pixels (column, row; pixel centres at integers).
    calibration : dict or xarray.Dataset
        The recording's calibration, or the opened recording.
    search_radius_px : int
        How far (pixels, Euclidean) to look for a reading around a hole; 0 for none.

    Raises
    ------
    deepepil.errors.ValidationError
        ``(u, v)`` is outside the image, or no pixel within the radius has a reading.
    """
    intr = Intrinsics.from_calibration(calibration, "depth")
    mm = _depth_frame(depth, intr)
    r = _check_radius(search_radius_px)
    try:
        u, v = float(u), float(v)
    except (TypeError, ValueError):
        raise ValidationError(f"u and v must be numbers (pixels), got {u!r}, {v!r}") from None
    if not _in_image(intr, u, v):
        raise ValidationError(f"pixel ({u:g}, {v:g}) is outside the {intr.width}x{intr.height} depth image; "
                              f"u must be in [-0.5, {intr.width - 0.5}) and v in [-0.5, {intr.height - 0.5})")
    found = _nearest_reading(mm, u, v, r)
    if found is None:
        raise ValidationError(
            f"no depth reading within {r} px of pixel ({u:g}, {v:g}): the sensor gave none there (a hole, "
            f"e.g. at a depth edge); click on a nearby surface or pass a larger search_radius_px")
    depth_mm, su, sv, distance_px = found
    x, y, z = _ray_point(intr, u, v, depth_mm)
    return LiftedPoint(x_m=x, y_m=y, z_m=z, depth_mm=depth_mm, source_px=(su, sv), distance_px=distance_px)


def lift_pixels(depth: Any, uv_px: Any, calibration: Any, *, search_radius_px: int = 3
                ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`lift_pixel` for many positions on one frame, without raising for holes.

    Returns
    -------
    xyz_m : numpy.ndarray
        ``(N, 3)`` float64 metres; NaN where the position is outside the image or no
        reading lies within the radius.
    distance_px : numpy.ndarray
        ``(N,)`` how far from each position the depth was read (NaN where none).
    """
    intr = Intrinsics.from_calibration(calibration, "depth")
    mm = _depth_frame(depth, intr)
    r = _check_radius(search_radius_px)
    uv = np.asarray(uv_px, dtype="float64")
    if uv.ndim != 2 or uv.shape[1] != 2:
        raise ValidationError(f"uv_px must have shape (N, 2) (u, v pixels), got {uv.shape}")
    xyz = np.full((len(uv), 3), np.nan)
    distance = np.full(len(uv), np.nan)
    for i, (u, v) in enumerate(uv):
        found = _nearest_reading(mm, u, v, r) if _in_image(intr, u, v) else None
        if found is not None:
            xyz[i] = _ray_point(intr, u, v, found[0])
            distance[i] = found[3]
    return xyz, distance
