"""The recording catalog: which published recording stores exist, whose they are, where they live.

``deepepil ingest SOURCE --store DIR --clinic NAME`` registers each store after publishing
it (:func:`register_recording`); :func:`catalog` lists the recordings the caller may see,
and ``deepepil.open_recording(recording_id)`` opens one by id (:func:`recording_uri`).

Patients are known only by pseudonymous codes. When none is given a new one is drawn
at random (:func:`generate_patient_code`); it is derived from nothing, so it cannot be
traced back to a person without the clinic's own key list.

Visibility (until PostgreSQL row-level security takes over, see DESIGN.md "Hub and
security"): admins and data scientists see every recording, clinicians their clinic's.
"""

from __future__ import annotations

import base64
import os
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from deepepil.errors import AccessDeniedError, NotFoundError, ValidationError
from deepepil.labels.db import is_sqlite, resolve_user, session_scope
from deepepil.labels.models import (
    MOI,
    PATIENT_CODE_PATTERN,
    AppUser,
    Clinic,
    Patient,
    Recording,
    Role,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "CATALOG_COLUMNS",
    "generate_patient_code",
    "unique_patient_code",
    "check_patient_code",
    "check_registration",
    "register_recording",
    "catalog",
    "recording_uri",
    "visible_recordings",
]

#: Columns of :func:`catalog`, in order.
CATALOG_COLUMNS: tuple[str, ...] = (
    "recording_id", "name", "patient_code", "clinic", "fps", "num_frames", "duration_seconds",
    "streams", "status", "storage_uri", "size_bytes", "n_mois", "created_at",
)

_CODE_RE = re.compile(PATIENT_CODE_PATTERN)


def generate_patient_code() -> str:
    """A new random pseudonymous patient code, ``P-`` and 8 base32 characters (e.g. ``P-7QX2M4ZA``)."""
    return "P-" + base64.b32encode(secrets.token_bytes(5)).decode("ascii")  # 40 random bits


def check_patient_code(code: str) -> str:
    """Return ``code`` stripped, or raise :class:`ValidationError` when it is not a valid code."""
    code = code.strip()
    if not _CODE_RE.match(code):
        raise ValidationError(
            f"patient code {code!r} is not valid: use 4 to 32 capital letters, digits and dashes, "
            f"starting with a letter or digit (e.g. {generate_patient_code()}), and never a name, "
            f"birth date or hospital number; or give none and a code is generated"
        )
    return code


def _clinic(session: Session, name: str) -> Clinic:
    clinic = session.scalar(select(Clinic).where(Clinic.name == name))
    if clinic is None:
        known = list(session.scalars(select(Clinic.name).order_by(Clinic.name)))
        raise NotFoundError(
            f"no clinic named {name!r}; clinics are: {', '.join(known) or '(none yet)'}. "
            f"An admin adds one with `deepepil admin add-clinic NAME`"
        )
    return clinic


def _caller(session: Session, user: str | None) -> AppUser:
    return resolve_user(session, user, auto_register=is_sqlite(session.get_bind()))


def _check_may_register(caller: AppUser, clinic: Clinic) -> None:
    # the same rule as the database's row-level security (docs/security.md): recordings are
    # ingested into the read-only store and registered by admins
    if caller.role == Role.admin:
        return
    raise AccessDeniedError(
        f"user {caller.username!r} ({caller.role.value}) may not register recordings of clinic "
        f"{clinic.name!r}: only admins may (recordings are ingested into the read-only store)"
    )


def unique_patient_code(session: Session) -> str:
    """A new pseudonymous patient code that no patient in the database has yet."""
    code = generate_patient_code()
    while session.scalar(select(Patient.id).where(Patient.code == code)) is not None:
        code = generate_patient_code()
    return code


def _patient(session: Session, clinic: Clinic, code: str | None) -> Patient:
    """The patient with ``code`` in ``clinic`` (created when new), or a new patient with a new code."""
    if code is None:
        code = unique_patient_code(session)
    else:
        code = check_patient_code(code)
    patient = session.scalar(select(Patient).where(Patient.code == code))
    if patient is None:
        patient = Patient(code=code, clinic_id=clinic.id)
        session.add(patient)
        session.flush()
    elif patient.clinic_id != clinic.id:
        raise ValidationError(
            f"patient code {code!r} belongs to another clinic, not {clinic.name!r}: codes are unique "
            f"across clinics. Give this clinic's code for the patient, or none to generate a new one"
        )
    return patient


