"""A 3D view of the current frame's point cloud and joints, following the labeling app's playhead.

>>> from deepepil.ui import LabelingApp, PointCloudView
>>> app = LabelingApp()                                   # doctest: +SKIP
>>> PointCloudView(app)                                   # doctest: +SKIP
>>> PointCloudView(dataset=deepepil.open_recording(path), frame=120)   # doctest: +SKIP

The depth frame is back-projected with the recording's calibration exactly as
:func:`deepepil.recordings.geometry.point_cloud` does (same points, same order, bit for bit),
but per frame only the kept pixels are touched: frames come through the fast reader
(:func:`~deepepil.recordings.framereader.read_frame`) and the pixel grid of a stride and crop
(the rays, up to depth) is computed once. Drawing runs on a background thread that always
takes the newest requested frame, so when the playhead moves faster than clouds can be drawn
the stale ones are skipped; a cloud's positions and colours (float32) travel in one binary
message. The figure is ipyvolume's; ``docs/point-cloud.md`` says why the cloud in it is a
three.js ``Points`` object and what the view costs.

Points are shown in the depth camera's frame, metres (x right, y down, z away from the
camera; see ``docs/semiology.md``), first seen from the camera's own viewpoint.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import ipywidgets as widgets
import numpy as np
import traitlets as t

from deepepil.errors import MissingStreamError, ValidationError
from deepepil.recordings.encoding import DEFAULT_DEPTH_RANGE_MM, DEFAULT_IR_RANGE, VIRIDIS_LUT, scale_ir
from deepepil.recordings.framereader import read_frame
from deepepil.recordings.geometry import Intrinsics, PointCloud, point_cloud

__all__ = ["PointCloudView", "PointCloudFrames", "COLOURS", "SKELETON_BONES"]

log = logging.getLogger(__name__)

#: What can colour the points: the IR image (grey, as the player shows it) or the depth (viridis, near is bright).
COLOURS: tuple[str, ...] = ("ir", "depth")
#: Bones drawn between the joints of :data:`deepepil.labels.vocabulary.JOINT_NAMES`.
SKELETON_BONES: tuple[tuple[str, str], ...] = (
    ("head", "neck"), ("neck", "left_shoulder"), ("neck", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"), ("left_hip", "right_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
)
_STRIDE_MAX = 16
_STATUS_SECONDS = 0.3  # the status line's update interval while frames keep coming
_GREY_RGB = np.repeat(np.linspace(0.0, 1.0, 256, dtype="float32")[:, None], 3, axis=1)
_VIRIDIS_RGB = VIRIDIS_LUT.astype("float32") / np.float32(255.0)
_KEYFRAME_RGB = (1.0, 0.15, 0.25)      # a keypoint stored on this frame
_INTERPOLATED_RGB = (1.0, 0.75, 0.1)   # between two keyframes of the joint
_BONE_RGB = (0.3, 0.9, 1.0)


# -- checks ------------------------------------------------------------------------------------------


def check_stride(stride: Any) -> int:
    """``stride`` as an int in ``1..16``; ValidationError otherwise."""
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or not 1 <= stride <= _STRIDE_MAX:
        raise ValidationError(f"stride must be an integer from 1 (every pixel) to {_STRIDE_MAX}, got {stride!r}; "
                              f"4 keeps one pixel in 16 and follows playback easily")
    return int(stride)


def check_roi(roi_px: Any, intr: Optional[Intrinsics] = None) -> Optional[tuple[int, int, int, int]]:
    """``roi_px`` as ``(u0, u1, v0, v1)`` (end exclusive), inside the depth image of ``intr`` when given."""
    if roi_px is None:
        return None
    try:
        values = [float(x) for x in roi_px]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4 or not all(math.isfinite(x) and x == int(x) for x in values):
        raise ValidationError(f"roi_px must be (u0, u1, v0, v1): whole pixel columns u0 <= u < u1 and rows "
                              f"v0 <= v < v1, got {roi_px!r}")
    u0, u1, v0, v1 = (int(x) for x in values)
    width, height = (intr.width, intr.height) if intr is not None else (math.inf, math.inf)
    if not (0 <= u0 < u1 <= width and 0 <= v0 < v1 <= height):
        size = f"the {width}x{height} depth image" if intr is not None else "the depth image"
        raise ValidationError(f"roi_px {tuple(roi_px)} is not inside {size}; give 0 <= u0 < u1 <= width and "
                              f"0 <= v0 < v1 <= height")
    return u0, u1, v0, v1


def check_box(box_m: Any) -> Optional[tuple[tuple[float, ...], tuple[float, ...]]]:
    """``box_m`` as ``((x0, y0, z0), (x1, y1, z1))`` metres with each low <= high, or None."""
    if box_m is None:
        return None
    try:
        lo, hi = (tuple(float(v) for v in np.asarray(c, dtype="float64").reshape(3)) for c in box_m)
    except (TypeError, ValueError):
        raise ValidationError(f"box_m must be ((x0, y0, z0), (x1, y1, z1)) in metres (camera frame), "
                              f"got {box_m!r}") from None
    if not all(math.isfinite(a) and math.isfinite(b) and a <= b for a, b in zip(lo, hi)):
        raise ValidationError(f"box_m must have finite bounds with x0 <= x1, y0 <= y1, z0 <= z1, got {box_m!r}")
    return lo, hi


def check_voxel(voxel_m: Any) -> Optional[float]:
    if voxel_m is None:
        return None
    if isinstance(voxel_m, bool) or not isinstance(voxel_m, (int, float, np.floating)) \
            or not (math.isfinite(voxel_m) and voxel_m > 0):
        raise ValidationError(f"voxel_m must be None or a positive number of metres (e.g. 0.02), got {voxel_m!r}")
    return float(voxel_m)


def check_colour(colour: Any) -> str:
    if colour not in COLOURS:
        raise ValidationError(f"colour must be one of {COLOURS}, got {colour!r}")
    return colour


def _checked(name: str, value: Any, frames: Optional["PointCloudFrames"]) -> Any:
    """A setting of :class:`PointCloudView`, checked (against the recording's ``frames`` when one is open)."""
    if name == "frame":
        if frames is not None:
            return frames.check_frame(value)
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
            raise ValidationError(f"frame must be a frame number (an integer >= 0), got {value!r}")
        return int(value)
    if name == "colour":
        if check_colour(value) == "ir" and frames is not None and not frames.has_ir:
            raise MissingStreamError("this recording has no IR stream; colour the points by 'depth'")
        return value
    if name == "roi_px":
        return check_roi(value, None if frames is None else frames.intrinsics)
    return {"stride": check_stride, "voxel_m": check_voxel, "box_m": check_box}[name](value)


# -- the per-frame computation ---------------------------------------------------------------------


class PointCloudFrames:
    """Point clouds of the frames of one recording, computed for display.

    Equal to :func:`~deepepil.recordings.geometry.frame_point_cloud` (IR-coloured) with the
    same ``stride``, ``roi_px``, ``box_m`` and ``voxel_m``; faster per frame because the pixel
    grid of a stride and crop is precomputed and only the kept pixels are converted.

    Parameters
    ----------
    ds : xarray.Dataset
        An opened recording (``deepepil.open_recording``) with a ``depth`` stream.

    Raises
    ------
    deepepil.errors.MissingStreamError
        The recording has no depth stream.
    """

    def __init__(self, ds: Any) -> None:
        if "depth" not in getattr(ds, "data_vars", {}):
            streams = sorted(getattr(ds, "data_vars", {}))
            raise MissingStreamError(f"this recording has no depth stream (it has: {streams}); a point cloud is "
                                     f"depth back-projected, so it needs one")
        self.ds = ds
        self.intrinsics = Intrinsics.from_calibration(ds, "depth")
        self.n_frames = int(ds.sizes["time"])
        self.has_ir = "ir" in ds.data_vars
        display = ds.attrs.get("display", {}) or {}
        self.ir_range = tuple(display.get("ir_range") or DEFAULT_IR_RANGE)
        self.depth_range_mm = tuple(display.get("depth_range_mm") or DEFAULT_DEPTH_RANGE_MM)
        self._grids: dict[tuple, tuple] = {}
        self._lock = threading.Lock()

    def check_frame(self, frame_index: Any) -> int:
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) \
                or not 0 <= frame_index < self.n_frames:
            raise ValidationError(f"frame must be an integer in 0..{self.n_frames - 1}, got {frame_index!r}")
        return int(frame_index)

    def _grid(self, stride: int, roi: Optional[tuple[int, int, int, int]]) -> tuple:
        """Rows and columns kept, and per kept pixel (row-major): u, v, u - cx, v - cy (float32)."""
        key = (stride, roi)
        with self._lock:
            grid = self._grids.get(key)
            if grid is None:
                intr = self.intrinsics
                u0, u1, v0, v1 = roi or (0, intr.width, 0, intr.height)
                us = np.arange(u0, u1, stride, dtype="int32")
                vs = np.arange(v0, v1, stride, dtype="int32")
                u_px = np.tile(us, len(vs))
                v_px = np.repeat(vs, len(us))
                du = u_px.astype("float32") - np.float32(intr.cx)
                dv = v_px.astype("float32") - np.float32(intr.cy)
                grid = (np.s_[v0:v1:stride, u0:u1:stride], u_px, v_px, du, dv)
                self._grids[key] = grid
            return grid

    def cloud(self, frame_index: int, *, stride: int = 4, roi_px: Any = None, box_m: Any = None,
              voxel_m: Optional[float] = None, with_ir: bool = True) -> PointCloud:
        """The cloud of ``frame_index`` with IR values (when the recording has IR and ``with_ir``)."""
        frame_index = self.check_frame(frame_index)
        stride, roi = check_stride(stride), check_roi(roi_px, self.intrinsics)
        box, voxel = check_box(box_m), check_voxel(voxel_m)
        depth = read_frame(self.ds, "depth", frame_index)
        ir = read_frame(self.ds, "ir", frame_index) if self.has_ir and with_ir else None
        if voxel is not None:  # averaging dominates the cost: geometry's own code, on the fast-read frames
            return point_cloud(depth, self.ds, ir=ir, stride=stride, roi_px=roi, box_m=box, voxel_m=voxel)
        intr = self.intrinsics
        if depth.shape != intr.shape:
            point_cloud(depth, self.ds)  # raises the calibration mismatch error
        window, u_px, v_px, du, dv = self._grid(stride, roi)
        kept = depth[window].ravel()
        index = np.flatnonzero(kept > 0)  # also drops NaN in a float depth frame
        # the same float32 operations, in the same order, as geometry.point_cloud
        z = kept[index].astype("float32") * np.float32(intr.depth_unit_mm) * np.float32(1e-3)
        x = du[index] * (z / np.float32(intr.fx))
        y = dv[index] * (z / np.float32(intr.fy))
        xyz = np.stack([x, y, z], axis=1)
        ir_values = None if ir is None else ir[window].ravel()[index]
        if box is not None:
            lo, hi = (np.asarray(c, dtype="float32") for c in box)
            keep = np.all((xyz >= lo) & (xyz <= hi), axis=1)
            xyz, index = xyz[keep], index[keep]
            ir_values = None if ir_values is None else ir_values[keep]
        return PointCloud(xyz, np.stack([u_px[index], v_px[index]], axis=1), ir_values, None)

    def capacity(self, stride: int, roi_px: Any = None) -> int:
        """The most points a cloud with this stride and crop can have (its pixel grid)."""
        return len(self._grid(check_stride(stride), check_roi(roi_px, self.intrinsics))[1])

    def colours(self, cloud: PointCloud, colour: str) -> np.ndarray:
        """``(N, 3)`` float32 RGB (0..1) of the points: IR grey or depth viridis, as the 2D player maps them."""
        check_colour(colour)
        if colour == "ir":
            if cloud.ir is None:
                raise MissingStreamError("this recording has no IR stream; colour the points by 'depth'")
            return _GREY_RGB[scale_ir(cloud.ir, self.ir_range)]
        lo, hi = (float(v) for v in self.depth_range_mm)
        depth_mm = cloud.xyz_m[:, 2] * np.float32(1000.0)
        level = np.clip((hi - depth_mm) * np.float32(255.0 / (hi - lo)), 0, 255).astype("uint8")  # near = bright
        return _VIRIDIS_RGB[level]


