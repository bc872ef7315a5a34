"""Transactions, versioned updates, revisions, conflicts, undo and redo for the label service.

Every change is one conditional ``UPDATE ... WHERE id = :id AND version = :version`` (or an
``INSERT``) plus one :class:`~deepepil.labels.models.Revision` row, in the same transaction.
All revisions written by one transaction share its time ``at`` and its user: together
they are one *change*, which :func:`undo` reverts as a whole (accepting a suggestion, a
batch import). An undo writes revisions with ``action="undo"`` and ``undoes_id`` pointing
at what it reverted; a redo writes ``action="redo"`` pointing at the undo.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Optional

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from deepepil.errors import ConflictError, NotFoundError, ValidationError
from deepepil.labels import _rows
from deepepil.labels._rows import (
    KEYPOINT_T, MOI_T, REVISION_T, SEIZURE_T, SUGGESTION_T, USER_T, UserInfo, row_to_json, utc,
)

__all__ = [
    "Tx",
    "TableSpec",
    "TABLES",
    "next_time",
    "transactional_sqlite",
    "fetch",
    "raw",
    "update_versioned",
    "add_revision",
    "conflict",
    "find_duplicate_moi",
    "undo",
    "redo",
]

#: Columns an undo never sets back (identity and bookkeeping).
_META = ("id", "version", "created_at", "updated_at")


@dataclasses.dataclass
class Tx:
    """One open transaction of the label service: its connection, its time, a per-transaction cache."""

    conn: Connection
    at: dt.datetime
    cache: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TableSpec:
    """An editable label table as the service sees it."""

    name: str
    table: sa.Table
    noun: str
    from_mapping: Callable[[Mapping[str, Any]], Any]


TABLES: dict[str, TableSpec] = {
    "moi": TableSpec("moi", MOI_T, "MOI", _rows.moi_from),
    "seizure": TableSpec("seizure", SEIZURE_T, "seizure", _rows.seizure_from),
    "keypoint": TableSpec("keypoint", KEYPOINT_T, "keypoint", _rows.keypoint_from),
    "suggestion": TableSpec("suggestion", SUGGESTION_T, "suggestion", _rows.suggestion_from),
}

_time_lock = threading.Lock()
_last_time: list[Optional[dt.datetime]] = [None]


def next_time() -> dt.datetime:
    """The current UTC time, strictly increasing within this process (it names a change)."""
    now = dt.datetime.now(dt.timezone.utc)
    with _time_lock:
        last = _last_time[0]
        if last is not None and now <= last:
            now = last + dt.timedelta(microseconds=1)
        _last_time[0] = now
    return now


def transactional_sqlite(engine: Engine) -> None:
    """Make SQLite transactions real: BEGIN on every transaction, BEGIN IMMEDIATE for writes."""
    # pysqlite starts transactions lazily and never for SELECT; emit our own BEGIN instead, and
    # BEGIN IMMEDIATE for writes, so a write transaction holds the lock from its first read.
    def on_connect(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None

    def on_begin(conn: Connection) -> None:
        write = conn.get_execution_options().get("deepepil_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    event.listen(engine, "connect", on_connect)
    event.listen(engine, "begin", on_begin)


def fetch(conn: Connection, spec: TableSpec, row_id: int, *, hidden: Sequence[str] = ()) -> Optional[Mapping[str, Any]]:
    """The row joined with its recording (fps, clinic) and user names, or None (``hidden`` columns read as NULL)."""
    row = conn.execute(_rows.select_rows(spec.table, hidden=hidden).where(spec.table.c.id == row_id)).first()
    return None if row is None else row._mapping


def raw(spec: TableSpec, mapping: Mapping[str, Any]) -> dict[str, Any]:
    """Only the table's own columns of a fetched row."""
    return {c.name: mapping[c.name] for c in spec.table.c}


def update_versioned(tx: Tx, spec: TableSpec, row_id: int, version: int, values: Mapping[str, Any]) -> bool:
    """Apply ``values`` if the row is still at ``version`` (then bump it); False when it is not."""
    t = spec.table
    result = tx.conn.execute(
        sa.update(t).where(t.c.id == row_id, t.c.version == version)
        .values(**values, version=version + 1, updated_at=tx.at)
    )
    return result.rowcount == 1


