"""Matplotlib figures of point clouds and semiology measures.

Each function returns a :class:`matplotlib.figure.Figure`. In a notebook with
``%matplotlib widget`` (ipympl) they are interactive: zoom, pan, rotate the 3D view,
read values under the cursor. matplotlib is imported on first use (it comes with the
``notebook`` extra).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd

from deepepil.analysis.semiology import dominant_frequency, power_spectrum
from deepepil.analysis.tracks import check_joints, joint_array
from deepepil.errors import ValidationError
from deepepil.recordings.geometry import PointCloud

__all__ = ["plot_point_cloud", "plot_version", "plot_trajectory", "plot_spectrum"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - the notebook extra brings it
        raise ImportError("plots need matplotlib: pip install 'deepepil[notebook]'") from None
    return plt


def plot_point_cloud(cloud: PointCloud, *, colour: Literal["ir", "rgb", "depth"] = "ir",
                     joints_m: Any = None, max_points: int = 20000, point_size: float = 2.0,
                     title: str | None = None) -> Any:
    """3D scatter of a :class:`~deepepil.recordings.geometry.PointCloud` (rotate it with ipympl).

    Parameters
    ----------
    colour : {"ir", "rgb", "depth"}
        What colours the points (``"ir"`` and ``"rgb"`` need the cloud to carry them).
    joints_m : array-like, optional
        ``(J, 3)`` points (metres) drawn on top, e.g. the frame's joints.
    max_points : int
        Draw at most this many points (an even subsample), to keep the figure responsive.
    """
    plt = _pyplot()
    if colour not in ("ir", "rgb", "depth"):
        raise ValidationError(f"colour must be 'ir', 'rgb' or 'depth', got {colour!r}")
    xyz = cloud.xyz_m
    step = max(1, int(np.ceil(len(xyz) / max_points)))
    pick = slice(None, None, step)
    if colour == "rgb":
        if cloud.rgb is None:
            raise ValidationError("this cloud has no RGB colours; build it with point_cloud(..., rgb=frame)")
        kw = {"c": cloud.rgb[pick] / 255.0}
    elif colour == "ir":
        if cloud.ir is None:
            raise ValidationError("this cloud has no IR values; build it with point_cloud(..., ir=frame)")
        ir = cloud.ir[pick].astype("float64")
        hi = np.percentile(ir, 99) if len(ir) else 1.0
        kw = {"c": np.clip(ir / max(hi, 1e-9), 0, 1) ** 0.5, "cmap": "gray", "vmin": 0, "vmax": 1}
    else:
        kw = {"c": xyz[pick, 2], "cmap": "viridis_r"}
    fig = plt.figure(figsize=(7, 5))
    ax = fig.add_subplot(projection="3d")
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_pane_color((0.1, 0.1, 0.1, 1.0))
    ax.scatter(xyz[pick, 0], xyz[pick, 1], xyz[pick, 2], s=point_size, linewidths=0, depthshade=False, **kw)
    if joints_m is not None:
        j = np.asarray(joints_m, dtype="float64").reshape(-1, 3)
        ax.scatter(j[:, 0], j[:, 1], j[:, 2], s=30, c="tab:red", depthshade=False, label="joints")
        ax.legend(loc="upper right")
    ax.set_xlabel("x (m)")
    ax.set_ylabel("y (m)")
    ax.set_zlabel("z (m, depth)")
    if len(xyz):
        span = np.ptp(xyz, axis=0)
        ax.set_box_aspect(np.maximum(span, 1e-3))
    ax.invert_zaxis()  # nearer the camera is up
    ax.view_init(elev=-60, azim=-75)  # from above the bed's side, the camera's view tilted
    ax.set_title(title or f"{len(xyz)} points")
    return fig


def plot_version(version: pd.DataFrame, *, episodes: pd.DataFrame | None = None,
                 truth: pd.DataFrame | None = None, threshold_deg: float | None = 30.0,
                 title: str = "Head version") -> Any:
    """Head version angle and angular velocity over time (a :func:`head_version` table).

    ``episodes`` (:func:`version_episodes`) are shaded; ``truth`` (a table of the same
    shape, e.g. :func:`~deepepil.analysis.validation.true_head_version`) is drawn dashed.
    """
    plt = _pyplot()
    fig, (ax_a, ax_v) = plt.subplots(2, 1, sharex=True, figsize=(8, 5), constrained_layout=True)
    t = version["seconds"]
    ax_a.plot(t, version["version_deg"], label="measured")
    ax_v.plot(t, version["angular_velocity_deg_per_s"], label="measured")
    if truth is not None:
        ax_a.plot(truth["seconds"], truth["version_deg"], "--", label="truth")
        ax_v.plot(truth["seconds"], truth["angular_velocity_deg_per_s"], "--", label="truth")
    if threshold_deg is not None:
        for y in (threshold_deg, -threshold_deg):
            ax_a.axhline(y, color="grey", lw=0.8, ls=":")
    fps = version.attrs.get("fps", 30.0)
    for _, ep in (episodes if episodes is not None else pd.DataFrame()).iterrows():
        for ax in (ax_a, ax_v):
            ax.axvspan(ep["onset_frame"] / fps, ep["end_frame"] / fps, color="tab:orange", alpha=0.15)
    ax_a.set_ylabel("version (deg)\n+ left, - right")
    ax_v.set_ylabel("angular velocity\n(deg/s)")
    ax_v.set_xlabel("time (s)")
    ax_a.legend(loc="upper left")
    ax_a.set_title(title)
    return fig


def plot_trajectory(tracks: pd.DataFrame, joint: str, *, fps: float, start_frame: int | None = None,
                    end_frame: int | None = None, title: str | None = None) -> Any:
    """A joint's displacement along x, y, z (from its mean) and its speed over time."""
    plt = _pyplot()
    (joint,) = check_joints([joint])
    frames, p = joint_array(tracks, [joint], start_frame=start_frame, end_frame=end_frame)
    mm = p[:, 0] * 1000.0
    t = frames / fps
    fig, (ax_p, ax_s) = plt.subplots(2, 1, sharex=True, figsize=(8, 5), constrained_layout=True)
    for k, name in enumerate(("x (right)", "y (down)", "z (depth)")):
        ax_p.plot(t, mm[:, k] - np.nanmean(mm[:, k]), label=name)
    ax_p.set_ylabel("displacement (mm)")
    ax_p.legend(loc="upper right", fontsize=8)
    ax_s.plot(t[1:], np.linalg.norm(np.diff(mm, axis=0), axis=1) * fps)
    ax_s.set_ylabel("speed (mm/s)")
    ax_s.set_xlabel("time (s)")
    ax_p.set_title(title or f"{joint}, frames {frames[0]}..{frames[-1]}")
    return fig


