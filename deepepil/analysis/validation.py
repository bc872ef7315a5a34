"""Ground truth of the semiology measures on synthetic recordings, and simulated clicks.

The synthetic generator (:mod:`deepepil.synthetic`) knows each frame's pose, so the true
values of the measures of :mod:`deepepil.analysis.semiology` can be read off it:

- :func:`true_head_version`: the angle of the head's anterior axis about the trunk's
  long axis (the chest's frame), per frame, with the sign of :func:`head_version`.
- :func:`true_rhythm`: the rate of a clonic or automatism MOI from the pose signal that
  drives the limb (the elbow flexion): clonic jerks slow down linearly (a chirp), so
  their start, end and mean rates come from a fit of the jerk times; automatisms are
  sinusoids, whose rate comes from zero crossings.
- :func:`simulated_clicks`: what a clinician clicking the joints on the depth/IR view
  would give: each true joint projected into the depth image and lifted back through
  the rendered depth (a surface point), left out where another body part hides the
  joint (the lifted point lies more than ``occlusion_m`` from it), as a clinician would.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from deepepil.analysis.semiology import head_version, joint_measures, version_episodes
from deepepil.analysis.tracks import JOINTS, check_joints, lift_keypoints, tracks_from_array, tracks_from_truth
from deepepil.errors import ValidationError
from deepepil.recordings.geometry import project_points

__all__ = ["true_head_version", "true_rhythm", "simulated_clicks", "accuracy_report"]


def _recording(rec: Any) -> Any:
    if not (hasattr(rec, "skeleton") and hasattr(rec, "script") and hasattr(rec, "render_frame")):
        raise ValidationError(f"expected a synthetic recording (deepepil.synthetic.make_recording), "
                              f"got {type(rec).__name__}")
    return rec


def true_head_version(rec: Any) -> pd.DataFrame:
    """The true head version of a synthetic recording: a table like :func:`head_version`'s."""
    sk = _recording(rec).skeleton
    face = sk.head_axes[:, 2]
    left, anterior = sk.chest_axes[:, 1], sk.chest_axes[:, 2]
    angle = np.degrees(np.arctan2(np.sum(face * left, axis=1), np.sum(face * anterior, axis=1)))
    frames = np.arange(len(angle))
    out = pd.DataFrame({"frame_index": frames, "seconds": frames / rec.fps, "version_deg": angle,
                        "angular_velocity_deg_per_s": np.gradient(angle) * rec.fps})
    out.attrs["fps"] = float(rec.fps)
    return out


