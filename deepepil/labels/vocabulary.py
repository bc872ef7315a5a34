"""Controlled clinical vocabularies: the seed (DESIGN.md "Clinical vocabulary") and their versions.

Terms are identified by ``(kind, code)``; the code is the term itself (``"head/face"``,
``"manual automatism"``). The seed is vocabulary version 1. Admins add terms and retire
them (:func:`add_term`, :func:`retire_term`), each change making a new version; a retired
term stays in the table, so labels that use it stay valid and readable, but new labels
cannot use it.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import func, select
from sqlalchemy.orm import Session

__all__ = [
    "REGIONS",
    "MOI_LABELS",
    "LATERALITIES",
    "CENTRICITIES",
    "FOCAL_ONSET_MOTOR",
    "FOCAL_ONSET_NON_MOTOR",
    "SEIZURE_TYPES",
    "AWARENESS",
    "LOCALIZATIONS",
    "JOINT_NAMES",
    "SEED",
    "KINDS",
    "seed_vocabulary",
    "add_term",
    "retire_term",
    "active_codes",
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

#: Awareness during a focal seizure (ILAE 2017).
AWARENESS: tuple[str, ...] = ("aware", "impaired awareness", "unknown")

#: The seed vocabulary, by kind: version 1 of every vocabulary.
SEED: Mapping[str, tuple[str, ...]] = {
    "region": REGIONS,
    "moi_label": MOI_LABELS,
    "laterality": LATERALITIES,
    "centricity": CENTRICITIES,
    "seizure_type": SEIZURE_TYPES,
    "awareness": AWARENESS,
    "localization": LOCALIZATIONS,
    "joint": JOINT_NAMES,
}
KINDS: tuple[str, ...] = tuple(SEED)


def _check_kind(kind: str) -> None:
    if kind not in SEED:
        raise ValueError(f"unknown vocabulary kind {kind!r}; kinds are: {', '.join(KINDS)}")


def seed_vocabulary(session: Session) -> bool:
    """Insert vocabulary version 1 (the seed) unless present; return True when it inserted."""
    from deepepil.labels.models import VocabularyTerm, VocabularyVersion

    if session.get(VocabularyVersion, 1) is not None:
        return False
    session.add(VocabularyVersion(version=1, note="seed vocabulary (DESIGN.md)", created_by="deepepil"))
    session.flush()
    session.add_all(
        VocabularyTerm(kind=kind, code=code, label=code, added_in_version=1)
        for kind, codes in SEED.items()
        for code in codes
    )
    session.flush()
    return True


def _new_version(session: Session, note: str, by: str | None) -> int:
    from deepepil.labels.models import VocabularyVersion

    current = session.scalar(select(func.max(VocabularyVersion.version))) or 0
    session.add(VocabularyVersion(version=current + 1, note=note, created_by=by))
    session.flush()
    return current + 1


def add_term(session: Session, kind: str, code: str, *, label: str | None = None,
             description: str | None = None, by: str | None = None) -> int:
    """Add a term (or bring back a retired one) as a new vocabulary version; return the version."""
    from deepepil.labels.models import VocabularyTerm

    _check_kind(kind)
    code = code.strip()
    if not code:
        raise ValueError("a vocabulary code cannot be empty")
    term = session.scalar(select(VocabularyTerm).where(VocabularyTerm.kind == kind, VocabularyTerm.code == code))
    if term is not None and term.retired_in_version is None:
        raise ValueError(f"{kind} {code!r} exists already")
    version = _new_version(session, f"add {kind} {code!r}", by)
    if term is None:
        session.add(VocabularyTerm(kind=kind, code=code, label=label or code, description=description,
                                   added_in_version=version))
    else:
        term.retired_in_version = None
    session.flush()
    return version


def retire_term(session: Session, kind: str, code: str, *, by: str | None = None) -> int:
    """Retire a term: new labels cannot use it, old ones keep it. Returns the new version."""
    from deepepil.labels.models import VocabularyTerm

    _check_kind(kind)
    term = session.scalar(select(VocabularyTerm).where(VocabularyTerm.kind == kind, VocabularyTerm.code == code))
    if term is None or term.retired_in_version is not None:
        raise ValueError(f"{kind} {code!r} is not an active term")
    version = _new_version(session, f"retire {kind} {code!r}", by)
    term.retired_in_version = version
    session.flush()
    return version


def active_codes(session: Session, kind: str) -> list[str]:
    """Codes of the active (not retired) terms of ``kind``, in insertion order."""
    from deepepil.labels.models import VocabularyTerm

    _check_kind(kind)
    return list(
        session.scalars(
            select(VocabularyTerm.code)
            .where(VocabularyTerm.kind == kind, VocabularyTerm.retired_in_version.is_(None))
            .order_by(VocabularyTerm.id)
        )
    )
