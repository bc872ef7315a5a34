"""Quantitative semiology from joint tracks: head version, limb extent, speed and rhythm.

Every function takes a *track table* (:mod:`deepepil.analysis.tracks`: ``frame_index``,
``joint``, ``x_m``, ``y_m``, ``z_m``) and the frame rate, and returns a DataFrame whose
column names carry units (``_deg``, ``_deg_per_s``, ``_mm``, ``_mm_per_s``, ``_hz``,
``_seconds``). Positions are depth-camera coordinates in metres; measures are in mm.

Head version (:func:`head_version`)
    The angle of the head about the trunk's long axis, in the trunk's transverse plane.
    The trunk frame comes from the shoulders and hips on every frame: ``s`` from the
    mid-hips to the mid-shoulders (cranial), ``l`` from the right to the left shoulder
    (the patient's left), ``a = l x s`` (anterior). A supine head turns about the back
    of the skull resting on the pillow, so the head keypoint moves on a circle about
    that pivot. The pivot comes from a robust circle fit of the head keypoint's
    (``l``, ``a``) position relative to the mid-shoulders over the whole track, started
    ``head_radius_m`` behind the median head position (the resting head facing up) and
    staying there when the head hardly turns. The neck keypoint is not used: seen from
    above, the chin often hides it. **Sign**: positive when the face turns towards the
    patient's *left* (a right-handed rotation about the cranial axis; the synthetic
    generator's ``head_yaw`` has the same sign), negative to the right; ``side``
    columns name it.
Version episodes (:func:`version_episodes`)
    Runs of ``|version| >= threshold_deg`` (default 30 degrees) to one side lasting at
    least ``min_duration_seconds`` (default 1 s): onset (the threshold crossing), the
    start of the turn that led to it (walking back while the head turns towards the
    side faster than :data:`TURN_START_DEG_PER_S`), duration, peak angle and peak
    angular velocity.
Limb measures (:func:`joint_measures`)
    Over an interval: extent (bounding-box diagonal of the trajectory), path length,
    mean and peak speed, and the predominant frequency of the detrended trajectory
    (:func:`dominant_frequency`: Welch spectrum summed over x, y, z, peak refined by
    parabolic interpolation), e.g. the rate of clonic jerks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from deepepil.analysis.tracks import check_joints, check_tracks, joint_array
from deepepil.errors import ValidationError
from deepepil.labels.vocabulary import REGIONS

__all__ = [
    "REGION_EFFECTORS",
    "MIN_FREQUENCY_SAMPLES",
    "TURN_START_DEG_PER_S",
    "HEAD_RADIUS_PER_TRUNK_LENGTH",
    "head_version",
    "version_episodes",
    "power_spectrum",
    "dominant_frequency",
    "joint_measures",
    "region_measures",
    "moi_measures",
]

#: Joints whose movement stands for each region (the distal joint of a limb).
REGION_EFFECTORS: Mapping[str, tuple[str, ...]] = {
    "head/face": ("head",),
    "trunk": ("neck",),
    "left upper limb": ("left_wrist",),
    "right upper limb": ("right_wrist",),
    "left lower limb": ("left_ankle",),
    "right lower limb": ("right_ankle",),
    "whole body": ("head", "left_wrist", "right_wrist", "left_ankle", "right_ankle"),
}
#: Fewest samples :func:`dominant_frequency` works on.
MIN_FREQUENCY_SAMPLES = 16
#: Fewest cycles of the predominant rhythm an interval must hold for a frequency.
MIN_CYCLES = 2.0
_VERSION_JOINTS = ("head", "left_shoulder", "right_shoulder", "left_hip", "right_hip")
#: How far (relative) a fitted head radius may differ from the anthropometric one and be kept.
_FREE_RADIUS_TOLERANCE = 0.15
#: Head radius (head keypoint to the axis it turns about) per metre of trunk (mid-hips to
#: mid-shoulders): about 0.1 m for a 0.5 m adult trunk.
HEAD_RADIUS_PER_TRUNK_LENGTH = 0.2
#: Angular span (deg) of head positions needed to trust a circle fit for the pivot.
_MIN_FIT_SPAN_DEG = 30.0
#: A turn starts where the head's angular velocity towards the side rises above this.
TURN_START_DEG_PER_S = 10.0


def _fps(fps: float | None, tracks: pd.DataFrame | None) -> float:
    if fps is None:
        fps = tracks.attrs.get("fps") if isinstance(tracks, pd.DataFrame) else None
    if fps is None:
        raise ValidationError("the frame rate is unknown: pass fps=... (e.g. 30.0)")
    try:
        fps = float(fps)
    except (TypeError, ValueError):
        raise ValidationError(f"fps must be a positive number, got {fps!r}") from None
    if not (math.isfinite(fps) and fps > 0):
        raise ValidationError(f"fps must be a positive number, got {fps!r}")
    return fps


def _smooth(x: np.ndarray, window_frames: int) -> np.ndarray:
    """Centred moving average over ``window_frames`` along axis 0, NaN-aware."""
    if window_frames <= 1:
        return x
    frame = pd.DataFrame(x.reshape(len(x), -1))
    out = frame.rolling(window_frames, center=True, min_periods=1).mean().to_numpy().copy()
    out[np.isnan(x.reshape(len(x), -1))] = np.nan
    return out.reshape(x.shape)


def _window(smoothing_seconds: float, fps: float) -> int:
    if not (isinstance(smoothing_seconds, (int, float)) and smoothing_seconds >= 0):
        raise ValidationError(f"smoothing_seconds must be a number >= 0, got {smoothing_seconds!r}")
    n = int(round(smoothing_seconds * fps))
    return n + 1 - n % 2 if n > 1 else 1  # odd, so the average stays centred


def _unit(v: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _circle_fit(x: np.ndarray, y: np.ndarray, center: np.ndarray, radius: float | None,
                iterations: int = 30) -> tuple[np.ndarray, float, np.ndarray]:
    """Robust geometric circle fit (Tukey-weighted Gauss-Newton) from an initial ``center``.

    With ``radius`` given it stays fixed; else it is fitted too. Returns the centre, the
    radius and the final weights (0 for outliers).
    """
    c = np.array(center, dtype="float64")
    r = float(np.median(np.hypot(x - c[0], y - c[1]))) if radius is None else float(radius)
    w = np.ones_like(x)
    for _ in range(iterations):
        d = np.maximum(np.hypot(x - c[0], y - c[1]), 1e-9)
        e = d - r
        scale = max(1.4826 * float(np.median(np.abs(e - np.median(e)))), 0.002)
        u = e / (4.685 * scale)
        w = np.where(np.abs(u) < 1, (1 - u * u) ** 2, 0.0)
        jac = [-(x - c[0]) / d, -(y - c[1]) / d] + ([] if radius is not None else [-np.ones_like(x)])
        a = np.column_stack(jac) * np.sqrt(w)[:, None]
        step, *_ = np.linalg.lstsq(a, -e * np.sqrt(w), rcond=None)
        c += step[:2]
        if radius is None:
            r += step[2]
        if np.abs(step).max() < 1e-6:
            break
    return c, r, w


def _pivot(lat: np.ndarray, ant: np.ndarray, head_radius_m: float) -> tuple[float, float, float, str]:
    """The head's pivot in (lateral, anterior) coordinates, its radius, and how it was found.

    The resting head is taken to face straight up to start with (pivot ``head_radius_m``
    behind the median head position); a robust circle fit then moves the pivot where
    the head's path says. The radius is fitted too when the path determines it (within
    :data:`_FREE_RADIUS_TOLERANCE` of ``head_radius_m``), else it stays ``head_radius_m``.
    """
    ok = np.isfinite(lat) & np.isfinite(ant)
    x, y = lat[ok], ant[ok]
    start = np.array([np.median(x), np.median(y) - head_radius_m])
    if len(x) < 8:
        return float(start[0]), float(start[1]), head_radius_m, "assumed"
    c, r, w = _circle_fit(x, y, start, None)
    angles = np.degrees(np.arctan2(x - c[0], y - c[1]))[w > 0]
    span = np.percentile(angles, 98) - np.percentile(angles, 2) if len(angles) else 0.0
    if abs(r / head_radius_m - 1) <= _FREE_RADIUS_TOLERANCE and span >= _MIN_FIT_SPAN_DEG and c[1] < np.median(y):
        return float(c[0]), float(c[1]), float(r), "circle fit"
    c, r, w = _circle_fit(x, y, start, head_radius_m)
    if c[1] >= np.median(y):  # a pivot in front of the face is no pivot: keep the resting assumption
        c = start
    return float(c[0]), float(c[1]), head_radius_m, "circle fit, radius fixed"


def head_version(tracks: pd.DataFrame, *, fps: float | None = None, smoothing_seconds: float = 0.1,
                 head_radius_m: float | None = None) -> pd.DataFrame:
    """Head rotation relative to the trunk on every frame (see the module docstring).

    Parameters
    ----------
    tracks : pandas.DataFrame
        A track table with ``head``, both shoulders and both hips.
    fps : float, optional
        Frame rate; default ``tracks.attrs["fps"]``.
    smoothing_seconds : float
        Centred moving average of the angle before differentiating (0: none).
    head_radius_m : float, optional
        Distance from the head keypoint to the axis the head turns about; default
        :data:`HEAD_RADIUS_PER_TRUNK_LENGTH` times the median trunk length. Used to start
        the pivot fit, and kept when the head's path does not determine it.

    Returns
    -------
    pandas.DataFrame
        ``frame_index``, ``seconds``, ``version_deg`` (positive: face to the patient's
        left), ``angular_velocity_deg_per_s``; NaN on frames missing a joint.
        ``fit_residual_mm``: how far the head keypoint lies off its circle about the
        pivot; large values (more than a few cm) flag frames where the head moved
        with the trunk or a keypoint is off, and the angle is not to be trusted.
        ``attrs``: ``fps``; ``pivot``, how the pivot was found (``"circle fit"``,
        ``"circle fit, radius fixed"``, or ``"assumed"`` for too few frames);
        ``head_radius_m``, the radius used.
    """
    fps = _fps(fps, tracks)
    window = _window(smoothing_seconds, fps)
    frames, p = joint_array(tracks, _VERSION_JOINTS)
    head, l_sh, r_sh, l_hip, r_hip = (p[:, i] for i in range(len(_VERSION_JOINTS)))
    mid_shoulders = (l_sh + r_sh) / 2
    trunk = mid_shoulders - (l_hip + r_hip) / 2
    s = _unit(trunk)
    lat_axis = l_sh - r_sh
    lat_axis = _unit(lat_axis - np.sum(lat_axis * s, axis=1, keepdims=True) * s)
    ant_axis = np.cross(lat_axis, s)
    rel = head - mid_shoulders
    lat = np.sum(rel * lat_axis, axis=1)
    ant = np.sum(rel * ant_axis, axis=1)
    if not np.isfinite(lat).any():
        raise ValidationError(f"no frame has all of {list(_VERSION_JOINTS)}: head version needs the head, both "
                              f"shoulders and both hips")
    if head_radius_m is None:
        head_radius_m = HEAD_RADIUS_PER_TRUNK_LENGTH * float(np.nanmedian(np.linalg.norm(trunk, axis=1)))
    elif not (isinstance(head_radius_m, (int, float)) and 0 < head_radius_m < 1):
        raise ValidationError(f"head_radius_m must be in (0, 1) metres (about 0.1), got {head_radius_m!r}")
    xc, yc, radius, how = _pivot(lat, ant, float(head_radius_m))
    angle = _smooth(np.degrees(np.arctan2(lat - xc, ant - yc)), window)
    velocity = np.gradient(angle) * fps if len(angle) > 1 else np.full_like(angle, np.nan)
    residual_mm = np.abs(np.hypot(lat - xc, ant - yc) - radius) * 1000.0
    out = pd.DataFrame({"frame_index": frames, "seconds": frames / fps, "version_deg": angle,
                        "angular_velocity_deg_per_s": velocity, "fit_residual_mm": residual_mm})
    out.attrs.update(fps=fps, pivot=how, head_radius_m=radius)
    return out


def version_episodes(version: pd.DataFrame, *, threshold_deg: float = 30.0,
                     min_duration_seconds: float = 1.0) -> pd.DataFrame:
    """Sustained head turns in a :func:`head_version` table.

    An episode is a run of frames with ``|version_deg| >= threshold_deg`` to one side
    lasting at least ``min_duration_seconds``.

    Returns
    -------
    pandas.DataFrame
        One row per episode: ``side`` ("left"/"right"), ``turn_start_frame`` (where the
        turn leading to the crossing began: the first of the frames just before the onset
        turning towards the side faster than :data:`TURN_START_DEG_PER_S`),
        ``onset_frame`` (first frame past the threshold), ``end_frame`` (exclusive),
        ``onset_seconds``, ``duration_seconds``,
        ``peak_deg`` (signed), ``median_deg`` (the sustained angle, robust to brief
        errors of the keypoints), ``peak_angular_velocity_deg_per_s`` (towards the side,
        from the turn start to the end).
    """
    needed = ("frame_index", "version_deg", "angular_velocity_deg_per_s")
    if not isinstance(version, pd.DataFrame) or any(c not in version.columns for c in needed):
        raise ValidationError(f"version must be the table of head_version(...), with columns {list(needed)}")
    if not (isinstance(threshold_deg, (int, float)) and 0 < threshold_deg < 180):
        raise ValidationError(f"threshold_deg must be in (0, 180) degrees, got {threshold_deg!r}")
    if not (isinstance(min_duration_seconds, (int, float)) and min_duration_seconds >= 0):
        raise ValidationError(f"min_duration_seconds must be a number >= 0, got {min_duration_seconds!r}")
    fps = version.attrs.get("fps")
    frames = version["frame_index"].to_numpy()
    if fps is None:
        if len(frames) < 2 or "seconds" not in version.columns:
            raise ValidationError("the version table carries no frame rate (attrs['fps']); pass the table of "
                                  "head_version(...)")
        times = version["seconds"].to_numpy()
        fps = (frames[-1] - frames[0]) / (times[-1] - times[0])
    angle = version["version_deg"].to_numpy()
    velocity = version["angular_velocity_deg_per_s"].to_numpy()
    columns = ["side", "turn_start_frame", "onset_frame", "end_frame", "onset_seconds", "duration_seconds",
               "peak_deg", "median_deg", "peak_angular_velocity_deg_per_s"]
    rows = []
    for sign, side in ((1.0, "left"), (-1.0, "right")):
        above = np.nan_to_num(sign * angle, nan=-np.inf) >= threshold_deg
        edges = np.diff(np.concatenate([[0], above.astype("int8"), [0]]))
        for start, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
            if (stop - start) / fps < min_duration_seconds:
                continue
            turn = start
            while turn > 0 and sign * velocity[turn - 1] > TURN_START_DEG_PER_S:
                turn -= 1
            peak = start + int(np.nanargmax(sign * angle[start:stop]))
            rows.append({
                "side": side, "turn_start_frame": int(frames[turn]), "onset_frame": int(frames[start]),
                "end_frame": int(frames[stop - 1]) + 1, "onset_seconds": frames[start] / fps,
                "duration_seconds": (stop - start) / fps, "peak_deg": float(angle[peak]),
                "median_deg": float(np.nanmedian(angle[start:stop])),
                "peak_angular_velocity_deg_per_s": float(np.nanmax(sign * velocity[turn:stop])) * sign,
            })
    out = pd.DataFrame(rows, columns=columns)
    return out.sort_values("onset_frame", kind="stable").reset_index(drop=True)


def _check_trajectory(positions: Any, fps: float) -> np.ndarray:
    x = np.asarray(positions, dtype="float64")
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2:
        raise ValidationError(f"positions must have shape (samples,) or (samples, k), got {x.shape}")
    if len(x) < MIN_FREQUENCY_SAMPLES:
        raise ValidationError(f"a frequency needs at least {MIN_FREQUENCY_SAMPLES} samples "
                              f"({MIN_FREQUENCY_SAMPLES / fps:.2f} s at {fps:g} fps), got {len(x)}")
    if not np.isfinite(x).all():
        raise ValidationError("positions hold NaN or inf; interpolate or crop the gaps first")
    return x


def power_spectrum(positions: Any, fps: float, *, segment_seconds: float = 4.0
                   ) -> tuple[np.ndarray, np.ndarray, int]:
    """Welch power spectrum of a detrended trajectory, summed over its columns.

    The trajectory (``(T,)`` or ``(T, k)``, e.g. x, y, z) loses a straight line per
    column, is split into Hann-windowed segments of ``segment_seconds`` overlapping by
    half (one segment when shorter), and the zero-padded periodograms are averaged.

    Returns
    -------
    freqs_hz, power : numpy.ndarray
        Frequencies and power (units of positions squared, arbitrary scale).
    segment_samples : int
        Samples per segment (the spectral resolution is ``fps / segment_samples``).
    """
    fps = _fps(fps, None)
    x = _check_trajectory(positions, fps)
    n = len(x)
    t = np.arange(n, dtype="float64") - (n - 1) / 2
    centred = x - x.mean(axis=0)
    x = centred - np.outer(t, (t @ centred) / (t @ t))
    seg = min(n, max(MIN_FREQUENCY_SAMPLES, int(round(segment_seconds * fps))))
    nfft = max(4096, 1 << (8 * seg - 1).bit_length())
    window = np.hanning(seg)
    power = np.zeros(nfft // 2 + 1)
    starts = range(0, n - seg + 1, max(seg // 2, 1))
    for s in starts:
        chunk = x[s:s + seg]
        chunk = (chunk - chunk.mean(axis=0)) * window[:, None]
        power += (np.abs(np.fft.rfft(chunk, nfft, axis=0)) ** 2).sum(axis=1)
    return np.fft.rfftfreq(nfft, 1.0 / fps), power / len(starts), seg


def dominant_frequency(positions: Any, fps: float, *, band_hz: tuple[float, float] = (0.5, 8.0),
                       segment_seconds: float = 4.0) -> tuple[float, float]:
    """Predominant frequency of a trajectory (Hz) and the share of power around it.

    The highest peak of :func:`power_spectrum` inside ``band_hz``, refined by parabolic
    interpolation of the log power.

    Returns
    -------
    frequency_hz : float
    peak_power_fraction : float
        Share of the in-band power within one spectral resolution (``fps / samples per
        segment``) of the peak: near 1 for a clean rhythm, low for irregular movement.

    Raises
    ------
    deepepil.errors.ValidationError
        Fewer than :data:`MIN_FREQUENCY_SAMPLES` samples, non-finite values, a band
        outside ``[0, fps / 2]``, no spectral peak inside the band (no movement, or power
        rising past its edge), or an interval holding fewer than :data:`MIN_CYCLES`
        cycles of the rhythm found.
    """
    fps = _fps(fps, None)
    try:
        lo, hi = (float(f) for f in band_hz)
    except (TypeError, ValueError):
        raise ValidationError(f"band_hz must be (low, high) in Hz, got {band_hz!r}") from None
    if not 0 <= lo < hi <= fps / 2:
        raise ValidationError(f"band_hz must satisfy 0 <= low < high <= fps / 2 = {fps / 2:g} Hz, got {band_hz}")
    freqs, power, seg = power_spectrum(positions, fps, segment_seconds=segment_seconds)
    n = len(np.asarray(positions))
    band = (freqs >= lo) & (freqs <= hi)
    if not band.any() or power[band].sum() <= 0:
        raise ValidationError("the trajectory does not move within band_hz; there is no rhythm to measure")
    k = int(np.flatnonzero(band)[np.argmax(power[band])])
    if (k > 0 and power[k - 1] > power[k]) or (k + 1 < len(power) and power[k + 1] > power[k]):
        raise ValidationError(f"the spectrum has no peak inside band_hz {band_hz}: its power keeps rising past the "
                              f"band's edge, so there is no rhythm in the band")
    f_peak = float(freqs[k])
    if 0 < k < len(power) - 1 and min(power[k - 1], power[k], power[k + 1]) > 0:
        a, b, c = np.log(power[k - 1:k + 2])
        denom = a - 2 * b + c
        if denom < 0:
            f_peak += 0.5 * (a - c) / denom * float(freqs[1] - freqs[0])
    near = band & (np.abs(freqs - f_peak) <= fps / seg)
    fraction = float(power[near].sum() / power[band].sum())
    if f_peak * n / fps < MIN_CYCLES:
        raise ValidationError(
            f"{n / fps:.2f} s holds {f_peak * n / fps:.1f} cycles of the strongest rhythm ({f_peak:.2f} Hz); a "
            f"frequency needs at least {MIN_CYCLES:g} cycles: use a longer interval or raise band_hz's low edge")
    return f_peak, fraction


def _interval_measures(frames: np.ndarray, xyz_m: np.ndarray, fps: float, window: int,
                       band_hz: tuple[float, float]) -> dict[str, float]:
    """Measures of one joint's ``(T, 3)`` trajectory; NaN where it cannot be measured."""
    out = dict.fromkeys(("extent_mm", "path_length_mm", "mean_speed_mm_per_s", "peak_speed_mm_per_s",
                         "frequency_hz", "peak_power_fraction"), math.nan)
    ok = np.isfinite(xyz_m).all(axis=1)
    out["valid_fraction"] = float(ok.mean()) if len(ok) else 0.0
    if ok.sum() < 2:
        return out
    first, last = np.flatnonzero(ok)[[0, -1]]
    mm = _smooth(xyz_m[first:last + 1] * 1000.0, window)  # inner gaps were interpolated by joint_array
    step = np.linalg.norm(np.diff(mm, axis=0), axis=1)
    out["extent_mm"] = float(np.linalg.norm(mm.max(axis=0) - mm.min(axis=0)))
    out["path_length_mm"] = float(step.sum())
    out["mean_speed_mm_per_s"] = float(step.sum() / (len(step) / fps))
    out["peak_speed_mm_per_s"] = float(step.max() * fps)
    try:
        out["frequency_hz"], out["peak_power_fraction"] = dominant_frequency(mm, fps, band_hz=band_hz)
    except ValidationError:
        pass
    return out