def add_revision(tx: Tx, spec: TableSpec, row_id: int, action: str, before: Optional[Mapping[str, Any]],
                 after: Optional[Mapping[str, Any]], user: UserInfo, undoes_id: Optional[int] = None) -> int:
    """Append one revision (JSON before/after of the table row); return its id."""
    result = tx.conn.execute(
        sa.insert(REVISION_T).values(
            table_name=spec.name, row_id=row_id, action=action,
            before=None if before is None else row_to_json(raw(spec, before)),
            after=None if after is None else row_to_json(raw(spec, after)),
            user_id=user.id, at=tx.at, undoes_id=undoes_id,
        )
    )
    return result.inserted_primary_key[0]


def _last_change(conn: Connection, spec: TableSpec, row_id: int) -> tuple[str, Optional[dt.datetime]]:
    row = conn.execute(
        sa.select(USER_T.c.username, REVISION_T.c.at)
        .join_from(REVISION_T, USER_T, REVISION_T.c.user_id == USER_T.c.id)
        .where(REVISION_T.c.table_name == spec.name, REVISION_T.c.row_id == row_id)
        .order_by(REVISION_T.c.id.desc()).limit(1)
    ).first()
    return ("someone", None) if row is None else (row[0], utc(row[1]))


def conflict(tx: Tx, spec: TableSpec, row_id: int, version: int, *, doing: str = "edited") -> ConflictError:
    """The ConflictError for a stale ``version``: who changed the row and when, with the current row."""
    mapping = fetch(tx.conn, spec, row_id)
    if mapping is None:
        return ConflictError(f"{spec.noun} {row_id} no longer exists", current=None)
    who, when = _last_change(tx.conn, spec, row_id)
    when_text = f" at {when:%Y-%m-%d %H:%M:%S} UTC" if when else ""
    state = " and deleted it" if mapping["deleted"] else ""
    current = spec.from_mapping(mapping).as_dict()
    return ConflictError(
        f"{spec.noun} {row_id} was changed by {who}{when_text}{state}: you {doing} version {version}, it is now "
        f"version {mapping['version']}. Nothing was saved; compare with the current row (error.current) and "
        f"retry with version {mapping['version']}",
        current=current,
    )


def find_duplicate_moi(conn: Connection, values: Mapping[str, Any], exclude_id: Optional[int] = None) -> Optional[int]:
    """Id of a live MOI identical to ``values`` (recording, region, label, laterality, frames, author)."""
    t = MOI_T
    cond = [
        t.c.recording_id == values["recording_id"], t.c.region == values["region"], t.c.label == values["label"],
        t.c.start_frame == values["start_frame"], t.c.end_frame == values["end_frame"],
        t.c.author_id == values["author_id"], t.c.deleted.is_(False),
        t.c.laterality.is_(None) if values.get("laterality") is None else t.c.laterality == values["laterality"],
    ]
    if exclude_id is not None:
        cond.append(t.c.id != exclude_id)
    return conn.execute(sa.select(t.c.id).where(*cond).limit(1)).scalar()


# --- undo / redo ---------------------------------------------------------------------------

def _not_followed(user: UserInfo) -> sa.ColumnElement[bool]:
    # not yet undone (for a change) / not yet redone (for an undo): nothing of the user's points at it
    later = REVISION_T.alias("later")
    return ~sa.exists().where(later.c.user_id == user.id, later.c.undoes_id == REVISION_T.c.id)


def _content(spec: TableSpec, data: Mapping[str, Any]) -> dict[str, Any]:
    return {c.name: data.get(c.name) for c in spec.table.c if c.name not in _META}


