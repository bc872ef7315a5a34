"""The clinician labeling app: one anywidget holding the landing list, the patient form and the labeler.

>>> from deepepil.ui import LabelingApp
>>> LabelingApp()                   # the prepared notebook's one cell  # doctest: +SKIP
>>> LabelingApp(recording_id=3)     # opens a recording directly        # doctest: +SKIP

The widget holds its state in synced traits and does all I/O in Python; the front end
(``widgets/labeler/``) renders and sends messages (the contract: ``widgets/README.md``). Every
label change goes through the label service at once (:class:`~deepepil.ui.session.LabelSession`),
so the app keeps nothing of its own: after a kernel restart ``LabelingApp()`` shows exactly what
the database holds. Message handlers never raise into the comm: each answers, with
``ok: False`` and ``error: {kind, message}`` when something went wrong.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional

import anywidget
import pandas as pd
import traitlets as t

from deepepil.errors import (
    AccessDeniedError, ConflictError, DeepEpilError, IntegrityError, NotFoundError, ValidationError,
)
from deepepil.ui._assets import widget_sources
from deepepil.ui.keypoints import KeypointLifter, joints_at, rgb_projection
from deepepil.ui.session import LabelSession, error_json
from deepepil.ui.shortcuts import SHORTCUT_GROUPS, load_shortcuts

__all__ = ["LabelingApp", "PATIENT_FIELDS", "SEX_VALUES", "EPILEPSY_TYPES"]

log = logging.getLogger(__name__)

#: Clinical fields of the pseudonymous patient form (nothing that identifies a person).
PATIENT_FIELDS: tuple[str, ...] = ("sex", "age_at_recording_years", "epilepsy_type", "localization_hypothesis",
                                   "lateralization_hypothesis", "imaging_finding", "notes")
SEX_VALUES: tuple[str, ...] = ("female", "male", "other", "unknown")
#: ILAE 2017 epilepsy types (suggested; the field takes free text up to 100 characters).
EPILEPSY_TYPES: tuple[str, ...] = ("focal", "generalized", "combined generalized and focal", "unknown")
_TEXT_LIMITS = {"epilepsy_type": 100, "localization_hypothesis": 100, "imaging_finding": 2000, "notes": 4000}
_REPLY_TYPES = {"frames": "frames", "open": "opened", "close": "closed", "edit": "edit_result",
                "patient": "patient_result", "refresh": "refreshed", "explanation": "explanation"}
_IDLE = {"state": "idle", "message": "", "pending": 0}
_NO_LABELS = {"mois": [], "suggestions": [], "seizures": [], "keypoints": []}
_NOT_LOADING = {"active": False, "message": "", "fraction": None}


def _load_sources() -> tuple[str, str]:
    try:
        return widget_sources("labeler")
    except FileNotFoundError as exc:  # a broken install: say so in the output area instead of failing to import
        text = json.dumps(f"DeepEpil labeling app: its front end is missing ({exc}). Reinstall deepepil.")
        return f"export default {{ render({{ el }}) {{ el.textContent = {text}; }} }};", ""


def _shortcut_map(overrides: Optional[Mapping[str, Any]]) -> tuple[dict[str, Any], str]:
    """The shortcut map (defaults with the user's changes) and a warning or "".

    ``overrides`` given and invalid: raises (the caller named them). None: the user's shortcut
    file is read; a broken file falls back to the defaults with a warning, so the app still starts.
    """
    if overrides is not None:
        return load_shortcuts(overrides), ""
    try:
        return load_shortcuts(None), ""
    except ValidationError as exc:
        return load_shortcuts({}), f"your shortcut file was not used, the default keys are: {exc}"


def _landing_status(status: Any, n_mois: int) -> str:
    status = getattr(status, "value", status)
    if status == "done":
        return "done"
    if status == "in_progress" or n_mois > 0:
        return "in_progress"
    return "new"


class LabelingApp(anywidget.AnyWidget):
    """The clinician labeling app (landing list, patient form, labeler) as one widget.

    Parameters
    ----------
    url : str, optional
        Label database; default ``$DEEPEPIL_DATABASE_URL``, else the embedded SQLite file (as
        :func:`deepepil.labels.connect`). On the embedded default, the schema is created when
        missing and published stores under ``recordings_root`` are registered (clinic "Local").
    store : LabelStore, optional
        An open label service to use instead of connecting (``url`` and ``user`` are then ignored).
    recordings_root : path-like, optional
        Folder of the recording stores (default ``$DEEPEPIL_STORE``): relative storage URIs are
        resolved against it.
    user : str, optional
        Hub user name (default ``$DEEPEPIL_USER``, ``$JUPYTERHUB_USER``, the login name).
    recording_id : int, optional
        Open this recording at once (for data scientists); raises when it cannot be opened.
    shortcuts : dict, optional
        ``{action: key}`` overriding the default shortcut map (see ``docs/labeling-app.md``).
    poll_seconds : float
        How often others' changes are looked for (and kept edits retried); 0 turns the background
        thread off (:meth:`LabelSession.poll` can be called by hand).
    keypoint_search_radius_px : int
        A joint clicked on a depth hole takes the nearest depth reading within this many pixels
        (:func:`deepepil.recordings.geometry.lift_pixel`); none there: the click is refused.

    Attributes
    ----------
    store : LabelStore or None
        The label service (None when the database could not be reached at start; ``refresh`` retries).
    session : LabelSession or None
        The open recording's edit controller.
    dataset : xarray.Dataset or None
        The open recording.
    keypoints_revision : int
        Incremented after every change of the user's 3D joints the app learns of.
    """

    _esm, _css = _load_sources()

    screen = t.Unicode("landing").tag(sync=True)
    user = t.Dict().tag(sync=True)
    recordings = t.List().tag(sync=True)
    recording = t.Dict(allow_none=True, default_value=None).tag(sync=True)
    patient = t.Dict(allow_none=True, default_value=None).tag(sync=True)
    loading = t.Dict(dict(_NOT_LOADING)).tag(sync=True)
    vocabulary = t.Dict().tag(sync=True)
    labels = t.Dict(dict(_NO_LABELS)).tag(sync=True)
    status = t.Dict(dict(_IDLE)).tag(sync=True)
    can_undo = t.Bool(False).tag(sync=True)
    can_redo = t.Bool(False).tag(sync=True)
    shortcuts = t.Dict().tag(sync=True)
    shortcut_groups = t.List().tag(sync=True)
    frame = t.Int(0).tag(sync=True)
    #: Counts the changes of the user's joints (own edits, undo/redo, found by polling, a recording opened or
    #: closed): observe it to redraw what :meth:`joints_at` gives. Not synced.
    keypoints_revision = t.Int(0)

    def __init__(self, url: Optional[str] = None, *, store: Any = None, recordings_root: Any = None,
                 user: Optional[str] = None, recording_id: Optional[int] = None,
                 shortcuts: Optional[Mapping[str, Any]] = None, poll_seconds: float = 3.0,
                 keypoint_search_radius_px: int = 3) -> None:
        keys, warning = _shortcut_map(shortcuts)
        super().__init__(shortcuts=keys, shortcut_groups=SHORTCUT_GROUPS)
        self._url = url
        self._username = user
        self._owns_store = store is None
        root = recordings_root if recordings_root is not None else os.environ.get("DEEPEPIL_STORE")
        self.recordings_root: Optional[Path] = Path(root).expanduser() if root else None
        self.poll_seconds = float(poll_seconds)
        self.keypoint_search_radius_px = keypoint_search_radius_px
        self.store = store
        self.session: Optional[LabelSession] = None
        self.dataset = None
        self._frames: Any = None
        self._explanations: Any = None
        self._send_lock = threading.Lock()
        self._revision_lock = threading.Lock()
        self._handlers = {"frames": self._on_frames, "open": self._on_open, "close": self._on_close,
                          "edit": self._on_edit, "patient": self._on_patient, "refresh": self._on_refresh,
                          "explanation": self._on_explanation}
        self.on_msg(self._on_msg)
        self._ready = False
        self._connect()
        if warning:
            log.warning("deepepil: %s", warning)
            if self.status["state"] == "idle":
                self.status = {**self.status, "message": warning}
        if recording_id is not None:
            if not self._ready:
                raise DeepEpilError(f"cannot open recording {recording_id}: {self.status['message']}")
            ok, error = self._open(recording_id)
            if not ok:
                raise DeepEpilError(error["message"])

    # --- connection and landing data ------------------------------------------------------------

    def _connect(self) -> bool:
        """Connect (unless a store was given) and fill the landing traits; on failure say why in ``status``."""
        from deepepil.labels.service import connect

        try:
            if self.store is None:
                self._bootstrap_embedded()
                self.store = connect(self._url, self._username)
            store = self.store
            self.user = {"username": store.user.username, "role": store.user.role, "clinic": self._clinic_name()}
            self.vocabulary = self._vocabulary()
            self.recordings = self._landing()
        except Exception as exc:
            if self._owns_store and self.store is not None:
                self.store.close()
                self.store = None
            error = self._error(exc, "cannot connect to the label database")
            self.status = {"state": "offline" if error["kind"] == "offline" else "error",
                           "message": error["message"], "pending": 0}
            log.warning("deepepil: %s", error["message"])
            return False
        self._ready = True
        self.status = dict(_IDLE)
        return True

    def _bootstrap_embedded(self) -> None:
        """The embedded single-user database (no URL named): create the schema, register local stores."""
        from deepepil.labels.db import database_configured

        if database_configured(self._url):
            return
        from deepepil.labels import schema
        from deepepil.labels.db import resolve_url

        url = resolve_url(None)
        schema.upgrade(url)
        if self.recordings_root is None or not self.recordings_root.is_dir():
            return
        from deepepil.labels import admin, catalog

        clinics = admin.list_clinics(url=url)
        clinic = str(clinics["name"].iloc[0]) if not clinics.empty else "Local"
        if clinics.empty:
            admin.add_clinic(clinic, url=url)
        registered = set(catalog.catalog(url, user=self._username)["storage_uri"])
        for path in sorted(self.recordings_root.glob("*.zarr")):
            if str(path.resolve()) in registered:
                continue
            try:
                catalog.register_recording(path, clinic, self._patient_code_of(path), url, user=self._username)
            except DeepEpilError as exc:  # an unpublished or changed store: listed by `deepepil verify`
                log.warning("deepepil: %s not registered: %s", path, exc)

    @staticmethod
    def _patient_code_of(path: Path) -> Optional[str]:
        """The pseudonymous code a store names (synthetic ones do), else None (a code is generated)."""
        import re

        from deepepil.labels.models import PATIENT_CODE_PATTERN
        from deepepil.recordings.store import read_store_attrs

        code = read_store_attrs(path).get("provenance", {}).get("source_attrs", {}).get("patient_code")
        return code if isinstance(code, str) and re.match(PATIENT_CODE_PATTERN, code) else None

    def _clinic_name(self) -> Optional[str]:
        import sqlalchemy as sa

        from deepepil.labels._rows import CLINIC_T

        if self.store.user.clinic_id is None:
            return None
        with self.store.engine.connect() as conn:
            return conn.execute(sa.select(CLINIC_T.c.name).where(CLINIC_T.c.id == self.store.user.clinic_id)).scalar()

    def _vocabulary(self) -> dict[str, Any]:
        v = self.store.vocabulary
        regions, labels = v("region"), v("moi_label")
        return {"regions": regions, "labels": {region: list(labels) for region in regions},
                "laterality": v("laterality"), "centricity": v("centricity"), "seizure_type": v("seizure_type"),
                "awareness": v("awareness"), "lateralization": v("laterality"), "localization": v("localization"),
                "sex": list(SEX_VALUES), "epilepsy_type": list(EPILEPSY_TYPES), "joint": v("joint")}

    def _landing(self) -> list[dict[str, Any]]:
        from deepepil.labels.catalog import catalog

        frame = catalog(self.store.url, user=self.store.user.username)
        out = []
        for row in frame.itertuples(index=False):
            n_mois = int(row.n_mois)
            out.append({
                "id": int(row.recording_id), "name": row.name, "patient_code": row.patient_code,
                "clinic": row.clinic, "status": _landing_status(row.status, n_mois), "n_mois": n_mois,
                "duration_seconds": float(row.duration_seconds), "n_frames": int(row.num_frames),
                "fps": float(row.fps), "streams": [s for s in str(row.streams or "").split(",") if s],
            })
        return out

    # --- messages -------------------------------------------------------------------------------

    def _on_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, Mapping) else None
        req = content.get("req") if isinstance(content, Mapping) else None
        out_buffers: list = []
        try:
            handler = self._handlers.get(kind)
            if handler is None:
                known = ", ".join(self._handlers)
                raise ValidationError(f"unknown message type {kind!r}; the app answers: {known}")
            reply, out_buffers = handler(content, buffers or [])
        except Exception as exc:  # never into the comm: every request is answered
            reply = {"ok": False, "error": self._error(exc, f"{kind or 'the request'} failed")}
            if reply["error"]["kind"] == "error":
                log.error("deepepil: handling %r failed", kind, exc_info=exc)
        reply = {"type": _REPLY_TYPES.get(kind, "error"), **reply, "req": req}
        self._push(reply, out_buffers)

    def _push(self, content: dict[str, Any], buffers: Optional[list] = None) -> None:
        try:
            with self._send_lock:
                self.send(content, buffers=buffers or None)
        except Exception:  # the comm is closed (the output was cleared): nothing to tell
            log.debug("deepepil: could not send %s", content.get("type"), exc_info=True)

    def _notify(self, level: str, text: str) -> None:
        self._push({"type": "notify", "level": level, "text": text})

    @staticmethod
    def _error(exc: BaseException, doing: str) -> dict[str, Any]:
        if isinstance(exc, ConnectionError):  # from _require_store: the message says it all
            return {"kind": "offline", "message": str(exc)}
        error = error_json(exc)
        if error["kind"] == "error" and isinstance(exc, DeepEpilError):
            error["message"] = str(exc)
        if error["kind"] == "offline":  # the driver's text (host, port, database) is in the kernel's log only
            error["message"] = f"{doing}: the label database cannot be reached."
        return {"kind": error["kind"], "message": error["message"]}

    def _require_store(self) -> Any:
        if not self._ready and not self._connect():
            raise ConnectionError(self.status["message"])
        return self.store

    def _on_refresh(self, content: Mapping[str, Any], _buffers: list) -> tuple[dict, list]:
        if self._ready:
            self.recordings = self._landing()
        else:
            self._require_store()
        return {"ok": True, "recordings": self.recordings}, []

    def _on_frames(self, content: Mapping[str, Any], _buffers: list) -> tuple[dict, list]:
        if self._frames is None:
            reply = {"stream": content.get("stream"), "indices": content.get("indices") or [], "mime": "",
                     "errors": {}, "error": "no recording is open"}
            return reply, []
        reply, buffers = self._frames.handle(dict(content))
        reply.pop("type", None)
        reply.pop("req", None)
        return reply, buffers

    # --- opening and closing --------------------------------------------------------------------

    def _on_explanation(self, content: Mapping[str, Any], _buffers: list) -> tuple[dict, list]:
        """A suggestion's Grad-CAM for the player (:mod:`deepepil.ui.explanations`)."""
        server = self._explanations
        if server is None:
            raise ValidationError("no recording is open: open one to see its suggestions' explanations")
        self._require_store()
        return server.handle(content)

    def _on_open(self, content: Mapping[str, Any], _buffers: list) -> tuple[dict, list]:
        self._require_store()
        ok, error = self._open(content.get("recording_id"))
        if not ok:
            self._notify("error", error["message"])
        return {"ok": ok, "error": error}, []

    def _progress(self, message: str, fraction: Optional[float]) -> None:
        self.loading = {"active": True, "message": message, "fraction": fraction}

    def _open(self, recording_id: Any) -> tuple[bool, Optional[dict[str, Any]]]:
        """Open a recording (progress in ``loading``); (ok, error)."""
        if self.session is not None and self.session.pending:
            return False, {"kind": "offline", "message": (
                f"{self.session.pending} change(s) of the open recording are not saved yet (the database is "
                f"unreachable); they are kept while it stays open. Try again when the connection is back")}
        name = f"recording {recording_id}"
        try:
            if isinstance(recording_id, bool) or not isinstance(recording_id, int):
                raise ValidationError(f"recording_id must be an integer id from the list, got {recording_id!r}")
            self._progress("Finding the recording", 0.05)
            info = self.store.recording(recording_id)
            name = f"recording {info.id} ({info.name})"
            self._progress("Checking the recording store", 0.15)
            path = self._store_path(info.storage_uri)
            registered = self._registered(info.id)
            dataset = self._open_dataset(path, registered)
            self._progress("Reading the labels", 0.6)
            session = LabelSession(self.store, info.id, on_event=self._on_session_event,
                                   lifter=KeypointLifter(dataset, search_radius_px=self.keypoint_search_radius_px))
            labels = session.load()
            patient = None if registered.patient_id is None else self._patient_json(registered.patient_id)
            self._progress("Preparing the player", 0.85)
            from deepepil.ui.frames import FrameServer

            frames = FrameServer(dataset)
        except Exception as exc:
            error = self._error(exc, f"cannot open {name}")
            if error["kind"] != "offline":
                error["message"] = f"cannot open {name}: {error['message']}"
            self.loading = {"active": False, "message": error["message"], "fraction": None}
            return False, error
        self._close_recording()
        from deepepil.ui.explanations import ExplanationServer

        self.session, self.dataset, self._frames = session, dataset, frames
        self._explanations = ExplanationServer(self.store, info.id)
        recording = {
            "id": info.id, "name": info.name, "patient_code": patient["code"] if patient else None,
            "clinic": info.clinic, "fps": float(info.fps), "n_frames": int(dataset.sizes["time"]),
            "duration_seconds": float(info.duration_seconds), "streams": frames.streams(),
            "display": dict(dataset.attrs.get("display", {})), "rgb_projection": rgb_projection(dataset),
        }
        status = session.status
        with self.hold_sync():
            self.labels = labels
            self.patient = patient
            self.recording = recording
            self.frame = 0
            self.status = {k: status[k] for k in ("state", "message", "pending")}
            self.can_undo, self.can_redo = status["can_undo"], status["can_redo"]
            self.screen = "labeling"
            self.loading = dict(_NOT_LOADING)
        self._keypoints_changed()
        session.start(self.poll_seconds)
        return True, None

    def _store_path(self, storage_uri: str) -> Path:
        from urllib.parse import unquote, urlparse

        if storage_uri.startswith("file://"):
            storage_uri = unquote(urlparse(storage_uri).path)
        elif "://" in storage_uri:
            raise ValidationError(f"the recording's storage URI {storage_uri!r} is not a local path; this app opens "
                                  f"stores on the server's file system")
        path = Path(storage_uri)
        if not path.is_absolute() and self.recordings_root is not None:
            path = self.recordings_root / path
        return path

    def _registered(self, recording_id: int) -> Any:
        """The catalog's ``checksum``, ``streams`` and ``patient_id`` of a recording."""
        import sqlalchemy as sa

        from deepepil.labels._rows import RECORDING_T

        with self.store.engine.connect() as conn:
            return conn.execute(sa.select(RECORDING_T.c.checksum, RECORDING_T.c.streams, RECORDING_T.c.patient_id)
                                .where(RECORDING_T.c.id == recording_id)).one()

    def _open_dataset(self, path: Path, registered: Any) -> Any:
        """Open the store, checked against its catalog row (:meth:`_registered`) and manifest; raise naming why not."""
        from deepepil.recordings.store import STREAM_DIMS, manifest_sha256, open_recording, read_manifest

        checksum, listed = registered.checksum, [s for s in (registered.streams or "").split(",") if s]
        if manifest_sha256(path) != checksum:  # also: missing or unpublished store
            raise IntegrityError(f"{path}: the store's checksum manifest differs from the one registered in the "
                                 f"catalog: the store was changed or replaced after it was registered. Ask an "
                                 f"admin to run `deepepil verify {path}`")
        problems = []
        for rel, entry in read_manifest(path)["files"].items():
            file = path / rel
            if not file.exists():
                problems.append(f"missing file {rel}")
            elif file.stat().st_size != entry["size_bytes"]:
                problems.append(f"{rel} has {file.stat().st_size} bytes, the manifest says {entry['size_bytes']} "
                                f"(truncated or overwritten)")
        if problems:
            shown = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
            raise IntegrityError(f"{path} is damaged: {shown}. Ask an admin to run `deepepil verify {path}` and "
                                 f"to ingest the source again")
        self._progress("Opening the streams", 0.35)
        dataset = open_recording(path)
        present = [s for s in STREAM_DIMS if s in dataset.data_vars]
        missing = [s for s in listed if s not in present]
        if missing or not present:
            raise IntegrityError(
                f"{path} lacks the stream(s) {', '.join(missing) or 'to show'}: the catalog lists "
                f"{', '.join(listed) or 'none'}, the store has {', '.join(present) or 'none'}")
        for index, stream in enumerate(present):
            self._progress(f"Reading the first {stream} frame", 0.4 + 0.15 * index / len(present))
            try:
                dataset[stream][0].values
            except Exception as exc:
                raise IntegrityError(f"{path}: frame 0 of stream {stream!r} cannot be decoded ({exc}); the store is "
                                     f"damaged. Ask an admin to run `deepepil verify --decode {path}`") from exc
        return dataset

    def _close_recording(self) -> None:
        if self.session is not None:
            self.session.close()
        if self._frames is not None:
            self._frames.close()
        self.session, self.dataset, self._frames, self._explanations = None, None, None, None

    def _on_close(self, content: Mapping[str, Any], _buffers: list) -> tuple[dict, list]:
        session = self.session
        if session is not None and session.pending and not session.flush() and not content.get("force"):
            return {"ok": False, "error": {"kind": "offline", "message": (
                f"{session.pending} change(s) are not saved yet: the label database cannot be reached. They are kept "
                f"while the recording stays open and saved when it is back; closing now (force) discards them")}}, []
        self._close_recording()
        self._keypoints_changed()
        with self.hold_sync():
            self.recording = None
            self.patient = None
            self.labels = dict(_NO_LABELS)
            self.can_undo = self.can_redo = False
            self.status = dict(_IDLE)
            self.screen = "landing"
        try:
            self.recordings = self._landing()
        except Exception as exc:
            return {"ok": True, "error": self._error(exc, "cannot list the recordings")}, []
        return {"ok": True, "error": None}, []

    # --- edits ----------------------------------------------------------------------------------

    def _on_edit(self, content: Mapping[str, Any], _buffers: list) -> tuple[dict, list]:
        if self.session is None:
            return {"ok": False, "changes": None, "error": {
                "kind": "validation", "message": "no recording is open: open one from the list first",
                "current": None}}, []
        result = self.session.apply(content.get("op"), content.get("args"))
        return result, []

    def _on_session_event(self, kind: str, payload: Any) -> None:
        if kind == "labels_changed":
            self._push({"type": "labels_changed", "changes": payload})
        elif kind == "notify":
            self._notify(payload["level"], payload["text"])
        elif kind == "keypoints":
            self._keypoints_changed()
        elif kind == "status":  # also from the session's thread: no hold_sync, which is not thread-safe
            self.status = {k: payload[k] for k in ("state", "message", "pending")}
            self.can_undo, self.can_redo = payload["can_undo"], payload["can_redo"]

    def _keypoints_changed(self) -> None:
        with self._revision_lock:  # the session's thread counts too
            self.keypoints_revision += 1

    # --- patients -------------------------------------------------------------------------------

    def _patient_json(self, patient_id: int) -> dict[str, Any]:
        import sqlalchemy as sa
        from sqlalchemy.orm import Session

        from deepepil.labels.models import Clinic, Patient

        with Session(self.store.engine) as session:
            row = session.execute(sa.select(Patient, Clinic.name).join(Clinic, Patient.clinic_id == Clinic.id)
                                  .where(Patient.id == patient_id)).first()
            if row is None:
                raise NotFoundError(f"patient {patient_id} does not exist")
            patient, clinic = row
            fields = {name: getattr(patient, name) for name in PATIENT_FIELDS}
            return {"id": patient.id, "code": patient.code, "version": patient.version, "clinic": clinic,
                    "fields": fields, "complete": all(v not in (None, "") for k, v in fields.items() if k != "notes")}

    def _check_patient_fields(self, fields: Any) -> dict[str, Any]:
        if not isinstance(fields, Mapping):
            raise ValidationError(f"fields must be an object of clinical fields ({', '.join(PATIENT_FIELDS)})")
        errors: dict[str, str] = {}
        unknown = sorted(set(fields) - set(PATIENT_FIELDS))
        if unknown:
            raise ValidationError(
                f"{', '.join(map(repr, unknown))} cannot be stored: patients are pseudonymous (a generated code, no "
                f"name, birth date or hospital number); the clinical fields are: {', '.join(PATIENT_FIELDS)}")
        out: dict[str, Any] = {}
        for name, value in fields.items():
            if isinstance(value, str):
                value = value.strip() or None
            if value is None:
                out[name] = None
            elif name == "sex" and value not in SEX_VALUES:
                errors[name] = f"sex must be one of {', '.join(SEX_VALUES)}"
            elif name == "age_at_recording_years":
                try:
                    age = int(value)
                except (TypeError, ValueError):
                    age = -1
                if isinstance(value, bool) or isinstance(value, float) and not value.is_integer() or not 0 <= age < 130:
                    errors[name] = f"age at recording must be whole years from 0 to 129, got {value!r}"
                else:
                    out[name] = age
            elif name == "lateralization_hypothesis":
                allowed = [*self.store.vocabulary("laterality"), "unknown"]
                if value not in allowed:
                    errors[name] = f"lateralization hypothesis must be one of {', '.join(allowed)}"
                else:
                    out[name] = value
            elif name in _TEXT_LIMITS and (not isinstance(value, str) or len(value) > _TEXT_LIMITS[name]):
                errors[name] = f"{name.replace('_', ' ')} must be text of at most {_TEXT_LIMITS[name]} characters"
            else:
                out[name] = value
        if errors:
            error = ValidationError("; ".join(errors.values()))
            error.fields = errors  # type: ignore[attr-defined]
            raise error
        return out

    def _on_patient(self, content: Mapping[str, Any], _buffers: list) -> tuple[dict, list]:
        store = self._require_store()
        try:
            fields = self._check_patient_fields(content.get("fields") or {})
            if store.user.role not in ("clinician", "admin"):
                raise AccessDeniedError(f"{store.user.describe()} may not edit patients: that needs the role "
                                        f"clinician or admin")
            op = content.get("op")
            if op == "create":
                patient_id = self._create_patient(fields, content)
            elif op == "update":
                patient_id = self._update_patient(fields, content)
            else:
                raise ValidationError(f"patient op must be 'create' or 'update', got {op!r}")
        except Exception as exc:
            error = self._error(exc, "the patient was not saved")
            error["fields"] = getattr(exc, "fields", None) or {}
            if isinstance(exc, ConflictError):
                error["current"] = exc.current
            return {"ok": False, "patient": None, "error": error}, []
        patient = self._patient_json(patient_id)
        if self.patient is not None and self.patient.get("id") == patient_id:
            self.patient = patient
        if op == "create":
            self.recordings = self._landing()
        return {"ok": True, "patient": patient, "error": None}, []

    def _create_patient(self, fields: dict[str, Any], content: Mapping[str, Any]) -> int:
        import sqlalchemy as sa
        from sqlalchemy.orm import Session

        from deepepil.labels.catalog import unique_patient_code
        from deepepil.labels.models import Clinic, Patient

        user = self.store.user
        with Session(self.store.engine) as session, session.begin():
            clinic_id = user.clinic_id
            if user.role == "admin" and content.get("clinic"):
                clinic_id = session.scalar(sa.select(Clinic.id).where(Clinic.name == content["clinic"]))
                if clinic_id is None:
                    raise NotFoundError(f"no clinic named {content['clinic']!r}")
            if clinic_id is None and self.recording is not None:
                clinic_id = session.scalar(sa.select(Clinic.id).where(Clinic.name == self.recording["clinic"]))
            if clinic_id is None:
                clinics = session.scalars(sa.select(Clinic.id).limit(2)).all()
                clinic_id = clinics[0] if len(clinics) == 1 else None  # the embedded database's one clinic
            if clinic_id is None:
                raise ValidationError(f"{user.username} belongs to no clinic: give the clinic the patient belongs to "
                                      f"(clinic: NAME)")
            code = unique_patient_code(session)
            patient = Patient(code=code, clinic_id=clinic_id, **fields)
            session.add(patient)
            session.flush()
            return patient.id

    def _update_patient(self, fields: dict[str, Any], content: Mapping[str, Any]) -> int:
        import sqlalchemy as sa
        from sqlalchemy.orm import Session

        from deepepil.labels.models import Patient

        patient_id = content.get("id")
        if patient_id is None and self.patient is not None:
            patient_id = self.patient["id"]
        if isinstance(patient_id, bool) or not isinstance(patient_id, int):
            raise ValidationError(f"update needs the patient's id, got {patient_id!r}")
        user = self.store.user
        with Session(self.store.engine) as session, session.begin():
            patient = session.get(Patient, patient_id)
            if patient is None or (user.role == "clinician" and patient.clinic_id != user.clinic_id):
                raise NotFoundError(f"patient {patient_id} does not exist or is not of {user.username}'s clinic")
            version = content.get("version")
            if version is not None and version != patient.version:
                raise ConflictError(f"patient {patient.code} was changed by someone else (version {patient.version}, "
                                    f"you edited {version}); nothing was saved", current={"version": patient.version})
            result = session.execute(sa.update(Patient).where(Patient.id == patient_id,
                                                              Patient.version == patient.version)
                                     .values(**fields, version=patient.version + 1))
            if result.rowcount != 1:
                raise ConflictError(f"patient {patient.code} was changed by someone else meanwhile; nothing was saved")
            return patient_id

    # --- Python side conveniences ---------------------------------------------------------------

    def open_recording(self, recording_id: int) -> None:
        """Open a recording from Python (as the landing list does); raise when it cannot be opened."""
        self._require_store()
        ok, error = self._open(recording_id)
        if not ok:
            raise DeepEpilError(error["message"])

    def joints_at(self, frame_index: int) -> pd.DataFrame:
        """The user's joints on ``frame_index``: keyframes there, linearly interpolated between keyframes.

        Parameters
        ----------
        frame_index : int
            A frame of the open recording.

        Returns
        -------
        pandas.DataFrame
            Columns ``joint, x_m, y_m, z_m, u_px, v_px, keyframe`` (``keyframe`` False where
            interpolated); one row per joint between (or on) its first and last keyframe; the
            current user's hand-placed keypoints only. Empty when no recording is open.
        """
        if self.session is None:
            return joints_at([], 0)
        frame_index = self.session.lifter.check_frame(frame_index)
        return joints_at(self.session.keypoint_rows(), frame_index)

    def close(self) -> None:
        """Stop the background thread, close the recording (and the label service if the app opened it)."""
        if hasattr(self, "_handlers"):  # not when __init__ failed early
            self._close_recording()
            if self._owns_store and self.store is not None:
                self.store.close()
                self.store = None
        super().close()

    def __repr__(self) -> str:
        who = self.user.get("username", "?")
        role = ", ".join(str(v) for v in (self.user.get("role"), self.user.get("clinic")) if v)
        if self.recording:
            rec = self.recording
            where = f"recording {rec['id']} {rec['name']!r} at frame {self.frame} of {rec['n_frames']}"
            where += f", {len(self.labels.get('mois', []))} MOI(s) at open"
        else:
            where = f"{self.screen}, {len(self.recordings)} recording(s)"
        state = self.status.get("state", "idle")
        pending = self.status.get("pending") or 0
        return (f"<LabelingApp {who} ({role}): {where}; {state}" + (f", {pending} pending" if pending else "") + ">")
