"""Inference: sliding-window predictions of a registered model become suggestions in the label database.

>>> from deepepil import ml
>>> p = ml.predict(model="moi-left-arm@production", recording_id=7, user="dan")    # doctest: +SKIP
>>> p.windows        # one row per window: start_frame, end_frame, prob:<class> ...
>>> p.suggestions    # what was published: region, label, start/end frame, score (and its id)
>>> ml.predict_many("moi-left-arm@production", [7, 8, 9], user="dan")            # on Dask

The model's training settings travel with it (MLflow model metadata): the same streams, clip
length and frame rate, crop and normalization are used, and windows are laid out with the
stride the model was trained with (default half a clip's span) from the first frame to the
last (the last window ends at the recording's end). A model of target ``moi:<region>`` gives
suggestions for that region: for every class but ``none``, consecutive windows whose
probability reaches ``threshold`` merge into one suggestion spanning them, with the highest
of their probabilities as its score and ``NAME:VERSION`` as its model version. Publishing is
idempotent: a suggestion the same model version made already is not added again.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
from collections.abc import Sequence
from typing import Any, Optional, Union

import numpy as np
import pandas as pd

from deepepil.errors import AccessDeniedError, ValidationError
from deepepil.ml.metrics import prob_column

__all__ = ["Prediction", "predict", "predict_many", "window_starts", "merge_windows"]

_SIDE = re.compile(r"^(?P<label>.+?) \((?P<side>[^()]+)\)$")


@dataclasses.dataclass
class Prediction:
    """What :func:`predict` did for one recording."""

    recording_id: int
    model_version: str
    windows: pd.DataFrame
    suggestions: pd.DataFrame
    added: int = 0
    existing: int = 0

    def __repr__(self) -> str:
        return (f"Prediction(recording {self.recording_id}, model {self.model_version}: {len(self.windows)} windows, "
                f"{len(self.suggestions)} suggestions, {self.added} added, {self.existing} there already)")


def window_starts(num_frames: int, span_frames: int, stride_frames: int) -> np.ndarray:
    """First frames of windows of ``span_frames`` every ``stride_frames``; the last one ends at ``num_frames``."""
    if span_frames > num_frames:
        return np.array([], dtype=np.int64)
    starts = list(range(0, num_frames - span_frames + 1, max(1, stride_frames)))
    if starts[-1] != num_frames - span_frames:
        starts.append(num_frames - span_frames)
    return np.asarray(starts, dtype=np.int64)


def merge_windows(windows: pd.DataFrame, classes: Sequence[str], threshold: float = 0.5,
                  background: str = "none") -> pd.DataFrame:
    """Runs of consecutive windows whose probability of a class reaches ``threshold``, one row per run.

    Parameters
    ----------
    windows : DataFrame
        ``start_frame``, ``end_frame`` and a :func:`~deepepil.ml.metrics.prob_column` per class, in
        window order.
    classes : sequence of str
        The model's classes; ``background`` is never suggested.

    Returns
    -------
    DataFrame
        ``class``, ``start_frame`` (first window's), ``end_frame`` (last window's), ``score`` (the
        run's highest probability) and ``windows`` (how many).
    """
    if not 0 <= threshold <= 1:
        raise ValidationError(f"threshold must be from 0 to 1, got {threshold}")
    rows = []
    starts = windows["start_frame"].to_numpy(np.int64)
    ends = windows["end_frame"].to_numpy(np.int64)
    for cls in classes:
        if cls == background:
            continue
        prob = windows[prob_column(cls)].to_numpy(np.float64)
        above = prob >= threshold
        k = 0
        while k < len(above):
            if not above[k]:
                k += 1
                continue
            j = k
            while j + 1 < len(above) and above[j + 1] and starts[j + 1] <= ends[j]:  # neighbours that touch
                j += 1
            rows.append({"class": cls, "start_frame": int(starts[k]), "end_frame": int(ends[j]),
                         "score": float(prob[k:j + 1].max()), "windows": j - k + 1})
            k = j + 1
    return pd.DataFrame(rows, columns=["class", "start_frame", "end_frame", "score", "windows"])


@functools.lru_cache(maxsize=4)
def _loaded(label: str, tracking_uri: Optional[str], device: str) -> tuple[Any, dict[str, Any], Any]:
    from deepepil.ml.tracking import load_registered

    model, meta, ref = load_registered(label, tracking_uri, map_location=device)
    return model.to(device), meta, ref


def _device(device: str) -> str:
    if device == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def predict(model: Union[str, Any], recording_id: int, url: Optional[str] = None, *, user: Optional[str] = None,
            tracking_uri: Optional[str] = None, threshold: float = 0.5, publish: bool = True,
            batch_size: Optional[int] = None, device: str = "auto") -> Prediction:
    """Run a registered model over a recording and publish its suggestions.

    Parameters
    ----------
    model : str or ModelRef
        ``"NAME@ALIAS"`` (e.g. ``"moi-i3d@production"``), ``"NAME:VERSION"`` or ``"NAME"`` (newest).
    recording_id : int
        The recording in the label database.
    url, user : str, optional
        Label database and the user who publishes (a data scientist or an admin).
    tracking_uri : str, optional
        The MLflow registry (default ``$MLFLOW_TRACKING_URI``, else the local SQLite store).
    threshold : float
        Probability a window needs for its class to be suggested.
    publish : bool
        Write the suggestions to the database (False: only compute them).
    batch_size : int, optional
        Windows per forward pass (default: the training batch size).
    device : str
        ``auto`` (CUDA when available), ``cpu``, ``cuda``.

    Raises
    ------
    ModelNotFoundError
        No such registered model or alias (the message lists the registered ones).
    MissingStreamError
        The recording lacks a stream the model reads.
    ValidationError
        A model of another target (``syndrome``) asked to publish suggestions; a bad threshold.
    """
    from deepepil.labels._validate import SUGGESTION_WRITERS
    from deepepil.labels.service import connect
    from deepepil.ml.clips import ClipSpec
    from deepepil.ml.dataset import ClipDataset
    from deepepil.ml.tracking import ModelRef, resolve_ref
    from deepepil.ml.training import predict_probs

    if not 0 <= threshold <= 1:
        raise ValidationError(f"threshold must be from 0 to 1, got {threshold}")
    device = _device(device)
    ref = model if isinstance(model, ModelRef) and model.version else resolve_ref(model, tracking_uri)
    net, settings, ref = _loaded(ref.label, tracking_uri, device)
    target = settings["target"]
    if publish and not target.startswith("moi:"):
        raise ValidationError(f"model {ref.label} predicts {target!r} (a class per recording); suggestions are "
                              f"movements of interest and come from 'moi:<region>' models. Use publish=False to "
                              f"get its window probabilities")
    with connect(url, user=user) as store:
        rec = store.recording(recording_id)
        if publish and store.user.role not in SUGGESTION_WRITERS:
            raise AccessDeniedError(f"{store.user.username} is a {store.user.role}: suggestions are published by "
                                    f"{' or '.join(SUGGESTION_WRITERS)}s; run predict as one (user=...), or "
                                    f"publish=False")
        spec = ClipSpec(**settings["clip"])
        span = spec.span_frames(rec.fps)
        starts = window_starts(rec.num_frames, span, spec.stride(rec.fps))
        if not len(starts):
            raise ValidationError(f"{rec.describe()}: shorter than one window of the model ({span} frames)")
        ds = ClipDataset.for_windows(settings, rec.storage_uri, rec.name, starts)
        prob, _ = predict_probs(net, ds, batch_size=batch_size or int(settings.get("batch_size", 8)), device=device)
        classes = list(settings["classes"])
        windows = ds.index[["start_frame", "end_frame"]].copy()
        for c, cls in enumerate(classes):
            windows[prob_column(cls)] = prob[:, c]
        windows["predicted"] = [classes[i] for i in prob.argmax(1)]
        merged = merge_windows(windows, classes, threshold)
        suggestions = _as_suggestions(merged, target, bool(settings.get("laterality_in_class")))
        added = existing = 0
        if publish and len(suggestions):
            suggestions, added, existing = _publish(store, rec.id, suggestions, ref.label)
    return Prediction(int(rec.id), ref.label, windows, suggestions, added, existing)


def _as_suggestions(merged: pd.DataFrame, target: str, laterality_in_class: bool) -> pd.DataFrame:
    region = target[4:] if target.startswith("moi:") else None
    rows = []
    for r in merged.itertuples(index=False):
        label, side = r[0], None
        m = _SIDE.match(label) if laterality_in_class else None
        if m:
            label, side = m.group("label"), m.group("side")
        rows.append({"region": region, "label": label, "laterality": side, "start_frame": r.start_frame,
                     "end_frame": r.end_frame, "score": r.score, "windows": r.windows})
    return pd.DataFrame(rows, columns=["region", "label", "laterality", "start_frame", "end_frame", "score",
                                       "windows"])


def _publish(store: Any, recording_id: int, suggestions: pd.DataFrame, model_version: str) -> tuple[pd.DataFrame,
                                                                                                      int, int]:
    have = store.suggestions(recording_id, model_version=model_version)
    known = {(r.region, r.label, r.laterality if isinstance(r.laterality, str) else None, int(r.start_frame),
              int(r.end_frame)): int(r.id) for r in have.itertuples(index=False)}
    ids, added = [], 0
    with store.batch():
        for s in suggestions.itertuples(index=False):
            key = (s.region, s.label, s.laterality, int(s.start_frame), int(s.end_frame))
            if key in known:
                ids.append(known[key])
                continue
            row = store.add_suggestion(recording_id, s.region, s.label, int(s.start_frame), int(s.end_frame),
                                       float(s.score), model_version, laterality=s.laterality)
            ids.append(int(row.id))
            added += 1
    out = suggestions.copy()
    out.insert(0, "id", ids)
    return out, added, len(ids) - added


# --- many recordings on Dask ------------------------------------------------------------------


def _predict_task(recording_id: int, label: str, url: Optional[str], user: Optional[str],
                  tracking_uri: Optional[str], threshold: float, device: str) -> dict[str, Any]:
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("DEEPEPIL_TORCH_THREADS", "1"))))
    p = predict(label, recording_id, url, user=user, tracking_uri=tracking_uri, threshold=threshold, device=device)
    return {"recording_id": p.recording_id, "model_version": p.model_version, "windows": len(p.windows),
            "suggestions": len(p.suggestions), "added": p.added, "existing": p.existing}


def predict_many(model: str, recording_ids: Sequence[int], url: Optional[str] = None, *, user: Optional[str] = None,
                 tracking_uri: Optional[str] = None, threshold: float = 0.5, scheduler_address: Optional[str] = None,
                 n_workers: Optional[int] = None, device: str = "auto", progress: bool = True) -> pd.DataFrame:
    """:func:`predict` over many recordings on Dask distributed; one row per recording.

    The alias is resolved once, here, so every recording gets the same model version even if
    the alias moves meanwhile. ``scheduler_address`` (``tcp://host:8786``) uses a running
    cluster -- its workers must reach the label database, the registry and the recording
    stores; default a :class:`distributed.LocalCluster` of ``n_workers`` processes.

    Raises
    ------
    DeepEpilError
        After every recording was tried, when any failed (each failure named).
    """
    from deepepil.batch import run_on_dask
    from deepepil.ml.tracking import default_tracking_uri, resolve_ref

    tracking_uri = tracking_uri or default_tracking_uri()
    label = resolve_ref(model, tracking_uri).label
    ids = [int(r) for r in recording_ids]
    if not ids:
        raise ValidationError("predict_many needs at least one recording id")
    rows = run_on_dask(_predict_task, ids, label, url, user, tracking_uri, threshold, device, what="predict",
                       label=lambda rid: f"recording {rid}", scheduler_address=scheduler_address,
                       n_workers=n_workers, progress=progress)
    return pd.DataFrame(rows).sort_values("recording_id").reset_index(drop=True)