# -- the widget --------------------------------------------------------------------------------------

# The labeling app tells the kernel its playhead through its `frame` trait, and ipywidgets sends a trait
# change only after the kernel has finished with the previous one: while the kernel also serves the
# player's frames, that lets through a few playheads a second. This bridge follows the app model's `frame`
# in the browser (set there on every playhead change, sent to the kernel only every 50 ms) and forwards it
# as plain messages (at most every _PLAYHEAD_MS), which are not held back.
_PLAYHEAD_MS = 33  # up to 30 playheads a second: every frame at 1x
_BRIDGE_FRESH_SECONDS = 2.0  # while the bridge speaks, the app's (late) frame trait from the browser is ignored
_BRIDGE_ESM = """
export default {
  async render({ model }) {
    const app = await model.widget_manager.get_model(model.get("app_model_id"));
    let sent = null, last = 0, timer = null;
    const send = () => {
      timer = null;
      last = Date.now();
      const frame = app.get("frame");
      if (frame !== sent) { sent = frame; model.send({ frame }); }
    };
    const onFrame = () => {
      if (!timer) timer = setTimeout(send, Math.max(0, %d - (Date.now() - last)));
    };
    app.on("change:frame", onFrame);
    return () => { app.off("change:frame", onFrame); clearTimeout(timer); };
  },
};
""" % _PLAYHEAD_MS