def check_registration(clinic: str, patient_code: str | None = None, url: str | None = None, *,
                       user: str | None = None) -> None:
    """Check, without writing, that :func:`register_recording` would accept ``clinic`` and ``patient_code``.

    ``deepepil ingest --clinic`` calls it before a long ingest, so a typo in a clinic
    name fails at once rather than after the store is written.
    """
    with session_scope(url) as session:
        caller = _caller(session, user)
        clinic_row = _clinic(session, clinic)
        _check_may_register(caller, clinic_row)
        if patient_code is not None:
            code = check_patient_code(patient_code)
            owner = session.scalar(select(Patient.clinic_id).where(Patient.code == code))
            if owner is not None and owner != clinic_row.id:
                _patient(session, clinic_row, code)  # raises the message


def register_recording(store_path: str | os.PathLike, clinic: str, patient_code: str | None = None,
                       url: str | None = None, *, user: str | None = None) -> int:
    """Register a published recording store in the catalog; return its recording id.

    Parameters
    ----------
    store_path : path-like
        A published ``NAME.zarr`` store (from :func:`deepepil.ingest`). Its absolute path
        becomes the recording's ``storage_uri``.
    clinic : str
        Name of the clinic the patient belongs to (``deepepil admin add-clinic``).
    patient_code : str, optional
        The patient's pseudonymous code: the patient is created in ``clinic`` when new.
        Default: a new patient with a generated code (:func:`generate_patient_code`).
    url : str, optional
        Label database; default ``$DEEPEPIL_DATABASE_URL``, else the embedded SQLite file.
    user : str, optional
        Who registers (default the current user); an admin, or a clinician of ``clinic``.

    Returns
    -------
    int
        The recording id. A store registered already (same path, same manifest checksum)
        returns its existing id.

    Raises
    ------
    RecordingNotFoundError, IncompleteStoreError
        No published store at ``store_path``.
    NotFoundError
        No such clinic.
    ValidationError
        Invalid patient code, a code of another clinic, or a store at a registered path
        whose content changed.
    AccessDeniedError
        The user may not register recordings of ``clinic``.
    SchemaBehindError
        The database needs ``deepepil db upgrade``.
    """
    return _register(store_path, clinic, patient_code, url, user=user)[0]


def _register(store_path: str | os.PathLike, clinic: str, patient_code: str | None = None,
              url: str | None = None, *, user: str | None = None) -> tuple[int, str]:
    """:func:`register_recording`, returning the recording id and the patient code."""
    from deepepil.recordings.store import manifest_sha256, read_manifest, read_store_attrs

    root = Path(store_path).resolve()
    attrs = read_store_attrs(root)
    checksum = manifest_sha256(root)
    size_bytes = int(read_manifest(root).get("total_bytes", 0))
    provenance = attrs.get("provenance", {})
    uri = str(root)
    for attempt in range(3):
        try:
            with session_scope(url) as session:
                caller = _caller(session, user)
                clinic_row = _clinic(session, clinic)
                _check_may_register(caller, clinic_row)
                existing = session.scalar(select(Recording).where(Recording.storage_uri == uri))
                if existing is not None:
                    return _already_registered(session, existing, checksum, clinic_row, patient_code)
                patient = _patient(session, clinic_row, patient_code)
                recording = Recording(
                    name=str(attrs.get("name", root.stem)),
                    patient_id=patient.id,
                    clinic_id=clinic_row.id,
                    storage_uri=uri,
                    streams=",".join(attrs.get("streams", [])),
                    fps=float(attrs["fps"]),
                    num_frames=int(attrs["num_frames"]),
                    duration_seconds=float(attrs["duration_seconds"]),
                    size_bytes=size_bytes,
                    checksum=checksum,
                    source_format=str(provenance.get("source_format") or "unknown"),
                    source_sha256=provenance.get("source_sha256"),
                )
                session.add(recording)
                session.flush()
                return recording.id, patient.code
        except sa.exc.IntegrityError:
            # a concurrent registration created the same patient or recording first: look again
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _already_registered(session: Session, recording: Recording, checksum: str, clinic: Clinic,
                        patient_code: str | None) -> tuple[int, str]:
    if recording.checksum != checksum:
        raise ValidationError(
            f"{recording.storage_uri} is registered as recording {recording.id} with another content "
            f"(manifest checksum differs): a published store must not change. Ingest the source "
            f"under a new name instead"
        )
    code = session.scalar(select(Patient.code).where(Patient.id == recording.patient_id))
    if recording.clinic_id != clinic.id or (patient_code is not None and patient_code.strip() != code):
        raise ValidationError(
            f"{recording.storage_uri} is registered already as recording {recording.id} of another "
            f"patient or clinic"
        )
    return recording.id, code


