"""Label snapshots: a frozen set of MOIs with a content hash, what a model was trained on.

The content is canonical JSON of the selected live MOIs, sorted, with only what a label
says (recording storage URI and name, region, label, laterality, centricity, frames, fps,
source, author) and no ids, versions or times: the same labels give the same hash in
any database. It is stored once in ``label_snapshot.content`` and never changed; later
edits of the MOIs do not touch an existing snapshot.

Since format 2 the content also freezes what a classifier's target is read from: for each
of the snapshot's recordings its patient code, clinic and the patient's epilepsy type and
localization/lateralization hypotheses (:data:`RECORDING_FIELDS`), and the recordings' live
seizures (:data:`SEIZURE_FIELDS`). A later change of a patient's diagnosis or a seizure's
localization therefore changes neither the snapshot nor the classes trained from it.
Format 1 snapshots (MOIs only) still load; :attr:`Snapshot.frozen_classes` is False for them.

>>> snap = store.create_snapshot("train-2025-06", sources=("human",))   # doctest: +SKIP
>>> snap.content_hash, snap.num_mois
>>> store.snapshot(snap.content_hash[:12]).mois                          # a DataFrame
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, Optional, Union

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from deepepil.errors import IntegrityError, NotFoundError, ValidationError
from deepepil.labels import models
from deepepil.labels._rows import (
    CLINIC_T, MOI_T, RECORDING_T, SEIZURE_T, SNAPSHOT_T, USER_T, UserInfo, utc,
)

__all__ = ["Snapshot", "SNAPSHOT_FIELDS", "RECORDING_FIELDS", "SEIZURE_FIELDS", "FORMAT_VERSION", "canonical_json", "content_hash", "create", "load",
           "listing"]

#: The fields of one MOI in a snapshot, in the order of each stored row.
SNAPSHOT_FIELDS: tuple[str, ...] = (
    "storage_uri", "recording_name", "region", "label", "laterality", "centricity", "start_frame", "end_frame",
    "fps", "source", "author",
)
#: The fields of one recording in a snapshot (format 2): the patient's classes as they were.
RECORDING_FIELDS: tuple[str, ...] = (
    "storage_uri", "recording_name", "patient_code", "clinic", "epilepsy_type", "localization_hypothesis",
    "lateralization_hypothesis",
)
#: The fields of one live seizure of a snapshot's recording (format 2).
SEIZURE_FIELDS: tuple[str, ...] = (
    "storage_uri", "onset_frame", "offset_frame", "seizure_type", "localization", "lateralization",
)
#: Version of the snapshot content layout (part of the hashed content).
FORMAT_VERSION = 2
_PATIENT_T: sa.Table = models.Patient.__table__  # type: ignore[assignment]
_SOURCES = ("human", "model")


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """A stored label snapshot. ``content`` is the canonical, hashed form; :attr:`mois` the same as a DataFrame."""

    id: int
    name: str
    content_hash: str
    num_mois: int
    query: dict[str, Any]
    created_by: str
    created_at: dt.datetime
    content: dict[str, Any] = dataclasses.field(repr=False)

    @property
    def mois(self) -> pd.DataFrame:
        """The snapshot's MOIs: one row each, columns :data:`SNAPSHOT_FIELDS` plus start/end seconds."""
        df = pd.DataFrame(self.content["rows"], columns=list(self.content["fields"]))
        for name in ("start_frame", "end_frame"):
            df[name] = df[name].astype("int64")
        df["fps"] = df["fps"].astype("float64")
        df["start_seconds"] = df["start_frame"] / df["fps"]
        df["end_seconds"] = df["end_frame"] / df["fps"]
        return df

    @property
    def frozen_classes(self) -> bool:
        """True when the snapshot froze its recordings' patients and seizures (format 2 and later)."""
        return "recordings" in self.content

    @property
    def recordings(self) -> pd.DataFrame:
        """The snapshot's recordings with their patient's classes as frozen (columns :data:`RECORDING_FIELDS`).

        Raises ValidationError for a format 1 snapshot, which did not freeze them.
        """
        self._need_frozen("recordings")
        return pd.DataFrame(self.content["recordings"], columns=list(self.content["recording_fields"]))

    @property
    def seizures(self) -> pd.DataFrame:
        """The seizures of the snapshot's recordings as frozen (columns :data:`SEIZURE_FIELDS`; offset may be NA)."""
        self._need_frozen("seizures")
        df = pd.DataFrame(self.content["seizures"], columns=list(self.content["seizure_fields"]))
        df["onset_frame"] = df["onset_frame"].astype("int64")
        df["offset_frame"] = df["offset_frame"].astype("Int64")
        return df

    def _need_frozen(self, what: str) -> None:
        if not self.frozen_classes:
            raise ValidationError(f"snapshot {self.name!r} has format {self.content.get('format')} and froze MOIs "
                                  f"only, not its {what}; read them from the database (deepepil.ml.recording_table) "
                                  f"or make a new snapshot")


