"""Rows the label service hands out: small frozen dataclasses, DataFrame columns, JSON forms.

The service reads with SQLAlchemy Core (no ORM identity map, no lazy loads) and turns the
result rows into these dataclasses or into pandas DataFrames. Times are frame indices;
seconds are derived from the recording's ``fps`` (``seconds = frame / fps``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Optional

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from deepepil.labels import models

__all__ = [
    "Moi",
    "MoiRow",
    "SeizureRow",
    "KeypointRow",
    "SuggestionRow",
    "RecordingInfo",
    "UserInfo",
    "MOI_COLUMNS",
    "SEIZURE_COLUMNS",
    "KEYPOINT_COLUMNS",
    "SUGGESTION_COLUMNS",
    "REVISION_COLUMNS",
    "to_json_value",
    "row_to_json",
    "json_to_values",
    "utc",
]


def utc(value: Optional[dt.datetime]) -> Optional[dt.datetime]:
    """A timezone-aware UTC datetime (SQLite gives naive ones, which are UTC by construction)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.timezone.utc)
    return value.astimezone(dt.timezone.utc)


def to_json_value(value: Any) -> Any:
    """A JSON-safe form of a column value (enums by value, datetimes as ISO 8601 UTC)."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return utc(value).isoformat()
    return value


def row_to_json(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A table row (column name -> value) as a JSON-safe dict, as stored in revisions."""
    return {key: to_json_value(value) for key, value in raw.items()}