def plot_spectrum(tracks: pd.DataFrame, joint: str, *, fps: float, start_frame: int | None = None,
                  end_frame: int | None = None, band_hz: tuple[float, float] = (0.5, 8.0),
                  title: str | None = None) -> Any:
    """Power spectrum of a joint's detrended path, with the predominant frequency marked."""
    plt = _pyplot()
    (joint,) = check_joints([joint])
    _, p = joint_array(tracks, [joint], start_frame=start_frame, end_frame=end_frame)
    mm = p[:, 0] * 1000.0
    mm = mm[np.isfinite(mm).all(axis=1)]
    freqs, power, _ = power_spectrum(mm, fps)
    fig, ax = plt.subplots(figsize=(6, 3.5), constrained_layout=True)
    keep = freqs <= fps / 2
    ax.semilogy(freqs[keep], np.maximum(power[keep], 1e-12))
    ax.axvspan(*band_hz, color="grey", alpha=0.08, label="search band")
    try:
        f, share = dominant_frequency(mm, fps, band_hz=band_hz)
        ax.axvline(f, color="tab:red", lw=1, label=f"{f:.2f} Hz ({share:.0%} of band power)")
    except ValidationError as err:
        ax.text(0.5, 0.9, str(err)[:80], transform=ax.transAxes, ha="center", fontsize=8)
    ax.set_xlabel("frequency (Hz)")
    ax.set_ylabel("power (mm$^2$, a.u.)")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or f"{joint} spectrum")
    return fig