def joint_measures(tracks: pd.DataFrame, joints: Iterable[str] | None = None, *, fps: float | None = None,
                   start_frame: int | None = None, end_frame: int | None = None, smoothing_seconds: float = 0.0,
                   band_hz: tuple[float, float] = (0.5, 8.0)) -> pd.DataFrame:
    """Extent, path length, speed and predominant frequency of each joint over ``[start_frame, end_frame)``.

    Parameters
    ----------
    tracks : pandas.DataFrame
        A track table.
    joints : iterable of str, optional
        Default: the wrists.
    fps : float, optional
        Frame rate; default ``tracks.attrs["fps"]``.
    start_frame, end_frame : int, optional
        Interval (end exclusive); default the whole track.
    smoothing_seconds : float
        Centred moving average of positions first (0: none). It keeps sensor noise from
        inflating path length and speed, but also flattens fast jerks (0.1 s halves the
        peak speed of the synthetic clonic jerks).
    band_hz : (float, float)
        Where to look for the predominant frequency.

    Returns
    -------
    pandas.DataFrame
        One row per joint: ``joint``, ``start_frame``, ``end_frame``, ``duration_seconds``,
        ``extent_mm`` (bounding-box diagonal), ``path_length_mm``, ``mean_speed_mm_per_s``,
        ``peak_speed_mm_per_s``, ``frequency_hz`` and ``peak_power_fraction`` (NaN when the
        interval is too short, see :func:`dominant_frequency`), ``valid_fraction`` (frames
        with a position).
    """
    fps = _fps(fps, tracks)
    joints = check_joints(("left_wrist", "right_wrist") if joints is None else joints)
    window = _window(smoothing_seconds, fps)
    frames, p = joint_array(tracks, joints, start_frame=start_frame, end_frame=end_frame)
    rows = []
    for k, joint in enumerate(joints):
        rows.append({"joint": joint, "start_frame": int(frames[0]), "end_frame": int(frames[-1]) + 1,
                     "duration_seconds": len(frames) / fps,
                     **_interval_measures(frames, p[:, k], fps, window, band_hz)})
    return pd.DataFrame(rows)


