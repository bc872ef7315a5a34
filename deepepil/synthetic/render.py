"""Ray casting the scene into depth, infrared and colour images.

Each pinhole camera keeps its unit ray directions; a frame starts from the cached
static scene (floor, bed, pillow, rails) and every body solid is intersected
analytically only inside its projected bounding box, keeping the nearest hit per
pixel (a G-buffer of depth, normal and material). Shading then turns the G-buffer
into sensor-like images:

- depth: millimetres along the optical axis with depth-dependent Gaussian noise,
  quantisation in inverse depth (like a disparity-based sensor), and holes (0) at
  depth edges, at grazing angles and scattered at random;
- infrared: active illumination from the camera, falling with distance squared and
  with the angle of incidence, with shot-like noise;
- colour: Lambert shading of material colours under a ceiling light, with noise,
  rendered at a lower internal resolution and upsampled when the image is large.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from deepepil.recordings.calibration import scale_intrinsics
from deepepil.recordings.geometry import Intrinsics
from deepepil.synthetic.patient import PatientProfile
from deepepil.synthetic.scene import (
    BED_CENTER_XY_M,
    BED_LENGTH_M,
    BED_TOP_DEPTH_M,
    BED_WIDTH_M,
    FLOOR_DEPTH_M,
    MAT,
    MATERIALS,
    Capsule,
    Ellipsoid,
)

__all__ = ["Camera", "GBuffer", "Renderer", "RGB_MAX_INTERNAL_WIDTH"]

#: Colour images wider than this are rendered smaller and upsampled.
RGB_MAX_INTERNAL_WIDTH = 960

#: Infrared albedo per material (see :data:`~deepepil.synthetic.scene.MATERIALS`).
_IR_ALBEDO = {"floor": 0.35, "sheet": 0.78, "pillow": 0.82, "rail": 0.30, "blanket": 0.65,
              "skin": 0.55, "gown": 0.70, "trousers": 0.60}
#: Infrared intensity of a white surface facing the camera at 1 m.
_IR_GAIN = 4200.0
_STATIC_RGB = {"floor": (0.46, 0.43, 0.38), "sheet": (0.86, 0.89, 0.92),
               "pillow": (0.95, 0.95, 0.93), "rail": (0.28, 0.33, 0.50)}
#: Inverse-depth quantisation: depth steps are ``z**2 / _DISPARITY_SCALE_M`` metres.
_DISPARITY_SCALE_M = 1500.0
_EDGE_JUMP_M = 0.03
_RGB_AMBIENT = 0.38
#: Colour light levels per unit of illumination (255 levels reach 1.275).
_RGB_LEVELS_PER_UNIT = 200.0
_NOISE_MARGIN = 64
_TAG_RGB_NOISE = 5


@dataclass(frozen=True)
class Camera(Intrinsics):
    """A pinhole camera (:class:`~deepepil.recordings.geometry.Intrinsics`) with its unit ray directions."""

    @functools.cached_property
    def rays(self) -> np.ndarray:
        """``(3, H, W)`` float32 unit ray directions."""
        u = (np.arange(self.width, dtype="float64") - self.cx) / self.fx
        v = (np.arange(self.height, dtype="float64") - self.cy) / self.fy
        x, y = np.meshgrid(u, v)
        norm = np.sqrt(x * x + y * y + 1.0)
        return np.stack([x / norm, y / norm, 1.0 / norm]).astype("float32")

    @classmethod
    def from_intrinsics(cls, intrinsics: dict, width: int | None = None,
                        height: int | None = None) -> "Camera":
        """Camera of a calibration entry, optionally rescaled to ``width`` x ``height``."""
        w = width or int(intrinsics["width"])
        h = height or int(intrinsics["height"])
        scaled = scale_intrinsics(intrinsics, w, h)
        return cls(w, h, scaled["fx"], scaled["fy"], scaled["cx"], scaled["cy"])

    def bbox(self, center: np.ndarray, radius_m: float) -> tuple[int, int, int, int] | None:
        """Pixel box ``(u0, u1, v0, v1)`` holding the projection of a sphere, or None."""
        x, y, z = (float(c) for c in center)
        near = max(z - radius_m, 0.05)
        far = z + radius_m
        us = [self.cx + self.fx * (x + sgn * radius_m) / d for sgn in (-1, 1) for d in (near, far)]
        vs = [self.cy + self.fy * (y + sgn * radius_m) / d for sgn in (-1, 1) for d in (near, far)]
        u0, u1 = max(int(np.floor(min(us))), 0), min(int(np.ceil(max(us))) + 1, self.width)
        v0, v1 = max(int(np.floor(min(vs))), 0), min(int(np.ceil(max(vs))) + 1, self.height)
        if u0 >= u1 or v0 >= v1:
            return None
        return u0, u1, v0, v1


@dataclass
class GBuffer:
    """Nearest surface per pixel: depth along the optical axis (m), normal, material."""

    z: np.ndarray  # (H, W) float32
    normal: np.ndarray  # (3, H, W) float32
    material: np.ndarray  # (H, W) uint8

    def copy(self) -> "GBuffer":
        return GBuffer(self.z.copy(), self.normal.copy(), self.material.copy())


def _capsule_hits(rays: np.ndarray, prim: Capsule) -> tuple[np.ndarray, tuple]:
    """Ray parameter (inf on a miss) and the pieces of the normal for a capsule."""
    ux, uy, uz = rays
    a = np.asarray(prim.a, dtype="float64")
    ba = np.asarray(prim.b, dtype="float64") - a
    oa = -a
    r = float(prim.radius_m)
    baba = float(ba @ ba)
    if baba < 1e-12:
        ba = np.array([0.0, 0.0, 1e-6])
        baba = float(ba @ ba)
    baoa, oaoa = float(ba @ oa), float(oa @ oa)
    bx, by, bz = (float(v) for v in ba)
    ox, oy, oz = (float(v) for v in oa)
    bard = ux * bx + uy * by + uz * bz
    rdoa = ux * ox + uy * oy + uz * oz
    qa = baba - bard * bard
    qb = baba * rdoa - baoa * bard
    qc = baba * oaoa - baoa * baoa - r * r * baba
    h = qb * qb - qa * qc
    hit = h >= 0
    t = (-qb - np.sqrt(np.maximum(h, 0))) / np.maximum(qa, 1e-12)
    y = baoa + t * bard
    body = hit & (y > 0) & (y < baba)
    cap_a = y <= 0
    obob = oaoa - 2 * baoa + baba
    b2 = np.where(cap_a, rdoa, rdoa - bard)
    c2 = np.where(cap_a, oaoa, obob) - r * r
    h2 = b2 * b2 - c2
    t_cap = -b2 - np.sqrt(np.maximum(h2, 0))
    t = np.where(body, t, np.where(hit & (h2 > 0), t_cap, np.inf))
    return t, (bard, baoa, baba, ba, oa, r)


def _capsule_normal(rays: np.ndarray, t: np.ndarray, parts: tuple) -> list[np.ndarray]:
    bard, baoa, baba, ba, oa, r = parts
    s = np.clip((baoa + t * bard) * (1.0 / baba), 0.0, 1.0)
    return [(t * rays[k] + float(oa[k]) - s * float(ba[k])) * (1.0 / r) for k in range(3)]


def _ellipsoid_hits(rays: np.ndarray, prim: Ellipsoid) -> tuple[np.ndarray, tuple]:
    axes = np.asarray(prim.axes, dtype="float64")
    radii = np.asarray(prim.radii_m, dtype="float64")
    o = (axes @ -np.asarray(prim.center, dtype="float64")) / radii
    d = [(float(axes[k, 0]) * rays[0] + float(axes[k, 1]) * rays[1]
          + float(axes[k, 2]) * rays[2]) * float(1.0 / radii[k]) for k in range(3)]
    qa = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
    qb = float(o[0]) * d[0] + float(o[1]) * d[1] + float(o[2]) * d[2]
    qc = float(o @ o) - 1.0
    h = qb * qb - qa * qc
    t = np.where(h >= 0, (-qb - np.sqrt(np.maximum(h, 0))) / qa, np.inf)
    return t, (o, d, axes, radii)


def _ellipsoid_normal(rays: np.ndarray, t: np.ndarray, parts: tuple) -> list[np.ndarray]:
    o, d, axes, radii = parts
    g = [(float(o[k]) + t * d[k]) * float(1.0 / radii[k]) for k in range(3)]
    n = [g[0] * float(axes[0, c]) + g[1] * float(axes[1, c]) + g[2] * float(axes[2, c])
         for c in range(3)]
    inv = 1.0 / np.sqrt(n[0] * n[0] + n[1] * n[1] + n[2] * n[2] + 1e-12)
    return [c * inv for c in n]


def _draw(gb: GBuffer, cam: Camera, prim: Capsule | Ellipsoid) -> None:
    """Z-test one solid into ``gb`` inside its bounding box."""
    if isinstance(prim, Capsule):
        center = (np.asarray(prim.a) + np.asarray(prim.b)) / 2
        radius = float(np.linalg.norm(np.asarray(prim.b) - np.asarray(prim.a))) / 2 + prim.radius_m
    else:
        center, radius = np.asarray(prim.center), float(np.max(prim.radii_m))
    box = cam.bbox(center, radius)
    if box is None:
        return
    u0, u1, v0, v1 = box
    rays = cam.rays[:, v0:v1, u0:u1]
    if isinstance(prim, Capsule):
        t, parts = _capsule_hits(rays, prim)
    else:
        t, parts = _ellipsoid_hits(rays, prim)
    z = t * rays[2]
    zb = gb.z[v0:v1, u0:u1]
    closer = z < zb
    if not closer.any():
        return
    t = np.where(closer, t, 0.0).astype("float32")
    normal = (_capsule_normal if isinstance(prim, Capsule) else _ellipsoid_normal)(rays, t, parts)
    np.copyto(zb, z, where=closer)
    for k in range(3):
        np.copyto(gb.normal[k, v0:v1, u0:u1], normal[k], where=closer)
    gb.material[v0:v1, u0:u1][closer] = prim.material


def _box_blur(a: np.ndarray, k: int) -> np.ndarray:
    """Mean over a ``(2k+1)``-pixel square, edges repeated (float32)."""
    if k < 1:
        return a
    offset = float(a.mean())
    p = np.pad(a.astype("float32") - offset, k + 1, mode="edge")
    p[0], p[:, 0] = 0.0, 0.0  # the leading zero row/column makes window sums one subtraction
    c = np.cumsum(p, axis=0)
    c = c[2 * k + 1:] - c[:-2 * k - 1]
    c = np.cumsum(c, axis=1)
    c = c[:, 2 * k + 1:] - c[:, :-2 * k - 1]
    return c[:a.shape[0], :a.shape[1]] * (1.0 / (2 * k + 1) ** 2) + offset


def _background(cam: Camera) -> GBuffer:
    """Floor and bed top: two planes facing the camera."""
    ux, uy, uz = cam.rays
    x, y = ux / uz * BED_TOP_DEPTH_M, uy / uz * BED_TOP_DEPTH_M
    cx, cy = BED_CENTER_XY_M
    on_bed = (np.abs(x - cx) <= BED_LENGTH_M / 2) & (np.abs(y - cy) <= BED_WIDTH_M / 2)
    z = np.where(on_bed, BED_TOP_DEPTH_M, FLOOR_DEPTH_M).astype("float32")
    normal = np.zeros((3, cam.height, cam.width), dtype="float32")
    normal[2] = -1.0
    material = np.where(on_bed, MAT["sheet"], MAT["floor"]).astype("uint8")
    return GBuffer(z, normal, material)


class Renderer:
    """Renders one patient's body in the static scene for a depth and a colour camera.

    Parameters
    ----------
    patient : PatientProfile
        Decides the colours, the blanket and the static pillow position.
    depth_intrinsics, rgb_intrinsics : dict
        Calibration entries (``width``, ``height``, ``fx``, ``fy``, ``cx``, ``cy``).
    static : list of Capsule or Ellipsoid
        Solids drawn once into the cached background.
    blanket_box_m : tuple of float, optional
        ``(x0, x1, y0, y1)`` camera-frame rectangle the blanket covers, or None.
    noise_key : sequence of int
        Seeds the fixed colour-noise field (per-frame randomness comes from the
        generators passed to the shading methods).
    """

    def __init__(self, patient: PatientProfile, depth_intrinsics: dict, rgb_intrinsics: dict,
                 static: list[Capsule | Ellipsoid],
                 blanket_box_m: tuple[float, float, float, float] | None,
                 noise_key: Sequence[int] = (0,)) -> None:
        self.depth_camera = Camera.from_intrinsics(depth_intrinsics)
        self.rgb_size = (int(rgb_intrinsics["width"]), int(rgb_intrinsics["height"]))
        factor = int(np.ceil(self.rgb_size[0] / RGB_MAX_INTERNAL_WIDTH))
        self.rgb_camera = Camera.from_intrinsics(
            rgb_intrinsics, self.rgb_size[0] // factor, self.rgb_size[1] // factor)
        self.blanket_box_m = blanket_box_m
        self._backgrounds = {}
        for name, cam in (("depth", self.depth_camera), ("rgb", self.rgb_camera)):
            gb = _background(cam)
            for prim in static:
                _draw(gb, cam, prim)
            self._backgrounds[name] = gb
        colors = dict(_STATIC_RGB, blanket=patient.blanket_rgb, skin=patient.skin_rgb,
                      gown=patient.gown_rgb,
                      trousers=tuple(0.75 * c for c in patient.gown_rgb))
        table = np.array([colors[m] for m in MATERIALS], dtype="float64")
        levels = np.arange(256) / _RGB_LEVELS_PER_UNIT
        self._rgb_lut = np.clip(table[:, None, :] * levels[None, :, None] * 255 + 0.5, 0, 255
                                ).astype("uint8").reshape(-1, 3)
        cam = self.rgb_camera
        self._rgb_vignette = ((1 - _RGB_AMBIENT) * _RGB_LEVELS_PER_UNIT
                              * (0.75 + 0.25 * cam.rays[2])).astype("float32")
        self._rgb_noise = (0.012 * _RGB_LEVELS_PER_UNIT * np.random.default_rng(
            [*map(int, noise_key), _TAG_RGB_NOISE]).standard_normal(
            (cam.height + _NOISE_MARGIN, cam.width + _NOISE_MARGIN), dtype="float32"))
        self._ir_table = np.array([_IR_ALBEDO[m] for m in MATERIALS], dtype="float32")

    # -- geometry -------------------------------------------------------------------

    def gbuffer(self, camera: str, prims: list[Capsule | Ellipsoid]) -> GBuffer:
        """Nearest surfaces seen by ``camera`` (``"depth"`` or ``"rgb"``)."""
        cam = self.depth_camera if camera == "depth" else self.rgb_camera
        gb = self._backgrounds[camera].copy()
        if self.blanket_box_m is not None:
            for prim in prims:
                if prim.covered:
                    _draw(gb, cam, prim)
            self._draw_blanket(gb, cam)
            prims = [p for p in prims if not p.covered]
        for prim in prims:
            _draw(gb, cam, prim)
        return gb

    def _draw_blanket(self, gb: GBuffer, cam: Camera) -> None:
        """Drape a blanket over whatever lies in the blanket box."""
        x0, x1, y0, y1 = self.blanket_box_m
        z_ref = BED_TOP_DEPTH_M - 0.05
        u0 = max(int(cam.cx + cam.fx * x0 / z_ref), 0)
        u1 = min(int(cam.cx + cam.fx * x1 / z_ref) + 1, cam.width)
        v0 = max(int(cam.cy + cam.fy * y0 / z_ref), 0)
        v1 = min(int(cam.cy + cam.fy * y1 / z_ref) + 1, cam.height)
        if u0 >= u1 or v0 >= v1:
            return
        under = np.minimum(gb.z[v0:v1, u0:u1], BED_TOP_DEPTH_M)
        k = max(int(round(0.05 * cam.fx / z_ref)), 1)
        k_small = max(int(round(0.012 * cam.fx / z_ref)), 1)
        z = np.minimum(_box_blur(_box_blur(under, k), k), _box_blur(under, k_small)) - 0.012
        dz_dv, dz_du = np.gradient(z)
        nx = dz_du * (cam.fx / z)
        ny = dz_dv * (cam.fy / z)
        inv = 1.0 / np.sqrt(nx * nx + ny * ny + 1.0)
        gb.z[v0:v1, u0:u1] = z
        gb.normal[:, v0:v1, u0:u1] = np.stack([nx * inv, ny * inv, -inv])
        gb.material[v0:v1, u0:u1] = MAT["blanket"]

    # -- shading --------------------------------------------------------------------

    def _cosine(self, gb: GBuffer, cam: Camera) -> np.ndarray:
        n, r = gb.normal, cam.rays
        return np.clip(-(n[0] * r[0] + n[1] * r[1] + n[2] * r[2]), 0.0, 1.0)

    def depth_mm(self, gb: GBuffer, rng: np.random.Generator) -> np.ndarray:
        """Noisy, quantised depth in millimetres, 0 where the sensor gives no reading."""
        cam = self.depth_camera
        z = gb.z
        cos = self._cosine(gb, cam)
        sigma_m = 0.0005 + 0.00045 * z * z + 0.0015 * (1.0 - cos)
        noisy = z + sigma_m * rng.standard_normal(z.shape, dtype="float32")
        quantised = _DISPARITY_SCALE_M / np.rint(_DISPARITY_SCALE_M / noisy)
        out = np.rint(quantised * 1000.0)
        # Invalid pixels gather on the far side of depth edges (mixed returns).
        edge = np.zeros(z.shape, dtype=bool)
        step_x, step_y = np.diff(z, axis=1), np.diff(z, axis=0)
        edge[:, 1:] |= step_x > _EDGE_JUMP_M
        edge[:, :-1] |= step_x < -_EDGE_JUMP_M
        edge[1:] |= step_y > _EDGE_JUMP_M
        edge[:-1] |= step_y < -_EDGE_JUMP_M
        u = rng.random(z.shape, dtype="float32")
        holes = (edge & (u < 0.55)) | (u < 0.004) | ((cos < 0.15) & (u < 0.6))
        out[holes] = 0
        return out.astype("uint16")

    def ir(self, gb: GBuffer, rng: np.random.Generator) -> np.ndarray:
        """Active infrared intensity (16-bit, mostly 0..3000)."""
        cam = self.depth_camera
        cos = self._cosine(gb, cam)
        uz = cam.rays[2]
        dist_sq = (gb.z / uz) ** 2
        intensity = (_IR_GAIN * self._ir_table[gb.material] * (0.08 + 0.92 * cos)
                     * (uz * uz) / dist_sq)
        noise = rng.standard_normal(intensity.shape, dtype="float32")
        intensity += noise * (0.9 * np.sqrt(intensity) + 4.0)
        return np.clip(np.rint(intensity), 0, 65535).astype("uint16")

    def rgb(self, gb: GBuffer, rng: np.random.Generator) -> np.ndarray:
        """Colour image at the requested size, uint8 ``(H, W, 3)``."""
        cam = self.rgb_camera
        n, r = gb.normal, cam.rays
        cos = np.clip(-(n[0] * r[0] + n[1] * r[1] + n[2] * r[2]), 0.0, 1.0)
        # Light level in 1/_RGB_LEVELS_PER_UNIT steps; the noise is a random window
        # of a fixed noise field (drawing fresh noise per pixel is the slow part).
        level = _RGB_AMBIENT * _RGB_LEVELS_PER_UNIT + cos * self._rgb_vignette
        dy, dx = rng.integers(0, _NOISE_MARGIN, 2)
        level += self._rgb_noise[dy:dy + cam.height, dx:dx + cam.width]
        index = np.clip(level, 0, 255).astype("uint16")
        index += gb.material.astype("uint16") << 8
        image = np.take(self._rgb_lut, index, axis=0)
        if (cam.width, cam.height) != self.rgb_size:
            image = np.asarray(Image.fromarray(image).resize(self.rgb_size, Image.BILINEAR))
        return image
