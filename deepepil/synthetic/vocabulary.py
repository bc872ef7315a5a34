"""Clinical vocabulary the synthetic generator labels with.

The names are exactly those of the seed vocabulary in the design (``DESIGN.md``,
"Clinical vocabulary"); the label database will own the vocabulary later
(``deepepil.labels``), and these constants then move there.
"""

from __future__ import annotations

from collections.abc import Mapping

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

#: Body regions (regions of interest) a movement of interest is attached to.
REGIONS: tuple[str, ...] = (
    "head/face",
    "trunk",
    "left upper limb",
    "right upper limb",
    "left lower limb",
    "right lower limb",
    "whole body",
)

#: Movement-of-interest labels (ILAE 2001 glossary, 2022 semiology glossary).
MOI_LABELS: tuple[str, ...] = (
    "head version",
    "non-versive head turn",
    "eye version",
    "oral automatism",
    "manual automatism",
    "pedal automatism",
    "hyperkinetic movement",
    "dystonic posturing",
    "tonic posturing",
    "figure-of-4",
    "clonic",
    "myoclonic",
    "epileptic spasm",
    "atonic/astatic",
    "behavior arrest",
    "tonic-clonic phase",
    "postictal",
)

#: Laterality modifier of a movement of interest (``None`` when it does not apply).
LATERALITIES: tuple[str, ...] = ("left", "right", "bilateral")

#: Centricity modifier of a movement of interest.
CENTRICITIES: tuple[str, ...] = ("axial", "proximal", "distal")

#: ILAE 2017 focal motor onset features.
FOCAL_ONSET_MOTOR: tuple[str, ...] = (
    "automatisms", "atonic", "clonic", "epileptic spasms", "hyperkinetic", "myoclonic", "tonic",
)
#: ILAE 2017 focal non-motor onset features.
FOCAL_ONSET_NON_MOTOR: tuple[str, ...] = (
    "autonomic", "behavior arrest", "cognitive", "emotional", "sensory",
)

#: ILAE 2017 seizure types (Fisher et al., Epilepsia 58:522) as strings: the basic
#: classes, then ``"<prefix>: <feature>"`` with the onset or awareness as prefix.
SEIZURE_TYPES: tuple[str, ...] = (
    "focal aware",
    "focal impaired awareness",
    *(f"focal motor onset: {f}" for f in FOCAL_ONSET_MOTOR),
    *(f"focal non-motor onset: {f}" for f in FOCAL_ONSET_NON_MOTOR),
    *(f"focal aware: {f}" for f in FOCAL_ONSET_MOTOR + FOCAL_ONSET_NON_MOTOR),
    *(f"focal impaired awareness: {f}" for f in FOCAL_ONSET_MOTOR + FOCAL_ONSET_NON_MOTOR),
    "focal to bilateral tonic-clonic",
    "generalized motor",
    "generalized non-motor (absence)",
    "unknown onset",
)

#: Localization classes used in the literature.
LOCALIZATIONS: tuple[str, ...] = ("FLE", "TLE", "non-epileptic")

#: Synthetic syndromes the generator scripts.
SYNDROMES: tuple[str, ...] = ("frontal", "temporal")

#: Localization class of each synthetic syndrome.
SYNDROME_LOCALIZATION: Mapping[str, str] = {"frontal": "FLE", "temporal": "TLE"}

#: Skeleton joints of the 3D keypoints, in the order of the ``joints_m`` arrays.
JOINT_NAMES: tuple[str, ...] = (
    "head",
    "neck",
    "left_shoulder",
    "right_shoulder",
    "left_elbow",
    "right_elbow",
    "left_wrist",
    "right_wrist",
    "left_hip",
    "right_hip",
    "left_knee",
    "right_knee",
    "left_ankle",
    "right_ankle",
)

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