def canonical_json(content: Mapping[str, Any]) -> bytes:
    """The canonical UTF-8 JSON bytes of snapshot content (sorted keys, no spaces)."""
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False).encode("utf-8")


def content_hash(content: Mapping[str, Any]) -> str:
    """sha256 (hex) of :func:`canonical_json`."""
    return hashlib.sha256(canonical_json(content)).hexdigest()


def _sort_key(row: Sequence[Any]) -> tuple:
    # None sorts before any string; numbers compare as numbers
    return tuple((0, "") if v is None else (1, v) for v in row)


def _as_list(value: Any, name: str) -> Optional[list]:
    if value is None:
        return None
    values = [value] if isinstance(value, (str, int)) else list(value)
    if not values:
        raise ValidationError(f"{name} is empty: pass None to take all, or at least one value")
    return values


def create(conn: Connection, user: UserInfo, name: str, *, recording_ids: Optional[Sequence[int]] = None,
           authors: Optional[Sequence[str]] = None, sources: Optional[Sequence[str]] = ("human",),
           regions: Optional[Sequence[str]] = None, at: Optional[dt.datetime] = None) -> Snapshot:
    """Freeze the live MOIs matching the query into a new snapshot (within the caller's transaction).

    Parameters
    ----------
    recording_ids, authors, sources, regions : sequence, optional
        Restrict to these (None: all). ``sources`` defaults to human labels only.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValidationError(f"a snapshot needs a name (e.g. 'train-2025-06'), got {name!r}")
    query = {
        "recording_ids": sorted(int(r) for r in _as_list(recording_ids, "recording_ids") or []) or None,
        "authors": sorted(_as_list(authors, "authors") or []) or None,
        "sources": sorted(_as_list(sources, "sources") or []) or None,
        "regions": sorted(_as_list(regions, "regions") or []) or None,
    }
    for source in query["sources"] or []:
        if source not in _SOURCES:
            raise ValidationError(f"unknown source {source!r}; sources are {', '.join(_SOURCES)}")
    m, r, u = MOI_T, RECORDING_T, USER_T
    stmt = (
        sa.select(r.c.storage_uri, r.c.name, m.c.region, m.c.label, m.c.laterality, m.c.centricity,
                  m.c.start_frame, m.c.end_frame, r.c.fps, sa.type_coerce(m.c.source, sa.String), u.c.username)
        .select_from(m.join(r, m.c.recording_id == r.c.id).join(u, m.c.author_id == u.c.id))
        .where(m.c.deleted.is_(False))
    )
    if query["recording_ids"] is not None:
        stmt = stmt.where(m.c.recording_id.in_(query["recording_ids"]))
    if query["authors"] is not None:
        stmt = stmt.where(u.c.username.in_(query["authors"]))
    if query["sources"] is not None:
        stmt = stmt.where(sa.type_coerce(m.c.source, sa.String).in_(query["sources"]))
    if query["regions"] is not None:
        stmt = stmt.where(m.c.region.in_(query["regions"]))
    if user.role == "clinician":
        stmt = stmt.where(r.c.clinic_id == user.clinic_id)
    rows = sorted(([*row[:8], float(row[8]), *row[9:]] for row in conn.execute(stmt)), key=_sort_key)
    if not rows:
        shown = {k: v for k, v in query.items() if v is not None}
        raise ValidationError(f"the snapshot query selects no MOIs ({shown or 'everything'}); nothing was stored")
    recordings, seizures = _frozen_recordings(conn, sorted({row[0] for row in rows}))
    content = {"format": FORMAT_VERSION, "fields": list(SNAPSHOT_FIELDS), "rows": rows,
               "recording_fields": list(RECORDING_FIELDS), "recordings": recordings,
               "seizure_fields": list(SEIZURE_FIELDS), "seizures": seizures}
    digest = content_hash(content)
    at = at or dt.datetime.now(dt.timezone.utc)
    result = conn.execute(sa.insert(SNAPSHOT_T).values(
        name=name, content_hash=digest, query=query, content=content, num_mois=len(rows),
        created_by_id=user.id, created_at=at))
    return Snapshot(id=result.inserted_primary_key[0], name=name, content_hash=digest, num_mois=len(rows),
                    query=query, created_by=user.username, created_at=utc(at), content=content)


def _frozen_recordings(conn: Connection, uris: list[str]) -> tuple[list[list[Any]], list[list[Any]]]:
    """Rows of :data:`RECORDING_FIELDS` and :data:`SEIZURE_FIELDS` for the recordings ``uris``, sorted."""
    r, p, c, z = RECORDING_T, _PATIENT_T, CLINIC_T, SEIZURE_T
    recordings = conn.execute(
        sa.select(r.c.storage_uri, r.c.name, p.c.code, c.c.name, p.c.epilepsy_type, p.c.localization_hypothesis,
                  p.c.lateralization_hypothesis)
        .select_from(r.join(p, r.c.patient_id == p.c.id).join(c, r.c.clinic_id == c.c.id))
        .where(r.c.storage_uri.in_(uris))
    ).all()
    seizures = conn.execute(
        sa.select(r.c.storage_uri, z.c.onset_frame, z.c.offset_frame, z.c.seizure_type, z.c.localization,
                  z.c.lateralization)
        .select_from(z.join(r, z.c.recording_id == r.c.id))
        .where(r.c.storage_uri.in_(uris), z.c.deleted.is_(False))
    ).all()
    return (sorted((list(row) for row in recordings), key=_sort_key),
            sorted((list(row) for row in seizures), key=_sort_key))


def _select(with_content: bool) -> sa.Select:
    s, u = SNAPSHOT_T, USER_T
    cols = [s.c.id, s.c.name, s.c.content_hash, s.c.num_mois, s.c.query, u.c.username.label("created_by"),
            s.c.created_at]
    if with_content:
        cols.append(s.c.content)
    return sa.select(*cols).join_from(s, u, s.c.created_by_id == u.c.id)


def load(conn: Connection, id_or_hash: Union[int, str]) -> Snapshot:
    """A snapshot by id, by content hash or by a unique hash prefix (8+ characters); its hash is verified."""
    s = SNAPSHOT_T
    if isinstance(id_or_hash, str):
        key = id_or_hash.strip().lower()
        if len(key) < 8:
            raise ValidationError(f"give at least 8 characters of the content hash, got {id_or_hash!r}")
        cond = s.c.content_hash == key if len(key) == 64 else s.c.content_hash.startswith(key, autoescape=True)
        hashes = conn.execute(sa.select(s.c.content_hash).where(cond).distinct().limit(3)).scalars().all()
        if len(hashes) > 1:
            raise ValidationError(f"hash prefix {key!r} is ambiguous ({', '.join(hashes)}...); give more of it")
        stmt = _select(True).where(cond).order_by(s.c.id).limit(1)
    else:
        stmt = _select(True).where(s.c.id == int(id_or_hash))
    row = conn.execute(stmt).first()
    if row is None:
        raise NotFoundError(f"no label snapshot {id_or_hash!r}; store.snapshots() lists them")
    data = dict(row._mapping)
    if content_hash(data["content"]) != data["content_hash"]:
        raise IntegrityError(f"label snapshot {data['id']} ({data['name']!r}): its content does not match its "
                             f"hash {data['content_hash']}; the database was changed outside deepepil")
    data["created_at"] = utc(data["created_at"])
    return Snapshot(**data)


def listing(conn: Connection) -> pd.DataFrame:
    """The stored snapshots, oldest first (no content)."""
    result = conn.execute(_select(False).order_by(SNAPSHOT_T.c.id))
    df = pd.DataFrame.from_records(result.all(), columns=list(result.keys()))
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    return df
