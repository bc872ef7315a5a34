"""Synthetic patients: a pseudonymous code, a syndrome, a body, a place in the bed.

Everything about a patient is drawn from ``(seed, index)``, so a cohort is
reproducible and one patient can be rebuilt without the others. Codes are random
(``"SYN-"`` + 6 base32 characters); nothing identifies a person because there is
no person.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np

from deepepil.synthetic.vocabulary import SYNDROME_LOCALIZATION, SYNDROMES

__all__ = ["PatientProfile", "make_patient_profile", "make_cohort_profiles", "CODE_PREFIX"]

#: Prefix of every synthetic patient code.
CODE_PREFIX = "SYN-"
_BASE32 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_CODE_LENGTH = 6
#: Tag mixed into the seed of the patient's random stream (keeps it apart from others).
_TAG_PATIENT = 1
_TAG_COHORT = 4

_SKIN_RGB = ((0.96, 0.80, 0.69), (0.89, 0.69, 0.56), (0.78, 0.57, 0.44), (0.55, 0.38, 0.28),
             (0.40, 0.27, 0.20))
_GOWN_RGB = ((0.60, 0.75, 0.88), (0.62, 0.82, 0.72), (0.85, 0.85, 0.88), (0.90, 0.75, 0.80),
             (0.55, 0.60, 0.75))
_BLANKET_RGB = ((0.35, 0.45, 0.70), (0.80, 0.80, 0.78), (0.65, 0.45, 0.45), (0.45, 0.60, 0.45))


@dataclass(frozen=True)
class PatientProfile:
    """One synthetic patient: clinical class, body, resting posture and appearance.

    Parameters
    ----------
    code : str
        Pseudonymous code, ``"SYN-"`` + 6 base32 characters.
    index : int
        Position in the cohort; with ``seed`` it seeds everything about the patient.
    seed : int
        Cohort seed the profile was drawn from.
    syndrome : str
        ``"frontal"`` or ``"temporal"``.
    lateralization : str
        Hemisphere of seizure onset, ``"left"`` or ``"right"``.
    sex : str
        ``"female"`` or ``"male"``.
    age_years : int
        Age at recording.
    height_m : float
        Body height; segment lengths scale with it.
    girth : float
        Relative body width and limb thickness (1.0 = average).
    offset_along_m, offset_across_m : float
        Position in the bed: along it (towards the feet) and across it (towards the
        patient's left).
    yaw_rad : float
        Rotation of the body in the bed plane.
    head_rest_yaw_rad : float
        Resting head turn (positive: face towards the patient's left).
    arm_abduction_rad, elbow_flexion_rad, leg_abduction_rad : float
        Resting posture of the limbs.
    amplitude_scale, frequency_scale : float
        Patient-specific scale of seizure movement amplitudes and frequencies.
    breathing_hz : float
        Resting breathing rate.
    skin_rgb, gown_rgb, blanket_rgb : tuple of float
        Colours in 0..1.
    blanket : bool
        Whether a blanket covers the legs.
    blanket_top_m : float
        Where the blanket starts, measured from the hips towards the feet.
    """

    code: str
    index: int
    seed: int
    syndrome: str
    lateralization: str
    sex: str
    age_years: int
    height_m: float
    girth: float
    offset_along_m: float
    offset_across_m: float
    yaw_rad: float
    head_rest_yaw_rad: float
    arm_abduction_rad: float
    elbow_flexion_rad: float
    leg_abduction_rad: float
    amplitude_scale: float
    frequency_scale: float
    breathing_hz: float
    skin_rgb: tuple[float, float, float]
    gown_rgb: tuple[float, float, float]
    blanket_rgb: tuple[float, float, float]
    blanket: bool
    blanket_top_m: float

    def __post_init__(self) -> None:
        if self.syndrome not in SYNDROMES:
            raise ValueError(f"syndrome {self.syndrome!r} is not one of {SYNDROMES}")
        if self.lateralization not in ("left", "right"):
            raise ValueError(f"lateralization {self.lateralization!r} is not 'left' or 'right'")

    @property
    def localization(self) -> str:
        """Localization class of the syndrome (``"FLE"`` or ``"TLE"``)."""
        return SYNDROME_LOCALIZATION[self.syndrome]

    @property
    def contralateral(self) -> str:
        """The side opposite the seizure onset."""
        return "right" if self.lateralization == "left" else "left"

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable copy (floats rounded to 1e-4)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, float):
                value = round(value, 4)
            elif isinstance(value, tuple):
                value = [round(float(v), 4) for v in value]
            out[f.name] = value
        out["localization"] = self.localization
        return out


def _draw_code(rng: np.random.Generator) -> str:
    letters = rng.integers(0, len(_BASE32), size=_CODE_LENGTH)
    return CODE_PREFIX + "".join(_BASE32[i] for i in letters)


def make_patient_profile(
    seed: int,
    index: int,
    *,
    syndrome: str | None = None,
    lateralization: str | None = None,
) -> PatientProfile:
    """Draw one patient from ``(seed, index)``.

    Parameters
    ----------
    seed, index : int
        Cohort seed and position; the same pair always gives the same patient.
    syndrome : {"frontal", "temporal"}, optional
        Forced syndrome; drawn when omitted.
    lateralization : {"left", "right"}, optional
        Forced side of onset; drawn when omitted.
    """
    if syndrome is not None and syndrome not in SYNDROMES:
        raise ValueError(f"syndrome {syndrome!r} is not one of {SYNDROMES}")
    rng = np.random.default_rng([int(seed), int(index), _TAG_PATIENT])
    code = _draw_code(rng)
    drawn_syndrome = SYNDROMES[int(rng.integers(2))]
    drawn_side = ("left", "right")[int(rng.integers(2))]
    sex = ("female", "male")[int(rng.integers(2))]
    height_m = float(rng.normal(1.66 if sex == "female" else 1.78, 0.07))
    return PatientProfile(
        code=code,
        index=int(index),
        seed=int(seed),
        syndrome=syndrome or drawn_syndrome,
        lateralization=lateralization or drawn_side,
        sex=sex,
        age_years=int(rng.integers(18, 71)),
        height_m=float(np.clip(height_m, 1.50, 1.92)),
        girth=float(rng.uniform(0.85, 1.25)),
        offset_along_m=float(rng.uniform(-0.06, 0.08)),
        offset_across_m=float(rng.uniform(-0.10, 0.10)),
        yaw_rad=float(rng.uniform(-0.08, 0.08)),
        head_rest_yaw_rad=float(rng.uniform(-0.25, 0.25)),
        arm_abduction_rad=float(rng.uniform(0.05, 0.35)),
        elbow_flexion_rad=float(rng.uniform(0.05, 0.5)),
        leg_abduction_rad=float(rng.uniform(0.02, 0.12)),
        amplitude_scale=float(rng.uniform(0.75, 1.25)),
        frequency_scale=float(rng.uniform(0.8, 1.25)),
        breathing_hz=float(rng.uniform(0.2, 0.33)),
        skin_rgb=_SKIN_RGB[int(rng.integers(len(_SKIN_RGB)))],
        gown_rgb=_GOWN_RGB[int(rng.integers(len(_GOWN_RGB)))],
        blanket_rgb=_BLANKET_RGB[int(rng.integers(len(_BLANKET_RGB)))],
        blanket=bool(rng.random() < 0.4),
        blanket_top_m=float(rng.uniform(0.22, 0.40)),
    )


def make_cohort_profiles(n_patients: int, seed: int = 0) -> list[PatientProfile]:
    """Draw ``n_patients`` patients with syndromes and sides balanced.

    Syndromes alternate (any two consecutive patients differ), and within each
    syndrome the side of onset alternates from a random start, so every class has
    both sides as soon as it has two patients. Codes are unique within the cohort.
    """
    if n_patients < 1:
        raise ValueError(f"n_patients must be >= 1, got {n_patients}")
    rng = np.random.default_rng([int(seed), _TAG_COHORT])
    first_syndrome = int(rng.integers(2))
    first_side = [int(rng.integers(2)), int(rng.integers(2))]
    profiles: list[PatientProfile] = []
    codes: set[str] = set()
    for i in range(n_patients):
        s = (first_syndrome + i) % 2
        side = ("left", "right")[(first_side[s] + i // 2) % 2]
        profile = make_patient_profile(seed, i, syndrome=SYNDROMES[s], lateralization=side)
        attempt = 0
        while profile.code in codes:  # about 1e-9 per pair; redraw deterministically
            attempt += 1
            profile = dataclasses.replace(profile, code=_draw_code(
                np.random.default_rng([int(seed), i, _TAG_PATIENT, attempt])))
        codes.add(profile.code)
        profiles.append(profile)
    return profiles
