"""Seizures, keypoints and model suggestions: the :class:`~deepepil.labels.service.LabelStore` methods.

A mixin, so the service module stays readable; it relies on the store's transaction and
edit helpers (``_tx``, ``_writable``, ``_edit_target``, ``_apply``, ``_insert``, ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Optional

import pandas as pd
import sqlalchemy as sa

from deepepil.errors import ValidationError
from deepepil.labels import _validate
from deepepil.labels._history import TABLES, Tx
from deepepil.labels._rows import (
    KEYPOINT_COLUMNS, KEYPOINT_T, SEIZURE_COLUMNS, SEIZURE_T, SUGGESTION_COLUMNS, SUGGESTION_T, KeypointRow,
    Moi, RecordingInfo, SeizureRow, SuggestionRow, filter_in,
)
from deepepil.labels._validate import SUGGESTION_WRITERS
from deepepil.labels.models import Decision, LabelStatus

if TYPE_CHECKING:
    from deepepil.labels.service import LabelStore

__all__ = ["RecordsMixin", "SEIZURE_EDITABLE", "KEYPOINT_EDITABLE"]

SEIZURE_EDITABLE = ("onset_frame", "offset_frame", "seizure_type", "awareness", "lateralization", "localization",
                    "status", "notes")
KEYPOINT_EDITABLE = ("frame_index", "joint", "u_px", "v_px", "x_m", "y_m", "z_m", "confidence")
_STATUSES = tuple(s.value for s in LabelStatus)
_DECISIONS = tuple(d.value for d in Decision)
_SOURCES = ("human", "model")


class RecordsMixin:
    """Seizure, keypoint and suggestion methods of the label store."""

    # --- seizures ---------------------------------------------------------------------------

    def _prepare_seizure(self: "LabelStore", tx: Tx, rec: RecordingInfo, values: dict[str, Any],
                         current: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        vocab = self._vocab(tx)
        out = dict(values)
        out["onset_frame"] = _validate.as_frame(out.get("onset_frame"), "onset_frame")
        if out.get("offset_frame") is None:
            out["offset_frame"] = None
            _validate.check_frame(rec, out["onset_frame"], "onset_frame")
        else:
            out["offset_frame"] = _validate.as_frame(out["offset_frame"], "offset_frame")
            _validate.check_interval(rec, out["onset_frame"], out["offset_frame"], ("onset_frame", "offset_frame"))
        for name, kind in (("seizure_type", "seizure_type"), ("awareness", "awareness"),
                           ("lateralization", "laterality"), ("localization", "localization")):
            if current is None or out.get(name) != current[name]:
                out[name] = vocab.check(kind, out.get(name), name, optional=True)
        out["status"] = LabelStatus(_validate.check_choice(out.get("status", "draft"), _STATUSES, "status"))
        notes = out.get("notes")
        if notes is not None and not isinstance(notes, str):
            raise ValidationError(f"notes must be text, got {notes!r}")
        return out

    def _check_seizure_duplicate(self: "LabelStore", tx: Tx, values: Mapping[str, Any],
                                 exclude_id: Optional[int] = None) -> None:
        t = SEIZURE_T
        self._lock_recording(tx, values["recording_id"])
        offset = values["offset_frame"]
        cond = [t.c.recording_id == values["recording_id"], t.c.onset_frame == values["onset_frame"],
                t.c.offset_frame.is_(None) if offset is None else t.c.offset_frame == offset,
                t.c.author_id == values["author_id"], t.c.deleted.is_(False)]
        if exclude_id is not None:
            cond.append(t.c.id != exclude_id)
        duplicate = tx.conn.execute(sa.select(t.c.id).where(*cond).limit(1)).scalar()
        if duplicate is not None:
            raise ValidationError(f"seizure {duplicate} has the same onset and offset by the same author; "
                                  f"edit that one instead")

    def add_seizure(self: "LabelStore", recording_id: int, onset_frame: int, offset_frame: Optional[int] = None,
                    *, seizure_type: Optional[str] = None, awareness: Optional[str] = None,
                    lateralization: Optional[str] = None, localization: Optional[str] = None,
                    status: str = "draft", notes: Optional[str] = None) -> SeizureRow:
        """Add a seizure: onset frame, offset frame (exclusive; None while unknown), ILAE 2017 classification."""
        with self._tx(write=True) as tx:
            rec = self._writable(tx, recording_id, "add labels to")
            content = self._prepare_seizure(tx, rec, dict(
                onset_frame=onset_frame, offset_frame=offset_frame, seizure_type=seizure_type, awareness=awareness,
                lateralization=lateralization, localization=localization, status=status, notes=notes))
            values = {"recording_id": rec.id, "author_id": self.user.id, **content}
            self._check_seizure_duplicate(tx, values)
            return TABLES["seizure"].from_mapping(self._insert(tx, TABLES["seizure"], values))

    def update_seizure(self: "LabelStore", seizure_id: int, version: int, **changes: Any) -> SeizureRow:
        """Change fields of a seizure at ``version`` (editable: :data:`SEIZURE_EDITABLE`)."""
        return self._update_row("seizure", seizure_id, version, changes, SEIZURE_EDITABLE,
                                self._prepare_seizure, self._check_seizure_duplicate,
                                ("onset_frame", "offset_frame"))

    def _update_row(self: "LabelStore", table: str, row_id: int, version: int, changes: dict[str, Any],
                    editable: Sequence[str], prepare: Callable[..., dict[str, Any]],
                    check_duplicate: Callable[..., None], identity: Sequence[str]) -> Any:
        """Validated, versioned update of a seizure or keypoint; a no-op change returns the row."""
        unknown = set(changes) - set(editable)
        if unknown:
            raise ValidationError(f"cannot change {sorted(unknown)} of a {table}; editable: {', '.join(editable)}")
        spec = TABLES[table]
        with self._tx(write=True) as tx:
            current, rec, version = self._edit_target(tx, spec, row_id, version, "edit labels of")
            if current["deleted"]:
                raise ValidationError(f"{table} {current['id']} is deleted; restore it first")
            merged = {name: current[name] for name in editable}
            merged.update(changes)
            content = prepare(tx, rec, merged, current)
            values = {k: v for k, v in content.items() if v != current[k]}
            if not values:
                return spec.from_mapping(current)
            if any(name in values for name in identity):
                check_duplicate(tx, {**current, **values}, exclude_id=current["id"])
            return spec.from_mapping(self._apply(tx, spec, current, version, values, "update"))

    def delete_seizure(self: "LabelStore", seizure_id: int, version: int) -> SeizureRow:
        """Delete a seizure at ``version`` (soft; :meth:`restore_seizure` brings it back)."""
        return self._set_deleted(TABLES["seizure"], seizure_id, version, True)

    def restore_seizure(self: "LabelStore", seizure_id: int, version: int) -> SeizureRow:
        """Bring back a deleted seizure."""
        return self._set_deleted(TABLES["seizure"], seizure_id, version, False)

    def seizure(self: "LabelStore", seizure_id: int) -> SeizureRow:
        """One seizure by id."""
        return self._get(TABLES["seizure"], seizure_id)

    def seizures(self: "LabelStore", recording_id: Optional[int] = None, *, author: Optional[str] = None,
                 include_deleted: bool = False) -> pd.DataFrame:
        """Seizures as a DataFrame (columns :data:`~deepepil.labels._rows.SEIZURE_COLUMNS`)."""
        t = SEIZURE_T
        stmt = self._scoped(t, recording_id, include_deleted)
        stmt = filter_in(stmt, author=author).order_by(t.c.recording_id, t.c.onset_frame, t.c.id)
        return self._frame(stmt, SEIZURE_COLUMNS)

    # --- keypoints --------------------------------------------------------------------------

    def _prepare_keypoint(self: "LabelStore", tx: Tx, rec: RecordingInfo, values: dict[str, Any],
                          current: Optional[Mapping[str, Any]] = None) -> dict[str, Any]:
        out = dict(values)
        out["frame_index"] = _validate.as_frame(out.get("frame_index"), "frame_index")
        _validate.check_frame(rec, out["frame_index"])
        if current is None or out.get("joint") != current["joint"]:
            out["joint"] = self._vocab(tx).check("joint", out.get("joint"), "joint")
        out["u_px"] = _validate.as_finite(out.get("u_px"), "u_px")
        out["v_px"] = _validate.as_finite(out.get("v_px"), "v_px")
        xyz = [out.get(name) for name in ("x_m", "y_m", "z_m")]
        if any(v is not None for v in xyz) and any(v is None for v in xyz):
            raise ValidationError(f"x_m, y_m and z_m go together (all or none); got {xyz}")
        for name in ("x_m", "y_m", "z_m"):
            if out.get(name) is not None:
                out[name] = _validate.as_finite(out[name], name)
        out["confidence"] = _validate.as_fraction(out.get("confidence"), "confidence")
        return out

    def _check_keypoint_duplicate(self: "LabelStore", tx: Tx, values: Mapping[str, Any],
                                  exclude_id: Optional[int] = None) -> None:
        t = KEYPOINT_T
        cond = [t.c.recording_id == values["recording_id"], t.c.frame_index == values["frame_index"],
                t.c.joint == values["joint"], t.c.author_id == values["author_id"],
                t.c.source == values["source"], t.c.deleted.is_(False)]
        if exclude_id is not None:
            cond.append(t.c.id != exclude_id)
        self._lock_recording(tx, values["recording_id"])
        duplicate = tx.conn.execute(sa.select(t.c.id).where(*cond).limit(1)).scalar()
        if duplicate is not None:
            raise ValidationError(
                f"joint {values['joint']!r} on frame {values['frame_index']} is placed already by this author "
                f"(keypoint {duplicate}); move it with update_keypoint({duplicate}, version, u_px=..., v_px=...)"
            )

    def add_keypoint(self: "LabelStore", recording_id: int, frame_index: int, joint: str, u_px: float,
                     v_px: float, *, x_m: Optional[float] = None, y_m: Optional[float] = None,
                     z_m: Optional[float] = None, confidence: Optional[float] = None,
                     source: str = "human") -> KeypointRow:
        """Place a skeleton joint on a frame: image position (pixels), and camera coordinates (metres) if lifted."""
        with self._tx(write=True) as tx:
            rec = self._writable(tx, recording_id, "add labels to")
            source = _validate.check_choice(source, _SOURCES, "source")
            content = self._prepare_keypoint(tx, rec, dict(frame_index=frame_index, joint=joint, u_px=u_px,
                                                           v_px=v_px, x_m=x_m, y_m=y_m, z_m=z_m,
                                                           confidence=confidence))
            values = {"recording_id": rec.id, "author_id": self.user.id, "source": source, **content}
            self._check_keypoint_duplicate(tx, values)
            return TABLES["keypoint"].from_mapping(self._insert(tx, TABLES["keypoint"], values))

    def update_keypoint(self: "LabelStore", keypoint_id: int, version: int, **changes: Any) -> KeypointRow:
        """Change a keypoint at ``version`` (editable: :data:`KEYPOINT_EDITABLE`)."""
        return self._update_row("keypoint", keypoint_id, version, changes, KEYPOINT_EDITABLE,
                                self._prepare_keypoint, self._check_keypoint_duplicate,
                                ("frame_index", "joint"))

    def delete_keypoint(self: "LabelStore", keypoint_id: int, version: int) -> KeypointRow:
        """Delete a keypoint at ``version`` (soft)."""
        return self._set_deleted(TABLES["keypoint"], keypoint_id, version, True)

    def restore_keypoint(self: "LabelStore", keypoint_id: int, version: int) -> KeypointRow:
        """Bring back a deleted keypoint."""
        return self._set_deleted(TABLES["keypoint"], keypoint_id, version, False)

    def keypoint(self: "LabelStore", keypoint_id: int) -> KeypointRow:
        """One keypoint by id."""
        return self._get(TABLES["keypoint"], keypoint_id)

    def keypoints(self: "LabelStore", recording_id: Optional[int] = None, frame_index: Optional[int] = None, *,
                  author: Optional[str] = None, include_deleted: bool = False) -> pd.DataFrame:
        """Keypoints as a DataFrame (columns :data:`~deepepil.labels._rows.KEYPOINT_COLUMNS`)."""
        t = KEYPOINT_T
        stmt = self._scoped(t, recording_id, include_deleted)
        if frame_index is not None:
            stmt = stmt.where(t.c.frame_index == _validate.as_frame(frame_index, "frame_index"))
        stmt = filter_in(stmt, author=author).order_by(t.c.recording_id, t.c.frame_index, t.c.joint, t.c.id)
        return self._frame(stmt, KEYPOINT_COLUMNS)

    # --- suggestions ------------------------------------------------------------------------

    def add_suggestion(self: "LabelStore", recording_id: int, region: str, label: str, start_frame: int,
                       end_frame: int, score: float, model_version: str,
                       laterality: Optional[str] = None, explanation_uri: Optional[str] = None) -> SuggestionRow:
        """Publish a model's proposed MOI for clinicians to accept or reject (data scientists, admins).

        ``explanation_uri`` is where the model's Grad-CAM of the suggestion lies (an ``.npz``
        written by :meth:`deepepil.ml.explain.Explanation.save`, readable by the clinicians'
        servers; at most 1000 characters), shown by the labeling app; it is set once, here.
        """
        with self._tx(write=True) as tx:
            rec = self._writable(tx, recording_id, "publish suggestions for", SUGGESTION_WRITERS)
            vocab = self._vocab(tx)
            start = _validate.as_frame(start_frame, "start_frame")
            end = _validate.as_frame(end_frame, "end_frame")
            _validate.check_interval(rec, start, end)
            if not isinstance(model_version, str) or not model_version.strip():
                raise ValidationError(f"model_version must name the model (e.g. 'moi-i3d:3'), got {model_version!r}")
            values = {
                "recording_id": rec.id, "model_version": model_version,
                "region": vocab.check("region", region, "region"), "label": vocab.check("moi_label", label, "label"),
                "laterality": vocab.check("laterality", laterality, "laterality", optional=True),
                "start_frame": start, "end_frame": end,
                "score": _validate.as_fraction(_validate.as_finite(score, "score"), "score"),
                "created_by_id": self.user.id, "decision": Decision.pending,
                "explanation_uri": _validate.as_uri(explanation_uri, "explanation_uri",
                                                    SUGGESTION_T.c.explanation_uri.type.length),
            }
            t = SUGGESTION_T
            self._lock_recording(tx, rec.id)
            same = [t.c[name] == values[name] for name in ("recording_id", "model_version", "region", "label",
                                                           "start_frame", "end_frame")]
            same.append(t.c.laterality.is_(None) if laterality is None else t.c.laterality == values["laterality"])
            duplicate = tx.conn.execute(sa.select(t.c.id).where(*same, t.c.deleted.is_(False)).limit(1)).scalar()
            if duplicate is not None:
                raise ValidationError(f"suggestion {duplicate} is the same proposal from {model_version!r}")
            return TABLES["suggestion"].from_mapping(self._insert(tx, TABLES["suggestion"], values))

    def _decide(self: "LabelStore", tx: Tx, suggestion_id: int, version: int, decision: Decision) -> Mapping:
        spec = TABLES["suggestion"]
        current, rec, version = self._edit_target(tx, spec, suggestion_id, version, "decide on suggestions for")
        if current["deleted"] or current["decision"] != Decision.pending:
            state = "withdrawn" if current["deleted"] else f"{current['decision'].value} by {current['decided_by']}"
            raise ValidationError(f"suggestion {current['id']} was {state} already; only pending ones are decided")
        values = {"decision": decision, "decided_by_id": self.user.id, "decided_at": tx.at}
        action = {Decision.accepted: "accept", Decision.rejected: "reject"}[decision]
        return self._apply(tx, spec, current, version, values, action)

    def accept_suggestion(self: "LabelStore", suggestion_id: int, version: int) -> Moi:
        """Accept a suggestion at ``version``: it becomes a MOI (source "model") authored by the connected user."""
        with self._tx(write=True) as tx:
            suggestion = self._decide(tx, suggestion_id, version, Decision.accepted)
            record = {name: suggestion[name] for name in ("recording_id", "region", "label", "laterality",
                                                          "start_frame", "end_frame")}
            record.update(source="model", confidence=suggestion["score"])
            return self._add_moi(tx, record, suggestion_id=suggestion["id"])

    def reject_suggestion(self: "LabelStore", suggestion_id: int, version: int) -> SuggestionRow:
        """Reject a suggestion at ``version``."""
        with self._tx(write=True) as tx:
            return TABLES["suggestion"].from_mapping(self._decide(tx, suggestion_id, version, Decision.rejected))

    def suggestion(self: "LabelStore", suggestion_id: int) -> SuggestionRow:
        """One suggestion by id."""
        return self._get(TABLES["suggestion"], suggestion_id)

    def suggestions(self: "LabelStore", recording_id: Optional[int] = None, decision: Optional[str] = None, *,
                    model_version: Optional[str] = None) -> pd.DataFrame:
        """Suggestions as a DataFrame (columns :data:`~deepepil.labels._rows.SUGGESTION_COLUMNS`)."""
        t = SUGGESTION_T
        if decision is not None:
            _validate.check_choice(decision, _DECISIONS, "decision")
        stmt = self._scoped(t, recording_id, False)
        stmt = filter_in(stmt, decision=decision, model_version=model_version)
        return self._frame(stmt.order_by(t.c.recording_id, t.c.start_frame, t.c.id), SUGGESTION_COLUMNS)
