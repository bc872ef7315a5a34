"""Scripted seizure semiology: which movements happen when, and the pose they produce.

A recording's script is drawn from its own random stream: a seizure (onset,
offset, ILAE 2017 type) made of movements of interest (MOIs), each a frame interval
in one body region. :func:`make_script` then writes the movements into a per-frame
pose (see :data:`deepepil.synthetic.scene.POSE_KEYS`): every movement's envelope is
zero outside its MOI, so the motion in a region happens inside its MOIs, apart
from breathing and tiny postural drift.

Two syndromes make a learnable task:

- ``"frontal"`` (FLE-like): early onset, a short seizure of large, fast
  hyperkinetic movements of the whole body, sometimes contralateral tonic
  posturing at onset, early head version or clonic jerks at the end;
- ``"temporal"`` (TLE-like): later onset, a longer seizure with oral automatisms,
  ipsilateral manual automatisms, contralateral dystonic posturing, late
  contralateral head version, sometimes clonic jerks at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepepil.synthetic.patient import PatientProfile
from deepepil.synthetic.scene import rest_pose
from deepepil.synthetic.vocabulary import MOI_LABELS, REGIONS, SEIZURE_TYPES

__all__ = ["MOI", "Seizure", "Script", "make_script", "SYNDROME_SEIZURE_TYPE", "MIN_FRAMES"]

#: ILAE 2017 type of each synthetic syndrome's seizures.
SYNDROME_SEIZURE_TYPE: dict[str, str] = {
    "frontal": "focal motor onset: hyperkinetic",
    "temporal": "focal impaired awareness: automatisms",
}
#: Shortest recording a script fits in (one second at 30 fps).
MIN_FRAMES = 30
_TAG_SCRIPT = 2


@dataclass(frozen=True)
class MOI:
    """A movement of interest over frames ``start_frame <= i < end_frame``."""

    region: str
    label: str
    laterality: str | None
    start_frame: int
    end_frame: int

    def __post_init__(self) -> None:
        if self.region not in REGIONS:
            raise ValueError(f"region {self.region!r} is not one of {REGIONS}")
        if self.label not in MOI_LABELS:
            raise ValueError(f"label {self.label!r} is not one of {MOI_LABELS}")
        if not 0 <= self.start_frame < self.end_frame:
            raise ValueError(f"MOI frames must satisfy 0 <= start < end, got "
                             f"{self.start_frame}, {self.end_frame}")

    def to_dict(self, fps: float) -> dict[str, Any]:
        """JSON-serialisable form with times in seconds (``frame / fps``)."""
        return {
            "region": self.region, "label": self.label, "laterality": self.laterality,
            "start_frame": self.start_frame, "end_frame": self.end_frame,
            "start_seconds": round(self.start_frame / fps, 6),
            "end_seconds": round(self.end_frame / fps, 6),
        }


@dataclass(frozen=True)
class Seizure:
    """The seizure: clinical onset to offset (frames, end exclusive) and its classes."""

    onset_frame: int
    offset_frame: int
    type: str
    syndrome: str
    localization: str
    lateralization: str

    def __post_init__(self) -> None:
        if self.type not in SEIZURE_TYPES:
            raise ValueError(f"seizure type {self.type!r} is not one of {SEIZURE_TYPES}")

    def to_dict(self, fps: float) -> dict[str, Any]:
        """JSON-serialisable form with times in seconds."""
        return {
            "onset_frame": self.onset_frame, "offset_frame": self.offset_frame,
            "onset_seconds": round(self.onset_frame / fps, 6),
            "offset_seconds": round(self.offset_frame / fps, 6),
            "type": self.type, "syndrome": self.syndrome, "localization": self.localization,
            "lateralization": self.lateralization,
        }


@dataclass
class Script:
    """A recording's seizure, its MOIs (by start) and the resulting per-frame pose."""

    seizure: Seizure
    mois: list[MOI]
    pose: dict[str, np.ndarray]
    fps: float