def _revert(tx: Tx, rev: Mapping[str, Any], user: UserInfo, action: str) -> dict[str, Any]:
    spec = TABLES[rev["table_name"]]
    row_id = rev["row_id"]
    after = rev["after"] or {}
    mapping = fetch(tx.conn, spec, row_id)
    if mapping is None:
        raise NotFoundError(f"cannot {action} the {rev['action']} of {spec.noun} {row_id}: the row is gone")
    # "changed since" means: the row no longer says what this revision left (versions also move
    # when the user's own later changes were undone, which leaves the content as it was)
    version = mapping["version"]
    if _content(spec, row_to_json(raw(spec, mapping))) != _content(spec, after):
        raise conflict(tx, spec, row_id, after.get("version", version),
                       doing=f"tried to {action} your {rev['action']} of")
    target = rev["before"] if rev["before"] is not None else {**after, "deleted": True}
    # only the columns that change: a database role may update those and no others (docs/security.md)
    now = row_to_json(raw(spec, mapping))
    columns = [c.name for c in spec.table.c if c.name not in _META]
    values = _rows.json_to_values(spec.table, target, columns)
    changed = {name: values[name] for name in columns if target.get(name) != now.get(name)}
    if spec.name == "moi" and not values["deleted"]:
        duplicate = find_duplicate_moi(tx.conn, values, exclude_id=row_id)
        if duplicate is not None:
            raise ValidationError(
                f"cannot {action} the {rev['action']} of MOI {row_id}: it would duplicate MOI {duplicate} "
                f"(same recording, region, label, laterality, frames and author)"
            )
    if not update_versioned(tx, spec, row_id, version, changed):
        raise conflict(tx, spec, row_id, version, doing=f"tried to {action} your {rev['action']} of")
    new = fetch(tx.conn, spec, row_id)
    assert new is not None
    revision_id = add_revision(tx, spec, row_id, action, mapping, new, user, undoes_id=rev["id"])
    return {"table": spec.name, "row_id": row_id, "reverted": rev["action"], "revision_id": revision_id,
            "row": spec.from_mapping(new).as_dict()}


def _group(tx: Tx, user: UserInfo, latest: Mapping[str, Any], actions: sa.ColumnElement[bool]) -> list[Mapping]:
    r = REVISION_T
    rows = tx.conn.execute(
        sa.select(r).where(r.c.user_id == user.id, r.c.at == latest["at"], actions,
                           r.c.table_name.in_(list(TABLES)), _not_followed(user))
        .order_by(r.c.id.desc())
    ).all()
    return [row._mapping for row in rows]


def undo(tx: Tx, user: UserInfo) -> dict[str, Any]:
    """Revert the user's last change that is not undone yet (all its revisions, newest first)."""
    r = REVISION_T
    is_change = r.c.action != "undo"
    latest = tx.conn.execute(
        sa.select(r).where(r.c.user_id == user.id, is_change, r.c.table_name.in_(list(TABLES)),
                           _not_followed(user))
        .order_by(r.c.id.desc()).limit(1)
    ).first()
    if latest is None:
        raise NotFoundError(f"nothing to undo: {user.username} has no change left that is not undone")
    changes = [_revert(tx, rev, user, "undo") for rev in _group(tx, user, latest._mapping, is_change)]
    return {"action": "undo", "at": tx.at, "changes": changes}


def redo(tx: Tx, user: UserInfo) -> dict[str, Any]:
    """Re-apply the user's last undone change, unless they changed something after that undo."""
    r = REVISION_T
    is_undo = r.c.action == "undo"
    latest = tx.conn.execute(
        sa.select(r).where(r.c.user_id == user.id, is_undo, _not_followed(user))
        .order_by(r.c.id.desc()).limit(1)
    ).first()
    if latest is None:
        raise NotFoundError(f"nothing to redo: {user.username} has no undo that is not redone")
    newer = tx.conn.execute(
        sa.select(r.c.id).where(r.c.user_id == user.id, r.c.id > latest.id, r.c.action.not_in(["undo", "redo"]))
        .limit(1)
    ).first()
    if newer is not None:
        raise NotFoundError(f"nothing to redo: {user.username} made a new change after the last undo")
    changes = [_revert(tx, rev, user, "redo") for rev in _group(tx, user, latest._mapping, is_undo)]
    return {"action": "redo", "at": tx.at, "changes": changes}
