"""The room, the bed and the body: geometry and skeleton kinematics.

Coordinates are those of the depth camera, in metres: ``x`` to the right of the
image, ``y`` down the image, ``z`` along the optical axis. The camera hangs
:data:`CAMERA_HEIGHT_M` above the floor looking straight down, so the bed top is a
plane at ``z = BED_TOP_DEPTH_M`` and the floor one at ``z = FLOOR_DEPTH_M``. The
colour camera shares the depth camera's centre and axes.

The body lies supine with the head towards the left of the image. Kinematics work
in a *bed frame* ``(s, l, a)``: ``s`` towards the head (superior), ``l`` towards the
patient's left, ``a`` up from the mattress (anterior), with the pelvis centre at
``s = l = 0``. :func:`forward_kinematics` turns per-frame joint angles (a *pose*)
into camera-frame joints and the solids that :mod:`deepepil.synthetic.render` draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from deepepil.synthetic.patient import PatientProfile
from deepepil.synthetic.vocabulary import JOINT_NAMES

__all__ = [
    "CAMERA_HEIGHT_M",
    "BED_TOP_HEIGHT_M",
    "BED_TOP_DEPTH_M",
    "FLOOR_DEPTH_M",
    "BED_LENGTH_M",
    "BED_WIDTH_M",
    "MATERIALS",
    "POSE_KEYS",
    "Capsule",
    "Ellipsoid",
    "BodyDimensions",
    "Skeleton",
    "body_dimensions",
    "rest_pose",
    "forward_kinematics",
    "static_primitives",
    "body_primitives",
]

CAMERA_HEIGHT_M = 2.2
BED_TOP_HEIGHT_M = 0.6
BED_TOP_DEPTH_M = CAMERA_HEIGHT_M - BED_TOP_HEIGHT_M
FLOOR_DEPTH_M = CAMERA_HEIGHT_M
BED_LENGTH_M = 2.0
BED_WIDTH_M = 0.95
#: Centre of the bed top in the camera frame (x, y); the bed runs along x.
BED_CENTER_XY_M = (0.0, 0.0)
#: Distance from the bed's head end to the top of the patient's head, before the offset.
_HEAD_CLEARANCE_M = 0.15
PILLOW_TOP_M = 0.07

#: Surface materials; a pixel's material is its index in this tuple.
MATERIALS: tuple[str, ...] = ("floor", "sheet", "pillow", "rail", "blanket", "skin", "gown",
                              "trousers")
MAT = {name: i for i, name in enumerate(MATERIALS)}

_SIDES = ("left", "right")
_LIMB_KEYS = ("shoulder_abd", "shoulder_flex", "elbow_flex", "elbow_plane", "wrist_flex",
              "hip_flex", "hip_abd", "knee_extra")
#: Names of the per-frame pose parameters (angles in radians, lengths in metres,
#: ``breath`` and ``jaw`` in 0..1).
POSE_KEYS: tuple[str, ...] = (
    "breath", "trunk_roll", "pelvis_lift", "trunk_shift",
    "head_yaw", "head_pitch", "head_roll", "jaw",
    *(f"{side}_{k}" for side in _SIDES for k in _LIMB_KEYS),
)


class Capsule(NamedTuple):
    """A segment ``a``-``b`` (camera frame, metres) swept by a sphere of ``radius_m``."""

    a: np.ndarray
    b: np.ndarray
    radius_m: float
    material: int
    covered: bool = False


class Ellipsoid(NamedTuple):
    """An ellipsoid: ``center`` (m), unit ``axes`` as rows (3, 3), semi-axes ``radii_m``."""

    center: np.ndarray
    axes: np.ndarray
    radii_m: np.ndarray
    material: int
    covered: bool = False


@dataclass(frozen=True)
class BodyDimensions:
    """Segment lengths and radii in metres, scaled from a patient's height and girth."""

    head_radii: tuple[float, float, float]  # (s, l, a) semi-axes
    neck_length: float
    neck_radius: float
    torso_length: float
    shoulder_half_width: float
    hip_half_width: float
    chest_radii: tuple[float, float, float]
    pelvis_radii: tuple[float, float, float]
    upper_arm_length: float
    upper_arm_radius: float
    forearm_length: float
    forearm_radius: float
    hand_length: float
    hand_radius: float
    thigh_length: float
    thigh_radius: float
    shin_length: float
    shin_radius: float
    foot_length: float
    foot_radius: float