# -- signals -------------------------------------------------------------------------


def _envelope(n: int, start: int, end: int, ramp_in: int, ramp_out: int) -> np.ndarray:
    """0 outside ``[start, end)``, raised-cosine ramps inside, 1 in between."""
    i = np.arange(n, dtype="float64")
    up = np.clip((i - start + 0.5) / max(ramp_in, 1), 0.0, 1.0)
    down = np.clip((end - i - 0.5) / max(ramp_out, 1), 0.0, 1.0)
    e = (0.5 - 0.5 * np.cos(np.pi * up)) * (0.5 - 0.5 * np.cos(np.pi * down))
    e[(i < start) | (i >= end)] = 0.0
    return e


def _noise(rng: np.random.Generator, t: np.ndarray, f_lo: float, f_hi: float,
           n: int = 4) -> np.ndarray:
    """Smooth irregular signal in about -1..1: a few sinusoids in ``[f_lo, f_hi]`` Hz."""
    f = rng.uniform(f_lo, f_hi, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    amp = rng.uniform(0.5, 1.0, n)
    x = (amp[:, None] * np.sin(2 * np.pi * f[:, None] * t[None, :] + phase[:, None])).sum(0)
    return x / amp.sum() * 1.6


def _clonic_jerks(t: np.ndarray, start_s: float, f_start_hz: float, f_end_hz: float,
                  duration_s: float) -> np.ndarray:
    """Brief jerks (0..1) whose rate slows from ``f_start_hz`` to ``f_end_hz``."""
    tau = np.clip(t - start_s, 0.0, None)
    rate = (f_end_hz - f_start_hz) / max(duration_s, 1e-6)
    phase = f_start_hz * tau + 0.5 * rate * tau ** 2
    return np.maximum(np.sin(2 * np.pi * phase), 0.0) ** 3


# -- movements -----------------------------------------------------------------------

Pose = dict[str, np.ndarray]


def _blend(pose: Pose, e: np.ndarray, target: dict[str, np.ndarray | float]) -> None:
    for key, value in target.items():
        pose[key] = (1 - e) * pose[key] + e * value


def _ramps(moi: MOI, fps: float, in_seconds: float, out_seconds: float) -> tuple[int, int]:
    length = moi.end_frame - moi.start_frame
    return (max(1, min(round(in_seconds * fps), length // 3)),
            max(1, min(round(out_seconds * fps), length // 3)))


def _hyperkinetic(pose: Pose, moi: MOI, t: np.ndarray, e: np.ndarray, rng: np.random.Generator,
                  amp: float, f: float) -> None:
    lo, hi = 0.9 * f, 2.8 * f
    for side in ("left", "right"):
        pose[f"{side}_shoulder_abd"] += e * amp * 0.7 * _noise(rng, t, lo, hi)
        pose[f"{side}_shoulder_flex"] += e * amp * 0.75 * (1.0 + _noise(rng, t, lo, hi))
        pose[f"{side}_elbow_flex"] += e * amp * 0.9 * (0.6 + _noise(rng, t, lo, hi))
        pose[f"{side}_elbow_plane"] += e * 0.6 * _noise(rng, t, lo, hi)
        pose[f"{side}_hip_flex"] += e * amp * 0.5 * (0.9 + _noise(rng, t, lo, hi))
        pose[f"{side}_hip_abd"] += e * amp * 0.25 * _noise(rng, t, lo, hi)
        pose[f"{side}_knee_extra"] += e * amp * 0.5 * _noise(rng, t, lo, hi)
    pose["trunk_roll"] += e * amp * 0.3 * _noise(rng, t, lo, hi)
    pose["trunk_shift"] += e * amp * 0.04 * _noise(rng, t, lo, hi)
    pose["pelvis_lift"] += e * amp * 0.035 * (1.0 + _noise(rng, t, lo, hi))
    pose["head_yaw"] += e * amp * 0.45 * _noise(rng, t, lo, hi)
    pose["head_roll"] += e * 0.15 * _noise(rng, t, lo, hi)
    pose["head_pitch"] += e * 0.15 * _noise(rng, t, lo, hi)


def _tonic(pose: Pose, moi: MOI, t: np.ndarray, e: np.ndarray, rng: np.random.Generator,
           amp: float, f: float) -> None:
    s = moi.laterality
    tremor = 0.04 * np.sin(2 * np.pi * rng.uniform(6.0, 8.0) * t)
    _blend(pose, e, {f"{s}_shoulder_abd": 0.5, f"{s}_shoulder_flex": 1.2 + tremor,
                     f"{s}_elbow_flex": 0.05, f"{s}_elbow_plane": 0.0,
                     f"{s}_wrist_flex": 0.35 + tremor})


def _dystonic(pose: Pose, moi: MOI, t: np.ndarray, e: np.ndarray, rng: np.random.Generator,
              amp: float, f: float) -> None:
    s = moi.laterality
    w = 0.14 * amp
    _blend(pose, e, {
        f"{s}_shoulder_abd": 0.25 + w * 0.5 * _noise(rng, t, 0.3, 1.0),
        f"{s}_shoulder_flex": 0.45 + w * _noise(rng, t, 0.3, 1.0),
        f"{s}_elbow_flex": 1.7 + w * _noise(rng, t, 0.3, 1.0),
        f"{s}_elbow_plane": 1.1,
        f"{s}_wrist_flex": 1.3 + 2 * w * _noise(rng, t, 0.4, 1.2),
    })


def _manual(pose: Pose, moi: MOI, t: np.ndarray, e: np.ndarray, rng: np.random.Generator,
            amp: float, f: float) -> None:
    s = moi.laterality
    hz = rng.uniform(1.0, 2.0) * f
    ph = rng.uniform(0, 2 * np.pi, 3)
    jitter = 0.3 * _noise(rng, t, 0.3, 0.8)
    wave = np.sin(2 * np.pi * hz * t + ph[0] + jitter)
    _blend(pose, e, {
        f"{s}_shoulder_abd": 0.15 + 0.14 * amp * np.sin(2 * np.pi * hz * t + ph[1]),
        f"{s}_shoulder_flex": 0.15 + 0.06 * amp * wave,
        f"{s}_elbow_flex": 1.25 + 0.3 * amp * wave,
        f"{s}_elbow_plane": 0.6,
        f"{s}_wrist_flex": 0.2 + 0.5 * amp * np.sin(4 * np.pi * hz * t + ph[2]),
    })


def _oral(pose: Pose, moi: MOI, t: np.ndarray, e: np.ndarray, rng: np.random.Generator,
          amp: float, f: float) -> None:
    hz = rng.uniform(1.0, 2.0) * f
    chew = np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
    pose["jaw"] += e * min(amp, 1.0) * (0.5 + 0.5 * chew)
    pose["head_pitch"] += e * 0.08 * amp * chew
    pose["head_roll"] += e * 0.03 * amp * _noise(rng, t, 0.5, 1.5)


def _version(pose: Pose, moi: MOI, t: np.ndarray, e: np.ndarray, rng: np.random.Generator,
             amp: float, f: float) -> None:
    sign = 1.0 if moi.laterality == "left" else -1.0
    tremor = 0.05 * _noise(rng, t, 3.0, 6.0)
    _blend(pose, e, {"head_yaw": sign * rng.uniform(1.0, 1.35) + tremor,
                     "head_roll": sign * 0.25, "head_pitch": -0.12 + tremor})


def _clonic(pose: Pose, moi: MOI, t: np.ndarray, e: np.ndarray, rng: np.random.Generator,
            amp: float, f: float) -> None:
    fps = 1.0 / (t[1] - t[0]) if len(t) > 1 else 30.0
    start_s, duration_s = moi.start_frame / fps, (moi.end_frame - moi.start_frame) / fps
    jerks = e * amp * _clonic_jerks(t, start_s, rng.uniform(4.0, 5.0), rng.uniform(2.0, 2.8),
                                    duration_s)
    if moi.region == "head/face":
        pose["head_yaw"] += (1.0 if moi.laterality == "left" else -1.0) * 0.25 * jerks
        return
    s = moi.laterality
    pose[f"{s}_elbow_flex"] += 0.6 * jerks
    pose[f"{s}_shoulder_abd"] += 0.25 * jerks
    pose[f"{s}_shoulder_flex"] += 0.2 * jerks
    pose[f"{s}_wrist_flex"] += 0.5 * jerks


_Movement = Callable[[Pose, MOI, np.ndarray, np.ndarray, np.random.Generator, float, float], None]
#: How each label moves the body, and its ramp-in/ramp-out times in seconds. Order
#: matters: free movements first, postures blend over them, clonic jerks on top.
_MOVEMENTS: dict[str, tuple[_Movement, float, float]] = {
    "hyperkinetic movement": (_hyperkinetic, 0.3, 0.4),
    "oral automatism": (_oral, 0.3, 0.3),
    "manual automatism": (_manual, 0.4, 0.4),
    "tonic posturing": (_tonic, 0.25, 0.4),
    "dystonic posturing": (_dystonic, 0.8, 0.6),
    "head version": (_version, 1.0, 0.6),
    "clonic": (_clonic, 0.05, 0.2),
}

# -- scripts -------------------------------------------------------------------------


def _limb(side: str) -> str:
    return f"{side} upper limb"


def _frontal_plan(rng: np.random.Generator, patient: PatientProfile) -> tuple[float, float, list]:
    contra = patient.contralateral
    onset, duration = rng.uniform(0.10, 0.22), rng.uniform(0.22, 0.34)
    plan = []
    tonic = rng.random() < 0.5
    if tonic:
        plan.append((_limb(contra), "tonic posturing", contra, 0.0, rng.uniform(0.2, 0.3)))
    plan.append(("whole body", "hyperkinetic movement", "bilateral",
                 0.12 if tonic else 0.0, rng.uniform(0.88, 1.0)))
    if rng.random() < 0.25:
        plan.append(("head/face", "head version", contra, 0.0, rng.uniform(0.25, 0.35)))
    if rng.random() < 0.4:
        plan.append((_limb(contra), "clonic", contra, rng.uniform(0.72, 0.8), 1.0))
    return onset, duration, plan


def _temporal_plan(rng: np.random.Generator, patient: PatientProfile) -> tuple[float, float, list]:
    ipsi, contra = patient.lateralization, patient.contralateral
    onset, duration = rng.uniform(0.28, 0.40), rng.uniform(0.40, 0.52)
    plan = [
        ("head/face", "oral automatism", None, 0.0, rng.uniform(0.5, 0.7)),
        (_limb(ipsi), "manual automatism", ipsi, rng.uniform(0.08, 0.18), rng.uniform(0.6, 0.8)),
        (_limb(contra), "dystonic posturing", contra, rng.uniform(0.25, 0.4),
         rng.uniform(0.7, 0.85)),
        ("head/face", "head version", contra, rng.uniform(0.62, 0.72), 1.0),
    ]
    if rng.random() < 0.3:
        plan.append((_limb(contra), "clonic", contra, rng.uniform(0.86, 0.9), 1.0))
    return onset, duration, plan


def make_script(patient: PatientProfile, recording_index: int, num_frames: int, fps: float,
                seed: int) -> Script:
    """Draw the seizure of one recording and render it into a per-frame pose.

    Timing scales with the recording: onset and duration are fractions of its
    length, so a 2-second test clip and a 2-minute one carry the same script.

    Raises
    ------
    ValueError
        When ``num_frames`` is below :data:`MIN_FRAMES`.
    """
    if num_frames < MIN_FRAMES:
        raise ValueError(f"a synthetic recording needs at least {MIN_FRAMES} frames "
                         f"({MIN_FRAMES / fps:g} s), got {num_frames}")
    rng = np.random.default_rng([int(seed), patient.index, int(recording_index), _TAG_SCRIPT])
    plan_fn = _frontal_plan if patient.syndrome == "frontal" else _temporal_plan
    onset_frac, duration_frac, plan = plan_fn(rng, patient)
    onset = round(onset_frac * num_frames)
    length = max(round(duration_frac * num_frames), 2)
    mois = []
    for region, label, laterality, a, b in plan:
        start = onset + round(a * length)
        end = max(onset + round(b * length), start + 2)
        mois.append(MOI(region, label, laterality, start, min(end, num_frames - 1)))
    mois.sort(key=lambda m: (m.start_frame, m.end_frame, m.label))

    t = np.arange(num_frames) / fps
    pose = rest_pose(patient, num_frames)
    _baseline(pose, patient, t, rng, onset + length)
    amp = patient.amplitude_scale * rng.uniform(0.9, 1.1)
    freq = patient.frequency_scale * rng.uniform(0.92, 1.08)
    for label, (move, ramp_in_s, ramp_out_s) in _MOVEMENTS.items():
        for moi in (m for m in mois if m.label == label):
            ramp_in, ramp_out = _ramps(moi, fps, ramp_in_s, ramp_out_s)
            e = _envelope(num_frames, moi.start_frame, moi.end_frame, ramp_in, ramp_out)
            move(pose, moi, t, e, rng, amp, freq)
    _clip_joint_ranges(pose)

    seizure = Seizure(
        onset_frame=min(m.start_frame for m in mois),
        offset_frame=max(m.end_frame for m in mois),
        type=SYNDROME_SEIZURE_TYPE[patient.syndrome],
        syndrome=patient.syndrome,
        localization=patient.localization,
        lateralization=patient.lateralization,
    )
    return Script(seizure=seizure, mois=mois, pose=pose, fps=float(fps))


def _baseline(pose: Pose, patient: PatientProfile, t: np.ndarray, rng: np.random.Generator,
              offset_frame: int) -> None:
    """Breathing (deeper and faster after the seizure) and barely visible drift."""
    n = len(t)
    fps = 1.0 / (t[1] - t[0])
    post = np.clip((np.arange(n) - offset_frame) / (3.0 * fps), 0.0, 1.0)
    rate_hz = patient.breathing_hz * (1 + 0.4 * post)
    phase = 2 * np.pi * np.cumsum(rate_hz) * (t[1] - t[0]) + rng.uniform(0, 2 * np.pi)
    pose["breath"] += (1 + 0.6 * post) * np.sin(phase)
    for key in ("head_yaw", "left_elbow_flex", "right_elbow_flex", "left_hip_abd"):
        pose[key] += 0.004 * _noise(rng, t, 0.02, 0.1)


def _clip_joint_ranges(pose: Pose) -> None:
    limits = {"shoulder_abd": (-0.3, 1.7), "shoulder_flex": (-0.2, 1.6), "elbow_flex": (0.0, 2.4),
              "wrist_flex": (-0.6, 1.5), "hip_flex": (0.0, 1.3), "hip_abd": (-0.2, 0.7),
              "knee_extra": (-1.2, 0.6)}
    for side in ("left", "right"):
        for key, (lo, hi) in limits.items():
            np.clip(pose[f"{side}_{key}"], lo, hi, out=pose[f"{side}_{key}"])
    np.clip(pose["head_yaw"], -1.45, 1.45, out=pose["head_yaw"])
    np.clip(pose["pelvis_lift"], 0.0, 0.12, out=pose["pelvis_lift"])
    np.clip(pose["jaw"], 0.0, 1.0, out=pose["jaw"])
