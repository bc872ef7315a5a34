"""3D joints in the labeling app: lifting a click to 3D, keyframes and the positions between them.

A clinician places a skeleton joint by clicking the IR or depth view: the click's depth-image
pixel ``(u_px, v_px)`` is lifted to camera coordinates (metres) with
:func:`deepepil.recordings.geometry.lift_pixel` on that frame's depth, and stored as a keypoint
(a **keyframe** of that joint). Between two keyframes of a joint its position is interpolated
linearly; before the first and after the last there is none (no extrapolation).

>>> rows = [{"id": 1, "joint": "head", "frame_index": 0, "u_px": 10.0, "v_px": 20.0,
...          "x_m": 0.0, "y_m": 0.0, "z_m": 1.0},
...         {"id": 2, "joint": "head", "frame_index": 10, "u_px": 20.0, "v_px": 20.0,
...          "x_m": 0.1, "y_m": 0.0, "z_m": 1.2}]
>>> joints_at(rows, 5)[["joint", "u_px", "z_m", "keyframe"]].to_dict("records")
[{'joint': 'head', 'u_px': 15.0, 'z_m': 1.1, 'keyframe': False}]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from deepepil.errors import ValidationError

__all__ = ["JOINTS_AT_COLUMNS", "KEYPOINT_ROW_FIELDS", "KeypointLifter", "joints_at", "interpolate_joint",
           "rgb_projection"]

#: Columns of :meth:`deepepil.ui.LabelingApp.joints_at`.
JOINTS_AT_COLUMNS: tuple[str, ...] = ("joint", "x_m", "y_m", "z_m", "u_px", "v_px", "keyframe")
#: Fields of the keypoint rows sent to the browser (``widgets/README.md``).
KEYPOINT_ROW_FIELDS: tuple[str, ...] = ("id", "version", "frame_index", "joint", "u_px", "v_px", "x_m", "y_m", "z_m",
                                        "confidence", "source", "author")
_VALUES = ("x_m", "y_m", "z_m", "u_px", "v_px")


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def interpolate_joint(keyframes: Sequence[Mapping[str, Any]], frame_index: int) -> dict[str, Any] | None:
    """The position of one joint on ``frame_index`` from its keyframes (rows sorted by ``frame_index``).

    Returns ``{x_m, y_m, z_m, u_px, v_px, keyframe}``, or None outside the first..last keyframe.
    A keyframe without 3D (``x_m`` None) gives NaN there and in the spans it bounds.
    """
    if not keyframes or frame_index < keyframes[0]["frame_index"] or frame_index > keyframes[-1]["frame_index"]:
        return None
    frames = [int(row["frame_index"]) for row in keyframes]
    i = int(np.searchsorted(frames, frame_index, side="left"))
    after = keyframes[i]
    if frames[i] == frame_index:
        return {**{name: _float(after[name]) for name in _VALUES}, "keyframe": True}
    before = keyframes[i - 1]
    w = (frame_index - frames[i - 1]) / (frames[i] - frames[i - 1])
    values = {name: _float(before[name]) + w * (_float(after[name]) - _float(before[name])) for name in _VALUES}
    return {**values, "keyframe": False}


def _joint_order(joints: Iterable[str]) -> list[str]:
    from deepepil.labels.vocabulary import JOINT_NAMES

    rank = {name: i for i, name in enumerate(JOINT_NAMES)}
    return sorted(set(joints), key=lambda name: (rank.get(name, len(rank)), name))


def joints_at(rows: Iterable[Mapping[str, Any]], frame_index: int) -> pd.DataFrame:
    """The joints on ``frame_index``: keyframes there, linear interpolation between a joint's keyframes.

    Parameters
    ----------
    rows : iterable of dict
        Keypoint rows (``joint``, ``frame_index``, ``u_px``, ``v_px``, ``x_m``, ``y_m``, ``z_m``),
        at most one per joint and frame.
    frame_index : int
        The frame.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`JOINTS_AT_COLUMNS`, one row per joint placed on or around the frame, in
        skeleton order (:data:`deepepil.labels.vocabulary.JOINT_NAMES`).
    """
    by_joint: dict[str, list[Mapping[str, Any]]] = {}
    for row in rows:
        by_joint.setdefault(row["joint"], []).append(row)
    out = []
    for joint in _joint_order(by_joint):
        position = interpolate_joint(sorted(by_joint[joint], key=lambda r: r["frame_index"]), int(frame_index))
        if position is not None:
            out.append({"joint": joint, **position})
    frame = pd.DataFrame(out, columns=list(JOINTS_AT_COLUMNS))
    return frame.astype({name: "float64" for name in _VALUES} | {"keyframe": bool, "joint": object})


class KeypointLifter:
    """Lifts a click on the IR or depth view of one recording to camera coordinates (metres).

    Parameters
    ----------
    dataset : xarray.Dataset
        The open recording (needs a ``depth`` stream and a calibration).
    search_radius_px : int
        How far around a clicked hole to look for a depth reading (``lift_pixel``'s radius).
    """

    def __init__(self, dataset: Any, *, search_radius_px: int = 3) -> None:
        self.dataset = dataset
        self.search_radius_px = search_radius_px

    @property
    def n_frames(self) -> int:
        return int(self.dataset.sizes["time"])

    def check_frame(self, frame_index: Any) -> int:
        """``frame_index`` as an int within the recording; raise naming the range otherwise."""
        if isinstance(frame_index, bool) or not isinstance(frame_index, (int, np.integer)) \
                or not 0 <= frame_index < self.n_frames:
            raise ValidationError(f"frame_index must be a whole frame number from 0 to {self.n_frames - 1}, "
                                  f"got {frame_index!r}")
        return int(frame_index)

    def lift(self, frame_index: Any, u_px: Any, v_px: Any) -> dict[str, float]:
        """``{u_px, v_px, x_m, y_m, z_m}`` of a click on ``frame_index``; raise a ValidationError when it cannot be.

        Raises
        ------
        deepepil.errors.ValidationError
            No depth stream or calibration, a frame out of range, a pixel outside the image or
            not a number, or a hole with no depth reading within the search radius (nothing is
            stored then).
        """
        from deepepil.recordings.geometry import lift_pixel

        frame_index = self.check_frame(frame_index)
        if "depth" not in self.dataset.data_vars:
            raise ValidationError(f"this recording has no depth stream (it has {', '.join(self.dataset.data_vars)}):"
                                  f" joints are placed in 3D on the depth, so they cannot be placed here")
        for name, value in (("u_px", u_px), ("v_px", v_px)):
            if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
                raise ValidationError(f"{name} must be a finite number of depth-image pixels, got {value!r}")
        depth = self.dataset["depth"][frame_index].values
        try:
            point = lift_pixel(depth, float(u_px), float(v_px), self.dataset, search_radius_px=self.search_radius_px)
        except ValidationError as exc:
            if "no depth reading" not in str(exc):  # outside the image, a broken calibration
                raise ValidationError(f"joint not placed on frame {frame_index}: {exc}") from None
            raise ValidationError(
                f"joint not placed: the depth camera has no reading within {self.search_radius_px} px of pixel "
                f"({u_px:.1f}, {v_px:.1f}) on frame {frame_index} (a hole: black in the depth view, often at the "
                f"edge of the body); click on the body nearby") from None
        return {"u_px": float(u_px), "v_px": float(v_px), "x_m": point.x_m, "y_m": point.y_m, "z_m": point.z_m}


def rgb_projection(dataset: Any) -> dict[str, Any] | None:
    """How the front end projects a joint's 3D position into the RGB view, or None (no RGB or no calibration).

    Returns ``{width, height, fx, fy, cx, cy, rotation, translation_m}``: the colour camera's
    intrinsics (pixels, for an image of ``width`` x ``height``) and the depth-to-colour transform
    (``p_rgb = rotation @ p + translation_m``, :func:`deepepil.recordings.geometry.depth_to_rgb_transform`).
    """
    from deepepil.recordings.geometry import Intrinsics, depth_to_rgb_transform

    if "rgb" not in getattr(dataset, "data_vars", ()):
        return None
    try:
        intr = Intrinsics.from_calibration(dataset, "rgb")
        rotation, translation = depth_to_rgb_transform(dataset)
    except ValidationError:
        return None
    return {"width": intr.width, "height": intr.height, "fx": intr.fx, "fy": intr.fy, "cx": intr.cx, "cy": intr.cy,
            "rotation": rotation.tolist(), "translation_m": translation.tolist()}