def _bridge_class() -> type:
    import anywidget

    class PlayheadBridge(anywidget.AnyWidget):
        """Forwards a LabelingApp's playhead from the browser as messages (invisible)."""

        _esm = _BRIDGE_ESM
        app_model_id = t.Unicode("").tag(sync=True)

    return PlayheadBridge



class PointCloudView(widgets.HBox):
    """The current frame's point cloud in 3D, with its joints; beside it, colour, point size and stride controls.

    The figure is an ipyvolume figure (camera, axes, joints, skeleton). The cloud itself is a
    three.js ``Points`` object in the figure's scene (pythreejs, which ipyvolume builds on): one
    vertex a point, with positions and colours interleaved in one buffer, so each frame's cloud
    is one message and a cheap draw (an ipyvolume scatter draws 4 triangles a point in each of
    its render passes: 20x slower in a browser without a GPU, see ``docs/point-cloud.md``).

    Parameters
    ----------
    app : LabelingApp, optional
        Follow this app: its playhead (``frame``), its open recording and its joints
        (``joints_at``, redrawn when ``keypoints_revision`` changes).
    dataset : xarray.Dataset or path-like, optional
        Without an app: the recording to show (opened with ``deepepil.open_recording`` if a path).
    frame : int
        Without an app: the frame to show first (then set :attr:`frame`).
    colour : {"ir", "depth"}
        What colours the points ("depth" when the recording has no IR).
    stride : int
        Keep every ``stride``-th pixel in both directions (1..16).
    voxel_m : float, optional
        Average the points per cube of this edge (metres) instead (slower, even density).
    roi_px : (u0, u1, v0, v1), optional
        Crop to depth-image columns ``u0 <= u < u1`` and rows ``v0 <= v < v1``.
    box_m : ((x0, y0, z0), (x1, y1, z1)), optional
        Keep points inside this camera-frame box (metres), e.g. to cut away the floor.
    point_size : float
        Size of a point on screen, pixels.
    width_px, height_px : int
        Size of the 3D canvas.
    background : bool
        Draw on a background thread that skips stale frames (True); False draws at once, in
        the thread that changed the frame (tests, scripts).

    Attributes
    ----------
    figure : ipyvolume.Figure
        The 3D figure: ``figure.scatters`` are the keyframe and the interpolated joints,
        ``figure.meshes[0]`` the skeleton, ``figure.scene.children[0]`` the cloud.
    cloud : PointCloud or None
        The cloud drawn last.
    cloud_buffer : pythreejs.InterleavedBuffer
        What the browser draws: ``array`` is ``(capacity, 6)`` float32, per point x, y, z
        (metres, depth camera frame) and r, g, b (0..1); the rows after the cloud's are NaN.
    drawn_frame : int
        The frame whose cloud is drawn (-1: none).
    stats : dict
        ``draws``, ``skipped`` (frames superseded before they were drawn), ``last_ms`` and
        ``total_ms`` (kernel time of the last draw and of all draws).
    """

    # checked by the validators below (which raise ValidationError naming what is allowed)
    frame = t.Any(0, help="The frame shown (follows the app's playhead when an app is given).")
    colour = t.Any("ir", help="What colours the points: 'ir' or 'depth'.")
    stride = t.Any(4, help="Keep every stride-th pixel in both directions (1..16).")
    voxel_m = t.Any(None, help="Average the points per cube of this edge (metres), or None.")
    roi_px = t.Any(None, help="Crop to depth-image columns u0..u1 and rows v0..v1 (end exclusive), or None.")
    box_m = t.Any(None, help="Keep points inside ((x0, y0, z0), (x1, y1, z1)) metres, or None.")
    point_size = t.Float(2.0, help="Size of a point on screen, pixels.")
    show_joints = t.Bool(True)
    drawn_frame = t.Int(-1)
    message = t.Unicode("")

    def __init__(self, app: Any = None, *, dataset: Any = None, frame: int = 0, colour: str = "ir",
                 stride: int = 4, voxel_m: Optional[float] = None, roi_px: Any = None, box_m: Any = None,
                 point_size: float = 2.0, width_px: int = 560, height_px: int = 460, background: bool = True) -> None:
        import ipyvolume  # noqa: F401 - registers the widget classes
        import pythreejs as three
        from ipyvolume.widgets import Figure, Mesh, Scatter

        if (app is None) == (dataset is None):
            raise ValidationError("give either app= (follow a LabelingApp) or dataset= (an opened recording or its "
                                  "store path), not both or neither")
        self._app = app
        self._frames: Optional[PointCloudFrames] = None
        self._problem = "No recording."
        self._n_joints = self._clouds_sent = 0
        self._bridge: Any = None
        self._message_time = self._bridge_time = 0.0
        self._cond = threading.Condition()
        self._wanted = self._busy = self._closing = False
        self._background = bool(background)
        self._thread: Optional[threading.Thread] = None
        self._drawn_key: Any = None
        self._joints_key: Any = None
        self._limits_key: Any = None
        self.cloud: Optional[PointCloud] = None
        self.stats = {"draws": 0, "skipped": 0, "last_ms": 0.0, "total_ms": 0.0}
        if isinstance(dataset, (str, Path)):
            from deepepil.recordings.store import open_recording

            dataset = open_recording(dataset)
        if dataset is not None:
            self._frames = PointCloudFrames(dataset)
            if colour == "ir" and not self._frames.has_ir:
                colour = "depth"
        settings = {"colour": colour, "stride": stride, "voxel_m": voxel_m, "roi_px": roi_px, "box_m": box_m}
        if self._frames is not None:
            settings["frame"] = frame
        settings = {name: _checked(name, value, self._frames) for name, value in settings.items()}  # before any widget

        # animation: 1 ms, i.e. none (ipyvolume animates changes; 0 divides by zero in its transition code).
        # capture_fps: the figure is also a MediaStream (ipywebrtc); a capture of one frame per 1000 s keeps
        # the canvas from being read back for it after every render.
        self.figure = Figure(width=int(width_px), height=int(height_px), animation=1.0, camera_fov=40,
                             capture_fps=1e-3,
                             style={"background-color": "#101418", "box": {"visible": False},
                                    "axes": {"visible": True, "color": "#8a94a0", "label": {"visible": False},
                                             "ticklabel": {"color": "#8a94a0"}}})
        cam = self.figure.camera
        cam.up = (0.0, -1.0, 0.0)  # the depth camera's view: y down the image, looking along +z,
        cam.position = (0.0, 0.0, -1.3)  # close enough that the cloud fills the canvas
        self._three = three
        self._material = three.PointsMaterial(size=float(point_size), sizeAttenuation=False,
                                              vertexColors="VertexColors")
        self._geometry_parts: tuple = ()
        self.cloud_buffer = None
        self._points = three.Points(geometry=self._cloud_geometry(1), material=self._material, frustumCulled=False,
                                    visible=False, name="cloud")
        self.figure.scene.children = [self._points]  # ipyvolume adds its own objects to this scene's three.js object

        hidden = np.zeros(1, "float32")

        def scatter(rgb: Any, size: float, geo: str, description: str) -> Any:
            rgba = np.asarray([(*rgb, 1.0)], "float32")
            # color_selected and size_selected are given so that they are validated before the widget opens:
            # ipyvolume 0.6.3's Union traits otherwise send their first value unserialized (a numpy array)
            return Scatter(x=hidden, y=hidden, z=hidden, color=rgba, color_selected=rgba, size=size,
                           size_selected=size, geo=geo, visible=False, description=description, cast_shadow=False,
                           receive_shadow=False)

        self._keyframes = scatter(_KEYFRAME_RGB, 4.0, "sphere", "joints (keyframes)")
        self._interpolated = scatter(_INTERPOLATED_RGB, 2.5, "diamond", "joints (interpolated)")
        self._bones = Mesh(x=hidden, y=hidden, z=hidden, lines=np.zeros((1, 2), "uint32"),
                           color=np.asarray((*_BONE_RGB, 1.0), "float32"), visible=False, description="skeleton")
        self.figure.scatters = [self._keyframes, self._interpolated]
        self.figure.meshes = [self._bones]
        self._parts = (self._keyframes, self._interpolated, self._bones, self._points, self._material, self.figure)
        controls = self._controls()
        super().__init__(children=[self.figure, controls], point_size=float(point_size), **settings)
        self.layout.align_items = "flex-start"
        self.add_class("de-pointcloud")
        self.observe(self._changed, ["frame", "colour", "stride", "voxel_m", "roi_px", "box_m", "point_size",
                                     "show_joints"])
        if app is not None:
            app.observe(self._app_frame, ["frame"])
            app.observe(self._app_recording, ["recording"])
            self._bridge = _bridge_class()(app_model_id=app.model_id, layout={"display": "none"})
            self._bridge.on_msg(self._bridge_frame)
            self.children = (*self.children, self._bridge)
            if app.has_trait("keypoints_revision"):
                app.observe(self._changed, ["keypoints_revision"])
            self._app_recording()
        else:
            self._request()

    def _cloud_geometry(self, capacity: int) -> Any:
        """A geometry of ``capacity`` points whose positions and colours share one buffer (:attr:`cloud_buffer`)."""
        three = self._three
        buffer = three.InterleavedBuffer(array=np.full((capacity, 6), np.nan, "float32"))
        attributes = {"position": three.InterleavedBufferAttribute(data=buffer, itemSize=3, offset=0),
                      "color": three.InterleavedBufferAttribute(data=buffer, itemSize=3, offset=3)}
        geometry = three.BufferGeometry(attributes=attributes)
        old = self._geometry_parts
        self._geometry_parts = (geometry, *attributes.values(), buffer)
        self.cloud_buffer = buffer
        for part in old:
            part.close()
        return geometry

    # --- controls ------------------------------------------------------------------------------------

    def _controls(self) -> widgets.VBox:
        wide = {"description_width": "64px"}
        colour = widgets.ToggleButtons(options=[("IR", "ir"), ("Depth", "depth")], description="Colour",
                                       style={"button_width": "64px", **wide})
        size = widgets.FloatSlider(min=0.5, max=8.0, step=0.5, description="Point size", readout_format=".1f",
                                   style=wide, layout={"width": "250px"})
        stride = widgets.IntSlider(min=1, max=_STRIDE_MAX, description="Stride", continuous_update=False,
                                   style=wide, layout={"width": "250px"})
        joints = widgets.Checkbox(description="Joints", indent=False)
        status = widgets.HTML(layout={"width": "250px"})
        self._links = [t.link((self, "colour"), (colour, "value")), t.link((self, "point_size"), (size, "value")),
                       t.link((self, "stride"), (stride, "value")), t.link((self, "show_joints"), (joints, "value"))]
        legend = widgets.HTML(
            "<div style='font-size:12px;line-height:1.5'>"
            "<span style='color:#ff2640'>●</span> keyframe joint<br>"
            "<span style='color:#ffbf1a'>◆</span> interpolated joint<br>"
            "<span style='color:#4ce6ff'>—</span> skeleton<br>"
            "Axes: metres, depth camera frame (x right, y down, z away)<br>"
            "Drag: rotate · wheel: zoom</div>")
        self.observe(lambda change: setattr(status, "value", _status_html(change["new"])), ["message"])
        return widgets.VBox([colour, size, stride, joints, legend, status], layout={"width": "260px"})


    # --- following the app ---------------------------------------------------------------------------

    def _app_frame(self, change: Mapping[str, Any]) -> None:
        from_browser = "frame" in getattr(self._app, "_property_lock", {})
        if from_browser and time.monotonic() - self._bridge_time < _BRIDGE_FRESH_SECONDS:
            return  # the bridge's playhead is newer than the trait's, which ipywidgets holds back
        self._follow(change["new"])

    def _bridge_frame(self, _bridge: Any, content: Any, _buffers: Any) -> None:
        if isinstance(content, Mapping) and isinstance(content.get("frame"), int):
            self._bridge_time = time.monotonic()
            self._follow(content["frame"])

    def _follow(self, frame: int) -> None:
        frames = self._frames
        if frames is not None:
            self.frame = min(max(int(frame), 0), frames.n_frames - 1)

    def _app_recording(self, _change: Any = None) -> None:
        """The app opened or closed a recording: take its dataset (never raise into the app)."""
        ds = getattr(self._app, "dataset", None) if self._app.recording else None
        frames, problem = None, "No recording open: open one in the labeling app."
        if ds is not None:
            try:
                frames = PointCloudFrames(ds)
                check_roi(self.roi_px, frames.intrinsics)
            except Exception as exc:  # noqa: BLE001 - shown beside the figure, the app goes on
                frames, problem = None, f"error: {exc}"
        with self._cond:
            self._frames, self._problem = frames, problem
            self._drawn_key = self._joints_key = self._limits_key = None
        if frames is not None:
            self.set_trait("frame", min(max(int(self._app.frame), 0), frames.n_frames - 1))
        self._request()

    def _changed(self, _change: Any = None) -> None:
        self._request()

    @t.validate("frame", "colour", "stride", "voxel_m", "roi_px", "box_m")
    def _check_setting(self, proposal: Mapping[str, Any]) -> Any:
        return _checked(proposal["trait"].name, proposal["value"], self._frames)

    # --- drawing -------------------------------------------------------------------------------------

    def _request(self) -> None:
        """Ask for the current state to be drawn; the newest request wins."""
        if self._closing:
            return
        if not self._background:
            self._draw_now()
            return
        with self._cond:
            if self._wanted:
                self.stats["skipped"] += 1
            self._wanted = True
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="deepepil-pointcloud", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._wanted and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                self._wanted = False
                self._busy = True
            try:
                self._draw_now()
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def wait_drawn(self, timeout_seconds: float = 10.0) -> bool:
        """Wait until every requested draw is done; False on timeout."""
        deadline = time.monotonic() + timeout_seconds
        with self._cond:
            while self._wanted or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _draw_now(self) -> None:
        with self._cond:
            frames, problem = self._frames, self._problem
        if frames is None:
            self._clear(problem)
            return
        if self._material.size != self.point_size:
            self._material.size = float(self.point_size)
        frame = int(self.frame)
        settings = (self.stride, self.roi_px, self.box_m, self.voxel_m)
        cloud_key = (id(frames), frame, self.colour, settings)
        started = time.perf_counter()
        try:
            if cloud_key != self._drawn_key:
                cloud = frames.cloud(frame, stride=settings[0], roi_px=settings[1], box_m=settings[2],
                                     voxel_m=settings[3], with_ir=self.colour == "ir")  # depth colours need no IR
                self._show_cloud(frames, cloud, frame, cloud_key, settings)
            self._show_joints(frame)
        except Exception as exc:  # noqa: BLE001 - shown beside the figure; raising would stop the thread
            log.warning("deepepil: point cloud of frame %s not drawn: %s", frame, exc, exc_info=True)
            self.message = f"error: frame {frame} not drawn: {exc}"
            return
        ms = (time.perf_counter() - started) * 1e3
        self.stats["draws"] += 1
        self.stats["last_ms"] = ms
        self.stats["total_ms"] += ms
        now = time.monotonic()
        if self._wanted and now - self._message_time < _STATUS_SECONDS:
            return  # playing: the status line is updated a few times a second, not with every cloud
        self._message_time = now
        n = 0 if self.cloud is None else len(self.cloud)
        joints = f" · {self._n_joints} joint(s)" if self._n_joints else ""
        self.message = f"frame {frame} · {n:,} points{joints} · {ms:.1f} ms"

    def _show_cloud(self, frames: PointCloudFrames, cloud: PointCloud, frame: int, key: Any, settings: Any) -> None:
        colours = frames.colours(cloud, self.colour)
        capacity = frames.capacity(settings[0], settings[1])
        if len(self.cloud_buffer.array) != capacity:  # a buffer's size is fixed in the browser
            self._points.geometry = self._cloud_geometry(capacity)
        limits_key = (id(frames), settings)
        if limits_key != self._limits_key and len(cloud):
            self._set_limits(cloud.xyz_m)
            self._limits_key = limits_key
        n = len(cloud)
        data = np.full((capacity, 6), np.nan, "float32")
        data[:n, :3] = cloud.xyz_m
        data[:n, 3:] = colours
        self.cloud_buffer.array = data  # one message: positions and colours
        self._points.visible = n > 0
        # ipyvolume renders when its own widgets change, not when a pythreejs object in its scene does: a
        # new (hidden) axis label asks it to, once the cloud has arrived; it also names the frame (tests)
        self._clouds_sent += 1
        self.figure.xlabel = f"x (cloud {self._clouds_sent}: frame {frame})"
        self.cloud = cloud
        self._drawn_key = key
        self.drawn_frame = frame

    def _set_limits(self, xyz: np.ndarray) -> None:
        """A cube around the bulk of the cloud, so metres look the same along every axis."""
        lo, hi = np.percentile(xyz, [0.5, 99.5], axis=0)
        span = float(np.max(hi - lo)) * 1.1 or 1.0
        low = (lo + hi) / 2 - span / 2
        with self.figure.hold_sync():
            self.figure.xlim, self.figure.ylim, self.figure.zlim = ((float(c), float(c + span)) for c in low)
        # the cloud is in the scene itself, not in ipyvolume's scaled box [-0.5, 0.5]^3: the same mapping
        self._points.scale = (1 / span,) * 3
        self._points.position = tuple(float(v) for v in -low / span - 0.5)

    def _joint_rows(self, frame: int) -> Any:
        app = self._app
        if app is None or not self.show_joints or not hasattr(app, "joints_at"):
            return None
        rows = app.joints_at(frame)
        ok = np.isfinite(rows[["x_m", "y_m", "z_m"]].to_numpy(dtype="float64")).all(axis=1)
        return rows[ok]

    def _show_joints(self, frame: int) -> None:
        revision = getattr(self._app, "keypoints_revision", None)
        key = (frame, revision, self.show_joints, id(self._frames))
        if key == self._joints_key:
            return
        rows = self._joint_rows(frame)
        self._n_joints = 0 if rows is None else len(rows)
        for scatter, keyframe in ((self._keyframes, True), (self._interpolated, False)):
            part = None if rows is None else rows[rows["keyframe"].astype(bool) == keyframe]
            if part is not None and len(part):
                _set_points(scatter, part[["x_m", "y_m", "z_m"]].to_numpy(dtype="float32"))
            else:
                scatter.visible = False
        bones = [] if rows is None else _bones(rows)
        if bones:
            names = list(rows["joint"])
            lines = np.asarray([(names.index(a), names.index(b)) for a, b in bones], "uint32")
            _set_points(self._bones, rows[["x_m", "y_m", "z_m"]].to_numpy(dtype="float32"), lines)
        else:
            self._bones.visible = False
        self._joints_key = key

    def _clear(self, message: str) -> None:
        for part in (self._points, self._keyframes, self._interpolated, self._bones):
            part.visible = False
        self.cloud = None
        self.drawn_frame = -1
        self._n_joints = 0
        self.message = message

    # --- lifetime ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop following the app, stop the drawing thread and close the widgets."""
        cond = getattr(self, "_cond", None)
        if cond is not None and not self._closing:
            with cond:
                self._closing = True
                cond.notify_all()
            if self._thread is not None:
                self._thread.join(timeout=5)
            app = self._app
            if app is not None:
                for name, handler in (("frame", self._app_frame), ("recording", self._app_recording),
                                      ("keypoints_revision", self._changed)):
                    try:
                        app.unobserve(handler, [name])
                    except ValueError:
                        pass
            for link in getattr(self, "_links", ()):
                link.unlink()
            for part in (*getattr(self, "_parts", ()), *getattr(self, "_geometry_parts", ()),
                         *([self._bridge] if getattr(self, "_bridge", None) is not None else [])):
                part.close()
        super().close()

    def __repr__(self) -> str:
        source = "following a LabelingApp" if self._app is not None else "standalone"
        return f"<PointCloudView {source}: {self.message or 'nothing drawn'}>"


def _set_points(part: Any, xyz: np.ndarray, lines: Optional[np.ndarray] = None) -> None:
    """New positions (and lines) of an ipyvolume scatter or mesh in one message, then make it visible.

    Nothing else may change in that message: ipyvolume 0.6.3 animates every attribute changed
    along with the positions and fails on those it cannot animate (``visible``, ``description``).
    """
    with part.hold_sync():
        part.x, part.y, part.z = (np.ascontiguousarray(xyz[:, k]) for k in range(3))
        if lines is not None:
            part.lines = lines
    part.visible = True


def _bones(rows: Any) -> list[tuple[str, str]]:
    present = set(rows["joint"])
    return [(a, b) for a, b in SKELETON_BONES if a in present and b in present]


def _status_html(message: str) -> str:
    import html

    colour = "#d9534f" if message.startswith("error: ") else "inherit"
    text = message.removeprefix("error: ")
    return f"<div style='font-size:12px;color:{colour};white-space:normal'>{html.escape(text)}</div>"
