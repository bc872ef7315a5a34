"""Joint tracks: 3D positions of skeleton joints over frames, from labels, ground truth or clicks.

A *track table* is a :class:`pandas.DataFrame` with one row per (frame, joint):

========================  =====================================================
``frame_index``           int, frame of the recording
``joint``                 str, one of :data:`JOINTS` (the skeleton vocabulary)
``x_m``, ``y_m``, ``z_m`` float, depth-camera coordinates in metres (see
                          :mod:`deepepil.recordings.geometry`); NaN when unknown
``source``                str, where the row came from (``"human"``, ``"model"``,
                          ``"truth"``, ...)
========================  =====================================================

It is the shape of the label service's keypoint table (``store.keypoints(recording_id)``),
so keypoints placed by clinicians are tracks already; :func:`tracks_from_keypoints` picks
one author's or source's rows. :func:`joint_array` turns a table into a ``(T, J, 3)``
array for computation.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepepil.errors import ValidationError
from deepepil.labels.vocabulary import JOINT_NAMES
from deepepil.recordings.geometry import Intrinsics, calibration_of, lift_pixels

__all__ = [
    "JOINTS",
    "TRACK_COLUMNS",
    "check_tracks",
    "check_joints",
    "tracks_from_array",
    "tracks_from_truth",
    "tracks_from_keypoints",
    "joint_array",
    "lift_keypoints",
]

#: The skeleton joints tracks may name (the label vocabulary's seed joints).
JOINTS: tuple[str, ...] = JOINT_NAMES
#: Columns of a track table.
TRACK_COLUMNS: tuple[str, ...] = ("frame_index", "joint", "x_m", "y_m", "z_m", "source")


def check_joints(joints: Iterable[str], allowed: Sequence[str] = JOINTS) -> tuple[str, ...]:
    """``joints`` as a tuple; ValidationError naming the unknown ones and the allowed joints."""
    if isinstance(joints, str):
        joints = (joints,)
    joints = tuple(joints)
    unknown = [j for j in joints if j not in allowed]
    if unknown:
        raise ValidationError(f"unknown joints {unknown}; joints are: {', '.join(allowed)}")
    return joints


def check_tracks(tracks: Any) -> pd.DataFrame:
    """Validate a track table (see the module docstring) and return it sorted by frame and joint."""
    if not isinstance(tracks, pd.DataFrame):
        raise ValidationError(f"tracks must be a pandas DataFrame with columns {TRACK_COLUMNS[:5]}, "
                              f"got {type(tracks).__name__}")
    missing = [c for c in TRACK_COLUMNS[:5] if c not in tracks.columns]
    if missing:
        raise ValidationError(f"tracks lack columns {missing}; a track table has {list(TRACK_COLUMNS)} "
                              f"(source optional)")
    check_joints(pd.unique(tracks["joint"]))
    frames = pd.to_numeric(tracks["frame_index"], errors="coerce")
    if frames.isna().any() or (frames < 0).any() or (frames != np.floor(frames)).any():
        raise ValidationError("tracks' frame_index must hold integers >= 0")
    dup = tracks.duplicated(["frame_index", "joint"], keep=False)
    if dup.any():
        first = tracks[dup].iloc[0]
        raise ValidationError(
            f"tracks have {int(dup.sum())} rows sharing a (frame_index, joint), e.g. frame {first.frame_index} "
            f"{first.joint!r}; keep one row per joint and frame (tracks_from_keypoints(..., author=..., "
            f"source=...) picks one labeller's)")
    out = tracks.copy()
    out["frame_index"] = frames.astype("int64")
    for c in ("x_m", "y_m", "z_m"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
    return out.sort_values(["frame_index", "joint"], kind="stable").reset_index(drop=True)


def tracks_from_array(joints_m: Any, joint_names: Sequence[str] = JOINTS, *, first_frame: int = 0,
                      source: str = "truth") -> pd.DataFrame:
    """A track table from a ``(T, J, 3)`` array of positions in metres (frames ``first_frame...``)."""
    a = np.asarray(joints_m, dtype="float64")
    names = check_joints(joint_names)
    if a.ndim != 3 or a.shape[1:] != (len(names), 3):
        raise ValidationError(f"joints_m must have shape (frames, {len(names)}, 3) for joints {list(names)}, "
                              f"got {a.shape}")
    t, j = a.shape[:2]
    return pd.DataFrame({
        "frame_index": np.repeat(np.arange(first_frame, first_frame + t, dtype="int64"), j),
        "joint": np.tile(np.asarray(names, dtype=object), t),
        "x_m": a[:, :, 0].ravel(), "y_m": a[:, :, 1].ravel(), "z_m": a[:, :, 2].ravel(),
        "source": source,
    })


def tracks_from_truth(truth: Any) -> pd.DataFrame:
    """The true joint tracks of a synthetic recording.

    Parameters
    ----------
    truth : SyntheticRecording, dict or path
        The recording, its ``ground_truth`` dict, or the ``NAME.truth.json`` written beside it.

    Returns
    -------
    pandas.DataFrame
        A track table with ``source="truth"``; ``attrs["fps"]`` is the recording's frame rate.
        Joints are skeleton centres (inside the body), not surface points.
    """
    if hasattr(truth, "ground_truth") and hasattr(truth, "joints_m"):  # a SyntheticRecording
        joints, names, fps = truth.joints_m, JOINTS, truth.fps
    else:
        if isinstance(truth, (str, os.PathLike)):
            truth = json.loads(Path(truth).read_text())
        if not isinstance(truth, Mapping) or "joints_m" not in truth:
            raise ValidationError("truth must be a SyntheticRecording, its ground_truth dict or a .truth.json path")
        joints, names, fps = truth["joints_m"], truth.get("joint_names", JOINTS), truth.get("fps")
    out = tracks_from_array(joints, names, source="truth")
    out.attrs["fps"] = None if fps is None else float(fps)
    return out


def tracks_from_keypoints(keypoints: pd.DataFrame, *, author: str | None = None, source: str | None = None,
                          fps: float | None = None) -> pd.DataFrame:
    """The track table of keypoints from the label service (``store.keypoints(recording_id)``).

    Rows without 3D coordinates (placed but not lifted) keep NaN positions; deleted rows
    are dropped. ``author`` and ``source`` select one labeller's or one model's
    keypoints; when several remain for a joint on a frame, a ValidationError names them.
    ``attrs["fps"]`` comes from ``fps`` or the table's ``fps`` column.
    """
    if not isinstance(keypoints, pd.DataFrame):
        raise ValidationError(f"keypoints must be the DataFrame of store.keypoints(...), "
                              f"got {type(keypoints).__name__}")
    needed = ("frame_index", "joint", "x_m", "y_m", "z_m")
    missing = [c for c in needed if c not in keypoints.columns]
    if missing:
        raise ValidationError(f"keypoints lack columns {missing}; pass the table of store.keypoints(recording_id)")
    kp = keypoints
    if "deleted" in kp.columns:
        kp = kp[~kp["deleted"].astype(bool)]
    if "recording_id" in kp.columns and kp["recording_id"].nunique() > 1:
        raise ValidationError(f"keypoints of {kp['recording_id'].nunique()} recordings; "
                              f"take one: store.keypoints(recording_id)")
    for column, value in (("author", author), ("source", source)):
        if value is not None:
            if column not in kp.columns:
                raise ValidationError(f"keypoints have no {column!r} column to select {value!r} in")
            kp = kp[kp[column] == value]
    dup = kp.duplicated(["frame_index", "joint"], keep=False)
    if dup.any():
        row = kp[dup].iloc[0]
        who = kp[dup & (kp.frame_index == row.frame_index) & (kp.joint == row.joint)]
        names = sorted({f"{a}/{s}" for a, s in zip(who.get("author", ["?"] * len(who)),
                                                      who.get("source", ["?"] * len(who)))})
        raise ValidationError(f"joint {row.joint!r} on frame {row.frame_index} has {len(who)} keypoints "
                              f"(author/source: {', '.join(names)}); pick one with author=... or source=...")
    out = kp.loc[:, list(needed)].copy()
    out["source"] = kp["source"].to_numpy() if "source" in kp.columns else "human"
    if fps is None and "fps" in kp.columns and len(kp):
        fps = float(kp["fps"].iloc[0])
    out = check_tracks(out)
    out.attrs["fps"] = fps
    return out


def joint_array(tracks: pd.DataFrame, joints: Sequence[str] | None = None, *, start_frame: int | None = None,
                end_frame: int | None = None, interpolate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``joints`` on every frame of ``[start_frame, end_frame)``.

    Parameters
    ----------
    tracks : pandas.DataFrame
        A track table.
    joints : sequence of str, optional
        Joints to return, in this order; default all of :data:`JOINTS` present.
    start_frame, end_frame : int, optional
        Frame range (end exclusive); default the tracks' first to last frame.
    interpolate : bool
        Fill frames between known positions linearly (keyframes); frames before the
        first or after the last known position stay NaN.

    Returns
    -------
    frames : numpy.ndarray
        ``(T,)`` frame indices.
    positions_m : numpy.ndarray
        ``(T, len(joints), 3)`` metres, NaN where unknown.
    """
    tracks = check_tracks(tracks)
    if joints is None:
        present = set(tracks["joint"])
        joints = [j for j in JOINTS if j in present]
    joints = check_joints(joints)
    if len(tracks) == 0 and (start_frame is None or end_frame is None):
        raise ValidationError("tracks are empty; there is nothing to measure")
    lo = int(tracks["frame_index"].min()) if start_frame is None else int(start_frame)
    hi = int(tracks["frame_index"].max()) + 1 if end_frame is None else int(end_frame)
    if hi <= lo:
        raise ValidationError(f"the frame range [{lo}, {hi}) is empty; end_frame must exceed start_frame")
    frames = np.arange(lo, hi, dtype="int64")
    out = np.full((len(frames), len(joints), 3), np.nan)
    for k, joint in enumerate(joints):
        rows = tracks[tracks["joint"] == joint]
        rows = rows[rows[["x_m", "y_m", "z_m"]].notna().all(axis=1)]
        if rows.empty:
            continue
        f = rows["frame_index"].to_numpy()
        xyz = rows[["x_m", "y_m", "z_m"]].to_numpy()
        if interpolate:
            inside = (frames >= f[0]) & (frames <= f[-1])
            for c in range(3):
                out[inside, k, c] = np.interp(frames[inside], f, xyz[:, c])
        else:
            sel = (f >= lo) & (f < hi)
            out[f[sel] - lo, k] = xyz[sel]
    return frames, out


