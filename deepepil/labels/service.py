"""The label service: the only write path to the label database.

>>> store = deepepil.labels.connect()                        # doctest: +SKIP
>>> moi = store.add_moi(7, "head/face", "head version", 30, 90, "left")
>>> moi = store.update_moi(moi.id, moi.version, end_frame=95)
>>> store.mois(7)                                            # a pandas DataFrame

The connected user is the author of every change. Each call is one transaction that
validates, writes the row and its :class:`~deepepil.labels.models.Revision` together, and
commits (or, on any error, leaves nothing behind); :meth:`LabelStore.batch` groups calls
into one transaction. Edits name the version they edit; a stale one raises
:class:`~deepepil.errors.ConflictError` carrying the current row.
"""

from __future__ import annotations

import contextlib
import math
import operator
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional, Union

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from deepepil.errors import AccessDeniedError, NotFoundError, ValidationError
from deepepil.labels import _history, _validate
from deepepil.labels._history import TABLES, TableSpec, Tx
from deepepil.labels._records import RecordsMixin
from deepepil.labels._exchange_methods import ExchangeMixin
from deepepil.labels.timing import seconds_to_frame
from deepepil.labels._rows import (
    CLINIC_T, MOI_COLUMNS, MOI_T, RECORDING_T, REVISION_COLUMNS, REVISION_T, USER_T, KeypointRow, Moi,
    RecordingInfo, SeizureRow, SuggestionRow, UserInfo, filter_in, frame, select_rows,
)
from deepepil.labels._validate import LABEL_WRITERS
from deepepil.labels.db import is_sqlite, make_engine, resolve_url, translate_denied

if TYPE_CHECKING:
    from deepepil.labels.snapshot import Snapshot

__all__ = [
    "connect",
    "LabelStore",
    "Moi",
    "SeizureRow",
    "KeypointRow",
    "SuggestionRow",
    "RecordingInfo",
    "UserInfo",
    "MOI_EDITABLE",
]

#: Fields ``update_moi`` may change.
MOI_EDITABLE = ("region", "label", "laterality", "centricity", "start_frame", "end_frame", "seizure_id",
                "confidence", "start_seconds", "end_seconds")
_MOI_ADD_FIELDS = ("recording_id", "region", "label", "start_frame", "end_frame", "laterality", "centricity",
                   "seizure_id", "confidence", "source", "start_seconds", "end_seconds")
_SOURCES = ("human", "model")
#: Columns a role may be refused to read (PostgreSQL column privileges, docs/security.md): read as NULL then.
_PRIVATE_COLUMNS: dict[str, tuple[str, ...]] = {"seizure": ("notes",)}
#: First key of the PostgreSQL advisory locks the service takes (second: the recording id).
_LOCK_NAMESPACE = 0x4445


def connect(url: Optional[str] = None, user: Optional[str] = None) -> "LabelStore":
    """Connect to the label database as ``user``.

    Parameters
    ----------
    url : str, optional
        Database URL; default ``$DEEPEPIL_DATABASE_URL``, else the embedded SQLite file.
    user : str, optional
        Hub user name; default ``$DEEPEPIL_USER``, else ``$JUPYTERHUB_USER``, else the login name.
        On SQLite an unregistered user is registered as an admin; on PostgreSQL an admin registers users.
        Connected with a user's own database role (the URL the hub gives each server), the user is
        the role's owner: the environment is ignored, and another ``user`` is refused.

    Returns
    -------
    LabelStore
        Also a context manager that closes itself.
    """
    return LabelStore(url, user)