def _peak_times(signal: np.ndarray) -> np.ndarray:
    """Sub-frame times (frames) of the jerk peaks of a clonic pose signal."""
    k = 15
    baseline = np.convolve(np.pad(signal, k // 2, mode="edge"), np.ones(k) / k, mode="valid")
    d = signal - baseline
    peaks = [i for i in range(1, len(d) - 1) if d[i] > d[i - 1] and d[i] >= d[i + 1] and d[i] > 0.3 * d.max()]
    times = []
    for i in peaks:
        a, b, c = signal[i - 1:i + 2]
        den = a - 2 * b + c
        times.append(i + (0.5 * (a - c) / den if den < 0 else 0.0))
    return np.asarray(times)


def true_rhythm(rec: Any, moi: Any) -> dict[str, float]:
    """The true rate (Hz) of a clonic or automatism MOI of a synthetic recording's upper limb.

    Parameters
    ----------
    rec : SyntheticRecording
    moi : MOI or dict
        One of ``rec.script.mois`` (or its ``to_dict``): label ``"clonic"`` or
        ``"manual automatism"`` on a left or right upper limb.

    Returns
    -------
    dict
        ``start_hz``, ``end_hz`` and ``mean_hz`` (over the MOI). Clonic jerks are fitted as
        the generator makes them: a phase ``f0 t + rate t^2 / 2`` from the MOI start with
        a jerk at each phase ``k + 1/4``. Automatisms have one rate (start = end = mean).
    """
    rec = _recording(rec)
    get = moi.get if isinstance(moi, dict) else (lambda key: getattr(moi, key))
    label, side = get("label"), get("laterality")
    start, end = int(get("start_frame")), int(get("end_frame"))
    if label not in ("clonic", "manual automatism") or side not in ("left", "right"):
        raise ValidationError(f"true_rhythm knows clonic and manual automatism MOIs of a left or right limb, "
                              f"got {label!r} ({side!r})")
    if get("region") == "head/face":
        raise ValidationError("true_rhythm reads the elbow; a head/face MOI has none")
    signal = np.asarray(rec.script.pose[f"{side}_elbow_flex"][start:end], dtype="float64")
    fps = float(rec.fps)
    if label == "clonic":
        t = _peak_times(signal) / fps
        if len(t) < 3:
            raise ValidationError(f"the clonic MOI {start}..{end} holds {len(t)} jerks; a rate needs 3")
        cycles = np.arange(len(t)) + 0.25
        (f0, rate), *_ = np.linalg.lstsq(np.column_stack([t, 0.5 * t * t]), cycles, rcond=None)
        duration = (end - start) / fps
        return {"start_hz": float(f0), "end_hz": float(f0 + rate * duration),
                "mean_hz": float(f0 + rate * duration / 2)}
    ramp = int(round(0.4 * fps))  # the automatism's ramps (see deepepil.synthetic.semiology)
    x = signal[ramp:len(signal) - ramp]
    if len(x) < 8:
        raise ValidationError(f"the automatism MOI {start}..{end} is too short for a rate")
    n = np.arange(len(x))
    x = x - np.polyval(np.polyfit(n, x, 1), n)
    sign = np.signbit(x)
    idx = np.flatnonzero(sign[1:] != sign[:-1])
    crossings = idx + x[idx] / (x[idx] - x[idx + 1])
    hz = (len(crossings) - 1) / 2 / ((crossings[-1] - crossings[0]) / fps)
    return {"start_hz": float(hz), "end_hz": float(hz), "mean_hz": float(hz)}


def simulated_clicks(rec: Any, frames: Iterable[int] | None = None, *, joints: Iterable[str] | None = None,
                     occlusion_m: float = 0.12, search_radius_px: int = 3) -> pd.DataFrame:
    """Joint tracks as clicks on the depth view would give them (see the module docstring).

    Parameters
    ----------
    rec : SyntheticRecording
    frames : iterable of int, optional
        Frames to click on; default all.
    joints : iterable of str, optional
        Default all of :data:`~deepepil.analysis.tracks.JOINTS`.
    occlusion_m : float
        A lifted point farther than this from the true joint centre counts as hidden.
    search_radius_px : int
        See :func:`~deepepil.recordings.geometry.lift_pixel`.

    Returns
    -------
    pandas.DataFrame
        A track table (``source="clicks"``) with ``u_px``, ``v_px`` and
        ``lift_distance_px``; hidden joints and holes have NaN positions.
        ``attrs["fps"]`` is set.
    """
    rec = _recording(rec)
    frames = np.arange(rec.num_frames) if frames is None else np.asarray(list(frames), dtype="int64")
    names = check_joints(JOINTS if joints is None else joints)
    index = [JOINTS.index(j) for j in names]
    truth = tracks_from_array(rec.joints_m[frames][:, index], names, source="clicks")
    truth["frame_index"] = np.repeat(frames, len(names))
    xyz_true = truth[["x_m", "y_m", "z_m"]].to_numpy()
    uv = project_points(xyz_true, rec.calibration)
    clicks = truth[["frame_index", "joint", "source"]].assign(u_px=uv[:, 0], v_px=uv[:, 1])
    out = lift_keypoints(clicks, lambda i: rec.render_frame(i, ("depth",))["depth"], rec.calibration,
                         search_radius_px=search_radius_px)
    hidden = np.linalg.norm(out[["x_m", "y_m", "z_m"]].to_numpy() - xyz_true, axis=1) > occlusion_m
    out.loc[hidden, ["x_m", "y_m", "z_m"]] = np.nan
    out.attrs["fps"] = float(rec.fps)
    return out


def _errors(rec: Any, name: str, tracks: pd.DataFrame, frames: np.ndarray) -> list[dict[str, Any]]:
    """Errors of one recording's measures from ``tracks`` against the truth, as long-format rows."""
    truth = true_head_version(rec)
    truth = truth[truth.frame_index.isin(frames)]
    truth.attrs["fps"] = float(rec.fps)
    version = head_version(tracks)
    merged = version.merge(truth, on="frame_index", suffixes=("", "_true"))
    err = (merged.version_deg - merged.version_deg_true).abs()
    rows = [("version abs error, median (deg)", err.median()), ("version abs error, p95 (deg)", err.quantile(0.95))]
    found, expected = version_episodes(version), version_episodes(truth)
    if len(found) == len(expected) == 1:
        f, e = found.iloc[0], expected.iloc[0]
        rows += [("version episode sustained angle error (deg)", f.median_deg - e.median_deg),
                 ("version episode peak error (deg)", f.peak_deg - e.peak_deg),
                 ("version onset error (frames)", f.onset_frame - e.onset_frame),
                 ("version duration error (s)", f.duration_seconds - e.duration_seconds)]
    elif len(found) != len(expected):
        rows.append(("version episodes found / true", f"{len(found)} / {len(expected)}"))
    exact = tracks_from_truth(rec)
    for moi in rec.script.mois:
        if moi.label not in ("clonic", "manual automatism") or not moi.region.endswith("upper limb"):
            continue
        joint = f"{moi.laterality}_wrist"
        got = joint_measures(tracks, [joint], start_frame=moi.start_frame, end_frame=moi.end_frame).iloc[0]
        ref = joint_measures(exact, [joint], start_frame=moi.start_frame, end_frame=moi.end_frame).iloc[0]
        rows.append((f"{moi.label} frequency error (Hz)", got.frequency_hz - true_rhythm(rec, moi)["mean_hz"]))
        if name == "clicks":
            for measure, what in (("extent_mm", "extent"), ("path_length_mm", "path length"),
                                  ("peak_speed_mm_per_s", "peak speed")):
                rows.append((f"{moi.label} {what} vs exact joints (%)", 100 * (got[measure] / ref[measure] - 1)))
    return [{"recording": rec.name, "syndrome": rec.patient.syndrome, "tracks": name, "measure": m, "error": v}
            for m, v in rows]


def accuracy_report(patients: int = 8, *, seconds: float = 20.0, size: str = "small", seed: int = 1,
                    syndromes: Iterable[str] = ("temporal", "frontal")) -> pd.DataFrame:
    """Errors of the semiology measures against the synthetic truth, from exact joints and from clicks.

    The first recording of each of ``patients`` cohort patients (of ``syndromes``) is
    measured from its exact joints and from :func:`simulated_clicks` on the frames of
    its seizure (one second either side). Returns long-format rows: ``recording``,
    ``syndrome``, ``tracks`` ("exact joints" or "clicks"), ``measure``, ``error``.
    """
    from deepepil.synthetic import make_cohort_profiles, make_recording

    rows = []
    for patient in make_cohort_profiles(patients, seed=seed):
        if patient.syndrome not in tuple(syndromes):
            continue
        rec = make_recording(patient, 0, seconds=seconds, size=size, seed=seed)
        seizure = rec.script.seizure
        frames = np.arange(max(seizure.onset_frame - int(rec.fps), 0),
                           min(seizure.offset_frame + int(rec.fps), rec.num_frames))
        exact = tracks_from_truth(rec)
        rows += _errors(rec, "exact joints", exact[exact.frame_index.isin(frames)], frames)
        rows += _errors(rec, "clicks", simulated_clicks(rec, frames), frames)
    return pd.DataFrame(rows)


def _summary(report: pd.DataFrame) -> pd.DataFrame:
    numeric = report[report.error.map(lambda v: isinstance(v, (int, float, np.floating, np.integer)))].copy()
    numeric["abs_error"] = numeric.error.astype(float).abs()
    return (numeric.groupby(["syndrome", "tracks", "measure"]).abs_error
            .agg(n="count", median="median", max="max").round(2))


def main(argv: list[str] | None = None) -> int:
    """``python -m deepepil.analysis.validation``: print the accuracy of the measures (docs/semiology.md)."""
    parser = argparse.ArgumentParser(prog="python -m deepepil.analysis.validation", description=main.__doc__)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="small", choices=("tiny", "small", "full"))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    report = accuracy_report(args.patients, seconds=args.seconds, size=args.size, seed=args.seed)
    with pd.option_context("display.width", 160, "display.max_rows", 200):
        print(_summary(report).to_string())
        other = report[~report.error.map(lambda v: isinstance(v, (int, float, np.floating, np.integer)))]
        if len(other):
            print(other.to_string(index=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