def lift_keypoints(keypoints: pd.DataFrame, depth_frames: Any, calibration: Any = None, *,
                   search_radius_px: int = 3) -> pd.DataFrame:
    """3D positions of 2D keypoints (``u_px``, ``v_px``) lifted through each frame's depth.

    Parameters
    ----------
    keypoints : pandas.DataFrame
        Rows with ``frame_index``, ``joint``, ``u_px``, ``v_px`` (e.g. clicks on the IR view).
    depth_frames : xarray.Dataset or callable
        An opened recording (its ``depth`` stream), or ``frame_index -> depth frame``.
    calibration : dict, optional
        Default: the recording's ``attrs["calibration"]``.
    search_radius_px : int
        See :func:`~deepepil.recordings.geometry.lift_pixel`.

    Returns
    -------
    pandas.DataFrame
        ``keypoints`` with ``x_m``, ``y_m``, ``z_m`` set (NaN where no depth reading lies
        within the radius) and ``lift_distance_px`` (how far the depth was taken from).
    """
    needed = ("frame_index", "joint", "u_px", "v_px")
    if not isinstance(keypoints, pd.DataFrame) or any(c not in keypoints.columns for c in needed):
        raise ValidationError(f"keypoints must be a DataFrame with columns {list(needed)}")
    check_joints(pd.unique(keypoints["joint"]))
    if callable(depth_frames):
        read: Callable[[int], Any] = depth_frames
        if calibration is None:
            raise ValidationError("pass calibration=... when depth_frames is a function")
    else:
        if "depth" not in getattr(depth_frames, "data_vars", {}):
            raise ValidationError("depth_frames must be an opened recording with a depth stream, or a function "
                                  "frame_index -> depth frame")
        ds = depth_frames

        def read(i: int) -> np.ndarray:
            return ds.depth[i].values

        calibration = ds if calibration is None else calibration
    cal = calibration_of(calibration)
    Intrinsics.from_calibration(cal)  # fail early on a bad calibration
    out = keypoints.copy()
    xyz = np.full((len(out), 3), np.nan)
    dist = np.full(len(out), np.nan)
    frames = out["frame_index"].to_numpy()
    uv = out[["u_px", "v_px"]].to_numpy(dtype="float64")
    for frame in np.unique(frames):
        rows = np.flatnonzero(frames == frame)
        xyz[rows], dist[rows] = lift_pixels(read(int(frame)), uv[rows], cal, search_radius_px=search_radius_px)
    out["x_m"], out["y_m"], out["z_m"] = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    out["lift_distance_px"] = dist
    return out
