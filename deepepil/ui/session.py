"""The labeling app's edit controller: one recording's labels, edited through the label service.

>>> session = LabelSession(store, recording_id)              # doctest: +SKIP
>>> labels = session.load()    # {mois, suggestions, seizures, keypoints}: lists of rows  # doctest: +SKIP
>>> session.apply("add_moi", {"region": "trunk", "label": "clonic", "start_frame": 10,
...                           "end_frame": 40})                  # doctest: +SKIP
{'ok': True, 'changes': {'mois': [{'id': 1, 'version': 1, ...}], ...}, 'error': None}

Every edit goes to the :class:`~deepepil.labels.service.LabelStore` at once (validation,
revision, optimistic concurrency happen there) and the reply holds the rows as stored, in the
shapes of ``widgets/README.md``. Errors become ``{kind, message, current}``: ``validation``
(nothing stored; the message says what is allowed), ``conflict`` (someone changed the row
first; ``current`` is the row now; :meth:`LabelSession.apply` ``resolve_conflict`` re-applies
"mine" at the current version or takes "theirs"), ``denied``, ``offline`` and ``error``.

The database unreachable: edits are kept and retried. An edit that finds the database gone is
put in a queue (in order) and answered ``ok: False`` with ``error.kind == "offline"`` and
``error.queued == True``: it is never reported as saved before the database confirmed it. The
status says ``offline`` with the number of pending edits. A background thread retries with
backoff (0.5 s doubling to 10 s), and every new edit first retries the queue, so order is
kept. When a queued edit lands, its rows go out as ``labels_changed``; one that the database
refuses by then (a conflict, a validation error) is reported with a ``notify`` naming it.
Later queued edits of the same row are rebased on the version the earlier ones wrote (they
were made on a row the clinician had not seen saved yet). ``undo`` while edits are pending
takes back the last pending edit; ``redo``, ``undo`` of saved changes and ``resolve_conflict``
need the database and are refused while it is unreachable.

Two clinicians on one recording: :meth:`LabelSession.poll` (every few seconds from the
background thread, see :meth:`LabelSession.start`) reads the revisions written since the last
one seen and pushes the rows of this recording whose version the client does not have yet.

3D joints: ``place_keypoint``/``move_keypoint`` lift the click to 3D on the frame's depth
(:class:`~deepepil.ui.keypoints.KeypointLifter`) before anything else, so a click that cannot be
lifted is refused at once, online or not; only the user's own hand-placed keypoints are sent
(:meth:`LabelSession.keypoint_rows`), and every change of them is announced as a ``"keypoints"`` event.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import logging
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Optional

import pandas as pd
import sqlalchemy as sa

from deepepil.errors import AccessDeniedError, ConflictError, NotFoundError, ValidationError
from deepepil.ui.keypoints import KEYPOINT_ROW_FIELDS, KeypointLifter

__all__ = [
    "LabelSession",
    "EDIT_OPS",
    "QUEUEABLE_OPS",
    "MOI_ROW_FIELDS",
    "SUGGESTION_ROW_FIELDS",
    "SEIZURE_ROW_FIELDS",
    "KEYPOINT_ROW_FIELDS",
    "error_kind",
    "is_offline",
]

log = logging.getLogger(__name__)

#: The edit operations of an ``edit`` message.
#: Operations kept and retried when the database is unreachable.
QUEUEABLE_OPS: tuple[str, ...] = (
    "add_moi", "update_moi", "delete_moi", "accept_suggestion", "reject_suggestion", "add_seizure",
    "update_seizure", "delete_seizure", "place_keypoint", "move_keypoint", "delete_keypoint",
)
#: The edit operations of an ``edit`` message.
EDIT_OPS: tuple[str, ...] = (*QUEUEABLE_OPS, "undo", "redo", "resolve_conflict")
#: Fields of the rows sent to the browser (``widgets/README.md``).
MOI_ROW_FIELDS = ("id", "version", "region", "label", "laterality", "start_frame", "end_frame", "author", "source",
                  "confidence", "seizure_id")
SUGGESTION_ROW_FIELDS = ("id", "version", "region", "label", "laterality", "start_frame", "end_frame", "score",
                         "model_version", "decision", "has_explanation")
SEIZURE_ROW_FIELDS = ("id", "version", "onset_frame", "offset_frame", "seizure_type", "awareness", "lateralization",
                      "localization", "author")
_ROW_FIELDS = {"moi": MOI_ROW_FIELDS, "suggestion": SUGGESTION_ROW_FIELDS, "seizure": SEIZURE_ROW_FIELDS,
               "keypoint": KEYPOINT_ROW_FIELDS}
#: Table name -> key of ``changes``.
_KEYS = {"moi": "mois", "suggestion": "suggestions", "seizure": "seizures", "keypoint": "keypoints"}
_INT_FIELDS = ("id", "version", "start_frame", "end_frame", "onset_frame", "offset_frame", "seizure_id",
               "frame_index")
_OP_TABLE = {"update_moi": "moi", "delete_moi": "moi", "accept_suggestion": "suggestion",
             "reject_suggestion": "suggestion", "update_seizure": "seizure", "delete_seizure": "seizure",
             "move_keypoint": "keypoint", "delete_keypoint": "keypoint"}
_ADD_MOI_ARGS = ("region", "label", "laterality", "start_frame", "end_frame", "centricity", "seizure_id",
                 "confidence")
_ADD_SEIZURE_ARGS = ("onset_frame", "offset_frame", "seizure_type", "awareness", "lateralization", "localization",
                     "status", "notes")
#: Most edits kept while the database is unreachable; more are refused.
MAX_PENDING = 1000
_BACKOFF_SECONDS = (0.5, 10.0)

EventCallback = Callable[[str, Any], None]


# --- rows and errors ------------------------------------------------------------------------

def _clean(value: Any) -> Any:
    """A JSON-ready value: None for missing, Python numbers, enum values, ISO times."""
    if isinstance(value, enum.Enum):
        return value.value
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        try:
            value = value.item()
        except (TypeError, ValueError):
            return None
    if value is None or value is pd.NA or value is pd.NaT or isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def row_json(table: str, row: Any) -> dict[str, Any]:
    """The browser's form of a label row (a service dataclass, a dict or a DataFrame record)."""
    get = row.get if isinstance(row, Mapping) else (lambda name, default=None: getattr(row, name, default))
    out = {}
    for name in _ROW_FIELDS[table]:
        if name == "has_explanation":  # the path stays on the server; the browser asks for the overlay by id
            out[name] = bool(_clean(get("explanation_uri", None)))
            continue
        value = _clean(get(name, None))
        if name in _INT_FIELDS and value is not None:
            value = int(value)
        out[name] = value
    return out


