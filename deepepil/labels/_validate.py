"""Checks the label service makes before it writes: numbers, intervals, vocabulary, access.

Every check raises :class:`~deepepil.errors.ValidationError` (or
:class:`~deepepil.errors.AccessDeniedError`) with a message that says what was wrong and
what is allowed. Nothing here writes.
"""

from __future__ import annotations

import difflib
import math
import operator
from collections.abc import Iterable, Sequence
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from deepepil.errors import AccessDeniedError, ValidationError
from deepepil.labels._rows import VOCAB_T, RecordingInfo, UserInfo

__all__ = [
    "LABEL_WRITERS",
    "SUGGESTION_WRITERS",
    "as_frame",
    "as_fraction",
    "as_finite",
    "check_interval",
    "check_frame",
    "check_choice",
    "as_uri",
    "Vocabulary",
    "load_vocabulary",
    "require_role",
    "check_clinic",
]

#: Roles that write labels (MOIs, seizures, keypoints) and decide on suggestions.
LABEL_WRITERS: tuple[str, ...] = ("clinician", "admin")
#: Roles that publish model suggestions.
SUGGESTION_WRITERS: tuple[str, ...] = ("data_scientist", "admin")

#: How a vocabulary kind is named in messages (plural).
_PLURAL = {
    "region": "regions",
    "moi_label": "MOI labels",
    "laterality": "lateralities",
    "centricity": "centricities",
    "seizure_type": "seizure types",
    "awareness": "awareness values",
    "localization": "localizations",
    "joint": "joints",
}
#: Lists longer than this are not spelled out in messages; the closest matches are.
_MAX_LISTED = 12