def region_measures(tracks: pd.DataFrame, *, fps: float | None = None, regions: Iterable[str] | None = None,
                    start_frame: int | None = None, end_frame: int | None = None,
                    **options: Any) -> pd.DataFrame:
    """:func:`joint_measures` of each region's joints (:data:`REGION_EFFECTORS`), one row per (region, joint).

    ``options`` go to :func:`joint_measures` (``smoothing_seconds``, ``band_hz``).
    """
    fps = _fps(fps, tracks)
    regions = tuple(REGIONS if regions is None else ([regions] if isinstance(regions, str) else regions))
    unknown = [r for r in regions if r not in REGION_EFFECTORS]
    if unknown:
        raise ValidationError(f"unknown regions {unknown}; regions are: {', '.join(REGION_EFFECTORS)}")
    parts = []
    for region in regions:
        table = joint_measures(tracks, REGION_EFFECTORS[region], fps=fps, start_frame=start_frame,
                               end_frame=end_frame, **options)
        table.insert(0, "region", region)
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def _moi_rows(mois: Any) -> pd.DataFrame:
    if isinstance(mois, pd.DataFrame):
        table = mois
    elif isinstance(mois, Sequence) and all(isinstance(m, Mapping) for m in mois):
        table = pd.DataFrame(list(mois))
    else:
        raise ValidationError("mois must be a DataFrame (store.mois(recording_id)) or a list of dicts "
                              "(a truth file's 'mois')")
    needed = ("region", "start_frame", "end_frame")
    missing = [c for c in needed if c not in table.columns]
    if missing:
        raise ValidationError(f"mois lack columns {missing}; each MOI needs region, start_frame and end_frame")
    if "deleted" in table.columns:
        table = table[~table["deleted"].astype(bool)]
    unknown = sorted(set(table["region"]) - set(REGION_EFFECTORS))
    if unknown:
        raise ValidationError(f"unknown regions {unknown}; regions are: {', '.join(REGION_EFFECTORS)}")
    return table.reset_index(drop=True)


