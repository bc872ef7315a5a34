"""The label database schema: SQLAlchemy 2.0 typed ORM models.

Times are frame indices (exact) plus the recording's ``fps``; seconds and milliseconds are
derived (``seconds = frame / fps``). Intervals are half-open: ``start_frame <= i < end_frame``.
Vocabulary values (regions, labels, seizure types, ...) are stored as their stable
``code`` strings and checked against :class:`VocabularyTerm` by the label service, so a
retired term keeps its rows readable. Editable rows carry ``version`` (optimistic
concurrency) and ``deleted`` (soft delete, so a delete can be restored); every change
writes a :class:`Revision`. Patients exist only as generated pseudonymous codes: there
is no column for a name, a birth date or a hospital number, and none may be added.
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any, Optional

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Base",
    "Role",
    "Source",
    "LabelStatus",
    "RecordingStatus",
    "Decision",
    "Clinic",
    "AppUser",
    "Patient",
    "Recording",
    "VocabularyVersion",
    "VocabularyTerm",
    "Seizure",
    "MOI",
    "Keypoint",
    "Suggestion",
    "Revision",
    "LabelSnapshot",
    "PATIENT_CODE_PATTERN",
]

#: Pseudonymous patient codes: letters, digits and dashes, no spaces (e.g. ``SYN-4OAMYS``).
PATIENT_CODE_PATTERN = r"^[A-Z0-9][A-Z0-9-]{3,31}$"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints deterministically."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {dict[str, Any]: JSON, dt.datetime: DateTime(timezone=True)}


class Role(str, enum.Enum):
    clinician = "clinician"
    data_scientist = "data_scientist"
    admin = "admin"


class Source(str, enum.Enum):
    human = "human"
    model = "model"


class LabelStatus(str, enum.Enum):
    draft = "draft"
    final = "final"
    reviewed = "reviewed"


class RecordingStatus(str, enum.Enum):
    new = "new"
    in_progress = "in_progress"
    done = "done"


class Decision(str, enum.Enum):
    pending = "pending"
    accepted = "accepted"
    rejected = "rejected"


def _enum(cls: type[enum.Enum]) -> Enum:
    # stored as plain strings with a CHECK, identical on PostgreSQL and SQLite
    return Enum(cls, native_enum=False, length=32, values_callable=lambda e: [m.value for m in e],
                validate_strings=True, create_constraint=True, name=cls.__name__.lower())


class _Timestamps:
    created_at: Mapped[dt.datetime] = mapped_column(default=_utcnow, server_default=func.now())


class _Editable(_Timestamps):
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    deleted: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    updated_at: Mapped[dt.datetime] = mapped_column(default=_utcnow, server_default=func.now(), onupdate=_utcnow)


class Clinic(_Timestamps, Base):
    """A clinic (epilepsy monitoring unit): the unit of data access for clinicians."""

    __tablename__ = "clinic"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)


class AppUser(_Timestamps, Base):
    """A hub user: clinician (of one clinic), data scientist or admin."""

    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[Role] = mapped_column(_enum(Role))
    clinic_id: Mapped[Optional[int]] = mapped_column(ForeignKey("clinic.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    #: The user's own PostgreSQL login role (set by :func:`deepepil.labels.authz.issue_credentials`);
    #: row-level security identifies the user by it. Never a password: those live in ``pg_authid`` only.
    db_role: Mapped[Optional[str]] = mapped_column(String(63), unique=True)
    clinic: Mapped[Optional[Clinic]] = relationship(lazy="raise")


class Patient(_Editable, Base):
    """A patient, known only by a generated pseudonymous code."""

    __tablename__ = "patient"
    __table_args__ = (CheckConstraint("age_at_recording_years IS NULL OR (age_at_recording_years >= 0 AND age_at_recording_years < 130)", name="age_range"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    sex: Mapped[Optional[str]] = mapped_column(String(16))
    age_at_recording_years: Mapped[Optional[int]] = mapped_column(Integer)
    epilepsy_type: Mapped[Optional[str]] = mapped_column(String(100))
    localization_hypothesis: Mapped[Optional[str]] = mapped_column(String(100))
    lateralization_hypothesis: Mapped[Optional[str]] = mapped_column(String(32))
    imaging_finding: Mapped[Optional[str]] = mapped_column(Text)
    notes: Mapped[Optional[str]] = mapped_column(Text)
    clinic: Mapped[Clinic] = relationship(lazy="raise")


class Recording(_Timestamps, Base):
    """A published recording store and what is known about it without opening it."""

    __tablename__ = "recording"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    storage_uri: Mapped[str] = mapped_column(String(1000), unique=True)
    streams: Mapped[str] = mapped_column(String(100))  # comma separated, e.g. "rgb,ir,depth"
    fps: Mapped[float] = mapped_column(Float)
    num_frames: Mapped[int] = mapped_column(Integer)
    duration_seconds: Mapped[float] = mapped_column(Float)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of the store's manifest
    source_format: Mapped[str] = mapped_column(String(50))
    source_sha256: Mapped[Optional[str]] = mapped_column(String(64))
    bed: Mapped[Optional[str]] = mapped_column(String(50))
    status: Mapped[RecordingStatus] = mapped_column(_enum(RecordingStatus), default=RecordingStatus.new,
                                                    server_default=RecordingStatus.new.value)
    patient: Mapped[Patient] = relationship(lazy="raise")


class VocabularyVersion(_Timestamps, Base):
    """A version of the controlled vocabularies: the seed is version 1, each admin change adds one."""

    __tablename__ = "vocabulary_version"
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    note: Mapped[str] = mapped_column(Text)
    created_by: Mapped[Optional[str]] = mapped_column(String(100))


class VocabularyTerm(_Timestamps, Base):
    """One term of a controlled vocabulary (``kind``: region, moi_label, seizure_type, ...)."""

    __tablename__ = "vocabulary_term"
    __table_args__ = (UniqueConstraint("kind", "code", name="kind_code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    code: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200))
    parent_code: Mapped[Optional[str]] = mapped_column(String(100))
    description: Mapped[Optional[str]] = mapped_column(Text)
    added_in_version: Mapped[int] = mapped_column(ForeignKey("vocabulary_version.version"))
    retired_in_version: Mapped[Optional[int]] = mapped_column(ForeignKey("vocabulary_version.version"))


class Seizure(_Editable, Base):
    """A seizure in a recording: onset/offset, ILAE 2017 classification, status, author."""

    __tablename__ = "seizure"
    __table_args__ = (
        CheckConstraint("onset_frame >= 0", name="onset_nonnegative"),
        CheckConstraint("offset_frame IS NULL OR offset_frame > onset_frame", name="offset_after_onset"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recording.id"), index=True)
    onset_frame: Mapped[int] = mapped_column(Integer)
    offset_frame: Mapped[Optional[int]] = mapped_column(Integer)
    seizure_type: Mapped[Optional[str]] = mapped_column(String(100))
    awareness: Mapped[Optional[str]] = mapped_column(String(32))
    lateralization: Mapped[Optional[str]] = mapped_column(String(32))
    localization: Mapped[Optional[str]] = mapped_column(String(32))
    status: Mapped[LabelStatus] = mapped_column(_enum(LabelStatus), default=LabelStatus.draft,
                                                server_default=LabelStatus.draft.value)
    author_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    notes: Mapped[Optional[str]] = mapped_column(Text)


class MOI(_Editable, Base):
    """A movement of interest: a labelled interval of one body region, by one author."""

    __tablename__ = "moi"
    __table_args__ = (
        CheckConstraint("start_frame >= 0", name="start_nonnegative"),
        CheckConstraint("end_frame > start_frame", name="end_after_start"),
        CheckConstraint("confidence IS NULL OR (confidence >= 0 AND confidence <= 1)", name="confidence_range"),
        Index("ix_moi_recording_region", "recording_id", "region"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recording.id"), index=True)
    seizure_id: Mapped[Optional[int]] = mapped_column(ForeignKey("seizure.id"))
    region: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(100))
    laterality: Mapped[Optional[str]] = mapped_column(String(32))
    centricity: Mapped[Optional[str]] = mapped_column(String(32))
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)
    source: Mapped[Source] = mapped_column(_enum(Source), default=Source.human, server_default=Source.human.value)
    author_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    confidence: Mapped[Optional[float]] = mapped_column(Float)
    suggestion_id: Mapped[Optional[int]] = mapped_column(ForeignKey("suggestion.id"))


class Keypoint(_Editable, Base):
    """A skeleton joint placed on one frame: image position and, when lifted, 3D position."""

    __tablename__ = "keypoint"
    __table_args__ = (
        CheckConstraint("frame_index >= 0", name="frame_nonnegative"),
        Index("ix_keypoint_recording_frame", "recording_id", "frame_index"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recording.id"))
    frame_index: Mapped[int] = mapped_column(Integer)
    joint: Mapped[str] = mapped_column(String(100))
    u_px: Mapped[float] = mapped_column(Float)  # column in the depth/IR image
    v_px: Mapped[float] = mapped_column(Float)  # row in the depth/IR image
    x_m: Mapped[Optional[float]] = mapped_column(Float)  # camera coordinates, metres
    y_m: Mapped[Optional[float]] = mapped_column(Float)
    z_m: Mapped[Optional[float]] = mapped_column(Float)
    source: Mapped[Source] = mapped_column(_enum(Source), default=Source.human, server_default=Source.human.value)
    author_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    confidence: Mapped[Optional[float]] = mapped_column(Float)


class Suggestion(_Editable, Base):
    """A model's proposed MOI, shown to clinicians to accept or reject."""

    __tablename__ = "suggestion"
    __table_args__ = (
        CheckConstraint("end_frame > start_frame", name="end_after_start"),
        CheckConstraint("start_frame >= 0", name="start_nonnegative"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    model_version: Mapped[str] = mapped_column(String(200))
    recording_id: Mapped[int] = mapped_column(ForeignKey("recording.id"), index=True)
    region: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(100))
    laterality: Mapped[Optional[str]] = mapped_column(String(32))
    start_frame: Mapped[int] = mapped_column(Integer)
    end_frame: Mapped[int] = mapped_column(Integer)
    score: Mapped[float] = mapped_column(Float)
    decision: Mapped[Decision] = mapped_column(_enum(Decision), default=Decision.pending,
                                               server_default=Decision.pending.value)
    decided_by_id: Mapped[Optional[int]] = mapped_column(ForeignKey("app_user.id"))
    decided_at: Mapped[Optional[dt.datetime]] = mapped_column()
    created_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
    #: Where the model's Grad-CAM explanation of the suggestion lies (an ``.npz`` written by
    #: :meth:`deepepil.ml.explain.Explanation.save`; an absolute path or a URL), set once on insert.
    explanation_uri: Mapped[Optional[str]] = mapped_column(String(1000))


class Revision(Base):
    """Append-only audit: one row per change of any label row (never updated or deleted)."""

    __tablename__ = "revision"
    __table_args__ = (Index("ix_revision_row", "table_name", "row_id"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(64))
    row_id: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # create / update / delete / restore / undo
    before: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    after: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=_utcnow, server_default=func.now())
    undoes_id: Mapped[Optional[int]] = mapped_column(ForeignKey("revision.id"))


class LabelSnapshot(_Timestamps, Base):
    """A frozen set of labels (what a model was trained on), identified by its content hash."""

    __tablename__ = "label_snapshot"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    query: Mapped[dict[str, Any]] = mapped_column(JSON)
    content: Mapped[dict[str, Any]] = mapped_column(JSON)  # canonical rows, never changed
    num_mois: Mapped[int] = mapped_column(Integer)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"))