def body_dimensions(patient: PatientProfile) -> BodyDimensions:
    """Segment sizes of ``patient``: proportions of an average adult, scaled."""
    k = patient.height_m / 1.75
    g = patient.girth
    return BodyDimensions(
        head_radii=(0.11 * k, 0.078 * k, 0.095 * k),
        neck_length=0.13 * k,
        neck_radius=0.05 * k * g,
        torso_length=0.50 * k,
        shoulder_half_width=0.175 * k * g ** 0.5,
        hip_half_width=0.09 * k * g ** 0.5,
        chest_radii=(0.21 * k, 0.16 * k * g, 0.105 * k * g),
        pelvis_radii=(0.13 * k, 0.17 * k * g, 0.095 * k * g),
        upper_arm_length=0.29 * k,
        upper_arm_radius=0.045 * k * g,
        forearm_length=0.25 * k,
        forearm_radius=0.036 * k * g,
        hand_length=0.10 * k,
        hand_radius=0.03 * k,
        thigh_length=0.43 * k,
        thigh_radius=0.075 * k * g,
        shin_length=0.42 * k,
        shin_radius=0.055 * k * g,
        foot_length=0.12 * k,
        foot_radius=0.04 * k,
    )


def rest_pose(patient: PatientProfile, num_frames: int) -> dict[str, np.ndarray]:
    """The patient's resting pose, every :data:`POSE_KEYS` entry as ``(num_frames,)`` array."""
    values = dict.fromkeys(POSE_KEYS, 0.0)
    values["head_yaw"] = patient.head_rest_yaw_rad
    for i, side in enumerate(_SIDES):
        asym = 0.04 * (1 - 2 * i)  # people do not lie perfectly symmetric
        values[f"{side}_shoulder_abd"] = patient.arm_abduction_rad + asym
        values[f"{side}_shoulder_flex"] = -0.12
        values[f"{side}_elbow_flex"] = patient.elbow_flexion_rad - asym
        values[f"{side}_elbow_plane"] = 0.7
        values[f"{side}_wrist_flex"] = 0.1
        values[f"{side}_hip_abd"] = patient.leg_abduction_rad + asym / 2
    return {k: np.full(num_frames, v, dtype="float64") for k, v in values.items()}


@dataclass
class Skeleton:
    """Camera-frame geometry of the body over time (``T`` frames).

    ``joints`` is ``(T, 14, 3)`` in :data:`~deepepil.synthetic.vocabulary.JOINT_NAMES`
    order; the other arrays are the extra points and frames the solids need.
    """

    joints: np.ndarray
    hand_tips: np.ndarray  # (T, 2, 3) left, right
    foot_tips: np.ndarray  # (T, 2, 3)
    head_axes: np.ndarray  # (T, 3, 3) rows: s, l, a axes of the head
    chest_center: np.ndarray  # (T, 3)
    chest_axes: np.ndarray  # (T, 3, 3)
    chest_radii: np.ndarray  # (T, 3)
    pelvis_center: np.ndarray
    pelvis_axes: np.ndarray
    jaw: np.ndarray  # (T,) opening 0..1
    bed_axes: np.ndarray  # (3, 3) rows: s, l, a of the bed frame in camera coordinates
    bed_origin: np.ndarray  # (3,) camera-frame position of the bed-frame origin


def _unit(v: np.ndarray) -> np.ndarray:
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.maximum(n, 1e-9)