def _deleted(row: Any) -> bool:
    value = row.get("deleted") if isinstance(row, Mapping) else getattr(row, "deleted", False)
    return bool(value)


def _table_of_row(row: Mapping[str, Any]) -> str:
    if "joint" in row:
        return "keypoint"
    if "onset_frame" in row:
        return "seizure"
    if "model_version" in row:
        return "suggestion"
    return "moi"


def is_offline(exc: BaseException) -> bool:
    """True when ``exc`` means the database could not be reached (rather than refused an edit)."""
    if isinstance(exc, (sa.exc.OperationalError, sa.exc.InterfaceError)):
        return True
    return isinstance(exc, sa.exc.DBAPIError) and bool(exc.connection_invalidated)


#: What the clinician is told when the database cannot be reached (the driver's text, with host, port and
#: database name, goes to the kernel's log only: see :func:`_offline_detail`).
OFFLINE_TEXT = "The label database cannot be reached"


def _offline_detail(exc: BaseException) -> str:
    """The driver's first line about an unreachable database, for the kernel's log (never the UI)."""
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]


def _offline_message(exc: BaseException) -> str:
    log.warning("deepepil: the label database cannot be reached: %s", _offline_detail(exc))
    return OFFLINE_TEXT


def _iso(value: Any) -> Optional[str]:
    """A timestamp as ISO 8601 text (None stays None)."""
    if value is None:
        return None
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def error_kind(exc: BaseException) -> str:
    """The ``error.kind`` an exception is reported as: validation, conflict, denied, offline or error."""
    if isinstance(exc, ConflictError):
        return "conflict"
    if isinstance(exc, (ValidationError, NotFoundError)):
        return "validation"
    if isinstance(exc, AccessDeniedError):
        return "denied"
    if is_offline(exc):
        return "offline"
    return "error"


def error_json(exc: BaseException) -> dict[str, Any]:
    """``{kind, message, current}`` for a reply (``current``: the stored row on a conflict)."""
    kind = error_kind(exc)
    current = None
    table = None
    if kind == "conflict" and getattr(exc, "current", None):
        table = _table_of_row(exc.current)
        current = row_json(table, exc.current)
        current["deleted"] = _deleted(exc.current)
        current["updated_at"] = _iso(exc.current.get("updated_at"))
        current["updated_by"] = None  # filled in by LabelSession (it knows the database)
    if kind == "offline":
        message = _offline_message(exc)
    elif kind == "error":
        message = f"{type(exc).__name__}: {exc}"
    else:
        message = str(exc)
    return {"kind": kind, "message": message, "current": current, "table": table}


class _Changes:
    """Rows to send, grouped like the README's ``changes``."""

    def __init__(self) -> None:
        self.rows: dict[str, dict[int, dict[str, Any]]] = {t: {} for t in _KEYS}
        self.removed: dict[str, dict[int, int]] = {t: {} for t in _KEYS}  # id -> version

    def add(self, table: str, row: Any) -> tuple[int, int]:
        data = row_json(table, row)
        row_id = data["id"]
        if _deleted(row):
            self.rows[table].pop(row_id, None)
            self.removed[table][row_id] = data["version"]
        else:
            self.removed[table].pop(row_id, None)
            self.rows[table][row_id] = data
        return row_id, data["version"]

    def merge(self, other: "_Changes") -> None:
        for table in _KEYS:
            for row_id, data in other.rows[table].items():
                self.removed[table].pop(row_id, None)
                self.rows[table][row_id] = data
            for row_id, version in other.removed[table].items():
                self.rows[table].pop(row_id, None)
                self.removed[table][row_id] = version

    def __bool__(self) -> bool:
        return any(self.rows[t] or self.removed[t] for t in _KEYS)

    def as_json(self) -> dict[str, list]:
        out: dict[str, list] = {}
        for table, key in _KEYS.items():
            out[key] = list(self.rows[table].values())
            out[f"{key}_removed"] = list(self.removed[table])
        return out


