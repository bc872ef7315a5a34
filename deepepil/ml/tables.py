"""What the label database says about a snapshot's recordings: patients, classes, seizures.

A label snapshot freezes MOIs and (since snapshot format 2) the patient each recording
belongs to (for patient-grouped splits), the patient's classes (for the syndrome target)
and the seizure windows: a snapshot then gives the same tables whatever the database holds
later. For a format 1 snapshot, a DataFrame of MOIs or a list of storage URIs they come from
the database as it is now. :class:`~deepepil.ml.ClipDataset` takes both tables, so they
can also be written by hand (or loaded from a file) for data outside the database.

>>> recordings = recording_table(snapshot)          # doctest: +SKIP
>>> seizures = seizure_table(snapshot)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import pandas as pd

if TYPE_CHECKING:
    from deepepil.labels.snapshot import Snapshot

__all__ = ["RECORDING_COLUMNS", "SEIZURE_COLUMNS", "recording_table", "seizure_table", "snapshot_mois"]

#: Columns of :func:`recording_table`.
RECORDING_COLUMNS: tuple[str, ...] = (
    "storage_uri", "recording_id", "name", "patient_code", "clinic", "syndrome", "epilepsy_type",
    "localization", "lateralization",
)
#: Columns of :func:`seizure_table`.
SEIZURE_COLUMNS: tuple[str, ...] = (
    "storage_uri", "recording_id", "onset_frame", "offset_frame", "seizure_type", "localization", "lateralization",
)


def snapshot_mois(snapshot: Union["Snapshot", pd.DataFrame]) -> pd.DataFrame:
    """The MOIs of a :class:`~deepepil.labels.snapshot.Snapshot` (or a DataFrame shaped like them)."""
    mois = snapshot if isinstance(snapshot, pd.DataFrame) else snapshot.mois
    return mois


def _frozen(snapshot: Any) -> bool:
    return bool(getattr(snapshot, "frozen_classes", False))


def _syndrome_row(uri: str, recording_id: Any, name: str, code: str, clinic: str, epilepsy_type: Optional[str],
                  loc_hyp: Optional[str], lat_hyp: Optional[str], seizures: pd.DataFrame) -> dict[str, Any]:
    """One :func:`recording_table` row: the seizures' agreed localization/lateralization, else the hypotheses."""
    mine = seizures[seizures["storage_uri"] == uri]
    localizations = set(mine["localization"].dropna())
    lateralizations = set(mine["lateralization"].dropna())
    localization = localizations.pop() if len(localizations) == 1 else loc_hyp
    return {
        "storage_uri": uri, "recording_id": recording_id, "name": name, "patient_code": code, "clinic": clinic,
        "syndrome": epilepsy_type or localization, "epilepsy_type": epilepsy_type, "localization": localization,
        "lateralization": lateralizations.pop() if len(lateralizations) == 1 else lat_hyp,
    }


def _recording_ids(uris: Sequence[str], url: Optional[str], user: Optional[str]) -> dict[str, int]:
    """Storage URI -> recording id of the recordings ``uris`` the caller can see."""
    import sqlalchemy as sa

    from deepepil.labels.catalog import visible_recordings
    from deepepil.labels.db import is_sqlite, resolve_user, session_scope
    from deepepil.labels.models import Recording

    with session_scope(url) as session:
        caller = resolve_user(session, user, auto_register=is_sqlite(session.get_bind()))
        stmt = sa.select(Recording.storage_uri, Recording.id).where(Recording.storage_uri.in_(list(uris)))
        return {uri: int(rid) for uri, rid in session.execute(visible_recordings(stmt, caller)).all()}


def _uris(snapshot: Union["Snapshot", pd.DataFrame, Sequence[str]]) -> list[str]:
    if isinstance(snapshot, (list, tuple)):
        return sorted(set(snapshot))
    return sorted(set(snapshot_mois(snapshot)["storage_uri"]))  # type: ignore[arg-type]