def _orthogonal_unit(v: np.ndarray, u: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """``v`` made orthogonal to unit ``u`` and normalised; ``fallback`` where degenerate."""
    w = v - np.sum(v * u, axis=-1, keepdims=True) * u
    n = np.linalg.norm(w, axis=-1, keepdims=True)
    return np.where(n > 1e-6, w / np.maximum(n, 1e-9), fallback)


def _axis_rotation(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices ``(T, 3, 3)`` about a fixed unit ``axis`` (Rodrigues)."""
    x, y, z = axis
    k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]], dtype="float64")
    s = np.sin(angle)[:, None, None]
    c = np.cos(angle)[:, None, None]
    return np.eye(3) + s * k + (1 - c) * (k @ k)


def _bed_frame(patient: PatientProfile, dims: BodyDimensions) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(patient.yaw_rad), np.sin(patient.yaw_rad)
    superior = np.array([-c, -s, 0.0])
    left = np.array([s, -c, 0.0])
    anterior = np.array([0.0, 0.0, -1.0])
    head_end_x = BED_CENTER_XY_M[0] - BED_LENGTH_M / 2
    head_top_s = dims.torso_length + dims.neck_length + dims.head_radii[0]
    pelvis_x = head_end_x + _HEAD_CLEARANCE_M + patient.offset_along_m + head_top_s
    origin = np.array([pelvis_x, BED_CENTER_XY_M[1] - patient.offset_across_m, BED_TOP_DEPTH_M])
    return np.stack([superior, left, anterior]), origin


def forward_kinematics(patient: PatientProfile, pose: dict[str, np.ndarray]) -> Skeleton:
    """Joints and solid frames for every frame of ``pose`` (see :data:`POSE_KEYS`)."""
    d = body_dimensions(patient)
    T = len(pose["breath"])
    e_s, e_l, e_a = np.eye(3)
    one = np.ones((T, 1))

    roll = pose["trunk_roll"][:, None]
    l_trunk = np.cos(roll) * e_l + np.sin(roll) * e_a  # (T, 3)
    a_trunk = -np.sin(roll) * e_l + np.cos(roll) * e_a
    roll_p = 0.6 * roll
    l_pelvis = np.cos(roll_p) * e_l + np.sin(roll_p) * e_a
    a_pelvis = -np.sin(roll_p) * e_l + np.cos(roll_p) * e_a

    pelvis = np.stack([np.zeros(T), pose["trunk_shift"],
                       d.pelvis_radii[2] + pose["pelvis_lift"]], axis=1)
    chest_rise = d.chest_radii[2] - d.pelvis_radii[2]
    neck = pelvis + d.torso_length * e_s + (chest_rise + 0.01) * a_trunk
    shoulders_mid = neck - 0.04 * e_s - 0.02 * a_trunk
    chest_center = pelvis + 0.62 * d.torso_length * e_s + chest_rise * a_trunk
    chest_radii = np.tile(d.chest_radii, (T, 1))
    chest_radii[:, 2] *= 1 + 0.045 * pose["breath"]
    pelvis_center = pelvis + 0.02 * e_s

    # Head: rolls on the pillow about a pivot at the back of the skull.
    pivot = np.stack([
        np.full(T, d.torso_length + d.neck_length), pose["trunk_shift"] * 0.8,
        PILLOW_TOP_M - 0.015 + 0.2 * pose["pelvis_lift"]], axis=1)
    r_head = (_axis_rotation(e_s, -pose["head_yaw"]) @ _axis_rotation(e_l, -pose["head_pitch"])
              @ _axis_rotation(e_a, pose["head_roll"]))
    head_axes = np.transpose(r_head, (0, 2, 1))  # rows: rotated s, l, a
    head = pivot + d.head_radii[2] * head_axes[:, 2]

    joints = {"head": head, "neck": neck}
    tips_hand, tips_foot = [], []
    for side, sign in (("left", 1.0), ("right", -1.0)):
        lat = sign * l_trunk
        shoulder = shoulders_mid + d.shoulder_half_width * lat

        def angle(name: str) -> np.ndarray:
            return pose[f"{side}_{name}"][:, None]

        abd, flex = angle("shoulder_abd"), angle("shoulder_flex")
        u = np.cos(flex) * (np.cos(abd) * -e_s + np.sin(abd) * lat) + np.sin(flex) * a_trunk
        elbow = shoulder + d.upper_arm_length * u
        plane = angle("elbow_plane")
        w = _orthogonal_unit(np.cos(plane) * a_trunk - np.sin(plane) * lat, u, a_trunk)
        bend = angle("elbow_flex")
        v = np.cos(bend) * u + np.sin(bend) * w
        wrist = elbow + d.forearm_length * v
        w2 = _orthogonal_unit(w, v, a_trunk)
        hand_dir = np.cos(angle("wrist_flex")) * v + np.sin(angle("wrist_flex")) * w2
        hand_tip = wrist + d.hand_length * hand_dir

        hip = pelvis + d.hip_half_width * sign * l_pelvis - 0.01 * a_pelvis
        h_abd, h_flex = angle("hip_abd"), angle("hip_flex")
        t = (np.cos(h_flex) * (np.cos(h_abd) * -e_s + np.sin(h_abd) * sign * e_l)
             + np.sin(h_flex) * e_a)
        knee = hip + d.thigh_length * t
        knee_bend = np.clip(2 * h_flex + angle("knee_extra"), 0.0, 2.5)
        down = _orthogonal_unit(-e_a * one, t, -e_s * one)
        shin = np.cos(knee_bend) * t + np.sin(knee_bend) * down
        ankle = knee + d.shin_length * shin
        foot_tip = ankle + d.foot_length * _unit(0.85 * e_a + 0.5 * shin)

        # Nothing sinks into the mattress (a >= the segment's radius).
        for point, radius in ((elbow, d.upper_arm_radius), (wrist, d.forearm_radius),
                              (hand_tip, d.hand_radius), (knee, d.thigh_radius),
                              (ankle, d.shin_radius), (foot_tip, d.foot_radius)):
            np.maximum(point[:, 2], radius, out=point[:, 2])
        joints.update({f"{side}_shoulder": shoulder, f"{side}_elbow": elbow,
                       f"{side}_wrist": wrist, f"{side}_hip": hip, f"{side}_knee": knee,
                       f"{side}_ankle": ankle})
        tips_hand.append(hand_tip)
        tips_foot.append(foot_tip)

    bed_axes, origin = _bed_frame(patient, d)

    def to_camera(p: np.ndarray) -> np.ndarray:
        return origin + p @ bed_axes

    def axes_to_camera(rows: np.ndarray) -> np.ndarray:
        return rows @ bed_axes

    chest_axes = np.stack([np.broadcast_to(e_s, (T, 3)), l_trunk, a_trunk], axis=1)
    pelvis_axes = np.stack([np.broadcast_to(e_s, (T, 3)), l_pelvis, a_pelvis], axis=1)
    return Skeleton(
        joints=to_camera(np.stack([joints[name] for name in JOINT_NAMES], axis=1)),
        hand_tips=to_camera(np.stack(tips_hand, axis=1)),
        foot_tips=to_camera(np.stack(tips_foot, axis=1)),
        head_axes=axes_to_camera(head_axes),
        chest_center=to_camera(chest_center),
        chest_axes=axes_to_camera(chest_axes),
        chest_radii=chest_radii,
        pelvis_center=to_camera(pelvis_center),
        pelvis_axes=axes_to_camera(pelvis_axes),
        jaw=np.asarray(pose["jaw"], dtype="float64"),
        bed_axes=bed_axes,
        bed_origin=origin,
    )


def static_primitives(patient: PatientProfile) -> list[Capsule | Ellipsoid]:
    """Solids that never move: the pillow under the patient's head and the side rails."""
    d = body_dimensions(patient)
    bed_axes, origin = _bed_frame(patient, d)
    pillow_center = origin + bed_axes.T @ np.array(
        [d.torso_length + d.neck_length + 0.02, 0.0, PILLOW_TOP_M - 0.08])
    out: list[Capsule | Ellipsoid] = [
        Ellipsoid(pillow_center, bed_axes.copy(), np.array([0.22, 0.33, 0.08]), MAT["pillow"]),
    ]
    cx, cy = BED_CENTER_XY_M
    for side in (-1.0, 1.0):
        y = cy + side * (BED_WIDTH_M / 2 - 0.02)
        z = BED_TOP_DEPTH_M - 0.28
        out.append(Capsule(np.array([cx - 0.55, y, z]), np.array([cx + 0.35, y, z]), 0.025,
                           MAT["rail"]))
    return out


def body_primitives(patient: PatientProfile, skeleton: Skeleton,
                    frame_index: int) -> list[Capsule | Ellipsoid]:
    """The solids making up the body in one frame.

    Solids flagged ``covered`` lie under the blanket when the patient has one.
    """
    d = body_dimensions(patient)
    t = frame_index
    j = {name: skeleton.joints[t, i] for i, name in enumerate(JOINT_NAMES)}
    head_axes = skeleton.head_axes[t]
    head = j["head"]
    hr = np.asarray(d.head_radii)
    k = patient.height_m / 1.75
    jaw = float(skeleton.jaw[t])
    skin, gown, trousers = MAT["skin"], MAT["gown"], MAT["trousers"]
    covered = patient.blanket
    prims: list[Capsule | Ellipsoid] = [
        Ellipsoid(head, head_axes, hr, skin),
        Ellipsoid(head + head_axes.T @ np.array([-0.005, 0.0, 0.97 * hr[2]]), head_axes,
                  np.array([0.028, 0.017, 0.022]) * k, skin),
        Ellipsoid(head + head_axes.T @ (np.array([-0.075 - 0.035 * jaw, 0.0, 0.045 - 0.01 * jaw]) * k),
                  head_axes, np.array([0.045, 0.055, 0.04]) * k, skin),
        Capsule(j["neck"], head - 0.06 * k * head_axes[0], d.neck_radius, skin),
        Ellipsoid(skeleton.chest_center[t], skeleton.chest_axes[t], skeleton.chest_radii[t], gown),
        Ellipsoid(skeleton.pelvis_center[t], skeleton.pelvis_axes[t], np.asarray(d.pelvis_radii),
                  gown, covered),
    ]
    for i, side in enumerate(("left", "right")):
        prims += [
            Capsule(j[f"{side}_shoulder"], j[f"{side}_elbow"], d.upper_arm_radius, gown),
            Capsule(j[f"{side}_elbow"], j[f"{side}_wrist"], d.forearm_radius, skin),
            Capsule(j[f"{side}_wrist"], skeleton.hand_tips[t, i], d.hand_radius, skin),
            Capsule(j[f"{side}_hip"], j[f"{side}_knee"], d.thigh_radius, trousers, covered),
            Capsule(j[f"{side}_knee"], j[f"{side}_ankle"], d.shin_radius, trousers, covered),
            Capsule(j[f"{side}_ankle"], skeleton.foot_tips[t, i], d.foot_radius, skin, covered),
        ]
    return prims
