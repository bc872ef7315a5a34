"""Vocabulary the synthetic generator labels with.

The clinical terms are the label database's seed vocabulary
(:mod:`deepepil.labels.vocabulary`); the syndromes and the joints spanning each region
are the generator's own.
"""

from __future__ import annotations

from collections.abc import Mapping

from deepepil.labels.vocabulary import (  # noqa: F401  (re-exported)
    CENTRICITIES,
    FOCAL_ONSET_MOTOR,
    FOCAL_ONSET_NON_MOTOR,
    JOINT_NAMES,
    LATERALITIES,
    LOCALIZATIONS,
    MOI_LABELS,
    REGIONS,
    SEIZURE_TYPES,
)

__all__ = [
    "REGIONS",
    "MOI_LABELS",
    "LATERALITIES",
    "CENTRICITIES",
    "FOCAL_ONSET_MOTOR",
    "FOCAL_ONSET_NON_MOTOR",
    "SEIZURE_TYPES",
    "LOCALIZATIONS",
    "SYNDROMES",
    "SYNDROME_LOCALIZATION",
    "JOINT_NAMES",
    "REGION_JOINTS",
]

#: Synthetic syndromes the generator scripts.
SYNDROMES: tuple[str, ...] = ("frontal", "temporal")

#: Localization class of each synthetic syndrome.
SYNDROME_LOCALIZATION: Mapping[str, str] = {"frontal": "FLE", "temporal": "TLE"}

#: Joints that span each region (used to locate a region in an image).
REGION_JOINTS: Mapping[str, tuple[str, ...]] = {
    "head/face": ("head", "neck"),
    "trunk": ("neck", "left_shoulder", "right_shoulder", "left_hip", "right_hip"),
    "left upper limb": ("left_shoulder", "left_elbow", "left_wrist"),
    "right upper limb": ("right_shoulder", "right_elbow", "right_wrist"),
    "left lower limb": ("left_hip", "left_knee", "left_ankle"),
    "right lower limb": ("right_hip", "right_knee", "right_ankle"),
    "whole body": JOINT_NAMES,
}