def empty_changes() -> dict[str, list]:
    """``changes`` with nothing in it."""
    return _Changes().as_json()


@dataclasses.dataclass
class _Queued:
    op: str
    args: dict[str, Any]


def _require_mapping(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be an object (a dict), got {value!r}")
    return dict(value)


def _pick(args: Mapping[str, Any], allowed: Iterable[str], required: Iterable[str], op: str) -> dict[str, Any]:
    allowed = tuple(allowed)
    unknown = sorted(set(args) - set(allowed))
    if unknown:
        raise ValidationError(f"{op} does not take {unknown}; it takes: {', '.join(allowed)}")
    missing = [name for name in required if args.get(name) is None]
    if missing:
        raise ValidationError(f"{op} needs {', '.join(missing)}; it takes: {', '.join(allowed)}")
    return {k: v for k, v in args.items() if v is not None}


def _id_version(args: Mapping[str, Any], op: str) -> tuple[Any, Any]:
    missing = [name for name in ("id", "version") if args.get(name) is None]
    if missing:
        raise ValidationError(f"{op} needs the row's id and version (the version the edit is based on); "
                              f"missing: {', '.join(missing)}")
    return args["id"], args["version"]


# --- the session ----------------------------------------------------------------------------

class LabelSession:
    """The labels of one recording, edited by one user through the label service.

    Parameters
    ----------
    store : LabelStore
        The connected label service (its user is the author of every edit).
    recording_id : int
        The recording.
    on_event : callable, optional
        ``on_event(kind, payload)`` for what happens outside a request: ``"labels_changed"``
        (``changes``), ``"status"`` (the :attr:`status` dict) and ``"notify"`` (``{level, text}``).
        Called from the thread that noticed (the background thread too); also ``"keypoints"``
        (None) after the user's keypoints changed in any way (:meth:`keypoint_rows`).
    lifter : KeypointLifter, optional
        Lifts clicks to 3D on the recording's depth (``place_keypoint``, ``move_keypoint``); without
        it those ops are refused.

    Raises
    ------
    NotFoundError
        No such recording, or one the user may not see.
    """

    def __init__(self, store: Any, recording_id: int, *, on_event: Optional[EventCallback] = None,
                 lifter: Optional[KeypointLifter] = None) -> None:
        self.store = store
        self.lifter = lifter
        self.recording = store.recording(recording_id)
        self.recording_id: int = self.recording.id
        self.on_event = on_event
        self._lock = threading.RLock()
        self._queue: list[_Queued] = []
        self._known: dict[str, dict[int, int]] = {t: {} for t in _KEYS}
        self._keypoints: dict[int, dict[str, Any]] = {}  # the user's own human keypoints, id -> row
        self._joints: tuple[str, ...] = ()
        self._conflicts: dict[tuple[str, int], dict[str, Any]] = {}
        self._rebase: dict[tuple[str, int, int], int] = {}
        self._last_revision = 0
        self._offline_since: Optional[dt.datetime] = None
        self._backoff_seconds = _BACKOFF_SECONDS[0]
        self._state = "idle"
        self._message = ""
        self.can_undo = False
        self.can_redo = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    # --- events and status ------------------------------------------------------------------

    def _emit(self, kind: str, payload: Any) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(kind, payload)
        except Exception:  # a broken listener must not break saving
            log.exception("deepepil: the labeling session's %s listener failed", kind)

    @property
    def pending(self) -> int:
        """Number of edits kept while the database is unreachable, not saved yet."""
        return len(self._queue)

    @property
    def offline(self) -> bool:
        """True while the database is known to be unreachable."""
        return self._offline_since is not None

    @property
    def status(self) -> dict[str, Any]:
        """``{state, message, pending, can_undo, can_redo}``; state idle, saving, saved, conflict, error or offline."""
        if self._offline_since is not None:
            since = f"{self._offline_since:%H:%M:%S}"
            kept = (f"; {self.pending} change(s) kept, not saved yet, retrying" if self.pending
                    else "; changes cannot be saved until it is back")
            state, message = "offline", f"{OFFLINE_TEXT} since {since}{kept}."
        else:
            state, message = self._state, self._message
        return {"state": state, "message": message, "pending": self.pending,
                "can_undo": self.can_undo, "can_redo": self.can_redo}

    def _set_state(self, state: str, message: str = "") -> None:
        self._state, self._message = state, message
        self._emit("status", self.status)

    def _went_offline(self, exc: BaseException) -> None:
        if self._offline_since is not None:
            log.debug("deepepil: the label database is still unreachable: %s", _offline_detail(exc))
            self._emit("status", self.status)
            return
        self._offline_since = dt.datetime.now()
        self._backoff_seconds = _BACKOFF_SECONDS[0]
        _offline_message(exc)  # logs the driver's text
        self._emit("status", self.status)
        self._emit("notify", {"level": "error", "text": f"{OFFLINE_TEXT}. Your changes are kept and "
                                                        f"will be saved when it is back."})

    def _back_online(self) -> None:
        if self._offline_since is None:
            return
        self._offline_since = None
        self._backoff_seconds = _BACKOFF_SECONDS[0]
        if not self._queue:
            self._set_state("saved", "connected again; all changes saved")
        self._emit("notify", {"level": "info", "text": "The label database is reachable again."})

    # --- loading ----------------------------------------------------------------------------

    def load(self) -> dict[str, list[dict[str, Any]]]:
        """The recording's labels now: ``{mois, suggestions, seizures, keypoints}`` (deleted rows left out).

        ``keypoints`` are the user's own, placed by hand (``source`` human): those the app edits.
        """
        with self._lock:
            top = self._top_revision()
            mois = self.store.mois(self.recording_id).to_dict("records")
            suggestions = self.store.suggestions(self.recording_id).to_dict("records")
            seizures = self.store.seizures(self.recording_id).to_dict("records")
            keypoints = self.store.keypoints(self.recording_id, author=self.store.user.username).to_dict("records")
            labels = {"mois": [row_json("moi", r) for r in mois],
                      "suggestions": [row_json("suggestion", r) for r in suggestions],
                      "seizures": [row_json("seizure", r) for r in seizures],
                      "keypoints": [row_json("keypoint", r) for r in keypoints if self._own_keypoint(r)]}
            for table, key in _KEYS.items():
                self._known[table] = {row["id"]: row["version"] for row in labels[key]}
            self._keypoints = {row["id"]: row for row in labels["keypoints"]}
            self._joints = tuple(self.store.vocabulary("joint"))
            self._last_revision = top
            self._refresh_undo()
        return labels

    def _own_keypoint(self, row: Any) -> bool:
        """True for a keypoint of this user placed by hand (the ones the app shows and edits)."""
        get = row.get if isinstance(row, Mapping) else (lambda name, default=None: getattr(row, name, default))
        return get("author") == self.store.user.username and _clean(get("source")) == "human"

    def keypoint_rows(self) -> list[dict[str, Any]]:
        """The user's own hand-placed keypoints of the recording as the session knows them (README rows)."""
        with self._lock:
            return [dict(row) for row in self._keypoints.values()]

    def _top_revision(self, conn: Optional[sa.Connection] = None) -> int:
        from deepepil.labels._rows import REVISION_T

        stmt = sa.select(sa.func.max(REVISION_T.c.id))
        if conn is not None:
            return int(conn.execute(stmt).scalar() or 0)
        with self.store.engine.connect() as c:
            return int(c.execute(stmt).scalar() or 0)

    # --- undo / redo state ------------------------------------------------------------------

    def _history_target(self, conn: sa.Connection, action: str) -> Optional[tuple[str, int, int]]:
        """(table, row id, recording id) of what ``undo``/``redo`` would revert now, or None."""
        from deepepil.labels._history import TABLES
        from deepepil.labels._rows import REVISION_T as r

        uid = self.store.user.id
        later = r.alias("later")
        not_followed = ~sa.exists().where(later.c.user_id == uid, later.c.undoes_id == r.c.id)
        kind = r.c.action != "undo" if action == "undo" else r.c.action == "undo"
        latest = conn.execute(
            sa.select(r.c.id, r.c.table_name, r.c.row_id)
            .where(r.c.user_id == uid, kind, r.c.table_name.in_(list(TABLES)), not_followed)
            .order_by(r.c.id.desc()).limit(1)
        ).first()
        if latest is None:
            return None
        if action == "redo":
            newer = conn.execute(
                sa.select(r.c.id).where(r.c.user_id == uid, r.c.id > latest.id,
                                        r.c.action.not_in(["undo", "redo"])).limit(1)
            ).first()
            if newer is not None:
                return None
        table = TABLES[latest.table_name].table
        recording_id = conn.execute(sa.select(table.c.recording_id).where(table.c.id == latest.row_id)).scalar()
        return latest.table_name, latest.row_id, recording_id

    def _history_flags(self, conn: sa.Connection) -> tuple[bool, bool]:
        """(can undo, can redo) in this recording, as the database says (kept edits not counted)."""
        undo = self._history_target(conn, "undo")
        redo = self._history_target(conn, "redo")
        return (undo is not None and undo[2] == self.recording_id, redo is not None and redo[2] == self.recording_id)

    def _refresh_undo(self) -> None:
        try:
            with self.store.engine.connect() as conn:
                can_undo, can_redo = self._history_flags(conn)
        except Exception as exc:
            if is_offline(exc):
                return
            raise
        self.can_undo = bool(self._queue) or can_undo
        self.can_redo = can_redo and not self._queue

    def _check_history(self, action: str) -> None:
        with self.store.engine.connect() as conn:
            target = self._history_target(conn, action)
        if target is None:
            what = "change" if action == "undo" else "undone change"
            raise ValidationError(f"nothing to {action}: {self.store.user.username} has no {what} left to {action}"
                                  + ("" if action == "undo" else " (a new change ends what can be redone)"))
        if target[2] != self.recording_id:
            raise ValidationError(
                f"your last {'change' if action == 'undo' else 'undo'} was in recording {target[2]}, not in this "
                f"one ({self.recording_id}); open recording {target[2]} to {action} it there"
            )

    # --- edits ------------------------------------------------------------------------------

    def apply(self, op: str, args: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        """Apply one edit (README ``edit`` ops); never raises.

        Returns
        -------
        dict
            ``{ok, changes, error}``; ``error`` is ``{kind, message, current, table}`` (and
            ``queued: True`` for an edit kept while the database is unreachable), or None.
        """
        try:
            args = _require_mapping({} if args is None else args, f"the arguments of {op!r}")
            if op not in EDIT_OPS:
                raise ValidationError(f"unknown edit op {op!r}; ops are: {', '.join(EDIT_OPS)}")
            if op in ("place_keypoint", "move_keypoint"):  # lifted now: a refused click is refused offline too
                args = self._lifted(op, args)
        except Exception as exc:
            if error_kind(exc) == "error":
                log.error("deepepil: edit %s failed", op, exc_info=exc)
            return {"ok": False, "changes": empty_changes(), "error": error_json(exc)}
        with self._lock:
            landed = _Changes()
            if self._queue:  # kept edits go first, in order
                self._flush_locked(landed)
            if self._queue:  # still unreachable
                return self._offline_reply(op, args, landed)
            before = (self._state, self._message)
            self._set_state("saving", "saving ...")
            try:
                changes = self._run(op, self._rebased(op, args))
            except Exception as exc:
                self._state, self._message = before
                if is_offline(exc):
                    self._went_offline(exc)
                    return self._offline_reply(op, args, landed)
                return self._error_reply(op, args, exc, landed)
            self._back_online()
            landed.merge(changes)
            self._remember(landed)
            if not self._conflicts:
                self._state, self._message = "saved", f"saved at {dt.datetime.now():%H:%M:%S}"
            else:
                self._state, self._message = "conflict", (before[1] if before[0] == "conflict" else
                                                          f"{len(self._conflicts)} conflict(s) to resolve")
            self._refresh_undo()
            self._emit("status", self.status)
            return {"ok": True, "changes": landed.as_json(), "error": None}

    def _lifted(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """The arguments of a keypoint placement or move with the click lifted to 3D (README ``edit`` ops)."""
        if self.lifter is None:
            raise ValidationError("joints cannot be placed: the session has no recording to lift clicks on")
        if op == "place_keypoint":
            args = _pick(args, ("frame_index", "joint", "u_px", "v_px"), ("frame_index", "joint", "u_px", "v_px"), op)
            if self._joints and args["joint"] not in self._joints:
                raise ValidationError(f"joint {args['joint']!r} is not a skeleton joint; joints are: "
                                      f"{', '.join(self._joints)}")
            return {"frame_index": args["frame_index"], "joint": args["joint"],
                    **self.lifter.lift(args["frame_index"], args["u_px"], args["v_px"])}
        args = _pick(args, ("id", "version", "u_px", "v_px"), ("id", "version", "u_px", "v_px"), op)
        with self._lock:
            row = self._keypoints.get(args["id"]) if isinstance(args["id"], int) else None
        if row is None:
            raise ValidationError(f"keypoint {args['id']!r} is not one of your joints on recording "
                                  f"{self.recording_id}; only your own joints can be moved here")
        return {"id": args["id"], "version": args["version"],
                "changes": self.lifter.lift(row["frame_index"], args["u_px"], args["v_px"])}

    def _offline_reply(self, op: str, args: dict[str, Any], landed: _Changes) -> dict[str, Any]:
        if op == "undo" and self._queue:
            dropped = self._queue.pop()
            self._refresh_flags_offline()
            self._emit("status", self.status)
            return {"ok": True, "changes": landed.as_json(), "error": None, "undid_pending": dropped.op}
        error = {"kind": "offline", "current": None, "table": None, "queued": False}
        if op in QUEUEABLE_OPS and len(self._queue) < MAX_PENDING:
            self._queue.append(_Queued(op, dict(args)))
            error["queued"] = True
            error["message"] = (f"{OFFLINE_TEXT}. Your change is not saved yet: it is kept and will be "
                                f"saved when the database is back ({self.pending} pending).")
        elif op in QUEUEABLE_OPS:
            error["message"] = (f"{OFFLINE_TEXT} and {MAX_PENDING} changes are waiting already: this one was "
                                f"NOT kept. Wait until the connection is back.")
        else:
            error["message"] = (f"{OFFLINE_TEXT}: {op.replace('_', ' ')} needs the database, nothing was "
                                f"done. Try again when the connection is back.")
        self._refresh_flags_offline()
        self._emit("status", self.status)
        return {"ok": False, "changes": landed.as_json(), "error": error}

    def _refresh_flags_offline(self) -> None:
        self.can_undo = bool(self._queue)
        self.can_redo = False

    def _last_editor(self, table: str, row_id: int) -> Optional[str]:
        """Username of whoever changed the row last (its latest revision), or None."""
        from deepepil.labels._rows import REVISION_T, USER_T

        try:
            with self.store.engine.connect() as conn:
                return conn.execute(
                    sa.select(USER_T.c.username).join_from(REVISION_T, USER_T, REVISION_T.c.user_id == USER_T.c.id)
                    .where(REVISION_T.c.table_name == table, REVISION_T.c.row_id == int(row_id))
                    .order_by(REVISION_T.c.id.desc()).limit(1)
                ).scalar()
        except Exception:  # the dialog shows the row without the name rather than no dialog
            log.warning("deepepil: could not read who changed %s %s last", table, row_id, exc_info=True)
            return None

    def _error_reply(self, op: str, args: dict[str, Any], exc: BaseException, landed: _Changes) -> dict[str, Any]:
        error = error_json(exc)
        if error["kind"] == "conflict" and error["current"] is not None and error["table"]:
            error["current"]["updated_by"] = self._last_editor(error["table"], error["current"]["id"])
        if error["kind"] == "conflict":
            table = error["table"] or _OP_TABLE.get(op) or args.get("table")
            row_id = (error["current"] or {}).get("id", args.get("id"))
            mine = self._mine(op, args)
            if table and row_id is not None and mine is not None:
                self._conflicts[(table, int(row_id))] = mine
            self._set_state("conflict", error["message"])
        elif error["kind"] == "error":
            log.error("deepepil: edit %s failed", op, exc_info=exc)
            self._set_state("error", error["message"])
        else:
            self._emit("status", self.status)  # a refused edit leaves the save state as it was
        return {"ok": False, "changes": landed.as_json(), "error": error}

    @staticmethod
    def _mine(op: str, args: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """The clinician's side of a conflict, as the changes ``resolve_conflict`` re-applies."""
        if op in ("update_moi", "update_seizure", "move_keypoint"):
            return dict(args.get("changes") or {})
        if op in ("delete_moi", "delete_seizure", "delete_keypoint"):
            return {"deleted": True}
        if op == "accept_suggestion":
            return {"decision": "accepted"}
        if op == "reject_suggestion":
            return {"decision": "rejected"}
        if op == "resolve_conflict":
            return args.get("changes")
        return None

    def _rebased(self, op: str, args: dict[str, Any]) -> dict[str, Any]:
        table = _OP_TABLE.get(op)
        if table is None or args.get("id") is None or args.get("version") is None:
            return args
        try:
            key = (table, int(args["id"]), int(args["version"]))
        except (TypeError, ValueError):
            return args
        version = key[2]
        while (table, key[1], version) in self._rebase:
            version = self._rebase[(table, key[1], version)]
        return args if version == key[2] else {**args, "version": version}

    def _remember(self, changes: _Changes) -> None:
        for table in _KEYS:
            for row_id, data in changes.rows[table].items():
                self._known[table][row_id] = data["version"]
            for row_id, version in changes.removed[table].items():
                self._known[table][row_id] = version
        if changes.rows["keypoint"] or changes.removed["keypoint"]:
            self._keypoints.update(changes.rows["keypoint"])
            for row_id in changes.removed["keypoint"]:
                self._keypoints.pop(row_id, None)
            self._emit("keypoints", None)

    def _row(self, table: str, row_id: Any) -> Any:
        return {"moi": self.store.moi, "suggestion": self.store.suggestion, "seizure": self.store.seizure,
                "keypoint": self.store.keypoint}[table](row_id)

    def _run(self, op: str, args: dict[str, Any]) -> _Changes:
        """Apply ``op`` through the store; raise what the store raises."""
        s, rid, out = self.store, self.recording_id, _Changes()
        if op == "add_moi":
            out.add("moi", s.add_moi(rid, **_pick(args, _ADD_MOI_ARGS, ("region", "label", "start_frame",
                                                                         "end_frame"), op)))
        elif op == "add_seizure":
            out.add("seizure", s.add_seizure(rid, **_pick(args, _ADD_SEIZURE_ARGS, ("onset_frame",), op)))
        elif op in ("update_moi", "update_seizure"):
            row_id, version = _id_version(args, op)
            changes = _require_mapping(args.get("changes") or {}, f"{op} changes")
            table = _OP_TABLE[op]
            self._check_recording(table, row_id)
            update = s.update_moi if table == "moi" else s.update_seizure
            out.add(table, update(row_id, version, **changes))
        elif op in ("delete_moi", "delete_seizure"):
            row_id, version = _id_version(args, op)
            table = _OP_TABLE[op]
            self._check_recording(table, row_id)
            out.add(table, (s.delete_moi if table == "moi" else s.delete_seizure)(row_id, version))
        elif op in ("accept_suggestion", "reject_suggestion"):
            row_id, version = _id_version(args, op)
            self._check_recording("suggestion", row_id)
            if op == "accept_suggestion":
                out.add("moi", s.accept_suggestion(row_id, version))
            else:
                s.reject_suggestion(row_id, version)
            out.add("suggestion", s.suggestion(row_id))
        elif op == "place_keypoint":
            out.add("keypoint", self._place(args))
        elif op == "move_keypoint":
            row_id, version = _id_version(args, op)
            self._check_recording("keypoint", row_id)
            out.add("keypoint", s.update_keypoint(row_id, version, **args["changes"]))
        elif op == "delete_keypoint":
            row_id, version = _id_version(args, op)
            self._check_recording("keypoint", row_id)
            out.add("keypoint", s.delete_keypoint(row_id, version))
        elif op in ("undo", "redo"):
            self._check_history(op)
            result = s.undo() if op == "undo" else s.redo()
            for change in result["changes"]:
                if change["table"] in _KEYS:
                    out.add(change["table"], change["row"])
        else:
            out = self._resolve(args)
        return out

    def _place(self, args: Mapping[str, Any]) -> Any:
        """Add the joint on the frame, or move the user's keyframe of it there (one per joint and frame)."""
        s = self.store
        placed = s.keypoints(self.recording_id, args["frame_index"], author=s.user.username)
        placed = placed[(placed["joint"] == args["joint"]) & (placed["source"].map(_clean) == "human")]
        position = {name: args[name] for name in ("u_px", "v_px", "x_m", "y_m", "z_m")}
        if placed.empty:
            return s.add_keypoint(self.recording_id, args["frame_index"], args["joint"], source="human", **position)
        row = placed.iloc[0]
        return s.update_keypoint(int(row["id"]), int(row["version"]), **position)

    def _check_recording(self, table: str, row_id: Any) -> None:
        row = self._row(table, row_id)
        if row.recording_id != self.recording_id:
            raise ValidationError(f"{table} {row.id} belongs to recording {row.recording_id}, not to the open "
                                  f"recording {self.recording_id}")

    def _resolve(self, args: dict[str, Any]) -> _Changes:
        table = args.get("table")
        table = {key: name for name, key in _KEYS.items()}.get(table, table)  # "mois" as well as "moi"
        if table not in _KEYS:
            names = ", ".join(f"{name!r} ({key!r})" for name, key in _KEYS.items())
            raise ValidationError(f"resolve_conflict table must be one of {names}; got {table!r}")
        choice = args.get("choice")
        if choice not in ("mine", "theirs"):
            raise ValidationError(f"resolve_conflict choice must be 'mine' or 'theirs'; got {choice!r}")
        if args.get("id") is None:
            raise ValidationError("resolve_conflict needs the id of the row in conflict")
        self._check_recording(table, args["id"])
        current = self._row(table, args["id"])
        key = (table, current.id)
        out = _Changes()
        if choice == "theirs":
            self._conflicts.pop(key, None)
            out.add(table, current)
            return out
        mine = args.get("changes") or self._conflicts.get(key)  # none given: the edit that conflicted
        if mine is None:
            raise ValidationError(f"no change of yours to re-apply to {table} {current.id}: give resolve_conflict "
                                  f"the changes, or choose 'theirs'")
        mine = _require_mapping(mine, "resolve_conflict changes")
        s = self.store
        if table == "suggestion":
            decision = mine.get("decision")
            if decision not in ("accepted", "rejected"):
                raise ValidationError(f"for a suggestion, 'mine' is {{'decision': 'accepted' or 'rejected'}}; "
                                      f"got {mine!r}")
            if decision == "accepted":
                out.add("moi", s.accept_suggestion(current.id, current.version))
            else:
                s.reject_suggestion(current.id, current.version)
            out.add("suggestion", s.suggestion(current.id))
        elif mine.get("deleted"):
            if not current.deleted:
                current = getattr(s, f"delete_{table}")(current.id, current.version)
            out.add(table, current)
        else:
            update, restore = getattr(s, f"update_{table}"), getattr(s, f"restore_{table}")
            if table == "keypoint" and "u_px" in mine and "x_m" not in mine and self.lifter is not None:
                mine = {**mine, **self.lifter.lift(current.frame_index, mine["u_px"], mine.get("v_px", current.v_px))}
            with s.batch():  # one change for undo
                version = current.version
                if current.deleted:
                    version = restore(current.id, version).version
                row = update(current.id, version, **{k: v for k, v in mine.items() if k != "deleted"})
            out.add(table, row)
        self._conflicts.pop(key, None)
        return out

    # --- the queue ----------------------------------------------------------------------------

    def flush(self) -> bool:
        """Try to save the edits kept while offline, in order; True when none is left."""
        with self._lock:
            landed = _Changes()
            self._flush_locked(landed)
            if landed:
                self._emit("labels_changed", landed.as_json())
            return not self._queue

    def _flush_locked(self, landed: _Changes) -> None:
        failed: list[tuple[_Queued, BaseException]] = []
        while self._queue:
            item = self._queue[0]
            args = self._rebased(item.op, item.args)
            try:
                changes = self._run(item.op, args)
            except Exception as exc:
                if is_offline(exc):
                    self._went_offline(exc)
                    break
                self._queue.pop(0)
                failed.append((item, exc))
                if isinstance(exc, ConflictError) and exc.current:
                    table = _table_of_row(exc.current)
                    current = _Changes()
                    current.add(table, exc.current)
                    landed.merge(current)
                    mine = self._mine(item.op, item.args)
                    if mine is not None:
                        self._conflicts[(table, int(exc.current["id"]))] = mine
                continue
            self._queue.pop(0)
            table = _OP_TABLE.get(item.op)
            if table is not None and item.args.get("id") is not None:
                row = changes.rows[table].get(int(args["id"]))
                removed = changes.removed[table].get(int(args["id"]))
                if row is not None or removed is not None:
                    new_version = row["version"] if row is not None else removed
                    self._rebase[(table, int(args["id"]), int(args["version"]))] = new_version
            landed.merge(changes)
        self._remember(landed)
        if not self._queue and self._offline_since is not None:
            self._back_online()
        for item, exc in failed:
            error = error_json(exc)
            text = (f"A change kept while the database was unreachable could not be saved ({item.op.replace('_', ' ')}"
                    f"): {error['message']}")
            self._emit("notify", {"level": "error", "text": text})
            self._set_state("conflict" if error["kind"] == "conflict" else "error", text)
        if landed and not failed and not self._queue:
            self._set_state("saved", f"changes kept while offline saved at {dt.datetime.now():%H:%M:%S}")
        if not self._queue:
            self._refresh_undo()
        else:
            self._refresh_flags_offline()
        self._emit("status", self.status)

    # --- others' changes ----------------------------------------------------------------------

    def poll(self) -> Optional[dict[str, list]]:
        """Rows of this recording changed since the last poll that the client does not have.

        Also pushes them as ``labels_changed`` and retries the queue. Returns the changes, or None
        when there were none (or the database is unreachable: then the status says so).
        """
        if self._queue:
            self.flush()
        from deepepil.labels._history import TABLES
        from deepepil.labels._rows import REVISION_T as r, select_rows

        with self._lock:
            try:
                with self.store.engine.connect() as conn:
                    top = self._top_revision(conn)
                    found: list[tuple[str, Any]] = []
                    if top > self._last_revision:  # else nothing changed anywhere (the usual case): one query
                        for table in _KEYS:
                            spec = TABLES[table]
                            t = spec.table
                            ids = (sa.select(r.c.row_id).join(t, t.c.id == r.c.row_id)
                                   .where(r.c.table_name == table, r.c.id > self._last_revision, r.c.id <= top,
                                          t.c.recording_id == self.recording_id))
                            rows = conn.execute(select_rows(t).where(t.c.id.in_(ids))).all()
                            found += [(table, spec.from_mapping(row._mapping)) for row in rows]
                        history = self._history_flags(conn)
            except Exception as exc:
                if is_offline(exc):
                    self._went_offline(exc)
                    return None
                raise
            self._back_online()
            if top <= self._last_revision:
                return None
            self._last_revision = max(self._last_revision, top)
            changes = _Changes()
            for table, row in found:
                known = self._known[table].get(row.id)
                if known == row.version or (known is None and row.deleted):
                    continue
                if table == "keypoint" and not self._own_keypoint(row):  # others' skeletons are theirs
                    continue
                changes.add(table, row)
            self._remember(changes)
            flags = (self.can_undo, self.can_redo)
            if not self._queue:
                self.can_undo, self.can_redo = history
            if (self.can_undo, self.can_redo) != flags:
                self._emit("status", self.status)
            if not changes:
                return None
            payload = changes.as_json()
            self._emit("labels_changed", payload)
            return payload

    # --- background thread --------------------------------------------------------------------

    def start(self, poll_seconds: float = 3.0) -> None:
        """Poll for others' changes and retry kept edits from a daemon thread until :meth:`close`."""
        if poll_seconds <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, args=(float(poll_seconds),), daemon=True,
                                        name=f"deepepil-labels-{self.recording_id}")
        self._thread.start()

    def _loop(self, poll_seconds: float) -> None:
        delay = poll_seconds
        while not self._stop.wait(delay):
            try:
                self.poll()
            except Exception:
                log.exception("deepepil: polling the label database failed")
            if self.offline or self._queue:
                delay = self._backoff_seconds
                self._backoff_seconds = min(self._backoff_seconds * 2, _BACKOFF_SECONDS[1])
            else:
                delay = poll_seconds

    def close(self) -> None:
        """Stop the background thread (the store stays open; it belongs to the caller)."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)
        self._thread = None

    def __repr__(self) -> str:
        return (f"<LabelSession recording {self.recording_id} ({self.recording.name!r}) as "
                f"{self.store.user.username}: {self.status['state']}, {self.pending} pending>")