def json_to_values(table: sa.Table, data: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    """Column values for an UPDATE from a revision's JSON (datetimes parsed back)."""
    values = {}
    for name in columns:
        value = data.get(name)
        if value is not None and isinstance(table.c[name].type, sa.DateTime):
            value = dt.datetime.fromisoformat(value)
        values[name] = value
    return values


class _Row:
    """Shared behaviour of the row dataclasses."""

    _derived: ClassVar[tuple[str, ...]] = ()

    def as_dict(self) -> dict[str, Any]:
        """The row as a plain dict, derived fields (seconds) included."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        for name in self._derived:
            out[name] = getattr(self, name)
        return out


class _Interval:
    """``start_seconds`` / ``end_seconds`` of a row with ``start_frame``, ``end_frame`` and ``fps``."""

    _derived: ClassVar[tuple[str, ...]] = ("start_seconds", "end_seconds")

    @property
    def start_seconds(self) -> float:
        return self.start_frame / self.fps

    @property
    def end_seconds(self) -> float:
        return self.end_frame / self.fps


@dataclasses.dataclass(frozen=True)
class Moi(_Interval, _Row):
    """A movement of interest: ``region`` shows ``label`` in frames ``start_frame <= i < end_frame``."""

    id: int
    version: int
    recording_id: int
    region: str
    label: str
    laterality: Optional[str]
    centricity: Optional[str]
    start_frame: int
    end_frame: int
    fps: float
    author: str
    source: str
    confidence: Optional[float]
    seizure_id: Optional[int]
    suggestion_id: Optional[int]
    deleted: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    @property
    def num_frames(self) -> int:
        return self.end_frame - self.start_frame


MoiRow = Moi


@dataclasses.dataclass(frozen=True)
class SeizureRow(_Row):
    """A seizure: onset (and offset, exclusive) as frames, ILAE 2017 classification, status."""

    id: int
    version: int
    recording_id: int
    onset_frame: int
    offset_frame: Optional[int]
    fps: float
    seizure_type: Optional[str]
    awareness: Optional[str]
    lateralization: Optional[str]
    localization: Optional[str]
    status: str
    notes: Optional[str]
    author: str
    deleted: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    _derived: ClassVar[tuple[str, ...]] = ("onset_seconds", "offset_seconds")

    @property
    def onset_seconds(self) -> float:
        return self.onset_frame / self.fps

    @property
    def offset_seconds(self) -> Optional[float]:
        return None if self.offset_frame is None else self.offset_frame / self.fps


@dataclasses.dataclass(frozen=True)
class KeypointRow(_Row):
    """A skeleton joint on one frame: image position (pixels) and, when lifted, camera coordinates (metres)."""

    id: int
    version: int
    recording_id: int
    frame_index: int
    fps: float
    joint: str
    u_px: float
    v_px: float
    x_m: Optional[float]
    y_m: Optional[float]
    z_m: Optional[float]
    confidence: Optional[float]
    source: str
    author: str
    deleted: bool
    created_at: dt.datetime
    updated_at: dt.datetime

    _derived: ClassVar[tuple[str, ...]] = ("seconds",)

    @property
    def seconds(self) -> float:
        return self.frame_index / self.fps


@dataclasses.dataclass(frozen=True)
class SuggestionRow(_Interval, _Row):
    """A model's proposed MOI and the decision on it."""

    id: int
    version: int
    recording_id: int
    model_version: str
    region: str
    label: str
    laterality: Optional[str]
    start_frame: int
    end_frame: int
    fps: float
    score: float
    decision: str
    decided_by: Optional[str]
    decided_at: Optional[dt.datetime]
    created_by: str
    #: The model's Grad-CAM explanation file (:func:`deepepil.ml.explain.load_explanation` reads it), or None.
    explanation_uri: Optional[str]
    deleted: bool
    created_at: dt.datetime
    updated_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class RecordingInfo:
    """What the label service needs to know about a recording."""

    id: int
    name: str
    storage_uri: str
    clinic_id: int
    clinic: str
    fps: float
    num_frames: int
    duration_seconds: float

    def describe(self) -> str:
        return (f"recording {self.id} ({self.name!r}) has {self.num_frames} frames "
                f"({self.num_frames / self.fps:.2f} s at {self.fps:g} fps)")


@dataclasses.dataclass(frozen=True)
class UserInfo:
    """The connected user: the author of every change made through a :class:`LabelStore`."""

    id: int
    username: str
    role: str
    clinic_id: Optional[int]

    def describe(self) -> str:
        where = f" of clinic {self.clinic_id}" if self.clinic_id is not None else ""
        return f"{self.username} ({self.role}{where})"


def _enum_value(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


def _common(mapping: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "deleted": bool(mapping["deleted"]),
        "created_at": utc(mapping["created_at"]),
        "updated_at": utc(mapping["updated_at"]),
    }


def moi_from(mapping: Mapping[str, Any]) -> Moi:
    """A :class:`Moi` from a row of :func:`select_rows` for ``moi``."""
    return Moi(
        id=mapping["id"], version=mapping["version"], recording_id=mapping["recording_id"],
        region=mapping["region"], label=mapping["label"], laterality=mapping["laterality"],
        centricity=mapping["centricity"], start_frame=mapping["start_frame"], end_frame=mapping["end_frame"],
        fps=mapping["fps"], author=mapping["author"], source=_enum_value(mapping["source"]),
        confidence=mapping["confidence"], seizure_id=mapping["seizure_id"],
        suggestion_id=mapping["suggestion_id"], **_common(mapping),
    )


def seizure_from(mapping: Mapping[str, Any]) -> SeizureRow:
    return SeizureRow(
        id=mapping["id"], version=mapping["version"], recording_id=mapping["recording_id"],
        onset_frame=mapping["onset_frame"], offset_frame=mapping["offset_frame"], fps=mapping["fps"],
        seizure_type=mapping["seizure_type"], awareness=mapping["awareness"],
        lateralization=mapping["lateralization"], localization=mapping["localization"],
        status=_enum_value(mapping["status"]), notes=mapping["notes"], author=mapping["author"],
        **_common(mapping),
    )


def keypoint_from(mapping: Mapping[str, Any]) -> KeypointRow:
    return KeypointRow(
        id=mapping["id"], version=mapping["version"], recording_id=mapping["recording_id"],
        frame_index=mapping["frame_index"], fps=mapping["fps"], joint=mapping["joint"],
        u_px=mapping["u_px"], v_px=mapping["v_px"], x_m=mapping["x_m"], y_m=mapping["y_m"], z_m=mapping["z_m"],
        confidence=mapping["confidence"], source=_enum_value(mapping["source"]), author=mapping["author"],
        **_common(mapping),
    )


def suggestion_from(mapping: Mapping[str, Any]) -> SuggestionRow:
    return SuggestionRow(
        id=mapping["id"], version=mapping["version"], recording_id=mapping["recording_id"],
        model_version=mapping["model_version"], region=mapping["region"], label=mapping["label"],
        laterality=mapping["laterality"], start_frame=mapping["start_frame"], end_frame=mapping["end_frame"],
        fps=mapping["fps"], score=mapping["score"], decision=_enum_value(mapping["decision"]),
        decided_by=mapping["decided_by"], decided_at=utc(mapping["decided_at"]),
        created_by=mapping["created_by"], explanation_uri=mapping["explanation_uri"], **_common(mapping),
    )


# --- tables and the joined selects --------------------------------------------------------

MOI_T: sa.Table = models.MOI.__table__  # type: ignore[assignment]
SEIZURE_T: sa.Table = models.Seizure.__table__  # type: ignore[assignment]
KEYPOINT_T: sa.Table = models.Keypoint.__table__  # type: ignore[assignment]
SUGGESTION_T: sa.Table = models.Suggestion.__table__  # type: ignore[assignment]
RECORDING_T: sa.Table = models.Recording.__table__  # type: ignore[assignment]
USER_T: sa.Table = models.AppUser.__table__  # type: ignore[assignment]
CLINIC_T: sa.Table = models.Clinic.__table__  # type: ignore[assignment]
REVISION_T: sa.Table = models.Revision.__table__  # type: ignore[assignment]
SNAPSHOT_T: sa.Table = models.LabelSnapshot.__table__  # type: ignore[assignment]
VOCAB_T: sa.Table = models.VocabularyTerm.__table__  # type: ignore[assignment]

MOI_COLUMNS: tuple[str, ...] = (
    "id", "version", "recording_id", "region", "label", "laterality", "centricity",
    "start_frame", "end_frame", "start_seconds", "end_seconds", "fps", "author", "source", "confidence",
    "seizure_id", "suggestion_id", "deleted", "created_at", "updated_at",
)
SEIZURE_COLUMNS: tuple[str, ...] = (
    "id", "version", "recording_id", "onset_frame", "offset_frame", "onset_seconds", "offset_seconds", "fps",
    "seizure_type", "awareness", "lateralization", "localization", "status", "notes", "author", "deleted",
    "created_at", "updated_at",
)
KEYPOINT_COLUMNS: tuple[str, ...] = (
    "id", "version", "recording_id", "frame_index", "seconds", "fps", "joint", "u_px", "v_px", "x_m", "y_m",
    "z_m", "confidence", "source", "author", "deleted", "created_at", "updated_at",
)
SUGGESTION_COLUMNS: tuple[str, ...] = (
    "id", "version", "recording_id", "model_version", "region", "label", "laterality", "start_frame",
    "end_frame", "start_seconds", "end_seconds", "fps", "score", "decision", "decided_by", "decided_at",
    "created_by", "explanation_uri", "deleted", "created_at", "updated_at",
)
REVISION_COLUMNS: tuple[str, ...] = (
    "id", "table_name", "row_id", "action", "user", "at", "before", "after", "undoes_id",
)

#: Derived seconds columns: name -> frame column.
_SECONDS = {
    "start_seconds": "start_frame", "end_seconds": "end_frame", "onset_seconds": "onset_frame",
    "offset_seconds": "offset_frame", "seconds": "frame_index",
}


class _raw_time(FunctionElement):
    """A timestamp column as the driver's cheapest form: microseconds since the epoch on PostgreSQL,
    the stored ISO text on SQLite (no Python datetime per row; pandas parses the whole column)."""

    type = sa.types.NullType()
    name = "raw_time"
    inherit_cache = True


@compiles(_raw_time)
def _raw_time_default(element, compiler, **kw):
    return compiler.process(element.clauses, **kw)


@compiles(_raw_time, "postgresql")
def _raw_time_postgresql(element, compiler, **kw):
    return f"CAST(EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)}) * 1000000 AS BIGINT)"


def _plain(column: sa.ColumnElement) -> sa.ColumnElement:
    # enum columns as their stored strings, timestamps raw: no per-row conversion for large tables
    if isinstance(column.type, sa.Enum):
        return sa.type_coerce(column, sa.String).label(column.name)
    if isinstance(column.type, sa.DateTime):
        return _raw_time(column).label(column.name)
    return column


def _times(values: pd.Series) -> pd.Series:
    present = values.dropna()
    sample = present.iloc[0] if len(present) else None
    if isinstance(sample, str):
        return pd.to_datetime(values, format="ISO8601", utc=True)
    if isinstance(sample, (int, np.integer)):
        return pd.to_datetime(values.astype("Int64"), unit="us", utc=True)
    return pd.to_datetime(values, utc=True)


def select_rows(table: sa.Table, *, plain: bool = False, hidden: Sequence[str] = ()) -> sa.Select:
    """Rows of a label table joined with the recording (fps, clinic) and the users' names.

    ``hidden`` columns (ones the connected role may not read) are selected as NULL.
    """
    author_col = table.c.created_by_id if table is SUGGESTION_T else table.c.author_id
    author = USER_T.alias("author_user")
    cols = [sa.null().label(c.name) if c.name in hidden else (_plain(c) if plain else c) for c in table.c]
    extra = [RECORDING_T.c.fps.label("fps"), RECORDING_T.c.clinic_id.label("clinic_id")]
    stmt_from = table.join(RECORDING_T, table.c.recording_id == RECORDING_T.c.id).join(
        author, author_col == author.c.id)
    if table is SUGGESTION_T:
        decider = USER_T.alias("decider_user")
        stmt_from = stmt_from.outerjoin(decider, table.c.decided_by_id == decider.c.id)
        extra += [author.c.username.label("created_by"), decider.c.username.label("decided_by")]
    else:
        extra.append(author.c.username.label("author"))
    return sa.select(*cols, *extra).select_from(stmt_from)


def filter_in(stmt: sa.Select, **wanted: Any) -> sa.Select:
    """``stmt`` restricted to rows whose selected column ``name`` is (one of) ``value`` (None: no filter)."""
    for name, value in wanted.items():
        if value is not None:
            values = [value] if isinstance(value, str) else list(value)
            stmt = stmt.where(stmt.selected_columns[name].in_(values))
    return stmt


def frame(rows: Sequence[Any], keys: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """A DataFrame with ``columns`` (derived seconds computed, timestamps as UTC) from result rows."""
    # column-wise: pandas' per-row inspection of SQLAlchemy Row objects is slow for large results
    data = list(zip(*rows)) if rows else [()] * len(keys)
    df = pd.DataFrame({key: pd.Series(values, dtype=None if values else object) for key, values in zip(keys, data)})
    for name, frame_col in _SECONDS.items():
        if name in columns:
            df[name] = df[frame_col].astype("float64") / df["fps"].astype("float64")
    for name in ("created_at", "updated_at", "decided_at", "at"):
        if name in columns:
            df[name] = _times(df[name])
    if "deleted" in columns:
        df["deleted"] = df["deleted"].astype(bool)
    for name in ("id", "version", "recording_id", "start_frame", "end_frame", "onset_frame", "frame_index",
                 "row_id"):
        if name in columns:
            df[name] = df[name].astype("int64")
    for name in ("seizure_id", "suggestion_id", "offset_frame", "undoes_id"):
        if name in columns:
            df[name] = df[name].astype("Int64")
    for name in ("fps", "confidence", "score", "u_px", "v_px", "x_m", "y_m", "z_m"):
        if name in columns:
            df[name] = df[name].astype("float64")
    if "explanation_uri" in columns:  # None where absent (not NaN as pandas' string dtype has it)
        values = df["explanation_uri"].astype(object)
        df["explanation_uri"] = values.where(values.notna(), None)
    return df[list(columns)]