def visible_recordings(stmt: sa.Select, user: AppUser) -> sa.Select:
    """Restrict a query over :class:`Recording` to the recordings ``user`` may see."""
    if user.role == Role.clinician:
        return stmt.where(Recording.clinic_id == user.clinic_id)
    return stmt


def catalog(url: str | None = None, *, user: str | None = None) -> pd.DataFrame:
    """The recordings the caller may see, one row each (columns :data:`CATALOG_COLUMNS`).

    Parameters
    ----------
    url : str, optional
        Label database; default ``$DEEPEPIL_DATABASE_URL``, else the embedded SQLite file.
    user : str, optional
        Whose view (default the current user: ``$DEEPEPIL_USER``, ``$JUPYTERHUB_USER``, the
        login name). Admins and data scientists see all recordings, clinicians their
        clinic's.

    Returns
    -------
    pandas.DataFrame
        ``recording_id``, ``name``, ``patient_code``, ``clinic``, ``fps``, ``num_frames``,
        ``duration_seconds``, ``streams`` (comma separated), ``status``, ``storage_uri``,
        ``size_bytes``, ``n_mois`` (movements of interest, deleted ones not counted) and
        ``created_at`` (UTC), ordered by ``recording_id``.
    """
    import pandas as pd

    with session_scope(url) as session:
        caller = _caller(session, user)
        n_mois = (
            select(MOI.recording_id, func.count().label("n"))
            .where(MOI.deleted.is_(sa.false()))
            .group_by(MOI.recording_id)
            .subquery()
        )
        stmt = (
            select(
                Recording.id.label("recording_id"), Recording.name, Patient.code.label("patient_code"),
                Clinic.name.label("clinic"), Recording.fps, Recording.num_frames, Recording.duration_seconds,
                Recording.streams, Recording.status, Recording.storage_uri, Recording.size_bytes,
                func.coalesce(n_mois.c.n, 0).label("n_mois"), Recording.created_at,
            )
            .join(Patient, Recording.patient_id == Patient.id)
            .join(Clinic, Recording.clinic_id == Clinic.id)
            .outerjoin(n_mois, n_mois.c.recording_id == Recording.id)
            .order_by(Recording.id)
        )
        rows = session.execute(visible_recordings(stmt, caller)).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(CATALOG_COLUMNS))
    frame["status"] = [s.value if hasattr(s, "value") else s for s in frame["status"]]
    frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)  # SQLite returns naive UTC
    for column in ("recording_id", "num_frames", "size_bytes", "n_mois"):
        frame[column] = frame[column].astype("int64")
    for column in ("fps", "duration_seconds"):
        frame[column] = frame[column].astype("float64")
    return frame


def recording_uri(recording_id: int, url: str | None = None, *, user: str | None = None) -> str:
    """The storage URI of a recording the caller may see (what ``open_recording(id)`` opens).

    Raises
    ------
    NotFoundError
        No such recording, or one the caller may not see.
    """
    with session_scope(url) as session:
        caller = _caller(session, user)
        username = caller.username
        stmt = visible_recordings(select(Recording.storage_uri).where(Recording.id == int(recording_id)), caller)
        uri = session.scalar(stmt)
    if uri is None:
        raise NotFoundError(
            f"no recording {recording_id} visible to user {username!r}; "
            f"deepepil.catalog() lists the recordings you may open"
        )
    return uri