def moi_measures(tracks: pd.DataFrame, mois: Any, *, fps: float | None = None, smoothing_seconds: float = 0.0,
                 band_hz: tuple[float, float] = (0.5, 8.0), version_options: Mapping[str, Any] | None = None
                 ) -> pd.DataFrame:
    """Measures inside each movement of interest, for the joints of its region.

    Parameters
    ----------
    tracks : pandas.DataFrame
        A track table.
    mois : pandas.DataFrame or list of dict
        ``store.mois(recording_id)`` or a truth file's ``"mois"``: ``region``,
        ``start_frame``, ``end_frame`` (exclusive), optionally ``id``, ``label``, ``laterality``.
    fps : float, optional
        Frame rate; default ``tracks.attrs["fps"]``.
    smoothing_seconds, band_hz
        See :func:`joint_measures`.
    version_options : dict, optional
        Keyword arguments of :func:`head_version`.

    Returns
    -------
    pandas.DataFrame
        One row per (MOI, joint of :data:`REGION_EFFECTORS`): the MOI's columns, the
        :func:`joint_measures` columns, and for ``head/face`` MOIs (when the trunk joints
        are tracked) ``version_mean_deg``, ``version_peak_deg`` (signed, largest
        magnitude) and ``angular_velocity_peak_deg_per_s`` (largest magnitude, signed).
    """
    fps = _fps(fps, tracks)
    table = _moi_rows(mois)
    keep = [c for c in ("id", "region", "label", "laterality", "start_frame", "end_frame") if c in table.columns]
    version = None
    if (table["region"] == "head/face").any() and set(_VERSION_JOINTS) <= set(check_tracks(tracks)["joint"]):
        version = head_version(tracks, fps=fps, **dict(version_options or {}))
    rows = []
    for _, moi in table.iterrows():
        start, end = int(moi["start_frame"]), int(moi["end_frame"])
        measures = joint_measures(tracks, REGION_EFFECTORS[moi["region"]], fps=fps, start_frame=start,
                                  end_frame=end, smoothing_seconds=smoothing_seconds, band_hz=band_hz)
        info = {c: moi[c] for c in keep}
        extra = dict.fromkeys(("version_mean_deg", "version_peak_deg", "angular_velocity_peak_deg_per_s"), math.nan)
        if version is not None and moi["region"] == "head/face":
            inside = version[(version.frame_index >= start) & (version.frame_index < end)]
            angle = inside["version_deg"].to_numpy()
            speed = inside["angular_velocity_deg_per_s"].to_numpy()
            if np.isfinite(angle).any():
                extra["version_mean_deg"] = float(np.nanmean(angle))
                extra["version_peak_deg"] = float(angle[np.nanargmax(np.abs(angle))])
                extra["angular_velocity_peak_deg_per_s"] = float(speed[np.nanargmax(np.abs(speed))])
        for _, row in measures.iterrows():
            rows.append({**info, **row.drop(["start_frame", "end_frame"]).to_dict(), **extra})
    columns = [*keep, "joint", "duration_seconds", "extent_mm", "path_length_mm", "mean_speed_mm_per_s",
               "peak_speed_mm_per_s", "frequency_hz", "peak_power_fraction", "valid_fraction",
               "version_mean_deg", "version_peak_deg", "angular_velocity_peak_deg_per_s"]
    return pd.DataFrame(rows, columns=columns)