def _as_id(value: Any, name: str) -> int:
    if isinstance(value, bool):
        raise ValidationError(f"{name} must be an integer id, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise ValidationError(f"{name} must be an integer id, got {value!r}") from None


def _none_if_na(value: Any) -> Any:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return None
    return value


class LabelStore(RecordsMixin, ExchangeMixin):
    """A connection to the label database as one user; see :func:`connect`.

    MOIs: :meth:`add_moi`, :meth:`add_moi_seconds`, :meth:`add_mois`, :meth:`update_moi`,
    :meth:`delete_moi`, :meth:`restore_moi`, :meth:`moi`, :meth:`mois`. Seizures and keypoints:
    the same verbs (``add_seizure`` ... ``seizures``, ``add_keypoint`` ... ``keypoints``).
    Suggestions: :meth:`add_suggestion`, :meth:`accept_suggestion`, :meth:`reject_suggestion`,
    :meth:`suggestions`. History: :meth:`revisions`, :meth:`undo`, :meth:`redo`. Snapshots:
    :meth:`create_snapshot`, :meth:`snapshot`, :meth:`snapshots`. Also :meth:`agreement`,
    :meth:`recording`, :meth:`vocabulary` and :meth:`batch`.

    Thread-safe: every call takes its own connection from the pool. Two stores are two
    independent clients (as two users' kernels are).
    """

    def __init__(self, url: Optional[str] = None, user: Optional[str] = None):
        self.url = resolve_url(url)
        self.engine: Engine = make_engine(self.url)
        if is_sqlite(self.engine):
            _history.transactional_sqlite(self.engine)
        self._write_engine = self.engine.execution_options(deepepil_write=True)
        self._local = threading.local()
        try:
            self._check_schema()
            self.user: UserInfo = self._resolve_user(user)
            #: table -> columns this login may not read (selected as NULL)
            self._hidden: dict[str, tuple[str, ...]] = self._hidden_columns()
        except BaseException:
            self.engine.dispose()
            raise

    # --- connection -------------------------------------------------------------------------

    def _check_schema(self) -> None:
        from deepepil.labels.schema import check_schema  # imports Alembic: only when connecting

        check_schema(self.engine)

    def _resolve_user(self, username: Optional[str]) -> UserInfo:
        from sqlalchemy.orm import Session

        from deepepil.labels.db import resolve_user

        with Session(self._write_engine) as session, session.begin():
            user = resolve_user(session, username, auto_register=is_sqlite(self.engine))
            role = getattr(user.role, "value", user.role)
            return UserInfo(id=user.id, username=user.username, role=role, clinic_id=user.clinic_id)

    def _hidden_columns(self) -> dict[str, tuple[str, ...]]:
        if is_sqlite(self.engine):
            return {}
        hidden: dict[str, tuple[str, ...]] = {}
        with self.engine.connect() as conn:
            for table, columns in _PRIVATE_COLUMNS.items():
                refused = tuple(column for column in columns if not conn.execute(
                    sa.select(sa.func.has_column_privilege(table, column, "SELECT"))).scalar())
                if refused:
                    hidden[table] = refused
        return hidden

    def close(self) -> None:
        """Close the connections of this store."""
        self.engine.dispose()

    def __enter__(self) -> "LabelStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.engine.url.render_as_string(hide_password=True)
        return f"<LabelStore {self.user.describe()} at {where}>"

    # --- transactions -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _tx(self, *, write: bool) -> Iterator[Tx]:
        outer: Optional[Tx] = getattr(self._local, "tx", None)
        if outer is not None:  # inside batch(): a savepoint, so a failed call leaves nothing
            if write:
                with outer.conn.begin_nested():
                    yield outer
            else:
                yield outer
            return
        engine = self._write_engine if write else self.engine
        with translate_denied(), engine.connect() as conn, conn.begin():
            tx = Tx(conn, _history.next_time())
            self._local.tx = tx
            try:
                yield tx
                if write:
                    self._before_commit(conn)
            finally:
                self._local.tx = None

    def _before_commit(self, conn: Connection) -> None:
        """Called inside every write transaction just before it commits (a hook for fault tests)."""

    @contextlib.contextmanager
    def batch(self) -> Iterator["LabelStore"]:
        """Group calls into one transaction: all of them are stored, or (on an error) none.

        The calls also form one change for :meth:`undo`.

        >>> with store.batch():                                 # doctest: +SKIP
        ...     store.add_moi(7, "trunk", "tonic posturing", 10, 40)
        ...     store.add_moi(7, "head/face", "head version", 12, 30, "left")
        """
        with self._tx(write=True):
            yield self

    # --- lookups ----------------------------------------------------------------------------

    def _recording(self, tx: Tx, recording_id: Any) -> RecordingInfo:
        rid = _as_id(recording_id, "recording_id")
        cache = tx.cache.setdefault("recordings", {})
        if rid not in cache:
            row = tx.conn.execute(
                sa.select(RECORDING_T.c.id, RECORDING_T.c.name, RECORDING_T.c.storage_uri, RECORDING_T.c.clinic_id,
                          CLINIC_T.c.name.label("clinic"), RECORDING_T.c.fps, RECORDING_T.c.num_frames,
                          RECORDING_T.c.duration_seconds)
                .join_from(RECORDING_T, CLINIC_T, RECORDING_T.c.clinic_id == CLINIC_T.c.id)
                .where(RECORDING_T.c.id == rid)
            ).first()
            if row is None:
                raise NotFoundError(f"recording {rid} does not exist; deepepil.catalog() lists the recordings")
            cache[rid] = RecordingInfo(**row._mapping)
        return cache[rid]

    def recording(self, recording_id: int) -> RecordingInfo:
        """Frame count, fps, name, storage URI and clinic of a recording."""
        with self._tx(write=False) as tx:
            rec = self._recording(tx, recording_id)
        if self.user.role == "clinician" and rec.clinic_id != self.user.clinic_id:
            raise NotFoundError(f"recording {rec.id} does not exist or is not visible to {self.user.username}")
        return rec

    def _vocab(self, tx: Tx) -> _validate.Vocabulary:
        if "vocab" not in tx.cache:
            from deepepil.labels.vocabulary import KINDS

            tx.cache["vocab"] = _validate.load_vocabulary(tx.conn, KINDS)
        return tx.cache["vocab"]

    def vocabulary(self, kind: str) -> list[str]:
        """The active terms of a vocabulary kind (``region``, ``moi_label``, ``laterality``, ...)."""
        from deepepil.labels.vocabulary import KINDS

        if kind not in KINDS:
            raise ValidationError(f"unknown vocabulary kind {kind!r}; kinds are: {', '.join(KINDS)}")
        with self._tx(write=False) as tx:
            return self._vocab(tx).codes(kind)

    def _visible(self, mapping: Mapping[str, Any]) -> bool:
        return self.user.role != "clinician" or mapping["clinic_id"] == self.user.clinic_id

    def _current(self, tx: Tx, spec: TableSpec, row_id: Any) -> Mapping[str, Any]:
        rid = _as_id(row_id, f"{spec.name}_id")
        mapping = _history.fetch(tx.conn, spec, rid, hidden=self._hidden.get(spec.name, ()))
        if mapping is None or not self._visible(mapping):
            raise NotFoundError(f"{spec.noun} {rid} does not exist or is not visible to {self.user.username}")
        return mapping

    def _get(self, spec: TableSpec, row_id: Any) -> Any:
        with self._tx(write=False) as tx:
            return spec.from_mapping(self._current(tx, spec, row_id))

    def _writable(self, tx: Tx, recording_id: Any, action: str, roles: Sequence[str] = LABEL_WRITERS) -> RecordingInfo:
        _validate.require_role(self.user, roles, action)
        rec = self._recording(tx, recording_id)
        _validate.check_clinic(self.user, rec, action)
        return rec

    def _lock_recording(self, tx: Tx, recording_id: int) -> None:
        # serialize duplicate checks per recording (SQLite: BEGIN IMMEDIATE does it already)
        if tx.conn.dialect.name == "postgresql":
            tx.conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_NAMESPACE, recording_id)))

    # --- generic edit steps -----------------------------------------------------------------

    def _edit_target(self, tx: Tx, spec: TableSpec, row_id: Any, version: Any, action: str,
                     roles: Sequence[str] = LABEL_WRITERS) -> tuple[Mapping[str, Any], RecordingInfo, int]:
        current = self._current(tx, spec, row_id)
        rec = self._writable(tx, current["recording_id"], action, roles)
        version = _as_id(version, "version")
        if current["version"] != version:
            raise _history.conflict(tx, spec, current["id"], version)
        return current, rec, version

    def _apply(self, tx: Tx, spec: TableSpec, current: Mapping[str, Any], version: int,
               values: Mapping[str, Any], action: str) -> Mapping[str, Any]:
        if not _history.update_versioned(tx, spec, current["id"], version, values):
            raise _history.conflict(tx, spec, current["id"], version)
        new = _history.fetch(tx.conn, spec, current["id"])
        assert new is not None
        _history.add_revision(tx, spec, current["id"], action, current, new, self.user)
        return new

    def _insert(self, tx: Tx, spec: TableSpec, values: Mapping[str, Any]) -> Mapping[str, Any]:
        result = tx.conn.execute(
            sa.insert(spec.table).values(**values, version=1, deleted=False, created_at=tx.at, updated_at=tx.at)
        )
        row_id = result.inserted_primary_key[0]
        new = _history.fetch(tx.conn, spec, row_id)
        assert new is not None
        _history.add_revision(tx, spec, row_id, "create", None, new, self.user)
        return new

    def _set_deleted(self, spec: TableSpec, row_id: Any, version: Any, deleted: bool,
                     roles: Sequence[str] = LABEL_WRITERS) -> Any:
        action = "delete" if deleted else "restore"
        with self._tx(write=True) as tx:
            current, rec, version = self._edit_target(tx, spec, row_id, version, f"{action} labels of", roles)
            if bool(current["deleted"]) == deleted:
                state = "deleted" if deleted else "not deleted"
                raise ValidationError(f"{spec.noun} {current['id']} is {state} already")
            if not deleted:
                self._check_restorable(tx, spec, current)
            new = self._apply(tx, spec, current, version, {"deleted": deleted}, action)
            return spec.from_mapping(new)

    def _check_restorable(self, tx: Tx, spec: TableSpec, current: Mapping[str, Any]) -> None:
        if spec.name == "moi":
            self._lock_recording(tx, current["recording_id"])
            duplicate = _history.find_duplicate_moi(tx.conn, current, exclude_id=current["id"])
            if duplicate is not None:
                raise ValidationError(
                    f"cannot restore MOI {current['id']}: MOI {duplicate} is identical (same recording, region, "
                    f"label, laterality, frames and author) and not deleted"
                )

    # --- MOIs -------------------------------------------------------------------------------

    def _prepare_moi(self, tx: Tx, rec: RecordingInfo, values: dict[str, Any],
                     current: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """Validated MOI content; vocabulary fields are checked only where they change."""
        vocab = self._vocab(tx)
        out = dict(values)
        for name in ("start_seconds", "end_seconds"):
            seconds = out.pop(name, None)
            if seconds is not None:
                frame_name = name.replace("seconds", "frame")
                out[frame_name] = seconds_to_frame(_validate.as_finite(seconds, name), rec.fps)
        out["start_frame"] = _validate.as_frame(out.get("start_frame"), "start_frame")
        out["end_frame"] = _validate.as_frame(out.get("end_frame"), "end_frame")
        _validate.check_interval(rec, out["start_frame"], out["end_frame"])

        def changed(name: str) -> bool:
            return current is None or out.get(name) != current[name]

        for name, kind, optional in (("region", "region", False), ("label", "moi_label", False),
                                     ("laterality", "laterality", True), ("centricity", "centricity", True)):
            if changed(name):
                out[name] = vocab.check(kind, out.get(name), name, optional=optional)
        out["confidence"] = _validate.as_fraction(out.get("confidence"), "confidence")
        seizure_id = out.get("seizure_id")
        if seizure_id is not None and changed("seizure_id"):
            out["seizure_id"] = self._check_seizure_ref(tx, rec, seizure_id)
        return out

    def _check_seizure_ref(self, tx: Tx, rec: RecordingInfo, seizure_id: Any) -> int:
        sid = _as_id(seizure_id, "seizure_id")
        mapping = _history.fetch(tx.conn, TABLES["seizure"], sid)
        if mapping is None or mapping["recording_id"] != rec.id or mapping["deleted"]:
            raise ValidationError(
                f"seizure_id {sid} is not a seizure of recording {rec.id}; store.seizures({rec.id}) lists them"
            )
        return sid

    def _check_duplicate(self, tx: Tx, values: Mapping[str, Any], exclude_id: Optional[int] = None) -> None:
        self._lock_recording(tx, values["recording_id"])
        duplicate = _history.find_duplicate_moi(tx.conn, values, exclude_id)
        if duplicate is not None:
            where = "" if values["author_id"] != self.user.id else f" by {self.user.username}"
            raise ValidationError(
                f"an identical MOI exists already{where}: MOI {duplicate} (recording {values['recording_id']}, "
                f"{values['region']!r}, {values['label']!r}, laterality {values.get('laterality')!r}, frames "
                f"{values['start_frame']}-{values['end_frame']}); edit that one instead"
            )

    def _add_moi(self, tx: Tx, record: Mapping[str, Any], *, suggestion_id: Optional[int] = None) -> Moi:
        unknown = set(record) - set(_MOI_ADD_FIELDS)
        if unknown:
            raise ValidationError(f"unknown MOI field(s) {sorted(unknown)}; fields are: {', '.join(_MOI_ADD_FIELDS)}")
        rec = self._writable(tx, record.get("recording_id"), "add labels to")
        source = _validate.check_choice(record.get("source", "human"), _SOURCES, "source")
        content = self._prepare_moi(tx, rec, {k: v for k, v in record.items() if k not in ("recording_id", "source")})
        values = {
            "recording_id": rec.id, "source": source, "author_id": self.user.id, "suggestion_id": suggestion_id,
            "laterality": None, "centricity": None, "seizure_id": None, **content,
        }
        self._check_duplicate(tx, values)
        return TABLES["moi"].from_mapping(self._insert(tx, TABLES["moi"], values))

    def add_moi(self, recording_id: int, region: str, label: str, start_frame: int, end_frame: int,
                laterality: Optional[str] = None, *, centricity: Optional[str] = None,
                seizure_id: Optional[int] = None, confidence: Optional[float] = None, source: str = "human") -> Moi:
        """Add a movement of interest: ``region`` shows ``label`` in frames ``start_frame <= i < end_frame``.

        Returns
        -------
        Moi
            The stored row, with its ``id`` and ``version`` (1), and ``start_seconds``/``end_seconds``.

        Raises
        ------
        ValidationError
            Outside the recording, end not after start, unknown or retired vocabulary, an identical MOI exists.
        NotFoundError
            No such recording.
        AccessDeniedError
            Not a clinician of the recording's clinic (or an admin).
        """
        record = dict(recording_id=recording_id, region=region, label=label, start_frame=start_frame,
                      end_frame=end_frame, laterality=laterality, centricity=centricity, seizure_id=seizure_id,
                      confidence=confidence, source=source)
        with self._tx(write=True) as tx:
            return self._add_moi(tx, record)

    def add_moi_seconds(self, recording_id: int, region: str, label: str, start_seconds: float,
                        end_seconds: float, laterality: Optional[str] = None, **kwargs: Any) -> Moi:
        """:meth:`add_moi` with times in seconds, converted with :func:`deepepil.labels.timing.seconds_to_frame`."""
        with self._tx(write=True) as tx:
            fps = self._recording(tx, recording_id).fps
            start = seconds_to_frame(_validate.as_finite(start_seconds, "start_seconds"), fps)
            end = seconds_to_frame(_validate.as_finite(end_seconds, "end_seconds"), fps)
            return self.add_moi(recording_id, region, label, start, end, laterality, **kwargs)

    def add_mois(self, records: Union[Iterable[Mapping[str, Any]], pd.DataFrame]) -> list[Moi]:
        """Add many MOIs in one transaction: all are stored, or none.

        Parameters
        ----------
        records : iterable of mappings, or DataFrame
            Keys as the arguments of :meth:`add_moi` (``start_seconds``/``end_seconds`` instead of frames
            also work); missing optional keys and NaN mean None.

        Raises
        ------
        ValidationError
            Listing every bad record (``error.problems``: ``(index, message)`` pairs); nothing is stored.
        """
        if isinstance(records, pd.DataFrame):
            records = records.to_dict("records")
        problems: list[tuple[int, str]] = []
        added: list[Moi] = []
        with self._tx(write=True) as tx:
            for index, record in enumerate(records):
                clean = {k: _none_if_na(v) for k, v in record.items()}
                clean = {k: v for k, v in clean.items() if v is not None or k in ("recording_id",)}
                try:
                    added.append(self._add_moi(tx, clean))
                except (ValidationError, NotFoundError, AccessDeniedError) as exc:
                    problems.append((index, str(exc)))
            if problems:
                listed = "\n".join(f"  record {i}: {message}" for i, message in problems)
                error = ValidationError(f"{len(problems)} of the MOIs are invalid, nothing was stored:\n{listed}")
                error.problems = problems  # type: ignore[attr-defined]
                raise error
        return added

    def update_moi(self, moi_id: int, version: int, **changes: Any) -> Moi:
        """Change fields of a MOI at ``version``; returns the row at its new version.

        Editable: region, label, laterality, centricity, start_frame, end_frame (or start_seconds,
        end_seconds), seizure_id, confidence.

        Raises
        ------
        ConflictError
            ``version`` is not current: someone changed the MOI first (``error.current`` is the row now).
        """
        unknown = set(changes) - set(MOI_EDITABLE)
        if unknown:
            raise ValidationError(f"cannot change {sorted(unknown)} of a MOI; editable: {', '.join(MOI_EDITABLE)}")
        spec = TABLES["moi"]
        with self._tx(write=True) as tx:
            current, rec, version = self._edit_target(tx, spec, moi_id, version, "edit labels of")
            if current["deleted"]:
                raise ValidationError(f"MOI {current['id']} is deleted; restore_moi({current['id']}, {version}) "
                                      f"brings it back")
            merged = {name: current[name] for name in MOI_EDITABLE if name in current}
            merged.update(changes)  # start_seconds/end_seconds, when given, override the frames
            content = self._prepare_moi(tx, rec, merged, current)
            values = {k: v for k, v in content.items() if v != current[k]}
            if not values:
                return spec.from_mapping(current)
            self._check_duplicate(tx, {**current, **values}, exclude_id=current["id"])
            return spec.from_mapping(self._apply(tx, spec, current, version, values, "update"))

    def delete_moi(self, moi_id: int, version: int) -> Moi:
        """Delete a MOI at ``version`` (soft: :meth:`restore_moi` brings it back); returns the deleted row."""
        return self._set_deleted(TABLES["moi"], moi_id, version, True)

    def restore_moi(self, moi_id: int, version: int) -> Moi:
        """Bring back a deleted MOI at ``version``."""
        return self._set_deleted(TABLES["moi"], moi_id, version, False)

    def moi(self, moi_id: int) -> Moi:
        """One MOI by id (deleted ones too)."""
        return self._get(TABLES["moi"], moi_id)

    def mois(self, recording_id: Optional[int] = None, *, author: Union[str, Sequence[str], None] = None,
             region: Union[str, Sequence[str], None] = None, label: Union[str, Sequence[str], None] = None,
             include_deleted: bool = False, source: Optional[str] = None) -> pd.DataFrame:
        """MOIs as a DataFrame (one row per MOI; columns :data:`~deepepil.labels._rows.MOI_COLUMNS`).

        Filters take a value or a list of values; ``author`` is a user name. Clinicians see their
        clinic's recordings only.
        """
        t = MOI_T
        stmt = self._scoped(t, recording_id, include_deleted)
        stmt = filter_in(stmt, author=author, region=region, label=label, source=source)
        stmt = stmt.order_by(t.c.recording_id, t.c.start_frame, t.c.id)
        return self._frame(stmt, MOI_COLUMNS)

    # --- shared query helpers ---------------------------------------------------------------

    def _scoped(self, table: sa.Table, recording_id: Optional[int], include_deleted: bool) -> sa.Select:
        """The rows of label ``table`` this user lists (:func:`select_rows`, plain; hidden columns as NULL)."""
        stmt = select_rows(table, plain=True, hidden=self._hidden.get(table.name, ()))
        if recording_id is not None:
            stmt = stmt.where(table.c.recording_id == _as_id(recording_id, "recording_id"))
        if not include_deleted:
            stmt = stmt.where(table.c.deleted.is_(False))
        if self.user.role == "clinician":
            stmt = stmt.where(RECORDING_T.c.clinic_id == self.user.clinic_id)
        return stmt

    def _frame(self, stmt: sa.Select, columns: Sequence[str], *, raw: bool = True) -> pd.DataFrame:
        # raw: the driver's tuples as they are (the select_rows(plain=True) columns need no conversion)
        with self._tx(write=False) as tx:
            result = tx.conn.execute(stmt)
            keys = list(result.keys())
            rows = result.cursor.fetchall() if raw else result.all()
        return frame(rows, keys, columns)

    # --- history ----------------------------------------------------------------------------

    def revisions(self, table: Optional[str] = None, row_id: Optional[int] = None, *,
                  user: Optional[str] = None) -> pd.DataFrame:
        """The audit trail (oldest first): who changed which row when, with the row before and after."""
        r = REVISION_T
        stmt = (sa.select(r.c.id, r.c.table_name, r.c.row_id, r.c.action, USER_T.c.username.label("user"), r.c.at,
                          r.c.before, r.c.after, r.c.undoes_id)
                .join_from(r, USER_T, r.c.user_id == USER_T.c.id).order_by(r.c.id))
        if table is not None:
            stmt = stmt.where(r.c.table_name == table)
        if row_id is not None:
            stmt = stmt.where(r.c.row_id == _as_id(row_id, "row_id"))
        if user is not None:
            stmt = stmt.where(USER_T.c.username == user)
        return self._frame(stmt, REVISION_COLUMNS, raw=False)

    def undo(self) -> dict[str, Any]:
        """Undo the connected user's last change (not anyone else's) that is not undone yet.

        Returns
        -------
        dict
            ``{"action": "undo", "at": time, "changes": [{"table", "row_id", "reverted", "revision_id",
            "row"}, ...]}``; ``row`` is the row as it is now.

        Raises
        ------
        ConflictError
            Someone changed the row since; nothing was undone.
        NotFoundError
            Nothing left to undo.
        """
        with self._tx(write=True) as tx:
            return _history.undo(tx, self.user)

    def redo(self) -> dict[str, Any]:
        """Redo the connected user's last undone change (if they changed nothing since); see :meth:`undo`."""
        with self._tx(write=True) as tx:
            return _history.redo(tx, self.user)

    # --- snapshots and agreement --------------------------------------------------------------

    def create_snapshot(self, name: str, *, recording_ids: Optional[Sequence[int]] = None,
                        authors: Optional[Sequence[str]] = None, sources: Optional[Sequence[str]] = ("human",),
                        regions: Optional[Sequence[str]] = None) -> "Snapshot":
        """Freeze the matching live MOIs into an immutable snapshot; see :mod:`deepepil.labels.snapshot`."""
        from deepepil.labels import snapshot

        with self._tx(write=True) as tx:
            return snapshot.create(tx.conn, self.user, name, recording_ids=recording_ids, authors=authors,
                                   sources=sources, regions=regions, at=tx.at)

    def snapshot(self, id_or_hash: Union[int, str]) -> "Snapshot":
        """A stored snapshot by id or content hash (a unique prefix of at least 8 characters works)."""
        from deepepil.labels import snapshot

        with self._tx(write=False) as tx:
            return snapshot.load(tx.conn, id_or_hash)

    def snapshots(self) -> pd.DataFrame:
        """The stored snapshots (without their content)."""
        from deepepil.labels import snapshot

        with self._tx(write=False) as tx:
            return snapshot.listing(tx.conn)

    def agreement(self, recording_id: int, annotator_a: str, annotator_b: str, **kwargs: Any) -> pd.DataFrame:
        """Agreement of two annotators on a recording; see :func:`deepepil.labels.agreement.agreement`."""
        from deepepil.labels.agreement import agreement

        return agreement(self, recording_id, annotator_a, annotator_b, **kwargs)