def as_frame(value: Any, name: str) -> int:
    """A frame index as an ``int`` (integral floats and numpy integers accepted)."""
    if isinstance(value, bool) or value is None:
        raise ValidationError(f"{name} must be an integer frame index, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        pass
    if isinstance(value, float) and value.is_integer():
        return int(value)
    hint = "; for times in seconds use add_moi_seconds" if isinstance(value, float) else ""
    raise ValidationError(f"{name} must be an integer frame index, got {value!r}{hint}")


def as_finite(value: Any, name: str) -> float:
    """A finite float."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationError(f"{name} must be a number, got {value!r}") from None
    if isinstance(value, bool) or not math.isfinite(number):
        raise ValidationError(f"{name} must be a finite number, got {value!r}")
    return number


def as_fraction(value: Any, name: str) -> Optional[float]:
    """``None`` or a number in [0, 1]."""
    if value is None:
        return None
    number = as_finite(value, name)
    if not 0.0 <= number <= 1.0:
        raise ValidationError(f"{name} must be between 0 and 1 (or None), got {value!r}")
    return number


def check_interval(rec: RecordingInfo, start_frame: int, end_frame: int,
                   names: tuple[str, str] = ("start_frame", "end_frame")) -> None:
    """``0 <= start < end <= num_frames`` (half-open: the end frame is not part of the interval)."""
    start_name, end_name = names
    if end_frame <= start_frame:
        raise ValidationError(
            f"{end_name} ({end_frame}) must be after {start_name} ({start_frame}): intervals are half-open, "
            f"{start_name} <= frame < {end_name}, so a one-frame interval has {end_name} = {start_name} + 1"
        )
    if start_frame < 0 or end_frame > rec.num_frames:
        bad = f"{start_name} {start_frame}" if start_frame < 0 else f"{end_name} {end_frame}"
        raise ValidationError(
            f"{bad} is outside the recording: {rec.describe()}; "
            f"allowed is 0 <= {start_name} < {end_name} <= {rec.num_frames}"
        )


def check_frame(rec: RecordingInfo, frame_index: int, name: str = "frame_index") -> None:
    """``0 <= frame_index < num_frames``."""
    if not 0 <= frame_index < rec.num_frames:
        raise ValidationError(
            f"{name} {frame_index} is outside the recording: {rec.describe()}; "
            f"allowed is 0 <= {name} < {rec.num_frames}"
        )


def as_uri(value: Any, name: str, max_chars: int) -> Optional[str]:
    """``None`` or a path/URL: a non-blank string of at most ``max_chars`` characters (the column's size)."""
    if value is None:
        return None
    if hasattr(value, "__fspath__"):
        value = str(value.__fspath__())
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} must be a path or URL (a non-empty string of at most {max_chars} "
                              f"characters) or None, got {value!r}")
    if len(value) > max_chars:
        raise ValidationError(f"{name} is {len(value)} characters long; at most {max_chars} are allowed "
                              f"(use a shorter folder): {value[:60]}...")
    return value


def check_choice(value: Any, allowed: Sequence[str], name: str) -> str:
    """One of a few fixed values (source, status, decision)."""
    value = getattr(value, "value", value)
    if value not in allowed:
        raise ValidationError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")
    return value


class Vocabulary:
    """The active (and the retired) terms of some vocabulary kinds, read once per transaction."""

    def __init__(self, active: dict[str, list[str]], retired: dict[str, dict[str, int]]):
        self.active = active
        self.retired = retired

    def codes(self, kind: str) -> list[str]:
        return list(self.active.get(kind, []))

    def check(self, kind: str, value: Any, name: str, *, optional: bool = False) -> Optional[str]:
        """``value`` if it is an active term of ``kind``; else a ValidationError listing what is allowed."""
        if value is None:
            if optional:
                return None
            raise ValidationError(f"{name} is required; {self._allowed(kind, '')}")
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a string, got {value!r}; {self._allowed(kind, '')}")
        codes = self.active.get(kind, [])
        if value in codes:
            return value
        retired_in = self.retired.get(kind, {}).get(value)
        if retired_in is not None:
            raise ValidationError(
                f"{name} {value!r} was retired in vocabulary version {retired_in}: labels that have it keep it, "
                f"new ones cannot use it; {self._allowed(kind, value)}"
            )
        raise ValidationError(f"unknown {name} {value!r}; {self._allowed(kind, value)}")

    def _allowed(self, kind: str, value: str) -> str:
        codes = self.active.get(kind, [])
        plural = _PLURAL.get(kind, kind)
        if not codes:
            return f"there are no active {plural} (run `deepepil db upgrade` to seed the vocabulary)"
        if len(codes) <= _MAX_LISTED:
            return f"valid {plural}: {', '.join(map(repr, codes))}"
        lowered = {c.lower(): c for c in codes}
        close = difflib.get_close_matches(value.lower(), list(lowered), n=5, cutoff=0.5) if value else []
        where = f"store.vocabulary({kind!r}) lists all {len(codes)}"
        if close:
            return f"closest valid {plural}: {', '.join(repr(lowered[c]) for c in close)} ({where})"
        return f"no close match among the {len(codes)} valid {plural} ({where})"


def load_vocabulary(conn: Connection, kinds: Iterable[str]) -> Vocabulary:
    """The terms of ``kinds``, active ones in insertion order."""
    kinds = list(kinds)
    rows = conn.execute(
        sa.select(VOCAB_T.c.kind, VOCAB_T.c.code, VOCAB_T.c.retired_in_version)
        .where(VOCAB_T.c.kind.in_(kinds)).order_by(VOCAB_T.c.id)
    ).all()
    active: dict[str, list[str]] = {k: [] for k in kinds}
    retired: dict[str, dict[str, int]] = {k: {} for k in kinds}
    for kind, code, retired_in in rows:
        if retired_in is None:
            active[kind].append(code)
        else:
            retired[kind][code] = retired_in
    return Vocabulary(active, retired)


def require_role(user: UserInfo, roles: Sequence[str], action: str) -> None:
    """AccessDeniedError unless the user has one of ``roles``."""
    if user.role not in roles:
        raise AccessDeniedError(
            f"{user.describe()} may not {action}: that needs the role {' or '.join(roles)}"
        )


def check_clinic(user: UserInfo, rec: RecordingInfo, action: str) -> None:
    """Clinicians write only for recordings of their own clinic (a convenience check; the database enforces it)."""
    if user.role == "clinician" and user.clinic_id != rec.clinic_id:
        mine = "no clinic" if user.clinic_id is None else f"clinic {user.clinic_id}"
        raise AccessDeniedError(
            f"{user.username} may not {action} recording {rec.id}: it belongs to clinic {rec.clinic_id} "
            f"({rec.clinic!r}) and {user.username} is a clinician of {mine}; clinicians label only their "
            f"own clinic's recordings"
        )