def recording_table(snapshot: Union["Snapshot", pd.DataFrame, Sequence[str]], url: Optional[str] = None, *,
                    user: Optional[str] = None) -> pd.DataFrame:
    """One row per recording of ``snapshot``: its patient and class.

    Parameters
    ----------
    snapshot : Snapshot, DataFrame of its MOIs, or storage URIs
        The recordings to describe.
    url : str, optional
        Label database; default ``$DEEPEPIL_DATABASE_URL``, else the embedded SQLite file.
    user : str, optional
        Whose view of the database (default the current user).

    Returns
    -------
    DataFrame
        Columns :data:`RECORDING_COLUMNS`. ``syndrome`` is the patient's ``epilepsy_type``
        when recorded, else the localization (e.g. FLE / TLE) that all the recording's
        seizures agree on, else missing. Recordings the caller may not see are left out.
        For a snapshot that froze its classes (format 2) the classes, patients and seizures
        come from the snapshot; only ``recording_id`` is looked up in the database (missing
        where the caller cannot see the recording, or it is not registered there).
    """
    if _frozen(snapshot):
        seizures = seizure_table(snapshot)
        ids = _recording_ids(_uris(snapshot), url, user)
        frozen = snapshot.recordings  # type: ignore[union-attr]
        records = [_syndrome_row(row.storage_uri, ids.get(row.storage_uri, pd.NA), row.recording_name,
                                 row.patient_code, row.clinic, row.epilepsy_type, row.localization_hypothesis,
                                 row.lateralization_hypothesis, seizures) for row in frozen.itertuples(index=False)]
        table = pd.DataFrame(records, columns=list(RECORDING_COLUMNS))
        table["recording_id"] = table["recording_id"].astype("Int64")
        return table

    import sqlalchemy as sa

    from deepepil.labels.catalog import visible_recordings
    from deepepil.labels.db import is_sqlite, resolve_user, session_scope
    from deepepil.labels.models import Clinic, Patient, Recording

    uris = _uris(snapshot)
    seizures = seizure_table(uris, url, user=user)
    with session_scope(url) as session:
        caller = resolve_user(session, user, auto_register=is_sqlite(session.get_bind()))
        stmt = (
            sa.select(Recording.storage_uri, Recording.id, Recording.name, Patient.code, Clinic.name,
                      Patient.epilepsy_type, Patient.localization_hypothesis, Patient.lateralization_hypothesis)
            .join(Patient, Recording.patient_id == Patient.id)
            .join(Clinic, Recording.clinic_id == Clinic.id)
            .where(Recording.storage_uri.in_(uris))
            .order_by(Recording.id)
        )
        rows = session.execute(visible_recordings(stmt, caller)).all()
    records = [_syndrome_row(uri, int(rec_id), name, code, clinic, epilepsy_type, loc_hyp, lat_hyp, seizures)
               for uri, rec_id, name, code, clinic, epilepsy_type, loc_hyp, lat_hyp in rows]
    return pd.DataFrame(records, columns=list(RECORDING_COLUMNS))


def seizure_table(snapshot: Union["Snapshot", pd.DataFrame, Sequence[str]], url: Optional[str] = None, *,
                  user: Optional[str] = None) -> pd.DataFrame:
    """The live (not deleted) seizures of the recordings of ``snapshot``; columns :data:`SEIZURE_COLUMNS`.

    A snapshot that froze its classes (format 2) gives its frozen seizures (``recording_id`` missing).
    """
    if _frozen(snapshot):
        frozen = snapshot.seizures  # type: ignore[union-attr]
        frozen.insert(1, "recording_id", pd.array([pd.NA] * len(frozen), dtype="Int64"))
        return frozen[list(SEIZURE_COLUMNS)]

    import sqlalchemy as sa

    from deepepil.labels.catalog import visible_recordings
    from deepepil.labels.db import is_sqlite, resolve_user, session_scope
    from deepepil.labels.models import Recording, Seizure

    uris = _uris(snapshot)
    with session_scope(url) as session:
        caller = resolve_user(session, user, auto_register=is_sqlite(session.get_bind()))
        stmt = (
            sa.select(Recording.storage_uri, Recording.id, Seizure.onset_frame, Seizure.offset_frame,
                      Seizure.seizure_type, Seizure.localization, Seizure.lateralization)
            .join(Recording, Seizure.recording_id == Recording.id)
            .where(Recording.storage_uri.in_(uris), Seizure.deleted.is_(sa.false()))
            .order_by(Recording.id, Seizure.onset_frame)
        )
        rows = session.execute(visible_recordings(stmt, caller)).all()
    frame = pd.DataFrame([tuple(r) for r in rows], columns=list(SEIZURE_COLUMNS))
    frame["offset_frame"] = frame["offset_frame"].astype("Int64")
    return frame
